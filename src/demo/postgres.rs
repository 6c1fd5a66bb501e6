//! A real PostgreSQL server on loopback, for OpenBao's database secrets
//! engine (dynamic credentials, leases, renewal, revocation) in the
//! integration tests and the rotation benchmark.
//!
//! Each [`Postgres`] is a fresh cluster in its own temp dir, on a free port,
//! with a password-protected superuser (scram-sha-256 over TCP), so OpenBao's
//! `postgresql-database-plugin` connects with a username and password exactly
//! as against a production server.  The binaries come from Debian's package
//! (`scripts/install-postgres.sh`).
//!
//! PostgreSQL refuses to run as root, so when the caller runs as root (CI)
//! the server runs as the `postgres` user via `setpriv`.  Like OpenBao in
//! [`super::openbao`], it runs under a small `sh` watchdog holding our end of
//! a pipe: when the owning process exits for any reason, even SIGKILL, the
//! pipe closes and the watchdog stops the server and removes its temp dir.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tempfile::TempDir;

use super::DemoError;
use super::openbao::DevServer;

/// The database superuser `initdb` creates.
const SUPERUSER: &str = "postgres";
/// The OS user the server runs as when the caller runs as root.
const OS_USER: &str = "postgres";
/// How long [`Postgres::start`] waits for the server to answer a query.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval of the readiness poll.
const POLL: Duration = Duration::from_millis(25);
/// Attempts at a port nobody else takes between our probe and the server's bind.
const PORT_ATTEMPTS: usize = 5;
/// Prefix of the temp dirs, which the watchdog checks before removing one.
const DIR_PREFIX: &str = "vault-csi-pg-";

/// The watchdog: runs `"$@"` (the server) and sends it SIGINT when stdin
/// reaches EOF.  SIGINT is PostgreSQL's "fast" shutdown: the default SIGTERM
/// ("smart") waits for clients to disconnect, and OpenBao keeps a pool open.
/// The temp dir is removed only after a stop we asked for, so when the server
/// dies by itself its log is still there for the error message.  The reader
/// is killed after the server exits so it never signals a reused pid.
const WATCHDOG: &str = r#"exec 3<&0
"$@" </dev/null 3<&- & server=$!
( read -r _ <&3; : >"$PG_DIR/.stop-requested"; kill -INT "$server" 2>/dev/null ) & reader=$!
exec 3<&-
wait "$server"; status=$?
kill "$reader" 2>/dev/null
if [ -e "$PG_DIR/.stop-requested" ]; then
  case "$PG_DIR" in */vault-csi-pg-*) rm -rf "$PG_DIR" ;; esac
fi
exit $status"#;

/// `setpriv` arguments that run the rest of the command as the `postgres`
/// user; `setpriv` execs, so the watchdog's child is the server itself.
const SETPRIV: [&str; 4] = [
    "--reuid=postgres",
    "--regid=postgres",
    "--init-groups",
    "--",
];

/// The creation statement from OpenBao's documentation for PostgreSQL.
pub const CREATE_ROLE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// A running PostgreSQL server on `127.0.0.1:<port>`, owned by this value.
/// Dropping it stops the server (fast shutdown) and removes its files.
pub struct Postgres {
    /// The server under its watchdog.
    process: Watchdog,
    /// The TCP port on 127.0.0.1.
    port: u16,
    /// The superuser's password (random per server).
    password: String,
    /// Where `postgres`, `initdb` and `psql` live.
    bin_dir: PathBuf,
    /// The server's stderr.
    log: PathBuf,
    // Kept last: the directory must outlive the server writing into it.
    dir: TempDir,
}

