//! A real PostgreSQL server on loopback, for tests of OpenBao's database
//! secrets engine (dynamic credentials, leases, renewal, revocation).
//!
//! Each [`Postgres`] is a fresh cluster in its own temp dir, on a free port,
//! with a password-protected superuser (scram-sha-256 over TCP), so OpenBao's
//! `postgresql-database-plugin` connects with a username and password exactly
//! as against a production server.  The binaries come from Debian's package
//! (`scripts/install-postgres.sh`).
//!
//! PostgreSQL refuses to run as root, so when the tests run as root (CI) the
//! server runs as the `postgres` user via `setpriv`.  Like OpenBao in
//! `src/demo`, it runs under a small `sh` watchdog holding our end of a pipe:
//! when the test binary exits for any reason, even SIGKILL, the pipe closes
//! and the watchdog stops the server and removes its temp dir.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The database superuser `initdb` creates.
const SUPERUSER: &str = "postgres";
/// The OS user the server runs as when the tests run as root.
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
    /// loopback port; returns once it answers a query.  Panics (tests fail,
    /// never skip) when PostgreSQL is missing or does not come up in 30 s,
    /// with the server's log tail.
    pub async fn start() -> Postgres {
        let bin_dir = find_bin_dir();
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(temp_base(as_postgres))
            .expect("create PostgreSQL temp dir");
        let password = random_password();
        init_cluster(&bin_dir, dir.path(), &password, as_postgres).await;

        let log = dir.path().join("postgres.log");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut process = Watchdog::spawn(&bin_dir, dir.path(), &log, port, as_postgres);
            match wait_ready(&mut process, &bin_dir, port, &password, &log).await {
                Ok(()) => {
                    return Postgres {
                        process,
                        port,
                        password,
                        bin_dir,
                        log,
                        dir,
                    };
                }
                // Another process took the port: the cluster is intact (no
                // stop was requested, so the watchdog kept the dir); retry.
                Err(tail) if tail.contains("Address already in use") => last_log = tail,
                Err(tail) => panic!("PostgreSQL did not start:\n{tail}"),
            }
        }
        panic!("PostgreSQL found no free port in {PORT_ATTEMPTS} attempts:\n{last_log}");
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
    /// Panics if the statement fails.
    pub fn query(&self, sql: &str) -> String {
        self.try_query_as(SUPERUSER, &self.password, sql)
            .unwrap_or_else(|e| panic!("psql {sql:?}: {e}\n{}", self.log_tail()))
    }

    /// Like [`Postgres::query`] but as any role, e.g. to prove that issued
    /// credentials log in; the error is psql's stderr.
    pub fn try_query_as(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        let out = psql(&self.bin_dir, self.port, user, password, sql)
            .output()
            .map_err(|e| format!("run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!(
                "psql exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Whether a role (user) named `name` exists.
    pub fn role_exists(&self, name: &str) -> bool {
        let sql = format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = {}",
            sql_literal(name)
        );
        self.query(&sql) == "1"
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
    fn spawn(bin_dir: &Path, dir: &Path, log: &Path, port: u16, as_postgres: bool) -> Watchdog {
        let out = std::fs::File::create(log).expect("create PostgreSQL log");
        let err = out.try_clone().expect("clone PostgreSQL log handle");
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
            .expect("spawn sh for the PostgreSQL watchdog");
        let pipe = child.stdin.take();
        Watchdog { child, pipe }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.pipe.take());
        // Reap it so no server outlives this value; bounded so a stuck
        // shutdown cannot hang a test.
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
        if let Some(status) = process.child.try_wait().expect("wait for PostgreSQL") {
            return Err(format!("server exited with {status}:\n{}", log_tail(log)));
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
async fn init_cluster(bin_dir: &Path, dir: &Path, password: &str, as_postgres: bool) {
    let pwfile = dir.join("pwfile");
    std::fs::write(&pwfile, format!("{password}\n")).expect("write password file");
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
        .expect("chmod password file");
    if as_postgres {
        let (uid, gid) = os_user_ids(OS_USER);
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown PostgreSQL temp dir");
        std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).expect("chown password file");
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
        .await
        .unwrap_or_else(|e| panic!("run initdb in {}: {e}", bin_dir.display()));
    let _ = std::fs::remove_file(&pwfile);
    assert!(
        out.status.success(),
        "initdb failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `setpriv` arguments that run the rest of the command as the `postgres`
/// user; `setpriv` execs, so the watchdog's child is the server itself.
const SETPRIV: [&str; 4] = [
    "--reuid=postgres",
    "--regid=postgres",
    "--init-groups",
    "--",
];

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
fn find_bin_dir() -> PathBuf {
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
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        // Resolve symlinks so initdb and psql are looked up beside the real binary.
        if let Ok(real) = dir.join("postgres").canonicalize()
            && real.is_file()
        {
            return real.parent().expect("binary has a parent").to_owned();
        }
    }
    panic!("no PostgreSQL server binaries (run scripts/install-postgres.sh)");
}

/// Whether this process runs as root (then the server must not).
fn running_as_root() -> bool {
    // /proc/self belongs to the effective uid; avoids a libc dependency.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of `user`, from `id`.
fn os_user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "no {user} user (run scripts/install-postgres.sh): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
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
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A random password: 16 random bytes in hex.
fn random_password() -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("random password");
    hex::encode(bytes)
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

/// The creation statement from OpenBao's documentation for PostgreSQL.
pub const CREATE_ROLE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// Mounts OpenBao's database engine at `mount` on the shared server,
/// connects it to `pg` as `pg`, and creates each `(role, default_ttl, max_ttl)`.
pub async fn database_engine(pg: &Postgres, mount: &str, roles: &[(&str, &str, &str)]) {
    let env = super::env().await;
    env.api(
        reqwest::Method::POST,
        &format!("sys/mounts/{mount}"),
        Some(serde_json::json!({ "type": "database" })),
    )
    .await;
    env.api(
        reqwest::Method::POST,
        &format!("{mount}/config/pg"),
        Some(serde_json::json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg.connection_url_for_openbao(),
            "username": pg.superuser(),
            "password": pg.password(),
            "allowed_roles": "*",
        })),
    )
    .await;
    for (role, default_ttl, max_ttl) in roles {
        env.api(
            reqwest::Method::POST,
            &format!("{mount}/roles/{role}"),
            Some(serde_json::json!({
                "db_name": "pg",
                "creation_statements": [CREATE_ROLE],
                "default_ttl": default_ttl,
                "max_ttl": max_ttl,
            })),
        )
        .await;
    }
}
