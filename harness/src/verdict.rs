//! The vocabulary of judgement: a check's [`Verdict`], its [`CheckResult`] and the [`Evidence`]
//! it carries. A leaf module: checks make these, faults that judge what they saw make them too,
//! and every report reads them.

use serde::Serialize;

use crate::record::{LogRecord, Phase, ProbeRecord, RequestRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Stable name: `status`, `latency`, `problem-json`, `no-leaks`, `request-id`,
    /// `retry-after`, `readyz`, `livez`, `metric`, `recovery`, `no-restart`, `data-integrity`,
    /// `dependency` (a lab-file service never used a dependency's proxy).
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    pub verdict: Verdict,
    /// One line: what was checked, and on failure what went wrong.
    pub summary: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

impl CheckResult {
    pub fn new(name: &str, phase: Option<Phase>, verdict: Verdict, summary: String) -> Self {
        Self {
            name: name.into(),
            phase,
            verdict,
            summary,
            evidence: Vec::new(),
        }
    }

    pub fn with(mut self, evidence: Vec<Evidence>) -> Self {
        self.evidence = evidence;
        self
    }

    /// `status[fault]`: how the check is named in reports and JUnit.
    pub fn id(&self) -> String {
        match self.phase {
            Some(p) => format!("{}[{p}]", self.name),
            None => self.name.clone(),
        }
    }
}

/// What a check shows as proof.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// A request and its response, with the target's log lines carrying its request id.
    Request {
        request: Box<RequestRecord>,
        logs: Vec<LogRecord>,
        /// What is wrong with it.
        why: String,
    },
    Metric {
        series: String,
        before: f64,
        after: f64,
    },
    Probe {
        probe: ProbeRecord,
    },
    Logs {
        lines: Vec<LogRecord>,
    },
    Note {
        text: String,
    },
}
