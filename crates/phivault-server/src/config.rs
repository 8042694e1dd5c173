//! The server's configuration: what the TOML file may hold (sections
//! `[server]`, `[tls]`, `[auth]`), and the resolved settings `serve` runs
//! with. The CLI layers file < environment < flags on top of these
//! defaults, then calls [`ServerSettings::validate`].

use crate::auth::{ExternalIssuer, Scopes};
use crate::tls::{Profile, TlsSettings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[server]` in the file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct ServerFile {
    /// Listen address.
    pub listen: Option<String>,
    /// Largest request body, bytes.
    pub max_body_bytes: Option<usize>,
    /// Time allowed to send request headers (slowloris), e.g. "10s".
    pub header_timeout: Option<String>,
    /// Time allowed to send a request body.
    pub read_timeout: Option<String>,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Option<String>,
    /// Connections older than this are closed gracefully (after their
    /// in-flight request), so clients reconnect and are re-checked against
    /// the CRL.
    pub max_connection_age: Option<String>,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Option<String>,
    /// Most connections open at once; more are refused at accept.
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client address.
    pub max_connections_per_ip: Option<usize>,
    /// How often TLS files are checked for changes.
    pub reload_poll: Option<String>,
    /// Threads that serve connections (each connection stays on one);
    /// default: one per CPU.
    pub workers: Option<usize>,
}

/// `[tls]` in the file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct TlsFile {
    /// nist | modern.
    pub profile: Option<String>,
    /// Server certificate chain.
    pub cert: Option<PathBuf>,
    /// Server key.
    pub key: Option<PathBuf>,
    /// Client CA bundle (an external CA instead of the built-in one).
    pub client_ca: Option<PathBuf>,
    /// CRL files.
    pub crl: Option<Vec<PathBuf>>,
    /// See [`TlsSettings::insecure_allow_x25519`].
    #[serde(default)]
    pub insecure_allow_x25519: bool,
    /// See [`TlsSettings::insecure_allow_long_validity`].
    #[serde(default)]
    pub insecure_allow_long_validity: bool,
    /// See [`TlsSettings::insecure_allow_unknown_revocation`].
    #[serde(default)]
    pub insecure_allow_unknown_revocation: bool,
    /// See [`TlsSettings::require_client_cert`].
    #[serde(default)]
    pub require_client_cert: bool,
}

/// `[auth]` in the file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct AuthFile {
    /// Token `iss`.
    pub issuer: Option<String>,
    /// Token `aud`.
    pub audience: Option<String>,
    /// How often the token signing key rotates, e.g. "24h".
    pub signing_key_rotation: Option<String>,
    /// Token signature: "ES256" (default) or "PS256".
    pub token_algorithm: Option<String>,
    /// External OIDC issuers.
    #[serde(default)]
    pub external: Vec<ExternalIssuer>,
    /// Extra scopes by principal (for certificates from an external CA,
    /// which carry no phivault scopes extension).
    #[serde(default)]
    pub principals: BTreeMap<String, Vec<String>>,
    /// Honour the phivault scopes extension in client certificates.
    /// Default: only when clients are verified against the built-in CA
    /// (an external CA might copy the extension from a CSR).
    pub trust_certificate_scopes: Option<bool>,
}

/// `[records]` in the file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsFile {
    /// Largest record document, bytes (default 256 KiB).
    pub max_document_bytes: Option<usize>,
    /// Most records per bulk request (default 1000).
    pub max_bulk: Option<usize>,
    /// Records or keys per background job step (default 500).
    pub job_batch: Option<u32>,
    /// Pause between job steps in milliseconds, to throttle background
    /// load (default 0).
    pub job_pause_ms: Option<u64>,
    /// Collection key epoch, e.g. "24h" (default), or "off".
    pub key_epoch: Option<String>,
    /// How long unwrapped subject keys stay cached (default 30s).
    pub key_cache_ttl: Option<String>,
}

/// `[storage]` in the file: where records live.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// `postgres://USER:PASSWORD@HOST:PORT/DB` for PostgreSQL (several
    /// nodes may share it); absent: embedded SQLite in the data dir. The
    /// environment variable `PHIVAULT_STORAGE_URL` overrides it (keep the
    /// password out of the file).
    pub url: Option<String>,
    /// The CA that signed the database server's certificate (PEM), e.g.
    /// phivault's own `ca/ca.pem`.
    pub ca_file: Option<PathBuf>,
    /// A client certificate for the database (PEM), with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    pub client_key: Option<PathBuf>,
    /// Why the URL may use an `sslmode` weaker than verify-full (a
    /// documented risk decision); without it such URLs are refused.
    pub insecure_db_tls_reason: Option<String>,
    /// Connections per node (default 32).
    pub max_connections: Option<u32>,
}

