//! The server's side of the audit trail: keys from the keystore, one
//! event per request (filled in by the handlers through the request's
//! [`RequestAudit`]), fail-closed decisions, break-glass windows, and the
//! HTTPS witness push. No HTTP routing here; `api.rs` calls it.
//!
//! Keys (keystore ring `phivault/audit`, version 1, pinned so the log's
//! public key and the id hashes stay stable across ring rotations):
//! * the checkpoint signing key: Ed25519 from KBKDF(ring key, "phivault
//!   audit checkpoint signing key");
//! * the id HMAC key: HMAC-SHA-256 under KBKDF(ring key, "phivault audit
//!   id hmac"); record and subject ids enter the trail only as
//!   `HMAC(key, kind ‖ 0x00 ‖ id)`, hex.

use crate::config::AuditSettings;
use phivault_audit::log::Signed;
use phivault_audit::{AuditLog, Event, Kind, LogConfig, Outcome, Severity};
use phivault_core::audit::note::NoteSigner;
use phivault_core::crypto::{self, HmacAlgorithm, HmacKey};
use phivault_core::keys::{self, KeyDeriver, KeyRingName, KeyUse, KeyVersion};
use phivault_keystore::Keystore;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The keystore ring that holds the audit keys.
pub const AUDIT_RING: &str = "phivault/audit";
const SIGNING_LABEL: &[u8] = b"phivault audit checkpoint signing key";
const HMAC_LABEL: &[u8] = b"phivault audit id hmac";
const COSIGNER_LABEL: &[u8] = b"phivault audit witness cosigner key";

/// The longest break-glass reason, characters.
pub const MAX_BREAK_GLASS_REASON: usize = 256;

/// What the handlers learn about a request, for its audit event. Raw
/// ids are hashed when the event is built and never leave this struct.
#[derive(Default)]
pub struct RequestAudit {
    /// Operation name, when the handler sets one (else from the route).
    pub op: Option<&'static str>,
    /// The authenticated principal.
    pub principal: Option<String>,
    /// Token id.
    pub token_id: Option<String>,
    /// Scopes checked.
    pub scopes: Vec<String>,
    /// Purpose of use.
    pub purpose: Option<&'static str>,
    /// Key ring or collection.
    pub resource: Option<String>,
    /// Record ids (hashed on the way out).
    pub records: Vec<String>,
    /// Subject ids (hashed on the way out).
    pub subjects: Vec<String>,
    /// Break-glass reason, when the request used break-glass.
    pub break_glass: Option<String>,
    /// Reason code for a refusal.
    pub reason: Option<&'static str>,
}

impl std::fmt::Debug for RequestAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Raw ids may be PHI (a patient id): never printed.
        f.debug_struct("RequestAudit")
            .field("op", &self.op)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// The request's audit slot, shared by the middleware and the handlers.
pub type AuditSlot = Arc<Mutex<RequestAudit>>;

/// The audit trail as the server uses it.
pub struct Trail {
    log: Arc<AuditLog>,
    node: String,
    hmac: arc_swap::ArcSwapOption<HmacKey>,
    /// Settings.
    pub settings: AuditSettings,
    break_glass: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trail").field("node", &self.node).finish()
    }
}

fn ring() -> KeyRingName {
    KeyRingName::parse(AUDIT_RING).expect("valid ring name")
}

/// Derives the audit keys from the keystore, creating the ring if needed.
fn derive_keys(ks: &Keystore) -> Result<(NoteSigner, HmacKey), String> {
    match ks.create_ring(&ring(), 36_500) {
        Ok(()) | Err(phivault_keystore::KeystoreError::RingExists(_)) => {}
        Err(e) => return Err(format!("creating keystore ring {AUDIT_RING}: {e}")),
    }
    Ok((signer(ks)?, id_key(ks)?))
}

