//! The unsealed keystore: the root key in memory, the rings' version keys
//! unwrapped on demand, and every lifecycle operation as an atomic,
//! MACed rewrite of the keystore file under an exclusive lock.

use crate::atomic;
use crate::location::Location;
use crate::model::{Body, KeyKind, KeystoreFile, Purpose, Ring, Seal, Version, VersionState};
use crate::{KeystoreError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use phivault_core::crypto::{self, HmacAlgorithm, HmacKey};
use phivault_core::keys::{DerivedKey, KeyDeriver, KeyError, KeyRingName, KeyUse, KeyVersion};
use phivault_core::secret::SecretKey;
use phivault_core::shamir;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Keystore file name inside the data dir.
pub const KEYSTORE_FILE: &str = "keystore.json";
/// Dev-mode key file name inside the data dir.
pub const DEV_KEY_FILE: &str = "dev-unseal.key";
const LOCK_FILE: &str = "keystore.lock";
const MAC_LABEL: &[u8] = b"phivault keystore mac v1\x00";
/// Default rotation policy for new rings, in days (SP 800-57 Pt.1 §5.3.6
/// suggests an originator-usage period of up to 2 years for symmetric
/// data-encryption keys; we default to one).
pub const DEFAULT_MAX_AGE_DAYS: u32 = 365;
/// Default Shamir parameters.
pub const DEFAULT_SHARES: (u8, u8) = (3, 5);

pub(crate) fn now() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 ns")
        .format(&Rfc3339)
        .expect("RFC 3339")
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The longest auto-rotation period (10 years).
const MAX_AUTO_ROTATE_SECS: u64 = 10 * 365 * 86_400;

fn age_secs(ts: &str) -> i64 {
    OffsetDateTime::parse(ts, &Rfc3339)
        .map(|t| (OffsetDateTime::now_utc() - t).whole_seconds())
        .unwrap_or(0)
}

fn age_days(ts: &str) -> i64 {
    OffsetDateTime::parse(ts, &Rfc3339)
        .map(|t| (OffsetDateTime::now_utc() - t).whole_days())
        .unwrap_or(0)
}

/// How to seal a new keystore.
pub enum InitMethod {
    /// K-of-N Shamir shares of the unseal key.
    Shamir {
        /// K.
        threshold: u8,
        /// N.
        shares: u8,
    },
    /// A passphrase.
    Passphrase {
        /// The passphrase.
        passphrase: phivault_core::secret::SecretBytes,
        /// PBKDF2 iterations (≥ 600 000).
        iterations: u32,
    },
    /// Dev mode: the unseal key in a file beside the data.
    Dev,
}

/// What `init` hands back: shares to print once (Shamir only).
pub struct InitOutcome {
    /// The keystore id.
    pub keystore_id: String,
    /// Encoded shares; empty unless the method is Shamir.
    pub shares: Vec<phivault_core::secret::SecretBytes>,
}

fn keystore_path(dir: &Path) -> PathBuf {
    dir.join(KEYSTORE_FILE)
}

/// Whether the location holds a keystore.
pub fn exists(loc: impl Into<Location>) -> bool {
    let loc = loc.into();
    match &loc.shared {
        Some(s) => matches!(s.read(), Ok(Some(_))),
        None => keystore_path(&loc.dir).exists(),
    }
}

/// Reads and parses the keystore document without unsealing (public
/// metadata only).
pub fn read_file(loc: impl Into<Location>) -> Result<KeystoreFile> {
    read_file_from(&loc.into(), true)
}

/// [`read_file`]; without `fresh`, a shared document may come from the
/// copy its adapter keeps (no network on a key use).
fn read_file_from(loc: &Location, fresh: bool) -> Result<KeystoreFile> {
    let bytes = match &loc.shared {
        Some(s) => if fresh { s.read() } else { s.read_cached() }
            .map_err(|e| {
                KeystoreError::Io(format!("reading the keystore from {}", s.describe()), e)
            })?
            .ok_or_else(|| KeystoreError::NotInitialized(PathBuf::from(s.describe())))?,
        None => {
            let path = keystore_path(&loc.dir);
            fs::read(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => KeystoreError::NotInitialized(loc.dir.clone()),
                _ => KeystoreError::Io(format!("reading {}", path.display()), e),
            })?
        }
    };
    let file: KeystoreFile =
        serde_json::from_slice(&bytes).map_err(|e| KeystoreError::Corrupt(e.to_string()))?;
    if file.body.format != "phivault-keystore" {
        return Err(KeystoreError::Corrupt("not a phivault keystore".into()));
    }
    if file.body.version != 1 {
        return Err(KeystoreError::UnsupportedVersion(file.body.version));
    }
    Ok(file)
}

fn mac_key(root: &SecretKey) -> Result<HmacKey> {
    let mut k = [0u8; 32];
    crypto::kbkdf_ctr_hmac_sha256(root, MAC_LABEL, &mut k)?;
    let key = HmacKey::new(HmacAlgorithm::Sha256, &k);
    zeroize::Zeroize::zeroize(&mut k);
    Ok(key)
}

fn mac_body(root: &SecretKey, body: &Body) -> Result<Vec<u8>> {
    let canon = serde_json::to_vec(body).expect("body serializes");
    Ok(mac_key(root)?.sign(&[&canon]))
}

