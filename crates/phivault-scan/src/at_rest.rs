//! The at-rest scan of a phivault data dir.
//!
//! What it checks, each as one [`Finding`] with a stable id:
//!
//! - `at-rest/keystore-wrapped`: the keystore file holds only wrapped keys
//!   (the root key and every live ring version are 40-byte AES-KWP blobs,
//!   destroyed versions are empty);
//! - `at-rest/unseal-key`: no unseal key lies beside the data (dev mode);
//! - `at-rest/private-keys`: the CA key is sealed (an envelope), and which
//!   plaintext private keys the data dir holds (the TLS server key is one
//!   by design);
//! - `at-rest/records-ciphertext`: every value in the records database's
//!   protected columns is ciphertext in phivault's formats (docs/FORMAT.md
//!   §11): sealed values are PVF, plain values lie only under fields the
//!   collection's schema declares `plain`, tokens only under `token`
//!   fields, subject handles and blind indexes are short binary HMACs;
//! - `at-rest/subject-keys`: every subject key is an envelope (§3) under
//!   its collection's ring;
//! - `at-rest/data-files`: every other file is one phivault writes, or
//!   ciphertext in its stream or envelope format;
//! - `at-rest/key-rotation`: every ring's primary version is within its
//!   rotation policy (from the keystore file's public metadata);
//! - `at-rest/backup-exists` and `at-rest/backup-encrypted`: key escrow
//!   (and other) backups exist where the operator keeps them, and are
//!   ciphertext;
//! - `at-rest/permissions-data-dir`, `at-rest/permissions-key-files`,
//!   `at-rest/permissions-files`: 0700 data dir, 0600 key files, nothing
//!   writable by group or others (fail) or readable by them (warn);
//! - `at-rest/block-device`: whether the data dir's filesystem sits on a
//!   dm-crypt (LUKS) device. A warning, never a failure: phivault's own
//!   encryption covers the PHI, but full-disk encryption also covers
//!   swap-free temporary files, logs and metadata.
//!
//! The scan only reads. It opens the SQLite files read-only (a running
//! server may keep writing), never prints a value it reads, and never
//! names a record by its id (ids may be identifiers): evidence counts
//! values by collection and field path.

use crate::finding::{Finding, Status};
use base64::Engine;
use phivault_core::records::path::{ConcretePath, Segment, Step};
use phivault_core::records::schema::{Class, Schema};
use phivault_keystore::model::{KeystoreFile, Seal, VersionState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Length of a 256-bit key wrapped with AES-KWP (RFC 5649): 32 + 8.
const KWP_WRAPPED_LEN: usize = 40;
/// Smallest PVF field ciphertext: "PVF" ‖ 0x01 ‖ nonce ‖ commitment ‖ tag.
const PVF_MIN_LEN: usize = 4 + 32 + 32 + 16;
/// A sealed value of field format 2 (under its record's key): header, tag.
const PVF2_MIN_LEN: usize = 4 + 4 + 16;
/// The most files the walk looks at (a data dir holds dozens; this bounds
/// a scan pointed at the wrong folder).
const MAX_FILES: usize = 200_000;
/// Files larger than this are classified by their first bytes only.
const SNIFF_BYTES: usize = 64 << 10;

/// How to scan.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data dir.
    pub data_dir: PathBuf,
    /// Files or folders holding backups (key escrow files, encrypted
    /// copies). `DATA/backups` is looked at too when it exists.
    pub backups: Vec<PathBuf>,
    /// A backup older than this many days is a warning.
    pub backup_max_age_days: u32,
    /// Where `/proc` and `/sys` are (`/` but in tests).
    pub system_root: PathBuf,
    /// Run the PHI detector ([`crate::phi`]) over the data dir's files.
    pub phi_scan: bool,
}

impl Options {
    /// Defaults for `data_dir`: no extra backup locations, 30 days.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Options {
            data_dir: data_dir.into(),
            backups: Vec::new(),
            backup_max_age_days: 30,
            system_root: PathBuf::from("/"),
            phi_scan: true,
        }
    }
}

/// One key ring's age against its policy (public metadata only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingAge {
    /// `namespace/name`.
    pub ring: String,
    /// The primary (newest live) version.
    pub primary_version: u32,
    /// Days since the primary version was created.
    pub age_days: i64,
    /// The ring's rotation policy.
    pub max_age_days: u32,
    /// Whether the primary is older than the policy allows.
    pub overdue: bool,
}

/// What the records database holds, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsSummary {
    /// Collections (schemas) declared.
    pub collections: u64,
    /// Stored records.
    pub records: u64,
    /// Sealed (PVF) values seen.
    pub sealed_values: u64,
    /// FF1 tokens seen.
    pub tokens: u64,
    /// Plain values under plain-class fields.
    pub plain_values: u64,
    /// Wrapped subject keys.
    pub subject_keys: u64,
    /// Problems: `collection: path: what` → how many.
    pub violations: BTreeMap<String, u64>,
}

/// One backup file found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// Its path.
    pub path: String,
    /// `key-escrow`, `stream`, `envelope`, or `unencrypted`.
    pub kind: String,
    /// Whether its content is ciphertext.
    pub encrypted: bool,
    /// When it was made (the escrow's own `created`, else the mtime), RFC 3339.
    pub created: Option<String>,
    /// Days since then.
    pub age_days: Option<i64>,
    /// Rings it holds (escrow files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rings: Vec<String>,
    /// Whether it lies inside the data dir (the same media as the data).
    #[serde(default)]
    pub inside_data_dir: bool,
}

/// The filesystem and device under the data dir.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Mount point of the data dir's filesystem.
    pub mount_point: String,
    /// Filesystem type (`ext4`, `tmpfs`, `overlay`…).
    pub fs_type: String,
    /// Mount source (`/dev/mapper/…`, `tmpfs`…).
    pub source: String,
    /// `MAJ:MIN` of the device, as mountinfo gives it.
    pub device: Option<String>,
    /// Whether a dm-crypt device is in the stack.
    pub encrypted: bool,
    /// The devices walked, top first, e.g. `dm-1 (LVM-…)`, `dm-0 (CRYPT-LUKS2-…)`.
    pub stack: Vec<String>,
    /// One sentence for a person.
    pub note: String,
}

/// Everything one at-rest scan found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The data dir scanned.
    pub data_dir: String,
    /// Scan start, RFC 3339.
    pub scanned_at: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Graded findings.
    pub findings: Vec<Finding>,
    /// Key rings against their rotation policy.
    pub rings: Vec<RingAge>,
    /// The records database.
    pub records: Option<RecordsSummary>,
    /// Backups found.
    pub backups: Vec<BackupFile>,
    /// The device under the data dir.
    pub block_device: BlockDevice,
    /// Files in the data dir phivault did not write (relative paths).
    pub unknown_files: Vec<String>,
}

impl Report {
    /// The worst status among the findings.
    pub fn status(&self) -> Status {
        crate::finding::worst(&self.findings)
    }
}

/// Runs the scan. `progress` is told the step being worked on. Never
/// fails: what can't be read becomes a failed (or, where nothing is at
/// stake, informational) finding.
pub fn scan(opts: &Options, progress: &dyn Fn(&str)) -> Report {
    let start = Instant::now();
    let scanned_at = now_rfc3339();
    let dir = &opts.data_dir;
    let mut findings = Vec::new();

    progress("reading the keystore");
    let (ks, ks_finding) = keystore(dir);
    findings.push(ks_finding);
    findings.push(unseal_key(dir, ks.as_ref()));

    progress("walking the data dir");
    let walk = walk(dir);
    findings.push(private_keys(dir, &walk));

    progress("checking the records database");
    let (records, rec_findings) = records(dir);
    findings.extend(rec_findings);
    findings.push(data_files(dir, &walk));

    let rings = ks.as_ref().map(ring_ages).unwrap_or_default();
    findings.push(rotation(ks.is_some(), &rings));

    progress("looking for backups");
    let backups = find_backups(opts);
    let live_rings: Vec<String> = ks
        .as_ref()
        .map(|k| {
            k.body
                .rings
                .iter()
                .filter(|(_, r)| r.versions.iter().any(|v| v.state == VersionState::Active))
                .map(|(n, _)| n.clone())
                .collect()
        })
        .unwrap_or_default();
    findings.extend(backup_findings(opts, &backups, &live_rings));

    progress("checking permissions");
    findings.extend(permissions(dir, &walk));

    if opts.phi_scan {
        progress("looking for PHI in the data dir's files");
        findings.push(phi_files(dir));
    }

    progress("finding the block device");
    let block_device = block_device(dir, &opts.system_root);
    findings.push(block_finding(&block_device));

    Report {
        data_dir: shown(&dir.to_string_lossy()),
        scanned_at,
        duration_ms: start.elapsed().as_millis() as u64,
        findings,
        rings,
        records,
        backups,
        block_device,
        unknown_files: walk.unknown.clone(),
    }
}

