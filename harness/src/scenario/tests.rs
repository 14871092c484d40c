//! The scenario tests: validation errors located at file:line:column, status patterns, and fuzzing
//! of the parser with arbitrary text, bytes and mutated catalogue files.

use super::*;

const GOOD: &str = r#"
name = "demo"
title = "A demo"
cause = "handler panic"

[load]
rate = 20
mix = [{ weight = 1, request = "GET /products" }]

[phases]
steady = "2s"
fault = "3s"
recovery = "2s"

[[fault]]
kind = "failpoint"
name = "list_products"
action = "panic"

[expect.fault]
allow = ["2xx", "500"]
require = ["500"]
"#;

fn err(text: &str) -> ScenarioError {
    parse(Path::new("demo.toml"), text).unwrap_err()
}

#[test]
fn a_good_file_validates() {
    let s = parse(Path::new("demo.toml"), GOOD).unwrap();
    assert_eq!(s.faults.len(), 1);
    assert_eq!(s.faults[0].duration, Duration::from_secs(3));
    assert_eq!(
        s.expect.fault.status.require,
        vec![StatusPattern::Exact(500)]
    );
}

#[test]
fn an_unknown_key_is_reported_at_its_line_and_column() {
    let e = err(&GOOD.replace("rate = 20", "rate = 20\nrat = 3"));
    assert_eq!((e.line, e.column), (Some(8), Some(1)), "{e}");
    assert!(e.message.contains("unknown field `rat`"), "{e}");
}

#[test]
fn a_bad_duration_points_at_the_value() {
    let e = err(&GOOD.replace("fault = \"3s\"", "fault = \"3 parsecs\""));
    assert_eq!(e.line, Some(12), "{e}");
    assert_eq!(e.column, Some(9), "{e}");
    assert!(e.to_string().contains("hint"), "{e}");
}

#[test]
fn an_unknown_fault_kind_is_reported_at_the_kind_key() {
    let e = err(&GOOD.replace("kind = \"failpoint\"", "kind = \"meteor\""));
    assert_eq!(e.line, Some(16), "{e}");
    assert!(e.message.contains("meteor"), "{e}");
}

#[test]
fn a_fault_longer_than_its_phase_is_an_impossible_timing() {
    let e = err(&GOOD.replace(
        "action = \"panic\"",
        "action = \"panic\"\nstart = \"2s\"\nduration = \"2s\"",
    ));
    assert!(e.message.contains("past the end"), "{e}");
    assert_eq!(e.line, Some(20), "{e}");
}

#[test]
fn an_unknown_request_is_rejected_with_the_known_ones_as_hint() {
    let e = err(&GOOD.replace("GET /products\"", "GET /users/{id}\""));
    assert_eq!(e.line, Some(8), "{e}");
    assert!(e.hint.unwrap().contains("POST /orders"));
    // A typo that the load generator alone would send happily (no placeholder, no body).
    let e = err(&GOOD.replace("GET /products\"", "POST /order\""));
    assert_eq!(e.line, Some(8), "{e}");
    assert!(e.message.contains("`POST /order` is not a request"), "{e}");
    assert!(e.hint.unwrap().contains("POST /orders"));
}

#[test]
fn a_bad_status_pattern_is_rejected() {
    let e = err(&GOOD.replace("require = [\"500\"]", "require = [\"5x\"]"));
    assert_eq!(e.line, Some(22), "{e}");
}

#[test]
fn status_patterns_match() {
    assert!(StatusPattern::parse("5xx").unwrap().matches(Some(503)));
    assert!(!StatusPattern::parse("5xx").unwrap().matches(None));
    assert!(StatusPattern::parse("none").unwrap().matches(None));
    assert!(StatusPattern::parse("200").unwrap().matches(Some(200)));
    assert!(StatusPattern::parse("600").is_none());
}

#[test]
fn the_file_name_must_match_the_scenario_name() {
    let e = parse(Path::new("other.toml"), GOOD).unwrap_err();
    assert!(e.message.contains("other.toml"));
}