fn write_file(loc: &Location, root: &SecretKey, body: &Body) -> Result<()> {
    let file = KeystoreFile {
        body: body.clone(),
        mac: B64.encode(mac_body(root, body)?),
    };
    let json = serde_json::to_vec_pretty(&file).expect("serializes");
    if let Some(s) = &loc.shared {
        return s.write(&json, body.generation).map_err(|e| {
            KeystoreError::Io(format!("writing the keystore to {}", s.describe()), e)
        });
    }
    let path = keystore_path(&loc.dir);
    atomic::write_atomic(&path, &json)
        .map_err(|e| KeystoreError::Io(format!("writing {}", path.display()), e))
}

/// An exclusive lock on the keystore (a file lock in the data dir, or the
/// shared document's lock), held for the length of a read-modify-write.
#[allow(dead_code)]
enum Lock {
    File(File),
    Shared(Box<dyn Send>),
}

fn lock(loc: &Location) -> Result<Lock> {
    if let Some(s) = &loc.shared {
        return s.lock().map(Lock::Shared).map_err(|e| {
            KeystoreError::Io(format!("locking the keystore in {}", s.describe()), e)
        });
    }
    let p = loc.dir.join(LOCK_FILE);
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| KeystoreError::Io(format!("opening {}", p.display()), e))?;
    f.lock()
        .map_err(|e| KeystoreError::Io(format!("locking {}", p.display()), e))?;
    Ok(Lock::File(f))
}

/// Creates a new keystore at `loc` (a data dir, or a shared document).
/// Refuses if one exists.
pub fn init(loc: impl Into<Location>, method: InitMethod) -> Result<InitOutcome> {
    let loc = loc.into();
    let dir = loc.dir.as_path();
    if !dir.exists() {
        // Owner-only from the start: the data dir holds the keystore and
        // the agent's socket folder.
        std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(|e| KeystoreError::Io(format!("creating {}", dir.display()), e))?;
    }
    let _l = lock(&loc)?;
    if exists(&loc) {
        return Err(KeystoreError::AlreadyInitialized(PathBuf::from(
            loc.describe(),
        )));
    }
    atomic::clean_stale_temps(dir);
    let id: [u8; 8] = crypto::random_array()?;
    let unseal_key = crypto::generate_key()?;
    let root = crypto::generate_key()?;
    let mut shares_out = Vec::new();
    let seal = match method {
        InitMethod::Shamir { threshold, shares } => {
            let set: [u8; 8] = crypto::random_array()?;
            for s in shamir::split(unseal_key.expose_secret(), threshold, shares, set)? {
                shares_out.push(s.encode());
            }
            Seal::Shamir {
                threshold,
                shares,
                share_set: hex(&set),
            }
        }
        InitMethod::Passphrase {
            passphrase,
            iterations,
        } => {
            let salt: [u8; crypto::PBKDF2_SALT_LEN] = crypto::random_array()?;
            let derived =
                crypto::pbkdf2_hmac_sha256(passphrase.expose_secret(), &salt, iterations)?;
            let body = new_body(
                id,
                Seal::Passphrase {
                    iterations,
                    salt: B64.encode(salt),
                },
                &derived,
                &root,
            )?;
            write_file(&loc, &root, &body)?;
            return Ok(InitOutcome {
                keystore_id: hex(&id),
                shares: vec![],
            });
        }
        InitMethod::Dev => {
            // The key file is written first: a crash before the keystore
            // lands leaves only a stale key file, and init can run again.
            let kf = dir.join(DEV_KEY_FILE);
            atomic::write_atomic(&kf, B64.encode(unseal_key.expose_secret()).as_bytes())
                .map_err(|e| KeystoreError::Io(format!("writing {}", kf.display()), e))?;
            Seal::Dev {
                key_file: DEV_KEY_FILE.into(),
            }
        }
    };
    let body = new_body(id, seal, &unseal_key, &root)?;
    write_file(&loc, &root, &body)?;
    Ok(InitOutcome {
        keystore_id: hex(&id),
        shares: shares_out,
    })
}

/// The keystore document's bytes as stored (sealed and MACed: no key in
/// the clear), for backups.
pub fn read_raw(loc: impl Into<Location>) -> Result<Vec<u8>> {
    let loc = loc.into();
    read_file(&loc)?; // parses: what is backed up is a keystore
    match &loc.shared {
        Some(s) => s
            .read()
            .map_err(|e| {
                KeystoreError::Io(format!("reading the keystore from {}", s.describe()), e)
            })?
            .ok_or_else(|| KeystoreError::NotInitialized(PathBuf::from(s.describe()))),
        None => {
            let path = keystore_path(&loc.dir);
            fs::read(&path).map_err(|e| KeystoreError::Io(format!("reading {}", path.display()), e))
        }
    }
}

