//! The TLS accept loop: plaintext detection, handshake with the current
//! (hot-reloadable) rustls config, failure accounting, HTTP/1.1 and HTTP/2
//! over the connection, and graceful shutdown.

use crate::TlsError;
use crate::api::{self, AppState, ConnInfo, Shared};
use crate::auth::{Scopes, TokenAuthority};
use crate::config::ServerSettings;
use crate::metrics::{Metrics, ResultLabel, TlsLabels};
use crate::tls::{self, TlsSettings};
use arc_swap::{ArcSwap, ArcSwapOption};
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use phivault_keystore::Keystore;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// A fatal alert (unexpected_message), sent to a client that spoke
/// plaintext on the TLS port.
const ALERT_UNEXPECTED_MESSAGE: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a];

type Stamp = Option<(SystemTime, u64)>;

/// How long a connection without a client certificate may live.
const UNAUTHENTICATED_CONNECTION_AGE: Duration = Duration::from_secs(10);

fn stamp(p: &std::path::Path) -> Stamp {
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

/// The current TLS config, rebuilt when its files change.
pub struct Reloader {
    settings: TlsSettings,
    current: ArcSwap<tls::Built>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    stamps: Mutex<Vec<Stamp>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    fn paths(s: &TlsSettings) -> Vec<std::path::PathBuf> {
        let mut v = vec![s.cert.clone(), s.key.clone(), s.client_ca.clone()];
        v.extend(s.crl.iter().cloned());
        v
    }

    fn stamps(&self) -> Vec<Stamp> {
        Self::paths(&self.settings)
            .iter()
            .map(|p| stamp(p))
            .collect()
    }

    /// Loads the files and builds the first config; fails on any problem.
    pub fn new(settings: &TlsSettings, metrics: &Metrics) -> Result<Self, TlsError> {
        let ticketer = tls::ticketer()?;
        let m = tls::load(settings)?;
        let built = tls::server_config(settings, &m, ticketer.clone())?;
        let cfg = &built.config;
        #[cfg(feature = "fips")]
        if !cfg.fips() {
            return Err(TlsError::Policy(
                "this is a FIPS build, but the TLS configuration is not FIPS-compliant".into(),
            ));
        }
        metrics.tls_loaded(&m);
        tracing::info!(
            fips = cfg.fips(),
            profile = settings.profile.name(),
            "TLS configuration loaded"
        );
        let r = Self {
            settings: settings.clone(),
            current: ArcSwap::from_pointee(built),
            ticketer,
            stamps: Mutex::new(Vec::new()),
        };
        *r.stamps.lock().expect("lock") = r.stamps();
        Ok(r)
    }

    /// The config (and verifier) new connections use.
    pub fn current(&self) -> Arc<tls::Built> {
        self.current.load_full()
    }

    /// Rebuilds from the files. On failure the old config stays.
    pub fn reload(&self, metrics: &Metrics) -> Result<(), TlsError> {
        let stamps = self.stamps();
        let res = tls::load(&self.settings).and_then(|m| {
            tls::server_config(&self.settings, &m, self.ticketer.clone()).map(|c| (m, c))
        });
        *self.stamps.lock().expect("lock") = stamps;
        match res {
            Ok((m, cfg)) => {
                self.current.store(Arc::new(cfg));
                metrics.tls_loaded(&m);
                metrics
                    .reloads
                    .get_or_create(&ResultLabel { result: "ok" })
                    .inc();
                tracing::info!("TLS configuration reloaded");
                Ok(())
            }
            Err(e) => {
                metrics
                    .reloads
                    .get_or_create(&ResultLabel { result: "error" })
                    .inc();
                tracing::error!(error = %e, "TLS reload failed; still serving the previous configuration");
                Err(e)
            }
        }
    }

    /// Reloads if any file changed since the last load; says how it went.
    pub fn reload_if_changed(&self, metrics: &Metrics) -> Option<Result<(), TlsError>> {
        let changed = *self.stamps.lock().expect("lock") != self.stamps();
        changed.then(|| self.reload(metrics))
    }
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shared state (for tests and the CLI).
    pub state: AppState,
    /// The TLS reloader.
    pub reloader: Arc<Reloader>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts graceful shutdown and waits for it.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (after [`Self::shutdown_handle`] fires).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A handle that starts graceful shutdown.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// This node's audit mirror, shared by its periodic task and the final
/// pass at shutdown.
pub type AuditMirrorSlot = Arc<tokio::sync::Mutex<phivault_store::postgres::AuditMirror>>;

/// Copies this node's audit trail into PostgreSQL every second
/// (`phivault audit pull` reads it back; SECURITY.md §5c).
fn spawn_audit_mirror(m: AuditMirrorSlot, dir: std::path::PathBuf) {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match m.lock().await.sync(&dir).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("the audit trail's copy in PostgreSQL is up to date again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "copying the audit trail into PostgreSQL failed; the local trail is complete, retrying every second");
                }
                Err(_) => {}
            }
        }
    });
}

