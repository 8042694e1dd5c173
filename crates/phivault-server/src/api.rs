//! The HTTP API: Vault-compatible transit routes, token issue, and the
//! `sys` routes. Every route is listed once in [`ROUTES`]; the router, the
//! metrics labels and the OpenAPI check all come from that table.
//!
//! Authentication: every route but `/v1/sys/health` needs a verified
//! client certificate (mTLS). A bearer token (`Authorization: Bearer` or
//! `X-Vault-Token`) narrows the request to the token's scopes, and must be
//! bound to the same certificate. 401 means "who are you?" (no
//! certificate, bad or expired token); 403 means "not allowed" (scope).

use crate::auth::{Scopes, TokenAuthority};
use crate::config::ServerSettings;
use crate::metrics::Metrics;
use crate::pki::PeerIdentity;
use crate::transit::{self, Binding, CreateOptions, Transit, TransitError};
use arc_swap::ArcSwapOption;
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use phivault_keystore::seal::Unsealer;
use phivault_keystore::{Keystore, RingConfig};
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every route: (method, path template). Vault's `LIST` verb is accepted
/// as `GET …?list=true` (the server rewrites it before routing).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/sys/health"),
    ("GET", "/v1/sys/seal-status"),
    ("PUT", "/v1/sys/unseal"),
    ("POST", "/v1/sys/unseal"),
    ("PUT", "/v1/sys/seal"),
    ("POST", "/v1/sys/seal"),
    ("GET", "/v1/sys/metrics"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/auth/token"),
    ("GET", "/v1/auth/jwks"),
    ("GET", "/v1/auth/token/lookup-self"),
    ("GET", "/v1/transit/keys"),
    ("POST", "/v1/transit/keys/{name}"),
    ("GET", "/v1/transit/keys/{name}"),
    ("DELETE", "/v1/transit/keys/{name}"),
    ("POST", "/v1/transit/keys/{name}/config"),
    ("POST", "/v1/transit/keys/{name}/rotate"),
    ("POST", "/v1/transit/encrypt/{name}"),
    ("POST", "/v1/transit/decrypt/{name}"),
    ("POST", "/v1/transit/rewrap/{name}"),
    ("POST", "/v1/transit/datakey/{kind}/{name}"),
    ("POST", "/v1/transit/hmac/{name}"),
    ("POST", "/v1/transit/hmac/{name}/{algorithm}"),
    ("POST", "/v1/transit/verify/{name}"),
    ("POST", "/v1/transit/verify/{name}/{algorithm}"),
    ("POST", "/v1/transit/sign/{name}"),
    ("POST", "/v1/transit/sign/{name}/{algorithm}"),
    ("POST", "/v1/transit/random"),
    ("POST", "/v1/transit/random/{bytes}"),
    ("GET", "/v1/collections"),
    ("GET", "/v1/collections/{collection}"),
    ("POST", "/v1/collections/{collection}"),
    ("POST", "/v1/collections/{collection}/rotate"),
    ("GET", "/v1/jobs/{id}"),
    ("POST", "/v1/records/{collection}"),
    ("GET", "/v1/records/{collection}"),
    ("POST", "/v1/records/{collection}/bulk"),
    ("POST", "/v1/records/{collection}/bulk-get"),
    ("POST", "/v1/records/{collection}/search"),
    ("GET", "/v1/records/{collection}/{id}"),
    ("PUT", "/v1/records/{collection}/{id}"),
    ("PATCH", "/v1/records/{collection}/{id}"),
    ("DELETE", "/v1/records/{collection}/{id}"),
    ("DELETE", "/v1/subjects/{id}"),
    ("GET", "/v1/audit/checkpoint"),
    ("GET", "/v1/audit/proof/inclusion/{index}"),
    ("GET", "/v1/audit/proof/consistency/{from}"),
    ("POST", "/v1/audit/hash"),
    ("POST", "/v1/witness/add-checkpoint"),
];

mod audit;
mod records;

/// Routes served while sealed.
const SEALED_OK: &[&str] = &["/v1/sys/health", "/v1/sys/seal-status", "/v1/sys/unseal"];

/// What the accept loop knows about a connection, put on every request.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Peer address.
    pub peer: SocketAddr,
    /// The verified client certificate's identity, if one was presented.
    pub identity: Option<Arc<PeerIdentity>>,
    /// Negotiated TLS version.
    pub tls_version: &'static str,
    /// Negotiated suite.
    pub suite: &'static str,
    /// The certificate's scopes plus any the config grants its principal,
    /// parsed once per connection.
    pub cert_scopes: Arc<Scopes>,
    /// This request's audit record, filled in by the handlers (a fresh
    /// one per request, set by the middleware).
    pub audit: crate::audit::AuditSlot,
}

/// Server state shared by every request.
pub struct Shared {
    /// Settings.
    pub settings: ServerSettings,
    /// The unsealed keystore; `None` while sealed.
    pub keystore: ArcSwapOption<Keystore>,
    /// Shares given so far while sealed.
    pub unsealer: Mutex<Option<Unsealer>>,
    /// Token issuer/verifier.
    pub tokens: TokenAuthority,
    /// Metrics.
    pub metrics: Metrics,
    /// Extra scopes by principal (config).
    pub principals: HashMap<String, Scopes>,
    /// The records service (`None` if its store could not be opened).
    pub records: Option<Arc<crate::records::Records>>,
    /// The audit trail.
    pub audit: Arc<crate::audit::Trail>,
    /// On PostgreSQL: the audit trail's mirror (a final pass at shutdown).
    pub audit_mirror: Option<crate::server::AuditMirrorSlot>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Handle.
pub type AppState = Arc<Shared>;

/// A response extension: this error's body is defined by a protocol (the
/// tlog-witness `409` carries the witness's size as `text/x.tlog.size`),
/// so it does not become Vault's `{"errors": [...]}`.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolBody;

/// The scopes a client certificate grants: its own (checked when issued;
/// a malformed one is dropped), when `auth.trust_certificate_scopes` (the
/// default only with the built-in CA), plus any the config grants its
/// principal.
pub fn cert_scopes(st: &Shared, id: &PeerIdentity) -> Scopes {
    let mut scopes: Vec<&str> = if st.settings.auth.trust_certificate_scopes {
        id.scopes.iter().map(String::as_str).collect()
    } else {
        Vec::new()
    };
    if let Some(extra) = st.principals.get(&id.principal) {
        scopes.extend(extra.iter().map(|s| s.as_str()));
    }
    Scopes::parse(
        scopes
            .into_iter()
            .filter(|s| crate::auth::Scope::parse(s).is_ok()),
    )
    .unwrap_or_default()
}

/// An API error: a status and messages, rendered as Vault's
/// `{"errors": [...]}`. Messages never contain request data.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    msg: String,
}