/// RFC 3339 UTC, whole seconds.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc().unix_timestamp())
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn days_since(rfc: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(rfc, &time::format_description::well_known::Rfc3339).ok()?;
    Some((time::OffsetDateTime::now_utc() - t).whole_days())
}

// ---------------------------------------------------------------- keystore

fn b64_len(s: &str) -> Option<usize> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .map(|b| b.len())
}

/// Parses the keystore file without unsealing it; a parse error names only
/// the line and column (serde's messages can quote the offending value).
fn keystore(dir: &Path) -> (Option<KeystoreFile>, Finding) {
    const ID: &str = "at-rest/keystore-wrapped";
    const TITLE: &str = "The keystore holds only wrapped keys";
    let path = dir.join(phivault_keystore::store::KEYSTORE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (
                None,
                Finding::new(ID, TITLE, Status::Info, "no keystore in this data dir").fix(
                    "create one with `phivault init` (or point --data-dir at the right folder)",
                ),
            );
        }
        Err(e) => {
            return (
                None,
                Finding::new(
                    ID,
                    TITLE,
                    Status::Fail,
                    format!(
                        "cannot read {}: {}",
                        shown(&path.to_string_lossy()),
                        e.kind()
                    ),
                )
                .fix("run the scan as the user that owns the data dir"),
            );
        }
    };
    let file: KeystoreFile = match serde_json::from_slice(&bytes) {
        Ok(f) => f,
        Err(e) => {
            return (
                None,
                Finding::new(
                    ID,
                    TITLE,
                    Status::Fail,
                    format!(
                        "keystore.json is not a phivault keystore file (JSON error at line {} column {}): it may hold something else than wrapped keys",
                        e.line(),
                        e.column()
                    ),
                )
                .fix("restore keystore.json from a backup; never edit it by hand"),
            );
        }
    };
    let mut bad = Vec::new();
    if b64_len(&file.body.wrapped_root) != Some(KWP_WRAPPED_LEN) {
        bad.push("the root key is not a 40-byte AES-KWP blob".to_string());
    }
    let mut live = 0;
    let mut destroyed = 0;
    for (name, ring) in &file.body.rings {
        for v in &ring.versions {
            match v.state {
                VersionState::Active => {
                    live += 1;
                    if b64_len(&v.wrapped) != Some(KWP_WRAPPED_LEN) {
                        bad.push(format!("{name} v{}: not a 40-byte AES-KWP blob", v.version));
                    }
                }
                VersionState::Destroyed => {
                    destroyed += 1;
                    if !v.wrapped.is_empty() {
                        bad.push(format!(
                            "{name} v{}: destroyed, but its wrapped key is still in the file",
                            v.version
                        ));
                    }
                }
            }
        }
    }
    let f = if bad.is_empty() {
        Finding::new(
            ID,
            TITLE,
            Status::Pass,
            format!(
                "root key and {live} live key version(s) in {} ring(s) are AES-256-KWP-wrapped; {destroyed} destroyed version(s) hold no key",
                file.body.rings.len()
            ),
        )
    } else {
        Finding::new(ID, TITLE, Status::Fail, bad.join("; "))
            .fix("restore keystore.json from a backup made by phivault; never edit it by hand")
    };
    (Some(file), f)
}

fn unseal_key(dir: &Path, ks: Option<&KeystoreFile>) -> Finding {
    const ID: &str = "at-rest/unseal-key";
    const TITLE: &str = "No unseal key is stored beside the data";
    let dev_file = dir.join(phivault_keystore::store::DEV_KEY_FILE);
    match ks.map(|k| &k.body.seal) {
        Some(Seal::Dev { key_file }) => Finding::new(
            ID,
            TITLE,
            Status::Fail,
            format!(
                "DEV keystore: its unseal key is a plaintext file ({key_file}) beside the keystore; anyone who can read the data dir can decrypt everything"
            ),
        )
        .fix("never put real PHI here: create a keystore with `phivault init` (Shamir shares) in a new data dir"),
        _ if dev_file.exists() => Finding::new(
            ID,
            TITLE,
            Status::Fail,
            format!("{} exists beside the keystore", phivault_keystore::store::DEV_KEY_FILE),
        )
        .fix("delete the stray dev unseal key file"),
        Some(Seal::Shamir { threshold, shares, .. }) => Finding::new(
            ID,
            TITLE,
            Status::Pass,
            format!("the unseal key exists only as {threshold}-of-{shares} Shamir shares held by custodians"),
        ),
        Some(Seal::Passphrase { iterations, .. }) => Finding::new(
            ID,
            TITLE,
            Status::Pass,
            format!("the unseal key is derived from a passphrase (PBKDF2-HMAC-SHA-256, {iterations} iterations), never stored"),
        ),
        None => Finding::new(ID, TITLE, Status::Info, "no keystore"),
    }
}

fn ring_ages(ks: &KeystoreFile) -> Vec<RingAge> {
    ks.body
        .rings
        .iter()
        .filter(|(_, r)| !r.disabled)
        .filter_map(|(name, r)| {
            let v = r
                .versions
                .iter()
                .rfind(|v| v.state == VersionState::Active)?;
            let age_days = days_since(&v.created).unwrap_or(0);
            Some(RingAge {
                ring: name.clone(),
                primary_version: v.version,
                age_days,
                max_age_days: r.max_age_days,
                overdue: age_days > i64::from(r.max_age_days),
            })
        })
        .collect()
}

fn rotation(have_keystore: bool, rings: &[RingAge]) -> Finding {
    const ID: &str = "at-rest/key-rotation";
    const TITLE: &str = "Every key ring's primary version is within its rotation policy";
    if !have_keystore {
        return Finding::new(ID, TITLE, Status::Info, "no keystore to check");
    }
    let overdue: Vec<String> = rings
        .iter()
        .filter(|r| r.overdue)
        .map(|r| format!("{} ({} d > {} d)", r.ring, r.age_days, r.max_age_days))
        .collect();
    if overdue.is_empty() {
        let oldest = rings.iter().map(|r| r.age_days).max().unwrap_or(0);
        Finding::new(
            ID,
            TITLE,
            Status::Pass,
            format!(
                "{} enabled ring(s), oldest primary {oldest} day(s); from the keystore file's metadata (authenticated only at unseal)",
                rings.len()
            ),
        )
    } else {
        Finding::new(
            ID,
            TITLE,
            Status::Fail,
            format!("rotation overdue: {}", overdue.join(", ")),
        )
        .fix("rotate each overdue ring: `phivault keys rotate RING` (transit keys: POST /v1/transit/keys/NAME/rotate; collections: `phivault records rotate C`)")
    }
}

// ---------------------------------------------------------------- the walk

/// What a file in the data dir is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// Holds key material (wrapped or not): 0600.
    Key,
    /// A database, the audit trail, certificates, locks: phivault's own.
    Own,
    /// Ciphertext in phivault's stream or envelope format.
    Ciphertext,
    /// Not phivault's.
    Unknown,
}

struct WalkedFile {
    rel: String,
    mode: u32,
    uid: u32,
    is_dir: bool,
    /// A symlink's own mode (0777) means nothing.
    symlink: bool,
    kind: FileKind,
    private_key_pem: bool,
}

#[derive(Default)]
struct Walk {
    root_mode: Option<u32>,
    root_uid: u32,
    files: Vec<WalkedFile>,
    unknown: Vec<String>,
    /// The same, unmasked, to read them (never printed).
    unknown_rel: Vec<String>,
    ciphertext_files: usize,
    truncated: bool,
}

fn sniff(path: &Path, len: u64) -> Vec<u8> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(len.min(SNIFF_BYTES as u64) as usize);
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(SNIFF_BYTES as u64).read_to_end(&mut buf);
    }
    buf
}

/// A path as evidence shows it: a file name can itself be PHI
/// (`smith-john-labs.csv`), so what looks like PHI is masked.
fn shown(p: &str) -> String {
    crate::phi::mask_text(p)
}

/// The header of an envelope in binary or text (`pve:…`) form.
fn envelope_header(b: &[u8]) -> Option<phivault_core::envelope::Header> {
    if let Ok(h) = phivault_core::envelope::parse_header(b) {
        return Some(h);
    }
    let text = std::str::from_utf8(b).ok()?;
    let bin = phivault_core::envelope::from_text(text).ok()?;
    phivault_core::envelope::parse_header(&bin).ok()
}

