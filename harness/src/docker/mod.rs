//! The container backend's mechanisms: the Docker engine, the lab's labelled containers,
//! networks and images (built here, never pulled), and the faults a running container can take.
//!
//! # Layout
//!
//! - [`engine`]: finding the engine and saying in one line what is missing when there is none.
//! - [`labels`]: the run id and the labels on everything a run makes; [`cleanup`] removes a
//!   run's containers, networks and volumes by those labels (for `recover`).
//! - [`image`]: the images, built on first use and cached by their recipe: a Debian base made
//!   with `debootstrap`, PostgreSQL on it, a service binary on it.
//! - [`build`]: a user's image: one that must exist already, or a Dockerfile built with its
//!   directory as the context, tagged by the context's hash (and never a pull, not even of its
//!   `FROM`); its command (`ENTRYPOINT` and `CMD`), with a run's arguments after it.
//! - [`compose`]: a user's compose project, run with an override file of the lab's (the run's
//!   labels on everything, the service under test published on loopback), never pulling, and
//!   taken down with its volumes.
//! - [`network`]: a lab network, and the address on it where the host's proxies listen.
//! - [`container`]: a labelled container with ports published on loopback; [`postgres`] is the
//!   lab's database as one.
//! - [`faults`]: pause, kill, stop, a network cut, a memory limit and a CPU quota, each with its
//!   revert.
//!
//! # Why bollard and not testcontainers
//!
//! testcontainers-rs (0.28) never starts a reaper (it removes what it made when its handles drop)
//! and pulls an image only when creating a container answers 404, so both could be kept off. But
//! it speaks one fixed Docker API version (1.53 in 0.28, 1.44 and up since 0.16) without
//! negotiating, and the engine Debian ships (20.10, API 1.41) refuses every such request ("client
//! version 1.53 is too new"). bollard, which testcontainers is built on, negotiates the version
//! (`Docker::negotiate_version`), so the backend uses it directly. Nothing here pulls an image:
//! every image is built from Debian's packages, and a container is only ever created from an
//! image this module has checked exists.

pub mod build;
pub mod cleanup;
pub mod compose;
pub mod container;
pub mod engine;
pub mod faults;
pub mod image;
pub mod labels;
pub mod network;
pub mod postgres;

pub use container::{Container, ContainerSpec};
pub use engine::{Engine, Unavailable};
pub use labels::RunId;
pub use network::LabNetwork;

/// What can go wrong talking to the engine once it was found.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine is missing or unreachable: the lab cannot be set up (exit 3).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("docker: {action}: {source}")]
    Api {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("image {image}: {message}")]
    Build { image: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container {container}: {message}")]
    Container { container: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl DockerError {
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let action = action.into();
        move |source| DockerError::Api { action, source }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| DockerError::Io { what, source }
    }
}

/// Where progress lines go while an image builds (the caller prints them, to stderr or a bar).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Whether the engine answered 404 (no such container, network, volume or image).
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
