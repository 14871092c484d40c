//! Finding the Docker engine: `DOCKER_HOST` or the default socket, checked step by step so that a
//! machine without one is told in one line what is missing (the lab's exit 3).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;

/// The socket the engine listens on when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long one API call may take; image builds stream and are not bound by it.
const API_TIMEOUT: Duration = Duration::from_secs(120);

/// Why there is no engine to use. Each message is one line naming what is missing and how to
/// get it.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error(
        "no Docker engine: {} does not exist (install docker.io and start it, or set DOCKER_HOST)",
        .socket.display()
    )]
    NoSocket { socket: PathBuf },
    #[error(
        "no permission on the Docker socket {} (run as root or as a member of the `docker` group)",
        .socket.display()
    )]
    NoPermission { socket: PathBuf },
    #[error(
        "no Docker engine answers on {}: {reason} (start it: `service docker start`)",
        .socket.display()
    )]
    NotListening { socket: PathBuf, reason: String },
    #[error("DOCKER_HOST={host} is not a unix://, tcp:// or http:// address")]
    BadHost { host: String },
    #[error("the Docker engine at {host} did not answer: {reason}")]
    NotAnswering { host: String, reason: String },
}

/// A connection to an engine that answered, at an API version both sides speak.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
    version: String,
    api_version: String,
}

impl Engine {
    /// The engine at `DOCKER_HOST`, else at the default socket.
    pub async fn connect() -> Result<Engine, Unavailable> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| format!("unix://{DEFAULT_SOCKET}"));
        Engine::connect_to(&host).await
    }

    /// The engine at `host`: `unix:///path`, a bare socket path, `tcp://h:p` or `http://h:p`.
    pub async fn connect_to(host: &str) -> Result<Engine, Unavailable> {
        let docker = if let Some(path) = socket_path(host) {
            probe_socket(&path).await?;
            Docker::connect_with_unix(
                &path.to_string_lossy(),
                API_TIMEOUT.as_secs(),
                bollard::API_DEFAULT_VERSION,
            )
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(host, API_TIMEOUT.as_secs(), bollard::API_DEFAULT_VERSION)
        } else {
            return Err(Unavailable::BadHost {
                host: host.to_owned(),
            });
        };
        let not_answering = |reason: String| Unavailable::NotAnswering {
            host: host.to_owned(),
            reason,
        };
        let docker = docker.map_err(|e| not_answering(e.to_string()))?;
        // Speak the engine's version, not bollard's newest: Debian's engine stops at API 1.41
        // and refuses any request made at a later one.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| not_answering(e.to_string()))?;
        let version = docker
            .version()
            .await
            .map_err(|e| not_answering(e.to_string()))?;
        Ok(Engine {
            docker,
            host: host.to_owned(),
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
        })
    }

    /// The API client, for what the backend's own functions do not cover.
    pub fn api(&self) -> &Docker {
        &self.docker
    }

    /// Where the engine was found (`unix:///var/run/docker.sock`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The engine's version (`20.10.24+dfsg1`) and API version (`1.41`), for reports.
    pub fn version(&self) -> (&str, &str) {
        (&self.version, &self.api_version)
    }
}

fn socket_path(host: &str) -> Option<PathBuf> {
    if let Some(path) = host.strip_prefix("unix://") {
        return Some(PathBuf::from(path));
    }
    host.starts_with('/').then(|| PathBuf::from(host))
}

/// Connects to the socket once before the API client does, because the client's error for a
/// missing socket or a refused permission is a generic connection error.
async fn probe_socket(path: &Path) -> Result<(), Unavailable> {
    use std::io::ErrorKind;
    let socket = path.to_owned();
    match tokio::net::UnixStream::connect(path).await {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.kind() {
            ErrorKind::NotFound => Unavailable::NoSocket { socket },
            ErrorKind::PermissionDenied => Unavailable::NoPermission { socket },
            _ => Unavailable::NotListening {
                socket,
                reason: e.to_string(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_come_from_unix_urls_and_bare_paths() {
        assert_eq!(
            socket_path("unix:///run/docker.sock"),
            Some(PathBuf::from("/run/docker.sock"))
        );
        assert_eq!(socket_path("/x.sock"), Some(PathBuf::from("/x.sock")));
        assert_eq!(socket_path("tcp://127.0.0.1:2375"), None);
    }

    #[tokio::test]
    async fn a_missing_socket_is_named_with_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let err = Engine::connect_to(&format!("unix://{}", path.display()))
            .await
            .unwrap_err();
        let line = err.to_string();
        assert!(matches!(err, Unavailable::NoSocket { .. }), "{line}");
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(line.contains("install docker.io"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    #[tokio::test]
    async fn a_socket_nobody_listens_on_says_to_start_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        // A socket file whose listener is gone: connect is refused.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let err = Engine::connect_to(path.to_str().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Unavailable::NotListening { .. }), "{err}");
        assert!(err.to_string().contains("service docker start"), "{err}");
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_before_any_connection() {
        let err = Engine::connect_to("ssh://somewhere").await.unwrap_err();
        assert!(matches!(err, Unavailable::BadHost { .. }), "{err}");
    }
}
