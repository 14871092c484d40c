//! The generic catalogue of a lab file: every cause of HTTP 500 whose prerequisites the lab file
//! provides, as a scenario with what "responds correctly" means for any service (DESIGN.md's
//! defaults: no 5xx for a failing dependency or an overload, 503 instead, never a hang, readiness
//! that follows the dependency, recovery without a restart), and for each cause that does not
//! apply, why.
//!
//! Scenario files stay the way to state more (a route that must serve stale data, an alert that
//! must fire); this is what a service gets from its lab file alone.

use std::path::Path;
use std::time::Duration;

use crate::faults::Fault;
use crate::labfile::{DepKind, Dependency, LabFile, Start};
use crate::scenario::{
    AlertExpectations, Contract, DataExpect, Expectations, Health, LatencyLimits, Learn, LoadSpec,
    PhaseExpect, Phases, Scenario, ScheduledFault, StatusExpect, StatusPattern,
};

/// One cause for one lab file: its scenario, or why it does not apply.
#[derive(Debug, Clone)]
pub struct Cause {
    pub name: String,
    /// In DESIGN.md's words.
    pub cause: String,
    pub applies: Result<Box<Scenario>, String>,
}

/// How long each phase of a generic scenario lasts.
const PHASES: Phases = Phases {
    steady: Duration::from_secs(5),
    fault: Duration::from_secs(8),
    recovery: Duration::from_secs(10),
};

/// Errors must stop within this long of a revert.
const RECOVER_WITHIN: Duration = Duration::from_secs(10);

/// Every cause, applicable or not, for `lab`. `program` is what a privileged fault would need
/// to reach (the service's program), for the machine's checks.
pub fn catalogue(lab: &LabFile) -> Vec<Cause> {
    let process = match &lab.service.start {
        Start::Command(_) | Start::Container(_) => Ok(()),
        Start::Url(url) => Err(format!(
            "the service is only a URL ({url}): the lab does not control its process"
        )),
    };
    // What the lab does to a process on this machine (its limits, its cgroup, its files) does
    // not reach into a container; a crash does (`docker kill`, then `docker start`).
    let host_process = match &lab.service.start {
        Start::Container(_) => Err(CONTAINER.to_string()),
        _ => process.clone(),
    };
    let mut out = dependency_causes(lab);
    out.extend(compose_causes(lab));
    out.extend(database_causes(lab));
    out.push(overload_cause(lab));
    out.extend(process_causes(lab, &process, &host_process));
    out.push(invalid_input_cause(lab));
    out.extend(data_dir_causes(lab, &host_process));
    out
}

/// Why the causes that act on a process on this machine do not apply to a container service.
const CONTAINER: &str = "the service runs in a container, whose processes, limits and files the lab does not reach from this machine";

/// Each dependency down, and a TCP one (PostgreSQL's too) slow, when a template hands the
/// service its address.
fn dependency_causes(lab: &LabFile) -> Vec<Cause> {
    let mut out = Vec::new();
    for (name, dep) in &lab.deps {
        let (cause, what) = match dep.kind() {
            DepKind::Postgres => ("database down", "its PostgreSQL"),
            DepKind::Tcp => ("failing dependency", "its TCP dependency"),
            DepKind::Http => ("failing dependency", "its HTTP dependency"),
        };
        let mentioned = if lab.mentions_dep(name) {
            Ok(())
        } else {
            Err(format!(
                "no template hands the service `{{deps.{name}.…}}`, so it cannot be using the lab's proxy"
            ))
        };
        out.push(Cause {
            name: format!("{name}-down"),
            cause: cause.into(),
            applies: mentioned.clone().and_then(|()| {
                scenario(
                    lab,
                    &format!("{name}-down"),
                    &format!("{what} `{name}` refuses every connection for eight seconds"),
                    cause,
                    network(name, "down", None)?,
                    true,
                )
            }),
        });
        if matches!(dep, Dependency::Http(_)) {
            out.push(Cause {
                name: format!("{name}-errors"),
                cause: "failing dependency".into(),
                applies: mentioned.clone().and_then(|()| {
                    scenario(
                        lab,
                        &format!("{name}-errors"),
                        &format!("its HTTP dependency `{name}` answers every call with 503"),
                        "failing dependency",
                        dependency(name, "error", Some(503))?,
                        true,
                    )
                }),
            });
        }
        if matches!(dep, Dependency::Postgres { .. } | Dependency::Tcp { .. }) {
            out.push(Cause {
                name: format!("{name}-slow"),
                cause: "database latency, timeouts".into(),
                applies: mentioned.and_then(|()| {
                    scenario(
                        lab,
                        &format!("{name}-slow"),
                        &format!("every byte to and from `{name}` is delayed by two seconds"),
                        "database latency, timeouts",
                        network(name, "latency", Some("2s"))?,
                        false,
                    )
                }),
            });
        }
    }
    out
}