impl ApiError {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            msg: msg.into(),
        }
    }
    fn bad(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(json!({ "errors": [self.msg] }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"phivault\", mTLS client certificate required",
                ),
            );
        }
        r
    }
}

impl From<TransitError> for ApiError {
    fn from(e: TransitError) -> Self {
        let mut status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        // The keystore's storage (its file, or its document in PostgreSQL)
        // could not be read, locked or written: an outage to retry after,
        // not a server fault (tests/faults.rs: a rotation while
        // PostgreSQL is down).
        if let TransitError::Keystore(m) = &e
            && [
                "reading the keystore from ",
                "locking the keystore in ",
                "writing the keystore to ",
            ]
            .iter()
            .any(|p| m.starts_with(p))
        {
            status = StatusCode::SERVICE_UNAVAILABLE;
        }
        if status.is_server_error() {
            tracing::error!(error = %e, "transit failure");
        }
        Self::new(status, e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

/// Vault's response envelope.
#[derive(Serialize)]
struct VaultResponse<T: Serialize> {
    request_id: String,
    lease_id: &'static str,
    renewable: bool,
    lease_duration: u64,
    data: T,
    wrap_info: Option<()>,
    warnings: Option<Vec<String>>,
    auth: Option<Value>,
    mount_type: &'static str,
}

fn request_id() -> String {
    let b: [u8; 16] = phivault_core::crypto::random_array().unwrap_or([0; 16]);
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn vault_with<T: Serialize>(status: StatusCode, data: T, auth: Option<Value>) -> Response {
    let body = serde_json::to_vec(&VaultResponse {
        request_id: request_id(),
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data,
        wrap_info: None,
        warnings: None,
        auth,
        mount_type: "transit",
    })
    .expect("serializes");
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn vault<T: Serialize>(data: T) -> ApiResult {
    Ok(vault_with(StatusCode::OK, data, None))
}

/// Reads a body of at most `limit` bytes (named by the setting `what`)
/// under the read timeout.
async fn read_bytes(
    st: &Shared,
    body: Body,
    limit: usize,
    what: &str,
) -> Result<axum::body::Bytes, ApiError> {
    match tokio::time::timeout(
        st.settings.limits.read_timeout,
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        )),
        Ok(Err(e)) => {
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || format!("{e}").contains("length limit");
            Err(if too_big {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body exceeds {limit} bytes ({what})"),
                )
            } else {
                ApiError::bad("could not read the request body")
            })
        }
        Ok(Ok(b)) => Ok(b),
    }
}

/// Parses JSON. An empty body is the type's default. Errors say where,
/// never what.
fn parse_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad(format!(
            "malformed JSON request body ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// Reads a JSON body under the size limit and read timeout.
async fn read_json<T: DeserializeOwned + Default>(st: &Shared, body: Body) -> Result<T, ApiError> {
    let bytes = read_bytes(
        st,
        body,
        st.settings.limits.max_body_bytes,
        "server.max_body_bytes",
    )
    .await?;
    parse_json(&bytes)
}

/// What every authenticated handler starts from: the shared state, the
/// connection's TLS identity, and the request headers (for the token).
/// Taken from the request parts (moved, not copied) before the path and
/// body extractors run.
pub struct Ctx {
    st: AppState,
    conn: ConnInfo,
    headers: HeaderMap,
}

impl axum::extract::FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let conn = parts.extensions.remove::<ConnInfo>().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "request without connection info",
            )
        })?;
        Ok(Self {
            st: state.clone(),
            conn,
            headers: std::mem::take(&mut parts.headers),
        })
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Principal.
    pub principal: String,
    /// Effective scopes.
    pub scopes: Arc<Scopes>,
    /// Token id, when a token was used.
    pub token_id: Option<String>,
    /// Token expiry.
    pub token_exp: Option<u64>,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn authenticate(st: &Shared, conn: &ConnInfo, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let r = authenticate_inner(st, conn, headers);
    let mut a = conn.audit.lock().expect("lock");
    match &r {
        Ok(c) => {
            a.principal = Some(c.principal.clone());
            a.token_id.clone_from(&c.token_id);
        }
        Err(_) if a.reason.is_none() => a.reason = Some("authentication_failed"),
        Err(_) => {}
    }
    r
}

fn audit_reason(conn: &ConnInfo, reason: &'static str) {
    conn.audit.lock().expect("lock").reason = Some(reason);
}

fn authenticate_inner(
    st: &Shared,
    conn: &ConnInfo,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let Some(id) = &conn.identity else {
        audit_reason(conn, "client_cert_missing");
        st.metrics.auth_failed("client_cert_missing");
        tracing::warn!(peer = %conn.peer, reason = "client_cert_missing", "request without a client certificate refused");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a client certificate is required (mTLS); issue one with `phivault ca issue client`",
        ));
    };
    match bearer(headers) {
        Some(t) => match st.tokens.verify(t, id) {
            Ok(g) => Ok(Caller {
                principal: id.principal.clone(),
                // A token narrows, never widens: only the scopes that the
                // certificate (with its config grants) also allows count.
                // Ours are issued that way; an external issuer's may not be.
                scopes: Arc::new(g.scopes.within(&conn.cert_scopes)),
                token_id: Some(g.jti),
                token_exp: Some(g.exp),
            }),
            Err(e) => {
                let reason = match e {
                    crate::AuthError::Expired => "token_expired",
                    crate::AuthError::WrongCertificate => "token_wrong_certificate",
                    crate::AuthError::ForeignIssuer | crate::AuthError::UnknownKey => {
                        "token_foreign"
                    }
                    crate::AuthError::WrongAudience => "token_wrong_audience",
                    crate::AuthError::Unbound => "token_unbound",
                    _ => "token_invalid",
                };
                audit_reason(conn, reason);
                st.metrics.auth_failed(reason);
                tracing::warn!(peer = %conn.peer, principal = %id.principal, reason, "token refused");
                Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
            }
        },
        None => Ok(Caller {
            principal: id.principal.clone(),
            scopes: conn.cert_scopes.clone(),
            token_id: None,
            token_exp: None,
        }),
    }
}