fn is_ciphertext(head: &[u8]) -> bool {
    head.starts_with(phivault_core::stream::MAGIC)
        || phivault_core::envelope::parse_header(head).is_ok()
        || head.starts_with(phivault_core::envelope::TEXT_PREFIX.as_bytes())
}

fn has_private_key_pem(head: &[u8]) -> bool {
    head.windows(16).any(|w| w == b"PRIVATE KEY-----")
}

fn classify(rel: &str, head: &[u8]) -> FileKind {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.ends_with(".key")
        || name.ends_with(".key.pve")
        || rel == phivault_keystore::store::KEYSTORE_FILE
        || has_private_key_pem(head)
    {
        return FileKind::Key;
    }
    let db = ["records.db", "subject-keys.db"].iter().any(|d| {
        name == *d
            || ["-wal", "-shm", "-journal"]
                .iter()
                .any(|s| name == format!("{d}{s}"))
    });
    if db || (name.ends_with(".lock") && !rel.contains('/')) || own_file(rel) {
        return FileKind::Own;
    }
    if is_ciphertext(head) {
        return FileKind::Ciphertext;
    }
    FileKind::Unknown
}

/// Whether `rel` is a file phivault writes in one of its folders: the
/// audit log's (phivault-audit), the CA's and the TLS files (pki, `ca
/// issue`), client certificates, the key agent's socket and lock.
fn own_file(rel: &str) -> bool {
    let Some((top, rest)) = rel.split_once('/') else {
        return false;
    };
    // A simple file name: no folder, no leading dot, no odd characters.
    let simple = |n: &str| {
        !n.is_empty()
            && !n.starts_with('.')
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    // keystore::atomic's temporary file (`.NAME.SUFFIX.tmp`), left by a
    // write in progress or a crash.
    let tmp = |n: &str| !n.contains('/') && n.starts_with('.') && n.ends_with(".tmp");
    match top {
        "audit" => {
            matches!(
                rest,
                "LOCK" | "leaves" | "checkpoints.log" | "checkpoint" | "log.pub" | "trail-id"
            ) || tmp(rest)
                || rest.strip_prefix("segments/").is_some_and(|n| {
                    n.strip_suffix(".seg")
                        .is_some_and(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
                })
                || rest
                    .strip_prefix("torn/")
                    .is_some_and(|n| simple(n) && n.ends_with(".bin"))
                || rest
                    .strip_prefix("inbox/")
                    .is_some_and(|n| simple(n) && n.ends_with(".json"))
        }
        "ca" => {
            matches!(
                rest,
                "ca.pem" | "ca.key.pve" | "ca.lock" | "index.json" | "crl.pem"
            ) || tmp(rest)
        }
        "tls" => matches!(rest, "server.pem" | "server.key") || tmp(rest),
        "clients" => {
            (simple(rest) && (rest.ends_with(".pem") || rest.ends_with(".key"))) || tmp(rest)
        }
        "run" => matches!(rest, "agent.sock" | "agent.lock"),
        _ => false,
    }
}

fn walk(dir: &Path) -> Walk {
    let mut w = Walk::default();
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return w;
    };
    w.root_mode = Some(meta.mode() & 0o7777);
    w.root_uid = meta.uid();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&path) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if w.files.len() >= MAX_FILES {
                w.truncated = true;
                return w;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_dir() {
                w.files.push(WalkedFile {
                    rel: r.clone(),
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    is_dir: true,
                    symlink: false,
                    kind: FileKind::Own,
                    private_key_pem: false,
                });
                stack.push((e.path(), r));
                continue;
            }
            if !ft.is_file() {
                // Sockets (the agent's), symlinks: permissions only.
                w.files.push(WalkedFile {
                    rel: r,
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    is_dir: false,
                    symlink: ft.is_symlink(),
                    kind: FileKind::Own,
                    private_key_pem: false,
                });
                continue;
            }
            let head = sniff(&e.path(), m.len());
            let kind = classify(&r, &head);
            match kind {
                FileKind::Unknown => {
                    w.unknown.push(shown(&r));
                    w.unknown_rel.push(r.clone());
                }
                FileKind::Ciphertext => w.ciphertext_files += 1,
                _ => {}
            }
            w.files.push(WalkedFile {
                private_key_pem: has_private_key_pem(&head),
                rel: r,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                is_dir: false,
                symlink: false,
                kind,
            });
        }
    }
    w
}

fn private_keys(dir: &Path, w: &Walk) -> Finding {
    const ID: &str = "at-rest/private-keys";
    const TITLE: &str = "The CA key is sealed; plaintext private keys are only the TLS keys";
    let mut fail = Vec::new();
    let mut warn = Vec::new();
    let mut tls = Vec::new();
    let ca_sealed = dir.join("ca").join("ca.key.pve");
    let mut notes = Vec::new();
    if ca_sealed.exists() {
        let ok = std::fs::read(&ca_sealed)
            .ok()
            .and_then(|b| envelope_header(&b))
            .is_some_and(|h| h.ring.as_str() == "phivault/ca");
        if ok {
            notes.push("CA key sealed under phivault/ca".to_string());
        } else {
            fail.push("ca/ca.key.pve is not an envelope under phivault/ca".to_string());
        }
    }
    for f in w.files.iter().filter(|f| f.private_key_pem) {
        match f.rel.split('/').next() {
            Some("tls") => tls.push(shown(&f.rel)),
            Some("clients") => warn.push(shown(&f.rel)),
            Some("ca") => fail.push(format!("{} (an unsealed CA key)", shown(&f.rel))),
            _ => warn.push(shown(&f.rel)),
        }
    }
    if !tls.is_empty() {
        notes.push(format!(
            "TLS server key(s) in plaintext by design, as every TLS server's: {}",
            tls.join(", ")
        ));
    }
    if !fail.is_empty() {
        Finding::new(ID, TITLE, Status::Fail, [fail, notes].concat().join("; ")).fix(
            "re-create the CA with `phivault ca init` (its key is sealed under the keystore) and delete unsealed CA keys",
        )
    } else if !warn.is_empty() {
        notes.push(format!(
            "other plaintext private keys in the data dir: {}",
            warn.join(", ")
        ));
        Finding::new(ID, TITLE, Status::Warn, notes.join("; ")).fix(
            "a client's key belongs to its client: hand it over and delete it here (dev mode writes clients/admin.key)",
        )
    } else if notes.is_empty() {
        Finding::new(ID, TITLE, Status::Pass, "no private key files")
    } else {
        Finding::new(ID, TITLE, Status::Pass, notes.join("; "))
    }
}

fn data_files(dir: &Path, w: &Walk) -> Finding {
    const ID: &str = "at-rest/data-files";
    const TITLE: &str = "Every file in the data dir is phivault's own or ciphertext in its formats";
    let mut ev = format!(
        "{} files and folders; {} ciphertext file(s) (stream/envelope)",
        w.files.len(),
        w.ciphertext_files
    );
    if w.truncated {
        ev += &format!("; stopped after {MAX_FILES} entries");
    }
    // Every file phivault did not write goes through the PHI detector
    // (masked hits only), whatever folder it lies in.
    let opts = crate::phi::Options::default();
    let mut phi: Vec<String> = Vec::new();
    for (rel, show) in w.unknown_rel.iter().zip(&w.unknown) {
        let r = crate::phi::scan_file(&dir.join(rel), &opts);
        if r.total_hits() > 0 {
            let ex: Vec<String> = r
                .hits
                .iter()
                .take(3)
                .map(|h| format!("{} {}", h.kind, h.masked))
                .collect();
            phi.push(format!(
                "{show} ({} likely PHI value(s): {})",
                r.total_hits(),
                ex.join(", ")
            ));
        }
    }
    if !phi.is_empty() {
        let n = phi.len();
        phi.truncate(10);
        return Finding::new(
            ID,
            TITLE,
            Status::Fail,
            format!(
                "{ev}; {} file(s) phivault did not write, {n} with likely PHI in plaintext: {}{}",
                w.unknown.len(),
                phi.join(", "),
                if n > phi.len() { ", …" } else { "" }
            ),
        )
        .fix("encrypt what must stay (`phivault encrypt`, or import it as records), then shred the plaintext and move the rest out of the data dir");
    }
    if w.unknown.is_empty() {
        Finding::new(ID, TITLE, Status::Pass, ev)
    } else {
        let shown: Vec<&str> = w.unknown.iter().take(10).map(String::as_str).collect();
        Finding::new(
            ID,
            TITLE,
            Status::Warn,
            format!(
                "{ev}; {} file(s) phivault did not write: {}{}",
                w.unknown.len(),
                shown.join(", "),
                if w.unknown.len() > shown.len() { ", …" } else { "" }
            ),
        )
        .fix("review them with `phivault scan phi DATA_DIR`; encrypt what must stay (`phivault encrypt`) and move the rest out of the data dir")
    }
}