/// Installs a keystore document (from a backup) where none exists, byte
/// for byte, so its MAC still holds. It is parsed and checked first.
pub fn install_raw(loc: impl Into<Location>, doc: &[u8]) -> Result<()> {
    let loc = loc.into();
    let file: KeystoreFile =
        serde_json::from_slice(doc).map_err(|e| KeystoreError::Corrupt(e.to_string()))?;
    if file.body.format != "phivault-keystore" {
        return Err(KeystoreError::Corrupt("not a phivault keystore".into()));
    }
    validate(&file.body)?;
    if !loc.dir.exists() {
        std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
            .create(&loc.dir)
            .map_err(|e| KeystoreError::Io(format!("creating {}", loc.dir.display()), e))?;
    }
    let _l = lock(&loc)?;
    if exists(&loc) {
        return Err(KeystoreError::AlreadyInitialized(PathBuf::from(
            loc.describe(),
        )));
    }
    match &loc.shared {
        Some(s) => s
            .write(doc, file.body.generation)
            .map_err(|e| KeystoreError::Io(format!("writing the keystore to {}", s.describe()), e)),
        None => {
            let path = keystore_path(&loc.dir);
            atomic::write_atomic(&path, doc)
                .map_err(|e| KeystoreError::Io(format!("writing {}", path.display()), e))
        }
    }
}

/// Moves the keystore file of `dir` into the shared document of `to`,
/// which must hold none yet, byte for byte (its MAC stays valid), then
/// deletes the file: a stale local copy would keep ring versions that are
/// later destroyed in the shared one (SECURITY.md §5). This is how a node
/// moves from the embedded default to PostgreSQL.
pub fn move_to_shared(dir: &Path, to: &Location) -> Result<()> {
    let Some(shared) = &to.shared else {
        return Err(KeystoreError::Corrupt(
            "the target is not a shared keystore".into(),
        ));
    };
    let _l = lock(to)?;
    if exists(to) {
        return Err(KeystoreError::AlreadyInitialized(PathBuf::from(
            shared.describe(),
        )));
    }
    let path = keystore_path(dir);
    let bytes =
        fs::read(&path).map_err(|e| KeystoreError::Io(format!("reading {}", path.display()), e))?;
    let file = read_file(dir)?;
    validate(&file.body)?;
    shared.write(&bytes, file.body.generation).map_err(|e| {
        KeystoreError::Io(format!("writing the keystore to {}", shared.describe()), e)
    })?;
    // Only once the shared copy is committed and reads back the same.
    if shared.read().ok().flatten().as_deref() != Some(&bytes[..]) {
        return Err(KeystoreError::Corrupt(
            "the shared keystore does not read back what was written; the local file is kept"
                .into(),
        ));
    }
    fs::remove_file(&path)
        .map_err(|e| KeystoreError::Io(format!("removing {}", path.display()), e))?;
    Ok(())
}

fn new_body(id: [u8; 8], seal: Seal, unseal_key: &SecretKey, root: &SecretKey) -> Result<Body> {
    Ok(Body {
        format: "phivault-keystore".into(),
        version: 1,
        keystore_id: hex(&id),
        created: now(),
        generation: 1,
        seal,
        wrapped_root: B64.encode(crypto::wrap_key(unseal_key, root.expose_secret())?),
        rings: BTreeMap::new(),
    })
}

/// A configuration change for [`Keystore::configure`].
#[derive(Debug, Clone, Default)]
pub struct RingConfig {
    /// New minimum decryption version.
    pub min_decryption_version: Option<u32>,
    /// New minimum encryption version (0 = primary only).
    pub min_encryption_version: Option<u32>,
    /// Allow or forbid deleting the ring.
    pub deletion_allowed: Option<bool>,
    /// Auto-rotation period in seconds (0 = off).
    pub auto_rotate_period_secs: Option<u64>,
}

/// A ring's public description, for `keys list`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RingInfo {
    /// Full name.
    pub name: String,
    /// Namespace part.
    pub namespace: String,
    /// Purpose.
    pub purpose: Purpose,
    /// Primary version, if any version is live.
    pub primary_version: Option<u32>,
    /// Age in days of the primary version.
    pub primary_age_days: i64,
    /// Rotation policy.
    pub max_age_days: u32,
    /// Whether the primary is older than the policy allows.
    pub rotation_overdue: bool,
    /// Minimum decryption version.
    pub min_decryption_version: u32,
    /// Disabled flag.
    pub disabled: bool,
    /// Key type.
    #[serde(default)]
    pub kind: KeyKind,
    /// Whether the ring may be deleted.
    #[serde(default)]
    pub deletion_allowed: bool,
    /// Lowest version callers may encrypt with (0 = primary only).
    #[serde(default)]
    pub min_encryption_version: u32,
    /// Auto-rotation period in seconds (0 = off).
    #[serde(default)]
    pub auto_rotate_period_secs: u64,
    /// Age in seconds of the primary version.
    #[serde(default)]
    pub primary_age_secs: i64,
    /// Every version.
    pub versions: Vec<VersionInfo>,
}

/// A version's public description.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct VersionInfo {
    /// Number.
    pub version: u32,
    /// Created.
    pub created: String,
    /// State.
    pub state: VersionState,
    /// Destroyed at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<String>,
}

/// A ring's metadata with its live version keys, as escrow moves it.
pub(crate) type RingExport = (String, Ring, Vec<(u32, SecretKey)>);

/// An unsealed keystore.
pub struct Keystore {
    loc: Location,
    root: SecretKey,
    state: RwLock<State>,
    /// When this keystore was opened, and (ns after that) when a key use
    /// last checked the file for changes.
    opened: std::time::Instant,
    checked_ns: std::sync::atomic::AtomicU64,
    recheck_ns: std::sync::atomic::AtomicU64,
}

