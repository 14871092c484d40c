//! Invalid input: requests generated with proptest from the requests the scenario sends (its
//! load's mix, or the fault's own `requests`), sent to the target while the fault lasts. Each
//! keeps its request's shape and varies what a client controls: path parameters and query
//! values (huge, negative and fractional numbers, unicode, dot segments, raw bytes), the JSON
//! body (missing and extra members, wrong types, numbers beyond every range, truncated or not
//! JSON at all), the content type and the `Idempotency-Key`. No input may answer 5xx or go
//! unanswered: bad input is the client's mistake, a 4xx.
//!
//! Each request is recorded with the scenario's load (its route marked `(generated)`), so the
//! usual checks judge it. On the first that fails, proptest shrinks it: it tries simpler and
//! simpler versions against the real target (each one a real, recorded request) and keeps the
//! smallest that still fails, which the fault's own `invalid-input` check then shows.
//!
//! Requests go one at a time, as fast as the target answers: this fault looks for wrong answers,
//! not for capacity. Every draw comes from the run's seed, so a failure reproduces with it.
//!
//! `template.rs` renders the requests to start from, `generate.rs` varies them (`kept.rs` makes
//! shrinking try the rendered value first), `send.rs` sends and records them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::Lab;
use crate::load::MixEntry;
use crate::record::{EventKind, Phase, Recorder, RequestRecord};
use crate::verdict::{CheckResult, Evidence, Verdict};

mod generate;
mod kept;
mod send;
mod template;
#[cfg(test)]
mod tests;

use generate::Generated;
use send::{failure, send};
use template::Template;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidInput {
    /// How many generated requests to send (before any shrinking). Default 200.
    #[serde(default = "default_cases")]
    pub cases: u32,
    /// The requests to vary, as in `[load] mix`. Left out, a scenario's fault varies the
    /// scenario's own load (see [`FaultKind::fit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Vec<MixEntry>>,
}

fn default_cases() -> u32 {
    200
}

/// Shrinking stops after this many steps: each is a real request.
const MAX_SHRINK_STEPS: u32 = 200;
/// A generated request that takes longer than this counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl InvalidInput {
    /// The requests to start from, rendered with `seed`: those with something to vary.
    fn templates(&self, seed: u64) -> Result<Vec<Template>, String> {
        let Some(requests) = &self.requests else {
            return Err(
                "no requests to vary: the fault varies its scenario's load, or takes requests = [...] as in [load] mix"
                    .into(),
            );
        };
        let all = template::templates(requests, seed)?;
        let varied: Vec<Template> = all.into_iter().filter(Template::varies).collect();
        if varied.is_empty() {
            return Err("there is nothing a client could get wrong in these requests: no path parameter, query, body or Idempotency-Key".into());
        }
        Ok(varied)
    }
}

// ---------------------------------------------------------------------------------------------
// The fault.

/// The generator's run, kept in the lab until the revert.
pub struct Running {
    stop: Arc<AtomicBool>,
    task: tokio::sync::oneshot::Receiver<Verdicts>,
}

/// The generator's thread stack: proptest's value trees and the HTTP client's futures, driven
/// with `block_on` on that thread, outgrow a runtime thread's 2 MiB in a debug build.
pub(crate) const GENERATOR_STACK: usize = 64 << 20;

/// What the run found.
#[derive(Default)]
struct Verdicts {
    sent: u64,
    failed: u64,
    /// The smallest failing request after shrinking, with its recorded answer.
    smallest: Option<(Generated, RequestRecord, u32)>,
    /// Set when the run stopped for another reason than passing or failing.
    aborted: Option<String>,
    /// The run was stopped by the revert before it had sent every case.
    cut_short: bool,
}

