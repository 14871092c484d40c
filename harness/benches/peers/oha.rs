//! oha, an open-loop HTTP load generator (crates.io), next to ours: the peer that works the way
//! ours does. With `-q` it sends at a fixed rate whatever the answers do, and with
//! `--latency-correction` it times each request from when it was due, as ours does; wrk and hey
//! are closed loops and time from the send. Installed from crates.io where missing (`crates.rs`).
//!
//! Three comparisons, each measured back to back with ours in the same repetition: the highest
//! rate sustained under the same rule as ours, how close the achieved rate comes to a fixed
//! plan, and the latency at a low fixed rate (where the server is idle and what is measured is
//! the generator itself).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fivehundred::load::{self, LoadPlan, MixEntry};

use crate::crates;
use crate::table::{Better, Row};

/// Seconds per run, for both generators.
const SECONDS: u64 = 3;
/// Connections oha may open: enough for its top rate against a fast local server.
const CONNECTIONS: u32 = 32;
/// Steps of the rate search, as fractions of the reference rate (ours, measured just before).
const STEPS: &[f64] = &[0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5];
/// The fixed rates of the accuracy and latency comparisons.
const ACCURACY_RATE: f64 = 2000.0;
const LOW_RATE: f64 = 200.0;

/// What one oha run reported.
#[derive(Debug, Clone, Copy)]
pub struct OhaRun {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Whether every request was answered 200.
    pub all_ok: bool,
}

/// oha at a fixed `rate` for [`SECONDS`], timed from each request's due time.
pub fn run(oha: &Path, url: &str, rate: f64) -> Result<OhaRun, String> {
    let out = Command::new(oha)
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "--latency-correction",
        ])
        .args(["-z", &format!("{SECONDS}s"), "-q", &format!("{rate:.0}")])
        .args(["-c", &CONNECTIONS.to_string()])
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run oha: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "oha failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Reads oha's JSON summary (seconds in, milliseconds out).
fn parse(text: &str) -> Result<OhaRun, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("oha's output is not JSON ({e})"))?;
    let num = |v: &serde_json::Value, what: &str| {
        v.as_f64()
            .ok_or_else(|| format!("no {what} in oha's output"))
    };
    let statuses = v["statusCodeDistribution"]
        .as_object()
        .ok_or("no statusCodeDistribution in oha's output")?;
    let ok: u64 = statuses.get("200").and_then(|n| n.as_u64()).unwrap_or(0);
    let answered: u64 = statuses.values().filter_map(|n| n.as_u64()).sum();
    let errors: u64 = v["errorDistribution"]
        .as_object()
        .map(|e| e.values().filter_map(|n| n.as_u64()).sum())
        .unwrap_or(0);
    Ok(OhaRun {
        rate: num(&v["summary"]["requestsPerSec"], "requestsPerSec")?,
        p50_ms: num(&v["latencyPercentiles"]["p50"], "p50")? * 1000.0,
        p99_ms: num(&v["latencyPercentiles"]["p99"], "p99")? * 1000.0,
        all_ok: ok == answered && errors == 0 && answered > 0,
    })
}

/// Our generator's run at a fixed rate: (achieved rate, p50 ms, p99 ms from the due time,
/// every answer 200).
async fn ours(base: &str, rate: f64) -> Result<OhaRun, String> {
    let mut plan = LoadPlan::new(base, rate, vec![MixEntry::new(1, "GET /products/7")]);
    plan.duration = Some(Duration::from_secs(SECONDS));
    plan.timeout = Duration::from_secs(2);
    let s = load::run_summary(&plan).await.map_err(|e| e.to_string())?;
    let ok = s.statuses.get(&200).copied().unwrap_or(0);
    Ok(OhaRun {
        rate: s.outcome.achieved_rate,
        p50_ms: s.p50_ms,
        p99_ms: s.p99_ms,
        all_ok: ok == s.outcome.progress.sent,
    })
}

/// The rule both generators' top rates are held to: the plan kept within 1 %, every answer
/// 200, p99 from the due time within `p99_ms`.
fn sustained(r: &OhaRun, planned: f64, p99_ms: f64) -> bool {
    r.rate >= 0.99 * planned && r.all_ok && r.p99_ms <= p99_ms
}