/// Builds the shared state.
pub async fn state(
    settings: ServerSettings,
    keystore: Option<Keystore>,
) -> Result<AppState, crate::ServeError> {
    use crate::ServeError::Auth;
    let tokens = TokenAuthority::with_algorithm(
        &settings.auth.issuer,
        &settings.auth.audience,
        settings.auth.signing_key_rotation,
        crate::auth::token_algorithm(&settings.auth.token_algorithm).map_err(Auth)?,
    )
    .map_err(Auth)?;
    tokens.set_external(&settings.auth.external).map_err(Auth)?;
    let mut principals = HashMap::new();
    for (p, s) in &settings.auth.principals {
        principals.insert(
            p.clone(),
            Scopes::parse(s.iter().map(String::as_str)).map_err(Auth)?,
        );
    }
    // No audit trail, no server: every request is recorded.
    let audit = crate::audit::Trail::open(
        settings.audit.clone(),
        settings.audit.node.clone(),
        settings.conn_workers.as_deref(),
    )
    .map_err(crate::ServeError::Audit)?;
    if let Some(ks) = &keystore {
        audit.unsealed(ks);
    }
    for w in &settings.audit.witness_urls {
        crate::audit::spawn_https_witness(&audit, w.clone());
    }
    if settings.audit.insecure_disable {
        tracing::warn!(
            "audit.insecure_disable: NOTHING IS AUDITED; for benchmarks only, never with real PHI"
        );
    }
    if settings.audit.insecure_fail_open {
        tracing::warn!(reason = ?settings.audit.insecure_fail_open_reason, "audit.insecure_fail_open: ePHI is served even when the audit trail can't be written (documented risk decision)");
    }
    let metrics = Metrics::new();
    metrics.sealed.set(i64::from(keystore.is_none()));
    let mut audit_mirror = None;
    let store: Option<Arc<dyn phivault_store::RecordStore>> = match &settings.storage.postgres {
        // A node on PostgreSQL has no other place for records: it does not
        // start without its database.
        Some(pg) => {
            let store = phivault_store::postgres::PgStore::connect(pg)
                .await
                .map_err(|e| crate::ServeError::Storage(e.to_string()))?;
            let tls = store.tls().unwrap_or_default();
            tracing::info!(target = %store.target(), tls_version = %tls.version, tls_cipher = %tls.cipher, "records in PostgreSQL");
            // This node's name must be its trail's alone in the database.
            let mirror = phivault_store::postgres::AuditMirror::new(
                store.pool().clone(),
                &settings.audit.node,
            );
            let trail = phivault_audit::log::trail_id(&settings.audit.dir)
                .map_err(|e| crate::ServeError::Storage(e.to_string()))?;
            mirror
                .claim(&trail)
                .await
                .map_err(|e| crate::ServeError::Storage(e.to_string()))?;
            let mirror = Arc::new(tokio::sync::Mutex::new(mirror));
            spawn_audit_mirror(mirror.clone(), settings.audit.dir.clone());
            audit_mirror = Some(mirror);
            Some(Arc::new(store))
        }
        None => match phivault_store::sqlite::SqliteStore::open(&settings.data_dir) {
            Ok(store) => Some(Arc::new(store)),
            Err(e) => {
                tracing::error!(error = %e, dir = %settings.data_dir.display(), "the records store could not be opened; /v1/records is unavailable");
                None
            }
        },
    };
    let records = store.map(|store| {
        Arc::new(crate::records::Records::new(
            store,
            settings.records.clone(),
            metrics.record_integrity_failures.clone(),
        ))
    });
    let audit = Arc::new(audit);
    if let Some(r) = &records {
        let _ = r.audit.set(audit.clone());
    }
    Ok(Arc::new(Shared {
        audit,
        audit_mirror,
        records,
        settings,
        keystore: ArcSwapOption::from(keystore.map(Arc::new)),
        unsealer: Mutex::new(None),
        tokens,
        metrics,
        principals,
    }))
}