impl FaultKind for InvalidInput {
    const HINT: &'static str = "an invalid-input fault takes optionally cases = 200 (how many generated requests) and requests = [...] as in [load] mix (default: the scenario's load)";
    const ORPHAN: &'static str = "nothing to undo: the request generator ended with the run";
    type Held = Running;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=10_000).contains(&self.cases) {
            return Err((
                "cases",
                format!("cases {} is out of range (1 to 10000)", self.cases),
            ));
        }
        Ok(())
    }

    /// The requests named here completed from the lab file's, else the scenario's load.
    /// Requests named here are rendered now, so that what the load refuses, or a list with
    /// nothing to vary, is reported before anything runs; a load with nothing to vary is
    /// reported by the injection.
    fn fit(
        &mut self,
        lab: &crate::labfile::LabFile,
        mix: &[MixEntry],
    ) -> Result<(), (&'static str, String)> {
        let named = self.requests.is_some();
        let requests = self.requests.get_or_insert_with(|| {
            // The load's requests, and every operation the service documents that they do not
            // already send.
            let mut all = mix.to_vec();
            all.extend(
                lab.openapi
                    .iter()
                    .filter(|o| !mix.iter().any(|m| m.request == o.request))
                    .cloned(),
            );
            all
        });
        for m in requests.iter_mut() {
            *m = m.resolved(&lab.requests);
        }
        if named {
            self.templates(0).map_err(|e| ("requests", e))?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("invalid input: {} generated requests", self.cases)
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let seed = lab.seed ^ super::seed_for(&self.describe());
        let templates = self.templates(seed).map_err(FaultError::Failed)?;
        let mut bytes = [0u8; 32];
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(seed.rotate_left(i as u32 * 16) ^ i as u64).to_le_bytes());
        }
        let config = Config {
            cases: self.cases,
            max_shrink_iters: MAX_SHRINK_STEPS,
            failure_persistence: None,
            // Each case is a request to a live service: no forking, no per-case timeout beyond
            // the request's own.
            fork: false,
            timeout: 0,
            ..Config::default()
        };
        let runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FaultError::Failed(format!("no HTTP client: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let context = Context {
            client,
            base_url: lab.base_url.clone(),
            recorder: lab.recorder.clone(),
            runtime: tokio::runtime::Handle::current(),
            stop: stop.clone(),
        };
        // proptest's runner is synchronous: it runs on a thread of its own and drives each
        // request on the runtime.
        let (done, task) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("invalid-input".into())
            .stack_size(GENERATOR_STACK)
            .spawn(move || {
                let _ = done.send(context.run(runner, &templates));
            })
            .map_err(|e| FaultError::Failed(format!("cannot start the request generator: {e}")))?;
        *held = Some(Running { stop, task });
        Ok(())
    }

    /// Stops generating (what is in flight finishes), then records what was found: an event,
    /// and the `invalid-input` check with the smallest failing request as its evidence.
    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let Some(Running { stop, task }) = held.take() else {
            return Ok(()); // never started
        };
        stop.store(true, Ordering::SeqCst);
        let verdicts = tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(5), task)
            .await
            .map_err(|_| FaultError::Failed("the request generator did not stop".into()))?
            .map_err(|_| FaultError::Failed("the request generator failed".into()))?;
        // The target logs an answer as it sends it; give the last line a moment to arrive.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let check = self.check(lab, &verdicts);
        lab.recorder.event(EventKind::Note, check.summary.clone());
        lab.record_check(check);
        Ok(())
    }
}

impl InvalidInput {
    fn check(&self, lab: &Lab, v: &Verdicts) -> CheckResult {
        let mut summary;
        let mut evidence = Vec::new();
        let verdict = match &v.smallest {
            Some((request, record, steps)) => {
                summary = format!(
                    "{} of {} generated requests failed; the smallest failing one (after {steps} shrink steps): {} {}",
                    v.failed,
                    v.sent,
                    request.show(),
                    failure(record).unwrap_or_default()
                );
                let logs = lab.recorder.with(|r| {
                    r.request_id(record)
                        .map(|id| r.logs_for(id).into_iter().cloned().collect())
                        .unwrap_or_default()
                });
                evidence.push(Evidence::Request {
                    request: Box::new(record.clone()),
                    logs,
                    why: "the smallest generated request that still fails".into(),
                });
                Verdict::Fail
            }
            None if v.aborted.is_some() => {
                summary = format!(
                    "the generator stopped early: {}",
                    v.aborted.as_deref().unwrap_or_default()
                );
                Verdict::Fail
            }
            None => {
                summary = format!(
                    "{} generated requests (malformed JSON, wrong types, extreme numbers, unicode, missing fields, odd headers and ids): none answered 5xx or went unanswered",
                    v.sent
                );
                Verdict::Pass
            }
        };
        if v.cut_short {
            summary.push_str(&format!(
                " (the fault ended after {} of {} cases)",
                v.sent, self.cases
            ));
        }
        CheckResult {
            name: "invalid-input".into(),
            phase: Some(Phase::Fault),
            verdict,
            summary,
            evidence,
        }
    }
}

/// What the blocking thread needs.
struct Context {
    client: reqwest::Client,
    base_url: String,
    recorder: Arc<Recorder>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
}

impl Context {
    fn run(self, mut runner: TestRunner, templates: &[Template]) -> Verdicts {
        // Built here: a strategy is not `Send`.
        let requests = generate::requests(templates);
        // Interior mutability: proptest takes the test as `Fn`.
        let state = Mutex::new((
            Verdicts::default(),
            Vec::<(Generated, RequestRecord)>::new(),
        ));
        let shrink_steps = std::sync::atomic::AtomicU32::new(0);
        let result = runner.run(&requests, |request| {
            if self.stop.load(Ordering::SeqCst) {
                if let Ok(mut s) = state.lock() {
                    s.0.cut_short = true;
                }
                return Ok(());
            }
            let seq = state.lock().map(|s| s.0.sent).unwrap_or(0);
            let record = self.runtime.block_on(send(
                &self.client,
                &self.base_url,
                &self.recorder,
                seq,
                &request,
            ));
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            s.0.sent += 1;
            if s.0.failed > 0 {
                shrink_steps.fetch_add(1, Ordering::Relaxed);
            }
            match failure(&record) {
                None => Ok(()),
                Some(why) => {
                    s.0.failed += 1;
                    s.1.push((request, record));
                    Err(TestCaseError::fail(why))
                }
            }
        });
        let (mut verdicts, failures) = state.into_inner().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {}
            Err(TestError::Fail(_, smallest)) => {
                // The record of the smallest failing request: its last send.
                let record = failures
                    .iter()
                    .rev()
                    .find(|(r, _)| *r == smallest)
                    .map(|(_, rec)| rec.clone());
                if let Some(record) = record {
                    verdicts.smallest =
                        Some((smallest, record, shrink_steps.load(Ordering::Relaxed)));
                }
            }
            Err(TestError::Abort(why)) => verdicts.aborted = Some(why.to_string()),
        }
        verdicts
    }
}
