//! The container backend against the real Docker engine: images built from Debian's packages,
//! PostgreSQL and target-app as containers, each container fault and its revert, and cleanup by
//! label. The first test to run builds the images (a few minutes, one build at a time on a lock
//! file); the rest reuse them. Each test looks only at its own run's labels, so the nextest group
//! they form runs two at a time (`.config/nextest.toml`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use fivehundred::docker::cleanup::{list_by_label, remove_by_label, runs_present};
use fivehundred::docker::faults::{ContainerFault, inject};
use fivehundred::docker::image::{base_image, ensure_base, ensure_postgres, ensure_service};
use fivehundred::docker::labels::{OWNER, OWNER_LABEL, RECIPE_LABEL, RUN_LABEL};
use fivehundred::docker::postgres::PgContainer;
use fivehundred::docker::{Container, ContainerSpec, Engine, LabNetwork, RunId};
use sqlx::Connection;

fn progress(line: &str) {
    eprintln!("{line}");
}

async fn engine() -> Result<Engine> {
    Engine::connect()
        .await
        .context("these tests need a Docker engine")
}

/// Removes what a test's run made, however the test ends (a failed assertion included).
struct RunGuard(RunId);

impl RunGuard {
    fn new() -> RunGuard {
        RunGuard(RunId::generate())
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let run = self.0.clone();
        // Drop cannot await, and the test's runtime may be the one dropping us: a thread of its
        // own with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let engine = Engine::connect().await?;
                remove_by_label(&engine, &run).await?;
                anyhow::Ok(())
            })
        })
        .join();
    }
}

/// A lab: a network and PostgreSQL on it.
async fn lab(engine: &Engine, run: &RunId) -> Result<(LabNetwork, PgContainer)> {
    let image = ensure_postgres(engine, &progress).await?;
    let network = LabNetwork::create(engine, run, "lab").await?;
    let pg = PgContainer::start(engine, run, &network, &image).await?;
    Ok((network, pg))
}

/// A shell on the lab network, to look at it from a container's side.
async fn shell(engine: &Engine, run: &RunId, network: &LabNetwork) -> Result<Container> {
    let base = ensure_base(engine, &progress).await?;
    let spec = ContainerSpec::new("shell", &base)
        .cmd(["sleep", "infinity"])
        .network(network, &["shell"]);
    Ok(Container::start(engine, run, &spec).await?)
}

async fn select_one(url: &str, timeout: Duration) -> Result<i32> {
    tokio::time::timeout(timeout, async {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        anyhow::Ok(one)
    })
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))?
}

