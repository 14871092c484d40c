//! The backend's images, built on this machine from Debian's packages (no registry is needed or
//! used) the first time they are needed, then reused while their recipe is unchanged:
//!
//! - `fivehundred/debian:bookworm`: `debootstrap --variant=minbase` from deb.debian.org,
//!   imported into the engine (about 1.5 minutes on a 2-core machine);
//! - `fivehundred/postgres:15`: PostgreSQL 15 from Debian's packages on that base, its cluster
//!   made at build time (about 2 minutes);
//! - `fivehundred/<name>:latest`: a service binary of this machine on that base (seconds; the
//!   base is Debian bookworm like the machine, so the binary's glibc matches).
//!
//! Each image carries the hash of its recipe in the `fivehundred.recipe` label; an image whose
//! label differs from the current recipe is rebuilt, and an image built on a rebuilt base has a
//! new recipe too. Builds are serialised between processes by a lock file.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::Stdio;

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions, RemoveImageOptions};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::labels::{OWNER, OWNER_LABEL, RECIPE_LABEL};
use super::{DockerError, Engine, Progress, is_not_found};

/// The Debian release of the base image, the same as the machine's so that binaries built here
/// run in it.
pub const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// Bumped when the way an image is made changes in a way its recipe text does not show.
const RECIPE_VERSION: &str = "1";

pub const BASE_REPO: &str = "fivehundred/debian";
pub const POSTGRES_IMAGE: &str = "fivehundred/postgres:15";

const POSTGRES_DOCKERFILE: &str = include_str!("recipes/postgres.Dockerfile");
const POSTGRES_ENTRYPOINT: &str = include_str!("recipes/postgres-entrypoint.sh");

/// The base image's name: `fivehundred/debian:bookworm`.
pub fn base_image() -> String {
    format!("{BASE_REPO}:{SUITE}")
}

pub(super) fn recipe(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hex::encode(&hash.finalize()[..16])
}

fn base_recipe() -> String {
    let variant = b"debootstrap --variant=minbase";
    recipe(&[
        RECIPE_VERSION.as_bytes(),
        SUITE.as_bytes(),
        MIRROR.as_bytes(),
        variant,
    ])
}

fn postgres_recipe() -> String {
    recipe(&[
        base_recipe().as_bytes(),
        POSTGRES_DOCKERFILE.as_bytes(),
        POSTGRES_ENTRYPOINT.as_bytes(),
    ])
}