/// Default bound on how stale a key use may see the keystore file: at most
/// this long after another process destroys, disables or raises the
/// minimum of a ring. Checking on every use (one stat(2)) cut envelope
/// round trips from 437 000/s to 156 000/s (BENCHMARKS.md). The key agent,
/// whose requests each cost a socket round trip anyway, checks every time
/// ([`Keystore::set_key_use_recheck`]).
const KEY_USE_RECHECK_NS: u64 = 1_000_000;

struct State {
    body: Body,
    /// Live ring keys, by ring name then version.
    keys: BTreeMap<String, BTreeMap<u32, SecretKey>>,
    /// (inode, length, mtime ns) of the file this state was read from, so
    /// a change by another process is noticed with one stat(2).
    stamp: Option<(u64, u64, i128)>,
}

fn file_stamp(loc: &Location) -> Option<(u64, u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    if let Some(s) = &loc.shared {
        return s.stamp().map(|g| (0, 0, i128::from(g)));
    }
    let m = fs::metadata(keystore_path(&loc.dir)).ok()?;
    Some((
        m.ino(),
        m.len(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    ))
}

/// Checks the invariants every keystore body must hold, before it is used
/// or written: valid ring names, versions strictly ascending from 1, a
/// wrapped key for every live version and none for destroyed ones, and a
/// minimum decryption version within the ring.
fn validate(body: &Body) -> Result<()> {
    for (name, ring) in &body.rings {
        KeyRingName::parse(name)
            .map_err(|_| KeystoreError::Corrupt(format!("bad key ring name '{name}'")))?;
        let mut last = 0;
        for v in &ring.versions {
            if v.version <= last {
                return Err(KeystoreError::Corrupt(format!(
                    "ring '{name}': versions not strictly ascending"
                )));
            }
            last = v.version;
            if (v.state == VersionState::Active) == v.wrapped.is_empty() {
                return Err(KeystoreError::Corrupt(format!(
                    "ring '{name}' version {}: key presence does not match its state",
                    v.version
                )));
            }
        }
        if ring.min_decryption_version == 0 || ring.min_decryption_version > last.max(1) {
            return Err(KeystoreError::Corrupt(format!(
                "ring '{name}': minimum decryption version out of range"
            )));
        }
    }
    Ok(())
}

impl core::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Keystore({}, <unsealed>)", self.loc.describe())
    }
}

fn unwrap_all(root: &SecretKey, body: &Body) -> Result<BTreeMap<String, BTreeMap<u32, SecretKey>>> {
    let mut keys = BTreeMap::new();
    for (name, ring) in &body.rings {
        for v in &ring.versions {
            if v.state == VersionState::Active {
                let w = B64
                    .decode(&v.wrapped)
                    .map_err(|_| KeystoreError::Corrupt("bad base64".into()))?;
                let k = crypto::unwrap_key256(root, &w).map_err(|_| KeystoreError::Tampered)?;
                keys.entry(name.clone())
                    .or_insert_with(BTreeMap::new)
                    .insert(v.version, k);
            }
        }
    }
    Ok(keys)
}

impl Keystore {
    /// Opens the keystore with its unseal key: unwraps the root, checks the MAC.
    pub fn open_with_unseal_key(loc: impl Into<Location>, unseal_key: &SecretKey) -> Result<Self> {
        let loc = loc.into();
        let file = read_file(&loc)?;
        let wrapped = B64
            .decode(&file.body.wrapped_root)
            .map_err(|_| KeystoreError::Corrupt("bad base64".into()))?;
        let root = crypto::unwrap_key256(unseal_key, &wrapped)
            .map_err(|_| KeystoreError::WrongUnsealKey)?;
        Self::open_with_root(&loc, root, file)
    }

    fn open_with_root(loc: &Location, root: SecretKey, file: KeystoreFile) -> Result<Self> {
        let mac = B64.decode(&file.mac).map_err(|_| KeystoreError::Tampered)?;
        let canon = serde_json::to_vec(&file.body).expect("serializes");
        mac_key(&root)?
            .verify(&[&canon], &mac)
            .map_err(|_| KeystoreError::Tampered)?;
        validate(&file.body)?;
        let keys = unwrap_all(&root, &file.body)?;
        Ok(Self {
            loc: loc.clone(),
            root,
            state: RwLock::new(State {
                body: file.body,
                keys,
                stamp: file_stamp(loc),
            }),
            opened: std::time::Instant::now(),
            checked_ns: std::sync::atomic::AtomicU64::new(0),
            recheck_ns: std::sync::atomic::AtomicU64::new(KEY_USE_RECHECK_NS),
        })
    }

    /// Dev mode: opens with the key file beside the data. Refused unless the
    /// keystore was created in dev mode.
    pub fn open_dev(loc: impl Into<Location>) -> Result<Self> {
        let loc = loc.into();
        let file = read_file(&loc)?;
        let Seal::Dev { key_file } = &file.body.seal else {
            return Err(KeystoreError::NotDevKeystore(file.body.seal.name()));
        };
        let p = loc.dir.join(key_file);
        let text = fs::read_to_string(&p)
            .map_err(|e| KeystoreError::Io(format!("reading {}", p.display()), e))?;
        let raw = zeroize::Zeroizing::new(
            B64.decode(text.trim())
                .map_err(|_| KeystoreError::Corrupt("dev key file".into()))?,
        );
        let key =
            SecretKey::from_slice(&raw).ok_or(KeystoreError::Corrupt("dev key file".into()))?;
        Self::open_with_unseal_key(&loc, &key)
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.loc.dir
    }