fn authorize(
    st: &Shared,
    conn: &ConnInfo,
    headers: &HeaderMap,
    required: &str,
) -> Result<Caller, ApiError> {
    let c = authenticate(st, conn, headers)?;
    note_scope(conn, required);
    if c.scopes.allows(required) {
        Ok(c)
    } else {
        audit_reason(conn, "scope_denied");
        st.metrics.auth_failed("scope_denied");
        tracing::warn!(peer = %conn.peer, principal = %c.principal, required, "permission denied");
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("permission denied: this request needs scope '{required}'"),
        ))
    }
}

/// Notes a checked scope (and the key ring or collection it names) in the
/// request's audit record.
fn note_scope(conn: &ConnInfo, scope: &str) {
    let mut a = conn.audit.lock().expect("lock");
    let mut parts = scope.splitn(3, ':');
    if let (Some(area), Some(_), Some(name)) = (parts.next(), parts.next(), parts.next())
        && name != "*"
        && a.resource.is_none()
    {
        a.resource = Some(format!("{area}/{name}"));
    }
    a.scopes.push(scope.to_owned());
}

/// The scope that allows break-glass reads.
pub const BREAK_GLASS_SCOPE: &str = "break-glass";

/// Emergency access (45 CFR 164.312(a)(2)(ii)): a caller whose scopes
/// don't allow a read, but who holds `break-glass` and states a reason in
/// `X-Break-Glass-Reason`, may read inside its time-limited window. The
/// access is a high-severity audit entry and counted. `None`: the request
/// does not ask for break-glass (the normal refusal stands).
fn break_glass(st: &Shared, c: &Ctx, caller: &Caller) -> Option<Result<(), ApiError>> {
    let raw = c.headers.get("x-break-glass-reason")?;
    let reason = raw.to_str().unwrap_or("").trim();
    if !caller.scopes.allows(BREAK_GLASS_SCOPE) {
        return Some(Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission denied: break-glass needs scope 'break-glass'",
        )));
    }
    if reason.len() < 4
        || reason.chars().count() > crate::audit::MAX_BREAK_GLASS_REASON
        || reason.chars().any(char::is_control)
    {
        return Some(Err(ApiError::bad(format!(
            "X-Break-Glass-Reason must be 4-{} printable characters saying why (no patient data: it is kept in the audit trail)",
            crate::audit::MAX_BREAK_GLASS_REASON
        ))));
    }
    if let Err(e) = st.audit.break_glass_window(&caller.principal) {
        audit_reason(&c.conn, "break_glass_expired");
        return Some(Err(ApiError::new(StatusCode::FORBIDDEN, e)));
    }
    {
        let mut a = c.conn.audit.lock().expect("lock");
        a.break_glass = Some(reason.to_owned());
        // The scope refusal that led here is overridden, not the outcome.
        a.reason = None;
    }
    st.metrics.break_glass.inc();
    tracing::warn!(principal = %caller.principal, "BREAK-GLASS access");
    Some(Ok(()))
}

/// [`authorize`], or a break-glass read when the scope is missing.
fn authorize_read(st: &Shared, c: &Ctx, required: &str) -> Result<Caller, ApiError> {
    match authorize(st, &c.conn, &c.headers, required) {
        Err(e) if e.status == StatusCode::FORBIDDEN => {
            let caller = authenticate(st, &c.conn, &c.headers)?;
            match break_glass(st, c, &caller) {
                Some(Ok(())) => Ok(caller),
                Some(Err(bg)) => Err(bg),
                None => Err(e),
            }
        }
        r => r,
    }
}

fn keystore(st: &Shared) -> Result<Arc<Keystore>, ApiError> {
    st.keystore
        .load_full()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed"))
}

// ---------------------------------------------------------------- sys

async fn health(State(st): State<AppState>) -> Response {
    let sealed = st.keystore.load().is_none();
    let code = if sealed {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let now = time::OffsetDateTime::now_utc();
    (
        code,
        axum::Json(json!({
            "initialized": true,
            "sealed": sealed,
            "standby": false,
            "performance_standby": false,
            "server_time_utc": now.unix_timestamp(),
            "version": env!("CARGO_PKG_VERSION"),
            "cluster_name": "phivault",
            "fips": phivault_core::crypto::module_info().fips_mode,
        })),
    )
        .into_response()
}

fn seal_status_body(st: &Shared) -> Value {
    let sealed = st.keystore.load().is_none();
    let (method, seal) = phivault_keystore::seal::describe(st.settings.keystore_location())
        .map(|(_, s)| (s.name(), Some(s)))
        .unwrap_or(("unknown", None));
    let (t, n) = match seal {
        Some(phivault_keystore::model::Seal::Shamir {
            threshold, shares, ..
        }) => (threshold, shares),
        _ => (1, 1),
    };
    let progress = st
        .unsealer
        .lock()
        .expect("lock")
        .as_ref()
        .map(|u| u.progress().have)
        .unwrap_or(0);
    json!({
        "type": method, "initialized": true, "sealed": sealed, "t": t, "n": n,
        "progress": progress, "version": env!("CARGO_PKG_VERSION"),
        "cluster_name": "phivault", "storage_type": "file",
    })
}

async fn seal_status(c: Ctx) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    authenticate(&st, &conn, &headers)?;
    Ok(axum::Json(seal_status_body(&st)).into_response())
}

#[derive(Deserialize, Default)]
struct UnsealReq {
    key: Option<String>,
    passphrase: Option<String>,
    #[serde(default)]
    reset: bool,
}

impl Drop for UnsealReq {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(k) = &mut self.key {
            k.zeroize();
        }
        if let Some(p) = &mut self.passphrase {
            p.zeroize();
        }
    }
}