fn derive(kd: &dyn KeyDeriver, label: &[u8]) -> Result<phivault_core::secret::SecretKey, String> {
    kd.derive(
        &ring(),
        KeyVersion::MIN,
        KeyUse::Decrypt,
        &keys::fixed_info(label, b""),
    )
    .map(|d| d.key)
    .map_err(|e| format!("deriving from keystore ring {AUDIT_RING}: {e}"))
}

/// The checkpoint signer (name `phivault-audit`).
pub fn signer(kd: &dyn KeyDeriver) -> Result<NoteSigner, String> {
    NoteSigner::new("phivault-audit", signing_key(kd)?).map_err(|e| e.to_string())
}

/// This node's cosigner as a tlog witness (`audit.witness_logs`), an
/// Ed25519 key derived from the audit ring like the log's own.
pub fn cosigner(kd: &dyn KeyDeriver, name: &str) -> Result<NoteSigner, String> {
    let seed = derive(kd, COSIGNER_LABEL)?;
    let key = crypto::SigningKey::ed25519_from_seed(&seed)
        .map_err(|e| format!("witness cosigner key: {e}"))?;
    NoteSigner::cosigner(name, key).map_err(|e| e.to_string())
}

/// The trail's Ed25519 signing key itself; backups are signed with it too,
/// so one pinned public key checks both.
pub fn signing_key(kd: &dyn KeyDeriver) -> Result<crypto::SigningKey, String> {
    let seed = derive(kd, SIGNING_LABEL)?;
    crypto::SigningKey::ed25519_from_seed(&seed).map_err(|e| format!("audit signing key: {e}"))
}

/// The key that hashes record and subject ids in the trail (what
/// `phivault audit hash` uses).
pub fn id_key(kd: &dyn KeyDeriver) -> Result<HmacKey, String> {
    let k = derive(kd, HMAC_LABEL)?;
    Ok(HmacKey::new(HmacAlgorithm::Sha256, k.expose_secret()))
}

/// `HMAC(key, kind ‖ 0 ‖ id)`, hex: how an id appears in the trail.
pub fn id_hash(key: &HmacKey, kind: &str, id: &str) -> String {
    hex::encode(key.sign(&[kind.as_bytes(), &[0], id.as_bytes()]))
}

