//! A lab network: a bridge network of the run's own, labelled, whose gateway address is the
//! host's side of it. Proxies on the host listen on that address so that containers on the
//! network reach them (as `host.docker.internal`), and nothing beyond the host does.

use std::net::Ipv4Addr;

use bollard::models::NetworkCreateRequest;

use super::{DockerError, Engine, RunId};

#[derive(Debug, Clone)]
pub struct LabNetwork {
    pub name: String,
    pub id: String,
    /// The host's address on this network.
    pub gateway: Ipv4Addr,
    /// The network's subnet (`172.18.0.0/16`).
    pub subnet: String,
}

impl LabNetwork {
    /// Makes the network `fivehundred-<run>-<what>`, labelled with the run.
    pub async fn create(
        engine: &Engine,
        run: &RunId,
        what: &str,
    ) -> Result<LabNetwork, DockerError> {
        let name = run.name(what);
        let api = engine.api();
        let created = api
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".to_owned()),
                labels: Some(run.labels()),
                ..Default::default()
            })
            .await
            .map_err(DockerError::api(format!("create network {name}")))?;
        LabNetwork::find(engine, &created.id, &name).await
    }

    /// The network `id` (made by the lab or by a compose project), named `name`.
    pub async fn find(engine: &Engine, id: &str, name: &str) -> Result<LabNetwork, DockerError> {
        let name = name.to_owned();
        let inspected = engine
            .api()
            .inspect_network(id, None)
            .await
            .map_err(DockerError::api(format!("inspect network {name}")))?;
        let id = inspected.id.clone().unwrap_or_else(|| id.to_owned());
        let found = inspected
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default()
            .into_iter()
            .find_map(|c| {
                let gateway = c.gateway.as_deref()?.parse::<Ipv4Addr>().ok()?;
                Some((gateway, c.subnet.unwrap_or_default()))
            });
        let Some((gateway, subnet)) = found else {
            return Err(DockerError::Invalid(format!(
                "network {name} has no IPv4 gateway"
            )));
        };
        Ok(LabNetwork {
            name,
            id,
            gateway,
            subnet,
        })
    }

    /// Removes the network (its containers must be gone or disconnected first).
    pub async fn remove(&self, engine: &Engine) -> Result<(), DockerError> {
        match engine.api().remove_network(&self.id).await {
            Err(e) if super::is_not_found(&e) => Ok(()),
            other => other.map_err(DockerError::api(format!("remove network {}", self.name))),
        }
    }
}
