//! The bench's table: one row per figure and peer, printed as Markdown (so the README can show
//! it as is) and written as JSON.

use serde::Serialize;

/// Repeated measurements of one figure.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
}

impl Stat {
    pub fn of(samples: &[f64]) -> Option<Stat> {
        let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let median = if s.len() % 2 == 1 {
            s[s.len() / 2]
        } else {
            (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: s[0],
            max: s[s.len() - 1],
            samples: samples.to_vec(),
        })
    }
}

/// Which way is better, for the ratio's reading.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The row: `proxy throughput`, `load generator rate`, ...
    pub row: String,
    /// What was measured, with its unit.
    pub measure: String,
    pub unit: String,
    pub ours: Option<Stat>,
    /// The peer (`haproxy`, `wrk`, `direct`), if the row has one.
    pub peer: Option<String>,
    pub peer_figure: Option<Stat>,
    /// Ours over the peer's: the median of the per-repetition ratios (each repetition measures
    /// both back to back, so they share the machine's load at that moment).
    pub ratio: Option<f64>,
    pub better: Better,
    pub goal: String,
    /// `None` when the row has no pass/fail goal or was not measured.
    pub met: Option<bool>,
    /// Why a figure is missing, or how to read it.
    pub note: String,
    /// Why the peer was not measured (it could not be installed or started), printed in place of
    /// its figure.
    pub not_measured: Option<String>,
}

impl Row {
    pub fn new(row: &str, measure: &str, unit: &str, better: Better, goal: &str) -> Row {
        Row {
            row: row.into(),
            measure: measure.into(),
            unit: unit.into(),
            ours: None,
            peer: None,
            peer_figure: None,
            ratio: None,
            better,
            goal: goal.into(),
            met: None,
            note: String::new(),
            not_measured: None,
        }
    }

    pub fn ours(mut self, samples: &[f64]) -> Row {
        self.ours = Stat::of(samples);
        self
    }

    /// The peer's samples, paired with ours by repetition.
    pub fn peer(mut self, name: &str, samples: &[f64]) -> Row {
        self.peer = Some(name.into());
        self.peer_figure = Stat::of(samples);
        if let Some(ours) = &self.ours {
            let ratios: Vec<f64> = ours
                .samples
                .iter()
                .zip(samples)
                .filter(|(_, p)| **p != 0.0)
                .map(|(o, p)| o / p)
                .collect();
            self.ratio = Stat::of(&ratios).map(|s| s.median);
        }
        self
    }

    /// The peer could not be measured: the row says why, on one line, and has no ratio or
    /// verdict (never a figure that was not measured).
    pub fn missing_peer(mut self, name: &str, why: &str) -> Row {
        self.peer = Some(name.into());
        self.peer_figure = None;
        self.ratio = None;
        self.met = None;
        let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
        self.not_measured = Some(why);
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        let note = note.into();
        if self.note.is_empty() {
            self.note = note;
        } else if !note.is_empty() {
            self.note = format!("{}; {note}", self.note);
        }
        self
    }
}

fn figure(stat: &Option<Stat>, unit: &str) -> String {
    match stat {
        None => "—".into(),
        Some(s) if s.samples.len() == 1 => format!("{} {unit}", num(s.median)),
        Some(s) => format!("{} {unit} ({}–{})", num(s.median), num(s.min), num(s.max)),
    }
}

/// Three significant digits, without scientific notation.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The table as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| row | measure | fivehundred: median (min–max) | peer | peer: median (min–max) | ratio | goal | met |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let ratio = r.ratio.map(|x| format!("{x:.2}×")).unwrap_or("—".into());
        let ours = if r.ours.is_none() && !r.note.is_empty() && r.peer.is_none() {
            r.note.clone()
        } else {
            figure(&r.ours, &r.unit)
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.row,
            r.measure,
            ours,
            r.peer.as_deref().unwrap_or("—"),
            match &r.not_measured {
                Some(why) => format!("not measured: {why}"),
                None => figure(&r.peer_figure, &r.unit),
            },
            ratio,
            r.goal,
            met,
        ));
    }
    let notes: Vec<String> = rows
        .iter()
        .filter(|r| !r.note.is_empty() && (r.ours.is_some() || r.peer.is_some()))
        .map(|r| {
            format!(
                "- {} / {}{}: {}",
                r.row,
                r.measure,
                r.peer
                    .as_deref()
                    .map(|p| format!(" vs {p}"))
                    .unwrap_or_default(),
                r.note
            )
        })
        .collect();
    if !notes.is_empty() {
        out.push_str("\nNotes:\n");
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_peer_not_measured_prints_why_on_its_row_and_no_figure_or_verdict() {
        let row = super::Row::new(
            "proxy latency",
            "added p50",
            "µs",
            super::Better::Lower,
            "≤ fault's",
        )
        .ours(&[20.0, 21.0])
        .missing_peer("fault", "`cargo install` failed\n(no network)");
        let md = super::markdown(&[row]);
        let line = md.lines().nth(2).unwrap();
        assert!(
            line.contains("| fault | not measured: `cargo install` failed (no network) | — |"),
            "{line}"
        );
        assert!(line.ends_with("| ≤ fault's | — |"), "{line}");
    }
}