/// Each dependency of a compose file's service paused (every process frozen, its connections
/// left open) and stopped (then started again), by the container fault.
fn compose_causes(lab: &LabFile) -> Vec<Cause> {
    let Some(source) = compose_source(lab) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dep in source.dependencies() {
        for (action, what) in [
            (
                "pause",
                "is paused (every process frozen, its connections left open)",
            ),
            ("stop", "is stopped, and started again"),
        ] {
            let name = format!("{dep}-{action}");
            let fault = Fault::from_table(table(&format!(
                "kind = \"container\"\ntarget = \"{dep}\"\naction = \"{action}\"\n"
            )))
            .map_err(|e| e.message);
            out.push(Cause {
                name: name.clone(),
                cause: "failing dependency".into(),
                applies: fault.and_then(|f| {
                    scenario(
                        lab,
                        &name,
                        &format!("the compose service `{dep}` {what}"),
                        "failing dependency",
                        f,
                        true,
                    )
                }),
            });
        }
    }
    out
}

/// The compose file the lab file's service comes from, if it does.
fn compose_source(lab: &LabFile) -> Option<&crate::labfile::ComposeSource> {
    match &lab.service.start {
        Start::Container(c) => match &c.image {
            crate::labfile::ImageSource::Compose(source) => Some(source),
            _ => None,
        },
        _ => None,
    }
}

/// The database causes that need the service's own tables: never from a lab file alone.
fn database_causes(lab: &LabFile) -> Vec<Cause> {
    let mut out = Vec::new();
    if let Some(source) = compose_source(lab) {
        for (name, cause) in [
            ("db-lock-contention", "database timeouts under load"),
            ("db-connection-exhaustion", "database connectivity failures"),
            ("bad-migration", "schema changes, bad deployments"),
        ] {
            out.push(not_applicable(
                name,
                cause,
                &format!(
                    "the service's database is a service of {}, whose tables the lab does not know: write a scenario file",
                    source.file.display()
                ),
            ));
        }
    } else if lab.deps_of(DepKind::Postgres).next().is_none() {
        for (name, cause) in [
            ("db-lock-contention", "database timeouts under load"),
            ("db-connection-exhaustion", "database connectivity failures"),
            ("bad-migration", "schema changes, bad deployments"),
        ] {
            out.push(not_applicable(name, cause, "no postgres dependency"));
        }
    } else {
        for (name, cause) in [
            ("db-lock-contention", "database timeouts under load"),
            ("db-connection-exhaustion", "database connectivity failures"),
            ("bad-migration", "schema changes, bad deployments"),
        ] {
            out.push(not_applicable(
                name,
                cause,
                "needs the service's own table names: write a scenario file naming them",
            ));
        }
    }
    out
}

/// Ten times the steady load at once.
fn overload_cause(lab: &LabFile) -> Cause {
    let overload = Fault::from_table(table(&format!(
        "kind = \"overload\"\nrate = {}",
        (lab.load.rate * 10.0).max(100.0).round()
    )));
    Cause {
        name: "overload".into(),
        cause: "exhausted resources under load".into(),
        applies: match overload {
            Ok(f) => scenario(
                lab,
                "overload",
                "ten times the steady load arrives at once",
                "exhausted resources under load",
                f,
                false,
            ),
            Err(e) => Err(e.message),
        },
    }
}

