//! The peers from Debian's packages: installed where missing (`fivehundred::install::ensure`),
//! started, and their output read.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fivehundred::install::{self, Need};

/// Whether the peer can run; `Err` names what is missing, for its row.
/// The workspace's root (the checkout).
pub fn workspace() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

pub fn available(needs: &[Need]) -> Result<(), String> {
    install::ensure(needs)
}

/// A peer process that is killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on `addr`.
pub fn wait_listening(addr: SocketAddr, proc: &mut Proc) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = proc.0.try_wait() {
            return Err(format!("exited with {status}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("not listening on {addr} after 10 s"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// haproxy forwarding TCP from `listen` to `upstream`, with kernel splicing (its fastest mode
/// for bulk transfers; it is off by default).
pub fn haproxy(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> Result<Proc, String> {
    let cfg = dir.join(format!("haproxy-{}.cfg", listen.port()));
    let text = format!(
        "global\n  maxconn 4096\n\
         defaults\n  mode tcp\n  option splice-auto\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend bench\n  bind {listen}\n  default_backend up\n\
         backend up\n  server s1 {upstream}\n"
    );
    std::fs::write(&cfg, text).map_err(|e| e.to_string())?;
    let child = Command::new("haproxy")
        .arg("-f")
        .arg(&cfg)
        .arg("-db")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start haproxy: {e}"))?;
    let mut p = Proc(child);
    wait_listening(listen, &mut p).map_err(|e| format!("haproxy {e}"))?;
    Ok(p)
}

/// socat forwarding TCP from `listen` to `upstream`, a process per connection, as usually run.
pub fn socat(listen: SocketAddr, upstream: SocketAddr) -> Result<Proc, String> {
    let child = Command::new("socat")
        .arg(format!(
            "TCP-LISTEN:{},bind={},reuseaddr,fork",
            listen.port(),
            listen.ip()
        ))
        .arg(format!("TCP:{upstream},nodelay"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start socat: {e}"))?;
    let mut p = Proc(child);
    wait_listening(listen, &mut p).map_err(|e| format!("socat {e}"))?;
    Ok(p)
}

/// What wrk reported.
#[derive(Debug, Clone, Copy)]
pub struct WrkResult {
    pub rate: f64,
    pub requests: u64,
    /// The CPU time wrk used (user + system), seconds.
    pub cpu_seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub non_2xx: u64,
    pub errors: u64,
}

/// Runs wrk with `args` (besides `--latency` and the URL) and reads its summary.
pub fn wrk(args: &[&str], url: &str) -> Result<WrkResult, String> {
    let cpu_before = children_cpu_seconds();
    let out = Command::new("wrk")
        .args(args)
        .arg("--latency")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let cpu_seconds = children_cpu_seconds() - cpu_before;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    };
    let rate = field("Requests/sec:")
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("no rate in wrk's output:\n{text}"))?;
    let pct = |p: &str| {
        field(p)
            .and_then(|v| duration_ms(&v))
            .ok_or_else(|| format!("no {p} latency in wrk's output:\n{text}"))
    };
    let non_2xx = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let errors = field("Socket errors:")
        .map(|v| {
            v.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0);
    Ok(WrkResult {
        rate,
        requests,
        cpu_seconds,
        p50_ms: pct("50%")?,
        p99_ms: pct("99%")?,
        non_2xx,
        errors,
    })
}

/// CPU time (user + system, seconds) of the child processes waited for so far. The peers run
/// one at a time, so the difference around one run is that peer's.
pub fn children_cpu_seconds() -> f64 {
    cpu_seconds(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
}

/// This process's CPU time (user + system) so far, in seconds.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds(nix::sys::resource::UsageWho::RUSAGE_SELF)
}

fn cpu_seconds(who: nix::sys::resource::UsageWho) -> f64 {
    nix::sys::resource::getrusage(who).map_or(f64::NAN, |u| {
        let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        s(u.user_time()) + s(u.system_time())
    })
}

/// `77.00us`, `1.20ms`, `2.00s` in milliseconds.
fn duration_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

/// Runs hey for `seconds` with `connections` and returns its requests per second.
pub fn hey(seconds: u64, connections: u32, url: &str) -> Result<f64, String> {
    let out = Command::new("hey")
        .args(["-z", &format!("{seconds}s"), "-c", &connections.to_string()])
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run hey: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no rate in hey's output:\n{text}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_durations_are_read_in_milliseconds() {
        assert_eq!(super::duration_ms("77.00us"), Some(0.077));
        assert_eq!(super::duration_ms("1.50ms"), Some(1.5));
        assert_eq!(super::duration_ms("2.00s"), Some(2000.0));
    }
}
