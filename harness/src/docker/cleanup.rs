//! Removing a run's containers, networks and volumes by their labels: what `recover` does for a
//! run that was killed before its teardown, and what a normal teardown does last.

use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions,
};

use super::{DockerError, Engine, RunId, is_not_found};

/// What [`remove_by_label`] removed, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

/// What is left of a run in the engine (containers in any state, networks, volumes).
pub async fn list_by_label(engine: &Engine, run: &RunId) -> Result<Removed, DockerError> {
    let api = engine.api();
    let containers = api
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(run.filter()),
            ..Default::default()
        }))
        .await
        .map_err(DockerError::api("list containers"))?
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    let networks = api
        .list_networks(Some(ListNetworksOptions {
            filters: Some(run.filter()),
        }))
        .await
        .map_err(DockerError::api("list networks"))?
        .into_iter()
        .filter_map(|n| n.name)
        .collect();
    let volumes = api
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(run.filter()),
        }))
        .await
        .map_err(DockerError::api("list volumes"))?
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    Ok(Removed {
        containers,
        networks,
        volumes,
    })
}

/// Removes every container (running, paused or stopped, with its anonymous volumes), then every
/// network and volume labelled with `run`. Something already gone is not an error, so this can
/// run again after a partial failure. Images are shared by runs and stay.
pub async fn remove_by_label(engine: &Engine, run: &RunId) -> Result<Removed, DockerError> {
    let found = list_by_label(engine, run).await?;
    let api = engine.api();
    for id in &found.containers {
        let removed = api
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
        ignore_gone(removed).map_err(DockerError::api(format!("remove container {id}")))?;
    }
    // Networks after containers: the engine refuses to remove a network with endpoints.
    for name in &found.networks {
        let removed = api.remove_network(name).await;
        ignore_gone(removed).map_err(DockerError::api(format!("remove network {name}")))?;
    }
    for name in &found.volumes {
        let removed = api
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await;
        ignore_gone(removed).map_err(DockerError::api(format!("remove volume {name}")))?;
    }
    Ok(found)
}

fn ignore_gone(result: Result<(), bollard::errors::Error>) -> Result<(), bollard::errors::Error> {
    match result {
        Err(e) if is_not_found(&e) => Ok(()),
        other => other,
    }
}