    /// Where the keystore document lives.
    pub fn location(&self) -> &Location {
        &self.loc
    }

    /// Public metadata snapshot.
    pub fn body(&self) -> Body {
        self.state.read().expect("lock").body.clone()
    }

    /// How often key uses look for changes other processes made to the
    /// keystore file (default 1 ms; `Duration::ZERO` = on every use).
    pub fn set_key_use_recheck(&self, every: std::time::Duration) {
        let ns = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX);
        self.recheck_ns
            .store(ns, std::sync::atomic::Ordering::Relaxed);
    }

    /// [`Self::refresh`], at most once per recheck interval: for the
    /// key-use hot path.
    fn refresh_for_key_use(&self) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let every = self.recheck_ns.load(Relaxed);
        let now = (self.opened.elapsed().as_nanos() as u64).saturating_add(every);
        if every > 0 && now.saturating_sub(self.checked_ns.load(Relaxed)) < every {
            return Ok(());
        }
        self.checked_ns.store(now, Relaxed);
        self.refresh()
    }

    /// Re-reads the file if another process changed it (one stat(2) when not).
    fn refresh(&self) -> Result<()> {
        self.refresh_if(false)
    }

    /// [`Self::refresh`]; with `force`, re-reads even when the stamp is
    /// unchanged (a shared document's stamp may lag another node's write).
    fn refresh_if(&self, force: bool) -> Result<()> {
        if !force
            && self
                .state
                .read()
                .expect("lock")
                .stamp
                .is_some_and(|s| Some(s) == file_stamp(&self.loc))
        {
            return Ok(());
        }
        let stamp = file_stamp(&self.loc);
        // Forced (under the lock): the stored document itself. Otherwise
        // (a key use saw the stamp move): the copy matching the stamp.
        let file = read_file_from(&self.loc, force)?;
        let cur = self.state.read().expect("lock").body.generation;
        if file.body.generation != cur {
            let fresh = Self::open_with_root(&self.loc, self.root.duplicate(), file)?;
            let st = fresh.state.into_inner().expect("lock");
            *self.state.write().expect("lock") = st;
        } else {
            // Same document: remember the stamp, so the next check is cheap.
            self.state.write().expect("lock").stamp = stamp;
        }
        Ok(())
    }

    /// Read-modify-write under the file lock: re-read, apply, bump the
    /// generation, MAC and write atomically, then update memory.
    fn mutate<T>(&self, f: impl FnOnce(&mut Body, &SecretKey) -> Result<T>) -> Result<T> {
        let _l = lock(&self.loc)?;
        // Under the lock the stored document is the truth: re-read a
        // shared one whatever its (possibly lagging) stamp says.
        self.refresh_if(self.loc.is_shared())?;
        let mut body = self.state.read().expect("lock").body.clone();
        let out = f(&mut body, &self.root)?;
        body.generation += 1;
        // Check before writing: a body that would not open again never
        // reaches the disk.
        validate(&body)?;
        let keys = unwrap_all(&self.root, &body)?;
        write_file(&self.loc, &self.root, &body)?;
        let stamp = file_stamp(&self.loc);
        *self.state.write().expect("lock") = State { body, keys, stamp };
        Ok(out)
    }

    /// Creates a ring with version 1.
    pub fn create_ring(&self, name: &KeyRingName, max_age_days: u32) -> Result<()> {
        self.create_ring_of(name, max_age_days, KeyKind::Aes256Gcm96)
    }

    /// Creates a ring of a given kind with version 1.
    pub fn create_ring_of(
        &self,
        name: &KeyRingName,
        max_age_days: u32,
        kind: KeyKind,
    ) -> Result<()> {
        if max_age_days == 0 {
            return Err(KeystoreError::Invalid(
                "max age must be at least 1 day".into(),
            ));
        }
        self.mutate(|body, root| {
            if body.rings.contains_key(name.as_str()) {
                return Err(KeystoreError::RingExists(name.to_string()));
            }
            let ts = now();
            let key = crypto::generate_key()?;
            body.rings.insert(
                name.to_string(),
                Ring {
                    purpose: Purpose::Encrypt,
                    created: ts.clone(),
                    max_age_days,
                    min_decryption_version: 1,
                    disabled: false,
                    versions: vec![Version {
                        version: 1,
                        created: ts,
                        state: VersionState::Active,
                        destroyed: None,
                        wrapped: B64.encode(crypto::wrap_key(root, key.expose_secret())?),
                    }],
                    kind,
                    deletion_allowed: false,
                    min_encryption_version: 0,
                    auto_rotate_period_secs: 0,
                },
            );
            Ok(())
        })
    }

    /// Adds a new version, which becomes primary. Returns its number.
    pub fn rotate(&self, name: &KeyRingName) -> Result<u32> {
        self.mutate(|body, root| {
            let ring = ring_mut(body, name)?;
            let v = ring.versions.last().map(|v| v.version).unwrap_or(0) + 1;
            let key = crypto::generate_key()?;
            ring.versions.push(Version {
                version: v,
                created: now(),
                state: VersionState::Active,
                destroyed: None,
                wrapped: B64.encode(crypto::wrap_key(root, key.expose_secret())?),
            });
            Ok(v)
        })
    }

    /// Destroys a version (crypto-shredding): its wrapped key is erased from
    /// the keystore. The primary version can't be destroyed; rotate first.
    pub fn destroy(&self, name: &KeyRingName, version: u32) -> Result<()> {
        self.mutate(|body, _| {
            let ring = ring_mut(body, name)?;
            let primary = primary(ring);
            let v = ring
                .versions
                .iter_mut()
                .find(|v| v.version == version)
                .ok_or_else(|| KeyError::UnknownVersion(name.to_string(), version))?;
            if v.state == VersionState::Destroyed {
                return Err(KeyError::Destroyed(name.to_string(), version).into());
            }
            if Some(version) == primary {
                return Err(KeystoreError::Invalid(format!(
                    "version {version} is the primary of '{name}'; rotate first (`phivault keys rotate {name}`)"
                )));
            }
            v.state = VersionState::Destroyed;
            v.destroyed = Some(now());
            v.wrapped.clear();
            Ok(())
        })
    }

    /// Sets the minimum decryption version.
    pub fn set_min_decryption_version(&self, name: &KeyRingName, min: u32) -> Result<()> {
        self.mutate(|body, _| {
            let ring = ring_mut(body, name)?;
            let p = primary(ring).unwrap_or(0);
            if min == 0 || min > p {
                return Err(KeystoreError::Invalid(format!(
                    "minimum decryption version must be 1..={p}"
                )));
            }
            ring.min_decryption_version = min;
            Ok(())
        })
    }

    /// Enables or disables a ring.
    pub fn set_disabled(&self, name: &KeyRingName, disabled: bool) -> Result<()> {
        self.mutate(|body, _| {
            ring_mut(body, name)?.disabled = disabled;
            Ok(())
        })
    }

    /// Sets the rotation policy.
    pub fn set_max_age(&self, name: &KeyRingName, days: u32) -> Result<()> {
        if days == 0 {
            return Err(KeystoreError::Invalid(
                "max age must be at least 1 day".into(),
            ));
        }
        self.mutate(|body, _| {
            ring_mut(body, name)?.max_age_days = days;
            Ok(())
        })
    }

    /// Applies a configuration change; fields left `None` stay as they are.
    pub fn configure(&self, name: &KeyRingName, c: &RingConfig) -> Result<()> {
        self.mutate(|body, _| {
            let ring = ring_mut(body, name)?;
            let p = primary(ring).unwrap_or(0);
            if let Some(min) = c.min_decryption_version {
                if min == 0 || min > p {
                    return Err(KeystoreError::Invalid(format!(
                        "min_decryption_version must be 1..={p}"
                    )));
                }
                ring.min_decryption_version = min;
            }
            if let Some(min) = c.min_encryption_version {
                if min > p {
                    return Err(KeystoreError::Invalid(format!(
                        "min_encryption_version must be 0..={p} (0 = the latest version)"
                    )));
                }
                ring.min_encryption_version = min;
            }
            if ring.min_encryption_version != 0
                && ring.min_encryption_version < ring.min_decryption_version
            {
                return Err(KeystoreError::Invalid(
                    "min_encryption_version must not be below min_decryption_version".into(),
                ));
            }
            if let Some(d) = c.deletion_allowed {
                ring.deletion_allowed = d;
            }
            if let Some(s) = c.auto_rotate_period_secs {
                if s != 0 && !(3600..=MAX_AUTO_ROTATE_SECS).contains(&s) {
                    return Err(KeystoreError::Invalid(
                        "auto_rotate_period must be 0 (off), or between 1h and 10 years".into(),
                    ));
                }
                ring.auto_rotate_period_secs = s;
            }
            Ok(())
        })
    }

    /// Deletes a whole ring, which must have `deletion_allowed`. Every
    /// version's key is gone: data under the ring is crypto-shredded.
    pub fn delete_ring(&self, name: &KeyRingName) -> Result<()> {
        self.mutate(|body, _| {
            let ring = ring_mut(body, name)?;
            if !ring.deletion_allowed {
                return Err(KeystoreError::Invalid(format!(
                    "key ring '{name}' does not allow deletion; set deletion_allowed first"
                )));
            }
            body.rings.remove(name.as_str());
            Ok(())
        })
    }

    /// A ring's kind (cheap: for the per-request path).
    pub fn ring_kind(&self, name: &KeyRingName) -> Result<KeyKind> {
        self.refresh_for_key_use()?;
        let st = self.state.read().expect("lock");
        st.body
            .rings
            .get(name.as_str())
            .map(|r| r.kind)
            .ok_or_else(|| KeyError::UnknownRing(name.to_string()).into())
    }

    /// One ring's public description.
    pub fn ring(&self, name: &KeyRingName) -> Result<RingInfo> {
        self.refresh_for_key_use()?;
        let st = self.state.read().expect("lock");
        st.body
            .rings
            .get(name.as_str())
            .map(|r| ring_info(name.as_str(), r))
            .ok_or_else(|| KeyError::UnknownRing(name.to_string()).into())
    }

    /// Lists rings, optionally in one namespace.
    pub fn list(&self, namespace: Option<&str>) -> Result<Vec<RingInfo>> {
        self.refresh()?;
        let st = self.state.read().expect("lock");
        Ok(st
            .body
            .rings
            .iter()
            .filter(|(n, _)| in_namespace(n, namespace))
            .map(|(n, r)| ring_info(n, r))
            .collect())
    }

    /// Imports ring versions (escrow restore). Fails if a ring exists.
    pub(crate) fn import(&self, rings: Vec<RingExport>) -> Result<Vec<String>> {
        self.mutate(|body, root| {
            let mut names = Vec::new();
            for (name, mut ring, keys) in rings {
                if body.rings.contains_key(&name) {
                    return Err(KeystoreError::RingExists(name));
                }
                for v in ring.versions.iter_mut() {
                    v.wrapped = match keys.iter().find(|(n, _)| *n == v.version) {
                        Some((_, k)) => B64.encode(crypto::wrap_key(root, k.expose_secret())?),
                        None => String::new(),
                    };
                }
                names.push(name.clone());
                body.rings.insert(name, ring);
            }
            Ok(names)
        })
    }

    /// For escrow export: the rings with their live keys.
    pub(crate) fn export(&self, namespace: Option<&str>) -> Result<Vec<RingExport>> {
        self.refresh()?;
        let st = self.state.read().expect("lock");
        Ok(st
            .body
            .rings
            .iter()
            .filter(|(n, _)| in_namespace(n, namespace))
            .map(|(n, r)| {
                let keys = r
                    .versions
                    .iter()
                    .filter_map(|v| {
                        st.keys
                            .get(n)
                            .and_then(|ring_keys| ring_keys.get(&v.version))
                            .map(|k| (v.version, k.duplicate()))
                    })
                    .collect();
                let mut r = r.clone();
                r.versions.iter_mut().for_each(|v| v.wrapped.clear());
                (n.clone(), r, keys)
            })
            .collect())
    }
}

