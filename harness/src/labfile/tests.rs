//! The lab file tests: parsing, validation errors located at file:line:column, placeholders, and
//! fuzzing of the parser.

use std::path::Path;

use super::*;
use crate::load::{LoadPlan, Param};

const GOOD: &str = r#"
[service]
command = ["python3", "-m", "app", "--listen", "{listen}", "--db", "{deps.db.url}"]
env = { DATA = "{data_dir}", ADMIN = "{listen.admin}" }
listeners = ["admin"]
ready = "GET /health"
readiness = "/readyz"
metrics = "http://{listen.admin}/metrics"

[service.logs]
format = "json"
request_id_field = "rid"

[service.config.main]
text = '{"port": {port}, "cache": "{deps.cache.addr}"}'

[deps.db]
kind = "postgres"

[deps.cache]
kind = "tcp"
upstream = "127.0.0.1:6379"

[deps.pay]
kind = "http"

[[deps.pay.answer]]
request = "POST /charges"
status = 201
body = '{"status": "captured"}'

[expect]
errors = "json"
error_fields = ["error"]
leak_patterns = ['secret-\d+']
stale_routes = ["GET /items/{id}"]
stale_header = "x-cache: stale"

[load]
rate = 50

[[request]]
method = "POST"
path = "/items"
body = '{"name": "n-{seq}", "size": {size}}'
params = { size = { uniform = [1, 9] } }
headers = { authorization = "Bearer {uuid}" }
capture = { item = "data.id" }

[[request]]
path = "/items/{id}"
weight = 3
params = { id = { captured = "item" } }
"#;

fn parse_at(text: &str) -> Result<LabFile, LabFileError> {
    parse(Path::new("/tmp/fivehundred.toml"), text)
}

fn err(text: &str) -> LabFileError {
    parse_at(text).unwrap_err()
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

#[test]
fn a_complete_lab_file_validates_into_typed_values() {
    let lab = parse_at(GOOD).unwrap();
    let Start::Command(cmd) = &lab.service.start else {
        panic!("a command")
    };
    assert_eq!(cmd.argv[0].as_str(), "python3");
    assert_eq!(cmd.listeners, vec!["admin"]);
    assert_eq!(cmd.stop_signal, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        lab.service.ready,
        Ready::Http {
            method: "GET".into(),
            path: "/health".into()
        }
    );
    assert_eq!(lab.service.logs.format, LogFormat::Json);
    assert_eq!(lab.service.logs.request_id_field, "rid");
    assert!(matches!(
        lab.deps["db"],
        Dependency::Postgres { ref database, setup: Setup::None } if database == "db"
    ));
    assert!(matches!(&lab.deps["pay"], Dependency::Http(HttpDep::Canned(a)) if a[0].status == 201));
    assert_eq!(
        lab.expect.errors,
        ErrorFormat::Json {
            fields: vec!["error".into()]
        }
    );
    assert_eq!(
        lab.expect.stale_header,
        Some(("x-cache".into(), "stale".into()))
    );
    assert_eq!(lab.load.rate, 50.0);
    assert!(lab.uses_data_dir());
    assert!(lab.mentions_dep("db"));
    assert!(!lab.mentions_dep("pay"));
    assert_eq!(lab.deps_of(DepKind::Tcp).collect::<Vec<_>>(), vec!["cache"]);
}

#[test]
fn lab_file_requests_become_the_load_generators_mix() {
    let lab = parse_at(GOOD).unwrap();
    assert_eq!(lab.requests.len(), 2);
    assert_eq!(lab.requests[0].request, "POST /items");
    assert_eq!(lab.requests[0].capture["item"], "data.id");
    assert_eq!(lab.requests[1].params["id"], Param::Captured("item".into()));
    let mut plan = LoadPlan::new("http://127.0.0.1:1", 10.0, lab.requests.clone());
    plan.requests = Some(1);
    let sent = plan.preview(20).unwrap();
    let post = sent.iter().find(|r| r.method == "POST").unwrap();
    assert!(
        post.headers["authorization"].starts_with("Bearer "),
        "{post:?}"
    );
    let body: serde_json::Value = serde_json::from_str(post.body.as_ref().unwrap()).unwrap();
    assert!((1..=9).contains(&body["size"].as_i64().unwrap()));
}

#[test]
fn an_unknown_key_is_reported_at_its_line_and_column() {
    let text = GOOD.replace("readiness = ", "readines = ");
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "readines =")), "{e}");
    assert_eq!(e.column, Some(1), "{e}");
    assert!(e.message.contains("unknown field `readines`"), "{e}");
}

