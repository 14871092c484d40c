//! Ephemeral PostgreSQL clusters for tests and labs.
//!
//! # Layout
//!
//! - [`PgCluster`]: a throwaway cluster from the machine's own server binaries (`initdb`,
//!   `postgres`), on a free loopback port, in a temporary directory, removed on drop. As root the
//!   server runs as the `postgres` user, because `initdb` refuses to run as root.
//! - [`proc`]: child processes that die with their parent, so a killed controller leaves no server
//!   running.
//!
//! `initdb` takes a second or two, so the first cluster of a user initialises a template directory
//! once (per PostgreSQL version) and every later cluster copies it.

pub mod proc;

use std::fs;
use std::io::{self, Read};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sqlx::Connection;

/// Where a cluster could not be made, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "PostgreSQL server binaries not found (looked in $PGLAB_BIN_DIR, /usr/lib/postgresql/*/bin and PATH); install the `postgresql` package or set PGLAB_BIN_DIR"
    )]
    NoBinaries,
    #[error(
        "running as root and there is no `postgres` user to run the server as; create one (`useradd postgres`)"
    )]
    NoPostgresUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed: {output}")]
    Command { command: String, output: String },
    #[error("PostgreSQL did not become ready within {0:?}; its log:\n{1}")]
    NotReady(Duration, String),
    #[error("database statement failed: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(
        "refusing the template data directory {path}: {why}; remove it and the next cluster makes its own"
    )]
    Untrusted { path: PathBuf, why: String },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Knobs for a new cluster. Every field has a default suited to tests.
#[derive(Debug, Clone)]
pub struct Options {
    /// `max_connections`; the connection-exhaustion fault wants a small number. Default 100.
    pub max_connections: u32,
    /// Directory holding `initdb` and `postgres`. Default: found by [`find_bin_dir`].
    pub bin_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_connections: 100,
            bin_dir: None,
        }
    }
}

/// A running throwaway PostgreSQL cluster. Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct PgCluster {
    root: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

/// Finds the directory with the PostgreSQL server binaries.
pub fn find_bin_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("PGLAB_BIN_DIR") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .ok_or(Error::NoBinaries)
}

/// The user the server runs as: `postgres` when we are root, ourselves otherwise.
fn server_user() -> Result<Option<nix::unistd::User>, Error> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some(user)),
        _ => Err(Error::NoPostgresUser),
    }
}

fn as_user(cmd: &mut Command, user: &Option<nix::unistd::User>) {
    if let Some(u) = user {
        cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        // HOME of root is not readable by postgres; some tools stat it.
        cmd.env("HOME", "/tmp");
    }
}

fn chown_to(path: &Path, user: &Option<nix::unistd::User>) -> Result<(), Error> {
    if let Some(u) = user {
        nix::unistd::chown(path, Some(u.uid), Some(u.gid)).map_err(|e| Error::Io {
            what: format!("chown {}", path.display()),
            source: e.into(),
        })?;
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd
        .output()
        .map_err(io_err(format!("starting {:?}", cmd.get_program())))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("{cmd:?}"),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(())
}

/// Makes (once) and returns the template data directory for this PostgreSQL version and user.
fn template(bin: &Path, user: &Option<nix::unistd::User>) -> Result<PathBuf, Error> {
    template_in(&std::env::temp_dir(), bin, user)
}

/// Whether `path` holds a template this user can trust: none yet is `Ok(false)`. The temporary
/// directory is everyone's, so a template is used only if it is a real directory (a link is
/// never followed) owned by `uid` that no one else can write: one planted by another user
/// (a `postgresql.conf` of theirs, run by our server) is refused.
fn trusted_template(path: &Path, uid: u32) -> Result<bool, Error> {
    use std::os::unix::fs::MetadataExt;
    let m = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(format!("inspecting {}", path.display()))(e)),
    };
    let why = if !m.file_type().is_dir() {
        Some("it is not a directory (a link is never followed)".to_string())
    } else if m.uid() != uid {
        Some(format!("it is owned by uid {}, not {uid}", m.uid()))
    } else if m.mode() & 0o022 != 0 {
        Some(format!(
            "others can write to it (mode {:o})",
            m.mode() & 0o7777
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::Untrusted {
            path: path.to_path_buf(),
            why,
        }),
        None => Ok(path.join("PG_VERSION").exists()),
    }
}

