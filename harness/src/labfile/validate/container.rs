//! A service the lab runs as a container: its image (one that exists in the engine, or a
//! Dockerfile to build), its environment, the port it listens on inside, its listeners and its
//! stop grace. The keys only a process has (`cwd`, `user`, `stop_signal`, config files) are
//! refused where they are written.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Context, Validator};
use crate::labfile::raw::{RawService, Str};
use crate::labfile::{ContainerSpec, DEFAULT_CONTAINER_PORT, ImageSource, LabFileError};

impl Validator<'_> {
    pub(super) fn container(&self, s: &RawService) -> Result<ContainerSpec, LabFileError> {
        let only_process = [
            (
                "cwd",
                s.cwd.as_ref().map(|v| v.span()),
                "the image's WORKDIR is its working directory",
            ),
            (
                "user",
                s.user.as_ref().map(|v| v.span()),
                "the image's USER is the user it runs as",
            ),
            (
                "stop_signal",
                s.stop_signal.as_ref().map(|v| v.span()),
                "the image's STOPSIGNAL is what `docker stop` sends",
            ),
        ];
        if let Some((key, Some(at), why)) = only_process.into_iter().find(|(_, at, _)| at.is_some())
        {
            return Err(self.err(
                at,
                format!("`{key}` only applies to a service the lab starts as a process"),
                &format!("remove it: {why}"),
            ));
        }
        if let Some((name, _)) = s.config.iter().next() {
            return Err(self.err(
                name.span(),
                "config files only apply to a service the lab starts as a process",
                "put the file in the image, or hand the values over in `env`",
            ));
        }
        let image = if let Some(name) = &s.image {
            ImageSource::Image(self.image_name(name)?)
        } else if let Some(file) = &s.build {
            let path = self.existing(file, "Dockerfile")?;
            if !path.is_file() {
                return Err(self.err(
                    file.span(),
                    format!("{} is not a file", path.display()),
                    "`build` names the Dockerfile; its directory is the build context",
                ));
            }
            ImageSource::Build(path)
        } else if let Some(file) = &s.compose {
            ImageSource::Compose(self.compose(file, s)?)
        } else {
            return Err(self.err(
                0..0,
                "a container service needs `image` or `build`",
                "image = \"name:tag\" or build = \"Dockerfile\"",
            ));
        };
        let mut env = BTreeMap::new();
        for (k, v) in &s.env {
            if k.get_ref().is_empty() || k.get_ref().contains(['=', '\0']) {
                return Err(self.err(
                    k.span(),
                    format!("`{}` is not an environment variable name", k.get_ref()),
                    "",
                ));
            }
            env.insert(k.get_ref().clone(), self.template(v, Context::Start)?);
        }
        let container_port = match (&s.container_port, &s.port) {
            (Some(c), Some(p)) if c.get_ref() != p.get_ref() => {
                return Err(self.err(
                    c.span(),
                    format!(
                        "`container_port` {} and `port` {} disagree",
                        c.get_ref(),
                        p.get_ref()
                    ),
                    "for a container `port` is only the default of `container_port`: give one of them",
                ));
            }
            (Some(p), _) | (None, Some(p)) if *p.get_ref() == 0 => {
                return Err(self.err(
                    p.span(),
                    "port 0 is not a port a service listens on",
                    "the port the service listens on inside its container, e.g. 8080",
                ));
            }
            (Some(p), _) | (None, Some(p)) => *p.get_ref(),
            (None, None) => DEFAULT_CONTAINER_PORT,
        };
        Ok(ContainerSpec {
            image,
            env,
            container_port,
            listeners: self.scope.listeners.clone(),
            stop_grace: s
                .stop_grace
                .as_ref()
                .map(|d| self.duration(d))
                .transpose()?
                .unwrap_or(Duration::from_secs(10)),
        })
    }

    /// The compose file and the service under test in it (`compose_service`).
    fn compose(
        &self,
        file: &Str,
        s: &RawService,
    ) -> Result<crate::labfile::ComposeSource, LabFileError> {
        let path = self.existing(file, "compose file")?;
        let Some(service) = &s.compose_service else {
            return Err(self.err(
                file.span(),
                "a service from a compose file needs `compose_service`: which of its services is the one under test",
                "compose_service = \"web\"",
            ));
        };
        let text = crate::textfile::read_capped(&path)
            .map_err(|e| self.err(file.span(), format!("{}: {e}", path.display()), ""))?;
        crate::labfile::compose::read(&path, &text, service.get_ref()).map_err(|e| {
            // An unknown service is the lab file's mistake; anything else the compose file's.
            let at = if e.contains(": no service `") {
                service.span()
            } else {
                file.span()
            };
            self.err(at, e, "")
        })
    }

    /// An image reference as the engine takes it: `name:tag`, `repo/name:tag`, `name@sha256:…`.
    fn image_name(&self, name: &Str) -> Result<String, LabFileError> {
        let n = name.get_ref().trim();
        let ok = !n.is_empty()
            && n.len() <= 255
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
        if !ok {
            return Err(self.err(
                name.span(),
                format!("`{}` is not an image name", name.get_ref()),
                "write name:tag, such as \"myservice:latest\", of an image in the local engine",
            ));
        }
        Ok(n.to_string())
    }
}
