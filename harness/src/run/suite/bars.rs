//! Progress of scenarios under way, on stderr: a bar per scenario on a terminal (several at once
//! with `--jobs`), a line per phase change or every five seconds otherwise (CI logs). Used by
//! the suite runner and by `explain`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::progress::Progress;

/// Progress display for scenarios under way: a bar per scenario on a terminal (several at once
/// with `--jobs`), a line per phase change or every five seconds otherwise (CI logs).
#[derive(Clone)]
pub struct Bars {
    multi: indicatif::MultiProgress,
    interactive: bool,
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bars")
            .field("interactive", &self.interactive)
            .finish_non_exhaustive()
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Bars {
    pub fn new() -> Self {
        let interactive = std::io::stderr().is_terminal();
        let multi = indicatif::MultiProgress::with_draw_target(if interactive {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        });
        Bars { multi, interactive }
    }

    /// Prints a line on stderr without tearing the bars.
    pub fn println(&self, line: String) {
        if self.interactive {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// Starts showing one scenario's progress through its `total` duration (steady + fault +
    /// recovery). The display ends when the returned view is finished or dropped.
    pub fn start(&self, name: &str, total: Duration, progress: Arc<Progress>) -> ProgressView {
        let stop = CancellationToken::new();
        let bar = self.interactive.then(|| {
            let b = self
                .multi
                .add(indicatif::ProgressBar::new(total.as_millis() as u64));
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:28.cyan/blue}] {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(name.to_string());
            b
        });
        let task = tokio::spawn(show_progress(
            name.to_string(),
            total,
            progress,
            bar,
            stop.clone(),
        ));
        ProgressView {
            stop,
            task: Some(task),
        }
    }
}

/// One scenario's progress display; [`ProgressView::finish`] clears its bar.
#[derive(Debug)]
pub struct ProgressView {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ProgressView {
    /// Stops the display and waits until its bar is cleared, so the next output starts on a
    /// clean line.
    pub async fn finish(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ProgressView {
    fn drop(&mut self) {
        // A panicking run still clears its bar.
        self.stop.cancel();
    }
}

/// Which scenario, which phase, how far through, requests and errors so far.
async fn show_progress(
    name: String,
    total: Duration,
    progress: Arc<Progress>,
    bar: Option<indicatif::ProgressBar>,
    stop: CancellationToken,
) {
    use std::sync::atomic::Ordering;
    let total_s = total.as_secs_f64();
    let mut load_began: Option<std::time::Instant> = None;
    let mut last_phase = String::new();
    let mut last_line = std::time::Instant::now();
    loop {
        let phase = progress.phase();
        // The phases start when the load does: "steady" is the first of them.
        if load_began.is_none() && phase == "steady" {
            load_began = Some(std::time::Instant::now());
        }
        let elapsed = match (&load_began, phase.as_str()) {
            (None, _) => 0.0,
            (Some(_), "steady" | "fault" | "recovery") => load_began
                .map(|t| t.elapsed().as_secs_f64().min(total_s))
                .unwrap_or(0.0),
            // After recovery: waiting for alerts, tearing down.
            (Some(_), _) => total_s,
        };
        let line = format!(
            "{phase} {elapsed:.0}/{total_s:.0}s — {} requests, {} errors",
            progress.requests.load(Ordering::Relaxed),
            progress.errors.load(Ordering::Relaxed)
        );
        match &bar {
            Some(b) => {
                b.set_position((elapsed * 1000.0) as u64);
                b.set_message(line);
            }
            None => {
                if phase != last_phase || last_line.elapsed() >= Duration::from_secs(5) {
                    eprintln!("  {name}: {line}");
                    last_line = std::time::Instant::now();
                }
            }
        }
        last_phase = phase;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(if bar.is_some() { 200 } else { 500 })) => {}
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}
