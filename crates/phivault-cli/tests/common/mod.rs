//! Shared by the CLI test binaries.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

/// The real binary with an empty environment (only PATH) and `--data-dir`.
pub fn pv(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phivault"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--data-dir")
        .arg(dir);
    c
}

/// `phivault serve --dev` on a free loopback port, announcing its address
/// in a JSON ready line; `--log LEVEL` follows.
pub const SERVE_DEV: &[&str] = &["--json", "serve", "--dev", "--listen", "127.0.0.1:0"];

/// Starts `phivault serve --dev` on a free loopback port with `global`
/// arguments before the command; returns the child and its https:// URL
/// (from the JSON ready line).
pub fn spawn_dev_server(
    dir: &Path,
    global: &[&std::ffi::OsStr],
    log: &str,
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    let mut child = pv(dir)
        .args(global)
        .args(SERVE_DEV)
        .args(["--log", log])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let url = ready_url(&mut child);
    (child, url)
}

/// Reads `serve --json`'s ready line from the child's stdout: its URL.
fn ready_url(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("ready line: {line}"));
    v["listening"].as_str().unwrap().to_string()
}

/// Runs a command with no stdin: (exit code, stdout, stderr).
pub fn run(c: &mut Command) -> (i32, String, String) {
    let o = c.stdin(Stdio::null()).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A running `serve --dev`, stopped (SIGTERM, then waited for) when
/// dropped, also when an assertion fails first: a leaked server would keep
/// its port and whatever file descriptors its parent passed on.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Stops the server now (SIGTERM, graceful shutdown, waited for).
pub fn stop(s: Server) {
    drop(s);
}

/// curl with the dev admin's client certificate: (status, body).
pub fn curl_admin(dir: &Path, url: &str, args: &[&str]) -> (u16, String) {
    let o = Command::new("curl")
        .args([
            "-sS",
            "--http1.1",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(dir.join("ca/ca.pem"))
        .arg("--cert")
        .arg(dir.join("clients/admin.pem"))
        .arg("--key")
        .arg(dir.join("clients/admin.key"))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    let (b, c) = t.rsplit_once('\n').unwrap();
    (c.trim().parse().unwrap(), b.into())
}

/// curl as the dev admin with a purpose of use and a JSON body: (status,
/// parsed body or Null).
pub fn curl_json(
    dir: &Path,
    url: &str,
    method: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut args = vec![
        "-X",
        method,
        "-H",
        "X-Purpose-Of-Use: TREAT",
        "-H",
        "Content-Type: application/json",
    ];
    if let Some(b) = body {
        args.extend(["--data-binary", b]);
    }
    let (code, body) = curl_admin(dir, url, &args);
    (
        code,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// `serve --dev` in `dir` with extra environment and an optional config
/// file; stderr passes through. Returns the guard and the https:// URL.
pub fn serve_with(dir: &Path, env: &[(&str, &str)], config: Option<&Path>) -> (Server, String) {
    let mut c = pv(dir);
    c.envs(env.iter().copied());
    if let Some(cf) = config {
        c.arg("--config").arg(cf);
    }
    c.args(SERVE_DEV)
        .args(["--log", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = c.spawn().unwrap();
    let url = ready_url(&mut child);
    (Server(child), url)
}

/// Bootstraps a dev data dir `a` (keystore, CA) with one short `serve
/// --dev`, has its CA issue a certificate for 127.0.0.1 (into `work`), and
/// starts a throwaway PostgreSQL with it (TLS required). `None`: no
/// PostgreSQL here (skipped, or a failure under PHIVAULT_REQUIRE_ALL_TESTS).
pub fn postgres_with_phivault_ca(a: &Path, work: &Path) -> Option<phivault_testpg::PgCluster> {
    if !a.join("ca/ca.pem").exists() {
        let (s, _) = spawn_dev_server(a, &[], "warn", Stdio::null());
        stop(Server(s));
    }
    let (cert, key) = (work.join("db.pem"), work.join("db.key"));
    let (code, _, err) = run(pv(a)
        .args([
            "--insecure-dev",
            "ca",
            "issue",
            "server",
            "--name",
            "db.phivault.test",
            "--san",
            "127.0.0.1",
            "--cert",
        ])
        .arg(&cert)
        .arg("--key")
        .arg(&key));
    assert_eq!(code, 0, "{err}");
    phivault_testpg::PgCluster::start(Some(phivault_testpg::ServerTls {
        cert_pem: std::fs::read_to_string(&cert).unwrap(),
        key_pem: std::fs::read_to_string(&key).unwrap(),
    }))
}

/// Gives a second node what is not shared through the database or a
/// backup: the dev unseal key file and the TLS/CA files.
pub fn copy_node_config(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("dev-unseal.key"), to.join("dev-unseal.key")).unwrap();
    for sub in ["ca", "clients", "tls"] {
        assert!(
            Command::new("cp")
                .arg("-a")
                .arg(from.join(sub))
                .arg(to)
                .status()
                .unwrap()
                .success()
        );
    }
}

/// A small deterministic PRNG (xorshift64*) for test schedules.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// A duration in `lo..hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> std::time::Duration {
        std::time::Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

/// A seed from the environment variable `env` (to replay a run) or the
/// clock; printed with how to replay it.
pub fn seed(env: &str, test: &str) -> u64 {
    let s = std::env::var(env)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("{test}: seed {s} ({env}={s} replays it)");
    s
}
