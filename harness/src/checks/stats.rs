//! Statistics over requests that checks, reports and game days share: nearest-rank quantiles and
//! status counts (`200×40, 503×3, no answer×1`).

use std::collections::BTreeMap;

/// The q-quantile (0..=1) of `values`, nearest rank.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// `200×40, 503×3, no answer×1`.
pub fn count_statuses(statuses: impl Iterator<Item = Option<u16>>) -> String {
    let mut counts: BTreeMap<Option<u16>, usize> = BTreeMap::new();
    for s in statuses {
        *counts.entry(s).or_default() += 1;
    }
    counts
        .iter()
        .map(|(s, n)| format!("{}×{n}", describe_status(*s)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A status as a count shows it: the number, or `no answer`.
pub(super) fn describe_status(s: Option<u16>) -> String {
    match s {
        Some(s) => s.to_string(),
        None => "no answer".into(),
    }
}
