//! A test that keeps the harness's modules layered: no two top-level modules may reach each
//! other through `crate::` paths, directly or round a longer circle. It reads the sources, so a
//! new circle fails `cargo test` with the path that closes it.
//!
//! A folder of modules ([`FOLDERS`]: `present`) counts each of its modules as one of the graph's
//! own (`present::html`, `present::report`), named by their full path (`crate::present::report`),
//! so a circle between two of them fails too.
//!
//! The same graph can be listed by hand with
//! `grep -rno 'crate::[a-z_]*\(::[a-z_]*\)\?' harness/src | sort -u`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

/// Top-level modules that are folders of modules, each of which is a node of the graph.
const FOLDERS: &[&str] = &["present"];

/// The node a path names: `present::report` for `present` and `report`, else the top level.
fn node(top: &str, next: Option<&str>) -> String {
    match next {
        Some(n) if FOLDERS.contains(&top) && n != "mod" && n != "self" => format!("{top}::{n}"),
        _ => top.to_string(),
    }
}

/// Module (a top-level one, or one in a folder of [`FOLDERS`]) -> the modules its non-test code
/// names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let names: Vec<String> = rel
                .components()
                .map(|c: Component| {
                    c.as_os_str()
                        .to_string_lossy()
                        .trim_end_matches(".rs")
                        .to_string()
                })
                .collect();
            let module = node(&names[0], names.get(1).map(String::as_str));
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            let targets = out.entry(module.clone()).or_default();
            targets.extend(edges(&text));
            targets.remove(&module);
        }
    }
    out
}

/// The modules a source file's non-test code names through `crate::` paths.
fn edges(text: &str) -> BTreeSet<String> {
    let path_re = regex::Regex::new(r"crate::([a-z_]+)(?:::([a-z_]+)\b)?").expect("regex");
    let group_re = regex::Regex::new(r"crate::(?:([a-z_]+)::)?\{([^}]*)\}").expect("regex");
    // Tests may reach anywhere: only the code that ships is layered.
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    for c in path_re.captures_iter(&code) {
        out.insert(node(&c[1], c.get(2).map(|m| m.as_str())));
    }
    let is_name =
        |s: &str| !s.is_empty() && s.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_');
    // `crate::{a, b::C}`, and `crate::present::{report, html::esc}`.
    for c in group_re.captures_iter(&code) {
        for item in c[2].split(',') {
            let mut parts = item.trim().split("::").map(str::trim);
            let head = parts.next().unwrap_or("");
            let next = parts.next().filter(|n| is_name(n));
            match c.get(1) {
                Some(top) if is_name(head) => {
                    out.insert(node(top.as_str(), Some(head)));
                }
                Some(top) => {
                    out.insert(top.as_str().to_string());
                }
                None if is_name(head) => {
                    out.insert(node(head, next));
                }
                None => {}
            }
        }
    }
    out
}

/// Every module `from` reaches, directly or through others.
fn reach(g: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(n) = todo.pop() {
        for next in g.get(&n).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

/// A circle through the graph, if there is one: `a -> b -> ... -> a`.
fn find_circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in g.get(node).into_iter().flatten() {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in g.keys() {
        if let Some(c) = visit(g, node, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_two_modules_of_the_harness_reach_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(
        g.contains_key("faults") && g["faults"].contains("lab"),
        "the graph was read: {g:?}"
    );
    assert!(
        g["present::html"].contains("present::observed") && g["run"].contains("present::report"),
        "the modules of present were read one by one: {g:?}"
    );
    if let Some(circle) = find_circle(&g) {
        panic!("an import circle: {}", circle.join(" -> "));
    }
}

#[test]
fn a_circle_is_found_when_there_is_one() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_circle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    g.get_mut("c").expect("c").clear();
    assert_eq!(find_circle(&g), None);
}

#[test]
fn what_a_run_shows_is_below_what_runs_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    for module in g.keys().filter(|m| m.starts_with("present")) {
        let above: Vec<String> = reach(&g, module)
            .into_iter()
            .filter(|m| ["run", "gameday", "cli"].contains(&m.as_str()))
            .collect();
        assert!(above.is_empty(), "{module} reaches {above:?}");
    }
}

#[test]
fn a_folder_of_modules_counts_each_of_its_modules() {
    let text = "use crate::present::{report, html::esc};\n\
                use crate::{lab, run::Progress, present::observed::Observed};\n\
                let x = crate::present::explain::intro(); // crate::gameday\n\
                use crate::checks::{self, Verdict};\n\
                #[cfg(test)]\n\
                use crate::cli;";
    let want = [
        "checks",
        "lab",
        "present",
        "present::explain",
        "present::html",
        "present::observed",
        "present::report",
        "run",
    ];
    assert_eq!(
        edges(text),
        want.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()
    );
}