/// What the lab does to the service's process: its open files, a crash, its memory.
/// `process` is why the lab cannot stop and start the service, if it cannot; `host_process`
/// why it cannot reach its processes' limits and cgroup.
fn process_causes(
    lab: &LabFile,
    process: &Result<(), String>,
    host_process: &Result<(), String>,
) -> Vec<Cause> {
    let fd_exhaustion = Cause {
        name: "fd-exhaustion".into(),
        cause: "exhausted resources".into(),
        applies: host_process.clone().and_then(|()| {
            let f = Fault::from_table(table("kind = \"fd-limit\"")).map_err(|e| e.message)?;
            scenario(
                lab,
                "fd-exhaustion",
                "the service's open-file limit is lowered to what it has open",
                "exhausted resources",
                f,
                false,
            )
        }),
    };
    let crash_restart = Cause {
        name: "crash-restart".into(),
        cause: "recent bad deployment / crash".into(),
        applies: process.clone().and_then(|()| {
            let f = Fault::from_table(table("kind = \"crash\"")).map_err(|e| e.message)?;
            let mut s = scenario(
                lab,
                "crash-restart",
                "the service is killed with SIGKILL mid-load and started again eight seconds later",
                "recent bad deployment / crash",
                f,
                true,
            )?;
            // Nothing answers while it is gone (refused connections), but nothing answers
            // wrongly; its restart must be ready to serve.
            let during = &mut s.expect.fault;
            during.status.allow = Some(statuses(&["2xx", "3xx", "4xx", "none"]));
            during.status.require = statuses(&["none"]);
            if lab.service.liveness.is_some() {
                during.livez = Some(Health::Fail);
            }
            Ok(s)
        }),
    };
    let memory_pressure = Cause {
        name: "memory-pressure".into(),
        cause: "memory exhaustion".into(),
        applies: host_process.clone().map_err(|why| {
            if matches!(lab.service.start, Start::Container(_)) {
                // What a lower limit does depends on what the service already holds, which a
                // lab file does not say: a scenario file names the limit.
                format!(
                    "{why}; the container fault kind lowers its container's memory limit (kind = \"container\", target = \"service\", action = \"memory\")"
                )
            } else {
                why
            }
        }).and_then(|()| {
            // A cgroup charges only what is allocated after a process joins it, so the limit is
            // the room left for new allocations whatever the service already holds: the hog
            // leaves it 32 MiB.
            let f = Fault::from_table(table(
                "kind = \"memory\"\nlimit = \"256MiB\"\nhog = \"224MiB\"",
            ))
            .map_err(|e| e.message)?;
            scenario(
                lab,
                "memory-pressure",
                "the service's processes are put in a cgroup that leaves them 32 MiB of new memory",
                "memory exhaustion",
                f,
                false,
            )
        }),
    };
    vec![fd_exhaustion, crash_restart, memory_pressure]
}

/// Requests generated from the lab file's own, made hostile.
fn invalid_input_cause(lab: &LabFile) -> Cause {
    Cause {
        name: "invalid-input".into(),
        cause: "invalid payloads reaching the server".into(),
        applies: (|| {
            // Generated from the lab file's own requests: their path parameters, query values,
            // JSON bodies and headers varied into what a client should never send.
            let f = Fault::from_table(table("kind = \"invalid-input\"")).map_err(|e| e.message)?;
            let mut s = scenario(
                lab,
                "invalid-input",
                "requests generated from the lab file's own, with hostile paths, queries, bodies and headers",
                "invalid payloads reaching the server",
                f,
                false,
            )?;
            // Bad input is the client's mistake: a 4xx, never a 5xx (503 included) nor silence.
            s.expect.fault.status.allow = Some(statuses(&["2xx", "3xx", "4xx"]));
            Ok(s)
        })(),
    }
}