#[test]
fn a_canned_answer_waits_its_delay_and_a_bad_one_is_reported_where_it_was_written() {
    let text = GOOD.replace("status = 201\n", "status = 201\ndelay = \"15ms\"\n");
    let lab = parse_at(&text).unwrap();
    assert!(
        matches!(&lab.deps["pay"], Dependency::Http(HttpDep::Canned(a)) if a[0].delay == Duration::from_millis(15))
    );
    let text = GOOD.replace("status = 201\n", "status = 201\ndelay = \"soon\"\n");
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "delay = \"soon\"")), "{e}");
    assert_eq!(e.column, Some(9), "{e}");
    assert!(e.message.contains("`soon` is not a duration"), "{e}");
}

#[test]
fn a_bad_type_is_reported_where_it_was_written() {
    let text = GOOD.replace("rate = 50", "rate = \"fast\"");
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "rate = \"fast\"")), "{e}");
    assert!(e.message.contains("invalid type"), "{e}");
}

#[test]
fn a_misspelt_placeholder_points_at_itself_and_lists_the_available_ones() {
    let text = GOOD.replace("{deps.db.url}", "{deps.db.ulr}");
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "{deps.db.ulr}")), "{e}");
    let line = text.lines().nth(e.line.unwrap() - 1).unwrap();
    assert_eq!(
        e.column,
        Some(line.find("{deps.db.ulr}").unwrap() + 1),
        "{e}"
    );
    assert!(
        e.message.contains("unknown placeholder `{deps.db.ulr}`"),
        "{e}"
    );
    assert!(e.hint.as_ref().unwrap().contains("{deps.db.url}"), "{e}");
}

#[test]
fn a_dependency_field_of_another_kind_is_an_unknown_placeholder() {
    // A tcp dependency has no URL.
    let e = err(&GOOD.replace("{deps.cache.addr}", "{deps.cache.url}"));
    assert!(e.message.contains("{deps.cache.url}"), "{e}");
}

#[test]
fn the_lab_calls_its_own_urls_with_service_placeholders_only() {
    let e = err(&GOOD.replace(
        "metrics = \"http://{listen.admin}/metrics\"",
        "metrics = \"http://{deps.cache.addr}/metrics\"",
    ));
    assert!(e.message.contains("unknown placeholder"), "{e}");
}

#[test]
fn a_service_needs_a_command_or_a_url_but_not_both() {
    let both = err(&GOOD.replace(
        "ready = \"GET /health\"",
        "ready = \"GET /health\"\nurl = \"http://127.0.0.1:8000\"",
    ));
    assert!(both.message.contains("not both"), "{both}");
    let neither = err("[service]\nready = \"port\"\n");
    assert_eq!(neither.line, Some(1), "{neither}");
    assert!(neither.message.contains("neither"), "{neither}");
}

#[test]
fn a_url_service_takes_no_start_keys_and_no_dependencies() {
    let e = err("[service]\nurl = \"http://127.0.0.1:8000\"\nport = 9\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("`port` only applies"), "{e}");
    let e = err("[service]\nurl = \"http://127.0.0.1:8000\"\n[deps.db]\nkind = \"postgres\"\n");
    assert!(e.message.contains("dependencies"), "{e}");
    let e = err("[service]\nurl = \"http://example.com\"\n");
    assert!(e.message.contains("loopback"), "{e}");
    let ok = parse_at("[service]\nurl = \"http://127.0.0.1:8000/\"\n").unwrap();
    assert!(matches!(ok.service.start, Start::Url(ref u) if u == "http://127.0.0.1:8000"));
}

#[test]
fn a_key_of_another_dependency_kind_is_rejected_naming_the_kind() {
    let text = GOOD.replace(
        "upstream = \"127.0.0.1:6379\"",
        "upstream = \"127.0.0.1:6379\"\nsetup_sql = [\"x.sql\"]",
    );
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "setup_sql")), "{e}");
    assert!(e.message.contains("for postgres dependencies"), "{e}");
}

