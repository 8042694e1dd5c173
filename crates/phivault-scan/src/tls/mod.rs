//! TLS endpoint scanning with hand-built ClientHellos.
//!
//! A scan of one target runs about 40–100 short probes (each a TCP
//! connection that ends after the server's first flight), six versions in
//! parallel, then groups, fallback, compression and one full rustls
//! handshake for what TLS 1.3 encrypts. The facts land in [`Observed`];
//! [`grade`] turns them into findings for a [`Profile`].
//!
//! - `wire`: ClientHello bytes and the server-flight parser (no I/O).
//! - `probe`: TCP, STARTTLS, timeouts.
//! - `session`: complete handshakes with rustls (chain under TLS 1.3,
//!   resumption, HSTS, CertificateRequest under TLS 1.3).
//! - `cert`: certificate summaries and trust anchors.
//! - `scan`: the order of probes; `grade`: the profiles.

mod cert;
pub mod grade;
mod probe;
mod scan;
mod session;
pub mod suites;
pub mod wire;

pub use scan::version_name;

/// Summarises one DER certificate as of `now` (Unix seconds); an error
/// for anything x509-parser can't read. Public for the fuzzer.
pub fn summarize_certificate(der: &[u8], now: i64) -> Result<CertSummary, String> {
    cert::summarize(der, now)
}
use crate::finding::Finding;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// A STARTTLS protocol spoken before the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// PostgreSQL's SSLRequest message.
    Postgres,
    /// SMTP `EHLO` / `STARTTLS`.
    Smtp,
}

/// What to scan: `host:port`, with an optional SNI name and STARTTLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Host name or IP address to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The server name sent in SNI and matched against the certificate
    /// (default: `host` when it is a name, none for an IP address).
    pub sni: Option<String>,
    /// STARTTLS protocol, if any.
    pub starttls: Option<StartTls>,
}

/// The profile findings are graded against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// NIST SP 800-52 Rev. 2 (the default).
    #[default]
    #[serde(rename = "nist-800-52r2")]
    Nist80052r2,
    /// NIST plus certificate lifetime and mTLS expectations for ePHI.
    Hipaa,
    /// Mozilla's "intermediate" server configuration.
    MozillaIntermediate,
    /// Mozilla's "modern": TLS 1.3 only.
    Modern,
}

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Profile to grade against.
    pub profile: Profile,
    /// PEM CA bundle to check the chain against (default: the system store).
    pub ca_bundle: Option<PathBuf>,
    /// Timeout for each connect and each read.
    pub timeout: Duration,
    /// Send `GET /` after the handshake to check HSTS (default: yes,
    /// unless STARTTLS).
    pub http: Option<bool>,
    /// Client certificate and key (PEM) to present when the server asks,
    /// so HSTS and resumption can be checked behind mTLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            profile: Profile::default(),
            ca_bundle: None,
            timeout: Duration::from_secs(5),
            http: None,
            client_cert: None,
        }
    }
}

/// One certificate of the served chain, summarised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// notBefore, Unix seconds.
    pub not_before_unix: i64,
    /// notAfter, Unix seconds.
    pub not_after_unix: i64,
    /// Days until notAfter at scan time (negative once expired).
    pub days_to_expiry: i64,
    /// e.g. `ECDSA P-256`, `RSA 2048`.
    pub key: String,
    /// e.g. `ecdsa-with-SHA256`.
    pub signature_algorithm: String,
    /// DNS and IP subjectAltNames.
    pub san: Vec<String>,
    /// Extended key usages, e.g. `serverAuth`.
    pub eku: Vec<String>,
    /// Key usages, e.g. `digitalSignature`.
    #[serde(default)]
    pub key_usage: Vec<String>,
    /// OCSP responder URLs from the Authority Information Access extension.
    #[serde(default)]
    pub ocsp_urls: Vec<String>,
    /// A CA certificate (basicConstraints cA).
    #[serde(default)]
    pub is_ca: bool,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
}

/// Everything one scan of one target found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsReport {
    /// `host:port` as given.
    pub target: String,
    /// The profile graded against.
    pub profile: Profile,
    /// Scan start, RFC 3339.
    pub scanned_at: String,
    /// Wall time of the scan in milliseconds.
    pub duration_ms: u64,
    /// When the target could not be scanned at all (unreachable, not TLS).
    pub error: Option<String>,
    /// The served chain, leaf first.
    pub chain: Vec<CertSummary>,
    /// Graded findings.
    pub findings: Vec<Finding>,
    /// The facts the findings were graded from.
    pub observed: Option<Observed>,
}

/// One accepted cipher suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteSeen {
    /// Code point, e.g. `0xC02F` (SSL 2.0: three bytes).
    pub code: String,
    /// IANA name.
    pub name: String,
}

/// What one protocol version showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSeen {
    /// `SSLv2` … `TLSv1.3`.
    pub version: String,
    /// The server accepted it.
    pub supported: bool,
    /// Accepted suites, in the server's order when it has one.
    pub suites: Vec<SuiteSeen>,
    /// The server imposes its own order (`None`: fewer than two suites).
    pub server_order: Option<bool>,
    /// A probe failed in a way that is not a refusal.
    pub error: Option<String>,
}