impl Trail {
    /// Opens the trail in the settings' folder. Reports a recovered torn
    /// tail in the server log too. With connection `workers`, each worker
    /// acknowledges its own requests' entries and a group commit's gather
    /// ends once all of them are out of work; without, the runtime that
    /// opens the trail acknowledges.
    pub fn open(
        settings: AuditSettings,
        node: String,
        workers: Option<&crate::workers::ConnWorkers>,
    ) -> Result<Self, String> {
        let mut cfg = LogConfig::new(settings.dir.clone());
        cfg.origin = settings.origin.clone();
        cfg.checkpoint_every = settings.checkpoint_every;
        cfg.checkpoint_interval = settings.checkpoint_interval;
        cfg.segment_bytes = settings.segment_bytes;
        cfg.retention = settings.retention;
        cfg.witness_dirs = settings.witness_dirs.clone();
        cfg.group_commit_delay = settings.group_commit_delay;
        cfg.journal_bytes = settings.journal_bytes;
        match workers {
            Some(w) => {
                cfg.ack_runtimes = w.handles();
                cfg.idle = Some(w.idle());
            }
            None => cfg.ack_runtimes = tokio::runtime::Handle::try_current().into_iter().collect(),
        }
        let (log, rec) = AuditLog::open(cfg).map_err(|e| e.to_string())?;
        if let Some((seg, t)) = &rec.torn {
            tracing::warn!(segment = %seg, offset = t.offset, bytes = t.bytes, reason = t.reason, "audit trail: a torn tail (a crash mid-write) was cut and kept under audit/torn/; the log continues verifiably");
        }
        if rec.journal_replayed > 0 {
            tracing::warn!(
                entries = rec.journal_replayed,
                "audit trail: entries a power loss took from the newest segment were appended again from the group-commit journal"
            );
        }
        if let Some((have, journal)) = rec.journal_gap {
            tracing::error!(
                log_ends_at = have,
                journal_resumes_at = journal,
                "audit trail: the group-commit journal skips entries after the log's end (a disk that lost synced writes, or a journal from another trail); entries between the two are missing; run `phivault audit verify` and compare with the last witness checkpoint"
            );
        }
        if let Some((have, signed)) = rec.short_of_checkpoint {
            tracing::error!(
                entries = have,
                checkpoint_size = signed,
                "audit trail: the log holds fewer entries than its last signed checkpoint covered; signed entries were lost (recorded as audit.entries_lost); run `phivault audit verify` and compare with the last witness checkpoint"
            );
        }
        if let Some(signed) = rec.checkpoint_mismatch {
            tracing::error!(
                checkpoint_size = signed,
                "audit trail: the log's entries no longer hash to its last signed checkpoint; entries it signed were changed or replaced (recorded as audit.checkpoint_mismatch); run `phivault audit verify`"
            );
        }
        if rec.journal_foreign {
            tracing::error!(
                "audit trail: the group-commit journal holds batches of another trail (a journal copied from another node or folder); none of them were appended to this log, and the journal is written afresh; if this node lost power, run `phivault audit verify` and compare with the last witness checkpoint"
            );
        }
        if !rec.pruned_segments.is_empty() {
            tracing::info!(
                segments = rec.pruned_segments.len(),
                "audit trail: segments past retention removed (their leaf hashes stay)"
            );
        }
        if let Some(why) = log.signing_blocked() {
            tracing::error!(
                "audit trail: no checkpoint will be signed for this log ({why}): a new one would fork from those it signed; entries are still recorded durably; keep the audit folder as evidence and point audit.dir at an empty folder to start a new trail"
            );
        }
        Ok(Self {
            log: Arc::new(log),
            node,
            hmac: arc_swap::ArcSwapOption::empty(),
            settings,
            break_glass: Mutex::new(HashMap::new()),
        })
    }

    /// The log.
    pub fn log(&self) -> &Arc<AuditLog> {
        &self.log
    }