#[test]
fn an_unknown_dependency_kind_and_a_bad_upstream_are_rejected() {
    let e = err(&GOOD.replace("kind = \"tcp\"", "kind = \"redis\""));
    assert!(e.message.contains("unknown dependency kind `redis`"), "{e}");
    let e = err(&GOOD.replace("127.0.0.1:6379", "nowhere"));
    assert!(e.message.contains("not host:port"), "{e}");
}

#[test]
fn a_missing_setup_file_is_named_with_its_resolved_path() {
    let text = GOOD.replace(
        "kind = \"postgres\"",
        "kind = \"postgres\"\nsetup_sql = [\"no-such-file.sql\"]",
    );
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "setup_sql")), "{e}");
    assert!(e.message.contains("/tmp/no-such-file.sql"), "{e}");
}

#[test]
fn bad_readiness_signal_regex_and_error_format_are_each_rejected() {
    let e = err(&GOOD.replace("ready = \"GET /health\"", "ready = \"health\""));
    assert!(e.message.contains("not a readiness check"), "{e}");
    let e = err(&GOOD.replace(
        "[service.logs]",
        "stop_signal = \"SIGNOPE\"\n[service.logs]",
    ));
    assert!(e.message.contains("not a signal"), "{e}");
    let e = err(&GOOD.replace("'secret-\\d+'", "'secret-(\\d+'"));
    assert!(e.message.contains("not a regular expression"), "{e}");
    let e = err(&GOOD.replace("errors = \"json\"", "errors = \"xml\""));
    assert!(e.message.contains("unknown error format"), "{e}");
}

#[test]
fn the_request_id_header_is_kept_in_lower_case_and_a_framing_header_is_refused_where_written() {
    let text = GOOD.replace(
        "request_id_field = \"rid\"",
        "request_id_field = \"rid\"\nrequest_id_header = \"X-Correlation-Id\"",
    );
    let lab = parse_at(&text).unwrap();
    assert_eq!(lab.service.logs.request_id_header, "x-correlation-id");
    assert_eq!(
        lab.request_ids(),
        crate::record::RequestIds {
            header: "x-correlation-id".into(),
            field: "rid".into(),
            level: "level".into(),
        }
    );
    let text = GOOD.replace(
        "request_id_field = \"rid\"",
        "request_id_field = \"rid\"\nrequest_id_header = \"Content-Length\"",
    );
    let e = err(&text);
    assert!(e.message.contains("frames the answer"), "{e}");
    assert_eq!(e.line, Some(line_of(&text, "\"Content-Length\"")), "{e}");
}

#[test]
fn a_stop_signal_may_be_written_without_its_prefix() {
    let lab =
        parse_at(&GOOD.replace("[service.logs]", "stop_signal = \"int\"\n[service.logs]")).unwrap();
    let Start::Command(cmd) = lab.service.start else {
        panic!("a command")
    };
    assert_eq!(cmd.stop_signal, nix::sys::signal::Signal::SIGINT);
}

#[test]
fn a_request_reading_a_pool_nobody_captures_is_rejected_at_that_request() {
    let text = GOOD.replace("{ captured = \"item\" }", "{ captured = \"order\" }");
    let e = err(&text);
    assert_eq!(
        e.line,
        Some(line_of(&text, "path = \"/items/{id}\"") - 1),
        "{e}"
    );
    assert!(e.message.contains("no request captures `order`"), "{e}");
}

#[test]
fn a_body_that_is_not_json_once_filled_in_is_rejected() {
    let text = GOOD.replace("\"n-{seq}\"", "n-{seq}");
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "body = '{\"name\"")), "{e}");
    assert!(e.message.contains("not JSON"), "{e}");
}

#[test]
fn a_stale_route_must_be_one_of_the_requests() {
    let e = err(&GOOD.replace("GET /items/{id}\"]", "GET /things/{id}\"]"));
    assert!(
        e.message.contains("not one of the lab file's requests"),
        "{e}"
    );
}