#[test]
fn a_fault_start_that_would_overflow_is_a_located_error_not_a_panic() {
    let e = err(&GOOD.replace(
        "action = \"panic\"",
        "action = \"panic\"\nstart = \"18446744073709551615s\"",
    ));
    assert_eq!(e.line, Some(19), "{e}");
    assert!(e.message.contains("at most 1h"), "{e}");
}

#[test]
fn every_duration_is_bounded_at_validation() {
    for (from, to, line) in [
        ("rate = 20", "rate = 20\ntimeout = \"10m\"", 8),
        (
            "require = [\"500\"]",
            "require = [\"500\"]\nlatency = { p99 = \"200000h\" }",
            23,
        ),
        (
            "require = [\"500\"]",
            "require = [\"500\"]\n[alerts]\nexpect = [{ name = \"HandlerPanics\", fires_within = \"99999999999h\" }]",
            24,
        ),
        (
            "action = \"panic\"",
            "action = \"panic\"\nduration = \"5000000h\"",
            19,
        ),
    ] {
        let e = err(&GOOD.replace(from, to));
        assert_eq!(e.line, Some(line), "{to}: {e}");
        assert!(
            e.message.contains("at most") || e.message.contains("out of range"),
            "{to}: {e}"
        );
    }
}

#[test]
fn durations_inside_faults_are_bounded_at_validation() {
    let fault = "kind = \"failpoint\"\nname = \"list_products\"\naction = \"panic\"";
    for (table, key) in [
        (
            "kind = \"network\"\ntarget = \"database\"\nfault = \"latency\"\nlatency = \"20m\"",
            "latency",
        ),
        (
            "kind = \"network\"\ntarget = \"database\"\nfault = \"latency\"\nlatency = \"1s\"\njitter = \"9999h\"",
            "jitter",
        ),
        (
            "kind = \"failpoint\"\nname = \"list_products\"\naction = \"sleep(18446744073709551615)\"",
            "action",
        ),
    ] {
        let e = err(&GOOD.replace(fault, table));
        assert!(e.message.contains("at most"), "{table}: {e}");
        let line = e.source_line.clone().unwrap_or_default();
        assert!(line.starts_with(key), "{table}: points at `{line}`");
    }
}

#[test]
fn an_error_about_an_empty_key_is_reported_without_hanging() {
    let src = Source {
        file: Path::new("demo.toml"),
        text: GOOD,
    };
    assert_eq!(src.key_span(0, ""), None);
    assert_eq!(src.key_span(GOOD.len() + 5, "kind"), None);
    // Found by the fuzz test below: the network fault's error for `jitter = ""` names no
    // key, and the search for it never ended.
    let e = err(&GOOD.replace(
        "kind = \"failpoint\"\nname = \"list_products\"\naction = \"panic\"",
        "kind = \"network\"\ntarget = \"database\"\nfault = \"latency\"\nlatency = \"1s\"\njitter = \"\"",
    ));
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn a_scenario_that_is_a_symlink_to_dev_zero_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("zero.toml");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let e = load(&link).unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with(&link.display().to_string()), "{text}");
    assert!(text.contains("not a regular file"), "{text}");
}

/// `examples/container-faults`: one file per action on the database's container, each loads
/// as it is, and each that names a protection names one target-app has.
#[test]
fn the_container_fault_examples_load_and_cover_every_action_once() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/container-faults");
    let mut actions = Vec::new();
    for file in catalogue_files(&dir) {
        let s = load(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let [scheduled] = s.faults.as_slice() else {
            panic!("{}: one fault, not {}", file.display(), s.faults.len());
        };
        let Fault::Container(c) = &scheduled.fault else {
            panic!("{}: not a container fault", file.display());
        };
        let c = serde_json::to_value(c).unwrap();
        assert_eq!(c["target"], "database", "{}", file.display());
        let action = c["action"].as_str().unwrap().to_string();
        assert_eq!(s.name, format!("db-{action}"), "{}", file.display());
        if let Some(p) = &s.protection {
            assert!(
                ["timeouts", "stale-cache"].contains(&p.as_str()),
                "{}: {p}",
                file.display()
            );
        }
        actions.push(action);
    }
    actions.sort();
    assert_eq!(
        actions,
        ["cpu", "disconnect", "kill", "memory", "pause", "stop"]
    );
}

