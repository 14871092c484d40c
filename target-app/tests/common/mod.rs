//! Test glue: a fresh PostgreSQL per test, a stub payments service, and the app either
//! in-process on port 0 ([`spawn_app`]) or as the real binary with its stdout captured
//! ([`Binary::spawn`]), for what only a process shows: logs, signals, exit codes, and
//! failpoints (which are global to a process, so tests using them get a process of their own).

#![allow(dead_code)] // each test uses part of this module

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use target_app::config::{Args, Config};
use target_app::{App, AppState};
use tokio::task::JoinHandle;

/// Every request a test makes is bounded, so a hang fails the test instead of stalling it.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap()
}

/// A fresh cluster and database, owned by the test.
pub struct Database {
    cluster: Option<pglab::PgCluster>,
    pub url: String,
}

impl Database {
    pub async fn start() -> Database {
        let cluster = pglab::PgCluster::start()
            .await
            .expect("starting PostgreSQL");
        let url = cluster.create_database("shop").await.unwrap();
        Database {
            cluster: Some(cluster),
            url,
        }
    }

    /// A direct connection, for sabotage (locks, renamed columns) and for checking invariants.
    pub async fn connect(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&self.url).await.unwrap()
    }

    pub async fn execute(&self, sql: &str) {
        let mut conn = self.connect().await;
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let mut conn = self.connect().await;
        sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
    }

    /// Stops the server: from now on, connections are refused.
    pub async fn stop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            tokio::task::spawn_blocking(move || cluster.stop())
                .await
                .unwrap();
        }
    }
}

/// How the stub payments service answers `POST /charges`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Payments {
    Capture,
    Fail,
    /// 200 with an HTML page, as a misrouted proxy would answer.
    Garbage,
    Hang,
    Slow(Duration),
}

/// A stub of the payments API on 127.0.0.1:0 that counts its calls.
#[derive(Clone)]
pub struct PaymentsStub {
    pub url: String,
    behaviour: Arc<Mutex<Payments>>,
    /// The Idempotency-Key of every call.
    keys: Arc<Mutex<Vec<String>>>,
}

impl PaymentsStub {
    pub async fn start() -> PaymentsStub {
        let behaviour = Arc::new(Mutex::new(Payments::Capture));
        let keys = Arc::new(Mutex::new(Vec::new()));
        let (b, k) = (behaviour.clone(), keys.clone());
        let router = axum::Router::new().route(
            "/charges",
            axum::routing::post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let (b, k) = (b.clone(), k.clone());
                async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    k.lock().unwrap().push(key);
                    let behaviour = *b.lock().unwrap();
                    match behaviour {
                        Payments::Capture => {}
                        Payments::Fail => {
                            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                        }
                        Payments::Garbage => {
                            return (StatusCode::OK, "<html>502 Bad Gateway</html>")
                                .into_response();
                        }
                        Payments::Hang => std::future::pending::<()>().await,
                        Payments::Slow(d) => tokio::time::sleep(d).await,
                    }
                    let id = format!("ch_{}", body["order_id"].as_str().unwrap_or_default());
                    (
                        StatusCode::CREATED,
                        Json(json!({ "id": id, "status": "captured" })),
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        PaymentsStub {
            url,
            behaviour,
            keys,
        }
    }

    pub fn set(&self, behaviour: Payments) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn calls(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
}

/// What to start an in-process app with. `Default` is every protection on, default tunables.
#[derive(Default)]
pub struct Setup<'a> {
    /// `--protections`; empty means `all`.
    pub protections: &'a str,
    /// The TOML tunables file.
    pub config: &'a str,
    pub admin_token: Option<&'a str>,
    /// Use this data directory instead of a fresh temporary one.
    pub data_dir: Option<PathBuf>,
}

/// The app, running in this test's runtime.
pub struct TestApp {
    pub url: String,
    pub admin_url: String,
    pub state: Arc<AppState>,
    pub db: Database,
    pub payments: PaymentsStub,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    dir: tempfile::TempDir,
    server: JoinHandle<std::io::Result<()>>,
}

pub async fn spawn_app(protections: &str) -> TestApp {
    spawn_app_with(Setup {
        protections,
        ..Setup::default()
    })
    .await
}

pub async fn spawn_app_with(setup: Setup<'_>) -> TestApp {
    let db = Database::start().await;
    let payments = PaymentsStub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = setup.data_dir.unwrap_or_else(|| dir.path().join("data"));
    let config_path = dir.path().join("target-app.toml");
    std::fs::write(&config_path, setup.config).unwrap();
    let protections = if setup.protections.is_empty() {
        "all"
    } else {
        setup.protections
    };
    let mut argv = vec![
        "target-app".to_owned(),
        format!("--database-url={}", db.url),
        "--listen=127.0.0.1:0".into(),
        "--admin-listen=127.0.0.1:0".into(),
        format!("--data-dir={}", data_dir.display()),
        format!("--payments-url={}", payments.url),
        format!("--config={}", config_path.display()),
        format!("--protections={protections}"),
    ];
    if let Some(token) = setup.admin_token {
        argv.push(format!("--admin-token={token}"));
    }
    use clap::Parser;
    let args = Args::try_parse_from(argv).unwrap();
    let config = Config::from_args(args).unwrap_or_else(|e| panic!("{e}"));
    let app = App::build(config).await.unwrap();
    let (url, admin_url) = (
        format!("http://{}", app.addr()),
        format!("http://{}", app.admin_addr()),
    );
    let state = app.state();
    // The server stops when the test's runtime does.
    let server = tokio::spawn(app.run(std::future::pending()));
    TestApp {
        url,
        admin_url,
        state,
        db,
        payments,
        client: client(),
        data_dir,
        config_path,
        dir,
        server,
    }
}

pub fn order_body(product_id: i64) -> Value {
    json!({ "product_id": product_id, "quantity": 1, "customer_email": "ada@example.com" })
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn post_order(&self, body: &Value, key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/orders", self.url)).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    /// The value of one metric series from /metrics, e.g. `app_panics_total{kind="handler"}`.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.admin_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric_value(&text, series)
    }
}

/// One series' value in Prometheus text, 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// Asserts the contract for an error response and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert!(
        response.headers().contains_key("x-request-id"),
        "x-request-id on every response"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    if status == 503 {
        assert!(
            response.headers().contains_key("retry-after"),
            "503 without Retry-After"
        );
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["status"], status,
        "problem status equals the HTTP status"
    );
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem without `{field}`: {body}");
    }
    body
}

