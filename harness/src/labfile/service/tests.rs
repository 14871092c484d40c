//! Real processes: python3 serving HTTP, a script that exits, one that never listens.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::labfile::{LabFile, Start, Values, parse};

/// A small HTTP server: `/health` answers 503 until `READY_AFTER` seconds passed, `/conf`
/// answers the text of the file named by `$CONF`, and every request is logged on stderr.
const SERVER: &str = r#"
import http.server, os, sys, time
start = time.time()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            ok = time.time() - start >= float(os.environ.get("READY_AFTER", "0"))
            self.send_response(200 if ok else 503); self.end_headers()
        elif self.path == "/conf":
            body = open(os.environ["CONF"], "rb").read()
            self.send_response(200); self.end_headers(); self.wfile.write(body)
        else:
            self.send_response(404); self.end_headers()
print("starting on", sys.argv[1], flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

fn python3() {
    assert!(
        std::process::Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "python3 is needed for these tests and is not installed"
    );
}

fn lab(dir: &Path, service: &str) -> LabFile {
    std::fs::write(dir.join("server.py"), SERVER).unwrap();
    let text = format!("[service]\n{service}\n");
    let path = dir.join("fivehundred.toml");
    std::fs::write(&path, &text).unwrap();
    parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn values(port: u16, dir: &Path) -> Values {
    Values::new("127.0.0.1", port, dir, "tok")
}

fn collect() -> (LineSink, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&lines);
    let sink: LineSink = Arc::new(move |_, line: &str| l.lock().unwrap().push(line.to_string()));
    (sink, lines)
}

async fn start(lab: &LabFile, port: u16, dir: &Path) -> Result<ServiceProcess, StartError> {
    let Start::Command(cmd) = &lab.service.start else {
        panic!("a command")
    };
    let (sink, _) = collect();
    ServiceProcess::start(
        &lab.service,
        cmd,
        &values(port, dir),
        dir,
        Default::default(),
        sink,
    )
    .await
}

#[tokio::test]
async fn a_service_starts_becomes_ready_renders_its_config_and_stops_with_its_signal() {
    python3();
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(
        dir.path(),
        r#"command = ["python3", "server.py", "{port}"]
env = { CONF = "{config.app}", READY_AFTER = "0.5" }
ready = "GET /health"
ready_within = "20s"
stop_signal = "SIGINT"
stop_grace = "5s"
[service.config.app]
text = "listen = \"{listen}\"\n""#,
    );
    let port = pglab::free_port().unwrap();
    let Start::Command(cmd) = &lab.service.start else {
        panic!("a command")
    };
    let (sink, lines) = collect();
    let mut svc = ServiceProcess::start(
        &lab.service,
        cmd,
        &values(port, dir.path()),
        dir.path(),
        Default::default(),
        sink,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        svc.ready_after >= Duration::from_millis(400),
        "{:?}",
        svc.ready_after
    );
    let conf = dir.path().join("app");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&conf).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let body = reqwest::get(format!("{}/conf", svc.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, format!("listen = \"127.0.0.1:{port}\"\n"));
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&format!("starting on {port}"))),
        "{:?}",
        lines.lock().unwrap()
    );
    let status = svc.stop().await.unwrap();
    // SIGINT, not the SIGKILL after the grace period: Python ends on KeyboardInterrupt and
    // re-raises the signal it got.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(nix::sys::signal::Signal::SIGINT as i32),
        "{status}"
    );
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("KeyboardInterrupt")),
        "{:?}",
        lines.lock().unwrap()
    );
}

#[tokio::test]
async fn a_command_that_does_not_exist_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(dir.path(), r#"command = ["/no/such/program", "{port}"]"#);
    let e = start(&lab, 1, dir.path()).await.unwrap_err();
    assert!(matches!(e, StartError::Spawn { .. }), "{e}");
    assert!(
        e.to_string().contains("`/no/such/program` does not start"),
        "{e}"
    );
}

#[tokio::test]
async fn a_service_that_exits_early_shows_its_last_lines() {
    python3();
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(
        dir.path(),
        r#"command = ["python3", "-c", "import sys; print('config invalid: no DATABASE_URL'); sys.exit(3)"]"#,
    );
    let e = start(&lab, 1, dir.path()).await.unwrap_err();
    assert!(matches!(e, StartError::Exited { .. }), "{e}");
    let shown = e.to_string();
    assert!(shown.contains("exited during startup"), "{shown}");
    assert!(shown.contains("config invalid: no DATABASE_URL"), "{shown}");
}