/// Whether ring `name` is in `namespace` (every ring when `None`).
fn in_namespace(name: &str, namespace: Option<&str>) -> bool {
    namespace.is_none_or(|ns| name.split('/').next() == Some(ns))
}

fn ring_mut<'a>(body: &'a mut Body, name: &KeyRingName) -> Result<&'a mut Ring> {
    body.rings
        .get_mut(name.as_str())
        .ok_or_else(|| KeyError::UnknownRing(name.to_string()).into())
}

fn primary(ring: &Ring) -> Option<u32> {
    ring.versions
        .iter()
        .rev()
        .find(|v| v.state == VersionState::Active)
        .map(|v| v.version)
}

fn ring_info(name: &str, r: &Ring) -> RingInfo {
    let p = primary(r);
    let age = p
        .and_then(|p| r.versions.iter().find(|v| v.version == p))
        .map(|v| age_days(&v.created))
        .unwrap_or(0);
    RingInfo {
        name: name.to_string(),
        namespace: name.split('/').next().unwrap_or_default().to_string(),
        purpose: r.purpose,
        primary_version: p,
        primary_age_days: age,
        max_age_days: r.max_age_days,
        rotation_overdue: p.is_some() && age > r.max_age_days as i64,
        min_decryption_version: r.min_decryption_version,
        disabled: r.disabled,
        kind: r.kind,
        deletion_allowed: r.deletion_allowed,
        min_encryption_version: r.min_encryption_version,
        auto_rotate_period_secs: r.auto_rotate_period_secs,
        primary_age_secs: p
            .and_then(|p| r.versions.iter().find(|v| v.version == p))
            .map(|v| age_secs(&v.created))
            .unwrap_or(0),
        versions: r
            .versions
            .iter()
            .map(|v| VersionInfo {
                version: v.version,
                created: v.created.clone(),
                state: v.state,
                destroyed: v.destroyed.clone(),
            })
            .collect(),
    }
}

