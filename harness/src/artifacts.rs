//! A run's artifacts on disk: `report.json`, `junit.xml` and `report.html`. Kept apart from
//! [`crate::report`] (the data) and [`crate::html`] (the page), which both read the report, so
//! neither has to know the other.

use std::path::Path;

use crate::report::RunReport;

/// Writes `report.json`, `junit.xml` and `report.html` into `dir`.
pub fn write(report: &RunReport, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json)?;
    std::fs::write(dir.join("junit.xml"), report.junit()?)?;
    std::fs::write(dir.join("report.html"), crate::html::render(report))?;
    Ok(())
}