/// Where records live, resolved.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StorageSettings {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The database URL without its password (empty for SQLite).
    pub target: String,
    /// How to reach PostgreSQL (`None`: embedded SQLite).
    #[serde(skip)]
    pub postgres: Option<phivault_store::postgres::PgSettings>,
    /// Where the keystore document lives when it is not `keystore.json`
    /// in the data dir (on PostgreSQL: the shared `pv_keystore` row).
    #[serde(skip)]
    pub keystore: Option<phivault_keystore::Location>,
}

impl StorageSettings {
    /// Resolves `[storage]`, with `env_url` (from `PHIVAULT_STORAGE_URL`)
    /// over the file's `url`.
    pub fn resolve(f: &StorageFile, env_url: Option<String>) -> Result<Self, String> {
        let url = env_url.filter(|u| !u.is_empty()).or_else(|| f.url.clone());
        let Some(url) = url else {
            return Ok(Self {
                backend: "sqlite".into(),
                ..Default::default()
            });
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!(
                "storage.url must be a postgres:// URL (or absent for the embedded SQLite store), not '{}'",
                phivault_store::postgres::redact_url(&url)
            ));
        }
        let read = |what: &str, p: &Option<PathBuf>| -> Result<Option<Vec<u8>>, String> {
            p.as_ref()
                .map(|p| {
                    std::fs::read(p).map_err(|e| format!("storage.{what} {}: {e}", p.display()))
                })
                .transpose()
        };
        if f.client_cert.is_some() != f.client_key.is_some() {
            return Err("storage.client_cert and storage.client_key go together".into());
        }
        let pg = phivault_store::postgres::PgSettings {
            url: url.clone(),
            ca_pem: read("ca_file", &f.ca_file)?,
            client_cert_pem: read("client_cert", &f.client_cert)?,
            client_key_pem: read("client_key", &f.client_key)?,
            insecure_tls_reason: f.insecure_db_tls_reason.clone(),
            max_connections: f.max_connections.unwrap_or(32),
        };
        Ok(Self {
            backend: "postgres".into(),
            target: phivault_store::postgres::redact_url(&url),
            postgres: Some(pg),
            keystore: None,
        })
    }
}

