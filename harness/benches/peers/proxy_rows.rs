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

/// One connection per path, each path's round trips taken in turn with one straight to the
/// server: round `i` times a direct round trip and then one through every path (in an order
/// that rotates, so no path always follows the direct one). Returns, per path, the added
/// microseconds of each round: its round trip minus that round's direct one.
///
/// Percentiles of two series measured apart and then subtracted are noise when they are close
/// (that printed negative added p99s); a difference taken within one round shares the
/// machine's state of that moment.
fn paired_round_trips(direct: SocketAddr, paths: &[SocketAddr]) -> Result<Vec<Vec<f64>>, String> {
    let connect = |addr: SocketAddr| -> Result<TcpStream, String> {
        let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(s)
    };
    let mut direct = connect(direct)?;
    let mut through: Vec<TcpStream> = paths
        .iter()
        .map(|a| connect(*a))
        .collect::<Result<_, _>>()?;
    let msg = [1u8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let mut trip = |s: &mut TcpStream| -> Result<f64, String> {
        let t = Instant::now();
        s.write_all(&msg).map_err(|e| e.to_string())?;
        s.read_exact(&mut back).map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64() * 1e6)
    };
    let mut added = vec![Vec::with_capacity(ROUND_TRIPS); paths.len()];
    for i in 0..ROUND_TRIPS + 1000 {
        let base = trip(&mut direct)?;
        for k in 0..paths.len() {
            let j = (i + k) % paths.len();
            let t = trip(&mut through[j])?;
            if i >= 1000 {
                added[j].push(t - base);
            }
        }
    }
    Ok(added)
}

/// The `q` quantile of `values` (nearest rank), never below zero: a path cannot take less time
/// than no path, and a negative figure is the direct trip's noise.
fn added_quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].max(0.0)
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
    // The paths measured: ours, then each peer that started.
    let mut names = vec!["ours"];
    let mut addrs = vec![p.ours.local_addr()];
    for (name, peer) in [("haproxy", &p.haproxy), ("socat", &p.socat)] {
        if let Ok((_, a)) = peer {
            names.push(name);
            addrs.push(*a);
        }
    }
    // Per repetition, per path: (added p50, added p99).
    let mut samples: Vec<Option<Vec<(f64, f64)>>> = Vec::new();
    for _ in 0..reps {
        let (direct, addrs) = (p.direct, addrs.clone());
        let rep = blocking(move || paired_round_trips(direct, &addrs))
            .await
            .ok();
        samples.push(rep.map(|per_path| {
            per_path
                .iter()
                .map(|a| (added_quantile(a, 0.5), added_quantile(a, 0.99)))
                .collect()
        }));
    }
    let series = |path: usize, pick: fn((f64, f64)) -> f64| -> Vec<f64> {
        samples
            .iter()
            .map(|s| s.as_ref().map_or(f64::NAN, |s| pick(s[path])))
            .collect()
    };
    let p50 = |x: (f64, f64)| x.0;
    let p99 = |x: (f64, f64)| x.1;
    let measure = |q: &str| format!("added {q}, {MESSAGE}-byte round trips, one connection");
    let mut rows = Vec::new();
    for (name, peer) in [("haproxy", &p.haproxy), ("socat", &p.socat)] {
        for (q, pick) in [("p50", p50 as fn(_) -> f64), ("p99", p99 as fn(_) -> f64)] {
            let goal = if q == "p50" && name == "haproxy" {
                "≤ haproxy's"
            } else {
                ""
            };
            let row = Row::new("proxy latency", &measure(q), "µs", Better::Lower, goal)
                .ours(&series(0, pick));
            let row = match (peer, names.iter().position(|n| *n == name)) {
                (Ok(_), Some(path)) => {
                    let row = row.peer(name, &series(path, pick));
                    // The verdict reads the ratio printed next to it, nothing else.
                    let met = (!goal.is_empty())
                        .then_some(row.ratio)
                        .flatten()
                        .map(|r| r <= 1.0);
                    Row { met, ..row }
                }
                (Err(e), _) => row.missing_peer(name, e),
                (Ok(_), None) => row.missing_peer(name, "not measured"),
            };
            rows.push(row);
        }
    }
    if let Some(first) = rows.first_mut() {
        first.note = "added = a round trip through the path minus a direct one taken just \
                      before it, on connections open side by side; the quantile of those \
                      differences, never below 0"
            .to_string();
    }
    // Give the proxies a moment to close their connections before the next rows.
    tokio::time::sleep(Duration::from_millis(50)).await;
    rows
}