#[test]
fn a_path_without_a_generator_is_rejected() {
    let e = err(&GOOD.replace("params = { id = { captured = \"item\" } }\n", ""));
    assert!(e.message.contains("`{id}` has no generator"), "{e}");
}

#[test]
fn canned_answers_match_segments_and_a_final_star() {
    let a = CannedAnswer {
        method: "POST".into(),
        path: "/charges/{id}/refund".into(),
        status: 200,
        headers: Default::default(),
        body: String::new(),
        delay: Duration::ZERO,
    };
    assert!(a.matches("post", "/charges/42/refund?x=1"));
    assert!(!a.matches("POST", "/charges//refund"));
    assert!(!a.matches("GET", "/charges/42/refund"));
    let star = CannedAnswer {
        path: "/v1/*".into(),
        ..a
    };
    assert!(star.matches("POST", "/v1/a/b/c"));
    assert!(!star.matches("POST", "/v2/a"));
}

#[test]
fn find_prefers_the_explicit_path_and_else_looks_in_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let e = find(None, dir.path()).unwrap_err();
    assert!(e.contains("fivehundred init"), "{e}");
    std::fs::write(dir.path().join(FILE_NAME), GOOD).unwrap();
    assert_eq!(find(None, dir.path()).unwrap(), dir.path().join(FILE_NAME));
    assert!(find(Some(&dir.path().join("other.toml")), dir.path()).is_err());
}

#[test]
fn a_config_template_file_with_a_bad_placeholder_names_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.yml.in"), "a: 1\nurl: {deps.db.nope}\n").unwrap();
    let text = GOOD.replace(
        "text = '{\"port\": {port}, \"cache\": \"{deps.cache.addr}\"}'",
        "template = \"app.yml.in\"",
    );
    let e = parse(&dir.path().join(FILE_NAME), &text).unwrap_err();
    assert!(e.message.contains("app.yml.in:2:6"), "{e}");
    std::fs::write(dir.path().join("app.yml.in"), "url: {deps.db.url}\n").unwrap();
    let lab = parse(&dir.path().join(FILE_NAME), &text).unwrap();
    let Start::Command(cmd) = lab.service.start else {
        panic!("a command")
    };
    assert_eq!(cmd.configs["main"].file_name, "app.yml");
}

#[test]
fn the_shipped_lab_files_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for f in [
        "target-app/fivehundred.toml",
        "examples/datasette/fivehundred.toml",
        "examples/mlflow/fivehundred.toml",
    ] {
        let lab = load(&root.join(f)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!lab.requests.is_empty(), "{f}");
    }
}