    /// The keystore is open: sign checkpoints, hash ids.
    pub fn unsealed(&self, ks: &Keystore) {
        match derive_keys(ks) {
            Ok((signer, hmac)) => {
                self.hmac.store(Some(Arc::new(hmac)));
                if let Err(e) = self.log.set_signer(Some(signer)) {
                    tracing::error!(error = %e, "audit trail: setting the checkpoint signer failed");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit trail: keys unavailable; checkpoints are not signed")
            }
        }
        if !self.settings.witness_logs.is_empty() {
            // Publish the cosigner's verifier key, as log.pub does the log's.
            let dir = &self.settings.witness_state;
            let r = cosigner(ks, &self.settings.witness_name).and_then(|c| {
                std::fs::create_dir_all(dir)
                    .and_then(|()| {
                        phivault_keystore::atomic::write_atomic(
                            &dir.join("witness.pub"),
                            format!("{}\n", c.verifier_key()).as_bytes(),
                        )
                    })
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = r {
                tracing::error!(error = %e, "audit witness: publishing witness/witness.pub failed");
            }
        }
    }

    /// The keystore closed: a last checkpoint, then no more signing.
    pub fn sealed(&self) {
        if let Err(e) = self.log.set_signer(None) {
            tracing::error!(error = %e, "audit trail: final checkpoint before sealing failed");
        }
        self.hmac.store(None);
    }

    /// An id as the trail holds it (`None` while sealed: no key).
    pub fn hash(&self, kind: &str, id: &str) -> Option<String> {
        self.hmac.load().as_ref().map(|k| id_hash(k, kind, id))
    }

    /// Fills in the node and appends; resolves when durable.
    pub fn record(
        &self,
        mut ev: Event,
    ) -> impl Future<Output = Result<u64, phivault_audit::LogError>> + Send + use<> {
        ev.node = Some(self.node.clone());
        let disabled = self.settings.insecure_disable;
        let append = (!disabled).then(|| self.log.append(&ev));
        async move {
            match append {
                Some(a) => a.await,
                None => Ok(0),
            }
        }
    }

    /// Appends without waiting (handshake failures, lifecycle events that
    /// happen outside a request).
    pub fn emit(&self, mut ev: Event) {
        if self.settings.insecure_disable {
            return;
        }
        ev.node = Some(self.node.clone());
        // A failure shows in the log's own state (`failure`, metrics);
        // nobody waits here to be told.
        let _ = self.log.append_detached(&ev);
    }

    /// A key lifecycle event (create, rotate, destroy, shred, backup).
    pub fn key_event(
        &self,
        op: &str,
        resource: String,
        principal: Option<&str>,
        detail: serde_json::Value,
    ) {
        let high = op.contains("destroy") || op.contains("shred") || op.contains("delete");
        let mut ev = Event::new(Kind::Key, op)
            .severity(if high { Severity::High } else { Severity::Info })
            .detail(detail);
        ev.resource = Some(resource);
        ev.principal = principal.map(str::to_owned);
        self.emit(ev);
    }

    /// Whether ePHI operations must be refused now: the trail can't be
    /// written and the deployment did not choose to fail open.
    pub fn refuses(&self) -> Option<String> {
        if self.settings.insecure_fail_open {
            return None;
        }
        self.log.failure()
    }

    /// Opens or checks `principal`'s break-glass window. Err: the window
    /// is over (a new one opens a day after the last one started).
    pub fn break_glass_window(&self, principal: &str) -> Result<Duration, String> {
        let mut m = self.break_glass.lock().expect("lock");
        let now = Instant::now();
        let win = self.settings.break_glass_window;
        let start = m.entry(principal.to_owned()).or_insert(now);
        if now.duration_since(*start) >= Duration::from_secs(86_400) {
            *start = now;
        }
        let used = now.duration_since(*start);
        if used < win {
            Ok(win - used)
        } else {
            Err(format!(
                "break-glass window of {} min is over for this principal (it opened at first use); a new one opens 24 h after that",
                win.as_secs() / 60
            ))
        }
    }

    /// Signs a last checkpoint and closes.
    pub fn close(&self) {
        if let Err(e) = self.log.close() {
            tracing::error!(error = %e, "audit trail: closing failed");
        }
    }
}

/// Builds a request's event from what the handlers filled in.
#[allow(clippy::too_many_arguments)]
pub fn request_event(
    trail: &Trail,
    slot: &RequestAudit,
    op: String,
    request_id: String,
    conn: Option<&crate::api::ConnInfo>,
    status: u16,
    latency: Duration,
) -> Event {
    // A failed authentication is its own kind, so that it can be found
    // without knowing HTTP status codes.
    let kind = if status == 401 {
        Kind::Auth
    } else {
        Kind::Request
    };
    let mut ev = Event::new(kind, op);
    ev.request_id = Some(request_id);
    ev.status = Some(status);
    ev.latency_us = Some(latency.as_micros() as u64);
    ev.outcome = match status {
        401 | 403 => Outcome::Denied,
        s if s >= 400 => Outcome::Error,
        _ => Outcome::Ok,
    };
    ev.severity = if slot.break_glass.is_some() {
        Severity::High
    } else if ev.outcome != Outcome::Ok {
        Severity::Warn
    } else {
        Severity::Info
    };
    if let Some(c) = conn {
        ev.peer = Some(c.peer.to_string());
        ev.tls = Some(phivault_audit::TlsInfo {
            version: c.tls_version.into(),
            suite: c.suite.into(),
        });
        if let Some(id) = &c.identity {
            ev.cert_sha256 = Some(id.x5t_s256.clone());
            ev.principal = Some(id.principal.clone());
        }
    }
    if slot.principal.is_some() {
        ev.principal = slot.principal.clone();
    }
    ev.token_id = slot.token_id.clone();
    ev.scopes = slot.scopes.clone();
    ev.purpose = slot.purpose.map(str::to_owned);
    ev.resource = slot.resource.clone();
    ev.records = slot
        .records
        .iter()
        .filter_map(|r| trail.hash("record", r))
        .collect();
    ev.subjects = slot
        .subjects
        .iter()
        .filter_map(|s| trail.hash("subject", s))
        .collect();
    ev.break_glass = slot.break_glass.clone();
    ev.reason = slot.reason.map(str::to_owned);
    ev
}

/// The operation name of a route: its literal path segments after `/v1`,
/// joined by dots, and the method unless it is POST
/// (`POST /v1/transit/encrypt/{name}` → `transit.encrypt`,
/// `GET /v1/transit/keys/{name}` → `transit.keys.get`).
pub fn route_op(method: &str, route: &str) -> String {
    let mut s: Vec<&str> = route
        .trim_start_matches("/v1/")
        .split('/')
        .filter(|p| !p.starts_with('{') && !p.is_empty())
        .collect();
    if route == "unmatched" {
        s = vec!["unmatched"];
    }
    let mut op = s.join(".");
    if method != "POST" {
        op.push('.');
        op.push_str(&method.to_ascii_lowercase());
    }
    op
}

/// Sends every checkpoint to an HTTPS witness over mTLS, from its own
/// thread so the writer never waits on the network. Only the newest
/// checkpoint is pending at any time. A URL ending in `/add-checkpoint`
/// speaks c2sp.org/tlog-witness ([`TlogPush`]); any other gets a `PUT`.
pub fn spawn_https_witness(trail: &Trail, w: crate::config::HttpsWitness) {
    let (tx, rx) = std::sync::mpsc::channel::<Signed>();
    trail.log.on_checkpoint(move |s| {
        let _ = tx.send(s.clone());
    });
    let log = trail.log.clone();
    std::thread::Builder::new()
        .name("audit-witness".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "audit witness: no runtime");
                    return;
                }
            };
            let mut client =
                match crate::client::ApiClient::new(&w.addr, &w.ca, &w.cert, &w.key) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, url = %w.url, "audit witness: client setup failed; checkpoints are not pushed");
                        return;
                    }
                };
            let mut tlog = w.path.ends_with("/add-checkpoint").then(|| {
                if w.cosigners.is_empty() {
                    tracing::warn!(url = %w.url, "audit witness: no audit.witness_cosigners, so this tlog witness's cosignatures are kept unchecked");
                }
                TlogPush::new(log.dir().to_path_buf(), &w.url, &w.cosigners)
            });
            while let Ok(mut cp) = rx.recv() {
                while let Ok(newer) = rx.try_recv() {
                    cp = newer;
                }
                let r = match &mut tlog {
                    Some(t) => t.push(&rt, &mut client, &w.path, &cp),
                    None => put_note(&rt, &mut client, &w.path, &cp.note),
                };
                if let Err(e) = r {
                    log.stats().witness_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(url = %w.url, "audit witness: {e}");
                }
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!(error = %e, "audit witness thread"));
}

