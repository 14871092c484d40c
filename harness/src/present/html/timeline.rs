//! The timeline of one scenario, drawn as inline SVG: requests per second stacked by status
//! class, the p99 latency line, the phases and the fault window, event markers, and under the
//! time axis one band each for the fault, `/readyz`, `/livez` and the alerts, then a legend.
//!
//! The recording's requests are aggregated into one-second buckets, so a long run draws in the
//! same size as a short one. [`Frame`] holds the scales every part of the drawing shares.

use std::fmt::Write as _;

use super::text::{esc, ms_label, num, secs, shorten};
use crate::present::observed::{self, AlertMark};
use crate::record::{EventKind, Phase, ProbeRecord, Recording, RequestRecord};

/// Per-second aggregate of the requests due in that second.
#[derive(Debug, Default, Clone)]
struct Bucket {
    /// 2xx (and other non-errors), 4xx, 5xx, no answer.
    counts: [u32; 4],
    latencies: Vec<f64>,
}

const CLASSES: [(&str, &str); 4] = [
    ("2xx", "#4caf50"),
    ("4xx", "#ffb300"),
    ("5xx", "#e53935"),
    ("no answer", "#6a1b9a"),
];

fn class_index(r: &RequestRecord) -> usize {
    match r.status() {
        None => 3,
        Some(s) if s >= 500 => 2,
        Some(s) if s >= 400 => 1,
        Some(_) => 0,
    }
}

// Geometry of the drawing, in SVG user units (the SVG scales to the page width).
const W: f64 = 960.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 66.0;
const TOP: f64 = 30.0;
const PLOT_H: f64 = 190.0;
const BAND_H: f64 = 12.0;
/// Most rows the alert band gets; more alerts share the last one.
const MAX_ALERT_ROWS: usize = 6;

/// The scales and rows of one drawing: the time range in whole seconds, both y axes, and where
/// each band sits.
struct Frame {
    t0: f64,
    t1: f64,
    /// Seconds, and so buckets, on the time axis.
    n: usize,
    plot_w: f64,
    y_max: f64,
    y_step: f64,
    l_max: f64,
    l_step: f64,
    bottom: f64,
    fault_y: f64,
    ready_y: f64,
    live_y: f64,
    alert_y: f64,
    alert_rows: usize,
    legend_y: f64,
    height: f64,
}

impl Frame {
    fn new(t0: f64, t1: f64, buckets: &[Bucket], p99: &[Option<f64>], alert_names: usize) -> Self {
        let max_count = buckets
            .iter()
            .map(|b| b.counts.iter().sum::<u32>())
            .max()
            .unwrap_or(0);
        // Requests come in whole numbers: no axis step below one.
        let (y_max, y_step) = match nice_axis(max_count.max(1) as f64) {
            (_, step) if step < 1.0 => (max_count.max(1) as f64, 1.0),
            axis => axis,
        };
        let max_lat = p99.iter().flatten().copied().fold(0.0, f64::max);
        let (l_max, l_step) = nice_axis(max_lat.max(1.0));
        let bottom = TOP + PLOT_H;
        let fault_y = bottom + 26.0;
        let ready_y = fault_y + BAND_H + 4.0;
        let live_y = ready_y + BAND_H + 4.0;
        let alert_y = live_y + BAND_H + 4.0;
        let alert_rows = alert_names.clamp(1, MAX_ALERT_ROWS);
        let legend_y = alert_y + alert_rows as f64 * (BAND_H + 2.0) + 24.0;
        Frame {
            t0,
            t1,
            n: (t1 - t0) as usize,
            plot_w: W - LEFT - RIGHT,
            y_max,
            y_step,
            l_max,
            l_step,
            bottom,
            fault_y,
            ready_y,
            live_y,
            alert_y,
            alert_rows,
            legend_y,
            height: legend_y + 34.0,
        }
    }

    /// The x of a moment in seconds.
    fn x(&self, t_s: f64) -> f64 {
        LEFT + (t_s - self.t0) / (self.t1 - self.t0) * self.plot_w
    }

    /// The x of a moment in milliseconds.
    fn xm(&self, ms: f64) -> f64 {
        self.x(ms / 1000.0)
    }

    /// The y of a count of requests per second (the left axis).
    fn y(&self, c: f64) -> f64 {
        TOP + PLOT_H - c / self.y_max * PLOT_H
    }

    /// The y of a latency (the right axis).
    fn yl(&self, ms: f64) -> f64 {
        TOP + PLOT_H - ms / self.l_max * PLOT_H
    }

