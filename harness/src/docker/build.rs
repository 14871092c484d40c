//! A lab-file service's image: `image = "name:tag"`, which must already be in the engine, or
//! `build = "Dockerfile"`, built with the Dockerfile's directory as the context and tagged
//! `fivehundred/lab-<directory>:<hash of the context>`, so that a second run with the same files
//! reuses it. Nothing is pulled: every `FROM` must name an image the engine has (or an earlier
//! stage), and `fivehundred/debian:bookworm`, the project's own base, is built when missing.
//! [`ImageCommand`] is what an image runs, and where a run's `-- ARGS` go in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptions;

use super::image::{base_image, build_lock, current, ensure_base, recipe, stream_build};
use super::labels::{OWNER, OWNER_LABEL, RECIPE_LABEL};
use super::{DockerError, Engine, Progress, is_not_found};

/// The most a build context may hold; it is sent to the engine in one piece.
const MAX_CONTEXT: u64 = 2 << 30;

/// Checks that `image` exists in the engine; the error says how to make it, never pulls it.
pub async fn require(engine: &Engine, image: &str) -> Result<String, DockerError> {
    match engine.api().inspect_image(image).await {
        Ok(_) => Ok(image.to_owned()),
        Err(e) if is_not_found(&e) => Err(DockerError::Invalid(format!(
            "the image {image} is not in the Docker engine, and fivehundred never pulls one: build it first (`docker build -t {image} DIR`), or give the service `build = \"path/to/Dockerfile\"` instead of `image`"
        ))),
        Err(e) => Err(DockerError::api(format!("inspect image {image}"))(e)),
    }
}

/// What an image runs when a container of it is given no command: its `ENTRYPOINT` and its
/// `CMD`, as `docker image inspect` shows them (Config.Entrypoint, Config.Cmd).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageCommand {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl ImageCommand {
    /// The command a container is given so that it runs the image's command with `args`
    /// after it: the image's `CMD` followed by `args` (the `ENTRYPOINT` stays the image's, and
    /// runs with that command after it). `docker run IMAGE ARGS` would replace `CMD` with
    /// `ARGS`; appending keeps whatever the image's `CMD` already passes. Refused, saying why,
    /// when the arguments could not reach a program: an image with no command at all, or one
    /// whose command is a shell's `-c` string (the shell form of `ENTRYPOINT` or `CMD`), where
    /// words after the string become the shell's `$0`, `$1`... and not the program's.
    pub fn appended(&self, args: &[String]) -> Result<Vec<String>, String> {
        let whole: Vec<&String> = self.entrypoint.iter().chain(&self.cmd).collect();
        if whole.is_empty() {
            return Err(
                "the image has neither ENTRYPOINT nor CMD: there is no command to append the arguments after `--` to".into(),
            );
        }
        // The shell form: what `ENTRYPOINT prog args` or, without an entrypoint,
        // `CMD prog args` becomes.
        let runs = if self.entrypoint.is_empty() {
            &self.cmd
        } else {
            &self.entrypoint
        };
        if let [shell, dash_c, line, ..] = runs.as_slice()
            && dash_c == "-c"
            && matches!(
                shell.rsplit('/').next(),
                Some("sh" | "bash" | "dash" | "ash")
            )
        {
            return Err(format!(
                "the image runs its command through a shell (`{shell} -c \"{line}\"`, the shell form of {}): arguments after `--` would reach the shell, not the program; write it in the exec form, {} [\"program\", \"arg\"]",
                if self.entrypoint.is_empty() {
                    "CMD"
                } else {
                    "ENTRYPOINT"
                },
                if self.entrypoint.is_empty() {
                    "CMD"
                } else {
                    "ENTRYPOINT"
                },
            ));
        }
        Ok(self.cmd.iter().chain(args).cloned().collect())
    }
}

/// The `ENTRYPOINT` and `CMD` of `image`, which must be in the engine.
pub async fn command(engine: &Engine, image: &str) -> Result<ImageCommand, DockerError> {
    let inspected = engine
        .api()
        .inspect_image(image)
        .await
        .map_err(DockerError::api(format!("inspect image {image}")))?;
    let config = inspected.config.unwrap_or_default();
    Ok(ImageCommand {
        entrypoint: config.entrypoint.unwrap_or_default(),
        cmd: config.cmd.unwrap_or_default(),
    })
}