fn identity(conn: &rustls::ServerConnection) -> Option<Arc<crate::pki::PeerIdentity>> {
    let certs = conn.peer_certificates()?;
    match crate::pki::peer_identity(certs.first()?) {
        Ok(id) => Some(Arc::new(id)),
        Err(e) => {
            tracing::warn!(error = %e, "verified client certificate has no usable identity");
            None
        }
    }
}

/// Framework rejections (a path segment that is not UTF-8, a bad query)
/// come as text; every error leaves as Vault's `{"errors": [...]}`.
fn vault_error_body(resp: &mut axum::response::Response) {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let protocol = resp
        .extensions()
        .get::<crate::api::ProtocolBody>()
        .is_some();
    if (status.is_client_error() || status.is_server_error()) && !is_json && !protocol {
        let msg = status.canonical_reason().unwrap_or("error").to_lowercase();
        *resp.body_mut() = Body::from(serde_json::json!({ "errors": [msg] }).to_string());
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.headers_mut().remove(header::CONTENT_LENGTH);
    }
}

/// Open connections per client address, so one address can't take every
/// slot of `max_connections`.
#[derive(Clone)]
struct PerIp {
    limit: usize,
    open: Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
}

/// One connection's place in [`PerIp`]; given back on drop.
struct IpSlot {
    ip: std::net::IpAddr,
    open: Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
}

impl PerIp {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Arc::default(),
        }
    }

    fn admit(&self, ip: std::net::IpAddr) -> Option<IpSlot> {
        let mut m = self.open.lock().expect("lock");
        let n = m.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self.open.lock().expect("lock");
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Rewrites Vault's `LIST` verb to `GET ?list=true`.
fn rewrite_list(req: &mut Request<Incoming>) {
    if req.method().as_str() == "LIST" {
        *req.method_mut() = Method::GET;
        if req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "list=true"))
        {
            return;
        }
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let sep = if pq.contains('?') { '&' } else { '?' };
        if let Ok(u) = format!("{pq}{sep}list=true").parse() {
            *req.uri_mut() = u;
        }
    }
}

/// Records a configuration reload in the audit trail.
fn audit_reload(st: &Shared, trigger: &str, r: &Result<(), TlsError>) {
    let mut ev = phivault_audit::Event::new(phivault_audit::Kind::Server, "server.reload")
        .detail(serde_json::json!({ "trigger": trigger, "what": "tls" }));
    if let Err(e) = r {
        ev = ev
            .outcome(phivault_audit::Outcome::Error)
            .severity(phivault_audit::Severity::Warn)
            .reason(e.to_string().chars().take(200).collect::<String>());
    }
    st.audit.emit(ev);
}

/// Counts a failed or refused handshake and records it in the audit trail.
fn handshake_failed(st: &Shared, peer: SocketAddr, reason: &'static str) {
    st.metrics.handshake_failed(reason);
    let mut ev = phivault_audit::Event::new(phivault_audit::Kind::Handshake, "tls.handshake")
        .severity(phivault_audit::Severity::Warn)
        .outcome(phivault_audit::Outcome::Denied)
        .reason(reason);
    ev.peer = Some(peer.to_string());
    st.audit.emit(ev);
}