    /// A span in milliseconds as x coordinates, clipped to the plot.
    fn span(&self, a: f64, b: f64) -> (f64, f64) {
        (self.xm(a).max(LEFT), self.xm(b).min(LEFT + self.plot_w))
    }
}

/// Draws the timeline of one scenario.
pub(super) fn timeline_svg(h: &mut String, rec: &Recording, id: &str) {
    let Some((lo, hi)) = time_range(rec) else {
        h.push_str("<p class=\"absent\">nothing was recorded, so there is no timeline</p>\n");
        return;
    };
    let t0 = (lo / 1000.0).floor();
    let t1 = ((hi / 1000.0).ceil()).max(t0 + 1.0);
    let mut buckets = bucket(rec, t0, (t1 - t0) as usize);
    let p99: Vec<Option<f64>> = buckets
        .iter_mut()
        .map(|b| crate::checks::quantile(&mut b.latencies, 0.99))
        .collect();
    // One row per alert that fired, in the order they first fired.
    let alerts = observed::alert_marks(rec);
    let mut alert_names: Vec<&str> = Vec::new();
    for a in alerts.iter().filter(|a| a.firing) {
        if !alert_names.contains(&a.alert.as_str()) {
            alert_names.push(&a.alert);
        }
    }
    let f = Frame::new(t0, t1, &buckets, &p99, alert_names.len());

    let _ = writeln!(
        h,
        "<svg class=\"timeline\" id=\"timeline-{id}\" viewBox=\"0 0 {W} {}\" \
         role=\"img\" aria-label=\"timeline: requests per second by status class, p99 latency, \
         fault window, readiness and events\" xmlns=\"http://www.w3.org/2000/svg\" \
         font-family=\"system-ui, sans-serif\" font-size=\"11\">",
        f.height
    );
    let _ = writeln!(
        h,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{PLOT_H}\" fill=\"#fafafa\" \
         stroke=\"#ccc\"/>",
        f.plot_w
    );
    phases(h, rec, &f);
    fault_shading(h, rec, &f);
    y_axes(h, &f);
    bars(h, &buckets, &p99, &f);
    p99_line(h, &p99, &f);
    event_markers(h, rec, &f);
    x_axis(h, &f);
    // Bands under the axis: when the fault was active (the shading above sits behind the bars,
    // this row does not), /readyz and /livez per sample, and alerts while firing.
    fault_band(h, rec, &f);
    for (endpoint, by) in [("readyz", f.ready_y), ("livez", f.live_y)] {
        health_band(h, rec, endpoint, by, &f);
    }
    alert_band(h, &alerts, &alert_names, &f);
    legend(h, &f);
    h.push_str("</svg>\n");
}

/// The time range: the phases, and every request and probe (ms); `None` when nothing was
/// recorded.
fn time_range(rec: &Recording) -> Option<(f64, f64)> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for (a, b) in rec.phases.values() {
        lo = lo.min(*a);
        hi = hi.max(*b);
    }
    for t in rec
        .requests
        .iter()
        .map(|r| r.at_ms)
        .chain(rec.probes.iter().map(|p| p.at_ms))
    {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    (lo.is_finite() && hi.is_finite()).then_some((lo, hi))
}

/// The requests in `n` one-second buckets from `t0` (seconds); later ones go in the last.
fn bucket(rec: &Recording, t0: f64, n: usize) -> Vec<Bucket> {
    let mut buckets = vec![Bucket::default(); n];
    for r in &rec.requests {
        let i = (((r.at_ms / 1000.0) - t0).floor() as usize).min(n - 1);
        buckets[i].counts[class_index(r)] += 1;
        buckets[i].latencies.push(r.latency_ms);
    }
    buckets
}

/// Phases: boundaries and names along the top, the fault phase shaded.
fn phases(h: &mut String, rec: &Recording, f: &Frame) {
    for (p, (a, b)) in &rec.phases {
        let (xa, xb) = f.span(*a, *b);
        if xb <= xa {
            continue;
        }
        if *p == Phase::Fault {
            let _ = writeln!(
                h,
                "<rect class=\"fault-phase\" x=\"{xa:.1}\" y=\"{TOP}\" width=\"{:.1}\" \
                 height=\"{PLOT_H}\" fill=\"#ffebee\"><title>fault phase {} → {}</title></rect>",
                xb - xa,
                secs(*a),
                secs(*b)
            );
        }
        let _ = writeln!(
            h,
            "<line x1=\"{xa:.1}\" x2=\"{xa:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#999\" \
             stroke-dasharray=\"3 3\"/><text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" \
             fill=\"#555\">{}</text>",
            TOP - 14.0,
            f.bottom,
            (xa + xb) / 2.0,
            TOP - 16.0,
            p.as_str()
        );
    }
}

