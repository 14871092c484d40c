//! The lab's PostgreSQL as a container of `fivehundred/postgres:15`: password auth, on the lab
//! network as `postgres`, published on 127.0.0.1 for the harness and the host's proxies.

use std::time::Duration;

use super::container::{Container, ContainerSpec};
use super::{DockerError, Engine, LabNetwork, RunId};

pub const PORT: u16 = 5432;
/// The name the database answers to on its lab network.
pub const ALIAS: &str = "postgres";
pub const USER: &str = "postgres";
pub const DATABASE: &str = "postgres";
const READY: &str = "database system is ready to accept connections";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A PostgreSQL container and how to reach it.
#[derive(Debug, Clone)]
pub struct PgContainer {
    pub container: Container,
    password: String,
}

impl PgContainer {
    /// Starts PostgreSQL from `image` (see [`super::image::ensure_postgres`]) on `network` and
    /// waits until it accepts connections.
    pub async fn start(
        engine: &Engine,
        run: &RunId,
        network: &LabNetwork,
        image: &str,
    ) -> Result<PgContainer, DockerError> {
        Self::start_with(engine, run, network, image, &[]).await
    }

    /// [`PgContainer::start`] with server settings (`max_connections=5`), each passed as `-c`.
    pub async fn start_with(
        engine: &Engine,
        run: &RunId,
        network: &LabNetwork,
        image: &str,
        settings: &[String],
    ) -> Result<PgContainer, DockerError> {
        Self::start_timed(engine, run, network, image, settings)
            .await
            .map(|(pg, _, _)| pg)
    }

    /// [`PgContainer::start_with`], with how long the container took to be created and started,
    /// and then PostgreSQL to say it is ready.
    pub async fn start_timed(
        engine: &Engine,
        run: &RunId,
        network: &LabNetwork,
        image: &str,
        settings: &[String],
    ) -> Result<(PgContainer, Duration, Duration), DockerError> {
        // Hex, so it needs no quoting anywhere; it goes to the container in its environment.
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut spec = ContainerSpec::new("postgres", image)
            .env("POSTGRES_PASSWORD", &password)
            .port(PORT)
            .network(network, &[ALIAS]);
        if !settings.is_empty() {
            spec = spec.cmd(settings.iter().flat_map(|s| ["-c".to_string(), s.clone()]));
        }
        let started = std::time::Instant::now();
        let container = Container::start(engine, run, &spec).await?;
        let created = started.elapsed();
        let pg = PgContainer {
            container,
            password,
        };
        if let Err(e) = pg.wait_ready(0).await {
            let _ = pg.container.clone().remove().await;
            return Err(e);
        }
        Ok((pg, created, started.elapsed() - created))
    }

    /// Waits until the server has said it is ready more than `seen` times: 0 at the first start;
    /// before a restart, take [`PgContainer::times_ready`] and pass it here after.
    pub async fn wait_ready(&self, seen: usize) -> Result<(), DockerError> {
        self.container
            .wait_for_log(READY, seen, START_TIMEOUT)
            .await
    }

    /// How many times the server has said it is ready (once per start).
    pub async fn times_ready(&self) -> Result<usize, DockerError> {
        self.container.count_in_logs(READY).await
    }

    /// The URL the harness (and a proxy on the host) connects with: 127.0.0.1 and the
    /// published port.
    pub fn url(&self) -> String {
        let port = self.container.host_port(PORT).unwrap_or(PORT);
        format!(
            "postgres://{USER}:{}@127.0.0.1:{port}/{DATABASE}",
            self.password
        )
    }

    /// The URL for another container on the same lab network.
    pub fn url_in_network(&self) -> String {
        format!(
            "postgres://{USER}:{}@{ALIAS}:{PORT}/{DATABASE}",
            self.password
        )
    }

    pub fn host_port(&self) -> u16 {
        self.container.host_port(PORT).unwrap_or(PORT)
    }
}