async fn handle_conn(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    built: Arc<tls::Built>,
    st: AppState,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
    _slots: (tokio::sync::OwnedSemaphorePermit, IpSlot),
) {
    let m = &st.metrics;
    let lim = st.settings.limits.clone();
    let _ = tcp.set_nodelay(true);
    // Look at the first byte: a TLS handshake record starts with 0x16.
    let mut first = [0u8; 11];
    let peeked = match tokio::time::timeout(lim.handshake_timeout, tcp.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => n,
        Ok(_) => return,
        Err(_) => {
            handshake_failed(&st, peer, "timeout");
            tracing::warn!(%peer, reason = "timeout", "TLS handshake failed");
            return;
        }
    };
    // ClientHello.legacy_version (bytes 9-10 of the first record): below
    // 0x0303 means the client's best is TLS 1.1 or older.
    let legacy_client =
        peeked >= 11 && first[5] == 1 && u16::from_be_bytes([first[9], first[10]]) < 0x0303;
    if first[0] != 0x16 {
        let mut tcp = tcp;
        let reason = if first[0].is_ascii_uppercase() {
            "plaintext_http"
        } else {
            "bad_message"
        };
        handshake_failed(&st, peer, reason);
        tracing::warn!(%peer, reason, "TLS handshake failed: not a TLS ClientHello; sent an alert and closed");
        let _ = tcp.write_all(&ALERT_UNEXPECTED_MESSAGE).await;
        let _ = tcp.shutdown().await;
        return;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(built.config.clone());
    let stream = match tokio::time::timeout(lim.handshake_timeout, acceptor.accept(tcp)).await {
        Err(_) => {
            handshake_failed(&st, peer, "timeout");
            tracing::warn!(%peer, reason = "timeout", "TLS handshake failed");
            return;
        }
        Ok(Err(e)) => {
            let reason = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .map(tls::failure_reason)
                .unwrap_or("io");
            let reason = if legacy_client {
                "protocol_version"
            } else {
                reason
            };
            handshake_failed(&st, peer, reason);
            tracing::warn!(%peer, reason, detail = %e, "TLS handshake failed");
            return;
        }
        Ok(Ok(s)) => s,
    };
    let (_, conn) = stream.get_ref();
    // rustls restores a resumed session's client chain from the ticket
    // without verifying it again: check it against the current trust
    // anchors and CRL, or a revoked or expired certificate would live on
    // through resumption.
    if conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
        && let Some(certs) = conn.peer_certificates()
        && let Some((ee, rest)) = certs.split_first()
        && let Err(e) =
            built
                .verifier
                .verify_client_cert(ee, rest, rustls_pki_types::UnixTime::now())
    {
        let reason = tls::failure_reason(&e);
        handshake_failed(&st, peer, reason);
        tracing::warn!(%peer, reason, detail = %e, "resumed TLS session refused: its client certificate no longer verifies");
        return;
    }
    let id = identity(conn);
    let cert_scopes = Arc::new(
        id.as_ref()
            .map(|i| api::cert_scopes(&st, i))
            .unwrap_or_default(),
    );
    let info = ConnInfo {
        peer,
        identity: id,
        cert_scopes,
        tls_version: conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("unknown"),
        suite: conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown"),
        audit: Default::default(),
    };
    m.handshakes
        .get_or_create(&TlsLabels {
            version: info.tls_version,
            suite: info.suite,
        })
        .inc();
    m.connections.inc();
    // Without a client certificate only /v1/sys/health answers: such a
    // connection gets a short life, so it can't hold a slot for long.
    let max_age = if info.identity.is_some() {
        lim.max_connection_age
    } else {
        lim.max_connection_age.min(UNAUTHENTICATED_CONNECTION_AGE)
    };
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        rewrite_list(&mut req);
        req.extensions_mut().insert(info.clone());
        let router = router.clone();
        async move {
            let mut resp = router
                .oneshot(req.map(Body::new))
                .await
                .unwrap_or_else(|e| match e {});
            vault_error_body(&mut resp);
            let h = resp.headers_mut();
            h.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=63072000; includeSubDomains"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(lim.header_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let conn = b.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
                _ = stopped(&mut stop) => {
            // Finish in-flight requests, then close.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(lim.shutdown_grace, conn.as_mut()).await;
        }
                _ = tokio::time::sleep(max_age) => {
            // Old enough: finish, close, and let the client reconnect (and
            // be checked against the current CRL again).
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(lim.shutdown_grace, conn.as_mut()).await;
        }
    }
    m.connections.dec();
}

/// Binds `settings.listen` and starts serving. A `keystore` of `None`
/// starts sealed.
pub async fn start(
    settings: ServerSettings,
    keystore: Option<Keystore>,
) -> Result<Running, crate::ServeError> {
    let st = state(settings.clone(), keystore).await?;
    let reloader =
        Arc::new(Reloader::new(&settings.tls, &st.metrics).map_err(crate::ServeError::Tls)?);
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| crate::ServeError::Bind(settings.listen, e))?;
    start_on(listener, st, reloader).await
}