/// Builds the image of `dockerfile` with its directory as the context, unless an image of the
/// same context exists; returns its tag. Build steps go to `progress`.
pub async fn ensure_dockerfile(
    engine: &Engine,
    dockerfile: &Path,
    progress: Progress<'_>,
) -> Result<String, DockerError> {
    let dir = dockerfile.parent().unwrap_or(Path::new(".")).to_path_buf();
    let file_name = dockerfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Dockerfile".to_owned());
    let text = std::fs::read_to_string(dockerfile)
        .map_err(DockerError::io(format!("read {}", dockerfile.display())))?;
    let (files, tar) = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || context(&dir)
    })
    .await
    .map_err(|e| DockerError::Invalid(format!("build context: {e}")))??;
    let hash = recipe(&files.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let image = format!("fivehundred/lab-{}:{}", repo_part(&dir), &hash[..16]);
    if current(engine, &image, &hash).await?.is_some() {
        progress(&format!(
            "using {image} (built from {} before)",
            dockerfile.display()
        ));
        return Ok(image);
    }
    for from in from_images(&text) {
        if from == base_image() {
            ensure_base(engine, progress).await?;
        } else {
            require(engine, &from).await.map_err(|_| DockerError::Build {
                image: image.clone(),
                message: format!(
                    "{} starts FROM {from}, which is not in the engine; fivehundred never pulls an image: build or load it first (the project's own base is {})",
                    dockerfile.display(),
                    base_image()
                ),
            })?;
        }
    }
    let _lock = build_lock().await?;
    if current(engine, &image, &hash).await?.is_some() {
        return Ok(image);
    }
    progress(&format!("building {image} from {}", dockerfile.display()));
    let started = std::time::Instant::now();
    let options = BuildImageOptions {
        dockerfile: file_name,
        t: Some(image.clone()),
        rm: true,
        forcerm: true,
        pull: None,
        labels: Some(HashMap::from([
            (OWNER_LABEL.to_owned(), OWNER.to_owned()),
            (RECIPE_LABEL.to_owned(), hash.clone()),
        ])),
        ..Default::default()
    };
    let last = stream_build(engine, options, tar, &image, progress).await?;
    if current(engine, &image, &hash).await?.is_none() {
        return Err(DockerError::Build {
            image,
            message: format!("the build ended without the image (last step: {last})"),
        });
    }
    progress(&format!(
        "built {image} in {}s",
        started.elapsed().as_secs()
    ));
    Ok(image)
}

/// The images a Dockerfile's stages start from, leaving out `scratch` and earlier stages
/// (`FROM build AS run`), and any written with a build argument (`FROM ${BASE}`), which the
/// engine resolves.
fn from_images(dockerfile: &str) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for line in dockerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
        {
            continue;
        }
        let rest: Vec<&str> = words[1..]
            .iter()
            .copied()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let Some(image) = rest.first() else { continue };
        if let [_, as_, name] = rest.as_slice()
            && as_.eq_ignore_ascii_case("AS")
        {
            stages.push(name.to_ascii_lowercase());
        }
        let lower = image.to_ascii_lowercase();
        if lower == "scratch" || image.contains('$') || stages[..].contains(&lower) {
            continue;
        }
        if !images.contains(&image.to_string()) {
            images.push(image.to_string());
        }
    }
    images
}