/// The catalogue's files, as (file name, text), to mutate.
fn catalogue_texts() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = catalogue_files(&dir);
    assert!(!files.is_empty(), "no scenario in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (PathBuf::from(p.file_name().unwrap()), text)
        })
        .collect()
}

/// Values a hostile or careless file would try in place of any token.
const NASTY: &[&str] = &[
    "\"18446744073709551615s\"",
    "\"99999999999999h\"",
    "\"0s\"",
    "\"1ns\"",
    "\"\"",
    "-1",
    "0",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "18446744073709551615",
    "-9223372036854775808",
    "4294967296",
    "[",
    "]",
    "{",
    "}",
    "=",
    "\"\\u0000\"",
    "\"4777\"",
    "\"sleep(18446744073709551615)\"",
    "\"GET /products/{id}{id}{\"",
    "\"POST /\"",
    "[[fault]]\nkind = \"memory\"\n",
    "{ uniform = [9223372036854775807, -9223372036854775808] }",
    "{ uniform = [-9223372036854775808, 9223372036854775807] }",
    "\"5xx\"",
    "true",
    "\"\u{1F4A5}\"",
];

/// One edit of a valid file: the value of one `key = value` line replaced by a nasty one
/// (most edits, so validation gets past the TOML syntax), or a byte range replaced or removed.
fn mutate(text: &str, value: bool, at: usize, len: usize, with: Option<&str>) -> String {
    if value {
        let values: Vec<usize> = text.match_indices(" = ").map(|(i, _)| i + 3).collect();
        if let Some(&start) = values.get(at % values.len().max(1)) {
            let end = text[start..].find('\n').map_or(text.len(), |n| start + n);
            return format!(
                "{}{}{}",
                &text[..start],
                with.unwrap_or("\"\""),
                &text[end..]
            );
        }
    }
    let mut start = at % (text.len() + 1);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + len).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}{}", &text[..start], with.unwrap_or(""), &text[end..])
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Bounded so the three run in seconds; each case parses and validates a whole file.
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn validation_never_panics_on_any_text(text in "\\PC{0,400}") {
            let _ = parse(Path::new("fuzz.toml"), &text);
        }

        #[test]
        fn loading_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("fuzz.toml");
            std::fs::write(&f, &bytes).unwrap();
            let _ = load(&f);
        }

        #[test]
        fn validation_never_panics_on_a_mutated_catalogue_file(
            which in any::<prop::sample::Index>(),
            edits in proptest::collection::vec(
                (
                    prop::bool::weighted(0.8),
                    any::<usize>(),
                    0usize..24,
                    proptest::option::of(prop::sample::select(NASTY)),
                ),
                1..4,
            ),
        ) {
            let files = catalogue_texts();
            let (name, text) = which.get(&files);
            let mut text = text.clone();
            for (value, at, len, with) in edits {
                text = mutate(&text, value, at, len, with);
            }
            let _ = parse(name, &text);
        }
    }
}

#[test]
fn an_invalid_input_fault_varies_the_load_unless_it_names_its_requests() {
    let with = |fault: &str| {
        let text = GOOD.replace(
            "kind = \"failpoint\"\nname = \"list_products\"\naction = \"panic\"",
            fault,
        );
        let s = parse(Path::new("demo.toml"), &text).unwrap();
        match &s.faults[0].fault {
            Fault::InvalidInput(f) => (f.requests.clone(), s.load.mix),
            other => panic!("{other:?}"),
        }
    };
    let (requests, mix) = with("kind = \"invalid-input\"");
    assert_eq!(requests, Some(mix));
    let own =
        "kind = \"invalid-input\"\nrequests = [{ weight = 1, request = \"GET /products/{id}\" }]";
    let (requests, _) = with(own);
    assert_eq!(requests.unwrap()[0].request, "GET /products/{id}");
}