async fn oha_blocking(oha: &Path, url: &str, rate: f64) -> Result<OhaRun, String> {
    let (oha, url) = (oha.to_path_buf(), url.to_string());
    tokio::task::spawn_blocking(move || run(&oha, &url, rate))
        .await
        .map_err(|e| e.to_string())?
}

/// The lowest fraction of the reference tried when even the lowest step is not sustained.
const FLOOR: f64 = 1.0 / 64.0;

/// The highest step sustained, searching upwards until the first that is not. A generator that
/// keeps not even the lowest step is tried at half of it, and half again (down to [`FLOOR`]),
/// so its figure is a rate it kept rather than a zero beside a ratio that left it out.
async fn top_rate<F, Fut>(reference: f64, p99_ms: f64, mut one: F) -> f64
where
    F: FnMut(f64) -> Fut,
    Fut: std::future::Future<Output = Result<OhaRun, String>>,
{
    let mut best = 0.0;
    for f in STEPS {
        let rate = (reference * f).round();
        match one(rate).await {
            Ok(r) if sustained(&r, rate, p99_ms) => best = rate,
            _ => break,
        }
    }
    let mut f = STEPS[0] / 2.0;
    while best == 0.0 && f >= FLOOR {
        let rate = (reference * f).round();
        if matches!(one(rate).await, Ok(r) if sustained(&r, rate, p99_ms)) {
            best = rate;
        }
        f /= 2.0;
    }
    best
}

/// The rows: `reference` is a rate near the top of both (ours, from the rate rows), `p99_ms`
/// the sustained rule's bound.
pub async fn rows(reps: usize, base: &str, reference: f64, p99_ms: f64) -> Vec<Row> {
    let url = format!("{base}/products/7");
    let found = tokio::task::spawn_blocking(|| crates::ensure(crates::OHA))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    let oha = match found {
        Ok(o) => o,
        Err(e) => return not_measured(&e),
    };
    let (mut our_top, mut oha_top) = (vec![], vec![]);
    let (mut our_err, mut oha_err) = (vec![], vec![]);
    let (mut our_p50, mut our_p99, mut oha_p50, mut oha_p99) = (vec![], vec![], vec![], vec![]);
    let mut problems = Vec::new();
    let per_mille = |r: &Result<OhaRun, String>, planned: f64| {
        r.as_ref()
            .map_or(f64::NAN, |r| (r.rate - planned).abs() / planned * 1000.0)
    };
    for _ in 0..reps {
        our_top.push(top_rate(reference, p99_ms, |rate| ours(base, rate)).await);
        oha_top.push(top_rate(reference, p99_ms, |rate| oha_blocking(&oha, &url, rate)).await);
        let (o, h) = (
            ours(base, ACCURACY_RATE).await,
            oha_blocking(&oha, &url, ACCURACY_RATE).await,
        );
        our_err.push(per_mille(&o, ACCURACY_RATE));
        oha_err.push(per_mille(&h, ACCURACY_RATE));
        let (o, h) = (
            ours(base, LOW_RATE).await,
            oha_blocking(&oha, &url, LOW_RATE).await,
        );
        for (r, p50, p99) in [
            (&o, &mut our_p50, &mut our_p99),
            (&h, &mut oha_p50, &mut oha_p99),
        ] {
            match r {
                Ok(r) => {
                    p50.push(r.p50_ms * 1000.0);
                    p99.push(r.p99_ms * 1000.0);
                }
                Err(e) => {
                    problems.push(e.clone());
                    p50.push(f64::NAN);
                    p99.push(f64::NAN);
                }
            }
        }
    }
    let version = crates::version(&oha).unwrap_or_else(|| "oha".into());
    let peer = format!("{version} (-q, --latency-correction, -c {CONNECTIONS}, open loop)");
    // Every verdict reads the ratio printed beside it, as printed (two decimals).
    let judged = |row: Row, met: fn(f64) -> bool| {
        let m = row.ratio.map(|r| met((r * 100.0).round() / 100.0));
        Row { met: m, ..row }
    };
    let [top, accuracy, p50, p99] = heads();
    vec![
        judged(
            top.ours(&our_top).peer(&peer, &oha_top).note(format!(
                "steps of {reference:.0}/s × {STEPS:?} (halved below the lowest until one is sustained), {SECONDS} s each; sustained = achieved ≥ 99 % of the plan, all 200, p99 ≤ {p99_ms} ms from the due time; per repetition: ours {our_top:?}, oha {oha_top:?}"
            )),
            |x| x >= 1.0,
        ),
        judged(accuracy.ours(&our_err).peer(&peer, &oha_err), |x| x <= 1.0),
        judged(p50.ours(&our_p50).peer(&peer, &oha_p50), |x| x <= 1.0).note(problems.join("; ")),
        judged(p99.ours(&our_p99).peer(&peer, &oha_p99), |x| x <= 1.0),
    ]
}

