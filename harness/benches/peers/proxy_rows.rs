//! Proxy rows: bulk throughput and added round-trip latency of the fault proxy with no fault
//! active, next to a direct connection, haproxy and socat.
//!
//! The client and the server are plain blocking sockets on threads of the bench process, the
//! same for every path; only what sits between them changes. Each repetition measures every
//! path back to back, so a busy moment of the machine weighs on all of them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use fivehundred::install;
use fivehundred::proxy::Proxy;

use crate::table::{Better, Row};
use crate::tools::{self, Proc};

/// Bytes sent per throughput sample.
const BULK_BYTES: u64 = 1 << 30;
const CHUNK: usize = 256 * 1024;
/// Round trips per latency sample (after a warm-up).
const ROUND_TRIPS: usize = 20_000;
const MESSAGE: usize = 64;

/// A server on its own thread: `sink` counts what it reads and answers the total at the end;
/// `echo` answers every message.
fn serve(echo: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_nodelay(true);
            std::thread::spawn(move || {
                if echo {
                    let mut buf = [0u8; MESSAGE];
                    while s.read_exact(&mut buf).is_ok() {
                        if s.write_all(&buf).is_err() {
                            break;
                        }
                    }
                } else {
                    let mut buf = vec![0u8; CHUNK];
                    let mut total = 0u64;
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        total += n as u64;
                    }
                    let _ = s.write_all(&total.to_le_bytes());
                }
            });
        }
    });
    addr
}

/// Sends [`BULK_BYTES`] to `addr` and returns GB/s, timed until the server confirmed them all.
fn bulk(addr: SocketAddr) -> Result<f64, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let buf = vec![7u8; CHUNK];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < BULK_BYTES {
        s.write_all(&buf).map_err(|e| e.to_string())?;
        sent += CHUNK as u64;
    }
    s.shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    let mut total = [0u8; 8];
    s.read_exact(&mut total).map_err(|e| e.to_string())?;
    if u64::from_le_bytes(total) != sent {
        return Err("bytes were lost".into());
    }
    Ok(sent as f64 / started.elapsed().as_secs_f64() / 1e9)
}

