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
use fivehundred::proxy::{Proxy, Stream, Toxic, ToxicKind};

use crate::table::{Better, Row};
use crate::tools::{self, Proc};
use crate::{crates, fault};

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
    bulk_bytes(addr, BULK_BYTES)
}

/// Sends `bytes` (rounded up to whole chunks) to `addr` and returns GB/s, timed until the server
/// confirmed them all.
fn bulk_bytes(addr: SocketAddr, bytes: u64) -> Result<f64, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let buf = vec![7u8; CHUNK];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
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
fn paired_round_trips(
    direct: SocketAddr,
    paths: &[SocketAddr],
    trips: usize,
) -> Result<Vec<Vec<f64>>, String> {
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
    let warm_up = (trips / 20).max(1);
    let mut added = vec![Vec::with_capacity(trips); paths.len()];
    for i in 0..trips + warm_up {
        let base = trip(&mut direct)?;
        for k in 0..paths.len() {
            let j = (i + k) % paths.len();
            let t = trip(&mut through[j])?;
            if i >= warm_up {
                added[j].push(t - base);
            }
        }
    }
    Ok(added)
}

/// The `q` quantile of `values` (nearest rank), never below zero: a path cannot take less time
/// than no path, and a negative figure is the direct trip's noise. The second value says whether
/// the quantile was negative and printed as 0, for the row's note.
fn added_quantile(values: &[f64], q: f64) -> (f64, bool) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, false);
    }
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    (v[i].max(0.0), v[i] < 0.0)
}

/// A peer proxy running on its address, or why it is not.
type Started = Result<(Proc, SocketAddr), String>;

/// The paths under test, in front of one upstream.
struct Paths {
    direct: SocketAddr,
    ours: Proxy,
    haproxy: Result<(Proc, SocketAddr), String>,
    socat: Result<(Proc, SocketAddr), String>,
    fault: Result<(Proc, SocketAddr), String>,
}

impl Paths {
    /// The peers, by name, in the order of the table.
    fn peers(&self) -> [(&'static str, &Started); 3] {
        [
            ("haproxy", &self.haproxy),
            ("socat", &self.socat),
            ("fault", &self.fault),
        ]
    }
}

fn at() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], tools::free_port()))
}

/// fault's proxy in front of `upstream`, with `shape`, on a free port.
async fn fault_path(
    upstream: SocketAddr,
    shape: fault::Shape,
) -> Result<(Proc, SocketAddr), String> {
    blocking(move || {
        let bin = crates::ensure(crates::FAULT)?;
        let a = at();
        fault::proxy(&bin, a, upstream, shape).map(|p| (p, a))
    })
    .await
}