/// Files the PHI detector leaves alone: key material (nothing to find,
/// and no reason to read it), locks and sockets, and the records
/// databases, which [`records`] checks structurally: the detector can't
/// tell an FF1 token (which keeps the shape of an SSN) from the value it
/// replaces.
const PHI_EXCLUDE: &[&str] = &[
    "run",
    "*.lock",
    "LOCK",
    "*.key",
    "*.pve",
    "keystore.json",
    "records.db*",
    "subject-keys.db*",
];

fn phi_files(dir: &Path) -> Finding {
    const ID: &str = "at-rest/phi-scan";
    const TITLE: &str = "No plaintext PHI in the data dir's files (PHI detector)";
    let opts = crate::phi::Options {
        exclude: PHI_EXCLUDE.iter().map(|s| s.to_string()).collect(),
        hidden: true,
        ..Default::default()
    };
    let r = crate::phi::scan(&[dir.to_path_buf()], &opts, &|_| {});
    let scanned = r.files.iter().filter(|f| f.skipped.is_none()).count();
    let hits = r.total_hits();
    if hits == 0 {
        return Finding::new(
            ID,
            TITLE,
            Status::Pass,
            format!(
                "{scanned} file(s) scanned, none with PHI (records.db and subject-keys.db are checked structurally above; key files are not read)"
            ),
        );
    }
    let types: Vec<String> = r
        .counts()
        .iter()
        .map(|(k, n)| format!("{} ×{n}", k.title()))
        .collect();
    let files: Vec<String> = r
        .files
        .iter()
        .filter(|f| f.total_hits() > 0)
        .take(10)
        .map(|f| {
            // The detector's paths are absolute; show them under the data dir.
            let p = f
                .path
                .strip_prefix(&*dir.to_string_lossy())
                .unwrap_or(&f.path);
            p.trim_start_matches('/').to_owned()
        })
        .collect();
    Finding::new(
        ID,
        TITLE,
        Status::Fail,
        format!(
            "{hits} likely PHI value(s) in plaintext: {} — in {}",
            types.join(", "),
            files.join(", ")
        ),
    )
    .fix(format!(
        "see them (masked) with `phivault scan phi {}`; encrypt what must stay (`phivault encrypt`, or import it as records), then shred the plaintext",
        shown(&dir.to_string_lossy())
    ))
}

// ---------------------------------------------------------------- records

/// The declared fields of one schema version, for matching paths.
struct Declared {
    fields: Vec<(Vec<Segment>, Class)>,
}

impl Declared {
    fn new(s: &Schema) -> Self {
        Declared {
            fields: s
                .fields
                .iter()
                .map(|f| (f.path.segments().to_vec(), f.decl.class))
                .collect(),
        }
    }

    /// The class of the declared field covering `steps` (a declared
    /// field's class covers its whole value; fields never nest).
    fn class_at(&self, steps: &[Step]) -> Option<Class> {
        self.fields
            .iter()
            .find(|(segs, _)| {
                segs.len() <= steps.len()
                    && segs.iter().zip(steps).all(|(s, t)| match (s, t) {
                        (Segment::Key(a), Step::Key(b)) => a == b,
                        (Segment::AnyIndex, Step::Index(_)) => true,
                        _ => false,
                    })
            })
            .map(|(_, c)| *c)
    }
}

/// A path shape safe for evidence: array indexes become `[*]`, keys that
/// are not plain identifiers become `<key>` (a key could be anything).
fn shape(steps: &[Step]) -> String {
    let mut s = String::new();
    for st in steps {
        match st {
            Step::Key(k)
                if !k.is_empty()
                    && k.len() <= 64
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Key(_) => s.push_str(if s.is_empty() { "<key>" } else { ".<key>" }),
            Step::Index(_) => s.push_str("[*]"),
        }
    }
    if s.is_empty() { "(root)".into() } else { s }
}

fn plain_leaves(v: &serde_json::Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                path.push(Step::Key(k.clone()));
                plain_leaves(x, path, out);
                path.pop();
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Step::Index(i));
                plain_leaves(x, path, out);
                path.pop();
            }
        }
        // Removed protected values leave null in arrays.
        serde_json::Value::Null => {}
        _ => out.push(path.clone()),
    }
}

/// Whether a sealed value is a PVF ciphertext (docs/FORMAT.md §11.3):
/// format 1, or format 2 in a record that names its record key (`k`).
fn is_pvf(b64: &str, has_record_key: bool) -> bool {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(b64)
        .is_ok_and(|b| {
            (b.len() >= PVF_MIN_LEN && b.starts_with(b"PVF\x01"))
                || (has_record_key && b.len() >= PVF2_MIN_LEN && b.starts_with(b"PVF\x02"))
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    v: u32,
    #[serde(default)]
    k: Option<String>,
    plain: serde_json::Value,
    #[serde(default)]
    sealed: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    tokens: BTreeMap<String, serde_json::Value>,
    mac: String,
}

struct RecordsCheck<'a> {
    sum: &'a mut RecordsSummary,
}

impl RecordsCheck<'_> {
    fn bad(&mut self, coll: &str, path: &str, what: &str) {
        *self
            .sum
            .violations
            .entry(format!("{coll}: {path}: {what}"))
            .or_default() += 1;
    }

    fn plain(&mut self, coll: &str, decl: &Declared, plain: &serde_json::Value, column: bool) {
        let mut leaves = Vec::new();
        plain_leaves(plain, &mut Vec::new(), &mut leaves);
        for l in leaves {
            if decl.class_at(&l) == Some(Class::Plain) {
                if !column {
                    self.sum.plain_values += 1;
                }
            } else {
                let what = if column {
                    "value in the plain column outside a plain-class field"
                } else {
                    "value stored in the clear outside a plain-class field"
                };
                self.bad(coll, &shape(&l), what);
            }
        }
    }

    fn record(
        &mut self,
        coll: &str,
        v: i64,
        plain_col: &str,
        body: &str,
        schemas: &HashMap<(String, u32), Declared>,
    ) {
        self.sum.records += 1;
        let Ok(b) = serde_json::from_str::<Body>(body) else {
            self.bad(
                coll,
                "(body)",
                "not a stored document (docs/FORMAT.md §11.5)",
            );
            return;
        };
        if i64::from(b.v) != v {
            self.bad(coll, "(body)", "schema version differs from the row's");
        }
        let Some(decl) = schemas.get(&(coll.to_owned(), b.v)) else {
            self.bad(
                coll,
                "(body)",
                "sealed under a schema version that does not exist",
            );
            return;
        };
        if !b.plain.is_object() {
            self.bad(coll, "(plain)", "skeleton is not a JSON object");
        }
        self.plain(coll, decl, &b.plain, false);
        match serde_json::from_str::<serde_json::Value>(plain_col) {
            Ok(p) => self.plain(coll, decl, &p, true),
            Err(_) => self.bad(coll, "(plain column)", "not JSON"),
        }
        for (p, val) in &b.sealed {
            let steps = ConcretePath::parse(p).map(|c| c.0).unwrap_or_default();
            match val.as_str() {
                Some(s) if is_pvf(s, b.k.is_some()) => self.sum.sealed_values += 1,
                _ => self.bad(coll, &shape(&steps), "sealed value is not a PVF ciphertext"),
            }
        }
        for (p, val) in &b.tokens {
            let steps = ConcretePath::parse(p).map(|c| c.0).unwrap_or_default();
            if decl.class_at(&steps) == Some(Class::Token) && val.is_string() {
                self.sum.tokens += 1;
            } else {
                self.bad(coll, &shape(&steps), "token outside a token-class field");
            }
        }
        if base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(&b.mac)
            .map_or(true, |m| m.len() != 32)
        {
            self.bad(coll, "(mac)", "record MAC is not 32 bytes");
        }
    }
}

fn open_ro(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(c)
}

