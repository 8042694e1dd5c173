//! A real server on loopback with real certificates from the built-in CA,
//! and clients: curl and openssl from the system, and a rustls client for
//! what needs one connection across several requests.
#![allow(dead_code, missing_docs)]

use phivault_keystore::{InitMethod, Keystore, store};
use phivault_server::config::{AuthFile, ServerFile, ServerSettings, TlsFile};
use phivault_server::pki::{self, Ca, CertKind, IssueRequest, IssuedPem};
use phivault_server::server::{self, Running};
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Client {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub pem: String,
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub ks: Arc<Keystore>,
    pub running: Option<Running>,
    pub settings: ServerSettings,
}

pub fn write_pair(dir: &Path, name: &str, p: &IssuedPem) -> Client {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &p.cert_pem).unwrap();
    std::fs::write(&key, p.key_pem.as_bytes()).unwrap();
    Client {
        name: name.into(),
        cert,
        key,
        pem: p.cert_pem.clone(),
    }
}

pub fn client_req(name: &str, scopes: &[&str]) -> IssueRequest {
    IssueRequest {
        kind: CertKind::Client,
        name: name.into(),
        sans: vec![],
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        days: 30,
        insecure_long_validity: false,
    }
}

impl Harness {
    /// A dev keystore, a CA with a server certificate, and (if `sealed`
    /// is false) the keystore open in the server.
    pub fn new(tweak: impl FnOnce(&mut ServerFile, &mut TlsFile)) -> Self {
        Self::new_with(|s, t, _| tweak(s, t))
    }

    /// [`Self::new`] with the auth section too.
    pub fn new_with(tweak: impl FnOnce(&mut ServerFile, &mut TlsFile, &mut AuthFile)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        store::init(dir.path(), InitMethod::Dev).unwrap();
        let ks = Keystore::open_dev(dir.path()).unwrap();
        ks.create_ring(
            &phivault_core::keys::KeyRingName::parse(pki::CA_RING).unwrap(),
            3650,
        )
        .unwrap();
        let mut ca = Ca::init(dir.path(), "test.local", &ks).unwrap();
        let s = ca
            .issue(&IssueRequest {
                kind: CertKind::Server,
                name: "localhost".into(),
                sans: vec!["127.0.0.1".into()],
                scopes: vec![],
                days: 30,
                insecure_long_validity: false,
            })
            .unwrap();
        let tls = dir.path().join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        write_pair(&tls, "server", &s);
        let mut sf = ServerFile {
            listen: Some("127.0.0.1:0".into()),
            reload_poll: Some("1s".into()),
            ..Default::default()
        };
        let mut tf = TlsFile::default();
        let mut af = AuthFile::default();
        tweak(&mut sf, &mut tf, &mut af);
        let settings = ServerSettings::resolve(dir.path(), &sf, &tf, &af).unwrap();
        Self {
            dir,
            ca,
            ks: Arc::new(ks),
            running: None,
            settings,
        }
    }

    pub fn client(&mut self, name: &str, scopes: &[&str]) -> Client {
        let p = self.ca.issue(&client_req(name, scopes)).unwrap();
        write_pair(self.dir.path(), name, &p)
    }

    pub async fn start(&mut self, keystore: Option<Keystore>) {
        let r = server::start(self.settings.clone(), keystore)
            .await
            .unwrap();
        self.running = Some(r);
    }

    pub async fn start_unsealed(&mut self) {
        let ks = Keystore::open_dev(self.dir.path()).unwrap();
        self.start(Some(ks)).await;
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().unwrap().addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.addr().port(), path)
    }

    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca").join("ca.pem")
    }

    pub fn metrics(&self) -> String {
        self.running.as_ref().unwrap().state.metrics.encode()
    }

    /// curl with this client's certificate (or none). Returns (status, body).
    pub fn curl(
        &self,
        client: Option<&Client>,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &[&str],
    ) -> (u16, String) {
        let mut c = Command::new("curl");
        // HTTP/1.1: curl 7.88 reports an error when an HTTP/2 server
        // answers before reading the whole request body (RST_STREAM
        // NO_ERROR, which RFC 9113 §8.1 allows), e.g. 413 and 401.
        c.args([
            "-sS",
            "--http1.1",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "10",
            "-X",
            method,
        ]);
        c.arg("--cacert").arg(self.ca_pem());
        if let Some(cl) = client {
            c.arg("--cert").arg(&cl.cert).arg("--key").arg(&cl.key);
        }
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        c.args(extra);
        c.arg(self.url(path));
        let out = c.output().expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (b, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
        (code.trim().parse().unwrap_or(0), b.to_string())
    }

    pub fn json(
        &self,
        client: Option<&Client>,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &[&str],
    ) -> (u16, serde_json::Value) {
        let (s, b) = self.curl(client, method, path, body, extra);
        (
            s,
            serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b)),
        )
    }

    /// POST a JSON body with this client's certificate.
    pub fn post(
        &self,
        c: &Client,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.json(Some(c), "POST", path, Some(&body.to_string()), &[])
    }

    /// POST a raw body (possibly malformed) with this client's certificate.
    pub fn post_raw(&self, c: &Client, path: &str, body: &str) -> (u16, serde_json::Value) {
        self.json(Some(c), "POST", path, Some(body), &[])
    }

    /// GET with this client's certificate.
    pub fn get(&self, c: &Client, path: &str) -> (u16, serde_json::Value) {
        self.json(Some(c), "GET", path, None, &[])
    }

    /// openssl s_client with extra args; true if the handshake completed.
    pub fn s_client(&self, client: Option<&Client>, args: &[&str]) -> (bool, String) {
        let mut c = Command::new("openssl");
        c.args([
            "s_client",
            "-ign_eof",
            "-servername",
            "localhost",
            "-connect",
        ])
        .arg(format!("127.0.0.1:{}", self.addr().port()));
        c.arg("-CAfile").arg(self.ca_pem());
        if let Some(cl) = client {
            c.arg("-cert").arg(&cl.cert).arg("-key").arg(&cl.key);
        }
        c.args(args);
        c.stdin(std::process::Stdio::piped());
        let mut child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("openssl runs");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(
                b"GET /v1/sys/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            );
        }
        let out = child.wait_with_output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let ok = all.contains("HTTP/1.1 200") || all.contains("HTTP/1.1 503");
        (ok, all)
    }
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(cmd: &str, dir: &Path) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Value of one metric sample line (`name{labels} value`).
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A rustls client config trusting the test CA, with an optional client cert.
pub fn rustls_client(ca_pem: &Path, client: Option<&Client>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some(c) => {
            let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(&c.cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&c.key).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

pub type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

pub async fn connect(
    addr: std::net::SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(cfg)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
}

/// One HTTP/1.1 request on an open connection; returns (status, body).
pub async fn request(
    s: &mut Tls,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    read_response(s).await
}

pub async fn read_response(s: &mut Tls) -> (u16, String) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let l = l.to_ascii_lowercase();
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut tmp).await.unwrap();
                assert!(n > 0, "connection closed mid-body");
                buf.extend_from_slice(&tmp[..n]);
            }
            return (
                status,
                String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string(),
            );
        }
        let n = s.read(&mut tmp).await.unwrap();
        assert!(n > 0, "connection closed before a response");
        buf.extend_from_slice(&tmp[..n]);
    }
}

pub fn b64(s: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

pub fn pem_der(pem: &str) -> rustls_pki_types::CertificateDer<'static> {
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}