/// `[audit]` in the file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// The audit trail's folder (default `<data dir>/audit`).
    pub dir: Option<PathBuf>,
    /// This node's name in events (default: the host name).
    pub node: Option<String>,
    /// The checkpoint origin line (default `phivault/<node>/audit`).
    pub origin: Option<String>,
    /// Sign a checkpoint after this many entries (default 10000)…
    pub checkpoint_every: Option<u64>,
    /// …or after this long (default "1s").
    pub checkpoint_interval: Option<String>,
    /// Seal a segment past this size, bytes (default 64 MiB).
    pub segment_bytes: Option<u64>,
    /// Remove sealed segments older than this (default "2196d", six
    /// years; HIPAA 164.316(b)(2)(i)). Leaf hashes are kept for ever.
    pub retention: Option<String>,
    /// Folders that receive a copy of every checkpoint.
    #[serde(default)]
    pub witness_dirs: Vec<PathBuf>,
    /// HTTPS URLs every checkpoint is sent to, over mTLS. A URL ending in
    /// `/add-checkpoint` is a tlog witness (c2sp.org/tlog-witness: each
    /// checkpoint goes with a consistency proof, and the witness refuses
    /// rollbacks and forks); any other URL gets a plain `PUT` of the note.
    #[serde(default)]
    pub witness_urls: Vec<String>,
    /// The cosigner keys (`witness/witness.pub` on a phivault witness) of
    /// the tlog witnesses in `witness_urls`. With them, a push counts only
    /// when the answer holds a cosignature that verifies under one; the
    /// log keeps only verified cosignatures.
    #[serde(default)]
    pub witness_cosigners: Vec<String>,
    /// Makes this node a tlog witness for other logs: each entry is a
    /// log's checkpoint origin, a space, and its note verifier key
    /// (`audit/log.pub` on that node). Served at
    /// `POST /v1/witness/add-checkpoint` (scope `witness:submit`).
    #[serde(default)]
    pub witness_logs: Vec<String>,
    /// This node's cosigner name as a witness (default
    /// `phivault/<node>/witness`).
    pub witness_name: Option<String>,
    /// CA bundle for the witness URLs (default: the built-in CA).
    pub witness_ca: Option<PathBuf>,
    /// Client certificate for the witness URLs.
    pub witness_cert: Option<PathBuf>,
    /// Client key for the witness URLs.
    pub witness_key: Option<PathBuf>,
    /// How long a principal's break-glass window lasts (default "1h", at
    /// most "4h").
    pub break_glass_window: Option<String>,
    /// Keep serving ePHI when the trail can't be written (default false:
    /// fail closed with 503). A documented risk decision: needs
    /// `insecure_fail_open_reason`.
    #[serde(default)]
    pub insecure_fail_open: bool,
    /// Why the deployment accepts unaudited ePHI access (shown at start
    /// and in the evidence report).
    pub insecure_fail_open_reason: Option<String>,
    /// Under load, at most how long the writer gathers events before one
    /// fsync, microseconds (default 2000; 0 writes at once). The wait
    /// adapts to the load below that bound: a few clients wait little,
    /// many share fewer fsyncs. Trades a little latency for much less CPU
    /// per request.
    pub group_commit_delay_us: Option<u64>,
    /// Size of the group-commit journal, bytes (default 8 MiB, written
    /// once as zeros at start; docs/FORMAT.md §12.4). Each batch is made
    /// durable there, overwriting in place, instead of by an `fdatasync`
    /// of the growing segment. 0: no journal, sync the segment at every
    /// group commit (as durable, more CPU and latency per commit).
    pub journal_bytes: Option<u64>,
    /// Record nothing at all. Only for measuring the trail's cost
    /// (BENCHMARKS.md); never with real PHI. Warned about at every start.
    #[serde(default)]
    pub insecure_disable: bool,
}

/// An HTTPS witness, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct HttpsWitness {
    /// The URL as given.
    pub url: String,
    /// `host:port`.
    pub addr: String,
    /// The path (with query).
    pub path: String,
    /// CA bundle.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client key.
    pub key: PathBuf,
    /// Cosigner keys a tlog witness's answer must verify under (none:
    /// kept unverified).
    pub cosigners: Vec<String>,
}

/// The audit trail's settings, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct AuditSettings {
    /// Folder.
    pub dir: PathBuf,
    /// Node name.
    pub node: String,
    /// Checkpoint origin.
    pub origin: String,
    /// Checkpoint every N entries.
    pub checkpoint_every: u64,
    /// Checkpoint at least this often.
    pub checkpoint_interval: Duration,
    /// Segment size.
    pub segment_bytes: u64,
    /// Retention of sealed segments.
    pub retention: Duration,
    /// Witness folders.
    pub witness_dirs: Vec<PathBuf>,
    /// HTTPS witnesses.
    pub witness_urls: Vec<HttpsWitness>,
    /// The logs this node witnesses: (origin, verifier key).
    pub witness_logs: Vec<(String, String)>,
    /// This node's cosigner name as a witness.
    pub witness_name: String,
    /// Where this node keeps what it witnessed (`<data dir>/witness`):
    /// the newest checkpoint per log, refused ones, and `witness.pub`.
    pub witness_state: PathBuf,
    /// Break-glass window.
    pub break_glass_window: Duration,
    /// Fail open (insecure).
    pub insecure_fail_open: bool,
    /// The documented reason for failing open.
    pub insecure_fail_open_reason: Option<String>,
    /// Record nothing (benchmarks only).
    pub insecure_disable: bool,
    /// Group commit delay under load.
    pub group_commit_delay: Duration,
    /// Group-commit journal size (0: none).
    pub journal_bytes: u64,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