/// Fault active: injection to revert, shaded behind the bars.
fn fault_shading(h: &mut String, rec: &Recording, f: &Frame) {
    for (a, b, what) in observed::fault_windows(rec) {
        let (xa, xb) = f.span(a, b);
        let _ = writeln!(
            h,
            "<rect class=\"fault-window\" data-from-ms=\"{a:.0}\" data-to-ms=\"{b:.0}\" \
             x=\"{xa:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{PLOT_H}\" fill=\"#e53935\" \
             fill-opacity=\"0.14\" stroke=\"#e53935\" stroke-opacity=\"0.4\">\
             <title>fault active {} → {}: {}</title></rect>",
            (xb - xa).max(1.0),
            secs(a),
            secs(b),
            esc(&what)
        );
    }
}

/// The grid with the left axis (requests per second), and the right axis (p99 latency).
fn y_axes(h: &mut String, f: &Frame) {
    let mut c = 0.0;
    while c <= f.y_max + 1e-9 {
        let yy = f.y(c);
        let _ = writeln!(
            h,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e0e0e0\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + f.plot_w,
            LEFT - 5.0,
            yy + 4.0,
            num(c)
        );
        c += f.y_step;
    }
    let _ = writeln!(
        h,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">requests/s</text>",
        TOP + PLOT_H / 2.0
    );
    let mut l = 0.0;
    while l <= f.l_max + 1e-9 {
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#1565c0\">{}</text>",
            LEFT + f.plot_w + 5.0,
            f.yl(l) + 4.0,
            ms_label(l)
        );
        l += f.l_step;
    }
    let _ = writeln!(
        h,
        "<text transform=\"translate({:.1} {:.1}) rotate(90)\" text-anchor=\"middle\" \
         fill=\"#1565c0\">p99 latency</text>",
        W - 10.0,
        TOP + PLOT_H / 2.0
    );
}

