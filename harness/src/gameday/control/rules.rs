//! The decisions of the game day's control as plain functions of its state: whether a requested
//! fault conflicts with an active one, whether the target was started for it, which faults a
//! revert picks, which are due at their deadlines, what a halt says, which alerts are firing.
//! No lab and no clock here, so each is tested on its own.

use std::time::Duration;

use super::super::params::NamedFault;
use super::{Active, ActiveView, ControlError, HaltOutcome, Selector, Who};
use crate::faults::Fault;
use crate::monitoring::{AlertNotification, AlertStatus};
use crate::target::TargetNeeds;

/// A rate the load may be resumed at: 0 to 10000 requests per second.
pub(super) fn checked_rate(rate: f64) -> Result<f64, ControlError> {
    if !(rate.is_finite() && (0.0..=10_000.0).contains(&rate)) {
        return Err(ControlError::Failed(format!(
            "{rate} is not a rate between 0 and 10000 requests per second"
        )));
    }
    Ok(rate)
}

/// Refuses a request naming a fault that is already active (the same kind with the same
/// parameters): the first such fault, as a conflict.
pub(super) fn conflict(active: &[Active], faults: &[NamedFault]) -> Result<(), ControlError> {
    for nf in faults {
        if let Some(a) = active.iter().find(|a| a.fault == nf.fault) {
            return Err(ControlError::Conflict(format!(
                "{} is already active as #{}; revert it first or change its parameters",
                a.fault.describe(),
                a.id
            )));
        }
    }
    Ok(())
}

/// Refuses a fault whose `needs` the target was not started with (`lab`): covered when adding
/// the fault's needs changes nothing, generic over whatever needs a fault kind may have. The
/// refusal says what the fault needs and how to start the lab for it.
pub(super) fn prepared(
    lab: &TargetNeeds,
    nf: &NamedFault,
    needs: &TargetNeeds,
) -> Result<(), ControlError> {
    if lab.clone().merge(needs.clone()) != *lab {
        return Err(ControlError::Unsupported(format!(
            "{} needs the target started for it ({}), which cannot change while it runs; start the lab with `--prepare {}`",
            nf.fault.describe(),
            needs,
            nf.name.as_deref().unwrap_or("<a named fault of this kind>")
        )));
    }
    Ok(())
}

/// An injection's text on the timeline. The revert's text starts with it, which is how reports
/// pair an injection with its revert.
pub(super) fn injection_label(id: u64, fault: &Fault, by: Who, for_: Duration) -> String {
    format!(
        "#{id} {} (by {by}, for {})",
        fault.describe(),
        humantime::format_duration(for_)
    )
}

/// The ids of the active faults `selector` picks, newest first. `wanted` is what a
/// [`Selector::Matching`] request resolved to.
pub(super) fn selected(
    active: &[Active],
    selector: &Selector,
    wanted: Option<&[Fault]>,
) -> Vec<u64> {
    active
        .iter()
        .filter(|a| match selector {
            Selector::All => true,
            Selector::Id(id) => a.id == *id,
            Selector::Matching(_) => wanted.is_some_and(|w| w.contains(&a.fault)),
        })
        .map(|a| a.id)
        .rev()
        .collect()
}

/// Why a revert that picked nothing is refused: no fault is active, or these are.
pub(super) fn nothing_matches(active: &[ActiveView]) -> ControlError {
    ControlError::NotFound(if active.is_empty() {
        "no fault is active".into()
    } else {
        format!(
            "no active fault matches; active: {}",
            active
                .iter()
                .map(|a| format!("#{} {}", a.id, a.fault))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// How a halt's reverts are told: `by the halt (WHY)`, else `by the halt (WHO)`.
pub(super) fn halt_how(by: Who, why: Option<&str>) -> String {
    match why {
        Some(w) => format!("by the halt ({w})"),
        None => format!("by the halt ({by})"),
    }
}

/// The log's line for a halt: why, what was reverted, whether a load stopped, what could not
/// be reverted.
pub(super) fn halt_detail(why: Option<&str>, out: &HaltOutcome) -> String {
    let mut detail = format!(
        "halt{}: {}; {}",
        why.map(|w| format!(" ({w})")).unwrap_or_default(),
        if out.reverted.is_empty() {
            "no fault was active".to_string()
        } else {
            format!("reverted {}", out.reverted.join(", "))
        },
        if out.load_stopped {
            "the load stopped"
        } else {
            "no load was running"
        }
    );
    if !out.failed.is_empty() {
        detail.push_str(&format!("; could not revert {}", out.failed.join(", ")));
    }
    detail
}

/// The faults the clock reverts at `now_ms`: past their deadline, or with a failed revert, once
/// their retry time has come. Each with how long it was injected for and whether its deadline
/// passed.
pub(super) fn due(active: &[Active], now_ms: f64) -> Vec<(u64, Duration, bool)> {
    active
        .iter()
        .filter(|a| {
            (a.deadline_ms <= now_ms || a.revert_error.is_some()) && a.retry_at_ms <= now_ms
        })
        .map(|a| (a.id, a.for_, a.deadline_ms <= now_ms))
        .collect()
}

/// How a revert by the clock is told: at the deadline, or on a retry of a failed revert.
pub(super) fn clock_how(for_: Duration, expired: bool) -> String {
    if expired {
        format!("at its deadline ({})", humantime::format_duration(for_))
    } else {
        "on a retry".to_string()
    }
}

/// The alerts firing now: those whose last notification (per alert instance) says firing.
/// Sorted, each name once.
pub(super) fn firing(alerts: &[AlertNotification]) -> Vec<String> {
    let mut last: std::collections::BTreeMap<&str, (&str, AlertStatus)> = Default::default();
    for n in alerts {
        last.insert(&n.fingerprint, (&n.alert, n.status));
    }
    let mut names: Vec<String> = last
        .values()
        .filter(|(_, s)| *s == AlertStatus::Firing)
        .map(|(a, _)| a.to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}
