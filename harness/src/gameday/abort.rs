//! Abort conditions: `--abort-if error-rate>5%`, `--abort-if p99>2s`, `--abort-if
//! alert=DatabaseUnavailable`. The lab evaluates them every second on the recording and halts by
//! itself when one holds, saying which and why.
//!
//! Rates and percentiles are taken over a trailing window (10 s unless written
//! `error-rate[30s]>5%`, PromQL's range syntax) and only once the window holds
//! [`MIN_REQUESTS`]: one failed request out of two is not an outage.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// The window a rate or percentile is measured over unless the condition names one.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

/// Fewer requests than this in the window say nothing either way.
pub const MIN_REQUESTS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AbortCondition {
    /// The share of requests answered 5xx or not at all exceeds `above` (0..1).
    ErrorRate { above: f64, window: Duration },
    /// The `quantile` (0..1) of latency exceeds `above`.
    Latency {
        quantile: f64,
        above: Duration,
        window: Duration,
    },
    /// The named alert is firing.
    Alert { name: String },
}

/// What the lab saw over one window, for [`AbortCondition::check`].
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub requests: usize,
    /// 5xx answers and requests without an answer.
    pub errors: usize,
    /// Latencies in ms, any order.
    pub latencies_ms: Vec<f64>,
}

impl AbortCondition {
    /// The window this condition is measured over (none for an alert).
    pub fn window(&self) -> Option<Duration> {
        match self {
            AbortCondition::ErrorRate { window, .. } | AbortCondition::Latency { window, .. } => {
                Some(*window)
            }
            AbortCondition::Alert { .. } => None,
        }
    }

    /// `Some(why)` when the condition holds: `error rate 12.0% (24 of 200 requests in the last
    /// 10s) > 5%`.
    pub fn check(&self, window: &Window, firing: &[String]) -> Option<String> {
        match self {
            AbortCondition::ErrorRate { above, window: w } => {
                if window.requests < MIN_REQUESTS {
                    return None;
                }
                let rate = window.errors as f64 / window.requests as f64;
                (rate > *above).then(|| {
                    format!(
                        "error rate {:.1}% ({} of {} requests in the last {}) > {}",
                        rate * 100.0,
                        window.errors,
                        window.requests,
                        humantime::format_duration(*w),
                        percent(*above)
                    )
                })
            }
            AbortCondition::Latency {
                quantile,
                above,
                window: w,
            } => {
                if window.latencies_ms.len() < MIN_REQUESTS {
                    return None;
                }
                let mut v = window.latencies_ms.clone();
                let q = crate::checks::quantile(&mut v, *quantile)?;
                (q > above.as_secs_f64() * 1000.0).then(|| {
                    format!(
                        "{} latency {:.0}ms over {} requests in the last {} > {}",
                        quantile_name(*quantile),
                        q,
                        v.len(),
                        humantime::format_duration(*w),
                        humantime::format_duration(*above)
                    )
                })
            }
            AbortCondition::Alert { name } => firing
                .iter()
                .any(|a| a == name)
                .then(|| format!("alert {name} is firing")),
        }
    }
}

impl fmt::Display for AbortCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = |w: &Duration| {
            if *w == DEFAULT_WINDOW {
                String::new()
            } else {
                format!("[{}]", humantime::format_duration(*w))
            }
        };
        match self {
            AbortCondition::ErrorRate { above, window } => {
                write!(f, "error-rate{}>{}", range(window), percent(*above))
            }
            AbortCondition::Latency {
                quantile,
                above,
                window,
            } => write!(
                f,
                "{}{}>{}",
                quantile_name(*quantile),
                range(window),
                humantime::format_duration(*above)
            ),
            AbortCondition::Alert { name } => write!(f, "alert={name}"),
        }
    }
}

fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}%")
    } else {
        format!("{p}%")
    }
}

fn quantile_name(q: f64) -> String {
    let p = q * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("p{p:.0}")
    } else {
        format!("p{p}")
    }
}

const HINT: &str =
    "write error-rate>5%, p99>2s or alert=NAME; a window goes in brackets: error-rate[30s]>5%";