async fn unseal(c: Ctx, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let caller = authorize(&st, &conn, &headers, "sys:unseal")?;
    let mut req: UnsealReq = read_json(&st, body).await?;
    if st.keystore.load().is_some() {
        return Ok(axum::Json(seal_status_body(&st)).into_response());
    }
    let dir = st.settings.keystore_location();
    if req.reset {
        *st.unsealer.lock().expect("lock") = None;
        return Ok(axum::Json(seal_status_body(&st)).into_response());
    }
    let st2 = st.clone();
    let key = req.key.take();
    let pass = req.passphrase.take();
    let opened = tokio::task::spawn_blocking(
        move || -> Result<Option<Keystore>, phivault_keystore::KeystoreError> {
            if let Some(p) = pass {
                let p = phivault_core::secret::SecretBytes::new(p.into_bytes());
                return phivault_keystore::seal::open_with_passphrase(&dir, &p).map(Some);
            }
            let Some(mut share) = key else {
                return Err(phivault_keystore::KeystoreError::Invalid(
                    "give 'key' (one unseal share) or 'passphrase'".into(),
                ));
            };
            let mut guard = st2.unsealer.lock().expect("lock");
            if guard.is_none() {
                *guard = Some(Unsealer::new(&dir)?);
            }
            let r = guard.as_mut().expect("set").submit(&share);
            zeroize::Zeroize::zeroize(&mut share);
            // A malformed or duplicate share keeps the progress; a complete
            // set that does not open the keystore starts over.
            if matches!(
                r,
                Ok(Some(_)) | Err(phivault_keystore::KeystoreError::WrongShares)
            ) {
                *guard = None;
            }
            r
        },
    )
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unseal task failed"))?;
    match opened {
        Ok(Some(ks)) => {
            st.audit.unsealed(&ks);
            st.audit.emit(
                phivault_audit::Event::new(phivault_audit::Kind::Seal, "vault.unseal")
                    .severity(phivault_audit::Severity::Warn)
                    .detail(json!({ "by": caller.principal })),
            );
            st.keystore.store(Some(Arc::new(ks)));
            st.metrics.sealed.set(0);
            tracing::info!(principal = %caller.principal, "vault unsealed");
        }
        Ok(None) => {}
        Err(e) => {
            st.metrics.auth_failed("unseal_failed");
            tracing::warn!(principal = %caller.principal, error = %e, "unseal attempt failed");
            return Err(ApiError::bad(e.to_string()));
        }
    }
    Ok(axum::Json(seal_status_body(&st)).into_response())
}

async fn seal(c: Ctx) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let caller = authorize(&st, &conn, &headers, "sys:seal")?;
    st.audit.emit(
        phivault_audit::Event::new(phivault_audit::Kind::Seal, "vault.seal")
            .severity(phivault_audit::Severity::Warn)
            .detail(json!({ "by": caller.principal })),
    );
    st.audit.sealed();
    st.keystore.store(None);
    *st.unsealer.lock().expect("lock") = None;
    st.metrics.sealed.set(1);
    tracing::warn!(principal = %caller.principal, "vault sealed by request");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Refreshes the scrape-time gauges.
pub fn refresh_gauges(st: &Shared) {
    {
        use std::sync::atomic::Ordering::Relaxed;
        let log = st.audit.log();
        let s = log.stats();
        let m = &st.metrics;
        m.audit_entries.set(s.size.load(Relaxed) as i64);
        m.audit_checkpoints.set(s.checkpoints.load(Relaxed) as i64);
        m.audit_group_commits.set(s.batches.load(Relaxed) as i64);
        m.audit_witness_failures
            .set(s.witness_failures.load(Relaxed) as i64);
        m.audit_failing.set(i64::from(log.failure().is_some()));
        m.audit_signing_blocked
            .set(i64::from(log.signing_blocked().is_some()));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let na = st
        .metrics
        .server_cert_not_after
        .load(std::sync::atomic::Ordering::Relaxed) as i64;
    st.metrics
        .cert_expiry
        .get_or_create(&crate::metrics::CertLabel { cert: "server" })
        .set(na - now);
    let crl = st
        .metrics
        .crl_next_update
        .load(std::sync::atomic::Ordering::Relaxed) as i64;
    if crl > 0 {
        st.metrics
            .cert_expiry
            .get_or_create(&crate::metrics::CertLabel { cert: "crl" })
            .set(crl - now);
    }
    if let Some(ks) = st.keystore.load_full()
        && let Ok(rings) = ks.list(Some(transit::NAMESPACE))
    {
        for r in rings {
            let key = r
                .name
                .split_once('/')
                .map(|(_, n)| n.to_string())
                .unwrap_or_default();
            st.metrics
                .key_age
                .get_or_create(&crate::metrics::KeyLabel { key })
                .set(r.primary_age_secs);
        }
    }
}

async fn metrics(c: Ctx) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    authorize(&st, &conn, &headers, "sys:metrics")?;
    refresh_gauges(&st);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        st.metrics.encode(),
    )
        .into_response())
}

/// The committed OpenAPI document.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

async fn openapi(c: Ctx) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    authenticate(&st, &conn, &headers)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response())
}

// ---------------------------------------------------------------- auth

#[derive(Deserialize, Default)]
struct TokenReq {
    scopes: Option<Vec<String>>,
    scope: Option<String>,
    ttl: Option<Value>,
}

fn duration_field(name: &str, v: &Option<Value>) -> Result<Option<u64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad(format!("'{name}' must be a non-negative number of seconds"))
        }),
        Some(Value::String(s)) => transit::parse_duration(s)
            .map(Some)
            .map_err(|e| ApiError::bad(format!("'{name}': {e}"))),
        Some(_) => Err(ApiError::bad(format!(
            "'{name}' must be seconds or a duration like \"15m\""
        ))),
    }
}

async fn issue_token(c: Ctx, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let caller = authenticate(&st, &conn, &headers)?;
    if caller.token_id.is_some() {
        return Err(ApiError::bad(
            "tokens are issued to a client certificate, not to another token; send no token header",
        ));
    }
    let req: TokenReq = read_json(&st, body).await?;
    let requested = match (&req.scopes, &req.scope) {
        (Some(v), _) => Scopes::parse(v.iter().map(String::as_str)),
        (None, Some(s)) => Scopes::parse(s.split_whitespace()),
        (None, None) => Ok((*caller.scopes).clone()),
    }
    .map_err(|e| ApiError::bad(e.to_string()))?;
    let ttl = duration_field("ttl", &req.ttl)?.unwrap_or(300);
    let id = conn.identity.as_ref().expect("authenticated");
    let (token, claims) = st
        .tokens
        .issue(id, &caller.scopes, &requested, Duration::from_secs(ttl))
        .map_err(|e| match e {
            crate::AuthError::ScopeNotGranted(_) => {
                ApiError::new(StatusCode::FORBIDDEN, e.to_string())
            }
            other => ApiError::bad(other.to_string()),
        })?;
    tracing::info!(principal = %caller.principal, jti = %claims.jti, ttl, scope = %claims.scope, "token issued");
    let policies: Vec<&str> = claims.scope.split_whitespace().collect();
    let auth = json!({
        "client_token": token, "accessor": claims.jti, "policies": policies,
        "token_policies": policies, "lease_duration": ttl, "renewable": false,
        "entity_id": claims.sub, "token_type": "service", "orphan": true,
    });
    Ok(vault_with(
        StatusCode::OK,
        json!({
            "access_token": token, "token_type": "Bearer", "expires_in": ttl,
            "scope": claims.scope, "jti": claims.jti,
        }),
        Some(auth),
    ))
}

async fn jwks(c: Ctx) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    authenticate(&st, &conn, &headers)?;
    Ok(axum::Json(st.tokens.jwks()).into_response())
}