impl AuditSettings {
    /// Resolves `[audit]` over the defaults for `data_dir`.
    pub fn resolve(data_dir: &Path, a: &AuditFile) -> Result<Self, String> {
        let node = a.node.clone().unwrap_or_else(host_name);
        if node.is_empty() || node.len() > 64 || node.chars().any(|c| c.is_whitespace()) {
            return Err("audit.node must be 1-64 characters without spaces".into());
        }
        let origin = a
            .origin
            .clone()
            .unwrap_or_else(|| format!("phivault/{node}/audit"));
        if origin.is_empty() || origin.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "audit.origin must be one word without spaces (e.g. phivault/node1/audit)".into(),
            );
        }
        let dur = |f: &str, v: &Option<String>, def: Duration| match v {
            Some(v) => duration(f, v),
            None => Ok(def),
        };
        let checkpoint_every = a.checkpoint_every.unwrap_or(10_000);
        if !(1..=10_000_000).contains(&checkpoint_every) {
            return Err("audit.checkpoint_every must be 1-10000000".into());
        }
        let checkpoint_interval = dur(
            "audit.checkpoint_interval",
            &a.checkpoint_interval,
            Duration::from_secs(1),
        )?;
        if checkpoint_interval.is_zero() || checkpoint_interval > Duration::from_secs(3600) {
            return Err("audit.checkpoint_interval must be 1s-1h".into());
        }
        let segment_bytes = a.segment_bytes.unwrap_or(64 << 20);
        if !(64 << 10..=1 << 30).contains(&segment_bytes) {
            return Err("audit.segment_bytes must be 64 KiB-1 GiB".into());
        }
        let retention = dur(
            "audit.retention",
            &a.retention,
            phivault_audit::log::SIX_YEARS,
        )?;
        if retention < phivault_audit::log::SIX_YEARS {
            return Err(
                "audit.retention must be at least 2196d: HIPAA keeps documentation six years (45 CFR 164.316(b)(2)(i))"
                    .into(),
            );
        }
        let break_glass_window = dur(
            "audit.break_glass_window",
            &a.break_glass_window,
            Duration::from_secs(3600),
        )?;
        if break_glass_window.is_zero() || break_glass_window > Duration::from_secs(4 * 3600) {
            return Err("audit.break_glass_window must be 1s-4h".into());
        }
        if a.insecure_fail_open
            && a.insecure_fail_open_reason
                .as_deref()
                .is_none_or(|r| r.trim().len() < 10)
        {
            return Err(
                "audit.insecure_fail_open needs audit.insecure_fail_open_reason: the documented risk decision (45 CFR 164.306(d)(3)) for serving ePHI while the trail can't be written"
                    .into(),
            );
        }
        if a.group_commit_delay_us.is_some_and(|d| d > 100_000) {
            return Err("audit.group_commit_delay_us must be at most 100000 (100 ms)".into());
        }
        if a.journal_bytes
            .is_some_and(|n| n != 0 && !(64 << 10..=1 << 30).contains(&n))
        {
            return Err(
                "audit.journal_bytes must be 0 (no journal) or from 65536 (64 KiB) to 1073741824 (1 GiB)"
                    .into(),
            );
        }
        let ca_default = data_dir.join("ca").join("ca.pem");
        for k in &a.witness_cosigners {
            let v = phivault_core::audit::note::NoteVerifier::parse(k.trim())
                .map_err(|e| format!("audit.witness_cosigners: '{k}': {e}"))?;
            if !v.is_cosigner() {
                return Err(format!(
                    "audit.witness_cosigners: '{k}' is not a cosignature/v1 key (type 0x04); use the witness's witness/witness.pub"
                ));
            }
        }
        let mut witness_urls = Vec::new();
        for u in &a.witness_urls {
            let rest = u.strip_prefix("https://").ok_or_else(|| {
                format!(
                    "audit.witness_urls: '{u}' must be an https:// URL (checkpoints go over mTLS)"
                )
            })?;
            let (addr, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let addr = if addr
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                addr.to_owned()
            } else {
                format!("{addr}:443")
            };
            let (Some(cert), Some(key)) = (&a.witness_cert, &a.witness_key) else {
                return Err(
                    "audit.witness_urls needs audit.witness_cert and audit.witness_key (mTLS)"
                        .into(),
                );
            };
            witness_urls.push(HttpsWitness {
                url: u.clone(),
                addr,
                path: path.to_owned(),
                ca: a.witness_ca.clone().unwrap_or_else(|| ca_default.clone()),
                cert: cert.clone(),
                key: key.clone(),
                cosigners: a
                    .witness_cosigners
                    .iter()
                    .map(|k| k.trim().to_owned())
                    .collect(),
            });
        }
        let mut witness_logs = Vec::new();
        for l in &a.witness_logs {
            let bad = || {
                format!(
                    "audit.witness_logs: '{l}' must be a log's origin, a space, and its verifier key (the line in that node's audit/log.pub)"
                )
            };
            let (o, k) = l.trim().split_once(' ').ok_or_else(bad)?;
            let v = phivault_core::audit::note::NoteVerifier::parse(k.trim())
                .map_err(|e| format!("{}: {e}", bad()))?;
            if v.is_cosigner() {
                return Err(format!(
                    "audit.witness_logs: '{l}' names a witness's cosigner key (type 0x04), not a log's: use the log's `phivault audit pubkey`"
                ));
            }
            // Two origins that share a state file would share one history.
            let slug = phivault_audit::witness::path(Path::new(""), o);
            if let Some((other, _)) = witness_logs.iter().find(|(p, _): &&(String, String)| {
                p != o && phivault_audit::witness::path(Path::new(""), p) == slug
            }) {
                return Err(format!(
                    "audit.witness_logs: origins '{other}' and '{o}' map to the same state file {}; a witness can't follow both",
                    slug.display()
                ));
            }
            witness_logs.push((o.to_owned(), k.trim().to_owned()));
        }
        let witness_name = a
            .witness_name
            .clone()
            .unwrap_or_else(|| format!("phivault/{node}/witness"));
        if witness_name.is_empty()
            || witness_name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '+')
        {
            return Err("audit.witness_name must be one word without spaces or '+'".into());
        }
        Ok(Self {
            dir: a.dir.clone().unwrap_or_else(|| data_dir.join("audit")),
            witness_logs,
            witness_name,
            witness_state: data_dir.join("witness"),
            node,
            origin,
            checkpoint_every,
            checkpoint_interval,
            segment_bytes,
            retention,
            witness_dirs: a.witness_dirs.clone(),
            witness_urls,
            break_glass_window,
            insecure_fail_open: a.insecure_fail_open,
            insecure_fail_open_reason: a.insecure_fail_open_reason.clone(),
            insecure_disable: a.insecure_disable,
            group_commit_delay: a.group_commit_delay_us.map_or(
                phivault_audit::log::DEFAULT_GROUP_COMMIT_DELAY,
                Duration::from_micros,
            ),
            journal_bytes: a
                .journal_bytes
                .unwrap_or(phivault_audit::log::DEFAULT_JOURNAL_BYTES),
        })
    }
}