fn records_db(dir: &Path, sum: &mut RecordsSummary) -> rusqlite::Result<()> {
    let c = open_ro(&dir.join("records.db"))?;
    let mut schemas = HashMap::new();
    {
        let mut st = c.prepare("SELECT name, version, schema FROM collections")?;
        let mut rows = st.query([])?;
        let mut names = BTreeSet::new();
        while let Some(r) = rows.next()? {
            let name: String = r.get(0)?;
            let version: i64 = r.get(1)?;
            let text: String = r.get(2)?;
            names.insert(name.clone());
            match Schema::parse_json(text.as_bytes()) {
                Ok(s) => {
                    schemas.insert((name, version as u32), Declared::new(&s));
                }
                Err(_) => {
                    *sum.violations
                        .entry(format!("{name}: (schema v{version}): does not parse"))
                        .or_default() += 1;
                }
            }
        }
        sum.collections = names.len() as u64;
    }
    let mut chk = RecordsCheck { sum };
    let mut st = c.prepare(
        "SELECT collection, v, plain, body, typeof(subject), length(subject) FROM records",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let coll: String = r.get(0)?;
        let v: i64 = r.get(1)?;
        let plain: String = r.get(2)?;
        let body: String = r.get(3)?;
        let (ty, len): (String, i64) = (r.get(4)?, r.get(5)?);
        if ty != "blob" || len != 32 {
            chk.bad(&coll, "(subject)", "subject handle is not a 32-byte HMAC");
        }
        chk.record(&coll, v, &plain, &body, &schemas);
    }
    let mut st = c.prepare(
        "SELECT collection, name, count(*) FROM record_index \
         WHERE typeof(value) != 'blob' OR length(value) > 32 GROUP BY collection, name",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let coll: String = r.get(0)?;
        let name: String = r.get(1)?;
        let n: i64 = r.get(2)?;
        *chk.sum
            .violations
            .entry(format!(
                "{coll}: index {}: blind index value is not a short binary HMAC",
                shape(&[Step::Key(name)])
            ))
            .or_default() += n as u64;
    }
    records_db_schema(&c, chk.sum)?;
    records_wal(dir, chk.sum);
    Ok(())
}

/// The tables and columns phivault writes in `records.db` (phivault-store's
/// schema); anything else was written around phivault.
const KNOWN_TABLES: &[(&str, &[&str])] = &[
    ("collections", &["name", "version", "schema", "created"]),
    (
        "records",
        &[
            "collection",
            "id",
            "subject",
            "v",
            "rev",
            "plain",
            "body",
            "updated",
        ],
    ),
    ("record_index", &["collection", "name", "value", "id"]),
    (
        "jobs",
        &[
            "id",
            "kind",
            "collection",
            "state",
            "cursor",
            "done",
            "total",
            "error",
            "params",
            "started",
            "updated",
        ],
    ),
];
/// The indexes phivault creates in `records.db`.
const KNOWN_INDEXES: &[&str] = &["records_subject", "records_version", "record_index_id"];
/// Rows read per unknown table or free-text column at most.
const MAX_ROWS_CHECKED: usize = 200_000;

/// The PHI the detector finds in `text` (confidence 0.5 or more, of the
/// given types), masked: the value itself is never kept.
fn phi_in(text: &str, field: Option<&str>, types: &[crate::phi::PhiType]) -> Vec<String> {
    let ctx = crate::phi::Context {
        field,
        clinical: false,
    };
    crate::phi::detect(text, &ctx)
        .into_iter()
        .filter(|c| c.confidence >= 0.5 && types.contains(&c.kind))
        .map(|c| format!("{} {}", c.kind, c.masked))
        .collect()
}

/// Text in one SQLite value (text, or a blob that is UTF-8).
fn value_text(v: rusqlite::types::ValueRef<'_>) -> Option<String> {
    match v {
        rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        rusqlite::types::ValueRef::Blob(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        _ => None,
    }
}

/// Adds `label: what` to the violations, with up to three masked PHI
/// examples.
fn phi_violation(sum: &mut RecordsSummary, label: &str, found: &[String]) {
    if found.is_empty() {
        return;
    }
    let ex: Vec<&str> = found.iter().take(3).map(String::as_str).collect();
    *sum.violations
        .entry(format!(
            "{label}: likely PHI in plaintext (PHI detector: {}{})",
            ex.join(", "),
            if found.len() > ex.len() { ", …" } else { "" }
        ))
        .or_default() += found.len() as u64;
}

/// Every table, view, trigger and column of `records.db` against the
/// schema phivault writes: what phivault never writes is a violation and
/// its text goes through the PHI detector; so do the free-text columns
/// that must never hold PHI (`records.id`, server-made hex; `jobs.params`,
/// `jobs.error`, `jobs.cursor`, job parameters, error messages and record
/// ids).
fn records_db_schema(c: &rusqlite::Connection, sum: &mut RecordsSummary) -> rusqlite::Result<()> {
    use crate::phi::PhiType;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut objects: Vec<(String, String)> = Vec::new();
    {
        let mut st = c.prepare("SELECT type, name FROM sqlite_master ORDER BY type, name")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            objects.push((r.get(0)?, r.get(1)?));
        }
    }
    for (ty, name) in &objects {
        if name.starts_with("sqlite_") {
            continue;
        }
        let known_table = KNOWN_TABLES.iter().find(|(t, _)| t == name);
        match ty.as_str() {
            "index" if KNOWN_INDEXES.contains(&name.as_str()) => continue,
            "table" if known_table.is_some() => {}
            _ => {
                *sum.violations
                    .entry(format!(
                        "records.db: unknown {ty} {}: unknown table/column in records.db: phivault never writes it",
                        shown(name)
                    ))
                    .or_default() += 1;
            }
        }
        if ty != "table" {
            continue;
        }
        let mut cols = Vec::new();
        {
            let mut st = c.prepare("SELECT name FROM pragma_table_info(?1)")?;
            let mut rows = st.query([name])?;
            while let Some(r) = rows.next()? {
                cols.push(r.get::<_, String>(0)?);
            }
        }
        // Columns to run the detector over: all of an unknown table's,
        // the unknown ones of a known table, and the free-text columns
        // that must never hold PHI.
        let mut check = Vec::new();
        for col in &cols {
            match known_table {
                None => check.push(col.clone()),
                Some((t, known)) => {
                    if !known.contains(&col.as_str()) {
                        *sum.violations
                            .entry(format!(
                                "records.db: unknown column {}.{}: unknown table/column in records.db: phivault never writes it",
                                shown(t),
                                shown(col)
                            ))
                            .or_default() += 1;
                        check.push(col.clone());
                    } else if matches!(
                        (*t, col.as_str()),
                        ("records", "id")
                            | ("record_index", "id")
                            | ("jobs", "params")
                            | ("jobs", "error")
                            | ("jobs", "cursor")
                    ) {
                        check.push(col.clone());
                    }
                }
            }
        }
        if check.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT {} FROM {} LIMIT {MAX_ROWS_CHECKED}",
            check
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            quote(name)
        );
        let mut found: Vec<Vec<String>> = vec![Vec::new(); check.len()];
        let mut st = c.prepare(&sql)?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            for (i, col) in check.iter().enumerate() {
                if let Some(t) = value_text(r.get_ref(i)?) {
                    found[i].extend(phi_in(&t, Some(col), &PhiType::ALL));
                }
            }
        }
        for (col, f) in check.iter().zip(&found) {
            phi_violation(
                sum,
                &format!("records.db: {}.{}", shown(name), shown(col)),
                f,
            );
        }
    }
    Ok(())
}

/// The raw bytes of `records.db-wal` through the PHI detector: old frames
/// keep values a checkpoint already moved (or a delete already removed)
/// from the database. Only e-mail addresses and names: FF1 tokens keep the
/// shape of the SSNs, phone numbers, MRNs and dates they replace, so in a
/// data dir with tokenised records those types would be false positives;
/// an FF1 token (digits or upper-case letters and digits) never looks like
/// an e-mail address or a name.
fn records_wal(dir: &Path, sum: &mut RecordsSummary) {
    use crate::phi::PhiType;
    let Ok(bytes) = std::fs::read(dir.join("records.db-wal")) else {
        return;
    };
    let mut found = Vec::new();
    for run in bytes.split(|b| !(b.is_ascii_graphic() || *b == b' ')) {
        if run.len() < 6 {
            continue;
        }
        if let Ok(t) = std::str::from_utf8(run) {
            found.extend(phi_in(t, None, &[PhiType::Email, PhiType::Name]));
        }
    }
    phi_violation(sum, "records.db-wal (raw bytes)", &found);
}

fn subject_keys_db(dir: &Path, sum: &mut RecordsSummary) -> rusqlite::Result<()> {
    let c = open_ro(&dir.join("subject-keys.db"))?;
    let mut st = c.prepare("SELECT collection, wrapped FROM subject_keys")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let coll: String = r.get(0)?;
        let wrapped: Vec<u8> = match r.get_ref(1)? {
            rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
            _ => Vec::new(),
        };
        let ok = phivault_core::envelope::parse_header(&wrapped)
            .is_ok_and(|h| h.ring.as_str() == format!("records/{coll}"));
        if ok {
            sum.subject_keys += 1;
        } else {
            *sum.violations
                .entry(format!(
                    "{coll}: (subject key): not an envelope under records/{coll}"
                ))
                .or_default() += 1;
        }
    }
    Ok(())
}