async fn lookup_self(c: Ctx) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    // Vault answers a bad token here with 403, and Vault clients'
    // is_authenticated() relies on it; everywhere else a bad token is 401.
    let c = authenticate(&st, &conn, &headers).map_err(|e| {
        if conn.identity.is_some() && e.status == StatusCode::UNAUTHORIZED {
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!("permission denied: {}", e.msg),
            )
        } else {
            e
        }
    })?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let policies: Vec<&str> = c.scopes.iter().map(|s| s.as_str()).collect();
    vault(json!({
        "id": c.token_id.clone().unwrap_or_default(),
        "accessor": c.token_id.unwrap_or_default(),
        "display_name": c.principal,
        "entity_id": c.principal,
        "policies": policies,
        "ttl": c.token_exp.map(|e| e.saturating_sub(now)).unwrap_or(0),
        "renewable": false,
        "type": "service",
    }))
}

// ---------------------------------------------------------------- transit keys

#[derive(Deserialize, Default)]
struct ListQuery {
    list: Option<String>,
}

async fn list_keys(c: Ctx, Query(q): Query<ListQuery>) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    require_any(&st, &conn, &headers, &["keys:read", "keys:admin"])?;
    if q.list.as_deref() != Some("true") {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "use LIST, or GET with ?list=true",
        ));
    }
    let ks = keystore(&st)?;
    let keys = Transit::new(&ks).list()?;
    if keys.is_empty() {
        // Vault answers an empty list with 404.
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no keys"));
    }
    vault(json!({ "keys": keys }))
}

fn require_any(
    st: &Shared,
    conn: &ConnInfo,
    headers: &HeaderMap,
    any: &[&str],
) -> Result<Caller, ApiError> {
    let c = authenticate(st, conn, headers)?;
    if any.iter().any(|s| c.scopes.allows(s)) {
        Ok(c)
    } else {
        st.metrics.auth_failed("scope_denied");
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("permission denied: this request needs one of the scopes {any:?}"),
        ))
    }
}

#[derive(Deserialize, Default)]
struct CreateKeyReq {
    #[serde(rename = "type")]
    key_type: Option<String>,
    auto_rotate_period: Option<Value>,
    #[serde(default)]
    exportable: bool,
    #[serde(default)]
    derived: bool,
    #[serde(default)]
    convergent_encryption: bool,
    #[serde(default)]
    allow_plaintext_backup: bool,
}

async fn create_key(c: Ctx, Path(name): Path<String>, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let c = authorize(&st, &conn, &headers, "keys:admin")?;
    let req: CreateKeyReq = read_json(&st, body).await?;
    if req.allow_plaintext_backup || req.convergent_encryption {
        return Err(ApiError::bad(
            "allow_plaintext_backup and convergent_encryption are not supported: keys never leave phivault",
        ));
    }
    let ks = keystore(&st)?;
    let t = Transit::new(&ks);
    t.create(
        &name,
        &CreateOptions {
            key_type: req.key_type,
            auto_rotate_period_secs: duration_field("auto_rotate_period", &req.auto_rotate_period)?,
            exportable: req.exportable,
            derived: req.derived,
        },
    )?;
    tracing::info!(principal = %c.principal, key = %name, "transit key created");
    st.audit.key_event(
        "key.create",
        format!("transit/{name}"),
        Some(&c.principal),
        json!({}),
    );
    vault(t.read(&name)?)
}

async fn read_key(c: Ctx, Path(name): Path<String>) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    require_any(&st, &conn, &headers, &["keys:read", "keys:admin"])?;
    let ks = keystore(&st)?;
    vault(Transit::new(&ks).read(&name)?)
}

async fn delete_key(c: Ctx, Path(name): Path<String>) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let c = authorize(&st, &conn, &headers, "keys:admin")?;
    let ks = keystore(&st)?;
    Transit::new(&ks).delete(&name)?;
    tracing::warn!(principal = %c.principal, key = %name, "transit key deleted (crypto-shredded)");
    st.audit.key_event(
        "key.destroy",
        format!("transit/{name}"),
        Some(&c.principal),
        json!({ "all_versions": true }),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
struct ConfigReq {
    min_decryption_version: Option<u32>,
    min_encryption_version: Option<u32>,
    deletion_allowed: Option<bool>,
    auto_rotate_period: Option<Value>,
    exportable: Option<bool>,
    allow_plaintext_backup: Option<bool>,
}

async fn config_key(c: Ctx, Path(name): Path<String>, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let c = authorize(&st, &conn, &headers, "keys:admin")?;
    let req: ConfigReq = read_json(&st, body).await?;
    if req.exportable == Some(true) || req.allow_plaintext_backup == Some(true) {
        return Err(ApiError::bad(
            "keys cannot be made exportable: they never leave phivault",
        ));
    }
    let ks = keystore(&st)?;
    let t = Transit::new(&ks);
    t.config(
        &name,
        &RingConfig {
            min_decryption_version: req.min_decryption_version,
            min_encryption_version: req.min_encryption_version,
            deletion_allowed: req.deletion_allowed,
            auto_rotate_period_secs: duration_field("auto_rotate_period", &req.auto_rotate_period)?,
        },
    )?;
    tracing::info!(principal = %c.principal, key = %name, "transit key config changed");
    st.audit.key_event(
        "key.config",
        format!("transit/{name}"),
        Some(&c.principal),
        json!({}),
    );
    vault(t.read(&name)?)
}

async fn rotate_key(c: Ctx, Path(name): Path<String>) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let c = authorize(&st, &conn, &headers, "keys:admin")?;
    let ks = keystore(&st)?;
    let t = Transit::new(&ks);
    let v = t.rotate(&name)?;
    tracing::info!(principal = %c.principal, key = %name, version = v, "transit key rotated");
    st.audit.key_event(
        "key.rotate",
        format!("transit/{name}"),
        Some(&c.principal),
        json!({ "version": v }),
    );
    vault(t.read(&name)?)
}

// ---------------------------------------------------------------- transit data

#[derive(Deserialize, Default)]
struct Item {
    plaintext: Option<String>,
    ciphertext: Option<String>,
    context: Option<String>,
    associated_data: Option<String>,
    new_context: Option<String>,
    new_associated_data: Option<String>,
    key_version: Option<u32>,
    input: Option<String>,
    hmac: Option<String>,
    reference: Option<Value>,
    // Request-level fields (ignored inside batch_input). One struct, not
    // #[serde(flatten)], which buffers the whole body first.
    #[serde(default, deserialize_with = "bounded_batch")]
    batch_input: Option<Vec<Item>>,
    partial_failure_response_code: Option<u16>,
    bits: Option<u32>,
    bytes: Option<usize>,
    format: Option<String>,
    algorithm: Option<String>,
    hash_algorithm: Option<String>,
    signature: Option<String>,
    marshaling_algorithm: Option<String>,
    prehashed: Option<bool>,
}

