//! The container lab's start: PostgreSQL and target-app in containers (`--backend docker` with
//! `examples/target-app-docker`'s lab file) against the same lab file with both on this machine
//! (a local cluster, target-app as a process), measured back to back in each repetition, and
//! where the container lab's time goes, part by part. The images are built (or found) before
//! anything is timed; how long a build took, when one ran, is in the row's note.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fivehundred::docker::Engine;
use fivehundred::journal::Journal;
use fivehundred::lab::{Backend, Lab, LabOptions};
use fivehundred::labfile::{ImageSource, LabFile, Start};
use fivehundred::record::Recorder;

use crate::table::{Better, Row};

const ROW: &str = "lab start in containers";
const MEASURE: &str = "PostgreSQL + proxies + target-app in containers (`--backend docker`, examples/target-app-docker's lab file), ready; images built before";
const GOAL: &str = "within 2 s";
const PEER: &str = "the same lab file on the host (local cluster, target-app as a process)";

/// The row (containers against the host) and one row per part of the container lab's start.
pub async fn rows(reps: usize, program: &Path) -> Vec<Row> {
    let failed = |why: String| vec![Row::new(ROW, MEASURE, "s", Better::Lower, GOAL).note(why)];
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return failed(e.to_string()),
    };
    let (in_containers, on_host) = match lab_files(dir.path(), program) {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let engine = match Engine::connect().await {
        Ok(e) => e,
        Err(e) => return failed(format!("no Docker engine: {e}")),
    };
    let images = match images(&engine, &in_containers).await {
        Ok(note) => note,
        Err(e) => return failed(e),
    };
    let journal = match Journal::create("cargo bench: container lab rows") {
        Ok(j) => j,
        Err(e) => return failed(e.to_string()),
    };
    let (mut containers, mut host) = (Vec::new(), Vec::new());
    let mut container_parts = Parts::default();
    let mut host_parts = Parts::default();
    let mut problems = Vec::new();
    for _ in 0..reps {
        // Back to back, so that both see the machine as it is at that moment; a failed start
        // leaves a gap (NaN) so the pairs stay paired.
        for (lab, backend, into, parts) in [
            (
                &in_containers,
                Backend::Docker,
                &mut containers,
                &mut container_parts,
            ),
            (&on_host, Backend::Process, &mut host, &mut host_parts),
        ] {
            match start(lab, backend, &journal, dir.path()).await {
                Ok((mut started, took)) => {
                    into.push(took);
                    parts.add(started.start_parts());
                    started.stop().await;
                    let _ = std::fs::remove_dir_all(&started.run_dir);
                }
                Err(e) => {
                    into.push(f64::NAN);
                    problems.push(format!("{backend:?}: {e}"));
                }
            }
        }
    }
    journal.finish();
    let main = {
        let r = Row::new(ROW, MEASURE, "s", Better::Lower, GOAL)
            .ours(&containers)
            .peer(PEER, &host);
        let met = r.ours.as_ref().map(|s| s.median <= 2.0);
        Row { met, ..r }
            .note(images)
            .note(format!(
                "where the host's start goes (medians): {}",
                host_parts.describe()
            ))
            .note(problems.join("; "))
    };
    let mut rows = vec![main];
    for (part, samples) in &container_parts.0 {
        rows.push(
            Row::new(
                "lab start in containers, by part",
                part,
                "s",
                Better::Lower,
                "report",
            )
            .ours(samples),
        );
    }
    rows
}