impl std::str::FromStr for AbortCondition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = |why: String| Err(format!("`{s}`: {why}; {HINT}"));
        if let Some(name) = s.strip_prefix("alert=") {
            let name = name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                return bad(format!("`{name}` is not an alert name"));
            }
            return Ok(AbortCondition::Alert { name: name.into() });
        }
        let Some((lhs, rhs)) = s.split_once('>') else {
            return bad("not a condition".into());
        };
        let (rhs, lhs) = (rhs.trim(), lhs.trim());
        let (metric, window) = match lhs.split_once('[') {
            Some((m, rest)) => {
                let Some(w) = rest.strip_suffix(']') else {
                    return bad("a window is written [30s]".into());
                };
                match crate::scenario::parse_duration(w.trim()) {
                    Ok(d) if d >= Duration::from_secs(1) => (m.trim(), d),
                    Ok(_) => return bad("a window is at least 1s".into()),
                    Err(e) => return bad(format!("`{w}` is not a duration: {e}")),
                }
            }
            None => (lhs, DEFAULT_WINDOW),
        };
        if metric == "error-rate" {
            let above = match rhs.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
                None => rhs.parse::<f64>(),
            };
            return match above {
                Ok(a) if (0.0..1.0).contains(&a) => {
                    Ok(AbortCondition::ErrorRate { above: a, window })
                }
                Ok(_) => bad("an error rate limit is between 0% and 100% (exclusive)".into()),
                Err(_) => bad(format!("`{rhs}` is not a percentage")),
            };
        }
        if let Some(p) = metric.strip_prefix('p') {
            let quantile = match p.parse::<f64>() {
                Ok(p) if p > 0.0 && p < 100.0 => p / 100.0,
                _ => return bad(format!("`{metric}` is not a percentile (p50, p99, p99.9)")),
            };
            return match crate::scenario::parse_duration(rhs) {
                Ok(above) if !above.is_zero() => Ok(AbortCondition::Latency {
                    quantile,
                    above,
                    window,
                }),
                Ok(_) => bad("a latency limit is longer than zero".into()),
                Err(e) => bad(format!("`{rhs}` is not a duration: {e}")),
            };
        }
        bad(format!("unknown measure `{metric}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> AbortCondition {
        s.parse().unwrap()
    }

    #[test]
    fn the_three_forms_parse() {
        assert_eq!(
            parse("error-rate>5%"),
            AbortCondition::ErrorRate {
                above: 0.05,
                window: DEFAULT_WINDOW
            }
        );
        assert_eq!(
            parse("p99>2s"),
            AbortCondition::Latency {
                quantile: 0.99,
                above: Duration::from_secs(2),
                window: DEFAULT_WINDOW
            }
        );
        assert_eq!(
            parse("alert=DatabaseUnavailable"),
            AbortCondition::Alert {
                name: "DatabaseUnavailable".into()
            }
        );
    }

    #[test]
    fn windows_fractions_and_odd_percentiles_parse() {
        assert_eq!(
            parse("error-rate[30s]>0.1"),
            AbortCondition::ErrorRate {
                above: 0.1,
                window: Duration::from_secs(30)
            }
        );
        match parse(" p99.9 > 500ms ") {
            AbortCondition::Latency {
                quantile,
                above,
                window,
            } => {
                assert!((quantile - 0.999).abs() < 1e-12, "{quantile}");
                assert_eq!(
                    (above, window),
                    (Duration::from_millis(500), DEFAULT_WINDOW)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conditions_print_as_they_are_written() {
        for s in [
            "error-rate>5%",
            "error-rate[30s]>12.5%",
            "p99>2s",
            "p50[1m]>300ms",
            "alert=HighErrorRate",
        ] {
            assert_eq!(parse(s).to_string(), s);
        }
    }

    #[test]
    fn mistakes_say_what_to_write() {
        for bad in [
            "error-rate>150%",
            "error-rate>lots",
            "p100>1s",
            "p99>0s",
            "p99>fast",
            "error-rate[0s]>5%",
            "error-rate[30s>5%",
            "cpu>90%",
            "alert=",
            "alert=two words",
            "error-rate",
        ] {
            let e = bad.parse::<AbortCondition>().unwrap_err();
            assert!(e.contains("error-rate>5%"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_error_rate_holds_only_above_its_limit_and_with_enough_requests() {
        let c = parse("error-rate>5%");
        let w = |requests, errors| Window {
            requests,
            errors,
            latencies_ms: vec![],
        };
        assert!(c.check(&w(100, 5), &[]).is_none(), "5% is not above 5%");
        let why = c.check(&w(100, 6), &[]).unwrap();
        assert!(why.contains("6.0%") && why.contains("> 5%"), "{why}");
        assert!(c.check(&w(MIN_REQUESTS - 1, 9), &[]).is_none());
    }

    #[test]
    fn a_latency_condition_reads_the_percentile() {
        let c = parse("p99>2s");
        let mut latencies_ms = vec![10.0; 98];
        latencies_ms.extend([2500.0, 2600.0]);
        let w = Window {
            requests: 100,
            errors: 0,
            latencies_ms,
        };
        assert!(c.check(&w, &[]).unwrap().starts_with("p99 latency"));
        assert!(parse("p50>2s").check(&w, &[]).is_none());
    }

    #[test]
    fn an_alert_condition_holds_while_the_alert_fires() {
        let c = parse("alert=DatabaseUnavailable");
        assert!(
            c.check(&Window::default(), &["CircuitOpen".into()])
                .is_none()
        );
        assert_eq!(
            c.check(&Window::default(), &["DatabaseUnavailable".into()]),
            Some("alert DatabaseUnavailable is firing".into())
        );
    }
}