type DataReq = Item;

/// Most items in one `batch_input`. Each parsed item costs a few hundred
/// bytes, so without a cap a 32 MiB body of `{}` items would cost gigabytes.
pub const MAX_BATCH: usize = 10_000;

fn bounded_batch<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Item>>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<Vec<Item>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_BATCH} items")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut a: A,
        ) -> Result<Self::Value, A::Error> {
            let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1024));
            while let Some(item) = a.next_element::<Item>()? {
                if v.len() == MAX_BATCH {
                    return Err(serde::de::Error::custom(format!(
                        "batch_input holds more than {MAX_BATCH} items"
                    )));
                }
                v.push(item);
            }
            Ok(Some(v))
        }
    }
    d.deserialize_option(V)
}

/// Vault's precedence: the URL, then `hash_algorithm`, then the
/// deprecated `algorithm`.
fn hash_alg(p: &HashMap<String, String>, req: &DataReq) -> String {
    p.get("algorithm")
        .cloned()
        .or(req.hash_algorithm.clone())
        .or(req.algorithm.clone())
        .unwrap_or_default()
}

fn opt_b64(field: &str, v: &Option<String>) -> Result<Vec<u8>, TransitError> {
    match v {
        Some(s) if !s.is_empty() => transit::b64(field, s),
        _ => Ok(Vec::new()),
    }
}

fn binding(i: &Item) -> Result<Binding, TransitError> {
    Ok(Binding {
        context: opt_b64("context", &i.context)?,
        associated_data: opt_b64("associated_data", &i.associated_data)?,
    })
}

fn new_binding(i: &Item, old: &Binding) -> Result<Binding, TransitError> {
    Ok(Binding {
        context: match &i.new_context {
            Some(_) => opt_b64("new_context", &i.new_context)?,
            None => old.context.clone(),
        },
        associated_data: match &i.new_associated_data {
            Some(_) => opt_b64("new_associated_data", &i.new_associated_data)?,
            None => old.associated_data.clone(),
        },
    })
}

fn need<'a>(field: &str, v: &'a Option<String>) -> Result<&'a str, TransitError> {
    v.as_deref()
        .ok_or_else(|| TransitError::Invalid(format!("missing '{field}'")))
}

