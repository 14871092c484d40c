//! Removing a run's containers, networks and volumes by their labels: what `recover` does for a
//! run that was killed before its teardown, and what a normal teardown does last.

use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions,
};

use super::labels::{OWNER, OWNER_LABEL, RUN_LABEL};
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

/// The runs that have anything left in the engine (containers, networks or volumes labelled
/// as fivehundred's), for a recovery that does not know which runs were killed.
pub async fn runs_present(engine: &Engine) -> Result<Vec<RunId>, DockerError> {
    use std::collections::{BTreeSet, HashMap};
    let owned: HashMap<String, Vec<String>> =
        HashMap::from([("label".to_owned(), vec![format!("{OWNER_LABEL}={OWNER}")])]);
    let api = engine.api();
    let mut runs = BTreeSet::new();
    let containers = api
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(owned.clone()),
            ..Default::default()
        }))
        .await
        .map_err(DockerError::api("list containers"))?;
    runs.extend(
        containers
            .into_iter()
            .filter_map(|c| c.labels?.remove(RUN_LABEL)),
    );
    let networks = api
        .list_networks(Some(ListNetworksOptions {
            filters: Some(owned.clone()),
        }))
        .await
        .map_err(DockerError::api("list networks"))?;
    runs.extend(
        networks
            .into_iter()
            .filter_map(|n| n.labels?.remove(RUN_LABEL)),
    );
    let volumes = api
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(owned),
        }))
        .await
        .map_err(DockerError::api("list volumes"))?;
    runs.extend(
        volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|mut v| v.labels.remove(RUN_LABEL)),
    );
    // A label value that is not a valid run id was not written by us: leave it alone.
    Ok(runs.iter().filter_map(|r| RunId::new(r).ok()).collect())
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