/// Serves on an already-bound listener.
pub async fn start_on(
    listener: TcpListener,
    st: AppState,
    reloader: Arc<Reloader>,
) -> Result<Running, crate::ServeError> {
    let addr = listener
        .local_addr()
        .map_err(|e| crate::ServeError::Bind(st.settings.listen, e))?;
    let (tx, rx) = watch::channel(false);
    let router = api::router(st.clone());
    st.audit.emit(
        phivault_audit::Event::new(phivault_audit::Kind::Server, "server.start").detail(
            serde_json::json!({
                "listen": addr.to_string(),
                "tls_profile": format!("{:?}", st.settings.tls.profile),
                "fips": phivault_core::crypto::module_info().fips_build,
                "sealed": st.keystore.load().is_none(),
                "audit_fail_open": st.settings.audit.insecure_fail_open,
            }),
        ),
    );
    let grace = st.settings.limits.shutdown_grace;
    let task = {
        let st = st.clone();
        let reloader = reloader.clone();
        tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            let slots = Arc::new(tokio::sync::Semaphore::new(
                st.settings.limits.max_connections,
            ));
            let per_ip = PerIp::new(st.settings.limits.max_connections_per_ip);
            let mut stop = rx.clone();
            let mut poll =
                tokio::time::interval(st.settings.reload_poll.max(Duration::from_secs(1)));
            let mut maint = tokio::time::interval(Duration::from_secs(30));
            let mut jobs = tokio::time::interval(Duration::from_secs(2));
            let mut epoch = tokio::time::interval(Duration::from_secs(600));
            loop {
                tokio::select! {
                                        a = listener.accept() => match a {
                                                Ok((tcp, peer)) => match (slots.clone().try_acquire_owned(), per_ip.admit(peer.ip())) {
                            (Ok(permit), Some(ip_slot)) => {
                                let serve = {
                                    let (built, st, router, rx) = (reloader.current(), st.clone(), router.clone(), rx.clone());
                                    move |tcp| handle_conn(tcp, peer, built, st, router, rx, (permit, ip_slot))
                                };
                                match &st.settings.conn_workers {
                                    Some(w) => w.spawn(&mut conns, tcp, serve),
                                    None => drop(conns.spawn(serve(tcp))),
                                }
                            }
                            (total, _) => {
                                // At a connection limit: refuse at once
                                // rather than queue.
                                let which = if total.is_err() { "server.max_connections" } else { "server.max_connections_per_ip" };
                                handshake_failed(&st, peer, "connection_limit");
                                tracing::warn!(%peer, limit = which, "connection refused: limit reached");
                                drop(tcp);
                            }
                        },
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::error!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    _ = poll.tick() => {
                        if let Some(r) = reloader.reload_if_changed(&st.metrics) {
                            audit_reload(&st, "file_change", &r);
                        }
                    }
                    _ = maint.tick() => maintain(&st),
                    _ = jobs.tick() => {
                        // Background records jobs: new ones, and ones a
                        // crash interrupted (they resume from their cursor).
                        if let (Some(r), Some(ks)) = (st.records.clone(), st.keystore.load_full()) {
                            tokio::spawn(async move { r.run_pending_jobs(&ks).await });
                        }
                        // Key and CA events the CLI left for the trail.
                        let log = st.audit.log().clone();
                        tokio::task::spawn_blocking(move || {
                            if let Err(e) = log.ingest_inbox() {
                                tracing::error!(error = %e, "audit inbox not ingested");
                            }
                        });
                    }
                    _ = epoch.tick() => {
                        if let (Some(r), Some(ks)) = (st.records.clone(), st.keystore.load_full()) {
                            tokio::spawn(async move { r.key_epoch_tick(&ks).await });
                        }
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    _ = stopped(&mut stop) => break,
                }
            }
            drop(listener);
            tracing::info!(
                open = conns.len(),
                "shutting down: no new connections; finishing in-flight requests"
            );
            let drain = async { while conns.join_next().await.is_some() {} };
            if tokio::time::timeout(grace, drain).await.is_err() {
                tracing::warn!("shutdown grace period over; closing remaining connections");
                conns.abort_all();
            }
            st.audit.emit(phivault_audit::Event::new(
                phivault_audit::Kind::Server,
                "server.stop",
            ));
            st.audit.close();
            // The trail's last second (server.stop among it) into the
            // database's copy too, bounded: a database that is away must
            // not hold up the stop.
            if let Some(m) = &st.audit_mirror {
                let pass = async { m.lock().await.sync(&st.settings.audit.dir).await };
                match tokio::time::timeout(Duration::from_secs(5), pass).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "the audit trail's last entries were not copied into PostgreSQL; the local trail holds them")
                    }
                    Err(_) => tracing::warn!(
                        "the audit trail's last entries were not copied into PostgreSQL in 5 s; the local trail holds them"
                    ),
                }
            }
            tracing::info!("server stopped");
        })
    };
    Ok(Running {
        addr,
        state: st,
        reloader,
        shutdown: tx,
        task,
    })
}