/// The image's id if it exists and was built from `recipe`.
pub(super) async fn current(
    engine: &Engine,
    image: &str,
    recipe: &str,
) -> Result<Option<String>, DockerError> {
    match engine.api().inspect_image(image).await {
        Ok(found) => {
            let label = found
                .config
                .and_then(|c| c.labels)
                .and_then(|mut l| l.remove(RECIPE_LABEL));
            Ok((label.as_deref() == Some(recipe)).then(|| found.id.unwrap_or_default()))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(DockerError::api(format!("inspect image {image}"))(e)),
    }
}

/// The id an image had before a rebuild, to remove it once the new one holds the tag.
async fn previous_id(engine: &Engine, image: &str) -> Option<String> {
    engine.api().inspect_image(image).await.ok()?.id
}

async fn remove_replaced(engine: &Engine, old: Option<String>, image: &str) {
    let Some(old) = old else { return };
    let now = previous_id(engine, image).await;
    if now.as_deref() != Some(old.as_str()) {
        // Best effort: an image still used by a container or as a parent stays.
        let _ = engine
            .api()
            .remove_image(&old, None::<RemoveImageOptions>, None)
            .await;
    }
}

/// Holds the build lock of this machine until dropped.
pub(super) struct BuildLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

pub(super) async fn build_lock() -> Result<BuildLock, DockerError> {
    tokio::task::spawn_blocking(|| {
        let path = std::env::temp_dir().join("fivehundred-images.lock");
        // The temporary directory is shared: never follow a link someone put at this name.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .map_err(DockerError::io(format!("open {}", path.display())))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map(BuildLock)
            .map_err(|(_, e)| DockerError::io("take the image build lock")(e.into()))
    })
    .await
    .map_err(|e| DockerError::Invalid(format!("image build lock: {e}")))?
}

/// Makes sure `fivehundred/debian:bookworm` exists and is current; builds it if not.
pub async fn ensure_base(engine: &Engine, progress: Progress<'_>) -> Result<String, DockerError> {
    let image = base_image();
    let recipe = base_recipe();
    if current(engine, &image, &recipe).await?.is_some() {
        return Ok(image);
    }
    let _lock = build_lock().await?;
    // Another process may have built it while this one waited for the lock.
    if current(engine, &image, &recipe).await?.is_some() {
        return Ok(image);
    }
    progress(&format!(
        "building {image} from Debian's packages with debootstrap (first use; about 2 minutes)"
    ));
    let old = previous_id(engine, &image).await;
    let started = std::time::Instant::now();
    build_base(engine, &image, &recipe, progress).await?;
    remove_replaced(engine, old, &image).await;
    progress(&format!(
        "built {image} in {}s",
        started.elapsed().as_secs()
    ));
    Ok(image)
}

async fn build_base(
    engine: &Engine,
    image: &str,
    recipe: &str,
    progress: Progress<'_>,
) -> Result<(), DockerError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DockerError::Build {
            image: image.to_owned(),
            message: "debootstrap needs root; build the image once as root".to_owned(),
        });
    }
    let debootstrap = crate::install::Need {
        binary: "debootstrap",
        aliases: &[],
        package: "debootstrap",
    };
    tokio::task::spawn_blocking(move || crate::install::ensure(&[debootstrap]))
        .await
        .map_err(|e| DockerError::Invalid(e.to_string()))?
        .map_err(|message| DockerError::Build {
            image: image.to_owned(),
            message,
        })?;
    // On disk rather than in /tmp, which may be memory: the tree is about 200 MB.
    let dir = tempfile::Builder::new()
        .prefix("fivehundred-rootfs-")
        .tempdir_in("/var/tmp")
        .map_err(DockerError::io(
            "make a directory for debootstrap in /var/tmp",
        ))?;
    let root = dir.path().join("root");
    let mut cmd = tokio::process::Command::new("debootstrap");
    cmd.arg("--variant=minbase")
        .arg(SUITE)
        .arg(&root)
        .arg(MIRROR);
    run_with_progress(cmd, image, "debootstrap", progress).await?;
    trim_rootfs(&root).map_err(DockerError::io("trim the debootstrap tree"))?;
    progress(&format!("importing the tree into the engine as {image}"));
    import(engine, &root, image, recipe).await
}

/// Runs a build step, passing each line it prints to `progress`.
async fn run_with_progress(
    mut cmd: tokio::process::Command,
    image: &str,
    step: &str,
    progress: Progress<'_>,
) -> Result<(), DockerError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(DockerError::io(format!("start {step}")))?;
    let stdout = child.stdout.take().map(BufReader::new);
    let stderr = child.stderr.take().map(BufReader::new);
    let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
        return Err(DockerError::Invalid(format!("{step}: no output pipes")));
    };
    let mut lines = futures::stream::select(tokio_stream_lines(stdout), tokio_stream_lines(stderr));
    let mut last = Vec::new();
    while let Some(line) = lines.next().await {
        progress(&format!("{step}: {line}"));
        last.push(line);
        if last.len() > 5 {
            last.remove(0);
        }
    }
    let status = child
        .wait()
        .await
        .map_err(DockerError::io(format!("wait for {step}")))?;
    if status.success() {
        return Ok(());
    }
    Err(DockerError::Build {
        image: image.to_owned(),
        message: format!("{step} failed ({status}): {}", last.join(" | ")),
    })
}

fn tokio_stream_lines<R: tokio::io::AsyncBufRead + Unpin + Send + 'static>(
    reader: R,
) -> impl futures::Stream<Item = String> + Unpin + Send {
    Box::pin(futures::stream::unfold(
        reader.lines(),
        |mut lines| async move {
            match lines.next_line().await {
                Ok(Some(line)) => Some((line, lines)),
                _ => None,
            }
        },
    ))
}