fn records(dir: &Path) -> (Option<RecordsSummary>, Vec<Finding>) {
    const ID: &str = "at-rest/records-ciphertext";
    const TITLE: &str = "Every protected value in the records database is ciphertext";
    const KID: &str = "at-rest/subject-keys";
    const KTITLE: &str =
        "Every subject key in subject-keys.db is wrapped under its collection's ring";
    let rdb = dir.join("records.db");
    let kdb = dir.join("subject-keys.db");
    if !rdb.exists() && !kdb.exists() {
        return (
            None,
            vec![
                Finding::new(
                    ID,
                    TITLE,
                    Status::Info,
                    "no records database (records.db) in this data dir",
                ),
                Finding::new(
                    KID,
                    KTITLE,
                    Status::Info,
                    "no subject-keys.db in this data dir",
                ),
            ],
        );
    }
    let mut sum = RecordsSummary::default();
    let mut out = Vec::new();
    let rerr = if rdb.exists() {
        records_db(dir, &mut sum).err()
    } else {
        None
    };
    let kerr = if kdb.exists() {
        subject_keys_db(dir, &mut sum).err()
    } else {
        None
    };
    let (rec_v, key_v): (Vec<_>, Vec<_>) = sum
        .violations
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .partition(|s| !s.contains("(subject key)"));
    let counts = format!(
        "{} collection(s), {} record(s): {} sealed (PVF) value(s), {} token(s), {} plain value(s) under plain-class fields",
        sum.collections, sum.records, sum.sealed_values, sum.tokens, sum.plain_values
    );
    out.push(match (&rerr, rec_v.is_empty()) {
        (Some(e), _) => Finding::new(
            ID,
            TITLE,
            Status::Fail,
            format!("cannot read records.db: {e}"),
        )
        .fix("run the scan as the data dir's owner; if the file is damaged, restore it from a backup"),
        (None, true) => Finding::new(ID, TITLE, Status::Pass, counts),
        (None, false) => Finding::new(
            ID,
            TITLE,
            Status::Fail,
            format!("{counts}; NOT ciphertext: {}", rec_v.join("; ")),
        )
        .fix("values were written around phivault's records API: find the writer, stop it, and re-import the records through the API (or delete the rows); then rotate the collection (`phivault records rotate C`)"),
    });
    out.push(match (&kerr, key_v.is_empty()) {
        (Some(e), _) => Finding::new(
            KID,
            KTITLE,
            Status::Fail,
            format!("cannot read subject-keys.db: {e}"),
        )
        .fix("run the scan as the data dir's owner"),
        (None, true) => Finding::new(
            KID,
            KTITLE,
            Status::Pass,
            format!("{} subject key(s), each an envelope under records/<collection>", sum.subject_keys),
        ),
        (None, false) => Finding::new(KID, KTITLE, Status::Fail, key_v.join("; "))
            .fix("a subject key not wrapped by phivault is a key in the clear: shred the affected subjects (`phivault records shred`) and restore their records from the source"),
    });
    (Some(sum), out)
}

// ---------------------------------------------------------------- backups

fn classify_backup(path: &Path, data_dir: &Path) -> BackupFile {
    let meta = std::fs::metadata(path).ok();
    let mtime = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| rfc3339(d.as_secs() as i64));
    let mut b = BackupFile {
        path: shown(&path.display().to_string()),
        kind: "unencrypted".into(),
        encrypted: false,
        created: mtime,
        age_days: None,
        rings: Vec::new(),
        inside_data_dir: std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .starts_with(data_dir),
    };
    let len = meta.map(|m| m.len()).unwrap_or(0);
    let head = sniff(path, len);
    if head.first() == Some(&b'{') && len <= 64 << 20 {
        if let Some(m) = std::fs::read(path)
            .ok()
            .and_then(|bytes| phivault_keystore::escrow::inspect(&bytes).ok())
        {
            b.kind = "key-escrow".into();
            // PBKDF2 below the floor is a weak wrapper, not encryption to rely on.
            b.encrypted = m.iterations >= phivault_core::crypto::PBKDF2_MIN_ITERATIONS;
            if !b.encrypted {
                b.kind = "key-escrow (weak PBKDF2)".into();
            }
            b.created = Some(m.created);
            b.rings = m.rings;
        }
    } else if head.starts_with(phivault_core::stream::MAGIC) {
        b.kind = "stream".into();
        b.encrypted = true;
    } else if head.starts_with(phivault_core::backup::MAGIC) {
        // `phivault backup create`: the header is read, not trusted (its
        // signature is checked by `phivault backup verify`).
        b.kind = "phivault backup".into();
        b.encrypted = true;
        if let Ok(h) = std::fs::File::open(path)
            .map_err(|_| ())
            .and_then(|mut f| phivault_core::backup::read_header(&mut f).map_err(|_| ()))
        {
            b.created = Some(h.meta.created);
        }
    } else if is_ciphertext(&head) {
        b.kind = "envelope".into();
        b.encrypted = true;
    }
    b.age_days = b.created.as_deref().and_then(days_since);
    b
}

fn find_backups(opts: &Options) -> Vec<BackupFile> {
    let mut places = opts.backups.clone();
    let own = opts.data_dir.join("backups");
    if own.is_dir() {
        places.push(own);
    }
    let mut files = BTreeSet::new();
    for p in places {
        if p.is_file() {
            files.insert(p);
        } else if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file())
                    && !e.file_name().to_string_lossy().starts_with('.')
                {
                    files.insert(e.path());
                }
            }
        }
    }
    let data_dir = std::fs::canonicalize(&opts.data_dir).unwrap_or(opts.data_dir.clone());
    files
        .iter()
        .map(|p| classify_backup(p, &data_dir))
        .collect()
}

fn backup_findings(opts: &Options, backups: &[BackupFile], live_rings: &[String]) -> Vec<Finding> {
    const EID: &str = "at-rest/backup-exists";
    const ETITLE: &str = "A recent key backup exists, apart from the data";
    const CID: &str = "at-rest/backup-encrypted";
    const CTITLE: &str = "Every backup is encrypted";
    let looked: Vec<String> = opts
        .backups
        .iter()
        .map(|p| shown(&p.display().to_string()))
        .chain(std::iter::once(shown(
            &opts.data_dir.join("backups").to_string_lossy(),
        )))
        .collect();
    if backups.is_empty() {
        return vec![
            Finding::new(
                EID,
                ETITLE,
                Status::Fail,
                format!("no backup found (looked in: {})", looked.join(", ")),
            )
            .fix("write a key escrow with `phivault keys backup --all -o /secure/elsewhere/keys.escrow` (under a backup passphrase kept apart from the unseal shares), then name its folder with --backup (or `backups` in the [evidence] config section); full-store backups (`phivault backup create`) are planned"),
            Finding::new(CID, CTITLE, Status::Info, "no backup to check"),
        ];
    }
    let escrows: Vec<&BackupFile> = backups.iter().filter(|b| b.kind == "key-escrow").collect();
    let newest = backups.iter().filter_map(|b| b.age_days).min();
    let mut covered = BTreeSet::new();
    for e in &escrows {
        covered.extend(e.rings.iter().cloned());
    }
    let missing: Vec<&str> = live_rings
        .iter()
        .filter(|r| !covered.contains(*r))
        .map(String::as_str)
        .collect();
    let inside = backups.iter().filter(|b| b.inside_data_dir).count();
    let mut ev = format!(
        "{} backup file(s), {} key escrow(s); newest {}",
        backups.len(),
        escrows.len(),
        newest.map_or("of unknown age".into(), |d| format!("{d} day(s) old"))
    );
    let mut status = Status::Pass;
    let mut fix = Vec::new();
    if newest.is_none_or(|d| d > i64::from(opts.backup_max_age_days)) {
        status = Status::Warn;
        ev += &format!(" (older than {} days)", opts.backup_max_age_days);
        fix.push("make a fresh backup (`phivault keys backup --all -o …`)".to_string());
    }
    if !missing.is_empty() {
        status = Status::Warn;
        ev += &format!("; ring(s) in no key escrow: {}", missing.join(", "));
        fix.push("back up every ring: `phivault keys backup --all`".into());
    }
    if inside > 0 {
        status = Status::Warn;
        ev += &format!("; {inside} backup(s) inside the data dir (same media as the data)");
        fix.push("keep backups on other media than the data dir".into());
    }
    let exists = Finding::new(EID, ETITLE, status, ev).fix(fix.join("; "));
    let plain: Vec<&str> = backups
        .iter()
        .filter(|b| !b.encrypted)
        .map(|b| b.path.as_str())
        .collect();
    let enc = if plain.is_empty() {
        Finding::new(
            CID,
            CTITLE,
            Status::Pass,
            format!(
                "{} file(s): key escrows (AES-256-GCM under PBKDF2-HMAC-SHA-256) or phivault ciphertext",
                backups.len()
            ),
        )
    } else {
        Finding::new(
            CID,
            CTITLE,
            Status::Fail,
            format!("not encrypted: {}", plain.join(", ")),
        )
        .fix("encrypt them (`phivault encrypt -k RING FILE -o FILE.pv`) and shred the plaintext copies, or write key backups with `phivault keys backup`")
    };
    vec![exists, enc]
}

