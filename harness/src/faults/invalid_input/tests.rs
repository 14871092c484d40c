//! Tests of the generator: templates read from mix entries, what is generated from them, that it
//! reproduces from the seed and shrinks back towards the request the scenario sends.

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use super::generate::{self, Body, Generated, json_string};
use super::template::{self, Part, Template};
use super::*;
use crate::faults::Fault;
use crate::load::{MixEntry, Param};

/// A service's write: a body template with a parameter, a key, a header of its own.
fn create() -> MixEntry {
    let mut m = MixEntry::new(3, "POST /widgets");
    m.params
        .insert("size".into(), Param::Uniform([1, 9]));
    m.body = Some(r#"{"size": {size}, "label": "w-{seq}", "fragile": true}"#.into());
    m.idempotency_key = Some(true);
    m.headers.insert("x-tenant".into(), "acme".into());
    m
}

/// A read with a path parameter and a query.
fn read() -> MixEntry {
    let mut m = MixEntry::new(5, "GET /widgets/{id}?limit={limit}&verbose");
    m.params.insert("id".into(), Param::Value("42".into()));
    m.params.insert("limit".into(), Param::Value("10".into()));
    m
}

fn templates(mix: &[MixEntry]) -> Vec<Template> {
    let t = InvalidInput {
        cases: 10,
        requests: Some(mix.to_vec()),
    };
    t.templates(7).unwrap()
}

fn draw(templates: &[Template], seed: u8, n: usize) -> Vec<Generated> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let strategy = generate::requests(templates);
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

fn members(g: &Generated) -> Option<&Vec<(String, String)>> {
    match &g.body {
        Some(Body::Members(m)) => Some(m),
        _ => None,
    }
}

#[test]
fn a_mix_entry_is_rendered_as_the_load_sends_it_and_split_where_it_varies() {
    let t = templates(&[create(), read()]);
    let (write, get) = (&t[0], &t[1]);
    assert_eq!(write.line, "POST /widgets");
    assert_eq!(write.method, reqwest::Method::POST);
    assert_eq!(write.path, vec![Part::Text("/widgets".into())]);
    assert_eq!(write.content_type.as_deref(), Some("application/json"));
    assert!(write.idempotency_key);
    assert_eq!(write.headers, vec![("x-tenant".into(), "acme".into())]);
    let body: serde_json::Value = serde_json::from_str(write.body.as_deref().unwrap()).unwrap();
    assert!((1..=9).contains(&body["size"].as_i64().unwrap()));
    assert_eq!(body["label"], "w-0");

    assert_eq!(get.line, "GET /widgets/{id}?limit={limit}&verbose");
    assert_eq!(
        get.path,
        vec![Part::Text("/widgets/".into()), Part::Param("42".into())]
    );
    assert_eq!(
        get.query,
        vec![("limit".into(), Some("10".into())), ("verbose".into(), None)]
    );
    assert_eq!((get.content_type.as_ref(), get.body.as_ref()), (None, None));
    assert!(!get.idempotency_key);
}

#[test]
fn paths_split_at_each_placeholder() {
    let split = |t, r| template::split_path(t, r);
    assert_eq!(
        split("/a/{x}/b/{y}", "/a/1/b/2").unwrap(),
        vec![
            Part::Text("/a/".into()),
            Part::Param("1".into()),
            Part::Text("/b/".into()),
            Part::Param("2".into()),
        ]
    );
    assert_eq!(
        split("/{x}{y}", "/12").unwrap(),
        vec![
            Part::Text("/".into()),
            Part::Param("".into()),
            Part::Param("12".into()),
        ]
    );
    assert_eq!(split("/a/{x}", "/b/1"), None);
}

#[test]
fn requests_with_nothing_to_vary_are_refused() {
    let lab = crate::labfile::target_app();
    let mut bare = InvalidInput {
        cases: 10,
        requests: Some(vec![MixEntry::new(1, "GET /health")]),
    };
    let (key, why) = bare.fit(lab, &[]).unwrap_err();
    assert_eq!(key, "requests");
    assert!(why.contains("nothing a client could get wrong"), "{why}");
    let mut broken = InvalidInput {
        cases: 10,
        requests: Some(vec![MixEntry::new(1, "GET /w/{id}")]),
    };
    assert_eq!(broken.fit(lab, &[]).unwrap_err().0, "requests");
    // Without requests it waits for the scenario's load, and says so if it never gets one.
    let unset = InvalidInput {
        cases: 10,
        requests: None,
    };
    assert!(unset.validate().is_ok());
    assert!(unset.templates(0).unwrap_err().contains("no requests"));
}

#[test]
fn a_fault_without_requests_takes_the_load_mix_and_one_with_requests_keeps_them() {
    let mut from_load: Fault = toml::from_str("kind = \"invalid-input\"").unwrap();
    let lab = crate::labfile::target_app();
    from_load.fit(lab, &[read()]).unwrap();
    let mut own = Fault::InvalidInput(InvalidInput {
        cases: 5,
        requests: Some(vec![create()]),
    });
    own.fit(lab, &[read()]).unwrap();
    match (from_load, own) {
        (Fault::InvalidInput(a), Fault::InvalidInput(b)) => {
            assert_eq!(a.requests, Some(vec![read()]));
            assert_eq!(b.requests, Some(vec![create()]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_same_seed_generates_the_same_requests() {
    let t = templates(&[create(), read()]);
    assert_eq!(draw(&t, 1, 30), draw(&t, 1, 30));
    assert_ne!(draw(&t, 1, 30), draw(&t, 2, 30));
    // And the same templates: rendering draws from the seed too.
    assert_eq!(templates(&[create()]), templates(&[create()]));
}

#[test]
fn generated_requests_keep_their_shape_and_vary_what_a_client_sends() {
    let t = templates(&[create(), read()]);
    let drawn = draw(&t, 3, 400);
    let (writes, reads): (Vec<&Generated>, Vec<&Generated>) =
        drawn.iter().partition(|g| g.line == "POST /widgets");
    assert!(writes.len() > 50 && reads.len() > 50);
    for g in &drawn {
        assert!(g.route().ends_with(" (generated)"), "{}", g.route());
        assert_eq!(g.headers().get("x-tenant").map(String::as_str), Some("acme").filter(|_| g.line == "POST /widgets"));
    }

    // Path parameters: some kept, most replaced, always one encoded segment.
    let ids: Vec<&str> = reads
        .iter()
        .map(|g| {
            assert_eq!(g.method, reqwest::Method::GET);
            assert!(g.body.is_none() && g.idempotency_key.is_none());
            let rest = g.path.strip_prefix("/widgets/").unwrap();
            rest.split('?').next().unwrap()
        })
        .collect();
    assert!(ids.contains(&"42"));
    assert!(ids.iter().filter(|id| **id != "42").count() > reads.len() / 2);
    assert!(ids.iter().all(|id| !id.contains('/')));
    assert!(ids.iter().any(|id| id.starts_with('-')), "a negative id");
    assert!(ids.iter().any(|id| id.contains("%")), "a percent-encoded one");
    assert!(ids.iter().any(|id| id.len() > 300), "a very long one");
    // Query values: kept, replaced, or the pair dropped.
    let queries: Vec<&str> = reads
        .iter()
        .map(|g| g.path.split_once('?').map_or("", |(_, q)| q))
        .collect();
    assert!(queries.contains(&"limit=10&verbose"));
    assert!(queries.iter().any(|q| q.starts_with("limit=") && !q.starts_with("limit=10&")));
    assert!(queries.iter().any(|q| !q.contains("limit=")));

    // Bodies: each member kept, of the wrong type, or dropped; extra members; not JSON.
    let is_number = |v: &str| v.parse::<f64>().is_ok();
    let with_members: Vec<&Vec<(String, String)>> =
        writes.iter().filter_map(|g| members(g)).collect();
    assert!(with_members.len() > writes.len() / 2);
    let value_of = |m: &Vec<(String, String)>, name: &str| {
        m.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    };
    let sizes: Vec<Option<String>> = with_members.iter().map(|m| value_of(m, "size")).collect();
    assert!(sizes.iter().any(Option::is_none), "size dropped");
    assert!(
        sizes.iter().flatten().any(|v| v.starts_with('"')),
        "size as a string"
    );
    assert!(
        sizes.iter().flatten().any(|v| ["null", "true", "false", "[]", "{}", "[1,2]"].contains(&v.as_str()) || v.starts_with('{')),
        "size as null, a boolean, an array or an object"
    );
    assert!(
        sizes.iter().flatten().any(|v| is_number(v) && v.trim_start_matches('-').len() > 19),
        "size beyond every integer"
    );
    assert!(sizes.iter().flatten().any(|v| v.contains('.')), "size fractional");
    let labels: Vec<String> = with_members
        .iter()
        .filter_map(|m| value_of(m, "label"))
        .collect();
    assert!(labels.contains(&json_string("w-0")), "label kept");
    assert!(labels.iter().any(|v| is_number(v)), "label as a number");
    assert!(labels.iter().any(|v| v.len() > 240), "label very long");
    assert!(with_members.iter().any(|m| m.len() > 3), "an extra member");
    let raw: Vec<&String> = writes
        .iter()
        .filter_map(|g| match &g.body {
            Some(Body::Raw(text)) => Some(text),
            _ => None,
        })
        .collect();
    assert!(raw.iter().any(|t| t.starts_with('{') && serde_json::from_str::<serde_json::Value>(t).is_err()), "truncated JSON");

    // Headers: odd content types and keys, or none.
    let cts: Vec<Option<&str>> = writes.iter().map(|g| g.content_type.as_deref()).collect();
    assert!(cts.contains(&Some("application/json")) && cts.contains(&None));
    assert!(cts.iter().flatten().any(|c| !c.starts_with("application/json")));
    let keys: Vec<Option<&str>> = writes.iter().map(|g| g.idempotency_key.as_deref()).collect();
    assert!(keys.contains(&None) && keys.contains(&Some("")));
    assert!(keys.iter().flatten().any(|k| k.len() > 255));
}

/// The smallest request that fails `fails`, shrunk within the fault's own budget of steps.
fn smallest(templates: &[Template], fails: impl Fn(&Generated) -> bool) -> Generated {
    let mut runner = TestRunner::new_with_rng(
        Config {
            failure_persistence: None,
            max_shrink_iters: MAX_SHRINK_STEPS,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[9; 32]),
    );
    let result = runner.run(&generate::requests(templates), |g| {
        if fails(&g) {
            Err(TestCaseError::fail("answered 500"))
        } else {
            Ok(())
        }
    });
    match result {
        Err(TestError::Fail(_, smallest)) => smallest,
        other => panic!("no failure found: {other:?}"),
    }
}

#[test]
fn a_failure_shrinks_back_towards_the_request_the_scenario_sends() {
    let t = templates(&[create(), read()]);
    // A service that fails on any negative `size`, however the rest of the request looks.
    let negative = |g: &Generated| {
        members(g).is_some_and(|m| m.iter().any(|(k, v)| k == "size" && v.starts_with('-')))
    };
    let s = smallest(&t, negative);
    // Everything but the one member is as the load renders it.
    let rendered: serde_json::Value = serde_json::from_str(t[0].body.as_deref().unwrap()).unwrap();
    let m = members(&s).unwrap();
    assert_eq!(m.len(), 3, "{}", s.show());
    for (k, v) in m {
        if k != "size" {
            assert_eq!(v, &rendered[k].to_string(), "{}", s.show());
        }
    }
    assert_eq!(
        (s.path.as_str(), s.content_type.as_deref()),
        ("/widgets", Some("application/json"))
    );

    // A service that fails on a path id that is not a number: the query goes back as it was.
    let not_a_number = |g: &Generated| {
        let id = g.path.strip_prefix("/widgets/").map(|p| p.split('?').next().unwrap());
        id.is_some_and(|id| id.parse::<i64>().is_err())
    };
    let s = smallest(&t, not_a_number);
    assert!(s.path.ends_with("?limit=10&verbose"), "{}", s.show());
    assert!(not_a_number(&s));
}

#[test]
fn bodies_and_paths_are_sent_as_generated() {
    let g = Generated {
        line: "POST /w/{id}".into(),
        method: reqwest::Method::POST,
        path: format!("/w/{}", generate::encode("a/b c".as_bytes())),
        content_type: Some("application/json".into()),
        idempotency_key: None,
        headers: vec![],
        body: Some(Body::Members(vec![
            ("quantity".into(), "123456789012345678901234567890".into()),
            ("customer_email".into(), json_string("é\"@x")),
        ])),
    };
    assert_eq!(
        g.body().unwrap(),
        r#"{"quantity":123456789012345678901234567890,"customer_email":"é\"@x"}"#
    );
    assert_eq!(g.path, "/w/a%2Fb%20c");
    assert_eq!(generate::encode(&[0xff, 0]), "%FF%00");
    assert_eq!(g.route(), "POST /w/{id} (generated)");
    assert!(g.show().starts_with("POST /w/a%2Fb%20c [content-type: \"application/json\"] {"));
}

#[test]
fn the_catalogue_scenario_has_requests_to_vary() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/invalid-input.toml");
    let file: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mix: Vec<MixEntry> = file["load"]["mix"].clone().try_into().unwrap();
    let lab = crate::labfile::target_app();
    let mix: Vec<MixEntry> = mix.iter().map(|m| m.resolved(&lab.requests)).collect();
    let fault = InvalidInput {
        cases: 200,
        requests: Some(mix.clone()),
    };
    let t = fault.templates(1).unwrap();
    // A write with a body and a key, a read with a path parameter; a read with nothing to vary
    // is left out.
    assert!(t.iter().any(|t| t.body.is_some() && t.idempotency_key));
    assert!(
        t.iter()
            .any(|t| t.path.iter().any(|p| matches!(p, Part::Param(_))))
    );
    assert!(t.len() < mix.len());
}
