//! A lab-file service's image: `image = "name:tag"`, which must already be in the engine, or
//! `build = "Dockerfile"`, built with the Dockerfile's directory as the context and tagged
//! `fivehundred/lab-<directory>:<hash of the context>`, so that a second run with the same files
//! reuses it. Nothing is pulled: every `FROM` must name an image the engine has (or an earlier
//! stage), and `fivehundred/debian:bookworm`, the project's own base, is built when missing.

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