// ---------------------------------------------------------------- permissions

fn permissions(dir: &Path, w: &Walk) -> Vec<Finding> {
    const DID: &str = "at-rest/permissions-data-dir";
    const DTITLE: &str = "The data dir is private to its owner (0700)";
    const KID: &str = "at-rest/permissions-key-files";
    const KTITLE: &str = "Key files are readable and writable by their owner only (0600)";
    const FID: &str = "at-rest/permissions-files";
    const FTITLE: &str =
        "No file or folder in the data dir is writable (or readable) by group or others";
    let d = match w.root_mode {
        None => Finding::new(
            DID,
            DTITLE,
            Status::Fail,
            format!(
                "{} does not exist or can't be read",
                shown(&dir.to_string_lossy())
            ),
        )
        .fix("point --data-dir at the phivault data dir"),
        Some(m) if m & 0o077 == 0 => {
            Finding::new(DID, DTITLE, Status::Pass, format!("mode {m:04o}"))
        }
        Some(m) => Finding::new(
            DID,
            DTITLE,
            Status::Fail,
            format!("mode {m:04o}: other users can reach the files inside"),
        )
        .fix(format!("chmod 700 {}", shown(&dir.to_string_lossy()))),
    };
    let loose_keys: Vec<String> = w
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Key && !f.is_dir)
        .filter(|f| f.mode & 0o077 != 0 || f.uid != w.root_uid)
        .map(|f| {
            if f.uid != w.root_uid {
                format!(
                    "{} (owned by uid {}, not the data dir's owner)",
                    shown(&f.rel),
                    f.uid
                )
            } else {
                format!("{} ({:04o})", shown(&f.rel), f.mode)
            }
        })
        .collect();
    let nkeys = w
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Key && !f.is_dir)
        .count();
    let k = if loose_keys.is_empty() {
        Finding::new(
            KID,
            KTITLE,
            Status::Pass,
            format!("{nkeys} key file(s), each 0600 or stricter and owned by the data dir's owner"),
        )
    } else {
        Finding::new(KID, KTITLE, Status::Fail, loose_keys.join(", ")).fix(format!(
            "chmod 600 each of them (and chown to the data dir's owner), e.g. `chmod 600 {}/{}`",
            shown(&dir.to_string_lossy()),
            loose_keys[0].split(" (").next().unwrap_or_default()
        ))
    };
    let writable: Vec<String> = w
        .files
        .iter()
        .filter(|f| f.mode & 0o022 != 0 && !f.symlink)
        .map(|f| format!("{} ({:04o})", shown(&f.rel), f.mode))
        .collect();
    // Readable by group or others: the data dir's 0700 guards them today,
    // but one `chmod` of the dir (or a copy elsewhere) exposes them. Key
    // files are graded (fail) by the key-file check above.
    let readable: Vec<String> = w
        .files
        .iter()
        .filter(|f| !f.symlink && f.kind != FileKind::Key && f.mode & 0o044 != 0)
        .map(|f| format!("{} ({:04o})", shown(&f.rel), f.mode))
        .collect();
    let f = if writable.is_empty() && readable.is_empty() {
        Finding::new(
            FID,
            FTITLE,
            Status::Pass,
            format!("{} entries checked", w.files.len()),
        )
    } else if writable.is_empty() {
        let shown: Vec<&str> = readable.iter().take(10).map(String::as_str).collect();
        Finding::new(
            FID,
            FTITLE,
            Status::Warn,
            format!(
                "{} entries checked; {} readable by group or others: {}{}",
                w.files.len(),
                readable.len(),
                shown.join(", "),
                if readable.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            ),
        )
        .fix(format!(
            "chmod -R go-rwx {}",
            crate::phi::mask_text(&dir.to_string_lossy())
        ))
    } else {
        let shown: Vec<&str> = writable.iter().take(10).map(String::as_str).collect();
        Finding::new(
            FID,
            FTITLE,
            Status::Fail,
            format!(
                "{} writable by group or others: {}{}",
                writable.len(),
                shown.join(", "),
                if writable.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            ),
        )
        .fix(format!(
            "chmod -R go-w {}",
            crate::phi::mask_text(&dir.to_string_lossy())
        ))
    };
    vec![d, k, f]
}

// ---------------------------------------------------------------- block device

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `MAJ:MIN`.
    pub device: String,
    /// Where it is mounted (octal escapes decoded).
    pub mount_point: String,
    /// Filesystem type.
    pub fs_type: String,
    /// Mount source.
    pub source: String,
}

fn unescape(s: &str) -> String {
    // mountinfo writes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mountinfo` (proc(5)); lines that don't parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let p: Vec<&str> = post.split(' ').collect();
            Some(Mount {
                device: f.get(2)?.to_string(),
                mount_point: unescape(f.get(4)?),
                fs_type: p.first()?.to_string(),
                source: unescape(p.get(1).unwrap_or(&"")),
            })
        })
        .collect()
}

/// The mount `path` (absolute, canonical) lives on: the longest mount
/// point that contains it; of equal ones the last (it hides the others).
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let mut best: Option<&Mount> = None;
    for m in mounts {
        if path.starts_with(&m.mount_point)
            && best.is_none_or(|b| {
                Path::new(&m.mount_point).components().count()
                    >= Path::new(&b.mount_point).components().count()
            })
        {
            best = Some(m);
        }
    }
    best
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// Walks a block device and the devices under it (`slaves/`), looking for
/// a dm-crypt target (device-mapper uuid `CRYPT-…`). `dev` is a folder in
/// sysfs (`/sys/dev/block/MAJ:MIN` or `/sys/class/block/NAME`).
pub fn crypt_stack(
    sys_class_block: &Path,
    dev: &Path,
    depth: usize,
    stack: &mut Vec<String>,
) -> bool {
    if depth > 8 {
        return false;
    }
    let name = std::fs::canonicalize(dev)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dev.display().to_string());
    let uuid = read_trim(&dev.join("dm").join("uuid"));
    // Only the uuid's type prefix: the rest names a volume, harmless but long.
    let kind = uuid
        .as_deref()
        .map(|u| u.split('-').take(2).collect::<Vec<_>>().join("-"));
    stack.push(match &kind {
        Some(k) if !k.is_empty() => format!("{name} ({k})"),
        _ => name,
    });
    if uuid.as_deref().is_some_and(|u| u.starts_with("CRYPT-")) {
        return true;
    }
    let mut found = false;
    if let Ok(rd) = std::fs::read_dir(dev.join("slaves")) {
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            found |= crypt_stack(sys_class_block, &sys_class_block.join(n), depth + 1, stack);
        }
    }
    found
}

/// Filesystems that are not on a local block device at all.
fn not_block(fs: &str) -> Option<&'static str> {
    Some(match fs {
        "tmpfs" | "ramfs" => "in memory (tmpfs: pages may go to swap)",
        "overlay" | "aufs" => {
            "an overlay filesystem (a container layer); the host's device is not visible here"
        }
        "nfs" | "nfs4" | "cifs" | "smb3" | "9p" | "virtiofs" | "ceph" | "glusterfs" => {
            "a network or host-shared filesystem; encryption at rest is the server's"
        }
        f if f.starts_with("fuse") => "a FUSE filesystem",
        _ => return None,
    })
}