#[tokio::test]
async fn init_finds_the_port_and_writes_a_lab_file_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(FILE_NAME);
    let opts = init::InitOptions {
        command: ["python3", "-m", "http.server", "--bind", "127.0.0.1"]
            .map(String::from)
            .to_vec(),
        url: None,
        out: out.clone(),
        force: false,
        wait: std::time::Duration::from_secs(30),
    };
    // Not told a port: http.server takes 8000 unless busy, so only run the fixed-port probe
    // when 8000 is free here; the `{port}` probe below always runs.
    if std::net::TcpListener::bind(("127.0.0.1", 8000)).is_ok() {
        let probe = init::init(&opts).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(probe.port, Some(8000));
        assert!(!probe.told_port);
        load(&out).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_file(&out).unwrap();
    }
    let told = init::InitOptions {
        command: [
            "python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "{port}",
        ]
        .map(String::from)
        .to_vec(),
        ..opts
    };
    let probe = init::init(&told).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(probe.told_port && probe.port.is_some(), "{probe:?}");
    assert_eq!(probe.answers["/"], Some(200));
    let lab = load(&out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lab.service.ready, Ready::Port);
    // It does not overwrite without --force.
    assert!(matches!(
        init::init(&told).await,
        Err(init::InitError::Exists(_))
    ));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// The shipped lab files: real shapes to mutate.
    fn shipped() -> Vec<(std::path::PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        [
            "target-app/fivehundred.toml",
            "examples/datasette/fivehundred.toml",
            "examples/mlflow/fivehundred.toml",
        ]
        .iter()
        .map(|p| {
            let path = root.join(p);
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
    }

    proptest! {
        // Bounded so they run in seconds; each case parses and validates a whole file.
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn a_lab_file_of_any_text_never_panics(text in "\\PC{0,400}") {
            let _ = parse(Path::new("fuzz.toml"), &text);
        }

        #[test]
        fn a_lab_file_of_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("fivehundred.toml");
            std::fs::write(&f, &bytes).unwrap();
            let _ = load(&f);
        }

        #[test]
        fn a_mutated_shipped_lab_file_never_panics(
            which in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            len in 0usize..24,
            with in prop::sample::select(vec!["", "{", "}", "\"", "[", "{deps.", "{listen.x}", "= 1e999", "\u{0}", "99999999999999999999"]),
        ) {
            let files = shipped();
            let (path, text) = which.get(&files);
            let mut cut = at.index(text.len().max(1)).min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut end = (cut + len).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let mutated = format!("{}{}{}", &text[..cut], with, &text[end..]);
            let _ = parse(path, &mutated);
        }
    }

    #[test]
    fn a_lab_file_that_is_a_symlink_to_dev_zero_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("fivehundred.toml");
        std::os::unix::fs::symlink("/dev/zero", &f).unwrap();
        let e = load(&f).unwrap_err();
        assert!(e.to_string().contains("fivehundred.toml"), "{e}");
    }
}

/// A container service: `image` (or `build`) instead of `command`.
const CONTAINER: &str = r#"[service]
image = "shop:1.2"
env = { DB = "{deps.db.url}", LISTEN = "{listen}", ADMIN = "{listen.admin}" }
listeners = ["admin"]
metrics = "http://{listen.admin}/metrics"
stop_grace = "3s"

[deps.db]
kind = "postgres"

[[request]]
path = "/"
"#;

#[test]
fn a_container_service_takes_an_image_its_environment_and_a_port_inside() {
    let lab = parse_at(CONTAINER).unwrap();
    let Start::Container(c) = &lab.service.start else {
        panic!("not a container: {:?}", lab.service.start)
    };
    assert!(matches!(&c.image, ImageSource::Image(n) if n == "shop:1.2"));
    assert_eq!(c.container_port, DEFAULT_CONTAINER_PORT);
    assert_eq!(c.listeners, vec!["admin".to_string()]);
    assert_eq!(c.stop_grace, Duration::from_secs(3));
    assert!(lab.mentions_dep("db"));
    assert!(!lab.uses_data_dir());
    // `port` is the default of `container_port`; both may say the same.
    let lab = parse_at(&CONTAINER.replace("stop_grace", "port = 9000\nstop_grace")).unwrap();
    let Start::Container(c) = &lab.service.start else {
        panic!()
    };
    assert_eq!(c.container_port, 9000);
    let text = CONTAINER.replace(
        "stop_grace",
        "port = 9000\ncontainer_port = 9001\nstop_grace",
    );
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "container_port")), "{e}");
    assert!(e.message.contains("disagree"), "{e}");
}

#[test]
fn a_build_names_a_dockerfile_that_exists_relative_to_the_lab_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fivehundred.toml");
    let text = CONTAINER.replace("image = \"shop:1.2\"", "build = \"app/Dockerfile\"");
    let e = parse(&file, &text).unwrap_err();
    assert_eq!((e.line, e.column), (Some(2), Some(9)), "{e}");
    assert!(
        e.message
            .contains(&dir.path().join("app/Dockerfile").display().to_string()),
        "{e}"
    );
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/Dockerfile"), "FROM x\n").unwrap();
    let lab = parse(&file, &text).unwrap();
    let Start::Container(c) = &lab.service.start else {
        panic!()
    };
    assert!(matches!(&c.image, ImageSource::Build(p) if p.ends_with("app/Dockerfile")));
}

