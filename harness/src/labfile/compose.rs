//! A compose file as the lab reads it (`[service] compose`): its services, and the networks and
//! volumes it declares, which the lab's override file labels with the run. The file is read
//! here only for those names; the compose tool reads it for everything else.

use std::path::Path;

use serde_json::Value;

use super::ComposeSource;

/// The names in the compose file at `path` (`text`), with `service` the service under test.
/// Errors say what is wrong, `file:line:column` first where the YAML parser knows it.
pub(super) fn read(path: &Path, text: &str, service: &str) -> Result<ComposeSource, String> {
    let doc = super::openapi::from_yaml(path, text, "")?;
    let at = |what: String| format!("{}: {what}", path.display());
    let Some(top) = doc.as_object() else {
        return Err(at("a compose file is a mapping with `services`".into()));
    };
    let Some(services) = top.get("services").and_then(Value::as_object) else {
        return Err(at("it has no `services` mapping".into()));
    };
    if services.is_empty() {
        return Err(at("its `services` is empty".into()));
    }
    for (name, s) in services {
        if s.get("container_name").is_some() {
            return Err(at(format!(
                "service `{name}` sets `container_name`: the lab starts the project under a name of its own per run, and a fixed container name would clash; remove it"
            )));
        }
    }
    let names: Vec<String> = services.keys().cloned().collect();
    if !names.iter().any(|n| n == service) {
        return Err(at(format!(
            "no service `{service}`; its services: {}",
            names.join(", ")
        )));
    }
    // Declared and not external: those the compose tool creates, so the run's labels fit them.
    let declared = |key: &str| -> Vec<String> {
        top.get(key)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| {
                        !v.get("external")
                            .is_some_and(|e| e.as_bool() != Some(false) && !e.is_null())
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    let version = top.get("version").map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    Ok(ComposeSource {
        file: path.to_path_buf(),
        service: service.to_string(),
        services: names,
        networks: declared("networks"),
        volumes: declared("volumes"),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "version: '3.8'\nservices:\n  web:\n    build: .\n    depends_on: [db]\n  db:\n    image: postgres:15\n    volumes: [data:/var/lib/postgresql/data]\nnetworks:\n  back: {}\n  shared:\n    external: true\nvolumes:\n  data:\n  old:\n    external: true\n";

    #[test]
    fn the_services_and_what_the_file_creates_are_read() {
        let c = read(Path::new("/p/compose.yaml"), FILE, "web").unwrap();
        assert_eq!(c.services, ["db", "web"]);
        assert_eq!(c.dependencies().collect::<Vec<_>>(), ["db"]);
        assert_eq!(
            c.networks,
            ["back"],
            "an external network is not the project's"
        );
        assert_eq!(c.volumes, ["data"]);
        assert_eq!(c.version.as_deref(), Some("3.8"));
    }

    #[test]
    fn an_unknown_service_a_fixed_name_and_bad_yaml_are_refused_with_where() {
        let e = read(Path::new("/p/compose.yaml"), FILE, "api").unwrap_err();
        assert!(
            e.starts_with("/p/compose.yaml: no service `api`") && e.contains("db, web"),
            "{e}"
        );
        let e = read(
            Path::new("/p/c.yaml"),
            "services:\n  web:\n    image: x\n    container_name: web\n",
            "web",
        )
        .unwrap_err();
        assert!(e.contains("`container_name`"), "{e}");
        let e = read(Path::new("/p/c.yaml"), "services:\n  web: [\n", "web").unwrap_err();
        assert!(e.starts_with("/p/c.yaml:"), "{e}");
        assert!(
            e.split(':')
                .nth(1)
                .is_some_and(|l| l.parse::<u32>().is_ok()),
            "{e}"
        );
        let e = read(Path::new("/p/c.yaml"), "version: '3'\n", "web").unwrap_err();
        assert!(e.contains("no `services`"), "{e}");
    }
}