/// Stacked bars, one per second, each with a tooltip of its counts.
fn bars(h: &mut String, buckets: &[Bucket], p99: &[Option<f64>], f: &Frame) {
    let bw = f.plot_w / f.n as f64;
    h.push_str("<g class=\"bars\">");
    for (i, b) in buckets.iter().enumerate() {
        let total: u32 = b.counts.iter().sum();
        if total == 0 {
            continue;
        }
        let bx = LEFT + i as f64 * bw + bw * 0.1;
        let mut acc = 0.0;
        let tip = format!(
            "{}–{}s: {}{}",
            f.t0 as i64 + i as i64,
            f.t0 as i64 + i as i64 + 1,
            CLASSES
                .iter()
                .zip(b.counts)
                .filter(|(_, n)| *n > 0)
                .map(|((name, _), n)| format!("{name} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            p99[i]
                .map(|v| format!(", p99 {}", ms_label(v)))
                .unwrap_or_default()
        );
        let _ = write!(h, "<g><title>{}</title>", esc(&tip));
        for (k, (_, colour)) in CLASSES.iter().enumerate() {
            let cnt = b.counts[k] as f64;
            if cnt == 0.0 {
                continue;
            }
            let _ = write!(
                h,
                "<rect class=\"c{k}\" x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                 fill=\"{colour}\"/>",
                f.y(acc + cnt),
                bw * 0.8,
                f.y(acc) - f.y(acc + cnt)
            );
            acc += cnt;
        }
        h.push_str("</g>");
    }
    h.push_str("</g>\n");
}

/// The p99 line, broken where a second had no requests.
fn p99_line(h: &mut String, p99: &[Option<f64>], f: &Frame) {
    let bw = f.plot_w / f.n as f64;
    let mut d = String::new();
    let mut pen_down = false;
    for (i, v) in p99.iter().enumerate() {
        match v {
            Some(v) => {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1} ",
                    if pen_down { "L" } else { "M" },
                    LEFT + (i as f64 + 0.5) * bw,
                    f.yl(*v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    if !d.is_empty() {
        let _ = writeln!(
            h,
            "<path class=\"p99\" d=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\"/>",
            d.trim_end()
        );
    }
}

/// A marker for each injection, revert, alert and target exit.
fn event_markers(h: &mut String, rec: &Recording, f: &Frame) {
    for e in &rec.events {
        let (colour, label) = match e.kind {
            EventKind::Inject => ("#b71c1c", "inject"),
            EventKind::Revert => ("#2e7d32", "revert"),
            EventKind::AlertFiring => ("#ef6c00", "alert fired"),
            EventKind::AlertResolved => ("#00897b", "alert resolved"),
            EventKind::TargetExit => ("#424242", "target exit"),
            _ => continue,
        };
        let ex = f.xm(e.at_ms).clamp(LEFT, LEFT + f.plot_w);
        let _ = writeln!(
            h,
            "<g class=\"marker {}\"><title>{} {}: {}</title><line x1=\"{ex:.1}\" x2=\"{ex:.1}\" \
             y1=\"{TOP}\" y2=\"{}\" stroke=\"{colour}\" stroke-width=\"1.5\"/>\
             <path d=\"M{:.1} {} l5 -8 h-10 z\" fill=\"{colour}\"/></g>",
            label.replace(' ', "-"),
            secs(e.at_ms),
            label,
            esc(&e.detail),
            f.bottom,
            ex,
            TOP
        );
    }
}

/// The time axis, in seconds from the start of the run.
fn x_axis(h: &mut String, f: &Frame) {
    let (t0, t1, bottom) = (f.t0, f.t1, f.bottom);
    let (_, x_step) = nice_axis(t1 - t0);
    if (t0 / x_step).fract() != 0.0 {
        // The axis starts between round ticks: still say where.
        let _ = writeln!(
            h,
            "<text x=\"{LEFT}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777\">{}s</text>",
            bottom + 15.0,
            num(t0)
        );
    }
    let mut t = (t0 / x_step).ceil() * x_step;
    while t <= t1 + 1e-9 {
        let xx = f.x(t);
        let _ = writeln!(
            h,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{bottom}\" y2=\"{:.1}\" stroke=\"#666\"/>\
             <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}s</text>",
            bottom + 4.0,
            bottom + 15.0,
            num(t)
        );
        t += x_step;
    }
}

/// The fault band: each fault window, labelled with the fault.
fn fault_band(h: &mut String, rec: &Recording, f: &Frame) {
    let fault_y = f.fault_y;
    let _ = write!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">fault</text><g class=\"band fault\">",
        LEFT - 5.0,
        fault_y + 10.0
    );
    for (a, b, what) in observed::fault_windows(rec) {
        let (xa, xb) = f.span(a, b);
        let _ = write!(
            h,
            "<rect x=\"{xa:.1}\" y=\"{fault_y:.1}\" width=\"{:.1}\" height=\"{BAND_H}\" \
             fill=\"#e53935\" fill-opacity=\"0.7\"><title>{}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#fff\" font-size=\"10\">{}</text>",
            (xb - xa).max(1.0),
            esc(&what),
            xa + 3.0,
            fault_y + 9.5,
            esc(&shorten(&what, ((xb - xa) / 6.0) as usize))
        );
    }
    h.push_str("</g>\n");
}

/// A health band at `by`: each sample of `/endpoint` until the next one, by its answer.
fn health_band(h: &mut String, rec: &Recording, endpoint: &str, by: f64, f: &Frame) {
    let _ = write!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">/{endpoint}</text>\
         <g class=\"band {endpoint}\">",
        LEFT - 5.0,
        by + 10.0
    );
    let probes: Vec<&ProbeRecord> = rec
        .probes
        .iter()
        .filter(|p| p.endpoint == endpoint)
        .collect();
    if probes.is_empty() {
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#999\">no samples</text>",
            LEFT + 4.0,
            by + 10.0
        );
    }
    for (k, p) in probes.iter().enumerate() {
        let end = probes
            .get(k + 1)
            .map(|q| q.at_ms)
            .unwrap_or(p.at_ms + 250.0);
        let (colour, state) = match p.status {
            None => ("#6a1b9a", "no answer"),
            Some(_) if observed::probe_passed(p) => ("#81c784", "pass"),
            Some(_) => ("#e57373", "fail"),
        };
        let (xa, xb) = f.span(p.at_ms, end);
        if xb <= xa {
            continue;
        }
        let _ = write!(
            h,
            "<rect class=\"{state}\" x=\"{xa:.1}\" y=\"{by:.1}\" width=\"{:.2}\" \
             height=\"{BAND_H}\" fill=\"{colour}\"><title>/{endpoint} at {}: {}</title></rect>",
            xb - xa,
            secs(p.at_ms),
            p.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "no answer".into())
        );
    }
    h.push_str("</g>\n");
}

/// The alert band: one row per alert (`alert_names`, in the order they first fired), a bar
/// while it fires, its name on its first bar.
fn alert_band(h: &mut String, alerts: &[AlertMark], alert_names: &[&str], f: &Frame) {
    let (alert_y, alert_rows) = (f.alert_y, f.alert_rows);
    let _ = write!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">alerts</text><g class=\"band alerts\">",
        LEFT - 5.0,
        alert_y + 10.0
    );
    if alerts.is_empty() {
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#999\">no alert notifications recorded</text>",
            LEFT + 4.0,
            alert_y + 10.0
        );
    }
    let mut labelled = vec![false; alert_rows];
    for (k, a) in alerts.iter().enumerate().filter(|(_, a)| a.firing) {
        // Firing until the same alert's next resolution, or the end of the timeline. A repeated
        // firing notification of an alert already firing just overlaps its bar.
        let end = alerts[k + 1..]
            .iter()
            .find(|b| !b.firing && b.alert == a.alert)
            .map(|b| b.at_ms)
            .unwrap_or(f.t1 * 1000.0);
        // Alerts beyond the last row share it.
        let row = alert_names
            .iter()
            .position(|n| *n == a.alert)
            .unwrap_or(0)
            .min(alert_rows - 1);
        let ry = alert_y + row as f64 * (BAND_H + 2.0);
        let (xa, xb) = f.span(a.at_ms, end);
        let _ = write!(
            h,
            "<rect class=\"alert-firing\" x=\"{xa:.1}\" y=\"{ry:.1}\" width=\"{:.1}\" \
             height=\"{BAND_H}\" fill=\"#ffb74d\"><title>{} firing {} → {}</title></rect>",
            (xb - xa).max(1.0),
            esc(&a.alert),
            secs(a.at_ms),
            secs(end)
        );
        if !labelled[row] {
            labelled[row] = true;
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#6d3200\" font-size=\"10\">{}</text>",
                xa + 3.0,
                ry + 9.5,
                esc(if row + 1 == alert_rows && alert_names.len() > alert_rows {
                    "more alerts"
                } else {
                    &a.alert
                })
            );
        }
    }
    h.push_str("</g>\n");
}