#[test]
fn the_keys_only_a_process_has_are_refused_for_a_container_where_they_are_written() {
    for (key, line) in [
        ("cwd = \".\"", "cwd"),
        ("user = \"nobody\"", "user"),
        ("stop_signal = \"SIGINT\"", "stop_signal"),
    ] {
        let text = CONTAINER.replace("stop_grace", &format!("{key}\nstop_grace"));
        let e = err(&text);
        assert_eq!(e.line, Some(line_of(&text, line)), "{key}: {e}");
        // At its value: `key = ` before it.
        assert_eq!(
            e.column,
            Some(line_of_column(&text, line) + line.len() + 3),
            "{key}: {e}"
        );
        assert!(e.message.contains("as a process"), "{key}: {e}");
    }
    let text = format!("{CONTAINER}\n[service.config.main]\ntext = \"x\"\n")
        .replace("[[request]]\npath = \"/\"\n", "");
    let text = format!("{text}[[request]]\npath = \"/\"\n");
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "[service.config.main]")), "{e}");
    assert!(e.message.contains("config files"), "{e}");
    // A container's files are its own: no `{data_dir}` to hand it.
    let text = CONTAINER.replace("LISTEN = \"{listen}\"", "LISTEN = \"{data_dir}\"");
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "{data_dir}")), "{e}");
    assert_eq!(e.column, Some(line_of_column(&text, "{data_dir}")), "{e}");
    assert!(!e.hint.unwrap_or_default().contains("{data_dir}"));
}

#[test]
fn a_service_has_exactly_one_of_command_url_image_and_build() {
    let text = CONTAINER.replace("env =", "build = \"Dockerfile\"\nenv =");
    let e = err(&text);
    assert_eq!(e.line, Some(line_of(&text, "build")), "{e}");
    assert!(e.message.contains("not both `image` and `build`"), "{e}");
    let text = CONTAINER.replace("env =", "command = [\"srv\"]\nenv =");
    let e = err(&text);
    assert_eq!(
        e.line,
        Some(2),
        "the first of the two is named, the second pointed at: {e}"
    );
    let e = err("[service]\ncommand = [\"srv\"]\ncontainer_port = 80\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("only applies to a container"), "{e}");
    let e = err(&CONTAINER.replace("shop:1.2", "shop 1.2"));
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("not an image name"), "{e}");
    let e = err(&CONTAINER.replace("stop_grace", "container_port = 0\nstop_grace"));
    assert!(e.message.contains("port 0"), "{e}");
}

/// The 1-based column of the first occurrence of `needle` in `text`.
fn line_of_column(text: &str, needle: &str) -> usize {
    let at = text.find(needle).unwrap();
    at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1
}

#[test]
fn a_config_reload_names_its_signal_and_series_and_a_bad_one_is_pointed_at() {
    let good = GOOD.replace(
        "text = '{\"port\": {port}, \"cache\": \"{deps.cache.addr}\"}'",
        "text = 'x = 1'\nreload = { signal = \"USR1\", failures = 'reloads_total{result=\"failure\"}', successes = 'reloads_total{result=\"success\"}' }",
    );
    let lab = parse(Path::new("/x/fivehundred.toml"), &good).unwrap();
    let Start::Command(cmd) = lab.service.start else {
        panic!("a command")
    };
    let reload = cmd.configs["main"].reload.clone().unwrap();
    assert_eq!(reload.signal, Signal::SIGUSR1);
    assert_eq!(reload.failures, "reloads_total{result=\"failure\"}");
    assert_eq!(reload.last_ok, None);

    let bad = good.replace(
        "failures = 'reloads_total{result=\"failure\"}'",
        "failures = 'reloads_total{result='",
    );
    let e = err(&bad);
    assert_eq!(e.line, Some(line_of(&bad, "reloads_total{result='")), "{e}");
    assert!(e.message.contains("not a series selector"), "{e}");
    let e = err(&good.replace("\"USR1\"", "\"SIGNOPE\""));
    assert!(e.message.contains("`SIGNOPE` is not a signal"), "{e}");
    let e = err(&good
        .replace("signal = \"USR1\", ", "")
        .replace("successes", "succeses"));
    assert!(e.message.contains("succeses"), "{e}");
}

