//! A test that keeps the harness's modules layered: no two top-level modules may reach each
//! other through `crate::` paths, directly or round a longer circle. It reads the sources, so a
//! new circle fails `cargo test` with the path that closes it.
//!
//! The same graph can be listed by hand with
//! `grep -rno 'crate::[a-z_]*' harness/src | sort -u`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules its non-test code names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let path_re = regex::Regex::new(r"crate::([a-z_]+)").expect("regex");
    let group_re = regex::Regex::new(r"crate::\{([^}]*)\}").expect("regex");
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
            let first = rel.components().next().expect("a component");
            let module = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            // Tests may reach anywhere: only the code that ships is layered.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let code: String = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            let targets = out.entry(module.clone()).or_default();
            for c in path_re.captures_iter(&code) {
                targets.insert(c[1].to_string());
            }
            for c in group_re.captures_iter(&code) {
                for item in c[1].split(',') {
                    let head = item.trim().split("::").next().unwrap_or("").trim();
                    if !head.is_empty()
                        && head.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
                    {
                        targets.insert(head.to_string());
                    }
                }
            }
            targets.remove(&module);
        }
    }
    out
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
