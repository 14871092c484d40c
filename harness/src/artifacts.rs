//! A run's artifacts on disk: `report.json`, `junit.xml` and `report.html`. Kept apart from
//! [`crate::present::report`] (the data) and [`crate::present::html`] (the page), which both
//! read the report, so neither has to know the other.

use std::path::Path;

use crate::digest::KeepRequests;
use crate::present::report::RunReport;

/// Writes `report.json` (keeping `keep` of the requests: by default the error requests whole
/// and a per-second summary of the others), `junit.xml` and `report.html` into `dir`.
pub fn write(report: &RunReport, dir: &Path, keep: KeepRequests) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), report.json(keep)?)?;
    std::fs::write(dir.join("junit.xml"), report.junit()?)?;
    std::fs::write(
        dir.join("report.html"),
        crate::present::html::render(report),
    )?;
    Ok(())
}