/// The legend: status classes, the p99 line, the fault and the markers on one line, the health
/// states on the next.
fn legend(h: &mut String, f: &Frame) {
    let mut lx = LEFT;
    let ly = f.legend_y;
    let mut swatch = |h: &mut String, shape: &str, label: &str| {
        let _ = write!(
            h,
            "<g transform=\"translate({lx:.1} {ly:.1})\">{shape}<text x=\"16\" y=\"9\">{label}</text></g>"
        );
        lx += 22.0 + label.chars().count() as f64 * 6.2;
    };
    h.push_str("<g class=\"legend\">");
    for (name, colour) in CLASSES {
        swatch(
            h,
            &format!("<rect width=\"11\" height=\"11\" fill=\"{colour}\"/>"),
            name,
        );
    }
    swatch(
        h,
        "<line x1=\"0\" x2=\"12\" y1=\"6\" y2=\"6\" stroke=\"#1565c0\" stroke-width=\"2\"/>",
        "p99 latency",
    );
    swatch(
        h,
        "<rect width=\"11\" height=\"11\" fill=\"#e53935\" fill-opacity=\"0.25\"/>",
        "fault active",
    );
    for (colour, label) in [
        ("#b71c1c", "inject"),
        ("#2e7d32", "revert"),
        ("#ef6c00", "alert fired"),
        ("#00897b", "alert resolved"),
    ] {
        swatch(
            h,
            &format!("<path d=\"M6 11 l5 -9 h-10 z\" fill=\"{colour}\"/>"),
            label,
        );
    }
    lx = LEFT;
    let ly2 = ly + 16.0;
    for (colour, label) in [
        ("#81c784", "health: pass"),
        ("#e57373", "health: fail"),
        ("#6a1b9a", "health: no answer"),
    ] {
        let _ = write!(
            h,
            "<g transform=\"translate({lx:.1} {ly2:.1})\"><rect width=\"11\" height=\"11\" \
             fill=\"{colour}\"/><text x=\"16\" y=\"9\">{label}</text></g>"
        );
        lx += 22.0 + label.chars().count() as f64 * 6.2;
    }
    h.push_str("</g>\n");
}

/// An axis maximum and step for `max`: steps of 1, 2 or 5 times a power of ten, about five of
/// them.
pub(super) fn nice_axis(max: f64) -> (f64, f64) {
    let raw = max / 5.0;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow);
    ((max / step).ceil().max(1.0) * step, step)
}