fn template_in(
    base: &Path,
    bin: &Path,
    user: &Option<nix::unistd::User>,
) -> Result<PathBuf, Error> {
    let version = bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pg".into());
    let uid = user
        .as_ref()
        .map(|u| u.uid.as_raw())
        .unwrap_or_else(|| nix::unistd::geteuid().as_raw());
    let path = base.join(format!("pglab-template-{version}-{uid}"));
    if trusted_template(&path, uid)? {
        return Ok(path);
    }
    // Initialise in a private directory, then rename: concurrent first users race on the
    // rename, and whoever loses simply uses the winner's template.
    let scratch = tempfile::Builder::new()
        .prefix("pglab-initdb-")
        .tempdir_in(base)
        .map_err(io_err("creating a scratch directory"))?;
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod scratch directory"))?;
    let data = scratch.path().join("data");
    fs::create_dir(&data).map_err(io_err("creating the data directory"))?;
    chown_to(&data, user)?;
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdin(Stdio::null());
    as_user(&mut initdb, user);
    run(&mut initdb)?;
    match fs::rename(&data, &path) {
        Ok(()) => Ok(path),
        Err(_) if trusted_template(&path, uid)? => Ok(path),
        Err(e) => Err(Error::Io {
            what: format!("moving the template to {}", path.display()),
            source: e,
        }),
    }
}

