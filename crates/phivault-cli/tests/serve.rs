//! `phivault serve`, `phivault ca` and `phivault config check`, through the
//! real binary: the README's main command, signals, and configuration
//! layering.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::pv;

fn out(c: &mut Command) -> (i32, String, String) {
    let o = c.stdin(Stdio::null()).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_dev(dir: &Path) -> Server {
    serve_dev_logged(dir, None)
}

fn serve_dev_logged(dir: &Path, log: Option<&Path>) -> Server {
    let stderr = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::null(),
    };
    let (child, url) = common::spawn_dev_server(dir, &[], "debug", stderr);
    Server { child, url }
}

fn curl(
    dir: &Path,
    s: &Server,
    client: Option<&str>,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--http1.1",
        "-w",
        "\n%{http_code}",
        "--max-time",
        "10",
        "--cacert",
    ])
    .arg(dir.join("ca/ca.pem"));
    if let Some(n) = client {
        c.arg("--cert")
            .arg(dir.join(format!("clients/{n}.pem")))
            .arg("--key")
            .arg(dir.join(format!("clients/{n}.key")));
    }
    if let Some(b) = body {
        c.args(["-d", b]);
    }
    let o = c.arg(format!("{}{path}", s.url)).output().unwrap();
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    let (b, code) = t.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), b.to_string())
}