#[test]
fn an_openapi_document_adds_its_operations_and_a_bad_one_is_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("openapi = \"api.json\"\n{GOOD}");
    std::fs::write(
        dir.path().join("api.json"),
        r#"{"openapi": "3.0.0", "paths": {"/things/{id}": {"get": {}}}}"#,
    )
    .unwrap();
    let lab = parse(&dir.path().join(FILE_NAME), &text).unwrap();
    assert_eq!(lab.openapi.len(), 1);
    assert_eq!(lab.openapi[0].request, "GET /things/{id}");

    std::fs::write(
        dir.path().join("api.json"),
        "{\"openapi\": \"3.0.0\",\n  \"paths\": [}",
    )
    .unwrap();
    let e = parse(&dir.path().join(FILE_NAME), &text).unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.message.contains("api.json:2:13: not valid JSON: "), "{e}");
    std::fs::remove_file(dir.path().join("api.json")).unwrap();
    let e = parse(&dir.path().join(FILE_NAME), &text).unwrap_err();
    assert!(e.message.contains("no OpenAPI document"), "{e}");
}

#[test]
fn an_openapi_document_in_yaml_adds_its_operations_and_a_bad_one_is_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("openapi = \"api.yml\"\n{GOOD}");
    std::fs::write(
        dir.path().join("api.yml"),
        "openapi: 3.0.0\npaths:\n  /things/{id}:\n    get: {}\n",
    )
    .unwrap();
    let lab = parse(&dir.path().join(FILE_NAME), &text).unwrap();
    assert_eq!(lab.openapi.len(), 1);
    assert_eq!(lab.openapi[0].request, "GET /things/{id}");

    std::fs::write(
        dir.path().join("api.yml"),
        "openapi: 3.0.0\npaths:\n  /things/{id}:\n    get: {}\n   put: {}\n",
    )
    .unwrap();
    let e = parse(&dir.path().join(FILE_NAME), &text).unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.message.contains("api.yml:5:4: not valid YAML: "), "{e}");
}

#[test]
fn a_compose_service_names_its_file_and_a_service_in_it_each_error_where_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fivehundred.toml");
    let text = "[service]\ncompose = \"compose.yaml\"\ncompose_service = \"web\"\nport = 8080\nenv = { A = \"{listen}\" }\n[[request]]\npath = \"/\"\n";
    let e = parse(&file, text).unwrap_err();
    assert_eq!((e.line, e.column), (Some(2), Some(11)), "{e}");
    assert!(e.message.contains("no compose file at"), "{e}");
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  api:\n    build: .\n  db:\n    image: pg\n",
    )
    .unwrap();
    let e = parse(&file, text).unwrap_err();
    assert_eq!((e.line, e.column), (Some(3), Some(19)), "{e}");
    assert!(
        e.message.contains("no service `web`") && e.message.contains("api, db"),
        "{e}"
    );
    let text = text.replace("\"web\"", "\"api\"");
    let lab = parse(&file, &text).unwrap();
    let Start::Container(c) = &lab.service.start else {
        panic!()
    };
    let ImageSource::Compose(source) = &c.image else {
        panic!()
    };
    assert_eq!(source.service, "api");
    assert_eq!(source.services, ["api", "db"]);
    assert_eq!(c.container_port, 8080);
    // Without the service's name; a service's name without a file; both with [deps].
    let e = parse(&file, &text.replace("compose_service = \"api\"\n", "")).unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("needs `compose_service`"), "{e}");
    let e = parse(
        &file,
        &text.replace(
            "compose = \"compose.yaml\"",
            "command = [\"x\", \"{port}\"]",
        ),
    )
    .unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("`compose_service`"), "{e}");
    let e = parse(
        &file,
        &text.replace("[[request]]", "[deps.db]\nkind = \"postgres\"\n[[request]]"),
    )
    .unwrap_err();
    assert_eq!(e.line, Some(6), "{e}");
    assert!(e.message.contains("dependencies there"), "{e}");
    // A compose file the YAML parser refuses: its own line and column in the message.
    std::fs::write(dir.path().join("compose.yaml"), "services:\n  api: [\n").unwrap();
    let e = parse(&file, &text).unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("compose.yaml:"), "{e}");
}