/// Round trips of [`MESSAGE`] bytes on one connection: (p50, p99) in microseconds.
fn round_trips(addr: SocketAddr) -> Result<(f64, f64), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let msg = [1u8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS + 1000 {
        let t = Instant::now();
        s.write_all(&msg).map_err(|e| e.to_string())?;
        s.read_exact(&mut back).map_err(|e| e.to_string())?;
        if i >= 1000 {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Ok((at(0.5), at(0.99)))
}

/// The paths under test, in front of one upstream.
struct Paths {
    direct: SocketAddr,
    ours: Proxy,
    haproxy: Result<(Proc, SocketAddr), String>,
    socat: Result<(Proc, SocketAddr), String>,
}

async fn paths(upstream: SocketAddr, dir: &std::path::Path) -> Result<Paths, String> {
    let ours = Proxy::start("127.0.0.1:0".parse().expect("addr"), upstream, 1)
        .await
        .map_err(|e| e.to_string())?;
    let at = || SocketAddr::from(([127, 0, 0, 1], tools::free_port()));
    let haproxy = tools::available(install::HAPROXY).and_then(|()| {
        let a = at();
        tools::haproxy(dir, a, upstream).map(|p| (p, a))
    });
    let socat = tools::available(install::SOCAT).and_then(|()| {
        let a = at();
        tools::socat(a, upstream).map(|p| (p, a))
    });
    Ok(Paths {
        direct: upstream,
        ours,
        haproxy,
        socat,
    })
}

/// Runs `f` on a blocking thread (the proxy under test needs the runtime's threads free).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
}

pub async fn rows(reps: usize, dir: &std::path::Path) -> Vec<Row> {
    let mut rows = Vec::new();
    rows.extend(throughput(reps, dir).await);
    rows.extend(latency(reps, dir).await);
    rows
}

async fn throughput(reps: usize, dir: &std::path::Path) -> Vec<Row> {
    let measure = "bulk transfer, 1 GiB per sample, no fault";
    let row = || Row::new("proxy throughput", measure, "GB/s", Better::Higher, "");
    let p = match paths(serve(false), dir).await {
        Ok(p) => p,
        Err(e) => return vec![row().note(format!("the proxy did not start: {e}"))],
    };
    let (mut direct, mut ours, mut haproxy, mut socat) = (vec![], vec![], vec![], vec![]);
    // CPU seconds per GiB moved (client, server and our proxy all run in this process).
    let (mut direct_cpu, mut ours_cpu) = (vec![], vec![]);
    let mut failures = Vec::new();
    for _ in 0..reps {
        let d = p.direct;
        let o = p.ours.local_addr();
        let cpu = tools::own_cpu_seconds();
        let mut note = |r: Result<f64, String>, into: &mut Vec<f64>| match r {
            Ok(v) => into.push(v),
            Err(e) => {
                failures.push(e);
                into.push(f64::NAN)
            }
        };
        note(blocking(move || bulk(d)).await, &mut direct);
        let between = tools::own_cpu_seconds();
        direct_cpu.push(between - cpu);
        note(blocking(move || bulk(o)).await, &mut ours);
        ours_cpu.push(tools::own_cpu_seconds() - between);
        if let Ok((_, a)) = &p.haproxy {
            let a = *a;
            note(blocking(move || bulk(a)).await, &mut haproxy);
        }
        if let Ok((_, a)) = &p.socat {
            let a = *a;
            note(blocking(move || bulk(a)).await, &mut socat);
        }
    }
    let cpu = |v: &[f64]| crate::table::Stat::of(v).map_or(f64::NAN, |s| s.median);
    let cpu_note = format!(
        "CPU time per GiB moved (client + server + proxy, all in the bench's process): direct {:.2} s, through the proxy {:.2} s; with 2 cores shared by all three, throughput follows",
        cpu(&direct_cpu),
        cpu(&ours_cpu)
    );
    let failed = if failures.is_empty() {
        String::new()
    } else {
        format!("failed samples: {}", failures.join("; "))
    };
    let ratio_goal = |r: Row, floor: f64| {
        let met = r.ratio.map(|x| x >= floor);
        Row { met, ..r }
    };
    let mut rows = vec![ratio_goal(
        row()
            .ours(&ours)
            .peer("direct connection", &direct)
            .note(cpu_note)
            .note(failed),
        0.9,
    )];
    rows[0].goal = "≥ 0.9 × direct".into();
    rows.push(match &p.haproxy {
        Ok(_) => {
            let mut r = ratio_goal(row().ours(&ours).peer("haproxy", &haproxy), 1.0);
            r.goal = "≥ haproxy".into();
            r.note("haproxy 2.6 in TCP mode with `option splice-auto`")
        }
        Err(e) => row().ours(&ours).missing_peer("haproxy", e),
    });
    rows.push(match &p.socat {
        Ok(_) => row()
            .ours(&ours)
            .peer("socat", &socat)
            .note("socat 1.7 with its defaults (8 KiB buffer, a process per connection)"),
        Err(e) => row().ours(&ours).missing_peer("socat", e),
    });
    rows
}

async fn latency(reps: usize, dir: &std::path::Path) -> Vec<Row> {
    let p = match paths(serve(true), dir).await {
        Ok(p) => p,
        Err(e) => {
            return vec![
                Row::new("proxy latency", "added p50", "µs", Better::Lower, "")
                    .note(format!("the proxy did not start: {e}")),
            ];
        }
    };
    // Per repetition: (direct, ours, haproxy, socat), each (p50, p99).
    let mut samples: Vec<[Option<(f64, f64)>; 4]> = Vec::new();
    for _ in 0..reps {
        let one = |addr: Option<SocketAddr>| async move {
            let addr = addr?;
            blocking(move || round_trips(addr)).await.ok()
        };
        let d = one(Some(p.direct)).await;
        let o = one(Some(p.ours.local_addr())).await;
        let h = one(p.haproxy.as_ref().ok().map(|(_, a)| *a)).await;
        let s = one(p.socat.as_ref().ok().map(|(_, a)| *a)).await;
        samples.push([d, o, h, s]);
    }
    // Added latency: each path's percentile minus the direct connection's in the same
    // repetition.
    let added = |path: usize, pick: fn((f64, f64)) -> f64| -> Vec<f64> {
        samples
            .iter()
            .map(|s| match (s[0], s[path]) {
                (Some(d), Some(x)) => pick(x) - pick(d),
                _ => f64::NAN,
            })
            .collect()
    };
    let p50 = |x: (f64, f64)| x.0;
    let p99 = |x: (f64, f64)| x.1;
    let direct_p50: Vec<f64> = samples.iter().map(|s| s[0].map_or(f64::NAN, p50)).collect();
    let measure = |q: &str| format!("added {q}, {MESSAGE}-byte round trips, one connection");
    let mut rows = Vec::new();
    let peers = [(2usize, "haproxy", &p.haproxy), (3, "socat", &p.socat)];
    for (path, name, peer) in peers {
        for (q, pick) in [("p50", p50 as fn(_) -> f64), ("p99", p99 as fn(_) -> f64)] {
            let goal = if q == "p50" && name == "haproxy" {
                "≤ haproxy's"
            } else {
                ""
            };
            let row = Row::new("proxy latency", &measure(q), "µs", Better::Lower, goal)
                .ours(&added(1, pick));
            let row = match peer {
                Ok(_) => {
                    let row = row.peer(name, &added(path, pick));
                    let met = (!goal.is_empty()).then(|| {
                        let o = row.ours.as_ref().map_or(f64::NAN, |s| s.median);
                        let h = row.peer_figure.as_ref().map_or(f64::NAN, |s| s.median);
                        o <= h
                    });
                    Row { met, ..row }
                }
                Err(e) => row.missing_peer(name, e),
            };
            rows.push(row);
        }
    }
    if let Some(d) = crate::table::Stat::of(&direct_p50)
        && let Some(first) = rows.first_mut()
    {
        first.note = format!(
            "direct round trip p50 {} µs; added = path's percentile − direct's, same repetition",
            crate::table::num(d.median)
        );
    }
    // Give the proxies a moment to close their connections before the next rows.
    tokio::time::sleep(Duration::from_millis(50)).await;
    rows
}