fn put_note(
    rt: &tokio::runtime::Runtime,
    client: &mut crate::client::ApiClient,
    path: &str,
    note: &str,
) -> Result<(), String> {
    let r = rt.block_on(client.send(
        "PUT",
        path,
        &[("content-type", "text/plain; charset=utf-8")],
        note.to_owned().into_bytes().into(),
    ));
    match r {
        Ok((s, _)) if (200..300).contains(&s) => Ok(()),
        Ok((s, _)) => Err(format!("the witness refused a checkpoint (HTTP {s})")),
        Err(e) => Err(format!("witness unreachable: {e}")),
    }
}

/// The log's side of c2sp.org/tlog-witness: remembers the Merkle frontier
/// at the size the witness last cosigned, so that each push is a proof
/// over the new leaves only. After a start (or a 409) it learns the
/// witness's size and rebuilds that frontier from `audit/leaves`, once.
/// The witness's cosigned copy is kept in `audit/witnessed/`, evidence
/// that an independent party saw this tree.
struct TlogPush {
    dir: std::path::PathBuf,
    /// `audit/witnessed/<url as a file name>.checkpoint`.
    cosigned: std::path::PathBuf,
    /// The frontier at the witness's size, once known.
    at: Option<phivault_core::audit::merkle::Frontier>,
    /// The witness's cosigner keys (`audit.witness_cosigners`).
    cosigners: Vec<phivault_core::audit::note::NoteVerifier>,
    /// The largest size the witness has cosigned for us, to notice a
    /// witness that lost its state.
    cosigned_size: u64,
}