/// Polls `check` until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real binary as a child process (killed when the test process dies), its stdout read
/// line by line.
pub struct Binary {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The threads reading stdout and stderr; they end at EOF, once the process is gone.
    readers: Vec<std::thread::JoinHandle<()>>,
    pub url: String,
    pub admin_url: String,
}

pub const BINARY: &str = env!("CARGO_BIN_EXE_target-app");

impl Binary {
    /// Starts the binary with `args` and waits for its `listening` line.
    pub async fn spawn(args: &[String]) -> Binary {
        Binary::spawn_as(args, None).await
    }

    /// As [`Binary::spawn`], running as `user` (uid, gid) when given: file permissions only
    /// bind a process that is not root.
    pub async fn spawn_as(args: &[String], user: Option<(u32, u32)>) -> Binary {
        let mut bin = Binary::start_as(args, user);
        let line = bin
            .wait_for_log(Duration::from_secs(20), |l| l["message"] == "listening")
            .await;
        bin.url = format!("http://{}", line["listen"].as_str().unwrap());
        bin.admin_url = format!("http://{}", line["admin_listen"].as_str().unwrap());
        bin
    }

    /// Starts the binary without waiting for anything.
    pub fn start(args: &[String]) -> Binary {
        Binary::start_as(args, None)
    }

    fn start_as(args: &[String], user: Option<(u32, u32)>) -> Binary {
        let mut command = Command::new(BINARY);
        if let Some((uid, gid)) = user {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = pglab::proc::spawn_tied(command, Signal::SIGKILL).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        Binary {
            child,
            lines,
            readers,
            url: String::new(),
            admin_url: String::new(),
        }
    }

    /// Every line so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The JSON log lines so far.
    pub fn logs(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub async fn wait_for_log(&self, limit: Duration, matches: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            if let Some(line) = self.logs().into_iter().find(&matches) {
                return line;
            }
            assert!(
                start.elapsed() < limit,
                "log line not seen within {limit:?}; output:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Everything it wrote is read before anyone looks at the output.
                for reader in self.readers.drain(..) {
                    reader.join().unwrap();
                }
                return status.code();
            }
            assert!(
                start.elapsed() < limit,
                "still running after {limit:?}; output:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The flags to run the binary against `db` and `payments` on free loopback ports.
pub fn binary_args(db: &Database, payments: &PaymentsStub, data_dir: &Path) -> Vec<String> {
    vec![
        format!("--database-url={}", db.url),
        "--listen=127.0.0.1:0".into(),
        "--admin-listen=127.0.0.1:0".into(),
        format!("--data-dir={}", data_dir.display()),
        format!("--payments-url={}", payments.url),
    ]
}

/// A size-limited tmpfs mounted at a directory for the life of the guard: a real full disk
/// (ENOSPC) without touching the machine's disks. Needs root (CAP_SYS_ADMIN).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts, or says why it cannot.
    pub fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        use nix::mount::{MsFlags, mount};
        if !nix::unistd::geteuid().is_root() {
            return Err("needs root to mount a tmpfs".into());
        }
        std::fs::create_dir_all(path).unwrap();
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        )
        .map_err(|e| format!("mounting a tmpfs at {}: {e}", path.display()))?;
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }

    /// Fills the filesystem with one file; returns its path (remove it to free the space).
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let ballast = self.path.join("ballast");
        let mut file = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        ballast
    }
}

fn libc_enospc() -> i32 {
    nix::errno::Errno::ENOSPC as i32
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy unmount: succeeds even if a file on it is still open.
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A memory cgroup with a limit, made under this test process's own, for the life of the guard.
/// Needs root (or a delegated cgroup); `None`, said on stderr, where it cannot be made.
pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    pub fn create(limit: u64) -> Option<TestCgroup> {
        let Some((parent, v2)) = target_app::memory::memory_cgroup_dir() else {
            eprintln!("SKIPPED: no memory cgroup hierarchy is mounted");
            return None;
        };
        let path = parent.join(format!("target-app-test-{}", std::process::id()));
        let limit_file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        let made = std::fs::create_dir(&path)
            .and_then(|()| std::fs::write(path.join(limit_file), limit.to_string()));
        match made {
            Ok(()) => Some(TestCgroup { path }),
            Err(e) => {
                let _ = std::fs::remove_dir(&path);
                eprintln!(
                    "SKIPPED: cannot make a memory cgroup under {}: {e}",
                    parent.display()
                );
                None
            }
        }
    }

    /// Moves process `pid` into the cgroup.
    pub fn add(&self, pid: u32) {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Whatever is still inside goes back to the parent; then the directory can go.
        let parent = self.path.parent().unwrap().join("cgroup.procs");
        let procs = std::fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines() {
            let _ = std::fs::write(&parent, pid);
        }
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