/// `docker` (the engine's own client) with `args`, its stdout.
fn docker_cli(args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("docker").args(args).output()?;
    ensure!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn the_engine_is_found_and_answers_at_a_version_it_speaks() -> Result<()> {
    let engine = engine().await?;
    let (version, api) = engine.version();
    ensure!(
        !version.is_empty() && api.starts_with("1."),
        "{version} {api}"
    );
    engine.api().ping().await?;
    Ok(())
}

/// Runs this test binary again as `nobody`, who may not use the socket: the child's test prints
/// the error it got, and the parent checks it names the missing permission in one line.
#[tokio::test]
async fn a_user_without_permission_on_the_socket_is_told_so_in_one_line() -> Result<()> {
    const CHILD: &str = "FIVEHUNDRED_DOCKER_PROBE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let err = Engine::connect()
            .await
            .err()
            .context("nobody reached the engine")?;
        println!("PROBE: {err}");
        return Ok(());
    }
    ensure!(
        nix::unistd::geteuid().is_root(),
        "this test needs root, to run its child as nobody"
    );
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(&exe)
        .args([
            "--exact",
            "a_user_without_permission_on_the_socket_is_told_so_in_one_line",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .context("run setpriv (util-linux)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PROBE: "))
        .with_context(|| {
            format!(
                "the child printed no probe: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    ensure!(
        line.contains("no permission on the Docker socket"),
        "{line}"
    );
    ensure!(line.contains("docker` group"), "{line}");
    Ok(())
}

#[tokio::test]
async fn images_are_built_once_then_reused_while_their_recipe_holds() -> Result<()> {
    let engine = engine().await?;
    // The first call may build (minutes on a fresh machine); the second must not.
    let started = Instant::now();
    let image = ensure_postgres(&engine, &progress).await?;
    eprintln!("ensure_postgres took {:?}", started.elapsed());
    let lines = std::sync::Mutex::new(Vec::<String>::new());
    let record = |l: &str| lines.lock().unwrap().push(l.to_owned());
    let started = Instant::now();
    let again = ensure_postgres(&engine, &record).await?;
    ensure!(again == image);
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "a cached image took {:?}",
        started.elapsed()
    );
    let lines = lines.into_inner().unwrap();
    ensure!(lines.is_empty(), "a cached image printed {lines:?}");
    for name in [image.as_str(), &base_image()] {
        let inspected = engine.api().inspect_image(name).await?;
        let labels = inspected.config.and_then(|c| c.labels).unwrap_or_default();
        ensure!(
            labels.get(OWNER_LABEL).map(String::as_str) == Some(OWNER),
            "{name}: {labels:?}"
        );
        ensure!(labels.contains_key(RECIPE_LABEL), "{name}: {labels:?}");
    }
    Ok(())
}

/// A service image is rebuilt when its binary changes, the image it replaces is removed, and the
/// new one is reused.
#[tokio::test]
async fn a_service_image_is_rebuilt_when_its_binary_changes_and_reused_after() -> Result<()> {
    let engine = engine().await?;
    let name = format!("test-{}", RunId::generate());
    let dir = tempfile::tempdir()?;
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::write(&first, b"#!/bin/sh\necho first\n")?;
    std::fs::write(&second, b"#!/bin/sh\necho second\n")?;
    let image = ensure_service(&engine, &name, &first, &progress).await?;
    let first_id = engine.api().inspect_image(&image).await?.id;
    let lines = std::sync::Mutex::new(Vec::<String>::new());
    let record = |l: &str| lines.lock().unwrap().push(l.to_owned());
    let outcome = async {
        ensure_service(&engine, &name, &second, &record).await?;
        let second_id = engine.api().inspect_image(&image).await?.id;
        ensure!(second_id != first_id, "the changed binary was not built");
        ensure!(
            lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.starts_with("building")),
            "no progress for the rebuild"
        );
        let old = engine
            .api()
            .inspect_image(first_id.as_deref().unwrap_or_default())
            .await;
        ensure!(old.is_err(), "the replaced image is still there");
        lines.lock().unwrap().clear();
        ensure_service(&engine, &name, &second, &record).await?;
        ensure!(engine.api().inspect_image(&image).await?.id == second_id);
        ensure!(
            lines.lock().unwrap().is_empty(),
            "rebuilt an unchanged image"
        );
        anyhow::Ok(())
    }
    .await;
    engine
        .api()
        .remove_image(
            &image,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await?;
    outcome
}

#[tokio::test]
async fn postgres_in_a_container_answers_sqlx_on_loopback_with_its_password_only() -> Result<()> {
    let engine = engine().await?;
    let run = RunGuard::new();
    ensure_postgres(&engine, &progress).await?;
    let started = Instant::now();
    let (_network, pg) = lab(&engine, &run.0).await?;
    ensure!(select_one(&pg.url(), Duration::from_secs(10)).await? == 1);
    eprintln!(
        "network + PostgreSQL container answering in {:?}",
        started.elapsed()
    );
    let wrong = format!(
        "postgres://postgres:wrong@127.0.0.1:{}/postgres",
        pg.host_port()
    );
    let refused = select_one(&wrong, Duration::from_secs(10)).await;
    ensure!(
        format!("{refused:?}").contains("password authentication failed"),
        "{refused:?}"
    );
    // Published on loopback only.
    let inspected = engine
        .api()
        .inspect_container(&pg.container.id, None)
        .await?;
    let bindings = inspected
        .host_config
        .and_then(|h| h.port_bindings)
        .unwrap_or_default();
    let hosts: Vec<_> = bindings
        .values()
        .flatten()
        .flatten()
        .map(|b| b.host_ip.clone().unwrap_or_default())
        .collect();
    ensure!(hosts == ["127.0.0.1"], "{hosts:?}");
    Ok(())
}

/// target-app's binary in an image of its own, its database reached through a proxy on the host
/// at `host.docker.internal`, its port published: `/readyz` from the host says the database
/// passes.
#[tokio::test]
async fn target_app_in_a_container_reaches_its_database_through_a_proxy_on_the_host() -> Result<()>
{
    let engine = engine().await?;
    let run = RunGuard::new();
    let (network, pg) = lab(&engine, &run.0).await?;
    let binary =
        fivehundred::target::locate_target_app(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let image = ensure_service(&engine, "target-app", &binary, &progress).await?;
    // The proxy listens on the host's address on the lab network, not on every interface.
    let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, pg.host_port()));
    let proxy =
        fivehundred::proxy::Proxy::start(SocketAddr::from((network.gateway, 0)), upstream, 1)
            .await?;
    let url = pg.url_in_network().replace(
        "@postgres:5432",
        &format!("@host.docker.internal:{}", proxy.local_addr().port()),
    );
    let spec = ContainerSpec::new("target", &image)
        .env("DATABASE_URL", &url)
        .env("APP_LISTEN", "0.0.0.0:8080")
        .env("APP_ADMIN_LISTEN", "0.0.0.0:9090")
        .env("APP_DATA_DIR", "/var/lib/target-app")
        // Nothing serves payments here: only the database is looked at.
        .env("APP_PAYMENTS_URL", "http://host.docker.internal:9/")
        .port(8080)
        .network(&network, &["target"]);
    let target = Container::start(&engine, &run.0, &spec).await?;
    target
        .wait_for_log("\"listening\"", 0, Duration::from_secs(60))
        .await?;
    let port = target.host_port(8080).context("no published port")?;
    let readyz = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await?
        .json::<serde_json::Value>()
        .await?;
    ensure!(readyz["checks"]["database"]["status"] == "pass", "{readyz}");
    ensure!(proxy.stats().accepted > 0, "nothing went through the proxy");
    Ok(())
}

#[tokio::test]
async fn a_paused_postgres_stalls_its_clients_and_answers_after_unpause() -> Result<()> {
    let engine = engine().await?;
    let run = RunGuard::new();
    let (_network, pg) = lab(&engine, &run.0).await?;
    let injected = inject(&engine, &pg.container.id, &ContainerFault::Pause).await?;
    ensure!(pg.container.state().await?.paused == Some(true));
    // Not refused: the connection is accepted and then nothing answers.
    let stalled = select_one(&pg.url(), Duration::from_secs(3)).await;
    ensure!(
        format!("{stalled:?}").contains("no answer within"),
        "{stalled:?}"
    );
    injected.revert(&engine).await?;
    injected.revert(&engine).await?; // a second revert does nothing more
    ensure!(select_one(&pg.url(), Duration::from_secs(10)).await? == 1);
    Ok(())
}

#[tokio::test]
async fn a_killed_or_stopped_postgres_is_down_until_its_revert_starts_it_on_the_same_port()
-> Result<()> {
    let engine = engine().await?;
    let run = RunGuard::new();
    let (_network, pg) = lab(&engine, &run.0).await?;
    for fault in [
        ContainerFault::Kill,
        ContainerFault::Stop { timeout_secs: 5 },
    ] {
        let started = pg.times_ready().await?;
        let injected = inject(&engine, &pg.container.id, &fault).await?;
        let state = pg.container.state().await?;
        ensure!(state.running == Some(false), "{fault:?}: {state:?}");
        if fault == ContainerFault::Kill {
            ensure!(state.exit_code == Some(137), "{state:?}");
        }
        let down = select_one(&pg.url(), Duration::from_secs(5)).await;
        ensure!(down.is_err(), "{fault:?}: answered while down");
        injected.revert(&engine).await?;
        pg.wait_ready(started).await?;
        ensure!(
            select_one(&pg.url(), Duration::from_secs(10)).await? == 1,
            "{fault:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_disconnected_container_cannot_reach_the_database_until_reconnected() -> Result<()> {
    let engine = engine().await?;
    let run = RunGuard::new();
    let (network, _pg) = lab(&engine, &run.0).await?;
    let client = shell(&engine, &run.0, &network).await?;
    let reach = [
        "timeout",
        "3",
        "bash",
        "-c",
        "exec 3<>/dev/tcp/postgres/5432",
    ];
    let before = client.exec(&reach).await?;
    ensure!(before.exit_code == 0, "before the cut: {before:?}");
    let fault = ContainerFault::Disconnect {
        network: network.name.clone(),
    };
    let injected = inject(&engine, &client.id, &fault).await?;
    let during = client.exec(&reach).await?;
    ensure!(
        during.exit_code != 0,
        "reached the database through the cut"
    );
    ensure!(client.ip_on(&network).await?.is_none());
    injected.revert(&engine).await?;
    let after = client.exec(&reach).await?;
    ensure!(after.exit_code == 0, "after the revert: {after:?}");
    Ok(())
}

#[tokio::test]
async fn a_lowered_memory_limit_kills_what_no_longer_fits_until_it_is_restored() -> Result<()> {
    let engine = engine().await?;
    let run = RunGuard::new();
    let network = LabNetwork::create(&engine, &run.0, "lab").await?;
    let c = shell(&engine, &run.0, &network).await?;
    let limit = ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"];
    // `tail` keeps the whole last line, here 100 MB without a newline, in memory.
    let hog = [
        "sh",
        "-c",
        "head -c 100000000 /dev/zero | tail -n 1 >/dev/null",
    ];
    let injected = inject(
        &engine,
        &c.id,
        &ContainerFault::MemoryLimit { bytes: 32 << 20 },
    )
    .await?;
    ensure!(c.exec(&limit).await?.output.trim() == (32 << 20).to_string());
    let during = c.exec(&hog).await?;
    ensure!(
        during.exit_code == 137,
        "not OOM-killed at 32 MiB: {during:?}"
    );
    injected.revert(&engine).await?;
    let restored = c.exec(&limit).await?.output.trim().to_owned();
    ensure!(
        restored == fivehundred::docker::container::DEFAULT_MEMORY.to_string(),
        "{restored}"
    );
    let after = c.exec(&hog).await?;
    ensure!(after.exit_code == 0, "after the revert: {after:?}");
    Ok(())
}

#[tokio::test]
async fn a_cpu_quota_throttles_the_container_until_it_is_lifted() -> Result<()> {
    let engine = engine().await?;
    let run = RunGuard::new();
    let network = LabNetwork::create(&engine, &run.0, "lab").await?;
    let c = shell(&engine, &run.0, &network).await?;
    // The cgroup's quota, how often it had been throttled, a busy second, and the count again.
    // The count is compared within one exec: the shell that reads it can itself be throttled
    // just after a read, so counts from two execs are not comparable.
    let busy = [
        "sh",
        "-c",
        "stat=/sys/fs/cgroup/cpu/cpu.stat; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; \
         grep nr_throttled $stat | cut -d' ' -f2; timeout 1 sh -c 'while :; do :; done'; \
         grep nr_throttled $stat | cut -d' ' -f2",
    ];
    let read = |out: String| -> Result<(i64, u64)> {
        let mut lines = out.lines();
        let quota = lines.next().context("no quota")?.trim().parse()?;
        let before: u64 = lines.next().context("no throttle count")?.trim().parse()?;
        let after: u64 = lines.next().context("no second count")?.trim().parse()?;
        Ok((quota, after.saturating_sub(before)))
    };
    let fault = ContainerFault::CpuQuota {
        period_us: 100_000,
        quota_us: 10_000,
    };
    let injected = inject(&engine, &c.id, &fault).await?;
    let (quota, throttled) = read(c.exec(&busy).await?.output)?;
    ensure!(quota == 10_000, "{quota}");
    ensure!(
        throttled > 0,
        "a busy second at 10% of a CPU was never throttled"
    );
    injected.revert(&engine).await?;
    let (quota, after) = read(c.exec(&busy).await?.output)?;
    ensure!(quota == -1, "quota after the revert: {quota}");
    ensure!(
        after == 0,
        "a busy second after the revert was throttled {after} times"
    );
    Ok(())
}

/// Every container, network and volume a run makes carries its labels, and `remove_by_label`
/// leaves nothing of the run, whatever state its containers were in.
#[tokio::test]
async fn everything_a_run_makes_carries_its_labels_and_remove_by_label_leaves_nothing() -> Result<()>
{
    let engine = engine().await?;
    let run = RunGuard::new();
    let id = run.0.clone();
    let (network, pg) = lab(&engine, &id).await?;
    let paused = shell(&engine, &id, &network).await?;
    inject(&engine, &paused.id, &ContainerFault::Pause).await?;
    inject(&engine, &pg.container.id, &ContainerFault::Kill).await?;
    let volume = engine
        .api()
        .create_volume(bollard::models::VolumeCreateRequest {
            name: Some(id.name("data")),
            labels: Some(id.labels()),
            ..Default::default()
        })
        .await?;

    let by_name = format!("name=fivehundred-{id}-");
    let label = format!("label={RUN_LABEL}={id}");
    let names = docker_cli(&["ps", "-a", "--filter", &by_name, "--format", "{{.Names}}"])?;
    ensure!(names.lines().count() == 2, "{names}");
    for name in names.lines() {
        let labels = docker_cli(&["inspect", "-f", "{{json .Config.Labels}}", name])?;
        let labels: serde_json::Value = serde_json::from_str(&labels)?;
        ensure!(labels[RUN_LABEL] == id.as_str(), "{name}: {labels}");
        ensure!(labels[OWNER_LABEL] == OWNER, "{name}: {labels}");
    }
    let networks = docker_cli(&["network", "ls", "--filter", &label, "--format", "{{.Name}}"])?;
    ensure!(networks.trim() == network.name, "{networks}");
    let volumes = docker_cli(&["volume", "ls", "--filter", &label, "--format", "{{.Name}}"])?;
    ensure!(volumes.trim() == volume.name, "{volumes}");

    ensure!(runs_present(&engine).await?.contains(&id));
    let removed = remove_by_label(&engine, &id).await?;
    ensure!(removed.containers.len() == 2 && removed.networks.len() == 1);
    ensure!(removed.volumes.len() == 1, "{removed:?}");
    for args in [
        vec!["ps", "-a", "-q", "--filter", &label],
        vec!["ps", "-a", "-q", "--filter", &by_name],
        vec!["network", "ls", "-q", "--filter", &label],
        vec!["volume", "ls", "-q", "--filter", &label],
    ] {
        let left = docker_cli(&args)?;
        ensure!(left.trim().is_empty(), "docker {args:?} still lists {left}");
    }
    ensure!(list_by_label(&engine, &id).await?.is_empty());
    ensure!(!runs_present(&engine).await?.contains(&id));
    // A second removal finds nothing and is not an error.
    if !remove_by_label(&engine, &id).await?.is_empty() {
        bail!("a second removal found something");
    }
    Ok(())
}