/// `audit.witness_logs` as the witness checks them: one entry per origin
/// with every key configured for it (a log rotating its key is listed
/// twice during the change).
pub fn trusted_logs(
    entries: &[(String, String)],
) -> Vec<phivault_core::audit::witness::TrustedLog> {
    let mut out: Vec<phivault_core::audit::witness::TrustedLog> = Vec::new();
    for (origin, k) in entries {
        // Checked when the settings were resolved.
        let Ok(v) = phivault_core::audit::note::NoteVerifier::parse(k) else {
            continue;
        };
        match out.iter_mut().find(|l| &l.origin == origin) {
            Some(l) => l.keys.push(v),
            None => out.push(phivault_core::audit::witness::TrustedLog {
                origin: origin.clone(),
                keys: vec![v],
            }),
        }
    }
    out
}

/// Limits and timeouts.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Header read timeout.
    pub header_timeout: Duration,
    /// Body read timeout.
    pub read_timeout: Duration,
    /// TLS handshake timeout.
    pub handshake_timeout: Duration,
    /// Longest a connection lives.
    pub max_connection_age: Duration,
    /// Graceful shutdown wait.
    pub shutdown_grace: Duration,
    /// Most open connections.
    pub max_connections: usize,
    /// Most open connections from one address.
    pub max_connections_per_ip: usize,
    /// Connection worker threads (`phivault serve`; 0: one per CPU).
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_ip: 512,
            workers: 0,
        }
    }
}