/// Runs `f` on one item or on the batch (in parallel when large), shaping
/// Vault's responses: a batch answers `batch_results` with a per-item
/// `error`, and 400 if any item failed unless
/// `partial_failure_response_code` says otherwise.
fn run_items(
    st: &Shared,
    req: &DataReq,
    f: impl Fn(&Item) -> Result<Value, TransitError> + Sync,
) -> ApiResult {
    let Some(batch) = &req.batch_input else {
        return vault(f(req)?);
    };
    if batch.is_empty() {
        return Err(ApiError::bad("batch_input is empty"));
    }
    let one = |i: &Item| {
        let mut v = match f(i) {
            Ok(v) => v,
            Err(e) => json!({ "error": e.to_string() }),
        };
        if let (Some(r), Some(m)) = (&i.reference, v.as_object_mut()) {
            m.insert("reference".into(), r.clone());
        }
        v
    };
    // A large batch is CPU work: run it on rayon (`records::cpu`: on a
    // connection worker the worker's other connections wait for it).
    let results: Vec<Value> = if batch.len() >= 64 {
        crate::records::cpu(|| batch.par_iter().map(one).collect())
    } else {
        batch.iter().map(one).collect()
    };
    st.metrics.batch_items.inc_by(batch.len() as u64);
    let failed = results.iter().filter(|r| r.get("error").is_some()).count();
    // Like Vault: all failed → 400; some failed → 400, or the caller's
    // partial_failure_response_code (a 2xx-4xx code that carries a body).
    let status = if failed == 0 {
        StatusCode::OK
    } else if failed == results.len() {
        StatusCode::BAD_REQUEST
    } else {
        match req.partial_failure_response_code {
            Some(c) if (200..500).contains(&c) && ![204, 205, 304].contains(&c) => {
                StatusCode::from_u16(c).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Some(_) => {
                return Err(ApiError::bad(
                    "partial_failure_response_code must be a 2xx-4xx status with a body",
                ));
            }
            None => StatusCode::BAD_REQUEST,
        }
    };
    Ok(vault_with(
        status,
        json!({ "batch_results": results }),
        None,
    ))
}

async fn data_op(
    st: &AppState,
    conn: &ConnInfo,
    headers: &HeaderMap,
    scope: String,
    body: Body,
) -> Result<(Arc<Keystore>, DataReq), ApiError> {
    authorize(st, conn, headers, &scope)?;
    let req: DataReq = read_json(st, body).await?;
    Ok((keystore(st)?, req))
}

async fn encrypt(c: Ctx, Path(name): Path<String>, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let (ks, req) = data_op(
        &st,
        &conn,
        &headers,
        format!("transit:encrypt:{name}"),
        body,
    )
    .await?;
    let t = Transit::new(&ks);
    let r = t.ring_for_encrypt(&name)?;
    // Without a requested version each item takes the primary at the
    // moment it is sealed (a rotation racing the request is retried, not
    // refused: Transit::encrypt_ring).
    let default_version = req.key_version;
    run_items(&st, &req, |i| {
        let pt = transit::b64("plaintext", need("plaintext", &i.plaintext)?)?;
        let pt = zeroize::Zeroizing::new(pt);
        let s = t.encrypt_ring(
            &r,
            &name,
            &pt,
            &binding(i)?,
            i.key_version.or(default_version),
        )?;
        Ok(json!({ "ciphertext": s.ciphertext, "key_version": s.key_version }))
    })
}

async fn decrypt(c: Ctx, Path(name): Path<String>, body: Body) -> ApiResult {
    use base64::Engine;
    authorize_read(&c.st, &c, &format!("transit:decrypt:{name}"))?;
    let Ctx { st, .. } = c;
    let req: DataReq = read_json(&st, body).await?;
    let ks = keystore(&st)?;
    let t = Transit::new(&ks);
    run_items(&st, &req, |i| {
        let pt = t.decrypt(&name, need("ciphertext", &i.ciphertext)?, &binding(i)?)?;
        Ok(json!({ "plaintext": base64::engine::general_purpose::STANDARD.encode(&pt[..]) }))
    })
}

async fn rewrap(c: Ctx, Path(name): Path<String>, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let (ks, req) = data_op(&st, &conn, &headers, format!("transit:rewrap:{name}"), body).await?;
    let t = Transit::new(&ks);
    run_items(&st, &req, |i| {
        let from = binding(i)?;
        let to = new_binding(i, &from)?;
        let s = t.rewrap(
            &name,
            need("ciphertext", &i.ciphertext)?,
            &from,
            &to,
            i.key_version.or(req.key_version),
        )?;
        Ok(json!({ "ciphertext": s.ciphertext, "key_version": s.key_version }))
    })
}

async fn datakey(c: Ctx, Path((kind, name)): Path<(String, String)>, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    use base64::Engine;
    // Separate scopes, as Vault's separate paths: a client allowed wrapped
    // data keys must not get plaintext ones.
    let op = match kind.as_str() {
        "plaintext" => "datakey-plaintext",
        "wrapped" => "datakey-wrapped",
        _ => "datakey-unknown",
    };
    let (ks, req) = data_op(&st, &conn, &headers, format!("transit:{op}:{name}"), body).await?;
    let with_plaintext = match kind.as_str() {
        "plaintext" => true,
        "wrapped" => false,
        _ => {
            return Err(ApiError::bad(
                "datakey type must be 'plaintext' or 'wrapped'",
            ));
        }
    };
    let t = Transit::new(&ks);
    let (key, s) = t.datakey(&name, req.bits.unwrap_or(256), &binding(&req)?)?;
    let mut data = json!({ "ciphertext": s.ciphertext, "key_version": s.key_version });
    if with_plaintext {
        data["plaintext"] = json!(base64::engine::general_purpose::STANDARD.encode(&key[..]));
    }
    vault(data)
}

async fn hmac(c: Ctx, Path(p): Path<HashMap<String, String>>, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let name = p.get("name").cloned().unwrap_or_default();
    let (ks, req) = data_op(&st, &conn, &headers, format!("transit:hmac:{name}"), body).await?;
    let alg = hash_alg(&p, &req);
    let t = Transit::new(&ks);
    run_items(&st, &req, |i| {
        let input = transit::b64("input", need("input", &i.input)?)?;
        Ok(json!({ "hmac": t.hmac(&name, &alg, &input, i.key_version.or(req.key_version))? }))
    })
}

async fn verify(c: Ctx, Path(p): Path<HashMap<String, String>>, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let name = p.get("name").cloned().unwrap_or_default();
    let (ks, req) = data_op(&st, &conn, &headers, format!("transit:verify:{name}"), body).await?;
    let alg = hash_alg(&p, &req);
    let t = Transit::new(&ks);
    run_items(&st, &req, |i| {
        let input = transit::b64("input", need("input", &i.input)?)?;
        let valid = match (&i.signature, &i.hmac) {
            (Some(sig), _) => t.verify_signature(&name, &alg, &input, sig)?,
            (None, Some(mac)) => t.verify_hmac(&name, &alg, &input, mac)?,
            (None, None) => return Err(TransitError::Invalid("give 'hmac' or 'signature'".into())),
        };
        Ok(json!({ "valid": valid }))
    })
}

async fn sign(c: Ctx, Path(p): Path<HashMap<String, String>>, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    let name = p.get("name").cloned().unwrap_or_default();
    let (ks, req) = data_op(&st, &conn, &headers, format!("transit:sign:{name}"), body).await?;
    if req.prehashed == Some(true) {
        return Err(ApiError::bad(
            "prehashed input is not supported; send the message itself",
        ));
    }
    if !matches!(req.marshaling_algorithm.as_deref(), None | Some("asn1")) {
        return Err(ApiError::bad("marshaling_algorithm must be asn1"));
    }
    let alg = hash_alg(&p, &req);
    let t = Transit::new(&ks);
    run_items(&st, &req, |i| {
        let input = transit::b64("input", need("input", &i.input)?)?;
        let (sig, v) = t.sign(&name, &alg, &input, i.key_version.or(req.key_version))?;
        Ok(json!({ "signature": sig, "key_version": v }))
    })
}

async fn random(c: Ctx, p: Option<Path<String>>, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    authorize(&st, &conn, &headers, "transit:random")?;
    let req: DataReq = read_json(&st, body).await?;
    let bytes = match p {
        Some(Path(b)) => b
            .parse::<usize>()
            .map_err(|_| ApiError::bad("bytes must be a number"))?,
        None => req.bytes.unwrap_or(32),
    };
    vault(json!({ "random_bytes": transit::random(bytes, req.format.as_deref().unwrap_or(""))? }))
}

// ---------------------------------------------------------------- router

fn handler(method: &str, path: &str) -> MethodRouter<AppState> {
    match (method, path) {
        ("GET", "/v1/sys/health") => get(health),
        ("GET", "/v1/sys/seal-status") => get(seal_status),
        ("PUT", "/v1/sys/unseal") => axum::routing::put(unseal),
        ("POST", "/v1/sys/unseal") => post(unseal),
        ("PUT", "/v1/sys/seal") => axum::routing::put(seal),
        ("POST", "/v1/sys/seal") => post(seal),
        ("GET", "/v1/sys/metrics") => get(metrics),
        ("GET", "/v1/openapi.json") => get(openapi),
        ("POST", "/v1/auth/token") => post(issue_token),
        ("GET", "/v1/auth/jwks") => get(jwks),
        ("GET", "/v1/auth/token/lookup-self") => get(lookup_self),
        ("GET", "/v1/transit/keys") => get(list_keys),
        ("POST", "/v1/transit/keys/{name}") => post(create_key),
        ("GET", "/v1/transit/keys/{name}") => get(read_key),
        ("DELETE", "/v1/transit/keys/{name}") => delete(delete_key),
        ("POST", "/v1/transit/keys/{name}/config") => post(config_key),
        ("POST", "/v1/transit/keys/{name}/rotate") => post(rotate_key),
        ("POST", "/v1/transit/encrypt/{name}") => post(encrypt),
        ("POST", "/v1/transit/decrypt/{name}") => post(decrypt),
        ("POST", "/v1/transit/rewrap/{name}") => post(rewrap),
        ("POST", "/v1/transit/datakey/{kind}/{name}") => post(datakey),
        ("POST", "/v1/transit/hmac/{name}") | ("POST", "/v1/transit/hmac/{name}/{algorithm}") => {
            post(hmac)
        }
        ("POST", "/v1/transit/verify/{name}")
        | ("POST", "/v1/transit/verify/{name}/{algorithm}") => post(verify),
        ("POST", "/v1/transit/sign/{name}") | ("POST", "/v1/transit/sign/{name}/{algorithm}") => {
            post(sign)
        }
        ("POST", "/v1/transit/random") | ("POST", "/v1/transit/random/{bytes}") => post(random),
        _ => records::handler(method, path)
            .or_else(|| audit::handler(method, path))
            .unwrap_or_else(|| panic!("route {method} {path} in ROUTES has no handler")),
    }
}

fn static_route(matched: Option<&MatchedPath>) -> &'static str {
    matched
        .and_then(|m| {
            ROUTES
                .iter()
                .find(|(_, p)| *p == m.as_str())
                .map(|(_, p)| *p)
        })
        .unwrap_or("unmatched")
}