/// Each part's samples, in the order the parts first ran.
#[derive(Default)]
struct Parts(Vec<(&'static str, Vec<f64>)>);

impl Parts {
    fn add(&mut self, parts: &[(&'static str, std::time::Duration)]) {
        for (name, took) in parts {
            match self.0.iter_mut().find(|(n, _)| n == name) {
                Some((_, samples)) => samples.push(took.as_secs_f64()),
                None => self.0.push((name, vec![took.as_secs_f64()])),
            }
        }
    }

    fn describe(&self) -> String {
        self.0
            .iter()
            .filter_map(|(name, samples)| {
                let s = crate::table::Stat::of(samples)?;
                Some(format!("{name} {} s", crate::table::num(s.median)))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The example's lab file in a build context of its own (its Dockerfile and this bench's
/// target-app), and the same file with target-app as a process: `command` in place of `build`
/// and `container_port`. Both are read and checked like any lab file.
fn lab_files(dir: &Path, program: &Path) -> Result<(Arc<LabFile>, Arc<LabFile>), String> {
    let example = crate::tools::workspace().join("examples/target-app-docker");
    let context = dir.join("target-app-docker");
    std::fs::create_dir_all(&context).map_err(|e| e.to_string())?;
    for file in ["fivehundred.toml", "Dockerfile"] {
        std::fs::copy(example.join(file), context.join(file))
            .map_err(|e| format!("cannot copy the example's {file}: {e}"))?;
    }
    std::fs::copy(program, context.join("target-app"))
        .map_err(|e| format!("cannot copy {}: {e}", program.display()))?;
    let text =
        std::fs::read_to_string(context.join("fivehundred.toml")).map_err(|e| e.to_string())?;
    let host_text = text
        .lines()
        .filter(|l| !l.starts_with("container_port"))
        .map(|l| {
            if l.starts_with("build = ") {
                format!("command = [{:?}]", program.display().to_string())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let host_dir = dir.join("host");
    std::fs::create_dir_all(&host_dir).map_err(|e| e.to_string())?;
    std::fs::write(host_dir.join("fivehundred.toml"), host_text).map_err(|e| e.to_string())?;
    let load = |path: PathBuf| {
        fivehundred::labfile::load(&path)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    };
    let in_containers = load(context.join("fivehundred.toml"))?;
    let on_host = load(host_dir.join("fivehundred.toml"))?;
    match (&in_containers.service.start, &on_host.service.start) {
        (Start::Container(_), Start::Command(_)) => Ok((in_containers, on_host)),
        _ => {
            Err("the example's lab file no longer reads as a container service with `build`".into())
        }
    }
}

/// Builds (or finds) PostgreSQL's image and the service's before anything is timed; says which
/// were built and how long each build took.
async fn images(engine: &Engine, lab: &LabFile) -> Result<String, String> {
    let built = Arc::new(Mutex::new(Vec::new()));
    let progress = {
        let built = Arc::clone(&built);
        move |line: &str| {
            if line.starts_with("built ") {
                built
                    .lock()
                    .expect("the list of builds")
                    .push(line.to_string());
            }
        }
    };
    let started = Instant::now();
    fivehundred::docker::image::ensure_postgres(engine, &progress)
        .await
        .map_err(|e| format!("cannot build the PostgreSQL image: {e}"))?;
    let Start::Container(spec) = &lab.service.start else {
        return Err("the example's service is not a container".into());
    };
    if let ImageSource::Build(dockerfile) = &spec.image {
        fivehundred::docker::build::ensure_dockerfile(engine, dockerfile, &progress)
            .await
            .map_err(|e| format!("cannot build the service's image: {e}"))?;
    }
    let builds = built.lock().expect("the list of builds").clone();
    Ok(if builds.is_empty() {
        "the images were built before this run (the first build of all three, Debian's base included, takes minutes: see the README)".to_string()
    } else {
        format!(
            "built first, in {:.0} s: {}",
            started.elapsed().as_secs_f64(),
            builds.join(", ")
        )
    })
}

/// Starts a lab the way `fivehundred run --lab` does; returns it and how long it took.
async fn start(
    lab_file: &Arc<LabFile>,
    backend: Backend,
    journal: &Journal,
    dir: &Path,
) -> Result<(Lab, f64), String> {
    let opts = LabOptions {
        lab_file: Arc::clone(lab_file),
        extra_args: Vec::new(),
        database_url: None,
        backend,
        seed: 1,
    };
    let run_dir = tempfile::Builder::new()
        .prefix("lab-")
        .tempdir_in(dir)
        .map_err(|e| e.to_string())?
        .keep();
    let recorder = Arc::new(Recorder::new(std::time::Instant::now()));
    let started = Instant::now();
    let lab = Lab::start(&opts, run_dir, journal, recorder)
        .await
        .map_err(|e| e.to_string())?;
    Ok((lab, started.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_lab_file_is_the_example_with_target_app_as_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let program = std::path::Path::new("/bin/true");
        let (in_containers, on_host) = super::lab_files(dir.path(), program).unwrap();
        let fivehundred::labfile::Start::Container(spec) = &in_containers.service.start else {
            panic!("the example is a container service");
        };
        assert!(matches!(
            spec.image,
            fivehundred::labfile::ImageSource::Build(_)
        ));
        assert!(
            dir.path().join("target-app-docker/target-app").is_file(),
            "the program is in the build context"
        );
        assert!(matches!(
            on_host.service.start,
            fivehundred::labfile::Start::Command(_)
        ));
        assert_eq!(on_host.program(), program);
        // Everything else is the same file.
        assert_eq!(
            in_containers.deps.keys().collect::<Vec<_>>(),
            on_host.deps.keys().collect::<Vec<_>>()
        );
        assert_eq!(in_containers.requests.len(), on_host.requests.len());
        assert_eq!(
            in_containers.service.ready_within,
            on_host.service.ready_within
        );
    }
}