fn signal(child: &Child, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn serve_dev_is_ready_to_use_and_stops_gracefully() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("dev");
    let log = d.path().join("server.log");
    let mut s = serve_dev_logged(&dir, Some(&log));
    // What the printed curl commands do.
    let (code, body) = curl(
        &dir,
        &s,
        Some("admin"),
        "/v1/transit/encrypt/billing",
        Some(r#"{"plaintext":"TVJOIDEyMzQ1"}"#),
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ct = v["data"]["ciphertext"].as_str().unwrap().to_string();
    let (code, body) = curl(
        &dir,
        &s,
        Some("admin"),
        "/v1/transit/decrypt/billing",
        Some(&format!(r#"{{"ciphertext":"{ct}"}}"#)),
    );
    assert_eq!(code, 200);
    assert!(body.contains("TVJOIDEyMzQ1"));
    assert_eq!(curl(&dir, &s, None, "/v1/sys/health", None).0, 200);
    assert_eq!(
        curl(&dir, &s, None, "/v1/transit/keys/billing", None).0,
        401
    );
    // Key files are private.
    use std::os::unix::fs::PermissionsExt;
    for f in ["clients/admin.key", "tls/server.key"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // `ca issue` and `ca revoke` against the running server's data dir.
    let (code, _, err) = out(pv(&dir).args([
        "--insecure-dev",
        "-q",
        "ca",
        "issue",
        "client",
        "--name",
        "app",
        "--scopes",
        "transit:encrypt:billing",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        curl(
            &dir,
            &s,
            Some("app"),
            "/v1/transit/encrypt/billing",
            Some(r#"{"plaintext":""}"#)
        )
        .0,
        200
    );
    assert_eq!(
        curl(
            &dir,
            &s,
            Some("app"),
            "/v1/transit/decrypt/billing",
            Some(r#"{"ciphertext":"x"}"#)
        )
        .0,
        403
    );
    let (code, o, err) = out(pv(&dir).args([
        "--insecure-dev",
        "-q",
        "--json",
        "ca",
        "revoke",
        "app",
        "--reason",
        "key-compromise",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(o.contains("spiffe://dev.phivault.local/app"));
    // SIGHUP reloads at once (the file poll would too, within 2 s).
    signal(&s.child, "-HUP");
    let t0 = Instant::now();
    while curl(
        &dir,
        &s,
        Some("app"),
        "/v1/transit/encrypt/billing",
        Some(r#"{"plaintext":""}"#),
    )
    .0 != 0
    {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "revoked certificate still accepted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        curl(&dir, &s, Some("admin"), "/v1/transit/keys/billing", None).0,
        200
    );
    let (code, o, _) = out(pv(&dir).args(["--json", "ca", "list"]));
    assert_eq!(code, 0);
    assert!(o.contains("\"revoked\""));
    // SIGTERM: graceful, exit 0.
    signal(&s.child, "-TERM");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // The debug log names routes, statuses and principals, never the PHI,
    // the ciphertext, a token, or key material.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("request"), "log is empty?\n{text}");
    let key = std::fs::read_to_string(dir.join("clients/admin.key")).unwrap();
    let key_b64 = key.lines().nth(1).unwrap().to_string();
    for secret in ["TVJOIDEyMzQ1", "MRN 12345", &ct[4..40], &key_b64] {
        assert!(!text.contains(secret), "log contains a secret: {secret}");
    }
    // Restart reuses the data dir: the old ciphertext still decrypts.
    let s2 = serve_dev(&dir);
    let (code, _) = curl(
        &dir,
        &s2,
        Some("admin"),
        "/v1/transit/decrypt/billing",
        Some(&format!(r#"{{"ciphertext":"{ct}"}}"#)),
    );
    assert_eq!(code, 200);
}

#[test]
fn config_check_layers_file_env_flags_and_refuses_weakening() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("dev");
    // Make a dev dir with certificates, then stop.
    drop(serve_dev(&dir));
    let cfg = d.path().join("phivault.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:9001\"\nheader_timeout = \"5s\"\n[tls]\nprofile = \"modern\"\nbogus = 1\n").unwrap();
    let check = |extra: &[&str], env: &[(&str, &str)]| {
        let mut c = pv(&dir);
        c.arg("--config").arg(&cfg);
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(["--json", "config", "check"]).args(extra);
        out(&mut c)
    };
    let (code, o, err) = check(&[], &[]);
    assert_eq!(code, 0, "{o}{err}");
    assert!(err.contains("unknown key 'tls.bogus'"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(v["settings"]["listen"], "127.0.0.1:9001");
    assert_eq!(v["settings"]["tls"]["profile"], "modern");
    // Environment beats the file; a flag beats the environment.
    let (_, o, _) = check(&[], &[("PHIVAULT_LISTEN", "127.0.0.1:9002")]);
    assert!(o.contains("127.0.0.1:9002"), "{o}");
    let (_, o, _) = check(
        &["--listen", "127.0.0.1:9003"],
        &[("PHIVAULT_LISTEN", "127.0.0.1:9002")],
    );
    assert!(o.contains("127.0.0.1:9003"), "{o}");
    // Weakening settings are refused unless named insecure.
    for bad in [
        "[tls]\nprofile = \"tls10\"\n",
        "[server]\nheader_timeout = \"0s\"\n",
        "[server]\nmax_body_bytes = 10\n",
        "[server]\nreload_poll = \"0s\"\n",
        "[server]\nmax_connection_age = \"0s\"\n",
    ] {
        std::fs::write(&cfg, bad).unwrap();
        let (code, o, _) = check(&[], &[]);
        assert_eq!(code, 2, "{bad}: {o}");
        assert!(o.contains("\"ok\":false"));
    }
    std::fs::write(&cfg, "[tls]\ninsecure_allow_x25519 = true\n").unwrap();
    let (code, o, _) = check(&[], &[]);
    assert_eq!(code, 0);
    assert!(o.contains("INSECURE: X25519"), "{o}");
    // A server certificate that breaks the profile (an expired or missing file) is refused.
    let (code, o, _) = check(&["--tls-cert", "/nonexistent.pem"], &[]);
    assert_eq!(code, 2);
    assert!(o.contains("nonexistent"));
    // The built-in CA's CRL missing is an error, never "no revocation".
    std::fs::rename(dir.join("ca/crl.pem"), d.path().join("crl.pem")).unwrap();
    let (code, o, _) = check(&[], &[]);
    assert_eq!(code, 2, "{o}");
    assert!(o.contains("crl.pem"), "{o}");
}

const PASS: &str = "a long enough passphrase";

#[test]
fn serve_refuses_without_keystore_and_starts_sealed() {
    let d = tempfile::tempdir().unwrap();
    let (code, _, err) = out(pv(&d.path().join("none")).args(["serve"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("phivault init") && err.contains("serve --dev"),
        "{err}"
    );
    // A passphrase keystore without its passphrase starts sealed.
    let dir = d.path().join("prod");
    let (code, _, err) = out(pv(&dir)
        .env("PHIVAULT_PASSPHRASE", PASS)
        .args(["init", "--passphrase"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = out(pv(&dir).env("PHIVAULT_PASSPHRASE", PASS).args([
        "ca",
        "init",
        "--trust-domain",
        "prod.example",
    ]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = out(pv(&dir).env("PHIVAULT_PASSPHRASE", PASS).args([
        "ca",
        "issue",
        "server",
        "--name",
        "localhost",
        "--san",
        "127.0.0.1",
    ]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = out(pv(&dir).env("PHIVAULT_PASSPHRASE", PASS).args([
        "ca",
        "issue",
        "server",
        "--name",
        "localhost",
        "--days",
        "400",
    ]));
    assert_ne!(code, 0);
    assert!(err.contains("398"), "{err}");
    let mut child = pv(&dir)
        .args(["--json", "serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = format!("{}/v1/sys/health", v["listening"].as_str().unwrap());
    let o = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "--cacert"])
        .arg(dir.join("ca/ca.pem"))
        .arg(&url)
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.ends_with("503") && t.contains("\"sealed\":true"), "{t}");
    let _ = child.kill();
    let _ = child.wait();
}