/// The build context: every file under `dir` (links to files are read, links to directories
/// are not followed) as a tar, and the parts its hash is made of (each file's path, mode and
/// content, in path order).
fn context(dir: &Path) -> Result<(Vec<Vec<u8>>, Vec<u8>), DockerError> {
    use std::os::unix::fs::PermissionsExt;
    let mut paths = Vec::new();
    walk(dir, dir, &mut paths)?;
    paths.sort();
    let mut parts = Vec::new();
    let mut total = 0u64;
    let mut builder = tar::Builder::new(Vec::new());
    for rel in paths {
        let path = dir.join(&rel);
        let bytes =
            std::fs::read(&path).map_err(DockerError::io(format!("read {}", path.display())))?;
        total += bytes.len() as u64;
        if total > MAX_CONTEXT {
            return Err(DockerError::Invalid(format!(
                "the build context {} holds more than 2 GiB: keep only what the Dockerfile copies in its directory",
                dir.display()
            )));
        }
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        let name = rel.to_string_lossy().into_owned();
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, &name, bytes.as_slice())
            .map_err(DockerError::io("make the build context"))?;
        parts.push(name.into_bytes());
        parts.push(mode.to_le_bytes().to_vec());
        parts.push(bytes);
    }
    let tar = builder
        .into_inner()
        .map_err(DockerError::io("make the build context"))?;
    Ok((parts, tar))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DockerError> {
    let entries =
        std::fs::read_dir(dir).map_err(DockerError::io(format!("read {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(DockerError::io(format!("read {}", dir.display())))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(DockerError::io(format!("inspect {}", path.display())))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// The image repository part for a directory: its name in lowercase letters, digits and `-`.
fn repo_part(dir: &Path) -> String {
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "service".to_owned()
    } else {
        name.chars().take(48).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_follow_the_images_cmd_and_its_entrypoint_stays() {
        let extra = args(&["--protections", "all,-stale-cache"]);
        // ENTRYPOINT ["/usr/local/bin/target-app"], no CMD: the arguments are the command.
        let entry_only = ImageCommand {
            entrypoint: args(&["/usr/local/bin/target-app"]),
            cmd: vec![],
        };
        assert_eq!(entry_only.appended(&extra).unwrap(), extra);
        // ENTRYPOINT and CMD: the CMD's arguments are kept, ours come after.
        let both = ImageCommand {
            entrypoint: args(&["/app"]),
            cmd: args(&["--listen", "0.0.0.0:8080"]),
        };
        assert_eq!(
            both.appended(&extra).unwrap(),
            args(&[
                "--listen",
                "0.0.0.0:8080",
                "--protections",
                "all,-stale-cache"
            ])
        );
        // CMD only (exec form): the program and its arguments, then ours.
        let cmd_only = ImageCommand {
            entrypoint: vec![],
            cmd: args(&["python3", "-m", "http.server"]),
        };
        assert_eq!(
            cmd_only.appended(&args(&["9000"])).unwrap(),
            args(&["python3", "-m", "http.server", "9000"])
        );
    }

    #[test]
    fn arguments_are_refused_where_they_could_not_reach_a_program() {
        let extra = args(&["--flag"]);
        let none = ImageCommand::default();
        assert!(
            none.appended(&extra)
                .unwrap_err()
                .contains("neither ENTRYPOINT nor CMD")
        );
        let shell_cmd = ImageCommand {
            entrypoint: vec![],
            cmd: args(&["/bin/sh", "-c", "exec app --x"]),
        };
        let e = shell_cmd.appended(&extra).unwrap_err();
        assert!(e.contains("shell form of CMD"), "{e}");
        assert!(e.contains("exec app --x"), "{e}");
        let shell_entry = ImageCommand {
            entrypoint: args(&["/bin/bash", "-c", "app"]),
            cmd: vec![],
        };
        let e = shell_entry.appended(&extra).unwrap_err();
        assert!(e.contains("shell form of ENTRYPOINT"), "{e}");
        // An exec-form ENTRYPOINT that is a shell script runs the script, not `-c`: allowed.
        let script = ImageCommand {
            entrypoint: args(&["/bin/sh", "/entrypoint.sh"]),
            cmd: vec![],
        };
        assert_eq!(
            script.appended(&extra).unwrap(),
            extra,
            "an entrypoint script takes the arguments"
        );
    }

    #[test]
    fn from_lines_name_the_images_to_check_but_not_stages_scratch_or_arguments() {
        let text = "ARG BASE\nFROM fivehundred/debian:bookworm AS build\nRUN true\nFROM --platform=linux/amd64 build AS run\nFROM scratch\nfrom ${BASE}\nFROM other:1\n";
        assert_eq!(
            from_images(text),
            vec![
                "fivehundred/debian:bookworm".to_owned(),
                "other:1".to_owned()
            ]
        );
    }

    #[test]
    fn the_context_hash_follows_the_files_and_the_tag_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("My App");
        std::fs::create_dir_all(sub.join("bin")).unwrap();
        std::fs::write(sub.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(sub.join("bin/run"), "a").unwrap();
        let hash = |d: &Path| {
            let (parts, _) = context(d).unwrap();
            recipe(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>())
        };
        let first = hash(&sub);
        assert_eq!(first, hash(&sub));
        std::fs::write(sub.join("bin/run"), "b").unwrap();
        assert_ne!(first, hash(&sub));
        let (_, tar) = context(&sub).unwrap();
        let mut names: Vec<String> = tar::Archive::new(tar.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, vec!["Dockerfile", "bin/run"]);
        assert_eq!(repo_part(&sub), "my-app");
    }
}
