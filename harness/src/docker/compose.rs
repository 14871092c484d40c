//! A user's compose project run for a lab: the compose tool found (`docker compose` or
//! `docker-compose`), an override file that labels every service, network and volume with the
//! run (so [`super::cleanup`] and `recover` find them) and publishes the service under test on
//! 127.0.0.1, the project started under a name of the run's own without pulling anything
//! (`build:` sections are built), and taken down with its volumes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::ListContainersOptions;
use serde_json::{Map, Value, json};

use super::{Container, DockerError, Engine, RunId};
use crate::labfile::ComposeSource;

/// How long `up` (builds included) and `down` may take.
const UP_WITHIN: Duration = Duration::from_secs(600);
const DOWN_WITHIN: Duration = Duration::from_secs(120);

/// The compose tool on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tool {
    /// The Docker CLI's plugin: `docker compose`.
    Plugin,
    /// The standalone `docker-compose` (1.x), which has no `--pull never`: the lab checks that
    /// every image a service names exists before `up`, so it has nothing to pull.
    Standalone,
}

impl Tool {
    /// `docker compose` if the plugin answers, else `docker-compose`; one line saying what to
    /// install when neither does.
    pub async fn find() -> Result<Tool, DockerError> {
        let answers = |program: &str, args: &[&str]| {
            let mut c = tokio::process::Command::new(program);
            c.args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            async move { c.status().await.is_ok_and(|s| s.success()) }
        };
        if answers("docker", &["compose", "version"]).await {
            Ok(Tool::Plugin)
        } else if answers("docker-compose", &["version"]).await {
            Ok(Tool::Standalone)
        } else {
            Err(DockerError::Invalid(
                "no compose tool: neither `docker compose` nor `docker-compose` runs here (install the docker-compose-plugin or docker-compose package)".into(),
            ))
        }
    }

    fn command(&self) -> tokio::process::Command {
        match self {
            Tool::Plugin => {
                let mut c = tokio::process::Command::new("docker");
                c.arg("compose");
                c
            }
            Tool::Standalone => tokio::process::Command::new("docker-compose"),
        }
    }
}

/// A compose project the lab started: enough to take it down again.
#[derive(Debug, Clone)]
pub struct Project {
    pub tool: Tool,
    /// `fivehundred-<run>`.
    pub name: String,
    /// The user's compose file, then the lab's override file.
    pub files: [PathBuf; 2],
}

/// The project name of `run`'s compose project.
pub fn project_name(run: &RunId) -> String {
    run.name("compose")
}

/// The override file (JSON, which compose reads as YAML): the run's labels on every service,
/// network (the default one too) and volume the file makes; on the service under test its
/// environment (`env`, over the file's) and its port published on `host_port` of 127.0.0.1 (a
/// port chosen up front, not an ephemeral one: the engine would choose another when the crash
/// fault starts the container again), and each of `same_ports` on the same port number there.
pub fn override_file(
    source: &ComposeSource,
    run: &RunId,
    (container_port, host_port): (u16, u16),
    same_ports: &[u16],
    env: &[(String, String)],
) -> String {
    let labels: Map<String, Value> = run
        .labels()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let mut services = Map::new();
    for name in &source.services {
        let mut s = Map::new();
        s.insert("labels".into(), Value::Object(labels.clone()));
        if *name == source.service {
            let mut ports = vec![Value::String(format!(
                "127.0.0.1:{host_port}:{container_port}"
            ))];
            ports.extend(
                same_ports
                    .iter()
                    .map(|p| Value::String(format!("127.0.0.1:{p}:{p}"))),
            );
            s.insert("ports".into(), Value::Array(ports));
            if !env.is_empty() {
                s.insert(
                    "environment".into(),
                    Value::Object(
                        env.iter()
                            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                            .collect(),
                    ),
                );
            }
        }
        services.insert(name.clone(), Value::Object(s));
    }
    let labelled = |names: &mut dyn Iterator<Item = &str>| -> Map<String, Value> {
        names
            .map(|n| (n.to_string(), json!({ "labels": labels.clone() })))
            .collect()
    };
    let networks = labelled(
        &mut std::iter::once("default").chain(
            source
                .networks
                .iter()
                .map(String::as_str)
                .filter(|n| *n != "default"),
        ),
    );
    let volumes = labelled(&mut source.volumes.iter().map(String::as_str));
    let mut top = Map::new();
    if let Some(v) = &source.version {
        top.insert("version".into(), Value::String(v.clone()));
    }
    top.insert("services".into(), Value::Object(services));
    top.insert("networks".into(), Value::Object(networks));
    if !volumes.is_empty() {
        top.insert("volumes".into(), Value::Object(volumes));
    }
    serde_json::to_string_pretty(&Value::Object(top)).unwrap_or_default()
}