/// Finds the filesystem and device of `dir` and whether dm-crypt is under it.
pub fn block_device(dir: &Path, system_root: &Path) -> BlockDevice {
    let mut b = BlockDevice::default();
    let Ok(canon) = std::fs::canonicalize(dir) else {
        b.note = "the data dir does not exist".into();
        return b;
    };
    let Ok(text) = std::fs::read_to_string(system_root.join("proc/self/mountinfo")) else {
        b.note = "cannot read /proc/self/mountinfo: the device is unknown".into();
        return b;
    };
    let mounts = parse_mountinfo(&text);
    let Some(m) = mount_of(&mounts, &canon) else {
        b.note = "no mount in /proc/self/mountinfo contains the data dir".into();
        return b;
    };
    b.mount_point = m.mount_point.clone();
    b.fs_type = m.fs_type.clone();
    b.source = m.source.clone();
    b.device = Some(m.device.clone());
    if let Some(why) = not_block(&m.fs_type) {
        b.note = format!("{}: {why}; not an encrypted block device", m.fs_type);
        return b;
    }
    let class = system_root.join("sys/class/block");
    let mut dev = system_root.join("sys/dev/block").join(&m.device);
    // btrfs and others report an anonymous device (major 0): follow the source.
    if m.device.starts_with("0:") || !dev.exists() {
        match std::fs::canonicalize(&m.source)
            .ok()
            .and_then(|p| p.file_name().map(|n| class.join(n)))
            .filter(|p| p.exists())
        {
            Some(p) => dev = p,
            None => {
                b.note = format!(
                    "{} on {}: no block device found in sysfs; not an encrypted block device as far as can be seen",
                    m.fs_type, m.source
                );
                return b;
            }
        }
    }
    let mut stack = Vec::new();
    b.encrypted = crypt_stack(&class, &dev, 0, &mut stack);
    b.stack = stack;
    b.note = if b.encrypted {
        format!(
            "{} on {}: dm-crypt in the device stack ({})",
            m.fs_type,
            m.source,
            b.stack.join(" → ")
        )
    } else {
        format!(
            "{} on {} ({}): no dm-crypt device underneath; not an encrypted block device",
            m.fs_type,
            m.source,
            b.stack.join(" → ")
        )
    };
    b
}

fn block_finding(b: &BlockDevice) -> Finding {
    const ID: &str = "at-rest/block-device";
    const TITLE: &str = "The data dir's filesystem is on an encrypted block device (dm-crypt/LUKS)";
    if b.encrypted {
        Finding::new(ID, TITLE, Status::Pass, b.note.clone())
    } else {
        Finding::new(ID, TITLE, Status::Warn, format!("{}; phivault's own encryption protects the PHI values, keys are wrapped, but file names, sizes, the audit trail and any temporary files are readable from the raw disk", b.note))
            .fix("put the data dir on a LUKS volume (cryptsetup luksFormat; SP 800-111), or record the decision in the [evidence] config section")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_longest_mount_wins_and_escapes_decode() {
        let t = "22 1 0:21 / /proc rw - proc proc rw\n\
                 27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                 45 27 253:1 / /srv/my\\040data rw - xfs /dev/mapper/vg-data rw\n\
                 46 27 0:40 / /tmp rw - tmpfs tmpfs rw\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 4);
        assert_eq!(m[2].mount_point, "/srv/my data");
        assert_eq!(
            mount_of(&m, Path::new("/srv/my data/phivault"))
                .unwrap()
                .device,
            "253:1"
        );
        assert_eq!(
            mount_of(&m, Path::new("/var/lib/x")).unwrap().fs_type,
            "ext4"
        );
        assert_eq!(mount_of(&m, Path::new("/tmp/a")).unwrap().fs_type, "tmpfs");
        assert!(mount_of(&m, Path::new("/srv/my")).unwrap().mount_point == "/");
    }

    fn fake_sys(root: &Path, mountinfo: &str) {
        std::fs::create_dir_all(root.join("proc/self")).unwrap();
        std::fs::write(root.join("proc/self/mountinfo"), mountinfo).unwrap();
        let class = root.join("sys/class/block");
        // dm-1 (LVM) on dm-0 (LUKS) on vda2.
        for (n, uuid) in [
            ("dm-1", Some("LVM-abc")),
            ("dm-0", Some("CRYPT-LUKS2-0123-luks")),
            ("vda2", None),
            ("vdb", None),
        ] {
            let d = class.join(n);
            std::fs::create_dir_all(d.join("slaves")).unwrap();
            if let Some(u) = uuid {
                std::fs::create_dir_all(d.join("dm")).unwrap();
                std::fs::write(d.join("dm/uuid"), format!("{u}\n")).unwrap();
            }
        }
        std::fs::create_dir_all(class.join("dm-1/slaves/dm-0")).unwrap();
        std::fs::create_dir_all(class.join("dm-0/slaves/vda2")).unwrap();
        std::fs::create_dir_all(root.join("sys/dev/block")).unwrap();
        std::os::unix::fs::symlink(class.join("dm-1"), root.join("sys/dev/block/253:1")).unwrap();
        std::os::unix::fs::symlink(class.join("vdb"), root.join("sys/dev/block/254:16")).unwrap();
    }

    #[test]
    fn dm_crypt_is_found_under_lvm_and_plain_disks_are_not() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let canon = std::fs::canonicalize(&data).unwrap();
        let sys = t.path().join("sys");
        fake_sys(
            &sys,
            &format!(
                "1 0 254:16 / / rw - ext4 /dev/vdb rw\n2 1 253:1 / {} rw - ext4 /dev/mapper/vg-data rw\n",
                canon.display()
            ),
        );
        let b = block_device(&data, &sys);
        assert!(b.encrypted, "{b:?}");
        assert_eq!(b.stack.len(), 2, "{b:?}");
        assert!(b.stack[1].contains("CRYPT-LUKS2"), "{b:?}");
        assert_eq!(block_finding(&b).status, Status::Pass);

        let sys2 = t.path().join("sys2");
        fake_sys(&sys2, "1 0 254:16 / / rw - ext4 /dev/vdb rw\n");
        let b = block_device(&data, &sys2);
        assert!(!b.encrypted);
        assert!(b.note.contains("not an encrypted block device"), "{b:?}");
        assert_eq!(block_finding(&b).status, Status::Warn);

        let sys3 = t.path().join("sys3");
        fake_sys(
            &sys3,
            &format!("1 0 0:40 / {} rw - tmpfs tmpfs rw\n", canon.display()),
        );
        let b = block_device(&data, &sys3);
        assert!(
            b.note.starts_with("tmpfs") && b.note.contains("not an encrypted block device"),
            "{b:?}"
        );
    }

    #[test]
    fn plain_values_must_lie_under_plain_fields() {
        let s = Schema::parse_json(
            br#"{"fields":{"name":{"class":"phi"},"visit.ward":{"class":"plain"},"tags[*]":{"class":"plain"},"mrn":{"class":"token"}}}"#,
        )
        .unwrap();
        let d = Declared::new(&s);
        let p = |s: &str| ConcretePath::parse(s).unwrap().0;
        assert_eq!(d.class_at(&p("visit.ward")), Some(Class::Plain));
        assert_eq!(d.class_at(&p("tags[3]")), Some(Class::Plain));
        assert_eq!(d.class_at(&p("name")), Some(Class::Phi));
        assert_eq!(d.class_at(&p("visit.bed")), None);
        assert_eq!(shape(&p("tags[3]")), "tags[*]");
        assert_eq!(shape(&p(r#"["a b"].c"#)), "<key>.c");

        let mut sum = RecordsSummary::default();
        let mut chk = RecordsCheck { sum: &mut sum };
        let mut schemas = HashMap::new();
        schemas.insert(("p".to_string(), 1), d);
        let pvf = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode([b"PVF\x01".as_slice(), &[7u8; 90]].concat());
        let mac = base64::engine::general_purpose::STANDARD_NO_PAD.encode([1u8; 32]);
        let good = format!(
            r#"{{"v":1,"plain":{{"visit":{{"ward":"3B"}},"tags":["a",null]}},"sealed":{{"name":"{pvf}","tags[1]":"{pvf}"}},"tokens":{{"mrn":"0012345"}},"mac":"{mac}"}}"#
        );
        chk.record("p", 1, r#"{"visit":{"ward":"3B"}}"#, &good, &schemas);
        assert!(sum.violations.is_empty(), "{:?}", sum.violations);
        assert_eq!((sum.sealed_values, sum.tokens, sum.plain_values), (2, 1, 2));

        let mut sum = RecordsSummary::default();
        let mut chk = RecordsCheck { sum: &mut sum };
        let bad = format!(
            r#"{{"v":1,"plain":{{"name":"Ysolde Brannagh"}},"sealed":{{"x":"not-ciphertext"}},"tokens":{{"name":"1234567"}},"mac":"{mac}"}}"#
        );
        chk.record("p", 1, "{}", &bad, &schemas);
        let v: Vec<&String> = sum.violations.keys().collect();
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v.iter().all(|k| !k.contains("Ysolde")), "{v:?}");
    }
}
