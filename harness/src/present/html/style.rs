//! The page's stylesheet, inlined in `<style>`: the Content-Security-Policy allows inline style
//! and nothing else.

pub(super) const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #fff; }
header, main { max-width: 1200px; margin: 0 auto; padding: 0 20px; }
header { border-bottom: 1px solid #ddd; padding-bottom: 8px; }
h1 { font-size: 22px; margin: 16px 0 6px; }
h2 { font-size: 19px; margin: 28px 0 4px; }
h2 small, h3 small { font-weight: normal; color: #555; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code, pre { font: 12.5px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; border-radius: 4px; padding: 6px 8px; margin: 4px 0;
      white-space: pre-wrap; overflow-wrap: anywhere; max-height: 24em; overflow: auto; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; }
dl.meta dt { color: #555; } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-weight: 600; font-size: 12px; color: #fff; }
.badge.pass { background: #2e7d32; } .badge.fail { background: #c62828; } .badge.skip { background: #9e9d24; }
table { border-collapse: collapse; }
table.summary td, table.summary th { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: left; }
section.scenario { border-top: 3px solid #ddd; margin-top: 24px; }
section.scenario.fail { border-top-color: #c62828; } section.scenario.pass { border-top-color: #2e7d32; }
.facts, .repro { color: #444; margin: 2px 0; } .learn { max-width: 80ch; }
.note { background: #fff8e1; border-left: 4px solid #f9a825; padding: 4px 8px; }
svg.timeline { width: 100%; height: auto; max-height: 420px; display: block; }
table.shows { width: 100%; table-layout: fixed; }
table.shows th, table.shows td { border-top: 1px solid #eee; padding: 6px 8px; vertical-align: top; text-align: left; }
table.shows tbody th { width: 80px; color: #555; }
table.shows td.says { width: 38%; color: #333; }
table.shows p { margin: 0 0 4px; }
ul.alerts { margin: 0; padding-left: 1.1em; }
ul.metrics { margin: 0; padding-left: 1.1em; } ul.metrics code { overflow-wrap: anywhere; }
td.captured, td.says { overflow-wrap: anywhere; }
.absent { color: #888; font-style: italic; }
.check { border-left: 4px solid #ccc; padding: 3px 8px; margin: 3px 0; }
.check.fail { border-left-color: #c62828; background: #fff5f5; }
.check.pass { border-left-color: #2e7d32; } .check.skip { border-left-color: #9e9d24; }
.check .head code { font-weight: 600; }
details.evidence summary, details.events summary { cursor: pointer; color: #555; }
.ev { margin: 6px 0 10px 12px; } .why { font-weight: 600; margin: 4px 0; }
details.events table td { padding: 1px 10px 1px 0; }
"#;