/// What the lab does to the service's data directory: fills it, takes its write permission.
fn data_dir_causes(lab: &LabFile, process: &Result<(), String>) -> Vec<Cause> {
    // A container's files are its own: `process` says so for one.
    let data_dir = process.clone().and_then(|()| {
        if lab.uses_data_dir() {
            Ok(())
        } else {
            Err("the service is not told a data directory (`{data_dir}`)".to_string())
        }
    });
    let disk_full = Cause {
        name: "disk-full".into(),
        cause: "out of disk".into(),
        applies: data_dir.clone().and_then(|()| {
            // The service starts with a private tmpfs as its data directory, which the fault
            // fills: writes there fail with ENOSPC, the host's disks are never touched.
            let f = Fault::from_table(table("kind = \"disk-full\"")).map_err(|e| e.message)?;
            scenario(
                lab,
                "disk-full",
                "the service's data directory (a private tmpfs) is filled until a write fails with ENOSPC",
                "out of disk",
                f,
                false,
            )
        }),
    };
    let user = match &lab.service.start {
        Start::Command(spec) => spec.user.clone(),
        Start::Url(_) | Start::Container(_) => None,
    };
    let permission_flip = Cause {
        name: "permission-flip".into(),
        cause: "file or directory permission problems".into(),
        applies: data_dir.and_then(|()| {
            if user.as_deref().is_none_or(|u| u == "root" || u == "0") {
                return Err(
                    "the service runs as root, which file modes do not bind: give it a `user`"
                        .to_string(),
                );
            }
            let f = Fault::from_table(table(
                "kind = \"permission\"\npath = \"data-dir\"\nmode = \"0500\"",
            ))
            .map_err(|e| e.message)?;
            scenario(
                lab,
                "permission-flip",
                "the service's data directory becomes read-only for its user",
                "file or directory permission problems",
                f,
                false,
            )
        }),
    };
    vec![disk_full, permission_flip]
}

fn not_applicable(name: &str, cause: &str, why: &str) -> Cause {
    Cause {
        name: name.into(),
        cause: cause.into(),
        applies: Err(why.to_string()),
    }
}

fn table(text: &str) -> toml::Table {
    toml::from_str(text).unwrap_or_default()
}

fn network(dep: &str, fault: &str, latency: Option<&str>) -> Result<Fault, String> {
    let mut text = format!("kind = \"network\"\ntarget = \"{dep}\"\nfault = \"{fault}\"\n");
    if let Some(l) = latency {
        text.push_str(&format!("latency = \"{l}\"\n"));
    }
    Fault::from_table(table(&text)).map_err(|e| e.message)
}

fn dependency(dep: &str, behaviour: &str, status: Option<u16>) -> Result<Fault, String> {
    let mut text =
        format!("kind = \"dependency\"\ntarget = \"{dep}\"\nbehaviour = \"{behaviour}\"\n");
    if let Some(s) = status {
        text.push_str(&format!("status = {s}\n"));
    }
    Fault::from_table(table(&text)).map_err(|e| e.message)
}

fn statuses(list: &[&str]) -> Vec<StatusPattern> {
    list.iter()
        .filter_map(|s| StatusPattern::parse(s))
        .collect()
}

/// A generic scenario: steady state without errors, the fault, recovery without a restart.
/// `readiness_fails`: the fault takes a dependency away, so a readiness path must say so.
fn scenario(
    lab: &LabFile,
    name: &str,
    title: &str,
    cause: &str,
    mut fault: Fault,
    readiness_fails: bool,
) -> Result<Box<Scenario>, String> {
    if lab.requests.is_empty() {
        return Err("the lab file has no [[request]] to send".into());
    }
    // What the fault sends (an overload's extra load, invalid input's requests) is the lab
    // file's own load.
    fault.fit(lab, &lab.requests).map_err(|e| e.message)?;
    let has_readiness = lab.service.readiness.is_some();
    let has_liveness = lab.service.liveness.is_some();
    // A failing dependency or an overload may be refused (503), never answered with another 5xx
    // and never left without an answer.
    let degraded = statuses(&["2xx", "3xx", "4xx", "503"]);
    let steady = PhaseExpect {
        status: StatusExpect {
            allow: Some(statuses(&["2xx", "3xx", "4xx"])),
            ..Default::default()
        },
        readyz: has_readiness.then_some(Health::Pass),
        livez: has_liveness.then_some(Health::Pass),
        ..Default::default()
    };
    let during = PhaseExpect {
        status: StatusExpect {
            allow: Some(degraded.clone()),
            ..Default::default()
        },
        latency: LatencyLimits {
            max: Some(lab.load.timeout),
            ..Default::default()
        },
        readyz: (has_readiness && readiness_fails).then_some(Health::Fail),
        livez: has_liveness.then_some(Health::Pass),
        ..Default::default()
    };
    let recovery = PhaseExpect {
        status: StatusExpect {
            allow: Some(degraded),
            ..Default::default()
        },
        readyz: has_readiness.then_some(Health::Pass),
        recover_within: Some(RECOVER_WITHIN),
        ..Default::default()
    };
    Ok(Box::new(Scenario {
        name: name.into(),
        title: title.into(),
        cause: cause.into(),
        protection: None,
        learn: Learn::default(),
        load: LoadSpec {
            rate: lab.load.rate,
            mix: lab.requests.clone(),
            timeout: lab.load.timeout,
        },
        phases: PHASES,
        faults: vec![ScheduledFault {
            fault,
            start: Duration::ZERO,
            duration: PHASES.fault,
        }],
        expect: Expectations {
            steady,
            fault: during,
            recovery,
            data: DataExpect {
                acknowledged: true,
                invariants: Vec::new(),
            },
        },
        alerts: AlertExpectations {
            expect: Vec::new(),
            // Any of the service's own alerts may fire while something is broken; none may
            // fire in steady state (the `quiet` check).
            allow: alert_names(lab.alerts.as_deref()),
        },
        contract: Contract::of(lab),
        file: lab.file.clone(),
    }))
}