async fn paths(upstream: SocketAddr, dir: &std::path::Path) -> Result<Paths, String> {
    let ours = Proxy::start("127.0.0.1:0".parse().expect("addr"), upstream, 1)
        .await
        .map_err(|e| e.to_string())?;
    let haproxy = tools::available(install::HAPROXY).and_then(|()| {
        let a = at();
        tools::haproxy(dir, a, upstream).map(|p| (p, a))
    });
    let socat = tools::available(install::SOCAT).and_then(|()| {
        let a = at();
        tools::socat(a, upstream).map(|p| (p, a))
    });
    let fault = fault_path(upstream, fault::Shape::Pass).await;
    Ok(Paths {
        direct: upstream,
        ours,
        haproxy,
        socat,
        fault,
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
    rows.extend(latency_toxic(reps).await);
    rows.extend(bandwidth_toxic(reps).await);
    rows
}

/// The verdict of a row, read from the ratio printed on it (two decimals) and nothing else: a
/// row that shows 0.95× is judged as 0.95, not as the 0.948 behind it.
fn judged(row: Row, met: impl Fn(f64) -> bool) -> Row {
    let m = row.ratio.map(|r| met((r * 100.0).round() / 100.0));
    Row { met: m, ..row }
}

async fn throughput(reps: usize, dir: &std::path::Path) -> Vec<Row> {
    let measure = "bulk transfer, 1 GiB per sample, no fault";
    let row = || Row::new("proxy throughput", measure, "GB/s", Better::Higher, "");
    let p = match paths(serve(false), dir).await {
        Ok(p) => p,
        Err(e) => return vec![row().note(format!("the proxy did not start: {e}"))],
    };
    let (mut direct, mut ours) = (vec![], vec![]);
    let mut peers: Vec<Vec<f64>> = vec![vec![]; p.peers().len()];
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
        for ((_, peer), into) in p.peers().into_iter().zip(peers.iter_mut()) {
            if let Ok((_, a)) = peer {
                let a = *a;
                note(blocking(move || bulk(a)).await, into);
            }
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
    let mut rows = vec![judged(
        Row::new(
            "proxy throughput",
            measure,
            "GB/s",
            Better::Higher,
            "≥ 0.9 × direct",
        )
        .ours(&ours)
        .peer("direct connection", &direct)
        .note(cpu_note)
        .note(failed),
        |x| x >= 0.9,
    )];
    for ((name, peer), samples) in p.peers().into_iter().zip(&peers) {
        let about = match name {
            "haproxy" => "haproxy 2.6 in TCP mode with `option splice-auto`",
            "socat" => "socat 1.7 with its defaults (8 KiB buffer, a process per connection)",
            _ => fault::ABOUT,
        };
        rows.push(match peer {
            Ok(_) if name == "haproxy" => judged(
                Row::new(
                    "proxy throughput",
                    measure,
                    "GB/s",
                    Better::Higher,
                    "≥ haproxy",
                )
                .ours(&ours)
                .peer(name, samples),
                |x| x >= 1.0,
            )
            .note(about),
            Ok(_) => row().ours(&ours).peer(name, samples).note(about),
            Err(e) => row().ours(&ours).missing_peer(name, e),
        });
    }
    rows
}

/// Per repetition and path: the added p50 and p99, and whether each was negative (printed as 0).
type Added = Vec<Option<Vec<((f64, bool), (f64, bool))>>>;

/// `reps` repetitions of [`paired_round_trips`] over `addrs`, reduced to quantiles.
async fn added_by_rep(
    reps: usize,
    direct: SocketAddr,
    addrs: &[SocketAddr],
    trips: usize,
) -> (Added, Vec<String>) {
    let mut samples: Added = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..reps {
        let addrs = addrs.to_vec();
        match blocking(move || paired_round_trips(direct, &addrs, trips)).await {
            Ok(per_path) => samples.push(Some(
                per_path
                    .iter()
                    .map(|a| (added_quantile(a, 0.5), added_quantile(a, 0.99)))
                    .collect(),
            )),
            Err(e) => {
                failures.push(e);
                samples.push(None);
            }
        }
    }
    (samples, failures)
}

/// One path's series of a quantile over the repetitions (µs), and how many were clamped at 0.
fn series(samples: &Added, path: usize, p99: bool) -> (Vec<f64>, usize) {
    let picked: Vec<Option<(f64, bool)>> = samples
        .iter()
        .map(|s| s.as_ref().map(|s| if p99 { s[path].1 } else { s[path].0 }))
        .collect();
    let clamped = picked.iter().flatten().filter(|(_, c)| *c).count();
    let values = picked
        .iter()
        .map(|s| s.map_or(f64::NAN, |(v, _)| v))
        .collect();
    (values, clamped)
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
    for (name, peer) in p.peers() {
        if let Ok((_, a)) = peer {
            names.push(name);
            addrs.push(*a);
        }
    }
    let (samples, failures) = added_by_rep(reps, p.direct, &addrs, ROUND_TRIPS).await;
    let measure = |q: &str| format!("added {q}, {MESSAGE}-byte round trips, one connection");
    let mut rows = Vec::new();
    let clamp_note = |clamped: usize| {
        if clamped > 0 {
            format!("{clamped} of {reps} repetitions' figures were below 0 and are shown as 0")
        } else {
            String::new()
        }
    };
    for (name, peer) in p.peers() {
        for (q, p99) in [("p50", false), ("p99", true)] {
            let goal = if !p99 && name == "haproxy" {
                "≤ haproxy's"
            } else {
                ""
            };
            let (ours, ours_clamped) = series(&samples, 0, p99);
            let row = Row::new("proxy latency", &measure(q), "µs", Better::Lower, goal)
                .ours(&ours)
                .note(clamp_note(ours_clamped));
            let row = match (peer, names.iter().position(|n| *n == name)) {
                (Ok(_), Some(path)) => {
                    let (theirs, clamped) = series(&samples, path, p99);
                    let row = row.peer(name, &theirs).note(
                        clamp_note(clamped)
                            .replace("repetitions'", &format!("repetitions' {name}")),
                    );
                    if goal.is_empty() {
                        row
                    } else {
                        judged(row, |r| r <= 1.0)
                    }
                }
                (Err(e), _) => row.missing_peer(name, e),
                (Ok(_), None) => row.missing_peer(name, "not measured"),
            };
            rows.push(row);
        }
    }
    if let Some(first) = rows.first_mut() {
        let how = "added = a round trip through the path minus a direct one taken just before \
                   it, on connections open side by side; the quantile of those differences, \
                   shown as 0 where it is below 0 (the direct trip's noise)";
        let failed = if failures.is_empty() {
            String::new()
        } else {
            format!("failed repetitions: {}", failures.join("; "))
        };
        *first = first.clone().note(how).note(failed);
    }
    // Give the proxies a moment to close their connections before the next rows.
    tokio::time::sleep(Duration::from_millis(50)).await;
    rows
}

/// The latency configured on both proxies for the latency-toxic rows.
const TOXIC_LATENCY: Duration = Duration::from_millis(10);
/// Round trips per repetition through a proxy with the latency toxic (each takes
/// [`TOXIC_LATENCY`], so fewer than without).
const TOXIC_ROUND_TRIPS: usize = 200;
/// The bandwidth configured on both proxies for the bandwidth-toxic rows, and the bytes sent
/// through it per sample (about two seconds).
const TOXIC_BANDWIDTH: u64 = 10_000_000;
const TOXIC_BULK_BYTES: u64 = 20_000_000;
/// How close to the configured value a toxic must come.
const TOXIC_TOLERANCE: f64 = 0.05;

/// Our proxy with one toxic, in front of `upstream`.
async fn ours_with(upstream: SocketAddr, toxic: Toxic) -> Result<Proxy, String> {
    let p = Proxy::start("127.0.0.1:0".parse().expect("addr"), upstream, 1)
        .await
        .map_err(|e| e.to_string())?;
    p.set_toxics(vec![toxic]).map_err(|e| e.to_string())?;
    Ok(p)
}

/// Three rows for one toxic: ours against the configured value, ours against fault, and how far
/// each is from the configured value (ours against fault's).
#[allow(clippy::too_many_arguments)]
fn toxic_rows(
    row: &str,
    measure: &str,
    unit: &str,
    configured: f64,
    ours: &[f64],
    fault: Result<&[f64], &str>,
    better: Better,
    note: String,
) -> Vec<Row> {
    let within = format!("within {:.0} % of the configured", TOXIC_TOLERANCE * 100.0);
    let plan = vec![configured; ours.len()];
    let vs_plan = judged(
        Row::new(row, measure, unit, better, &within)
            .ours(ours)
            .peer("configured", &plan)
            .note(note),
        // The ratio is rounded to two decimals; 1 − 0.95 is a hair above 0.05 in floating point.
        |r| (r - 1.0).abs() <= TOXIC_TOLERANCE + 1e-9,
    );
    let error = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .map(|x| (x - configured).abs() / configured * 100.0)
            .collect()
    };
    let err_measure = format!("{measure}: error against the configured");
    match fault {
        Ok(theirs) => vec![
            vs_plan,
            Row::new(row, measure, unit, better, "")
                .ours(ours)
                .peer("fault", theirs),
            judged(
                Row::new(row, &err_measure, "%", Better::Lower, "≤ fault's")
                    .ours(&error(ours))
                    .peer("fault", &error(theirs)),
                |r| r <= 1.0,
            ),
        ],
        Err(e) => vec![
            vs_plan,
            Row::new(row, measure, unit, better, "")
                .ours(ours)
                .missing_peer("fault", e),
            Row::new(row, &err_measure, "%", Better::Lower, "≤ fault's")
                .ours(&error(ours))
                .missing_peer("fault", e),
        ],
    }
}

/// Added latency with a latency toxic, from paired round trips as in [`latency`], for our proxy
/// and fault's, both configured with [`TOXIC_LATENCY`] once per round trip.
async fn latency_toxic(reps: usize) -> Vec<Row> {
    let ms = TOXIC_LATENCY.as_secs_f64() * 1000.0;
    let measure = format!("added p50 with a {ms:.0} ms latency toxic, {MESSAGE}-byte round trips");
    let row = || Row::new("proxy latency toxic", &measure, "ms", Better::Lower, "");
    let upstream = serve(true);
    let toxic = Toxic {
        name: "latency".into(),
        stream: Stream::Downstream,
        toxicity: 1.0,
        kind: ToxicKind::Latency {
            latency: TOXIC_LATENCY,
            jitter: Duration::ZERO,
        },
    };
    let ours = match ours_with(upstream, toxic).await {
        Ok(p) => p,
        Err(e) => return vec![row().note(format!("the proxy did not start: {e}"))],
    };
    let fault = fault_path(upstream, fault::Shape::Latency(TOXIC_LATENCY)).await;
    let mut addrs = vec![ours.local_addr()];
    if let Ok((_, a)) = &fault {
        addrs.push(*a);
    }
    let (samples, failures) = added_by_rep(reps, upstream, &addrs, TOXIC_ROUND_TRIPS).await;
    let ms_series = |path: usize| -> Vec<f64> {
        series(&samples, path, false)
            .0
            .iter()
            .map(|us| us / 1000.0)
            .collect()
    };
    let theirs = ms_series(1);
    let fault_figures = match &fault {
        Ok(_) => Ok(&theirs[..]),
        Err(e) => Err(e.as_str()),
    };
    let mut note = format!(
        "ours: a `latency` toxic of {ms:.0} ms on the downstream stream; fault: {}; {TOXIC_ROUND_TRIPS} paired round trips per repetition",
        fault::Shape::Latency(TOXIC_LATENCY).describe()
    );
    if !failures.is_empty() {
        note = format!("{note}; failed repetitions: {}", failures.join("; "));
    }
    let rows = toxic_rows(
        "proxy latency toxic",
        &measure,
        "ms",
        ms,
        &ms_series(0),
        fault_figures,
        Better::Lower,
        note,
    );
    ours.stop().await;
    rows
}

/// Throughput through a bandwidth toxic: [`TOXIC_BULK_BYTES`] from the client, timed until the
/// server confirmed them all, for our proxy and fault's, both limited to [`TOXIC_BANDWIDTH`].
async fn bandwidth_toxic(reps: usize) -> Vec<Row> {
    let mbs = TOXIC_BANDWIDTH as f64 / 1e6;
    let measure = format!(
        "throughput with a {mbs:.0} MB/s bandwidth toxic, {} MB per sample",
        TOXIC_BULK_BYTES / 1_000_000
    );
    let row = || {
        Row::new(
            "proxy bandwidth toxic",
            &measure,
            "MB/s",
            Better::Higher,
            "",
        )
    };
    let upstream = serve(false);
    let toxic = Toxic {
        name: "bandwidth".into(),
        stream: Stream::Upstream,
        toxicity: 1.0,
        kind: ToxicKind::Bandwidth {
            bytes_per_sec: TOXIC_BANDWIDTH,
        },
    };
    let ours = match ours_with(upstream, toxic).await {
        Ok(p) => p,
        Err(e) => return vec![row().note(format!("the proxy did not start: {e}"))],
    };
    let fault = fault_path(upstream, fault::Shape::Bandwidth(TOXIC_BANDWIDTH)).await;
    let (mut our_rates, mut fault_rates) = (vec![], vec![]);
    let mut failures = Vec::new();
    for _ in 0..reps {
        let o = ours.local_addr();
        let mut paths = vec![(o, &mut our_rates)];
        if let Ok((_, a)) = &fault {
            paths.push((*a, &mut fault_rates));
        }
        for (addr, into) in paths {
            match blocking(move || bulk_bytes(addr, TOXIC_BULK_BYTES)).await {
                // GB/s to MB/s.
                Ok(r) => into.push(r * 1000.0),
                Err(e) => {
                    failures.push(e);
                    into.push(f64::NAN);
                }
            }
        }
    }
    let fault_figures = match &fault {
        Ok(_) => Ok(&fault_rates[..]),
        Err(e) => Err(e.as_str()),
    };
    let mut note = format!(
        "ours: a `bandwidth` toxic of {TOXIC_BANDWIDTH} bytes/s on the upstream stream (client to server); fault: {}",
        fault::Shape::Bandwidth(TOXIC_BANDWIDTH).describe()
    );
    if !failures.is_empty() {
        note = format!("{note}; failed samples: {}", failures.join("; "));
    }
    let rows = toxic_rows(
        "proxy bandwidth toxic",
        &measure,
        "MB/s",
        mbs,
        &our_rates,
        fault_figures,
        Better::Higher,
        note,
    );
    ours.stop().await;
    rows
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_negative_added_quantile_is_shown_as_zero_and_flagged() {
        assert_eq!(
            super::added_quantile(&[-3.0, -2.0, -1.0, 5.0], 0.5),
            (0.0, true)
        );
        assert_eq!(
            super::added_quantile(&[1.0, 2.0, 3.0, 4.0], 0.5),
            (2.0, false)
        );
        assert_eq!(
            super::added_quantile(&[1.0, 2.0, 3.0, 40.0], 0.99),
            (40.0, false)
        );
    }

    #[test]
    fn toxic_verdicts_read_the_ratio_on_their_own_row() {
        // 10.4 ms against 10 ms configured: within 5 %; fault's 14 ms is further off.
        let rows = super::toxic_rows(
            "proxy latency toxic",
            "added p50",
            "ms",
            10.0,
            &[10.4, 10.3],
            Ok(&[14.0, 14.2]),
            super::Better::Lower,
            String::new(),
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].peer.as_deref(), Some("configured"));
        assert!((rows[0].ratio.unwrap() - 1.035).abs() < 1e-9);
        assert_eq!(rows[0].met, Some(true));
        assert_eq!(rows[1].met, None);
        assert_eq!(rows[2].met, Some(rows[2].ratio.unwrap() <= 1.0));
        assert_eq!(rows[2].met, Some(true));
        // 9.48 MB/s against 10 shows as 0.95×: met, as printed.
        let shown = super::toxic_rows(
            "proxy bandwidth toxic",
            "throughput",
            "MB/s",
            10.0,
            &[9.48],
            Err("no network"),
            super::Better::Higher,
            String::new(),
        );
        assert_eq!(shown[0].met, Some(true));
        // 11 ms is 10 % off: not met, whatever fault does.
        let off = super::toxic_rows(
            "proxy latency toxic",
            "added p50",
            "ms",
            10.0,
            &[11.0],
            Err("no network"),
            super::Better::Lower,
            String::new(),
        );
        assert_eq!(off[0].met, Some(false));
        assert_eq!(off[2].not_measured.as_deref(), Some("no network"));
        assert_eq!(off[2].met, None);
    }
}