impl KeyDeriver for Keystore {
    fn primary_version(&self, ring: &KeyRingName) -> std::result::Result<KeyVersion, KeyError> {
        self.refresh_for_key_use()
            .map_err(|e| KeyError::Service(e.to_string()))?;
        let st = self.state.read().expect("lock");
        let r = st
            .body
            .rings
            .get(ring.as_str())
            .ok_or_else(|| KeyError::UnknownRing(ring.to_string()))?;
        if r.disabled {
            return Err(KeyError::Disabled(ring.to_string()));
        }
        primary(r)
            .and_then(KeyVersion::new)
            .ok_or_else(|| KeyError::UnknownRing(ring.to_string()))
    }

    fn derive(
        &self,
        ring: &KeyRingName,
        version: KeyVersion,
        usage: KeyUse,
        fixed_info: &[u8],
    ) -> std::result::Result<DerivedKey, KeyError> {
        // Another process may have destroyed, disabled or raised the
        // minimum of this ring since we read the file: a stat(2), at most once a millisecond, tells.
        self.refresh_for_key_use()
            .map_err(|e| KeyError::Service(e.to_string()))?;
        let st = self.state.read().expect("lock");
        let name = || ring.to_string();
        let r = st
            .body
            .rings
            .get(ring.as_str())
            .ok_or_else(|| KeyError::UnknownRing(name()))?;
        if r.disabled {
            return Err(KeyError::Disabled(name()));
        }
        let v = version.get();
        let meta = r
            .versions
            .iter()
            .find(|x| x.version == v)
            .ok_or_else(|| KeyError::UnknownVersion(name(), v))?;
        if meta.state == VersionState::Destroyed {
            return Err(KeyError::Destroyed(name(), v));
        }
        match usage {
            KeyUse::Encrypt
                if primary(r) != Some(v)
                    && (r.min_encryption_version == 0 || v < r.min_encryption_version) =>
            {
                return Err(KeyError::NotPrimary(name(), v));
            }
            KeyUse::Decrypt if v < r.min_decryption_version => {
                return Err(KeyError::BelowMinimum(name(), v, r.min_decryption_version));
            }
            _ => {}
        }
        let key = st
            .keys
            .get(ring.as_str())
            .and_then(|k| k.get(&v))
            .ok_or_else(|| KeyError::Destroyed(name(), v))?;
        DerivedKey::derive(key, fixed_info).map_err(|e| KeyError::Service(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the primary, then rotates the ring before the caller uses it:
    /// the race between a records create (or any envelope encrypt) and a
    /// rotation, made deterministic.
    struct RotatesAfterRead<'a>(&'a Keystore, std::sync::atomic::AtomicBool);

    impl KeyDeriver for RotatesAfterRead<'_> {
        fn primary_version(&self, r: &KeyRingName) -> std::result::Result<KeyVersion, KeyError> {
            let v = self.0.primary_version(r)?;
            if !self.1.swap(true, std::sync::atomic::Ordering::SeqCst) {
                self.0.rotate(r).unwrap();
            }
            Ok(v)
        }
        fn derive(
            &self,
            r: &KeyRingName,
            v: KeyVersion,
            u: KeyUse,
            f: &[u8],
        ) -> std::result::Result<DerivedKey, KeyError> {
            self.0.derive(r, v, u, f)
        }
    }

    #[test]
    fn an_encrypt_racing_a_rotation_uses_the_new_primary() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), InitMethod::Dev).unwrap();
        let ks = Keystore::open_dev(dir.path()).unwrap();
        let ring = KeyRingName::new("records", "p").unwrap();
        ks.create_ring(&ring, 90).unwrap();
        let racing = RotatesAfterRead(&ks, Default::default());
        let ct = phivault_core::envelope::encrypt(&racing, &ring, b"ctx", b"subject key").unwrap();
        assert_eq!(
            phivault_core::envelope::parse_header(&ct)
                .unwrap()
                .version
                .get(),
            2
        );
        let pt = phivault_core::envelope::decrypt(&ks, &ct, b"ctx").unwrap();
        assert_eq!(pt.as_slice(), b"subject key");
    }

    fn ring(created: &str, max_age_days: u32) -> Ring {
        Ring {
            purpose: Purpose::Encrypt,
            created: created.into(),
            max_age_days,
            min_decryption_version: 1,
            disabled: false,
            versions: vec![Version {
                version: 1,
                created: created.into(),
                state: VersionState::Active,
                destroyed: None,
                wrapped: String::new(),
            }],
            kind: KeyKind::default(),
            deletion_allowed: false,
            min_encryption_version: 0,
            auto_rotate_period_secs: 0,
        }
    }

    fn body_with(ring_: Ring) -> Body {
        Body {
            format: "phivault-keystore".into(),
            version: 1,
            keystore_id: "00".repeat(8),
            created: now(),
            generation: 1,
            seal: Seal::Dev {
                key_file: DEV_KEY_FILE.into(),
            },
            wrapped_root: String::new(),
            rings: [("prod/a".to_string(), ring_)].into(),
        }
    }

    /// Regression (review M1): bodies that would lock the keystore out or
    /// confuse rotation are refused before they are written.
    #[test]
    fn invalid_bodies_are_refused() {
        let mut r = ring(&now(), 30);
        r.versions[0].wrapped = "AAAA".into();
        assert!(validate(&body_with(r.clone())).is_ok());
        let mut no_key = r.clone();
        no_key.versions[0].wrapped.clear();
        assert!(
            validate(&body_with(no_key)).is_err(),
            "active version without a key"
        );
        let mut unsorted = r.clone();
        let mut v3 = unsorted.versions[0].clone();
        v3.version = 3;
        unsorted.versions.insert(0, v3);
        assert!(
            validate(&body_with(unsorted)).is_err(),
            "versions out of order"
        );
        let mut min = r.clone();
        min.min_decryption_version = 5;
        assert!(
            validate(&body_with(min)).is_err(),
            "minimum above the newest version"
        );
        let mut b = body_with(r);
        let ring_ = b.rings.remove("prod/a").unwrap();
        b.rings.insert("Not A Name".into(), ring_);
        assert!(validate(&b).is_err(), "bad ring name");
    }

    #[test]
    fn rotation_policy_flags_overdue_primaries() {
        let old = ring_info("prod/a", &ring("2020-01-01T00:00:00Z", 30));
        assert!(old.rotation_overdue);
        assert!(old.primary_age_days > 365);
        let fresh = ring_info("prod/b", &ring(&now(), 30));
        assert!(!fresh.rotation_overdue);
        assert_eq!(fresh.primary_age_days, 0);
    }
}