/// The audit operation name of a route ([`crate::audit::route_op`]),
/// worked out once per route rather than once per request.
fn static_op(method: &'static str, route: &'static str) -> String {
    static OPS: std::sync::LazyLock<HashMap<(&str, &str), String>> =
        std::sync::LazyLock::new(|| {
            ROUTES
                .iter()
                .map(|&(m, p)| ((m, p), crate::audit::route_op(m, p)))
                .collect()
        });
    OPS.get(&(method, route))
        .cloned()
        .unwrap_or_else(|| crate::audit::route_op(method, route))
}

fn static_method(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

/// Routes that work while the audit trail can't be written: health,
/// metrics, documents, and unseal/seal (protective, no ePHI).
const AUDIT_UNGATED: &[&str] = &[
    "/v1/sys/health",
    "/v1/sys/seal-status",
    "/v1/sys/unseal",
    "/v1/sys/seal",
    "/v1/sys/metrics",
    "/v1/openapi.json",
    "/v1/auth/jwks",
];

fn new_request_id() -> String {
    hex::encode(phivault_core::crypto::random_array::<12>().unwrap_or_default())
}

/// Metrics, the sealed gate and the audit trail, around every routed
/// request. (HSTS and no-store are added to every response, routed or
/// not, by the connection service in `server.rs`.)
///
/// Audit fails closed: while the trail can't be written, ePHI routes
/// answer 503 without running; and a response whose audit entry could not
/// be made durable is replaced by a 503, so nothing is disclosed
/// unrecorded (a write may then have happened: its client sees 503 and
/// the request id, SECURITY.md §6).
async fn around(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = static_route(req.extensions().get::<MatchedPath>());
    let method = static_method(req.method());
    let slot = crate::audit::AuditSlot::default();
    let conn = req.extensions_mut().get_mut::<ConnInfo>().map(|c| {
        c.audit = slot.clone();
        c.clone()
    });
    let request_id = new_request_id();
    let gated = !AUDIT_UNGATED.contains(&route);
    let sealed_gate =
        st.keystore.load().is_none() && !SEALED_OK.contains(&route) && route != "unmatched";
    let mut resp = if sealed_gate {
        // Who are you (401) comes before "sealed" (503).
        let who = conn
            .as_ref()
            .map(|c| authenticate(&st, c, req.headers()).map(|_| ()));
        match who {
            Some(Err(e)) => e.into_response(),
            _ => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed").into_response(),
        }
    } else if let Some(why) = st.audit.refuses().filter(|_| gated) {
        st.metrics.audit_refusals.inc();
        slot.lock().expect("lock").reason = Some("audit_unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the audit trail can't be written durably ({why}); ePHI operations are refused until it can (audit fails closed): free disk space or fix the audit folder, then retry"),
        )
        .into_response()
    } else {
        next.run(req).await
    };
    let status = resp.status().as_u16();
    let ev = {
        let a = slot.lock().expect("lock");
        let op =
            a.op.map(str::to_owned)
                .unwrap_or_else(|| static_op(method, route));
        crate::audit::request_event(
            &st.audit,
            &a,
            op,
            request_id.clone(),
            conn.as_ref(),
            status,
            start.elapsed(),
        )
    };
    if let Err(e) = st.audit.record(ev).await {
        st.metrics.audit_write_failures.inc();
        tracing::error!(error = %e, route, method, "audit entry not written");
        if gated && !st.settings.audit.insecure_fail_open {
            st.metrics.audit_refusals.inc();
            resp = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the audit entry for this request could not be written durably ({e}), so its result is withheld (audit fails closed); retry later with the same request (X-Request-Id names this one)"),
            )
            .into_response();
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    st.metrics
        .request(route, method, status, start.elapsed().as_secs_f64());
    let ms = start.elapsed().as_millis() as u64;
    if status >= 500 {
        tracing::error!(route, method, status, ms, "request failed");
    } else if status >= 400 {
        tracing::info!(route, method, status, ms, "request refused");
    } else {
        tracing::debug!(route, method, status, ms, "request");
    }
    resp
}

/// Requests that match no route (404) or no method on one (405): they
/// bypass [`around`], and are counted and recorded here, because probing
/// unknown paths is activity an auditor wants to see.
async fn unrouted(st: &AppState, req: Request, status: StatusCode, msg: &'static str) -> Response {
    let start = Instant::now();
    let method = static_method(req.method());
    let conn = req.extensions().get::<ConnInfo>().cloned();
    let slot = crate::audit::RequestAudit {
        reason: Some(if status == StatusCode::NOT_FOUND {
            "no_route"
        } else {
            "no_method"
        }),
        ..Default::default()
    };
    let request_id = new_request_id();
    let ev = crate::audit::request_event(
        &st.audit,
        &slot,
        crate::audit::route_op(method, "unmatched"),
        request_id.clone(),
        conn.as_ref(),
        status.as_u16(),
        start.elapsed(),
    );
    if let Err(e) = st.audit.record(ev).await {
        st.metrics.audit_write_failures.inc();
        tracing::error!(error = %e, "audit entry not written");
    }
    let mut resp = ApiError::new(status, msg).into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    st.metrics.request(
        "unmatched",
        method,
        status.as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

async fn fallback(State(st): State<AppState>, req: Request) -> Response {
    unrouted(&st, req, StatusCode::NOT_FOUND, "unsupported path").await
}

async fn no_method(State(st): State<AppState>, req: Request) -> Response {
    unrouted(
        &st,
        req,
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
    .await
}

/// The router over [`ROUTES`].
pub fn router(state: AppState) -> Router {
    let mut r: Router<AppState> = Router::new();
    for (m, p) in ROUTES {
        r = r.route(p, handler(m, p));
    }
    r.fallback(fallback)
        .method_not_allowed_fallback(no_method)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), around))
        .with_state(state)
}