/// Token settings.
#[derive(Debug, Clone, Serialize)]
pub struct AuthSettings {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// Signing key rotation.
    pub signing_key_rotation: Duration,
    /// ES256 or PS256.
    pub token_algorithm: String,
    /// External issuers.
    pub external: Vec<ExternalIssuer>,
    /// Extra scopes by principal.
    pub principals: BTreeMap<String, Vec<String>>,
    /// Whether the certificates' scopes extension counts.
    pub trust_certificate_scopes: bool,
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSettings {
    /// Data dir (keystore, CA).
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// TLS.
    pub tls: TlsSettings,
    /// Limits.
    pub limits: Limits,
    /// TLS file poll interval.
    pub reload_poll: Duration,
    /// Tokens.
    pub auth: AuthSettings,
    /// The records service.
    pub records: crate::records::RecordsSettings,
    /// The audit trail.
    pub audit: AuditSettings,
    /// Where records live.
    pub storage: StorageSettings,
    /// The threads connections are pinned to (set by
    /// [`crate::server::run_blocking`], not configured: see
    /// `limits.workers`); without them connections run on the caller's
    /// runtime.
    #[serde(skip)]
    pub conn_workers: Option<std::sync::Arc<crate::workers::ConnWorkers>>,
}

/// Parses `"10s"`-style durations (also bare seconds).
pub fn duration(field: &str, s: &str) -> Result<Duration, String> {
    crate::transit::parse_duration(s)
        .map(Duration::from_secs)
        .map_err(|_| format!("{field}: bad duration '{s}' (e.g. 10s, 15m, 24h)"))
}

/// Where `serve --dev` and `ca issue` put the server's TLS files.
pub fn default_tls_paths(data_dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let tls = data_dir.join("tls");
    (
        tls.join("server.pem"),
        tls.join("server.key"),
        data_dir.join("ca").join("ca.pem"),
        data_dir.join("ca").join("crl.pem"),
    )
}

impl ServerSettings {
    /// Resolves file sections over the defaults for `data_dir`. Flags and
    /// environment are applied by the caller by filling the `*File`
    /// structs before this call.
    pub fn resolve(
        data_dir: &Path,
        s: &ServerFile,
        t: &TlsFile,
        a: &AuthFile,
    ) -> Result<Self, String> {
        let (cert, key, ca, crl) = default_tls_paths(data_dir);
        let listen = s.listen.as_deref().unwrap_or("127.0.0.1:8200");
        let listen: SocketAddr = listen.parse().map_err(|_| {
            format!("server.listen: '{listen}' is not an address like 127.0.0.1:8200")
        })?;
        let d = Limits::default();
        let dur = |f: &str, v: &Option<String>, def: Duration| match v {
            Some(v) => duration(f, v),
            None => Ok(def),
        };
        let limits = Limits {
            max_body_bytes: s.max_body_bytes.unwrap_or(d.max_body_bytes),
            max_connections: s.max_connections.unwrap_or(d.max_connections),
            max_connections_per_ip: s.max_connections_per_ip.unwrap_or(d.max_connections_per_ip),
            workers: s.workers.unwrap_or(d.workers),
            header_timeout: dur("server.header_timeout", &s.header_timeout, d.header_timeout)?,
            read_timeout: dur("server.read_timeout", &s.read_timeout, d.read_timeout)?,
            handshake_timeout: dur(
                "server.handshake_timeout",
                &s.handshake_timeout,
                d.handshake_timeout,
            )?,
            max_connection_age: dur(
                "server.max_connection_age",
                &s.max_connection_age,
                d.max_connection_age,
            )?,
            shutdown_grace: dur("server.shutdown_grace", &s.shutdown_grace, d.shutdown_grace)?,
        };
        let profile = match &t.profile {
            Some(p) => Profile::parse(p).map_err(|e| e.to_string())?,
            None => Profile::Nist,
        };
        let crl = match &t.crl {
            Some(v) => v.clone(),
            // The built-in CA always has its CRL; a missing crl.pem is an
            // error at load, never "no revocation".
            None if t.client_ca.is_none() => vec![crl],
            None => vec![],
        };
        let tls = TlsSettings {
            profile,
            cert: t.cert.clone().unwrap_or(cert),
            key: t.key.clone().unwrap_or(key),
            client_ca: t.client_ca.clone().unwrap_or(ca),
            crl,
            insecure_allow_x25519: t.insecure_allow_x25519,
            insecure_allow_long_validity: t.insecure_allow_long_validity,
            insecure_allow_unknown_revocation: t.insecure_allow_unknown_revocation,
            require_client_cert: t.require_client_cert,
        };
        let auth = AuthSettings {
            issuer: a.issuer.clone().unwrap_or_else(|| "phivault".into()),
            audience: a.audience.clone().unwrap_or_else(|| "phivault".into()),
            signing_key_rotation: dur(
                "auth.signing_key_rotation",
                &a.signing_key_rotation,
                Duration::from_secs(86_400),
            )?,
            token_algorithm: a.token_algorithm.clone().unwrap_or_else(|| "ES256".into()),
            external: a.external.clone(),
            principals: a.principals.clone(),
            trust_certificate_scopes: a.trust_certificate_scopes.unwrap_or(t.client_ca.is_none()),
        };
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            listen,
            tls,
            limits,
            reload_poll: dur("server.reload_poll", &s.reload_poll, Duration::from_secs(2))?,
            auth,
            records: crate::records::RecordsSettings::default(),
            audit: AuditSettings::resolve(data_dir, &AuditFile::default())?,
            storage: StorageSettings::resolve(&StorageFile::default(), None)?,
            conn_workers: None,
        })
    }

    /// Where the keystore document lives.
    pub fn keystore_location(&self) -> phivault_keystore::Location {
        self.storage
            .keystore
            .clone()
            .unwrap_or_else(|| phivault_keystore::Location::dir(&self.data_dir))
    }

    /// Applies a `[records]` section over the defaults.
    pub fn apply_records(&mut self, r: &RecordsFile) -> Result<(), String> {
        let d = crate::records::RecordsSettings::default();
        let key_epoch = match r.key_epoch.as_deref() {
            None => d.key_epoch,
            Some("off") => None,
            Some(v) => Some(duration("records.key_epoch", v)?),
        };
        self.records = crate::records::RecordsSettings {
            max_document_bytes: r.max_document_bytes.unwrap_or(d.max_document_bytes),
            max_bulk: r.max_bulk.unwrap_or(d.max_bulk),
            job_batch: r.job_batch.unwrap_or(d.job_batch),
            job_pause: r
                .job_pause_ms
                .map(Duration::from_millis)
                .unwrap_or(d.job_pause),
            key_epoch,
            key_cache_ttl: match &r.key_cache_ttl {
                Some(v) => duration("records.key_cache_ttl", v)?,
                None => d.key_cache_ttl,
            },
        };
        let rs = &self.records;
        if !(1024..=16 << 20).contains(&rs.max_document_bytes) {
            return Err("records.max_document_bytes must be between 1 KiB and 16 MiB".into());
        }
        if !(1..=10_000).contains(&rs.max_bulk) || !(1..=10_000).contains(&rs.job_batch) {
            return Err("records.max_bulk and records.job_batch must be 1-10000".into());
        }
        if rs.key_cache_ttl > Duration::from_secs(300) {
            return Err("records.key_cache_ttl must be at most 5m: a shredded subject's cached key must not outlive it for long on other nodes".into());
        }
        if rs.key_epoch.is_some_and(|e| e < Duration::from_secs(60)) {
            return Err("records.key_epoch must be at least 1m (or \"off\")".into());
        }
        Ok(())
    }

    /// Checks everything that can be checked without binding the port:
    /// limits, scopes, TLS files and policy. Returns notes for the operator.
    pub fn validate(&self) -> Result<Vec<String>, String> {
        let mut notes = Vec::new();
        if self.limits.max_body_bytes < 1024 {
            return Err("server.max_body_bytes must be at least 1024".into());
        }
        for (t, name) in [
            (self.limits.header_timeout, "header_timeout"),
            (self.limits.read_timeout, "read_timeout"),
            (self.limits.handshake_timeout, "handshake_timeout"),
        ] {
            if t.is_zero() || t > Duration::from_secs(300) {
                return Err(format!(
                    "server.{name} must be between 1s and 300s (slowloris protection)"
                ));
            }
        }
        if self.limits.max_connections == 0 || self.limits.max_connections_per_ip == 0 {
            return Err(
                "server.max_connections and max_connections_per_ip must be at least 1".into(),
            );
        }
        if self.limits.workers > 1024 {
            return Err(format!(
                "server.workers is {}: at most 1024 (0 = one per CPU, the default; one thread per core serves connections best)",
                self.limits.workers
            ));
        }
        if self.reload_poll < Duration::from_secs(1) || self.reload_poll > Duration::from_secs(3600)
        {
            return Err("server.reload_poll must be between 1s and 1h".into());
        }
        if self.limits.max_connection_age < Duration::from_secs(1) {
            return Err("server.max_connection_age must be at least 1s".into());
        }
        if self.auth.signing_key_rotation < Duration::from_secs(900) {
            return Err(
                "auth.signing_key_rotation must be at least 15m (the longest token lifetime)"
                    .into(),
            );
        }
        crate::auth::token_algorithm(&self.auth.token_algorithm).map_err(|e| e.to_string())?;
        for (p, scopes) in &self.auth.principals {
            Scopes::parse(scopes.iter().map(String::as_str))
                .map_err(|e| format!("auth.principals.\"{p}\": {e}"))?;
        }
        let m = crate::tls::load(&self.tls).map_err(|e| e.to_string())?;
        crate::tls::server_config(
            &self.tls,
            &m,
            crate::tls::ticketer().map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        if let Some(nu) = m.crl_next_update {
            let left = nu - time::OffsetDateTime::now_utc().unix_timestamp();
            if left <= 0 {
                return Err("the CRL has expired: every client handshake would fail; sign a new one with `phivault ca crl`".into());
            }
            if left < 86_400 {
                notes.push(format!(
                    "the CRL expires in {} hours; run `phivault ca crl`",
                    left / 3600
                ));
            }
        }
        if m.crls.is_empty() {
            notes.push(
                "no CRL configured: revoked client certificates cannot be refused (tls.crl)"
                    .to_string(),
            );
        }
        if self.tls.insecure_allow_x25519 {
            notes.push("INSECURE: X25519 is offered; it is not NIST-approved".into());
        }
        if self.tls.insecure_allow_long_validity {
            notes.push("INSECURE: server certificates longer than 398 days are accepted".into());
        }
        if self.tls.insecure_allow_unknown_revocation {
            notes.push(
                "INSECURE: client certificates with unknown revocation status are accepted".into(),
            );
        }
        for e in &self.auth.external {
            if e.insecure_allow_unbound_tokens {
                notes.push(format!(
                    "INSECURE: tokens from {} need no certificate binding",
                    e.issuer
                ));
            }
        }
        let days = (m.info.not_after - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
        notes.push(format!(
            "TLS profile {}; server certificate {} expires in {days} days",
            self.tls.profile.name(),
            m.info.key
        ));
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_logs_refuse_cosigner_keys_and_colliding_origins() {
        use phivault_core::audit::note::NoteSigner;
        use phivault_core::crypto::{SignatureAlgorithm, SigningKey};
        let key = || SigningKey::generate(SignatureAlgorithm::Ed25519).unwrap();
        let log = NoteSigner::new("phivault-audit", key())
            .unwrap()
            .verifier_key();
        let log2 = NoteSigner::new("phivault-audit", key())
            .unwrap()
            .verifier_key();
        let cos = NoteSigner::cosigner("w.example/w1", key())
            .unwrap()
            .verifier_key();
        let resolve = |logs: Vec<String>, cosigners: Vec<String>| {
            AuditSettings::resolve(
                Path::new("/d"),
                &AuditFile {
                    node: Some("n".into()),
                    witness_logs: logs,
                    witness_cosigners: cosigners,
                    ..Default::default()
                },
            )
        };
        // Two keys for one origin (a rotation) are grouped.
        let ok = resolve(vec![format!("a/b {log}"), format!("a/b {log2}")], vec![]).unwrap();
        let t = trusted_logs(&ok.witness_logs);
        assert_eq!((t.len(), t[0].keys.len()), (1, 2));
        let e = resolve(vec![format!("a/b {cos}")], vec![]).unwrap_err();
        assert!(e.contains("cosigner key"), "{e}");
        let e = resolve(vec![format!("a/b {log}"), format!("a_b {log2}")], vec![]).unwrap_err();
        assert!(e.contains("same state file"), "{e}");
        assert!(
            resolve(vec!["a/b".into()], vec![])
                .unwrap_err()
                .contains("verifier key")
        );
        // Pushers take cosigner keys only.
        assert!(resolve(vec![], vec![cos]).is_ok());
        let e = resolve(vec![], vec![log]).unwrap_err();
        assert!(e.contains("not a cosignature/v1 key"), "{e}");
    }

    fn with_workers(n: usize) -> Result<Vec<String>, String> {
        let dir = tempfile::tempdir().unwrap();
        let s = ServerFile {
            workers: Some(n),
            ..Default::default()
        };
        ServerSettings::resolve(dir.path(), &s, &TlsFile::default(), &AuthFile::default())
            .unwrap()
            .validate()
    }

    #[test]
    fn server_workers_is_bounded_with_a_clear_error() {
        let e = with_workers(1025).unwrap_err();
        assert!(e.contains("server.workers is 1025: at most 1024"), "{e}");
        // At the bound (and at 0, one per CPU) the check passes; whatever
        // validate() says next (the TLS files of an empty folder) is not
        // about workers.
        for n in [0, 1, 1024] {
            if let Err(e) = with_workers(n) {
                assert!(!e.contains("server.workers"), "{n}: {e}");
            }
        }
    }
}
