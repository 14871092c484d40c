//! The run's PostgreSQL: an ephemeral cluster, a container (`--backend docker`), or a fresh
//! database on a server given with `--database-url`, each journalled before it exists, and the
//! fault proxy in front of it.

use super::{Backend, LabError, LabOptions};
use crate::journal::{Journal, Resource};
use crate::proxy::Proxy;
use crate::target::TargetNeeds;

/// The run's database, with what its teardown needs.
pub(crate) enum Database {
    Ephemeral(pglab::PgCluster),
    Existing {
        admin_url: String,
        name: String,
    },
    /// PostgreSQL in a container on a lab network of its own, both labelled with `run`.
    Container {
        pg: Box<crate::docker::postgres::PgContainer>,
        engine: crate::docker::Engine,
        run: crate::docker::RunId,
    },
    /// The service has no PostgreSQL dependency.
    None,
}

/// The run's database (an ephemeral cluster, or a fresh database on `--database-url`) and the
/// fault proxy in front of it.
pub(super) async fn start_database(
    opts: &LabOptions,
    needs: &TargetNeeds,
    journal: &Journal,
    parts: &mut super::StartParts,
) -> Result<(Database, String, Proxy), LabError> {
    let db_name = format!("fivehundred_{}", uuid::Uuid::new_v4().simple());
    let started = std::time::Instant::now();
    let parts_before = parts.len();
    let (db, database_url, upstream_port) = match &opts.database_url {
        None if opts.backend == Backend::Docker => {
            let run = crate::docker::RunId::generate();
            // Journalled before anything exists: `recover` removes what carries the label.
            journal.resource(Resource::Containers {
                run: run.as_str().to_string(),
            });
            let (pg, engine) = start_container_database(&run, needs, parts).await?;
            let url = pglab::create_database(&pg.url(), &db_name)
                .await
                .map_err(|e| LabError(format!("cannot create the run's database: {e}")))?;
            let port = pg.host_port();
            (
                Database::Container {
                    pg: Box::new(pg),
                    engine,
                    run,
                },
                url,
                port,
            )
        }
        None => {
            let mut cluster_opts = pglab::Options::default();
            if let Some(n) = needs.max_connections {
                cluster_opts.max_connections = n;
            }
            let started = std::time::Instant::now();
            let cluster = pglab::PgCluster::start_with(cluster_opts)
                .await
                .map_err(|e| LabError(format!("cannot start an ephemeral PostgreSQL: {e}")))?;
            parts.push(("PostgreSQL cluster started and ready", started.elapsed()));
            journal.resource(Resource::Process {
                pid: cluster.pid().unwrap_or(0),
                what: "postgres".into(),
                start_time: None,
            });
            journal.resource(Resource::Dir {
                path: cluster.root().to_path_buf(),
            });
            let url = cluster
                .create_database(&db_name)
                .await
                .map_err(|e| LabError(format!("cannot create the run's database: {e}")))?;
            let port = cluster.port();
            (Database::Ephemeral(cluster), url, port)
        }
        Some(admin_url) => {
            journal.resource(Resource::Database {
                admin_url: admin_url.clone(),
                name: db_name.clone(),
            });
            let url = pglab::create_database(admin_url, &db_name)
                .await
                .map_err(|e| {
                    LabError(format!(
                        "cannot create a database on --database-url: {e}; check the URL and that the user may CREATE DATABASE"
                    ))
                })?;
            let port = url_port(admin_url).ok_or_else(|| {
                LabError(
                    "--database-url must name a host and port (postgres://user@host:port/db)"
                        .into(),
                )
            })?;
            (
                Database::Existing {
                    admin_url: admin_url.clone(),
                    name: db_name.clone(),
                },
                url,
                port,
            )
        }
    };
    let upstream_host = url_host(&database_url).unwrap_or_else(|| "127.0.0.1".into());
    let upstream = tokio::net::lookup_host((upstream_host.as_str(), upstream_port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| LabError(format!("cannot resolve the database host {upstream_host}")))?;
    let db_proxy = Proxy::start("127.0.0.1:0".parse().expect("addr"), upstream, opts.seed)
        .await
        .map_err(|e| LabError(format!("cannot start the database proxy: {e}")))?;
    // What the server's own start took is in the parts already.
    let before: std::time::Duration = parts[parts_before..].iter().map(|(_, d)| *d).sum();
    parts.push((
        "the run's database created, its proxy started",
        started.elapsed().saturating_sub(before),
    ));
    Ok((db, database_url, db_proxy))
}

/// PostgreSQL as a container (its image built on first use) on a lab network of the run's.
async fn start_container_database(
    run: &crate::docker::RunId,
    needs: &TargetNeeds,
    parts: &mut super::StartParts,
) -> Result<(crate::docker::postgres::PgContainer, crate::docker::Engine), LabError> {
    use crate::docker::{Engine, LabNetwork, image, postgres::PgContainer};
    let failed =
        |what: &str, e: &dyn std::fmt::Display| LabError(format!("--backend docker: {what}: {e}"));
    let engine = Engine::connect()
        .await
        .map_err(|e| failed("no Docker engine", &e))?;
    let progress = |line: &str| eprintln!("  {line}");
    let started = std::time::Instant::now();
    let image = image::ensure_postgres(&engine, &progress)
        .await
        .map_err(|e| failed("cannot build the PostgreSQL image", &e))?;
    let network = LabNetwork::create(&engine, run, "lab")
        .await
        .map_err(|e| failed("cannot create the lab network", &e))?;
    parts.push(("database image found, network created", started.elapsed()));
    let settings: Vec<String> = needs
        .max_connections
        .map(|n| format!("max_connections={n}"))
        .into_iter()
        .collect();
    let (pg, created, ready) = PgContainer::start_timed(&engine, run, &network, &image, &settings)
        .await
        .map_err(|e| failed("PostgreSQL did not start", &e))?;
    parts.push(("database container created and started", created));
    parts.push(("PostgreSQL ready in its container", ready));
    Ok((pg, engine))
}

fn url_port(url: &str) -> Option<u16> {
    let after = url.split("://").nth(1)?;
    let hostport = after.split('/').next()?.rsplit('@').next()?;
    hostport.rsplit_once(':')?.1.parse().ok()
}

fn url_host(url: &str) -> Option<String> {
    let after = url.split("://").nth(1)?;
    let hostport = after.split('/').next()?.rsplit('@').next()?;
    Some(
        hostport
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(hostport)
            .trim_matches(['[', ']'])
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_yield_host_and_port() {
        assert_eq!(url_port("postgres://u:p@db.example:6543/x"), Some(6543));
        assert_eq!(
            url_host("postgres://u:p@db.example:6543/x").as_deref(),
            Some("db.example")
        );
        assert_eq!(url_port("postgres://u@h/x"), None);
    }
}