/// Drops the downloaded packages and package lists from the tree: about 80 MB the image does
/// not need (an image that installs packages runs `apt-get update` first).
fn trim_rootfs(root: &Path) -> std::io::Result<()> {
    for dir in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "var/cache/apt",
    ] {
        let dir = root.join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            // Files only, and never through a link: the tree is what debootstrap made.
            if entry.file_type()?.is_file() && entry.file_name() != "lock" {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// `docker import`: the tree as a tar stream from `tar` (which keeps owners, modes, links and
/// device nodes as they are) into the engine, with the labels set on the image.
async fn import(
    engine: &Engine,
    root: &Path,
    image: &str,
    recipe: &str,
) -> Result<(), DockerError> {
    let mut tar = tokio::process::Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(root)
        .arg("-c")
        .arg(".")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(DockerError::io("start tar"))?;
    let Some(stdout) = tar.stdout.take() else {
        return Err(DockerError::Invalid("tar: no output pipe".to_owned()));
    };
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(stdout));
    let (repo, tag) = image.split_once(':').unwrap_or((image, "latest"));
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        repo: Some(repo.to_owned()),
        tag: Some(tag.to_owned()),
        changes: vec![
            format!("LABEL {OWNER_LABEL}={OWNER}"),
            format!("LABEL {RECIPE_LABEL}={recipe}"),
            "CMD [\"/bin/bash\"]".to_owned(),
        ],
        ..Default::default()
    };
    let mut stream = engine.api().create_image(Some(options), Some(body), None);
    while let Some(info) = stream.next().await {
        if let Err(e) = info {
            return Err(DockerError::Build {
                image: image.to_owned(),
                message: format!("import: {e}"),
            });
        }
    }
    let out = tar
        .wait_with_output()
        .await
        .map_err(DockerError::io("wait for tar"))?;
    if !out.status.success() {
        return Err(DockerError::Build {
            image: image.to_owned(),
            message: format!(
                "tar failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Makes sure `fivehundred/postgres:15` (and the base under it) exists and is current.
pub async fn ensure_postgres(
    engine: &Engine,
    progress: Progress<'_>,
) -> Result<String, DockerError> {
    let base = ensure_base(engine, progress).await?;
    let context = [
        ContextFile::new("Dockerfile", POSTGRES_DOCKERFILE.as_bytes(), 0o644),
        ContextFile::new(
            "postgres-entrypoint.sh",
            POSTGRES_ENTRYPOINT.as_bytes(),
            0o755,
        ),
    ];
    let image = POSTGRES_IMAGE;
    ensure_built(engine, image, &postgres_recipe(), &base, &context, progress).await?;
    Ok(image.to_owned())
}

/// Makes sure `fivehundred/<name>:latest` holds `binary` on the base image, as its entrypoint
/// `/usr/local/bin/<name>`. `name`: lowercase letters, digits and `-`.
pub async fn ensure_service(
    engine: &Engine,
    name: &str,
    binary: &Path,
    progress: Progress<'_>,
) -> Result<String, DockerError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(DockerError::Invalid(format!(
            "service image name {name:?}: use lowercase letters, digits and `-`"
        )));
    }
    let bytes = tokio::fs::read(binary)
        .await
        .map_err(DockerError::io(format!("read {}", binary.display())))?;
    let base = ensure_base(engine, progress).await?;
    let dockerfile = format!(
        "ARG BASE\nFROM ${{BASE}}\nCOPY service /usr/local/bin/{name}\nENTRYPOINT [\"/usr/local/bin/{name}\"]\n"
    );
    let image = format!("fivehundred/{name}:latest");
    let recipe = recipe(&[base_recipe().as_bytes(), dockerfile.as_bytes(), &bytes]);
    let context = [
        ContextFile::new("Dockerfile", dockerfile.as_bytes(), 0o644),
        ContextFile::new("service", &bytes, 0o755),
    ];
    ensure_built(engine, &image, &recipe, &base, &context, progress).await?;
    Ok(image)
}

struct ContextFile<'a> {
    path: &'a str,
    bytes: &'a [u8],
    mode: u32,
}

impl<'a> ContextFile<'a> {
    fn new(path: &'a str, bytes: &'a [u8], mode: u32) -> Self {
        ContextFile { path, bytes, mode }
    }
}

/// Builds `image` from a Dockerfile context on `base` unless it is current.
async fn ensure_built(
    engine: &Engine,
    image: &str,
    recipe: &str,
    base: &str,
    context: &[ContextFile<'_>],
    progress: Progress<'_>,
) -> Result<(), DockerError> {
    if current(engine, image, recipe).await?.is_some() {
        return Ok(());
    }
    let _lock = build_lock().await?;
    if current(engine, image, recipe).await?.is_some() {
        return Ok(());
    }
    progress(&format!("building {image} on {base}"));
    let tar = context_tar(context).map_err(DockerError::io("make the build context"))?;
    let old = previous_id(engine, image).await;
    let started = std::time::Instant::now();
    let options = BuildImageOptions {
        t: Some(image.to_owned()),
        rm: true,
        forcerm: true,
        buildargs: Some(HashMap::from([("BASE".to_owned(), base.to_owned())])),
        labels: Some(HashMap::from([
            (OWNER_LABEL.to_owned(), OWNER.to_owned()),
            (RECIPE_LABEL.to_owned(), recipe.to_owned()),
        ])),
        ..Default::default()
    };
    let last = stream_build(engine, options, tar, image, progress).await?;
    if current(engine, image, recipe).await?.is_none() {
        return Err(DockerError::Build {
            image: image.to_owned(),
            message: format!("the build ended without the image (last step: {last})"),
        });
    }
    remove_replaced(engine, old, image).await;
    progress(&format!(
        "built {image} in {}s",
        started.elapsed().as_secs()
    ));
    Ok(())
}

/// Sends a build to the engine and follows it: each line of its output as progress, the engine's
/// error (with the last step it printed) as the error. Returns the last line it printed.
pub(super) async fn stream_build(
    engine: &Engine,
    options: BuildImageOptions,
    tar: Vec<u8>,
    image: &str,
    progress: Progress<'_>,
) -> Result<String, DockerError> {
    let mut stream = engine
        .api()
        .build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut last = String::new();
    while let Some(info) = stream.next().await {
        let info = info.map_err(|e| DockerError::Build {
            image: image.to_owned(),
            message: format!("{e} (last step: {last})"),
        })?;
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(DockerError::Build {
                image: image.to_owned(),
                message: detail,
            });
        }
        for line in info.stream.iter().flat_map(|s| s.lines()) {
            let line = line.trim_end();
            if !line.is_empty() {
                progress(&format!("build {image}: {line}"));
                line.clone_into(&mut last);
            }
        }
    }
    Ok(last)
}

fn context_tar(files: &[ContextFile<'_>]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.bytes.len() as u64);
        header.set_mode(file.mode);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, file.path, file.bytes)?;
    }
    let mut out = builder.into_inner()?;
    out.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_changes_with_any_of_its_parts_and_with_how_they_split() {
        let a = recipe(&[b"ab", b"c"]);
        assert_eq!(a, recipe(&[b"ab", b"c"]));
        assert_ne!(a, recipe(&[b"a", b"bc"]));
        assert_ne!(a, recipe(&[b"ab", b"d"]));
        assert_ne!(postgres_recipe(), base_recipe());
    }

    #[test]
    fn a_build_context_holds_each_file_with_its_mode() {
        let tar = context_tar(&[
            ContextFile::new("Dockerfile", b"FROM x\n", 0o644),
            ContextFile::new("run.sh", b"#!/bin/sh\n", 0o755),
        ])
        .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let modes: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            modes,
            vec![
                ("Dockerfile".to_owned(), 0o644),
                ("run.sh".to_owned(), 0o755)
            ]
        );
    }
}