impl Postgres {
    /// Initialises a cluster in a temp dir and starts a server on a free
    /// loopback port; returns once it answers a query.  Fails (callers
    /// should never skip) when PostgreSQL is missing or does not come up in
    /// 30 s, with the server's log tail.
    pub async fn start() -> Result<Postgres, DemoError> {
        let bin_dir = find_bin_dir()?;
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(temp_base(as_postgres))
            .map_err(|e| DemoError::io("create PostgreSQL temp dir", e))?;
        let password = random_password()?;
        init_cluster(&bin_dir, dir.path(), &password, as_postgres).await?;

        let log = dir.path().join("postgres.log");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let mut process = Watchdog::spawn(&bin_dir, dir.path(), &log, port, as_postgres)?;
            match wait_ready(&mut process, &bin_dir, port, &password, &log).await {
                Ok(()) => {
                    return Ok(Postgres {
                        process,
                        port,
                        password,
                        bin_dir,
                        log,
                        dir,
                    });
                }
                // Another process took the port: the cluster is intact (no
                // stop was requested, so the watchdog kept the dir); retry.
                Err(tail) if tail.contains("Address already in use") => last_log = tail,
                Err(tail) => return Err(failed("start the server", tail)),
            }
        }
        Err(failed(
            "start the server",
            format!("no free port in {PORT_ATTEMPTS} attempts:\n{last_log}"),
        ))
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's name (`postgres`).
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The `connection_url` for OpenBao's `postgresql-database-plugin`:
    /// `postgresql://{{username}}:{{password}}@127.0.0.1:PORT/postgres?sslmode=disable`.
    /// OpenBao fills the placeholders from the config's `username` and
    /// `password`, so the password never sits in the URL it stores.
    pub fn connection_url_for_openbao(&self) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Runs `sql` as the superuser over TCP and returns psql's unaligned,
    /// tuples-only output, trimmed (rows on lines, columns split by `|`).
    /// A failure carries the server's log tail, since the cause is often
    /// there rather than in psql's message.
    pub fn query(&self, sql: &str) -> Result<String, DemoError> {
        self.try_query_as(SUPERUSER, &self.password, sql)
            .map_err(|e| {
                failed(
                    format!("query {sql:?}"),
                    format!("{e}\n{}", self.log_tail()),
                )
            })
    }