/// The four rows before anything is measured: what each compares and its goal.
fn heads() -> [Row; 4] {
    let lat = |q: &str| {
        Row::new(
            "load generator accuracy",
            &format!("latency {q} from the due time at {LOW_RATE:.0}/s"),
            "µs",
            Better::Lower,
            "≤ oha's",
        )
    };
    [
        Row::new(
            "load generator rate",
            "highest sustained rate, GET, one local server, open loop both",
            "req/s",
            Better::Higher,
            "≥ oha",
        ),
        Row::new(
            "load generator accuracy",
            &format!("rate error at {ACCURACY_RATE:.0}/s planned, |achieved − planned|"),
            "‰",
            Better::Lower,
            "≤ oha's",
        ),
        lat("p50"),
        lat("p99"),
    ]
}

/// The rows when oha could not be installed or run: each says so, none has a figure.
fn not_measured(why: &str) -> Vec<Row> {
    heads()
        .into_iter()
        .map(|r| r.missing_peer("oha", why))
        .collect()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_top_rate_is_the_highest_step_kept_and_below_the_lowest_a_halved_one_never_zero() {
        use super::{OhaRun, top_rate};
        // A generator that keeps every rate up to `limit`.
        fn up_to(limit: f64) -> impl FnMut(f64) -> std::future::Ready<Result<OhaRun, String>> {
            move |rate| {
                std::future::ready(Ok(OhaRun {
                    rate,
                    p50_ms: 0.1,
                    p99_ms: if rate <= limit { 1.0 } else { 500.0 },
                    all_ok: true,
                }))
            }
        }
        // Steps of 1000: 500, 700, 850, 1000 kept; 1150 not.
        assert_eq!(top_rate(1000.0, 50.0, up_to(1100.0)).await, 1000.0);
        // Not even 40000 (half of 80000): 20000 is not kept either, 10000 is.
        assert_eq!(top_rate(80000.0, 50.0, up_to(15000.0)).await, 10000.0);
        // Nothing down to a 64th: zero, and said so by the row's note.
        assert_eq!(top_rate(80000.0, 50.0, up_to(10.0)).await, 0.0);
    }

    #[test]
    fn oha_json_is_read_in_milliseconds_and_any_error_spoils_the_run() {
        let text = r#"{"summary":{"successRate":1.0,"requestsPerSec":1999.5},
            "latencyPercentiles":{"p50":0.00012,"p99":0.0021},
            "statusCodeDistribution":{"200":5998},"errorDistribution":{}}"#;
        let r = super::parse(text).unwrap();
        assert_eq!(r.rate, 1999.5);
        assert!((r.p50_ms - 0.12).abs() < 1e-9 && (r.p99_ms - 2.1).abs() < 1e-9);
        assert!(r.all_ok);
        let failed = text.replace(
            r#""errorDistribution":{}"#,
            r#""errorDistribution":{"connection refused":3}"#,
        );
        assert!(!super::parse(&failed).unwrap().all_ok);
        assert!(super::parse("not json").is_err());
    }

    #[test]
    fn every_row_says_oha_was_not_measured_and_shows_no_figure() {
        let rows = super::not_measured("no network");
        assert_eq!(rows.len(), 4);
        for r in rows {
            assert_eq!(r.not_measured.as_deref(), Some("no network"));
            assert!(r.ours.is_none() && r.peer_figure.is_none() && r.met.is_none());
        }
    }
}