/// Asks the kernel for a free loopback port. Another process may take it before the server binds
/// it; [`PgCluster::start`] retries on a new port when that happens.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PgCluster {
    /// Starts a cluster with default [`Options`].
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Options::default()).await
    }

    /// Starts a cluster and waits until it accepts connections.
    pub async fn start_with(opts: Options) -> Result<Self, Error> {
        let bin = match &opts.bin_dir {
            Some(b) => b.clone(),
            None => find_bin_dir()?,
        };
        let user = server_user()?;
        let template = blocking::block_in_place_or_spawn(|| template(&bin, &user))?;
        let mut last = None;
        for _ in 0..5 {
            match Self::try_start(&bin, &template, &user, &opts).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn try_start(
        bin: &Path,
        template: &Path,
        user: &Option<nix::unistd::User>,
        opts: &Options,
    ) -> Result<Self, Error> {
        let root = tempfile::Builder::new()
            .prefix("pglab-")
            .tempdir()
            .map_err(io_err("creating the cluster directory"))?;
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod cluster directory"))?;
        let data = root.path().join("data");
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(template).arg(&data);
        run(&mut cp)?;
        chown_to(root.path(), user)?;
        let log_path = root.path().join("postgres.log");
        let log = fs::File::create(&log_path).map_err(io_err("creating the server log"))?;
        chown_to(&log_path, user)?;
        let port = free_port().map_err(io_err("finding a free port"))?;
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(root.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("max_connections={}", opts.max_connections)])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err("server log"))?)
            .stderr(log);
        as_user(&mut cmd, user);
        // Own process group: a Ctrl-C at the terminal goes to the controller, which then stops
        // the server in order, instead of the server dying mid-check.
        cmd.process_group(0);
        let child = proc::spawn_tied(cmd, Signal::SIGQUIT)
            .map_err(io_err("starting the postgres server"))?;
        let mut cluster = PgCluster {
            root,
            port,
            child: Some(child),
        };
        cluster.wait_ready(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), Error> {
        let start = Instant::now();
        let url = self.url("postgres");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return Err(Error::NotReady(start.elapsed(), self.log()));
            }
            if let Ok(conn) = sqlx::PgConnection::connect(&url).await {
                let _ = conn.close().await;
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(Error::NotReady(limit, self.log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.root.path().join("postgres.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id (for faults that stop or pause the server).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The cluster's private directory (data, socket, log).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A connection URL for database `db` as the superuser `postgres`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new empty database and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, Error> {
        create_database(&self.url("postgres"), name).await
    }

    /// Stops the server (fast shutdown) and removes its files.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            proc::stop_child(&mut child, Signal::SIGINT, Duration::from_secs(10));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Creates database `name` on the server at `admin_url` and returns the new database's URL.
pub async fn create_database(admin_url: &str, name: &str) -> Result<String, Error> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE {}", quote_ident(name)))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(replace_db(admin_url, name))
}

/// Drops database `name` on the server at `admin_url`, disconnecting its sessions first.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<(), Error> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    ))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// `url` with its `host:port` replaced by `hostport` (user, database and query kept).
pub fn replace_host_port(url: &str, hostport: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let userinfo = authority.rfind('@').map(|i| &authority[..=i]).unwrap_or("");
    format!(
        "{}{userinfo}{hostport}{}",
        &url[..scheme_end],
        &rest[authority_end..]
    )
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` with its database path replaced by `db`.
pub fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

mod blocking {
    /// Runs blocking work without stalling a current-thread runtime's only thread for others:
    /// on a multi-thread runtime it uses `block_in_place`; elsewhere it just runs.
    pub fn block_in_place_or_spawn<R>(f: impl FnOnce() -> R) -> R {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(f)
            }
            _ => f(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_db_keeps_host_and_query() {
        assert_eq!(
            replace_db("postgres://u@h:5/a?sslmode=disable", "b"),
            "postgres://u@h:5/b?sslmode=disable"
        );
        assert_eq!(replace_db("postgres://u@h:5", "b"), "postgres://u@h:5/b");
    }

    #[test]
    fn replace_host_port_keeps_user_and_database() {
        assert_eq!(
            replace_host_port("postgres://u:p@h:5/db?x=1", "127.0.0.1:9"),
            "postgres://u:p@127.0.0.1:9/db?x=1"
        );
        assert_eq!(
            replace_host_port("postgres://h:5/db", "a:1"),
            "postgres://a:1/db"
        );
    }

    #[test]
    fn a_template_planted_by_someone_else_is_refused_and_never_followed() {
        let base = tempfile::tempdir().unwrap();
        let bin = Path::new("/nowhere/99/bin");
        let me = nix::unistd::geteuid().as_raw();
        let path = base.path().join(format!("pglab-template-99-{me}"));
        // A link to a data directory of someone else's choosing.
        let theirs = tempfile::tempdir().unwrap();
        fs::write(theirs.path().join("PG_VERSION"), "99\n").unwrap();
        std::os::unix::fs::symlink(theirs.path(), &path).unwrap();
        let e = template_in(base.path(), bin, &None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a directory (a link is never followed)"),
            "{e}"
        );
        assert!(e.contains(&path.display().to_string()), "{e}");
        // A real directory that others may write to.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        fs::write(path.join("PG_VERSION"), "99\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        let e = template_in(base.path(), bin, &None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("others can write to it (mode 777)"), "{e}");
        // Ours, and no one else's to change: used as it is.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(template_in(base.path(), bin, &None).unwrap(), path);
    }

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_cluster_starts_accepts_a_new_database_and_is_gone_after_drop() {
        let cluster = PgCluster::start().await.unwrap();
        let url = cluster.create_database("shop").await.unwrap();
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(one, 1);
        conn.close().await.unwrap();
        let root = cluster.root().to_path_buf();
        let port = cluster.port();
        drop(cluster);
        assert!(!root.exists(), "cluster directory removed");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "server stopped"
        );
    }
}