#[tokio::test]
async fn a_port_that_never_opens_is_reported_as_such_within_the_deadline() {
    python3();
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(
        dir.path(),
        r#"command = ["python3", "-c", "import time; print('waiting forever', flush=True); time.sleep(60)"]
ready_within = "3s""#,
    );
    let port = pglab::free_port().unwrap();
    let began = std::time::Instant::now();
    let e = start(&lab, port, dir.path()).await.unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(10));
    assert!(matches!(e, StartError::PortNeverOpened { .. }), "{e}");
    assert!(e.to_string().contains("waiting forever"), "{e}");
}

#[tokio::test]
async fn a_service_whose_health_never_passes_is_never_ready_with_the_last_status() {
    python3();
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(
        dir.path(),
        r#"command = ["python3", "server.py", "{port}"]
env = { READY_AFTER = "3600" }
ready = "GET /health"
ready_within = "6s""#,
    );
    let port = pglab::free_port().unwrap();
    let e = start(&lab, port, dir.path()).await.unwrap_err();
    assert!(matches!(e, StartError::NeverReady { .. }), "{e}");
    let shown = e.to_string();
    assert!(
        shown.contains("`GET /health`") && shown.contains("status 503"),
        "{shown}"
    );
    // It was stopped: the port is free again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[tokio::test]
async fn stopping_reaches_the_workers_a_service_forked() {
    python3();
    let dir = tempfile::tempdir().unwrap();
    // The parent ignores SIGTERM and forks a worker that holds the port: only the process group
    // kill after the grace period ends both.
    let script = r#"
import os, signal, socket, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(600)
time.sleep(600)
"#;
    std::fs::write(dir.path().join("forks.py"), script).unwrap();
    let lab = lab(
        dir.path(),
        r#"command = ["python3", "forks.py", "{port}"]
stop_grace = "300ms""#,
    );
    let port = pglab::free_port().unwrap();
    let mut svc = start(&lab, port, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    svc.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the forked worker still listens"
    );
}

#[tokio::test]
async fn an_unknown_user_is_an_error_before_anything_starts() {
    let e = resolve_user("no-such-user-here").unwrap_err();
    assert!(matches!(e, StartError::User { .. }), "{e}");
    assert!(e.to_string().contains("no such user"), "{e}");
    assert_eq!(resolve_user("0").unwrap(), (0, 0));
}

/// Anyone on the machine can read a process's command line (`ps`, /proc/<pid>/cmdline): the
/// run's database password and token must not be there. target-app's lab file hands both over
/// by environment.
#[test]
fn target_apps_command_line_shows_no_database_password_or_token() {
    let dir = tempfile::tempdir().unwrap();
    // A stand-in that ignores its arguments and stays up to be looked at. The `exit` keeps the
    // shell (and its command line) alive: a shell may exec its last command.
    let program = dir.path().join("target-app");
    std::fs::write(&program, "#!/bin/sh\nsleep 30\nexit 0\n").unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let lab = crate::labfile::target_app().with_program(&program).unwrap();
    let Start::Command(spec) = &lab.service.start else {
        panic!("target-app is started by a command")
    };
    let mut values = Values::new("127.0.0.1", 1, &dir.path().join("data"), "token-123");
    values.listener("admin", "127.0.0.1", 2);
    values.postgres(
        "database",
        &crate::labfile::DbAddress {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "app".into(),
            password: "s3cret-pw".into(),
            name: "fivehundred_x".into(),
        },
    );
    values.http("payments", "127.0.0.1", 3);
    values.config("tunables", &dir.path().join("tunables.toml"));
    let (mut cmd, _) = command(spec, &values, &crate::sys::Isolation::default()).unwrap();
    // A script just written may still be open in a thread forked meanwhile (ETXTBSY).
    let mut child = (0..50)
        .find_map(|_| match cmd.spawn() {
            Ok(c) => Some(c),
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
                None
            }
            Err(e) => panic!("cannot start the stand-in: {e}"),
        })
        .expect("the stand-in started");
    let pid = child.id();
    // The parent may resume before the kernel has set the new program's arguments: wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let cmdline = loop {
        let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        if !c.is_empty() || std::time::Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains("--payments-url"),
        "not target-app's: {cmdline}"
    );
    assert!(
        !cmdline.contains("s3cret-pw"),
        "password in `ps`: {cmdline}"
    );
    assert!(!cmdline.contains("token-123"), "token in `ps`: {cmdline}");
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.contains("DATABASE_URL=postgres://app:s3cret-pw@"),
        "target-app is not given its database URL"
    );
}