/// Periodic work: token key rotation, transit auto-rotation.
pub fn maintain(st: &Shared) {
    if let Err(e) = st.tokens.maintain() {
        tracing::error!(error = %e, "token signing key rotation failed");
    }
    let Some(ks) = st.keystore.load_full() else {
        return;
    };
    let Ok(rings) = ks.list(Some(crate::transit::NAMESPACE)) else {
        return;
    };
    for r in rings {
        let period = i64::try_from(r.auto_rotate_period_secs).unwrap_or(i64::MAX);
        if r.auto_rotate_period_secs > 0 && r.primary_age_secs >= period {
            match phivault_core::keys::KeyRingName::parse(&r.name).map(|n| ks.rotate(&n)) {
                Ok(Ok(v)) => {
                    tracing::info!(key = %r.name, version = v, "auto-rotated key");
                    st.audit.key_event(
                        "key.rotate",
                        r.name.clone(),
                        None,
                        serde_json::json!({ "version": v, "trigger": "auto_rotate_period" }),
                    );
                }
                Ok(Err(e)) => tracing::error!(key = %r.name, error = %e, "auto-rotation failed"),
                Err(_) => {}
            }
        }
    }
}

/// Runs the server until SIGTERM or SIGINT (graceful shutdown), reloading
/// TLS on SIGHUP. `ready` is called once the port is bound.
pub fn run_blocking(
    settings: ServerSettings,
    keystore: Option<Keystore>,
    ready: impl FnOnce(&Running),
) -> Result<(), crate::ServeError> {
    let mut settings = settings;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = match settings.limits.workers {
        0 => cpus,
        n => n,
    };
    // Requests run on the connection workers (see `crate::workers`); the
    // audit trail takes its acknowledgement runtimes and idle signal from
    // them.
    let conn_workers = Arc::new(
        crate::workers::ConnWorkers::start(workers)
            .map_err(|e| crate::ServeError::Bind(settings.listen, e))?,
    );
    settings.conn_workers = Some(conn_workers.clone());
    // The main runtime: accept loop, signals, background jobs.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus)
        .enable_all()
        .build()
        .map_err(|e| crate::ServeError::Bind(settings.listen, e))?;
    let served = rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let running = start(settings, keystore).await?;
        let sig = |k| signal(k).map_err(|e| crate::ServeError::Bind(running.addr, e));
        let mut hup = sig(SignalKind::hangup())?;
        let mut term = sig(SignalKind::terminate())?;
        let mut int = sig(SignalKind::interrupt())?;
        ready(&running);
        tracing::info!(addr = %running.addr, "phivault server started");
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading TLS files");
                    let r = running.reloader.reload(&running.state.metrics);
                    audit_reload(&running.state, "sighup", &r);
                    if let Err(e) = running.state.tokens.set_external(&running.state.settings.auth.external) {
                        tracing::error!(error = %e, "reloading external issuers failed");
                    }
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        tracing::info!("signal received: graceful shutdown");
        running.shutdown().await;
        Ok(())
    });
    // Connections are drained (or were cut at the grace period): stop the
    // main runtime's tasks, then the workers.
    drop(rt);
    drop(conn_workers);
    served
}
