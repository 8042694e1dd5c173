//! Complete handshakes with rustls, for what the raw probes can't see:
//! the TLS 1.3 certificate chain and CertificateRequest (encrypted on the
//! wire), OCSP stapling under TLS 1.3, session resumption, and HSTS on an
//! HTTP response. The verifier here records instead of judging; the chain
//! is judged separately in `cert` against the chosen CA bundle.

use super::Target;
use super::probe;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme};
use serde::Serialize;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a completed (or attempted) handshake showed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Session {
    /// The handshake failed: why.
    pub error: Option<String>,
    /// Negotiated version, e.g. `TLSv1_3`.
    pub version: Option<String>,
    /// The served chain, DER, leaf first.
    #[serde(skip)]
    pub chain: Vec<Vec<u8>>,
    /// A stapled OCSP response came with the certificate.
    pub ocsp_stapled: bool,
    /// The server asked for a client certificate.
    pub client_cert_requested: bool,
    /// It asked, we sent none, and the connection still worked.
    pub client_cert_optional: bool,
    /// The CA names it listed (DER distinguished names).
    #[serde(skip)]
    pub client_ca_hints: Vec<Vec<u8>>,
    /// HTTP status of `GET /`, when HTTP was spoken.
    pub http_status: Option<u16>,
    /// The Strict-Transport-Security header, when present.
    pub hsts: Option<String>,
    /// A second handshake resumed the first session.
    pub resumed: Option<bool>,
}

#[derive(Debug, Default)]
struct Seen {
    chain: Vec<Vec<u8>>,
    ocsp: bool,
    requested: bool,
    hints: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        s.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.to_vec())
            .collect();
        s.ocsp = !ocsp_response.is_empty();
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug)]
struct ClientAuth {
    seen: Arc<Mutex<Seen>>,
    key: Option<Arc<CertifiedKey>>,
}

impl ResolvesClientCert for ClientAuth {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let mut s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        s.requested = true;
        s.hints = root_hint_subjects.iter().map(|h| h.to_vec()).collect();
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Loads a client certificate chain and key (PEM) for scanning servers
/// that require mTLS.
pub fn load_client_cert(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<CertifiedKey>, String> {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect())
        .map_err(|e| format!("cannot read client certificate {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read client key {}: {e}", key.display()))?;
    let provider = provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| format!("client certificate and key don't match: {e}"))
}

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Runs one handshake (plus an HTTP request when `http`), then a second
/// one to test resumption. (`once` takes `None` for the second: it needs
/// neither HTTP nor the wait for session tickets.)
pub fn run(
    t: &Target,
    addr: SocketAddr,
    timeout: Duration,
    http: bool,
    client_key: Option<Arc<CertifiedKey>>,
) -> Session {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let has_key = client_key.is_some();
    let provider = Arc::new(provider());
    let config = match ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
    {
        Ok(b) => b
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Recorder {
                seen: seen.clone(),
                provider: provider.clone(),
            }))
            .with_client_cert_resolver(Arc::new(ClientAuth {
                seen: seen.clone(),
                key: client_key,
            })),
        Err(e) => {
            return Session {
                error: Some(e.to_string()),
                ..Default::default()
            };
        }
    };
    let config = Arc::new(config);
    let name = t.sni.clone().unwrap_or_else(|| t.host.clone());
    let server_name = match ServerName::try_from(name.clone()) {
        Ok(n) => n,
        Err(_) => {
            return Session {
                error: Some(format!("{name:?} is not a valid server name")),
                ..Default::default()
            };
        }
    };
    let mut out = Session::default();
    let first = once(t, addr, timeout, &config, &server_name, Some(http), &name);
    {
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        out.chain = s.chain.clone();
        out.ocsp_stapled = s.ocsp;
        out.client_cert_requested = s.requested;
        out.client_ca_hints = s.hints.clone();
    }
    out.client_cert_optional = out.client_cert_requested && !has_key && first.is_ok();
    match first {
        Ok(o) => {
            out.version = o.version;
            out.http_status = o.http_status;
            out.hsts = o.hsts;
            let second = once(t, addr, timeout, &config, &server_name, None, &name);
            out.resumed = second.ok().map(|o| o.resumed);
        }
        Err(e) => out.error = Some(e),
    }
    out
}

struct Once {
    version: Option<String>,
    http_status: Option<u16>,
    hsts: Option<String>,
    resumed: bool,
}

fn once(
    t: &Target,
    addr: SocketAddr,
    timeout: Duration,
    config: &Arc<ClientConfig>,
    server_name: &ServerName<'static>,
    http: Option<bool>,
    host: &str,
) -> Result<Once, String> {
    let tcp = probe::connect(t, addr, timeout).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(config.clone(), server_name.clone())
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| describe(&e))?;
    }
    let mut o = Once {
        version: tls.conn.protocol_version().map(|v| format!("{v:?}")),
        http_status: None,
        hsts: None,
        resumed: tls.conn.handshake_kind() == Some(HandshakeKind::Resumed),
    };
    if http == Some(true) {
        let req = format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: phivault-scan\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(req.as_bytes()).map_err(|e| describe(&e))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while head.len() < 64 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) => return Err(describe(&e)),
            }
        }
        let text = String::from_utf8_lossy(&head);
        let mut lines = text.split("\r\n");
        o.http_status = lines
            .next()
            .filter(|l| l.starts_with("HTTP/"))
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok());
        o.hsts = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("strict-transport-security"))
            .map(|(_, v)| v.trim().to_owned());
    } else if http == Some(false) {
        // Give TLS 1.3 session tickets (sent after the handshake) a moment
        // to arrive, so the resumption test has something to resume.
        let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(150)));
        let mut buf = [0u8; 1024];
        if let Err(e) = tls.read(&mut buf)
            && matches!(e.kind(), std::io::ErrorKind::InvalidData)
        {
            return Err(describe(&e));
        }
    }
    Ok(o)
}

fn describe(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(r) => r.to_string(),
        None => e.to_string(),
    }
}

/// Whether the chain verifies against `roots` for `name` (an error string
/// when not). Uses webpki through rustls: path building, validity dates,
/// name constraints, EKU serverAuth and the host name.
pub fn verify_chain(
    chain: &[Vec<u8>],
    roots: Arc<rustls::RootCertStore>,
    name: &str,
) -> Result<(), String> {
    let Some((leaf, rest)) = chain.split_first() else {
        return Err("no certificate".into());
    };
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, Arc::new(provider()))
        .build()
        .map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let inter: Vec<CertificateDer> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.as_slice()),
            &inter,
            &server_name,
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}