/// What a project needs of the engine before `up`: each service's `image:` that no `build:`
/// section makes (by service), and the Dockerfile of each `build:` section.
async fn required_images(
    project: &Project,
) -> Result<(Vec<(String, String)>, Vec<PathBuf>), DockerError> {
    let out = project.run(&["config"], Duration::from_secs(60)).await?;
    let doc: yaml_serde::Value = yaml_serde::from_str(&out)
        .map_err(|e| DockerError::Invalid(format!("compose config: {e}")))?;
    let mut images = Vec::new();
    let mut dockerfiles = Vec::new();
    if let Some(services) = doc.get("services").and_then(|s| s.as_mapping()) {
        for (name, s) in services {
            if let Some(build) = s.get("build") {
                // `build: DIR`, or `build: {context: DIR, dockerfile: FILE}`.
                let (context, file) = match build.as_str() {
                    Some(dir) => (Some(dir), None),
                    None => (
                        build.get("context").and_then(|c| c.as_str()),
                        build.get("dockerfile").and_then(|f| f.as_str()),
                    ),
                };
                if let Some(context) = context {
                    dockerfiles.push(Path::new(context).join(file.unwrap_or("Dockerfile")));
                }
                continue;
            }
            if let (Some(name), Some(image)) =
                (name.as_str(), s.get("image").and_then(|i| i.as_str()))
            {
                images.push((name.to_string(), image.to_string()));
            }
        }
    }
    Ok((images, dockerfiles))
}

/// Builds the project's own images a compose file names, as `--backend docker` does on first
/// use (nothing is pulled): `fivehundred/postgres:15` by `image:`, the Debian base under a
/// `build:` section's `FROM`. Whether `image` is one of them.
async fn ensure_own(engine: &Engine, image: &str) -> Result<bool, DockerError> {
    let progress = |line: &str| eprintln!("  {line}");
    if image == super::image::POSTGRES_IMAGE {
        super::image::ensure_postgres(engine, &progress).await?;
        Ok(true)
    } else if image == super::image::base_image() {
        super::image::ensure_base(engine, &progress).await?;
        Ok(true)
    } else {
        Ok(false)
    }
}

