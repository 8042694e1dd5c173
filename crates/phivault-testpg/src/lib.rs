//! # phivault-testpg
//!
//! A throwaway PostgreSQL cluster for tests, started with the machine's own
//! `initdb` and `pg_ctl` (Debian's `/usr/lib/postgresql/<v>/bin`), so
//! `cargo test` needs nothing but an installed PostgreSQL. PostgreSQL
//! refuses to run as root, so when the tests run as root every server
//! command runs as `nobody` (through `runuser`).
//!
//! Without the binaries, [`PgCluster::start`] returns `None` and prints
//! `SKIPPED: …`; with `PHIVAULT_REQUIRE_ALL_TESTS` set (CI) it panics
//! instead, so a missing PostgreSQL can't pass as a green run.
//!
//! The cluster listens on 127.0.0.1 only, requires a password
//! (SCRAM-SHA-256) and, when given a certificate, requires TLS from TCP
//! clients (`hostnossl … reject`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The server's TLS certificate and key (PEM).
#[derive(Clone)]
pub struct ServerTls {
    /// Certificate chain, leaf first.
    pub cert_pem: String,
    /// Private key.
    pub key_pem: String,
}

/// A running throwaway cluster; stopped (immediate mode) and deleted on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    password: String,
    tls: bool,
}

/// The folder holding `initdb` and `pg_ctl`, if PostgreSQL is installed.
/// Prints `SKIPPED` (or panics under `PHIVAULT_REQUIRE_ALL_TESTS`) when not.
pub fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    let newest = found.pop();
    if newest.is_none() {
        assert!(
            std::env::var_os("PHIVAULT_REQUIRE_ALL_TESTS").is_none(),
            "PostgreSQL binaries are missing (apt-get install postgresql); \
             PHIVAULT_REQUIRE_ALL_TESTS forbids skipping"
        );
        eprintln!("SKIPPED: no PostgreSQL binaries under /usr/lib/postgresql");
    }
    newest
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command for one of PostgreSQL's binaries, run as `nobody` when we are
/// root (PostgreSQL refuses root).
pub fn as_pg_user(bin: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

fn run(mut c: Command, what: &str) {
    let out = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgCluster {
    /// Creates and starts a cluster; `None` (skipped) without PostgreSQL.
    pub fn start(tls: Option<ServerTls>) -> Option<Self> {
        let bin = pg_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("phivault-pg")
            .tempdir()
            .expect("tempdir");
        let w = dir.path();
        // `nobody` must reach the folder; the data dir inside is 0700.
        std::fs::set_permissions(w, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let password: String = {
            let mut b = [0u8; 16];
            let mut f = std::fs::File::open("/dev/urandom").expect("urandom");
            std::io::Read::read_exact(&mut f, &mut b).expect("urandom");
            b.iter().map(|x| format!("{x:02x}")).collect()
        };
        std::fs::write(w.join("pwfile"), &password).expect("pwfile");
        if let Some(t) = &tls {
            std::fs::write(w.join("server.crt"), &t.cert_pem).expect("cert");
            std::fs::write(w.join("server.key"), &t.key_pem).expect("key");
            std::fs::set_permissions(
                w.join("server.key"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .expect("chmod key");
        }
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "nobody"]).arg(w);
                    c
                },
                "chown",
            );
        }
        let data = w.join("data");
        run(
            as_pg_user(
                &bin.join("initdb"),
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-U",
                    "postgres",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    &format!("--pwfile={}", w.join("pwfile").display()),
                    "--no-sync",
                    "-E",
                    "UTF8",
                ],
            ),
            "initdb",
        );
        let mut hba = String::from("local all all scram-sha-256\n");
        if tls.is_some() {
            hba.push_str("hostssl all all 127.0.0.1/32 scram-sha-256\n");
            hba.push_str("hostnossl all all 0.0.0.0/0 reject\n");
        } else {
            hba.push_str("host all all 127.0.0.1/32 scram-sha-256\n");
        }
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             max_connections = 200\nshared_buffers = 128MB\n",
            free_port(),
            w.display()
        );
        if tls.is_some() {
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\n",
                w.display()
            ));
        }
        let port = conf
            .lines()
            .find_map(|l| l.strip_prefix("port = "))
            .and_then(|p| p.parse().ok())
            .expect("port");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        std::io::Write::write_all(&mut f, conf.as_bytes()).expect("postgresql.conf");
        let c = PgCluster {
            dir,
            bin,
            port,
            password,
            tls: tls.is_some(),
        };
        c.pg_start();
        Some(c)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (after [`PgCluster::stop`]) and waits until it
    /// accepts connections.
    pub fn pg_start(&self) {
        let log = self.dir.path().join("server.log");
        run(
            as_pg_user(
                &self.bin.join("pg_ctl"),
                &[
                    "-D",
                    &self.data().to_string_lossy(),
                    "-l",
                    &log.to_string_lossy(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ),
            "pg_ctl start",
        );
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "PostgreSQL did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server: `fast` waits for sessions to end, otherwise
    /// `immediate` (a crash, recovered from the WAL at the next start).
    pub fn stop(&self, fast: bool) {
        run(
            as_pg_user(
                &self.bin.join("pg_ctl"),
                &[
                    "-D",
                    &self.data().to_string_lossy(),
                    "-m",
                    if fast { "fast" } else { "immediate" },
                    "-w",
                    "stop",
                ],
            ),
            "pg_ctl stop",
        );
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A `postgres://` URL for database `db` as the superuser over TCP.
    /// `params` is appended as the query string (e.g.
    /// `sslmode=verify-full&sslrootcert=/path/ca.pem`).
    pub fn url(&self, db: &str, params: &str) -> String {
        let q = if params.is_empty() {
            String::new()
        } else {
            format!("?{params}")
        };
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}{q}",
            self.password, self.port
        )
    }

    /// Whether TCP clients must use TLS.
    pub fn requires_tls(&self) -> bool {
        self.tls
    }

    /// Runs SQL through `psql` over the Unix socket; returns its output
    /// (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", &self.password)
            .stdin(Stdio::null())
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Creates a database.
    pub fn create_db(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// The server's log so far (for a failing assertion's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The data directory (for scanning its files).
    pub fn data_dir(&self) -> PathBuf {
        self.data()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_pg_user(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }
}