    /// Like [`Postgres::query`] but as any role, e.g. to prove that issued
    /// credentials log in; the error carries psql's stderr (no log tail:
    /// a refused login is an expected answer here).
    pub fn try_query_as(&self, user: &str, password: &str, sql: &str) -> Result<String, DemoError> {
        let out = psql(&self.bin_dir, self.port, user, password, sql)
            .output()
            .map_err(|e| DemoError::io("run psql", e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(failed(
                format!("psql as {user}"),
                format!(
                    "exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ))
        }
    }

    /// Whether a role (user) named `name` exists.
    pub fn role_exists(&self, name: &str) -> Result<bool, DemoError> {
        let sql = format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = {}",
            sql_literal(name)
        );
        Ok(self.query(&sql)? == "1")
    }

    /// The watchdog's process id (the server runs as its child).
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// The temp dir holding the cluster, the socket and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// One role of OpenBao's database engine: a name and the lease times of the
/// credentials it issues (durations as OpenBao accepts them, e.g. `"5s"`).
#[derive(Debug, Clone, Copy)]
pub struct DatabaseRole<'a> {
    /// The role name: credentials are read at `<mount>/creds/<name>`.
    pub name: &'a str,
    /// The lease duration of a new credential.
    pub default_ttl: &'a str,
    /// The longest renewals may extend it to.
    pub max_ttl: &'a str,
}

/// Mounts OpenBao's database engine at `mount`, connects it to `pg` as the
/// superuser (connection `pg`), and creates each role with
/// [`CREATE_ROLE`].
pub async fn database_engine(
    bao: &DevServer,
    pg: &Postgres,
    mount: &str,
    roles: &[DatabaseRole<'_>],
) -> Result<(), DemoError> {
    bao.api(
        Method::POST,
        &format!("sys/mounts/{mount}"),
        Some(json!({ "type": "database" })),
    )
    .await?;
    bao.api(
        Method::POST,
        &format!("{mount}/config/pg"),
        Some(json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg.connection_url_for_openbao(),
            "username": pg.superuser(),
            "password": pg.password(),
            "allowed_roles": "*",
        })),
    )
    .await?;
    for role in roles {
        bao.api(
            Method::POST,
            &format!("{mount}/roles/{}", role.name),
            Some(json!({
                "db_name": "pg",
                "creation_statements": [CREATE_ROLE],
                "default_ttl": role.default_ttl,
                "max_ttl": role.max_ttl,
            })),
        )
        .await?;
    }
    Ok(())
}

/// A [`DemoError::Postgres`] for `what`.
fn failed(what: impl Into<String>, detail: String) -> DemoError {
    DemoError::Postgres {
        what: what.into(),
        detail,
    }
}

/// The server under the `sh` watchdog, with our end of its stdin pipe.
struct Watchdog {
    /// The watchdog shell.
    child: Child,
    /// Closing it stops the server; `None` once closed.
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts the server on `port` for the cluster in `dir`, as the
    /// `postgres` user when `as_postgres`, logging to `log`.
    fn spawn(
        bin_dir: &Path,
        dir: &Path,
        log: &Path,
        port: u16,
        as_postgres: bool,
    ) -> Result<Watchdog, DemoError> {
        let out =
            std::fs::File::create(log).map_err(|e| DemoError::io("create PostgreSQL log", e))?;
        let err = out
            .try_clone()
            .map_err(|e| DemoError::io("clone PostgreSQL log handle", e))?;
        let mut command = Command::new("sh");
        command.arg("-c").arg(WATCHDOG).arg("pg-watchdog");
        if as_postgres {
            command.arg("setpriv").args(SETPRIV);
        }
        let mut child = command
            .arg(bin_dir.join("postgres"))
            .arg("-D")
            .arg(dir.join("data"))
            // The unix socket goes to our dir, not /var/run/postgresql
            // (which may not exist, or belong to a system cluster).
            .arg("-k")
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            // A throwaway cluster: durability only costs time.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .current_dir(dir)
            .env("PG_DIR", dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| DemoError::io("spawn sh for the PostgreSQL watchdog", e))?;
        let pipe = child.stdin.take();
        Ok(Watchdog { child, pipe })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.pipe.take());
        // Reap it so no server outlives this value; bounded so a stuck
        // shutdown cannot hang the owner.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Ok(Some(_)) | Err(_) => return,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls until a real query succeeds; on failure, why, with the log tail.
async fn wait_ready(
    process: &mut Watchdog,
    bin_dir: &Path,
    port: u16,
    password: &str,
    log: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match process.child.try_wait() {
            Ok(Some(status)) => {
                return Err(format!("server exited with {status}:\n{}", log_tail(log)));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for the server: {e}")),
        }
        let probe =
            tokio::process::Command::from(psql(bin_dir, port, SUPERUSER, password, "SELECT 1"))
                .output()
                .await;
        if probe.is_ok_and(|out| out.status.success()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not answering on 127.0.0.1:{port} after {START_TIMEOUT:?}:\n{}",
                log_tail(log)
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `initdb` for `dir/data` with a `postgres` superuser whose password
/// is `password`, password (scram-sha-256) authentication everywhere.
async fn init_cluster(
    bin_dir: &Path,
    dir: &Path,
    password: &str,
    as_postgres: bool,
) -> Result<(), DemoError> {
    let pwfile = dir.join("pwfile");
    std::fs::write(&pwfile, format!("{password}\n"))
        .map_err(|e| DemoError::io("write the password file", e))?;
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| DemoError::io("chmod the password file", e))?;
    if as_postgres {
        let (uid, gid) = os_user_ids(OS_USER)?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| DemoError::io("chown the PostgreSQL temp dir", e))?;
        std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))
            .map_err(|e| DemoError::io("chown the password file", e))?;
    }
    let mut initdb = Command::new(bin_dir.join("initdb"));
    if as_postgres {
        initdb = Command::new("setpriv");
        initdb.args(SETPRIV).arg(bin_dir.join("initdb"));
    }
    let out = tokio::process::Command::from(initdb)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-U", SUPERUSER])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["--auth=scram-sha-256", "--encoding=UTF8", "--no-locale"])
        // Skips fsync of the new files: about half of initdb's time.
        .arg("--no-sync")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await;
    // Gone before any error is returned: the password must not stay on disk.
    let _ = std::fs::remove_file(&pwfile);
    let out = out.map_err(|e| DemoError::io(format!("run initdb in {}", bin_dir.display()), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(
            "initdb",
            format!(
                "exited with {}:\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    }
}

/// A `psql` call as `user` over TCP, unaligned and tuples-only, stopping at
/// the first error; the environment cannot redirect it elsewhere.
fn psql(bin_dir: &Path, port: u16, user: &str, password: &str, sql: &str) -> Command {
    let mut command = Command::new(tool(bin_dir, "psql"));
    command
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", user, "-d", "postgres", "-c", sql])
        .env_remove("PGSERVICE")
        .env_remove("PGSERVICEFILE")
        .env_remove("PGOPTIONS")
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null());
    command
}

/// `bin_dir/name` when it exists, else `name` from PATH.
fn tool(bin_dir: &Path, name: &str) -> PathBuf {
    let path = bin_dir.join(name);
    if path.is_file() {
        path
    } else {
        PathBuf::from(name)
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with a server in it (where
/// Debian puts it, off PATH), else the real directory of `postgres` on PATH.
fn find_bin_dir() -> Result<PathBuf, DemoError> {
    let mut newest: Option<(Vec<u32>, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(version) = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
            else {
                continue;
            };
            let bin = entry.path().join("bin");
            if bin.join("postgres").is_file() && newest.as_ref().is_none_or(|(v, _)| version > *v) {
                newest = Some((version, bin));
            }
        }
    }
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        // Resolve symlinks so initdb and psql are looked up beside the real binary.
        if let Ok(real) = dir.join("postgres").canonicalize()
            && real.is_file()
            && let Some(parent) = real.parent()
        {
            return Ok(parent.to_owned());
        }
    }
    Err(DemoError::PostgresNotFound(
        "no /usr/lib/postgresql/<version>/bin/postgres, no postgres on PATH".into(),
    ))
}

/// Whether this process runs as root (then the server must not).
fn running_as_root() -> bool {
    // /proc/self belongs to the effective uid; avoids a libc dependency.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of `user`, from `id`.
fn os_user_ids(user: &str) -> Result<(u32, u32), DemoError> {
    let id = |flag: &str| -> Result<u32, DemoError> {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .map_err(|e| DemoError::io("run id", e))?;
        if !out.status.success() {
            return Err(DemoError::PostgresNotFound(format!(
                "no {user} user to run the server as: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().map_err(|_| {
            failed(
                format!("id {flag} {user}"),
                format!("not a number: {text:?}"),
            )
        })
    };
    Ok((id("-u")?, id("-g")?))
}

/// Where to make the temp dir: the usual temp dir, unless the server's user
/// could not reach it (e.g. TMPDIR under /root), then /tmp.
fn temp_base(as_postgres: bool) -> PathBuf {
    let base = std::env::temp_dir();
    if !as_postgres {
        return base;
    }
    // Every ancestor must let "others" search it, or postgres cannot open its dir.
    let reachable = base
        .ancestors()
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 != 0));
    if reachable {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

/// A port the kernel just handed out; another process may still take it
/// before the server binds, which [`Postgres::start`] retries.
fn free_port() -> Result<u16, DemoError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| DemoError::io("bind 127.0.0.1:0", e))
}

/// A random password: 16 random bytes in hex.
fn random_password() -> Result<String, DemoError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| DemoError::Crypto("random PostgreSQL password".into()))?;
    Ok(hex::encode(bytes))
}

/// `s` as an SQL string literal.
fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The last 40 lines of `path`.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_literals_escape_quotes() {
        assert_eq!(sql_literal("it's"), "'it''s'");
        assert_eq!(sql_literal("plain"), "'plain'");
    }
}
