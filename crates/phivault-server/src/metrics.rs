//! Prometheus metrics, served at `/v1/sys/metrics`.
//!
//! Label values are `&'static str` from fixed tables (route templates,
//! failure reasons), so a hostile client cannot grow the label space.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Route, method and status of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route template.
    pub route: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Status code.
    pub status: u16,
}

/// A route and a status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// Route template.
    pub route: &'static str,
    /// Status code.
    pub status: u16,
}

/// A reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: &'static str,
}

/// TLS parameters of a handshake.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabels {
    /// e.g. TLSv1_3.
    pub version: &'static str,
    /// e.g. TLS13_AES_256_GCM_SHA384.
    pub suite: &'static str,
}

/// A key.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabel {
    /// Transit key name.
    pub key: String,
}

/// A certificate.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertLabel {
    /// Which: server, client_ca, crl.
    pub cert: &'static str,
}

/// A collection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CollectionLabel {
    /// Collection name.
    pub collection: String,
}

/// A records operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordOpLabel {
    /// Collection name.
    pub collection: String,
    /// create, read, search, update, delete, shred.
    pub op: &'static str,
}

/// A result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// ok or error.
    pub result: &'static str,
}

type HistFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route and status.
    pub latency: HistFamily,
    /// Failed handshakes by reason.
    pub handshake_failures: Family<ReasonLabel, Counter>,
    /// Completed handshakes by version and suite.
    pub handshakes: Family<TlsLabels, Counter>,
    /// Failed authentications by reason.
    pub auth_failures: Family<ReasonLabel, Counter>,
    /// Open connections.
    pub connections: Gauge,
    /// 1 when sealed.
    pub sealed: Gauge,
    /// Config/TLS reloads by result.
    pub reloads: Family<ResultLabel, Counter>,
    /// Age of each transit key's primary version, seconds (set at scrape).
    pub key_age: Family<KeyLabel, Gauge>,
    /// Seconds until each certificate or CRL expires (set at scrape).
    pub cert_expiry: Family<CertLabel, Gauge>,
    /// Items processed by batch requests.
    pub batch_items: Counter,
    /// Records integrity failures (tampered or moved ciphertext) by collection.
    pub record_integrity_failures: Family<CollectionLabel, Counter>,
    /// Records processed by collection and operation.
    pub records: Family<RecordOpLabel, Counter>,
    /// Requests refused with 503 because the audit trail can't be written.
    pub audit_refusals: Counter,
    /// Audit entries that could not be written.
    pub audit_write_failures: Counter,
    /// Break-glass accesses.
    pub break_glass: Counter,
    /// Entries in the audit trail (set at scrape).
    pub audit_entries: Gauge,
    /// Checkpoints signed since start (set at scrape).
    pub audit_checkpoints: Gauge,
    /// Group commits (each one durable write: the journal's, or a segment
    /// fdatasync) since start (set at scrape).
    pub audit_group_commits: Gauge,
    /// 1 while the audit trail can't be written (set at scrape).
    pub audit_failing: Gauge,
    /// Checkpoints a witness (folder or HTTPS) did not take (set at scrape).
    pub audit_witness_failures: Gauge,
    /// Checkpoints other logs sent this node as their tlog witness, by
    /// outcome (accepted, or why refused: a `fork` is the one to alert on).
    pub witness_checkpoints: Family<ReasonLabel, Counter>,
    /// 1 when the trail signs no checkpoints: a start found signed entries
    /// lost or changed (`audit/signing-blocked`; set at scrape).
    pub audit_signing_blocked: Gauge,
    /// Unix time the server certificate expires (updated on reload).
    pub server_cert_not_after: AtomicU64,
    /// Unix time the CRL needs replacing (0 = no CRL).
    pub crl_next_update: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("phivault");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistFamily = Family::new_with_constructor(latency_histogram);
        let handshake_failures = Family::<ReasonLabel, Counter>::default();
        let handshakes = Family::<TlsLabels, Counter>::default();
        let auth_failures = Family::<ReasonLabel, Counter>::default();
        let connections = Gauge::default();
        let sealed = Gauge::default();
        let reloads = Family::<ResultLabel, Counter>::default();
        let key_age = Family::<KeyLabel, Gauge>::default();
        let cert_expiry = Family::<CertLabel, Gauge>::default();
        let batch_items = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and status",
            latency.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "Failed TLS handshakes by reason",
            handshake_failures.clone(),
        );
        registry.register(
            "tls_handshakes",
            "Completed TLS handshakes by version and suite",
            handshakes.clone(),
        );
        registry.register(
            "auth_failures",
            "Failed authentications by reason",
            auth_failures.clone(),
        );
        registry.register(
            "open_connections",
            "Open TLS connections",
            connections.clone(),
        );
        registry.register("sealed", "1 while the vault is sealed", sealed.clone());
        registry.register("reloads", "TLS/config reloads by result", reloads.clone());
        registry.register(
            "key_age_seconds",
            "Age of each transit key's primary version",
            key_age.clone(),
        );
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until the certificate or CRL expires",
            cert_expiry.clone(),
        );
        registry.register(
            "batch_items",
            "Items processed in batch requests",
            batch_items.clone(),
        );
        let record_integrity_failures = Family::<CollectionLabel, Counter>::default();
        let records = Family::<RecordOpLabel, Counter>::default();
        registry.register(
            "record_integrity_failures",
            "Record reads refused because a stored ciphertext was modified or moved",
            record_integrity_failures.clone(),
        );
        registry.register(
            "records",
            "Records processed by collection and operation",
            records.clone(),
        );
        let audit_refusals = Counter::default();
        let audit_write_failures = Counter::default();
        let break_glass = Counter::default();
        let audit_entries = Gauge::default();
        let audit_checkpoints = Gauge::default();
        let audit_group_commits = Gauge::default();
        let audit_failing = Gauge::default();
        let audit_witness_failures = Gauge::default();
        let audit_signing_blocked = Gauge::default();
        let witness_checkpoints = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "witness_checkpoints",
            "Checkpoints other logs sent this node as their tlog witness, by outcome (reason): accepted, stale (409, the client learns the size), fork (a signed checkpoint that does not extend the one held), bad_signature, unknown_log, malformed, error",
            witness_checkpoints.clone(),
        );
        registry.register(
            "audit_refusals",
            "Requests refused (503) because the audit trail could not be written durably",
            audit_refusals.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit entries that could not be written",
            audit_write_failures.clone(),
        );
        registry.register(
            "break_glass_accesses",
            "Emergency (break-glass) reads",
            break_glass.clone(),
        );
        registry.register(
            "audit_entries",
            "Entries in the audit trail",
            audit_entries.clone(),
        );
        registry.register(
            "audit_checkpoints_signed",
            "Audit checkpoints signed since start",
            audit_checkpoints.clone(),
        );
        registry.register(
            "audit_group_commits",
            "Audit group commits (one durable write each) since start; entries appended ÷ this is events per durable write",
            audit_group_commits.clone(),
        );
        registry.register(
            "audit_failing",
            "1 while the audit trail can't be written",
            audit_failing.clone(),
        );
        registry.register(
            "audit_witness_failures",
            "Checkpoints a witness (folder or HTTPS) did not take since start",
            audit_witness_failures.clone(),
        );
        registry.register(
            "audit_signing_blocked",
            "1 when the audit trail signs no checkpoints: a start found signed entries lost or changed (see audit/signing-blocked; start a new trail)",
            audit_signing_blocked.clone(),
        );
        for r in crate::tls::FAILURE_REASONS {
            let _ = handshake_failures.get_or_create(&ReasonLabel { reason: r });
        }
        Self {
            registry,
            requests,
            latency,
            handshake_failures,
            handshakes,
            auth_failures,
            connections,
            sealed,
            reloads,
            key_age,
            cert_expiry,
            batch_items,
            record_integrity_failures,
            records,
            audit_refusals,
            audit_write_failures,
            break_glass,
            audit_entries,
            audit_checkpoints,
            audit_group_commits,
            audit_failing,
            audit_witness_failures,
            witness_checkpoints,
            audit_signing_blocked,
            server_cert_not_after: AtomicU64::new(0),
            crl_next_update: AtomicU64::new(0),
        }
    }

    /// Records what a (re)load found.
    pub fn tls_loaded(&self, m: &crate::tls::Material) {
        use std::sync::atomic::Ordering::Relaxed;
        self.server_cert_not_after
            .store(m.info.not_after.max(0) as u64, Relaxed);
        self.crl_next_update
            .store(m.crl_next_update.unwrap_or(0).max(0) as u64, Relaxed);
    }

    /// Counts a failed handshake.
    pub fn handshake_failed(&self, reason: &'static str) {
        self.handshake_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts a failed authentication.
    pub fn auth_failed(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Records one request.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, secs: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel { route, status })
            .observe(secs);
    }

    /// Counts records processed.
    pub fn records_done(&self, collection: &str, op: &'static str, n: u64) {
        // The label owns its collection name; `get_or_create` wants it built.
        let label = RecordOpLabel {
            collection: collection.to_owned(),
            op,
        };
        self.records.get_or_create(&label).inc_by(n);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry)
            .expect("writes to a String");
        s
    }
}