impl TlogPush {
    fn new(dir: std::path::PathBuf, url: &str, cosigners: &[String]) -> Self {
        let cosigned = phivault_audit::witness::path(&dir.join("witnessed"), url);
        Self {
            dir,
            cosigned,
            at: None,
            // Checked when the settings were resolved.
            cosigners: cosigners
                .iter()
                .filter_map(|k| phivault_core::audit::note::NoteVerifier::parse(k).ok())
                .collect(),
            cosigned_size: 0,
        }
    }

    fn push(
        &mut self,
        rt: &tokio::runtime::Runtime,
        client: &mut crate::client::ApiClient,
        path: &str,
        cp: &Signed,
    ) -> Result<(), String> {
        use phivault_core::audit::merkle::{Frontier, extend_with_proof};
        use phivault_core::audit::witness::{AddCheckpoint, parse_size_answer};
        let n = cp.size;
        // Two rounds: the second after learning the witness's size.
        for _ in 0..2 {
            // The proof and the frontier at n, from the leaves since the
            // witness's size streamed once from audit/leaves.
            let (old, proof, extended) = match &self.at {
                Some(f) if f.size() <= n => {
                    let mut leaves = phivault_audit::verify::LeafStream::open(&self.dir, f.size())
                        .map_err(|e| e.to_string())?;
                    let r = extend_with_proof(f, n - f.size(), || leaves.next_leaf());
                    let (proof, extended) = match (r, leaves.error()) {
                        (Ok(x), None) => x,
                        (_, Some(e)) => return Err(e.to_string()),
                        (Err(e), None) => return Err(e.to_string()),
                    };
                    (f.clone(), proof, Some(extended))
                }
                Some(f) => {
                    return Err(format!(
                        "the witness holds a checkpoint of {} entries and this log signed one of {n}: this log was rolled back or replaced; keep both as evidence and run `phivault audit verify`",
                        f.size()
                    ));
                }
                None => (Frontier::new(), Vec::new(), None),
            };
            let body = AddCheckpoint {
                old: old.size(),
                proof,
                note: cp.note.clone(),
            }
            .encode();
            let (status, answer) = rt
                .block_on(client.send(
                    "POST",
                    path,
                    &[("content-type", "text/plain; charset=utf-8")],
                    body.into_bytes().into(),
                ))
                .map_err(|e| format!("witness unreachable: {e}"))?;
            let answer = String::from_utf8_lossy(&answer).into_owned();
            match status {
                200 => {
                    let lines = self.cosignatures(&cp.note, &answer)?;
                    // `None` (first contact, old 0) means the witness had
                    // nothing: it now holds size n.
                    self.at = Some(match extended {
                        Some(f) => f,
                        None => phivault_audit::verify::frontier_at(&self.dir, n)
                            .map_err(|e| e.to_string())?,
                    });
                    self.cosigned_size = self.cosigned_size.max(n);
                    self.keep_cosigned(&cp.note, &lines);
                    return Ok(());
                }
                409 => match parse_size_answer(&answer) {
                    Some(m) if self.at.as_ref().map(Frontier::size) != Some(m) => {
                        if m > n {
                            return Err(format!(
                                "the witness holds a checkpoint of {m} entries and this log signed one of {n}: this log was rolled back or replaced; keep both as evidence and run `phivault audit verify`"
                            ));
                        }
                        if m < self.cosigned_size {
                            tracing::warn!(
                                held = m,
                                cosigned = self.cosigned_size,
                                "audit witness: the witness now holds a smaller tree than it cosigned for this log; it lost or rolled back its state (catching it up)"
                            );
                        }
                        self.at = Some(
                            phivault_audit::verify::frontier_at(&self.dir, m)
                                .map_err(|e| e.to_string())?,
                        );
                    }
                    _ => {
                        return Err(format!(
                            "the witness holds a different tree of the same size: this log forked from what the witness saw ({})",
                            answer.trim()
                        ));
                    }
                },
                422 => {
                    return Err(
                        "the witness refused the consistency proof from its checkpoint: this log does not extend the tree the witness holds (forked or rewritten); keep both as evidence and run `phivault audit verify`"
                            .into(),
                    );
                }
                403 | 404 => {
                    return Err(format!(
                        "the witness does not follow this log or its key (HTTP {status}: {}); add this node's origin and audit/log.pub to the witness's audit.witness_logs",
                        answer.trim()
                    ));
                }
                s => return Err(format!("the witness answered HTTP {s}: {}", answer.trim())),
            }
        }
        Err("the witness's size kept changing; retried at the next checkpoint".into())
    }