impl Project {
    /// Writes the override file next to nothing of the user's (`override_path`, in the run's
    /// directory) and starts the project: its `build:` sections built, nothing pulled, every
    /// container started (`up -d`). On failure the error carries the tool's last lines, and
    /// what was made is for the caller to take down ([`Project::down`]).
    pub async fn up(
        engine: &Engine,
        tool: Tool,
        run: &RunId,
        source: &ComposeSource,
        override_path: &Path,
        override_text: &str,
    ) -> Result<Project, (Project, DockerError)> {
        let project = Project {
            tool,
            name: project_name(run),
            files: [source.file.clone(), override_path.to_path_buf()],
        };
        if let Err(e) = std::fs::write(override_path, override_text) {
            return Err((
                project,
                DockerError::io(format!("write {}", override_path.display()))(e),
            ));
        }
        let (images, dockerfiles) = match required_images(&project).await {
            Ok(i) => i,
            Err(e) => return Err((project, e)),
        };
        // A Dockerfile on the project's own Debian base gets the base built first.
        for file in &dockerfiles {
            let from_base = std::fs::read_to_string(file).is_ok_and(|text| {
                text.lines().any(|l| {
                    let mut words = l.split_whitespace();
                    words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
                        && words.next() == Some(super::image::base_image().as_str())
                })
            });
            if from_base && let Err(e) = ensure_own(engine, &super::image::base_image()).await {
                return Err((project, e));
            }
        }
        for (service, image) in images {
            match ensure_own(engine, &image).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Err((project, e)),
            }
            match engine.api().inspect_image(&image).await {
                Ok(_) => {}
                Err(e) if super::is_not_found(&e) => {
                    return Err((
                        project,
                        DockerError::Invalid(format!(
                            "{}: service `{service}`: image {image} is not in the engine; nothing is pulled: build it first, or give the service a `build:` section",
                            source.file.display()
                        )),
                    ));
                }
                Err(e) => {
                    return Err((
                        project,
                        DockerError::api(format!("inspect image {image}"))(e),
                    ));
                }
            }
        }
        let mut args = vec!["up", "-d", "--build", "--no-color"];
        if project.tool == Tool::Plugin {
            args.extend(["--pull", "never"]);
        }
        match project.run(&args, UP_WITHIN).await {
            Ok(_) => Ok(project),
            Err(e) => Err((project, e)),
        }
    }

    /// `down -v --remove-orphans --rmi local`: its containers, networks and volumes, and the
    /// images its `build:` sections made under the project's name.
    pub async fn down(&self) -> Result<(), DockerError> {
        self.run(
            &["down", "-v", "--remove-orphans", "--rmi", "local"],
            DOWN_WITHIN,
        )
        .await
        .map(|_| ())
    }

    /// The container of `service` in this project.
    pub async fn container(
        &self,
        engine: &Engine,
        service: &str,
    ) -> Result<Container, DockerError> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_string(),
            vec![
                format!("com.docker.compose.project={}", self.name),
                format!("com.docker.compose.service={service}"),
            ],
        )]);
        let found = engine
            .api()
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(DockerError::api(format!(
                "list the containers of {service}"
            )))?;
        let Some(id) = found.into_iter().find_map(|c| c.id) else {
            return Err(DockerError::Invalid(format!(
                "compose project {}: no container for service `{service}`",
                self.name
            )));
        };
        Container::adopt(engine, &id).await
    }

    /// Runs the tool on this project; its stdout, or an error with its last lines.
    async fn run(&self, args: &[&str], within: Duration) -> Result<String, DockerError> {
        let mut cmd = self.tool.command();
        cmd.arg("--project-name").arg(&self.name);
        for f in &self.files {
            cmd.arg("--file").arg(f);
        }
        if let Some(dir) = self.files[0].parent() {
            cmd.arg("--project-directory").arg(dir);
        }
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let what = format!("compose {}", args.first().copied().unwrap_or(""));
        let out = match tokio::time::timeout(within, cmd.output()).await {
            Ok(out) => out.map_err(DockerError::io(what.clone()))?,
            Err(_) => {
                return Err(DockerError::Invalid(format!(
                    "{what}: no answer within {within:?}"
                )));
            }
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(DockerError::Invalid(format!(
            "{what} failed ({}): {}",
            out.status,
            tail.join(" | ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> ComposeSource {
        ComposeSource {
            file: "/p/compose.yaml".into(),
            service: "web".into(),
            services: vec!["web".into(), "db".into()],
            networks: vec!["back".into()],
            volumes: vec!["data".into()],
            version: Some("3.8".into()),
        }
    }

    #[test]
    fn the_override_labels_everything_and_publishes_only_the_service_on_loopback() {
        let run = RunId::new("abc123").unwrap();
        let text = override_file(
            &source(),
            &run,
            (8080, 41234),
            &[9091],
            &[("APP_LISTEN".into(), "0.0.0.0:8080".into())],
        );
        // Compose reads it as YAML: it must parse as such.
        let doc: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        let doc: Value = serde_json::to_value(doc).unwrap();
        assert_eq!(doc["version"], "3.8");
        for service in ["web", "db"] {
            assert_eq!(
                doc["services"][service]["labels"]["fivehundred.run"],
                "abc123"
            );
            assert_eq!(
                doc["services"][service]["labels"]["fivehundred.owner"],
                "fivehundred"
            );
        }
        assert_eq!(
            doc["services"]["web"]["ports"],
            json!(["127.0.0.1:41234:8080", "127.0.0.1:9091:9091"])
        );
        assert_eq!(
            doc["services"]["web"]["environment"]["APP_LISTEN"],
            "0.0.0.0:8080"
        );
        assert!(doc["services"]["db"].get("ports").is_none());
        assert!(doc["services"]["db"].get("environment").is_none());
        for network in ["default", "back"] {
            assert_eq!(
                doc["networks"][network]["labels"]["fivehundred.run"],
                "abc123"
            );
        }
        assert_eq!(
            doc["volumes"]["data"]["labels"]["fivehundred.run"],
            "abc123"
        );
        assert_eq!(project_name(&run), "fivehundred-abc123-compose");
    }

    #[test]
    fn a_file_without_version_or_volumes_gets_an_override_without_them() {
        let mut s = source();
        s.version = None;
        s.volumes.clear();
        let run = RunId::new("r1").unwrap();
        let doc: Value =
            serde_json::from_str(&override_file(&s, &run, (80, 41234), &[], &[])).unwrap();
        assert!(doc.get("version").is_none());
        assert!(doc.get("volumes").is_none());
        assert!(doc["services"]["web"].get("environment").is_none());
    }
}