fn alert_names(rules: Option<&Path>) -> Vec<String> {
    rules
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| crate::monitoring::rule_timings(&text).ok())
        .map(|t| t.into_iter().map(|t| t.alert).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn causes(text: &str) -> BTreeMap<String, Result<String, String>> {
        let lab = crate::labfile::parse(Path::new("fivehundred.toml"), text).expect("valid");
        catalogue(&lab)
            .into_iter()
            .map(|c| {
                let applies = c.applies.map(|s| s.faults[0].fault.kind().to_string());
                (c.name, applies)
            })
            .collect()
    }

    const STARTED: &str = r#"
[service]
command = ["srv", "--data", "{data_dir}", "--port", "{port}"]
[[request]]
path = "/"
"#;

    #[test]
    fn a_started_service_with_a_data_directory_gets_the_process_and_disk_causes() {
        let c = causes(STARTED);
        for (name, kind) in [
            ("crash-restart", "crash"),
            ("memory-pressure", "memory"),
            ("disk-full", "disk-full"),
            ("fd-exhaustion", "fd-limit"),
            ("overload", "overload"),
            ("invalid-input", "invalid-input"),
        ] {
            assert_eq!(c[name].as_deref(), Ok(kind), "{name}");
        }
        // Root ignores file modes: the flip would test nothing.
        let why = c["permission-flip"].clone().unwrap_err();
        assert!(why.contains("`user`"), "{why}");
    }

    #[test]
    fn a_compose_service_gets_each_dependency_paused_and_stopped_and_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("compose.yaml"),
            "services:\n  web:\n    build: .\n  db:\n    image: pg\n  cache:\n    image: redis\n",
        )
        .unwrap();
        let lab = crate::labfile::parse(
            &dir.path().join("fivehundred.toml"),
            "[service]\ncompose = \"compose.yaml\"\ncompose_service = \"web\"\nport = 8080\nreadiness = \"/readyz\"\n[[request]]\npath = \"/\"\n",
        )
        .unwrap();
        let all = catalogue(&lab);
        let c: BTreeMap<_, _> = all
            .iter()
            .map(|c| (c.name.as_str(), c.applies.as_ref()))
            .collect();
        for dep in ["db", "cache"] {
            for action in ["pause", "stop"] {
                let s = c[format!("{dep}-{action}").as_str()].expect("applies");
                let fault = &s.faults[0].fault;
                assert_eq!(fault.kind(), "container");
                assert!(
                    fault
                        .describe()
                        .contains(&format!("compose service `{dep}`")),
                    "{}",
                    fault.describe()
                );
                assert_eq!(s.expect.fault.readyz, Some(Health::Fail), "{dep}-{action}");
            }
        }
        assert!(
            !c.contains_key("web-pause"),
            "the service under test is no dependency"
        );
        for applies in ["crash-restart", "overload", "invalid-input"] {
            assert!(c[applies].is_ok(), "{applies}");
        }
        for host in ["fd-exhaustion", "memory-pressure", "disk-full"] {
            let why = c[host].unwrap_err();
            assert!(why.contains("container"), "{host}: {why}");
        }
        let why = c["db-lock-contention"].unwrap_err();
        assert!(why.contains("compose.yaml"), "{why}");
    }

    #[test]
    fn the_overload_and_invalid_input_send_the_lab_files_own_requests() {
        let lab = crate::labfile::parse(Path::new("fivehundred.toml"), STARTED).expect("valid");
        let lines = |mix: &[crate::load::MixEntry]| {
            mix.iter().map(|m| m.request.clone()).collect::<Vec<_>>()
        };
        let want = lines(&lab.requests);
        for cause in catalogue(&lab) {
            let Ok(s) = cause.applies else { continue };
            match &s.faults[0].fault {
                Fault::Overload(o) => assert_eq!(lines(&o.mix), want, "overload"),
                Fault::InvalidInput(f) => {
                    assert_eq!(lines(f.requests.as_deref().unwrap_or(&[])), want)
                }
                _ => {}
            }
        }
    }

    #[test]
    fn every_http_dependency_gets_its_errors_cause_canned_or_a_real_upstream() {
        let text = STARTED
            .replace("\"--port\", \"{port}\"]", "\"--port\", \"{port}\", \"{deps.pay.url}\", \"{deps.up.url}\"]")
            .replace(
                "[[request]]",
                "[deps.pay]\nkind = \"http\"\n[[deps.pay.answer]]\nrequest = \"POST /charges\"\n[deps.up]\nkind = \"http\"\nupstream = \"http://127.0.0.1:9\"\n[[request]]",
            );
        let c = causes(&text);
        assert_eq!(c["pay-errors"].as_deref(), Ok("dependency"));
        assert_eq!(c["pay-down"].as_deref(), Ok("network"));
        // A real upstream is answered through the lab's stub too: it can fail the same way.
        assert_eq!(c["up-errors"].as_deref(), Ok("dependency"));
        assert_eq!(c["up-down"].as_deref(), Ok("network"));
    }

    #[test]
    fn a_service_with_a_user_of_its_own_gets_the_permission_flip() {
        let text = STARTED.replace("[[request]]", "user = \"nobody\"\n[[request]]");
        assert_eq!(
            causes(&text)["permission-flip"].as_deref(),
            Ok("permission")
        );
    }

    #[test]
    fn a_service_that_is_only_a_url_gets_no_process_cause_and_says_why() {
        let c = causes("[service]\nurl = \"http://127.0.0.1:8000\"\n[[request]]\npath = \"/\"\n");
        for name in [
            "crash-restart",
            "memory-pressure",
            "disk-full",
            "fd-exhaustion",
        ] {
            let why = c[name].clone().unwrap_err();
            assert!(why.contains("only a URL"), "{name}: {why}");
        }
        assert_eq!(c["overload"].as_deref(), Ok("overload"));
        assert_eq!(c["invalid-input"].as_deref(), Ok("invalid-input"));
    }

    #[test]
    fn a_container_service_gets_the_crash_and_says_why_the_host_process_causes_do_not_apply() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM fivehundred/debian:bookworm\n",
        )
        .unwrap();
        let text = "[service]\nbuild = \"Dockerfile\"\nenv = { DB = \"{deps.db.url}\" }\n[deps.db]\nkind = \"postgres\"\n[[request]]\npath = \"/\"\n";
        let lab = crate::labfile::parse(&dir.path().join("fivehundred.toml"), text).unwrap();
        let c: BTreeMap<String, Result<String, String>> = catalogue(&lab)
            .into_iter()
            .map(|c| {
                (
                    c.name,
                    c.applies.map(|s| s.faults[0].fault.kind().to_string()),
                )
            })
            .collect();
        for (name, kind) in [
            ("crash-restart", "crash"),
            ("db-down", "network"),
            ("db-slow", "network"),
            ("overload", "overload"),
            ("invalid-input", "invalid-input"),
        ] {
            assert_eq!(c[name].as_deref(), Ok(kind), "{name}");
        }
        for name in [
            "fd-exhaustion",
            "memory-pressure",
            "disk-full",
            "permission-flip",
        ] {
            let why = c[name].clone().unwrap_err();
            assert!(why.contains("runs in a container"), "{name}: {why}");
        }
        assert!(
            c["memory-pressure"]
                .clone()
                .unwrap_err()
                .contains("target = \"service\"")
        );
    }

    #[test]
    fn without_a_data_directory_the_disk_causes_say_so() {
        let c = causes("[service]\ncommand = [\"srv\", \"{port}\"]\n[[request]]\npath = \"/\"\n");
        for name in ["disk-full", "permission-flip"] {
            let why = c[name].clone().unwrap_err();
            assert!(why.contains("{data_dir}"), "{name}: {why}");
        }
    }
}