    /// The cosignature lines of a `200` answer: with
    /// `audit.witness_cosigners`, those that verify under one of them, and
    /// at least one must; without, every signature line, unchecked.
    fn cosignatures(&self, note: &str, answer: &str) -> Result<String, String> {
        let lines = answer.lines().filter(|l| l.starts_with('\u{2014}'));
        if self.cosigners.is_empty() {
            return Ok(lines.map(|l| format!("{l}\n")).collect());
        }
        let good: String = lines
            .filter(|l| {
                let one = format!("{note}{l}\n");
                self.cosigners.iter().any(|k| k.verify(&one).is_ok())
            })
            .map(|l| format!("{l}\n"))
            .collect();
        if good.is_empty() {
            return Err(
                "the witness answered 200 without a cosignature from a key in audit.witness_cosigners; the checkpoint is not counted as witnessed"
                    .into(),
            );
        }
        Ok(good)
    }

    /// Keeps the checkpoint with the witness's cosignature lines.
    fn keep_cosigned(&self, note: &str, lines: &str) {
        if lines.is_empty() {
            return;
        }
        let r = self
            .cosigned
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                phivault_keystore::atomic::write_atomic(
                    &self.cosigned,
                    format!("{note}{lines}").as_bytes(),
                )
            });
        if let Err(e) = r {
            tracing::warn!(error = %e, "audit witness: keeping the cosigned checkpoint failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_from_routes() {
        assert_eq!(
            route_op("POST", "/v1/transit/encrypt/{name}"),
            "transit.encrypt"
        );
        assert_eq!(
            route_op("GET", "/v1/transit/keys/{name}"),
            "transit.keys.get"
        );
        assert_eq!(route_op("DELETE", "/v1/subjects/{id}"), "subjects.delete");
        assert_eq!(route_op("GET", "unmatched"), "unmatched.get");
    }

    #[test]
    fn id_hashes_are_keyed_and_typed() {
        let k = HmacKey::new(HmacAlgorithm::Sha256, &[7; 32]);
        let a = id_hash(&k, "subject", "P-1");
        assert_eq!(a.len(), 64);
        assert_ne!(a, id_hash(&k, "record", "P-1"));
        assert_ne!(
            a,
            id_hash(
                &HmacKey::new(HmacAlgorithm::Sha256, &[8; 32]),
                "subject",
                "P-1"
            )
        );
        assert!(!a.contains("P-1"));
    }
}