/// The facts a scan established.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Each version, SSLv2 first.
    pub versions: Vec<VersionSeen>,
    /// Supported key exchange groups.
    pub groups: Vec<String>,
    /// Size of the finite-field DH prime in DHE suites.
    pub dh_bits: Option<u32>,
    /// Downgrade protection: (protected, how we know).
    pub fallback_protection: Option<(bool, String)>,
    /// Secure renegotiation (RFC 5746) under TLS 1.2 and below.
    pub secure_renegotiation: Option<bool>,
    /// Extended master secret (RFC 7627) under TLS 1.2.
    pub extended_master_secret: Option<bool>,
    /// The server accepted TLS compression.
    pub compression: Option<bool>,
    /// A stapled OCSP response.
    pub ocsp_stapling: Option<bool>,
    /// Session resumption (ids, tickets, or a resumed TLS 1.3 handshake).
    pub session_resumption: Option<bool>,
    /// HTTP status of `GET /`, when HTTP was spoken.
    pub http_status: Option<u16>,
    /// The Strict-Transport-Security header.
    pub hsts: Option<String>,
    /// The server asks for a client certificate.
    pub client_cert_requested: Option<bool>,
    /// It refuses the handshake without one (`None`: not determined, e.g.
    /// because a client certificate was presented).
    #[serde(default)]
    pub client_cert_required: Option<bool>,
    /// The CA names it lists.
    pub client_cas: Vec<String>,
    /// The chain, leaf first.
    pub chain: Vec<CertSummary>,
    /// A certificate that could not be parsed.
    pub chain_error: Option<String>,
    /// Trust against the CA bundle, including the host name.
    pub trust: Option<Result<(), String>>,
    /// The full rustls handshake failed (e.g. the server demands a client
    /// certificate): what it said.
    pub handshake_error: Option<String>,
    /// Connections made.
    pub probes: u32,
    /// The name the certificate must match (SNI, else the host).
    #[serde(default)]
    pub server_name: String,
}

/// Parses a target: `host:port`, `[v6]:port`, then optional
/// `,sni=NAME` and `,starttls=postgres|smtp`.
impl std::str::FromStr for Target {
    type Err = crate::ScanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| crate::ScanError::BadTarget(s.to_owned(), why);
        let mut parts = s.trim().split(',');
        let hp = parts.next().unwrap_or("");
        let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or(bad("expected [IPv6]:port"))?;
            (h, p)
        } else {
            hp.rsplit_once(':').ok_or(bad("expected host:port"))?
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad("empty or invalid host"));
        }
        let port: u16 = port.parse().map_err(|_| bad("port must be 1-65535"))?;
        if port == 0 {
            return Err(bad("port must be 1-65535"));
        }
        let mut t = Target {
            host: host.to_owned(),
            port,
            sni: None,
            starttls: None,
        };
        for p in parts {
            match p.split_once('=') {
                Some(("sni", n)) if !n.is_empty() => t.sni = Some(n.to_owned()),
                Some(("starttls", "postgres" | "postgresql" | "pg")) => {
                    t.starttls = Some(StartTls::Postgres)
                }
                Some(("starttls", "smtp")) => t.starttls = Some(StartTls::Smtp),
                _ => return Err(bad("options are sni=NAME and starttls=postgres|smtp")),
            }
        }
        Ok(t)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        if let Some(s) = &self.sni {
            write!(f, ",sni={s}")?;
        }
        match self.starttls {
            Some(StartTls::Postgres) => write!(f, ",starttls=postgres"),
            Some(StartTls::Smtp) => write!(f, ",starttls=smtp"),
            None => Ok(()),
        }
    }
}

/// Scans one target. Never panics and never hangs longer than the
/// timeouts allow: a misbehaving server becomes a finding or `error`.
pub fn scan(target: &Target, opts: &ScanOptions) -> TlsReport {
    let started = std::time::Instant::now();
    let now = time::OffsetDateTime::now_utc();
    let scanned_at = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let (observed, error) = match scan::run(target, opts, now.unix_timestamp()) {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(e)),
    };
    let findings = match &observed {
        Some(o) => grade::grade(o, opts.profile),
        None => vec![
            Finding::new(
                "TLS-REACHABLE",
                "The endpoint answers TLS",
                crate::finding::Status::Fail,
                error.clone().unwrap_or_default(),
            )
            .fix("Check the address, port and STARTTLS option, and that the service is up."),
        ],
    };
    TlsReport {
        target: target.to_string(),
        profile: opts.profile,
        scanned_at,
        duration_ms: started.elapsed().as_millis() as u64,
        error,
        chain: observed
            .as_ref()
            .map(|o| o.chain.clone())
            .unwrap_or_default(),
        findings,
        observed,
    }
}

/// Scans many targets, `concurrency` at a time, in the given order.
pub fn scan_all(targets: &[Target], opts: &ScanOptions, concurrency: usize) -> Vec<TlsReport> {
    scan_all_with(targets, opts, concurrency, &|| {})
}

/// [`scan_all`], calling `done` after each target (for progress bars).
pub fn scan_all_with(
    targets: &[Target],
    opts: &ScanOptions,
    concurrency: usize,
    done: &(dyn Fn() + Sync),
) -> Vec<TlsReport> {
    scan::par_map(targets, concurrency.max(1), |t| {
        let r = scan(t, opts);
        done();
        r
    })
}
