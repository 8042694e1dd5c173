//! The records service: collections, per-field encryption of records,
//! blind-index search, per-subject keys and shredding, and the background
//! jobs (rewrap, migrate) — everything behind `/v1/collections`,
//! `/v1/records` and `/v1/subjects`, without HTTP. The crypto is in
//! `phivault_core::records`; storage behind `phivault_store::RecordStore`.

use crate::metrics::CollectionLabel;
use phivault_core::envelope;
use phivault_core::keys::{KeyDeriver, KeyRingName, KeyVersion};
use phivault_core::records::document::{self, Sealed, View};
use phivault_core::records::{IndexKeys, RecordError, Schema, SubjectKey, schema::Class};
use phivault_keystore::Keystore;
use phivault_store::{
    JobRow, PlainFilter, RecordRow, RecordStore, RecordWrite, SchemaRow, StoreError, SubjectKeyRow,
    WriteMode,
};
use prometheus_client::metrics::{counter::Counter, family::Family};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings of the records service (`[records]` in the config file).
#[derive(Debug, Clone, Serialize)]
pub struct RecordsSettings {
    /// Largest record document, bytes.
    pub max_document_bytes: usize,
    /// Most records in one bulk request.
    pub max_bulk: usize,
    /// Records (or keys) per job step.
    pub job_batch: u32,
    /// Pause between job steps (throttles background load).
    pub job_pause: Duration,
    /// How often each collection ring is rotated, every subject key
    /// rewrapped and the old versions destroyed: the bound on how long a
    /// pre-shred database backup stays decryptable. `None`: never.
    pub key_epoch: Option<Duration>,
    /// How long unwrapped subject keys stay cached.
    pub key_cache_ttl: Duration,
}

impl Default for RecordsSettings {
    fn default() -> Self {
        Self {
            max_document_bytes: 256 << 10,
            max_bulk: 1000,
            job_batch: 500,
            job_pause: Duration::ZERO,
            key_epoch: Some(Duration::from_secs(86_400)),
            key_cache_ttl: Duration::from_secs(30),
        }
    }
}

/// Errors of the records service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    /// No such collection.
    #[error(
        "collection '{0}' does not exist; create it with POST /v1/collections/{0} (or `phivault records schema apply`)"
    )]
    UnknownCollection(String),
    /// No such record.
    #[error("record not found")]
    NotFound,
    /// No such index.
    #[error("collection has no index '{0}'; its indexes are: {1}")]
    UnknownIndex(String, String),
    /// No such job.
    #[error("job not found")]
    UnknownJob,
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// Schema, document or integrity errors from the core.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The record's subject key was destroyed.
    #[error(
        "the record's data subject was shredded: its key is destroyed and its data can't be read"
    )]
    Shredded,
    /// A concurrent writer won.
    #[error("the record changed while this request ran; retry")]
    Conflict,
    /// The record id exists.
    #[error("a record with this id exists")]
    Exists,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
    /// The keystore failed.
    #[error("keystore: {0}")]
    Keys(String),
}

impl From<StoreError> for RecordsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict => Self::Conflict,
            StoreError::Exists => Self::Exists,
            e => Self::Store(e),
        }
    }
}

impl RecordsError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownCollection(_) | Self::NotFound | Self::UnknownJob => 404,
            Self::UnknownIndex(..) | Self::Invalid(_) => 400,
            Self::Record(RecordError::Integrity { .. } | RecordError::Corrupt(_)) => 500,
            Self::Record(RecordError::Crypto(_) | RecordError::Envelope(_)) => 500,
            Self::Record(_) => 400,
            Self::Shredded => 410,
            Self::Conflict | Self::Exists => 409,
            Self::Store(StoreError::Unavailable(_)) => 503,
            // SQLite's SQLITE_FULL: out of disk space, not a server fault
            // (tests/faults.rs fills the data dir's disk).
            Self::Store(StoreError::Db(m)) if m.contains("database or disk is full") => 507,
            Self::Store(_) | Self::Keys(_) => 500,
        }
    }
}

type Result<T> = std::result::Result<T, RecordsError>;

/// Collection names: also key ring name parts.
pub fn valid_collection(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 56
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The ring that wraps a collection's subject keys.
pub fn data_ring(collection: &str) -> KeyRingName {
    KeyRingName::new("records", collection).expect("valid collection name")
}

/// The ring blind-index and handle keys derive from.
pub fn index_ring(collection: &str) -> KeyRingName {
    KeyRingName::new("records-index", collection).expect("valid collection name")
}

/// A loaded collection: every schema version and the index keys.
pub struct Collection {
    /// Name.
    pub name: String,
    /// Current version.
    pub version: u32,
    /// Schemas by version.
    pub schemas: BTreeMap<u32, Arc<Schema>>,
    /// Index and handle keys.
    pub index: IndexKeys,
    /// When it was loaded.
    loaded: Instant,
}

impl Collection {
    /// The current schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schemas[&self.version]
    }
}

/// A shred receipt.
#[derive(Debug, Clone, Serialize)]
pub struct ShredReceipt {
    /// Receipt id.
    pub receipt_id: String,
    /// When (RFC 3339).
    pub shredded_at: String,
    /// Per collection.
    pub collections: Vec<ShredEntry>,
    /// What this means for backups.
    pub backups: Value,
}

/// One collection's part of a shred.
#[derive(Debug, Clone, Serialize)]
pub struct ShredEntry {
    /// Collection.
    pub collection: String,
    /// Subject handle (hex): the only name the store had for the subject.
    pub subject_handle: String,
    /// Whether a key was destroyed.
    pub key_destroyed: bool,
    /// Records deleted with it.
    pub records_deleted: u64,
    /// The collection ring version that wrapped the destroyed key.
    pub wrapped_under_version: Option<u32>,
}

/// Unwrapped subject keys by (collection, handle), with when they were cached.
/// Keyed by handle alone (looked up without allocating); the collection is
/// checked on the entry, so equal handles of two collections can't mix.
type KeyCache = HashMap<Vec<u8>, (String, Instant, Arc<SubjectKey>)>;

/// The service.
pub struct Records {
    /// The store.
    pub store: Arc<dyn RecordStore>,
    /// Settings.
    pub settings: RecordsSettings,
    collections: Mutex<HashMap<String, Arc<Collection>>>,
    keys: Mutex<KeyCache>,
    jobs_running: Mutex<std::collections::HashSet<String>>,
    integrity: Family<CollectionLabel, Counter>,
    /// Where key lifecycle events that happen outside a request (the key
    /// epoch, destruction after a rewrap) are recorded.
    pub audit: std::sync::OnceLock<Arc<crate::audit::Trail>>,
}

const COLLECTION_TTL: Duration = Duration::from_secs(2);
const KEY_CACHE_MAX: usize = 100_000;
/// How long the destroy step waits for in-flight writes that wrapped a
/// key under the previous version.
const SWEEP_GRACE: Duration = Duration::from_secs(2);
/// Most candidates one search examines.
pub const MAX_CANDIDATES: u32 = 1000;

fn keys_err(e: impl std::fmt::Display) -> RecordsError {
    RecordsError::Keys(e.to_string())
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A fresh record id: 48 bits of milliseconds since 1970 then 80 random
/// bits, hex (32 characters), like a UUIDv7. Time-ordered ids append to
/// the store's primary-key B-tree instead of dirtying a random page per
/// insert (measured with `MODE=create scripts/profile-records.sh`); they reveal when a
/// record was created, which its `updated` column shows anyway.
pub fn new_id() -> String {
    let ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64;
    let rand = phivault_core::crypto::random_array::<10>().unwrap_or_default();
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..].copy_from_slice(&rand);
    hex::encode(b)
}

/// One record of a bulk result: the document or an error.
pub type Item = std::result::Result<Value, RecordsError>;

/// Runs CPU-bound work (a bulk request's crypto, on rayon) without
/// stalling the other tasks of a multi-threaded runtime's worker. On a
/// connection worker (a single-threaded runtime, `crate::workers`) it runs
/// in place: the worker's other connections wait for it, as they would for
/// any request's CPU.
pub(crate) fn cpu<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// JSON merge patch (RFC 7386). Small enough that a crate is not worth it.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl Records {
    /// A service over `store`.
    /// `integrity` counts integrity failures by collection (a metric).
    pub fn new(
        store: Arc<dyn RecordStore>,
        settings: RecordsSettings,
        integrity: Family<CollectionLabel, Counter>,
    ) -> Self {
        Self {
            integrity,
            store,
            settings,
            collections: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            jobs_running: Mutex::new(Default::default()),
            audit: std::sync::OnceLock::new(),
        }
    }

    fn key_event(&self, op: &str, coll: &str, detail: Value) {
        if let Some(t) = self.audit.get() {
            t.key_event(op, format!("records/{coll}"), None, detail);
        }
    }

    // ------------------------------------------------------------ collections

    /// Declares a collection, or a new version of its schema. Creates the
    /// key rings on first use. Returns the new version and, when existing
    /// records must be re-sealed (a field newly protected or indexed), the
    /// migration job's id.
    pub async fn put_collection(
        &self,
        ks: &Keystore,
        name: &str,
        schema_json: &[u8],
    ) -> Result<(u32, Option<String>)> {
        if !valid_collection(name) {
            return Err(RecordsError::Invalid(
                "collection names are 1-56 characters of a-z, 0-9, '_' and '-', starting with a letter or digit".into(),
            ));
        }
        let schema = Schema::parse_json(schema_json)?;
        let existing = self.store.schemas(name).await?;
        let prev = match existing.last() {
            Some(row) => Some(Schema::parse_json(row.schema.as_bytes())?),
            None => None,
        };
        if let Some(p) = &prev {
            check_evolution(p, &schema)?;
        }
        for ring in [data_ring(name), index_ring(name)] {
            match ks.create_ring(&ring, 365) {
                Ok(()) => {}
                Err(phivault_keystore::KeystoreError::RingExists(_)) => {}
                Err(e) => return Err(keys_err(e)),
            }
        }
        let version = existing.last().map_or(1, |r| r.version + 1);
        let text = serde_json::to_string(schema.decl()).expect("serializes");
        self.store
            .put_schema(SchemaRow {
                collection: name.into(),
                version,
                schema: text,
                created: now_unix(),
            })
            .await?;
        self.collections.lock().expect("lock").remove(name);
        let job = if version > 1 && self.store.count(name, Some(version)).await? > 0 {
            Some(
                self.start_job(name, "migrate", json!({ "to_version": version }))
                    .await?,
            )
        } else {
            None
        };
        Ok((version, job))
    }

    /// A collection, from the cache (refreshed every 2 s, so schema
    /// changes made by another process or node are seen).
    pub async fn collection(&self, ks: &Keystore, name: &str) -> Result<Arc<Collection>> {
        if let Some(c) = self.collections.lock().expect("lock").get(name)
            && c.loaded.elapsed() < COLLECTION_TTL
        {
            return Ok(c.clone());
        }
        if !valid_collection(name) {
            return Err(RecordsError::UnknownCollection(
                name.chars().take(56).collect(),
            ));
        }
        let rows = self.store.schemas(name).await?;
        let Some(last) = rows.last() else {
            return Err(RecordsError::UnknownCollection(name.into()));
        };
        let mut schemas = BTreeMap::new();
        let mut names = std::collections::BTreeSet::new();
        for r in &rows {
            let s = Schema::parse_json(r.schema.as_bytes())?;
            names.extend(s.indexes.iter().map(|i| i.name.clone()));
            schemas.insert(r.version, Arc::new(s));
        }
        let index = IndexKeys::derive(
            ks,
            &index_ring(name),
            KeyVersion::MIN,
            name,
            names.iter().map(String::as_str),
        )?;
        let c = Arc::new(Collection {
            name: name.into(),
            version: last.version,
            schemas,
            index,
            loaded: Instant::now(),
        });
        self.collections
            .lock()
            .expect("lock")
            .insert(name.into(), c.clone());
        Ok(c)
    }

    /// Every collection's current schema.
    pub async fn list_collections(&self) -> Result<Vec<SchemaRow>> {
        Ok(self.store.collections().await?)
    }

    // ------------------------------------------------------------ keys

    fn cached_key(&self, coll: &str, handle: &[u8]) -> Option<Arc<SubjectKey>> {
        let k = self.keys.lock().expect("lock");
        let (c, t, key) = k.get(handle)?;
        (c == coll && t.elapsed() < self.settings.key_cache_ttl).then(|| key.clone())
    }

    fn cache_key(&self, coll: &str, handle: Vec<u8>, key: Arc<SubjectKey>) {
        let mut k = self.keys.lock().expect("lock");
        if k.len() >= KEY_CACHE_MAX {
            k.clear();
        }
        k.insert(handle, (coll.to_owned(), Instant::now(), key));
    }

    /// The subject keys for `handles`, creating missing ones (also for a
    /// shredded subject that is written again: its old data stays shredded).
    ///
    /// Keys missing from the cache are not looked up first:
    /// a fresh key is offered for each, and the store keeps whichever key
    /// it already has (a racing writer's, or an older one). A lookup on
    /// this path was a read transaction per write, and with writes in
    /// flight SQLite drops a reader's page cache and remaps the database
    /// at every new commit: 20 % of the workers' CPU in a create
    /// (`MODE=create scripts/profile-records.sh`, BENCHMARKS.md). An
    /// unneeded fresh key costs one DRBG draw and one wrap.
    async fn subject_keys(
        &self,
        ks: &Keystore,
        coll: &str,
        handles: &[Vec<u8>],
    ) -> Result<Vec<Arc<SubjectKey>>> {
        let mut out: Vec<Option<Arc<SubjectKey>>> =
            handles.iter().map(|h| self.cached_key(coll, h)).collect();
        let missing: Vec<usize> = (0..handles.len()).filter(|&i| out[i].is_none()).collect();
        let mut uniq: Vec<Vec<u8>> = missing.iter().map(|&i| handles[i].clone()).collect();
        uniq.sort();
        uniq.dedup();
        let mut found: HashMap<Vec<u8>, Arc<SubjectKey>> = HashMap::new();
        if !uniq.is_empty() {
            let ring = data_ring(coll);
            let mut offered = Vec::with_capacity(uniq.len());
            let mut rows = Vec::with_capacity(uniq.len());
            for h in &uniq {
                let k = SubjectKey::generate()?;
                let wrapped = k.wrap(ks, &ring, coll, h)?;
                rows.push(SubjectKeyRow {
                    handle: h.clone(),
                    wrapped: wrapped.clone(),
                });
                offered.push((k, wrapped));
            }
            let stored = self.store.put_subject_keys(coll, rows).await?;
            for ((h, (k, wrapped)), w) in uniq.iter().zip(offered).zip(stored) {
                // Ours was stored: no need to unwrap what we just wrapped.
                let k = if w == wrapped {
                    k
                } else {
                    SubjectKey::unwrap(ks, &w, coll, h)?
                };
                found.insert(h.clone(), Arc::new(k));
            }
        }
        for (h, k) in &found {
            self.cache_key(coll, h.clone(), k.clone());
        }
        for &i in &missing {
            out[i] = found.get(&handles[i]).cloned();
        }
        Ok(out
            .into_iter()
            .map(|k| k.expect("every handle's key was cached or stored"))
            .collect())
    }

    /// The subject keys of stored rows: from the cache, else unwrapped
    /// from the key the row was read with. `None`: shredded.
    fn keys_for_rows(
        &self,
        ks: &Keystore,
        coll: &str,
        rows: &[&RecordRow],
    ) -> Result<Vec<Option<Arc<SubjectKey>>>> {
        rows.iter()
            .map(|r| {
                if let Some(k) = self.cached_key(coll, &r.subject) {
                    return Ok(Some(k));
                }
                let Some(w) = &r.subject_key else {
                    return Ok(None);
                };
                let k = Arc::new(SubjectKey::unwrap(ks, w, coll, &r.subject)?);
                self.cache_key(coll, r.subject.clone(), k.clone());
                Ok(Some(k))
            })
            .collect()
    }

    fn handle_of(c: &Collection, doc: &Value, id: &str) -> Result<Vec<u8>> {
        Ok(match document::subject_of(c.schema(), doc)? {
            Some(s) => c.index.subject_handle(&s),
            None => c.index.record_handle(id),
        })
    }

    // ------------------------------------------------------------ writes

    fn check_size(&self, doc: &Value) -> Result<()> {
        // Bodies are bounded by the HTTP limit; this bounds each document.
        let n = serde_json::to_vec(doc)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if n > self.settings.max_document_bytes {
            return Err(RecordsError::Invalid(format!(
                "record is {n} bytes; the limit is {} (records.max_document_bytes)",
                self.settings.max_document_bytes
            )));
        }
        Ok(())
    }

    fn seal_one(
        c: &Collection,
        id: &str,
        doc: &Value,
        key: &SubjectKey,
        handle: Vec<u8>,
        mode: WriteMode,
    ) -> Result<RecordWrite> {
        let Sealed {
            body,
            plain_json,
            indexes,
            ..
        } = document::seal(c.schema(), c.version, &c.name, id, doc, key, &c.index)?;
        Ok(RecordWrite {
            id: id.into(),
            subject: handle,
            version: c.version,
            plain: plain_json,
            body,
            indexes,
            mode,
        })
    }

    /// Creates records (all or none). Returns their ids.
    pub async fn create(&self, ks: &Keystore, coll: &str, docs: Vec<Value>) -> Result<Vec<String>> {
        let c = self.collection(ks, coll).await?;
        let ids: Vec<String> = docs.iter().map(|_| new_id()).collect();
        let mut handles = Vec::with_capacity(docs.len());
        for (d, id) in docs.iter().zip(&ids) {
            if docs.len() > 1 {
                self.check_size(d)?;
            }
            handles.push(Self::handle_of(&c, d, id)?);
        }
        let keys = self.subject_keys(ks, coll, &handles).await?;
        let seal = |i: usize| {
            let key = &keys[i];
            Self::seal_one(
                &c,
                &ids[i],
                &docs[i],
                key,
                handles[i].clone(),
                WriteMode::Create,
            )
        };
        let writes: Vec<RecordWrite> = if docs.len() >= 16 {
            use rayon::prelude::*;
            cpu(|| {
                (0..docs.len())
                    .into_par_iter()
                    .map(seal)
                    .collect::<Result<Vec<_>>>()
            })?
        } else {
            (0..docs.len()).map(seal).collect::<Result<_>>()?
        };
        self.store.write(coll, writes).await?;
        Ok(ids)
    }

    /// Opens a stored row (full), counting integrity failures.
    async fn open_row(&self, ks: &Keystore, c: &Collection, row: &RecordRow) -> Result<Value> {
        let key = self
            .keys_for_rows(ks, &c.name, &[row])?
            .pop()
            .flatten()
            .ok_or(RecordsError::Shredded)?;
        self.open_with(c, row, &key)
    }

    fn open_with(&self, c: &Collection, row: &RecordRow, key: &SubjectKey) -> Result<Value> {
        let integrity = |path: &str| {
            self.integrity_failure(
                &c.name,
                &row.id,
                RecordError::Integrity { path: path.into() },
            )
        };
        // The version in the body is MACed; opening under another schema
        // than the one it names fails the MAC check or this one.
        let v = document::body_version(&row.body).ok_or_else(|| integrity("(record)"))?;
        let schema = c
            .schemas
            .get(&v)
            .filter(|_| v == row.version)
            .ok_or_else(|| integrity("(schema version)"))?;
        document::open_full(schema, &c.name, &row.id, &row.body, key)
            .map_err(|e| self.integrity_failure(&c.name, &row.id, e))
    }

    /// Counts and logs an integrity failure (record id and field path
    /// only, never a value); other errors pass through.
    fn integrity_failure(&self, coll: &str, id: &str, e: RecordError) -> RecordsError {
        if let RecordError::Integrity { path } = &e {
            self.integrity
                .get_or_create(&CollectionLabel {
                    collection: coll.to_owned(),
                })
                .inc();
            tracing::error!(collection = coll, record = id, field = %path, "record integrity check failed: stored ciphertext modified or moved");
        }
        e.into()
    }

    fn render(c: &Collection, row: &RecordRow, full: Value, view: View) -> Result<Value> {
        let schema = c.schemas.get(&row.version).ok_or(RecordsError::NotFound)?;
        let doc = document::project(schema, full, view)?;
        Ok(json!({ "id": row.id, "rev": row.rev, "schema_version": row.version, "data": doc }))
    }

    /// Reads records by id in `view`; per-record results.
    pub async fn get(
        &self,
        ks: &Keystore,
        coll: &str,
        ids: Vec<String>,
        view: View,
    ) -> Result<Vec<Item>> {
        Ok(self.get_seen(ks, coll, ids, view).await?.0)
    }

    /// [`Self::get`], plus the data subjects whose records were opened
    /// (for the audit trail, which keeps only their HMACs).
    pub async fn get_seen(
        &self,
        ks: &Keystore,
        coll: &str,
        ids: Vec<String>,
        view: View,
    ) -> Result<(Vec<Item>, Vec<String>)> {
        let c = self.collection(ks, coll).await?;
        let rows = self.store.get(coll, ids).await?;
        let present: Vec<&RecordRow> = rows.iter().flatten().collect();
        let mut found = self.keys_for_rows(ks, coll, &present)?.into_iter();
        let keys: Vec<Option<Arc<SubjectKey>>> = rows
            .iter()
            .map(|r| r.as_ref().and_then(|_| found.next().flatten()))
            .collect();
        let open = |(row, key): (&Option<RecordRow>, &Option<Arc<SubjectKey>>)| {
            let mut subject = None;
            let item = (|| {
                let row = row.as_ref().ok_or(RecordsError::NotFound)?;
                let key = key.as_ref().ok_or(RecordsError::Shredded)?;
                let full = self.open_with(&c, row, key)?;
                subject = Self::subject_in(&c, row, &full);
                Self::render(&c, row, full, view)
            })();
            (item, subject)
        };
        let out: Vec<(Item, Option<String>)> = if rows.len() >= 16 {
            use rayon::prelude::*;
            cpu(|| rows.par_iter().zip(keys.par_iter()).map(open).collect())
        } else {
            rows.iter().zip(keys.iter()).map(open).collect()
        };
        let (items, subjects): (Vec<Item>, Vec<Option<String>>) = out.into_iter().unzip();
        Ok((items, subjects.into_iter().flatten().collect()))
    }

    /// The (normalized) subject ids of documents about to be written.
    /// An error (the collection can't be loaded) is the request's error:
    /// swallowing it would make a request wait out the database twice.
    pub async fn subjects_of(
        &self,
        ks: &Keystore,
        coll: &str,
        docs: &[Value],
    ) -> Result<Vec<String>> {
        let c = self.collection(ks, coll).await?;
        Ok(docs
            .iter()
            .filter_map(|d| document::subject_of(c.schema(), d).ok().flatten())
            .collect())
    }

    /// The (normalized) subject id of an opened record.
    fn subject_in(c: &Collection, row: &RecordRow, full: &Value) -> Option<String> {
        let schema = c.schemas.get(&row.version)?;
        document::subject_of(schema, full).ok().flatten()
    }

    /// Replaces a record's document (`patch`: merges an RFC 7386 patch
    /// into the current document instead). `rev`: only if still at it.
    pub async fn update(
        &self,
        ks: &Keystore,
        coll: &str,
        id: &str,
        doc: Value,
        patch: bool,
        rev: Option<u64>,
    ) -> Result<u64> {
        let c = self.collection(ks, coll).await?;
        for _attempt in 0..3 {
            let row = self
                .store
                .get(coll, vec![id.into()])
                .await?
                .pop()
                .flatten()
                .ok_or(RecordsError::NotFound)?;
            if rev.is_some_and(|r| r != row.rev) {
                return Err(RecordsError::Conflict);
            }
            let new = if patch {
                let mut cur = self.open_row(ks, &c, &row).await?;
                merge_patch(&mut cur, &doc);
                cur
            } else {
                doc.clone()
            };
            self.check_size(&new)?;
            let handle = Self::handle_of(&c, &new, id)?;
            // The same subject: its key came with the row.
            let same = (handle == row.subject)
                .then(|| self.keys_for_rows(ks, coll, &[&row]))
                .transpose()?
                .and_then(|mut k| k.pop().flatten());
            let key = match same {
                Some(k) => k,
                None => self
                    .subject_keys(ks, coll, std::slice::from_ref(&handle))
                    .await?
                    .remove(0),
            };
            let w = Self::seal_one(
                &c,
                id,
                &new,
                &key,
                handle,
                WriteMode::Replace(Some(row.rev)),
            )?;
            match self.store.write(coll, vec![w]).await {
                Ok(()) => return Ok(row.rev + 1),
                Err(StoreError::Conflict) if rev.is_none() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RecordsError::Conflict)
    }

    /// Deletes a record.
    pub async fn delete(&self, ks: &Keystore, coll: &str, id: &str) -> Result<()> {
        self.collection(ks, coll).await?;
        if self.store.delete(coll, id).await? {
            Ok(())
        } else {
            Err(RecordsError::NotFound)
        }
    }

    /// Lists records in id order, filtered on plain fields.
    #[allow(clippy::too_many_arguments)]
    pub async fn list(
        &self,
        ks: &Keystore,
        coll: &str,
        filters: Vec<(String, Value)>,
        after: Option<String>,
        limit: u32,
        view: View,
    ) -> Result<(Vec<Item>, Option<String>, Vec<String>)> {
        let c = self.collection(ks, coll).await?;
        let mut pf = Vec::new();
        for (path, value) in filters {
            let f = c
                .schema()
                .field(&path)
                .filter(|f| f.decl.class == Class::Plain);
            let Some(f) = f else {
                return Err(RecordsError::Invalid(format!(
                    "filter on '{}': only fields of class plain can be filtered (use search for phi_search fields)",
                    phivault_core::records::path::FieldPath::parse(&path)
                        .map(|p| p.to_string())
                        .unwrap_or_else(|_| "?".into())
                )));
            };
            if f.path
                .segments()
                .contains(&phivault_core::records::path::Segment::AnyIndex)
            {
                return Err(RecordsError::Invalid(
                    "filters on fields inside arrays are not supported".into(),
                ));
            }
            pf.push(PlainFilter {
                path: format!("$.{}", f.path),
                value,
            });
        }
        let rows = self.store.list(coll, pf, after, limit).await?;
        let next = (rows.len() as u32 == limit)
            .then(|| rows.last().map(|r| r.id.clone()))
            .flatten();
        let ids = rows.iter().map(|r| r.id.clone()).collect();
        let (items, subjects) = self.get_seen(ks, coll, ids, view).await?;
        Ok((items, next, subjects))
    }

    /// Exact-match search by blind index. `values` by member path (one
    /// for a single-field index). Candidates whose decrypted fields do not
    /// match (truncated-index collisions) are dropped, never returned.
    #[allow(clippy::too_many_arguments)]
    pub async fn search(
        &self,
        ks: &Keystore,
        coll: &str,
        index: &str,
        values: &BTreeMap<String, Value>,
        limit: u32,
        view: View,
    ) -> Result<(Vec<Value>, usize, Vec<String>)> {
        let c = self.collection(ks, coll).await?;
        let schema = c.schema().clone();
        schema.index(index).ok_or_else(|| {
            RecordsError::UnknownIndex(
                index.chars().take(64).collect(),
                schema
                    .indexes
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })?;
        // The query under every schema version that has this index (a
        // migration may be re-sealing older records with other lengths or
        // normalizations): one blind index per distinct form.
        let mut plans: BTreeMap<u32, (Vec<String>, Vec<u8>)> = BTreeMap::new();
        for (&v, sch) in &c.schemas {
            let Some(vix) = sch.index(index) else {
                continue;
            };
            let mut want = Vec::new();
            for &f in &vix.fields {
                let path = sch.fields[f].path.to_string();
                let val = values
                    .get(&path)
                    .or_else(|| {
                        (vix.fields.len() == 1)
                            .then(|| values.get("value"))
                            .flatten()
                    })
                    .and_then(document::scalar_text);
                match val {
                    Some(val) => want.push(sch.normalize(f, &val)),
                    None if v == c.version => {
                        return Err(RecordsError::Invalid(format!(
                            "search on index '{index}' needs a value for '{path}'"
                        )));
                    }
                    None => break,
                }
            }
            if want.len() != vix.fields.len() {
                continue;
            }
            let refs: Vec<&str> = want.iter().map(String::as_str).collect();
            let bi = c
                .index
                .blind_index(&vix.name, vix.bits, &refs)
                .ok_or_else(|| RecordsError::Keys("index key missing".into()))?;
            plans.insert(v, (want, bi));
        }
        let mut forms: Vec<&Vec<u8>> = plans.values().map(|(_, bi)| bi).collect();
        forms.sort();
        forms.dedup();
        let mut rows = Vec::new();
        for bi in forms {
            for r in self
                .store
                .find(coll, index, bi.clone(), MAX_CANDIDATES)
                .await?
            {
                if !rows.iter().any(|x: &RecordRow| x.id == r.id) {
                    rows.push(r);
                }
            }
        }
        let candidates = rows.len();
        let keys = self.keys_for_rows(ks, coll, &rows.iter().collect::<Vec<_>>())?;
        let mut out = Vec::new();
        let mut subjects = Vec::new();
        for (row, key) in rows.iter().zip(keys) {
            let Some(key) = key else { continue };
            let (Some((want, _)), Some(sch)) =
                (plans.get(&row.version), c.schemas.get(&row.version))
            else {
                continue;
            };
            let vix = sch.index(index).expect("planned");
            // Open only the index's fields (each AEAD-checked) to drop a
            // false positive; the whole record, MAC and all, only for a hit.
            let peeked = document::peek_fields(sch, coll, &row.id, &row.body, &key, &vix.fields)
                .map_err(|e| self.integrity_failure(coll, &row.id, e))?;
            if document::peek_matches(sch, vix, &peeked, want) {
                let full = self.open_with(&c, row, &key)?;
                subjects.extend(Self::subject_in(&c, row, &full));
                out.push(Self::render(&c, row, full, view)?);
                if out.len() as u32 >= limit {
                    break;
                }
            }
        }
        Ok((out, candidates, subjects))
    }

    // ------------------------------------------------------------ shredding

    /// Destroys a data subject's key in every collection (or one) whose
    /// schema names a subject field, deleting their records.
    pub async fn shred(
        &self,
        ks: &Keystore,
        subject: &str,
        only: Option<&str>,
    ) -> Result<ShredReceipt> {
        let mut entries = Vec::new();
        let names: Vec<String> = match only {
            Some(c) => vec![c.to_owned()],
            None => self
                .store
                .collections()
                .await?
                .into_iter()
                .map(|r| r.collection)
                .collect(),
        };
        for name in names {
            let c = self.collection(ks, &name).await?;
            let Some(f) = c.schema().subject else {
                if only.is_some() {
                    return Err(RecordsError::Invalid(format!(
                        "collection '{name}' has no subject field"
                    )));
                }
                continue;
            };
            let handle = c.index.subject_handle(&c.schema().normalize(f, subject));
            let wrapped = self
                .store
                .subject_keys_for(&name, vec![handle.clone()])
                .await?
                .pop()
                .flatten();
            let version = wrapped
                .as_deref()
                .and_then(|w| envelope::parse_header(w).ok())
                .map(|h| h.version.get());
            let out = self.store.shred(&name, &handle).await?;
            self.keys.lock().expect("lock").remove(&handle);
            entries.push(ShredEntry {
                collection: name,
                subject_handle: hex::encode(&handle),
                key_destroyed: out.key_destroyed,
                records_deleted: out.records,
                wrapped_under_version: version,
            });
        }
        let epoch = self.settings.key_epoch.map(|d| d.as_secs());
        Ok(ShredReceipt {
            receipt_id: new_id(),
            shredded_at: now_rfc3339(),
            collections: entries,
            backups: json!({
                "live_store": "the wrapped subject key is deleted and overwritten (secure_delete, WAL truncated)",
                "database_backups_made_before": match epoch {
                    Some(s) => format!("undecryptable once the collection ring version that wrapped the key is destroyed: at the next key epoch, at most {s} s from now plus the rewrap time (records.key_epoch), or now with POST /v1/collections/{{name}}/rotate {{\"destroy_old\": true}}"),
                    None => "undecryptable only once the collection ring version that wrapped the key is destroyed: run POST /v1/collections/{name}/rotate {\"destroy_old\": true} (records.key_epoch is off)".into(),
                },
                "keystore_backups": "a keystore backup or escrow export made before that destruction can still unwrap pre-shred database backups until it expires; see SECURITY.md §5b",
            }),
        })
    }

    // ------------------------------------------------------------ jobs

    /// Starts (records) a job; the runner picks it up.
    pub async fn start_job(&self, coll: &str, kind: &str, params: Value) -> Result<String> {
        let total = match kind {
            "rewrap" => self.store.count_subject_keys(coll).await?,
            _ => {
                self.store
                    .count(coll, params["to_version"].as_u64().map(|v| v as u32))
                    .await?
            }
        };
        let id = new_id();
        self.store
            .put_job(JobRow {
                id: id.clone(),
                kind: kind.into(),
                collection: coll.into(),
                state: "running".into(),
                cursor: None,
                done: 0,
                total,
                error: None,
                params: params.to_string(),
                started: now_unix(),
                updated: now_unix(),
            })
            .await?;
        Ok(id)
    }

    /// A job's state as JSON.
    pub async fn job(&self, id: &str) -> Result<Value> {
        let j = self.store.job(id).await?.ok_or(RecordsError::UnknownJob)?;
        Ok(job_json(&j))
    }

    /// Runs every `running` job not already running here, to completion.
    /// Called by the server's background task (and on start, which is how
    /// a job resumes after a crash: from its stored cursor).
    pub async fn run_pending_jobs(self: &Arc<Self>, ks: &Arc<Keystore>) {
        let Ok(jobs) = self.store.running_jobs().await else {
            return;
        };
        for j in jobs {
            if !self.jobs_running.lock().expect("lock").insert(j.id.clone()) {
                continue;
            }
            let (me, ks) = (self.clone(), ks.clone());
            tokio::spawn(async move {
                let id = j.id.clone();
                if let Err(e) = me.run_job(&ks, j.clone()).await {
                    if e.status() == 503 {
                        // The database is away for a moment: the job stays
                        // `running` and resumes from its cursor on the next
                        // pass (every 2 s).
                        tracing::warn!(job = %id, error = %e, "records job paused: storage unavailable; it resumes");
                        me.jobs_running.lock().expect("lock").remove(&id);
                        return;
                    }
                    tracing::error!(job = %id, error = %e, "records job failed");
                    let _ = me
                        .store
                        .put_job(JobRow {
                            state: "failed".into(),
                            error: Some(e.to_string()),
                            updated: now_unix(),
                            ..j
                        })
                        .await;
                }
                me.jobs_running.lock().expect("lock").remove(&id);
            });
        }
    }

    async fn run_job(&self, ks: &Keystore, mut j: JobRow) -> Result<()> {
        let params: Value = serde_json::from_str(&j.params).unwrap_or(Value::Null);
        tracing::info!(job = %j.id, kind = %j.kind, collection = %j.collection, done = j.done, total = j.total, "records job running");
        loop {
            let (n, cursor) = match j.kind.as_str() {
                "rewrap" => self.rewrap_step(ks, &j).await?,
                "migrate" => self.migrate_step(ks, &j).await?,
                other => return Err(RecordsError::Invalid(format!("unknown job kind {other}"))),
            };
            j.done += n;
            j.updated = now_unix();
            match cursor {
                Some(c) => {
                    j.cursor = Some(c);
                    self.store.put_job(j.clone()).await?;
                    if !self.settings.job_pause.is_zero() {
                        tokio::time::sleep(self.settings.job_pause).await;
                    }
                }
                None => break,
            }
        }
        if j.kind == "rewrap" && params["destroy_old"].as_bool() == Some(true) {
            self.sweep_and_destroy(ks, &j.collection).await?;
        }
        j.state = "done".into();
        j.total = j.total.max(j.done);
        j.updated = now_unix();
        self.store.put_job(j.clone()).await?;
        tracing::info!(job = %j.id, kind = %j.kind, collection = %j.collection, done = j.done, "records job done");
        Ok(())
    }

    /// Re-wraps one page of subject keys under the primary version.
    async fn rewrap_step(&self, ks: &Keystore, j: &JobRow) -> Result<(u64, Option<String>)> {
        let after = j
            .cursor
            .as_deref()
            .map(|c| hex::decode(c).unwrap_or_default());
        let (n, _, next) = self.rewrap_page(ks, &j.collection, after).await?;
        Ok((n, next.map(hex::encode)))
    }

    /// One page of subject keys after `after`: those under a version below
    /// the primary are rewrapped (compare-and-swap). Returns the page size,
    /// how many were below the primary, and the next cursor.
    async fn rewrap_page(
        &self,
        ks: &Keystore,
        coll: &str,
        after: Option<Vec<u8>>,
    ) -> Result<(u64, u64, Option<Vec<u8>>)> {
        let page = self
            .store
            .subject_keys(coll, after, self.settings.job_batch)
            .await?;
        let Some(last) = page.last().map(|r| r.handle.clone()) else {
            return Ok((0, 0, None));
        };
        let ring = data_ring(coll);
        let primary = ks.primary_version(&ring).map_err(keys_err)?;
        let mut swaps = Vec::new();
        for row in &page {
            let h = envelope::parse_header(&row.wrapped).map_err(keys_err)?;
            if h.version >= primary {
                continue;
            }
            let k = SubjectKey::unwrap(ks, &row.wrapped, coll, &row.handle)?;
            swaps.push((
                row.handle.clone(),
                row.wrapped.clone(),
                k.wrap(ks, &ring, coll, &row.handle)?,
            ));
        }
        let stale = swaps.len() as u64;
        if !swaps.is_empty() {
            self.store.rewrap_subject_keys(coll, swaps).await?;
        }
        Ok((page.len() as u64, stale, Some(last)))
    }

    /// Before old ring versions are destroyed, no subject key may still be
    /// wrapped under one. A create that read the primary version just
    /// before the rotation can commit its key after the rewrap scan passed
    /// its place; so: wait for such writes to land, then sweep every key
    /// again until a whole pass finds none below the primary, and only
    /// then destroy.
    async fn sweep_and_destroy(&self, ks: &Keystore, coll: &str) -> Result<()> {
        tokio::time::sleep(SWEEP_GRACE).await;
        for _pass in 0..5 {
            let (mut cursor, mut stale) = (None, 0);
            loop {
                let (n, s, next) = self.rewrap_page(ks, coll, cursor).await?;
                stale += s;
                if n == 0 {
                    break;
                }
                cursor = next;
            }
            if stale == 0 {
                return self.destroy_old_versions(ks, coll);
            }
            tracing::info!(
                collection = coll,
                stale,
                "rewrap sweep found keys under old versions; sweeping again"
            );
        }
        Err(RecordsError::Keys(format!(
            "collection {coll}: keys keep appearing under old ring versions; old versions were NOT destroyed"
        )))
    }

    /// Re-seals one page of records below the target schema version.
    async fn migrate_step(&self, ks: &Keystore, j: &JobRow) -> Result<(u64, Option<String>)> {
        let coll = &j.collection;
        let c = self.collection(ks, coll).await?;
        let rows = self
            .store
            .list(coll, vec![], j.cursor.clone(), self.settings.job_batch)
            .await?;
        let Some(last) = rows.last().map(|r| r.id.clone()) else {
            return Ok((0, None));
        };
        let mut writes = Vec::new();
        let mut n = 0;
        for row in rows.iter().filter(|r| r.version < c.version) {
            let full = match self.open_row(ks, &c, row).await {
                Ok(v) => v,
                Err(RecordsError::Shredded) => continue,
                Err(e) => return Err(e),
            };
            let handle = Self::handle_of(&c, &full, &row.id)?;
            let key = self
                .subject_keys(ks, coll, std::slice::from_ref(&handle))
                .await?
                .remove(0);
            writes.push(Self::seal_one(
                &c,
                &row.id,
                &full,
                &key,
                handle,
                WriteMode::Replace(Some(row.rev)),
            )?);
            n += 1;
        }
        // One write per record: a concurrent update (which seals at the
        // current version anyway) makes only its own swap fail.
        for w in writes {
            match self.store.write(coll, vec![w]).await {
                Ok(()) | Err(StoreError::Conflict) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok((n, Some(last)))
    }

    /// Destroys every collection ring version below the primary (after a
    /// complete rewrap), and raises the minimum decryption version.
    fn destroy_old_versions(&self, ks: &Keystore, coll: &str) -> Result<()> {
        let ring = data_ring(coll);
        let info = ks.ring(&ring).map_err(keys_err)?;
        let primary = info.primary_version.unwrap_or(1);
        ks.set_min_decryption_version(&ring, primary)
            .map_err(keys_err)?;
        for v in &info.versions {
            if v.version < primary && v.state != phivault_keystore::model::VersionState::Destroyed {
                ks.destroy(&ring, v.version).map_err(keys_err)?;
                self.key_event(
                    "key.destroy",
                    coll,
                    json!({ "ring": ring.to_string(), "version": v.version, "trigger": "rewrap complete" }),
                );
            }
        }
        tracing::info!(
            collection = coll,
            primary,
            "destroyed old collection ring versions"
        );
        Ok(())
    }

    /// Rotates the collection ring and starts the rewrap (optionally
    /// destroying the old versions when it completes).
    pub async fn rotate(
        &self,
        ks: &Keystore,
        coll: &str,
        destroy_old: bool,
    ) -> Result<(u32, String)> {
        self.collection(ks, coll).await?;
        // One rewrap at a time per collection: a second rotation while one
        // runs would leave keys under a version the first then destroys.
        if let Some(j) = self
            .store
            .running_jobs()
            .await?
            .into_iter()
            .find(|j| j.kind == "rewrap" && j.collection == coll)
        {
            return Err(RecordsError::Invalid(format!(
                "a rewrap job for collection {coll} is still running ({}); wait for it (`phivault records job {} --wait`)",
                j.id, j.id
            )));
        }
        let v = ks.rotate(&data_ring(coll)).map_err(keys_err)?;
        self.key_event(
            "key.rotate",
            coll,
            json!({ "ring": data_ring(coll).to_string(), "version": v, "destroy_old": destroy_old }),
        );
        let job = self
            .start_job(
                coll,
                "rewrap",
                json!({ "destroy_old": destroy_old, "to_version": v }),
            )
            .await?;
        Ok((v, job))
    }

    /// The key epoch: rotates, rewraps and destroys old versions of every
    /// collection ring whose primary version is older than the epoch.
    pub async fn key_epoch_tick(&self, ks: &Keystore) {
        let Some(epoch) = self.settings.key_epoch else {
            return;
        };
        let Ok(cols) = self.store.collections().await else {
            return;
        };
        for c in cols {
            let Ok(info) = ks.ring(&data_ring(&c.collection)) else {
                continue;
            };
            let created = info
                .versions
                .iter()
                .find(|v| Some(v.version) == info.primary_version)
                .and_then(|v| {
                    time::OffsetDateTime::parse(
                        &v.created,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                });
            let Some(created) = created else { continue };
            let age = time::OffsetDateTime::now_utc() - created;
            if age.whole_seconds() >= epoch.as_secs() as i64 {
                match self.rotate(ks, &c.collection, true).await {
                    Err(RecordsError::Invalid(why)) => {
                        tracing::debug!(collection = %c.collection, why, "key epoch: rotation deferred")
                    }
                    Ok((v, job)) => {
                        tracing::info!(collection = %c.collection, version = v, job = %job, "key epoch: collection ring rotated; rewrap and destruction of old versions started")
                    }
                    Err(e) => {
                        tracing::error!(collection = %c.collection, error = %e, "key epoch rotation failed")
                    }
                }
            }
        }
    }
}

/// A job as JSON, with its progress.
pub fn job_json(j: &JobRow) -> Value {
    let pct = if j.total == 0 {
        100.0
    } else {
        (j.done as f64 * 100.0 / j.total as f64).min(100.0)
    };
    json!({
        "id": j.id, "kind": j.kind, "collection": j.collection, "state": j.state,
        "done": j.done, "total": j.total, "percent": (pct * 10.0).round() / 10.0,
        "error": j.error, "params": serde_json::from_str::<Value>(&j.params).unwrap_or(Value::Null),
        "started": j.started, "updated": j.updated,
    })
}

/// What a schema change may not do: make protected data plain, or change
/// the subject (existing keys are per subject).
fn check_evolution(old: &Schema, new: &Schema) -> Result<()> {
    for f in &old.fields {
        if f.decl.class.protected()
            && new
                .field(&f.path.to_string())
                .is_none_or(|n| n.decl.class == Class::Plain)
        {
            return Err(RecordsError::Invalid(format!(
                "field {} is protected in the current schema; a new version can't make it plain or drop it (its stored values are ciphertext)",
                f.path
            )));
        }
        if f.decl.class == Class::Token
            && new
                .field(&f.path.to_string())
                .is_some_and(|n| n.decl.class != Class::Token || n.decl.alphabet != f.decl.alphabet)
        {
            return Err(RecordsError::Invalid(format!(
                "token field {} can't change class or alphabet: existing tokens would no longer detokenize",
                f.path
            )));
        }
    }
    let subj = |s: &Schema| s.subject.map(|i| s.fields[i].path.to_string());
    if subj(old) != subj(new) {
        return Err(RecordsError::Invalid(
            "the subject field can't change in a new schema version (subject keys are per subject); create a new collection".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `hook` once, when the first archive line starting with
    /// `marker` is written (a backup writes a line per call).
    struct HookWriter<F> {
        out: Vec<u8>,
        marker: &'static [u8],
        hook: Option<F>,
    }

    impl<F: FnOnce() + Send> std::io::Write for HookWriter<F> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if b.starts_with(self.marker)
                && let Some(h) = self.hook.take()
            {
                h();
            }
            self.out.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Backups taken while the collection's ring rotates. The archive's
    /// keystore is read after its subject keys, so keys rewrapped under a
    /// new version during the backup still open after a restore. A
    /// version destroyed while the subject keys were being read fails the
    /// backup, saying to run it again, instead of writing keys nothing in
    /// the archive could unwrap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backups_racing_a_rotation_restore_whole_or_fail() {
        use phivault_keystore::Location;
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        phivault_keystore::store::init(&src, phivault_keystore::InitMethod::Dev).unwrap();
        let ks = Arc::new(Keystore::open_dev(&src).unwrap());
        let store = Arc::new(phivault_store::sqlite::SqliteStore::open(&src).unwrap());
        let r = Arc::new(Records::new(
            store.clone(),
            RecordsSettings::default(),
            Default::default(),
        ));
        let schema = br#"{"subject": "id", "fields": {"id": {"class": "phi_search"}, "n": {"class": "phi"}}}"#;
        r.put_collection(&ks, "p", schema).await.unwrap();
        let docs: Vec<Value> = (0..7)
            .map(|i| json!({"id": format!("s{i}"), "n": i}))
            .collect();
        let ids = r.create(&ks, "p", docs.clone()).await.unwrap();
        let audit = dir.path().join("audit");
        std::fs::create_dir_all(&audit).unwrap();
        // Rotate the ring and rewrap every subject key (then destroy the
        // old versions if `destroy`), from inside the backup's writer.
        let rotate = |destroy: bool| {
            let (r, ks, store) = (r.clone(), ks.clone(), store.clone());
            move || {
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(async {
                        ks.rotate(&data_ring("p")).unwrap();
                        let job = r
                            .start_job("p", "rewrap", json!({ "destroy_old": destroy }))
                            .await
                            .unwrap();
                        let j = store.job(&job).await.unwrap().unwrap();
                        r.run_job(&ks, j).await.unwrap();
                    })
                })
            }
        };
        // A backup whose writer runs `rotate(destroy)` when the first line
        // starting with `marker` goes by; the archive, or the error.
        let backup = |marker: &'static [u8], destroy: bool| {
            let mut w = HookWriter {
                out: Vec::new(),
                marker,
                hook: Some(rotate(destroy)),
            };
            let (store, src, audit) = (store.clone(), src.clone(), audit.clone());
            async move {
                let r = crate::backup::write(
                    store.as_ref(),
                    &Location::from(&src),
                    &audit,
                    &mut w,
                    &|_| {},
                )
                .await;
                assert!(w.hook.is_none(), "the rotation ran during the backup");
                r.map(|_| w.out)
            }
        };
        // While the records are dumped: the subject keys come out under
        // version 2, which the archive's keystore must hold.
        let archive = backup(br#"{"t":"record""#, false).await.unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::copy(src.join("dev-unseal.key"), dst.join("dev-unseal.key")).unwrap();
        let store2 = Arc::new(phivault_store::sqlite::SqliteStore::open(&dst).unwrap());
        crate::backup::restore(
            &mut std::io::Cursor::new(archive),
            store2.as_ref(),
            &Location::from(&dst),
            &dst.join("audit"),
            &|_| {},
        )
        .await
        .unwrap();
        for k in store2.subject_keys("p", None, 100).await.unwrap() {
            assert_eq!(envelope::parse_header(&k.wrapped).unwrap().version.get(), 2);
        }
        let ks2 = Keystore::open_dev(&dst).unwrap();
        let r2 = Records::new(store2, RecordsSettings::default(), Default::default());
        let got = r2.get(&ks2, "p", ids, View::Full).await.unwrap();
        for (g, d) in got.iter().zip(&docs) {
            assert_eq!(&g.as_ref().unwrap()["data"], d);
        }
        // While the subject keys are dumped (read under version 2), a
        // rotation to 3 destroys 1 and 2: the backup fails.
        let e = backup(br#"{"t":"subject_key""#, true).await.unwrap_err();
        assert!(
            matches!(e, crate::backup::ArchiveError::Raced(_))
                && e.to_string().contains("run it again"),
            "{e}"
        );
    }

    /// A dev keystore and a SQLite store in a fresh folder (kept alive by
    /// the returned guard).
    fn dev_vault() -> (
        tempfile::TempDir,
        Arc<Keystore>,
        Arc<phivault_store::sqlite::SqliteStore>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        phivault_keystore::store::init(dir.path(), phivault_keystore::InitMethod::Dev).unwrap();
        let ks = Arc::new(Keystore::open_dev(dir.path()).unwrap());
        let store = Arc::new(phivault_store::sqlite::SqliteStore::open(dir.path()).unwrap());
        (dir, ks, store)
    }

    /// Creates don't look a subject's key up before writing: they offer a
    /// fresh one and the store keeps the key it has. A second record for a
    /// known subject (written by a process whose cache doesn't hold the
    /// key), two processes racing to create the same new subject, and a
    /// replace by a process with a cold cache must all end up sealed under
    /// the one stored key; moving a record to a new subject stores a new one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_of_one_subject_share_the_stored_key_whoever_writes_them() {
        let (_dir, ks, store) = dev_vault();
        let new = || {
            Arc::new(Records::new(
                store.clone(),
                RecordsSettings::default(),
                Default::default(),
            ))
        };
        let (a, b) = (new(), new());
        let schema = br#"{"subject": "id", "fields": {"id": {"class": "phi_search"}, "n": {"class": "phi"}}}"#;
        a.put_collection(&ks, "p", schema).await.unwrap();
        let first = a
            .create(&ks, "p", vec![json!({"id": "s1", "n": 1})])
            .await
            .unwrap();
        // `b` has never seen s1: it offers a fresh key, which must lose.
        let second = b
            .create(&ks, "p", vec![json!({"id": "s1", "n": 2})])
            .await
            .unwrap();
        // Two processes create the same new subject at once, many times.
        let mut raced = Vec::new();
        for i in 0..20 {
            let doc = |n| vec![json!({"id": format!("r{i}"), "n": n})];
            let (x, y) = (a.clone(), b.clone());
            let (ks1, ks2) = (ks.clone(), ks.clone());
            let (d1, d2) = (doc(1), doc(2));
            let t1 = tokio::spawn(async move { x.create(&ks1, "p", d1).await });
            let t2 = tokio::spawn(async move { y.create(&ks2, "p", d2).await });
            raced.extend(t1.await.unwrap().unwrap());
            raced.extend(t2.await.unwrap().unwrap());
        }
        assert_eq!(store.subject_keys("p", None, 100).await.unwrap().len(), 21);
        let ids: Vec<String> = first.into_iter().chain(second).chain(raced).collect();
        // Every record opens in both processes and in a third, cold one.
        for r in [&a, &b, &new()] {
            let got = r.get(&ks, "p", ids.clone(), View::Full).await.unwrap();
            assert!(got.iter().all(|g| g.is_ok()), "{got:?}");
        }
        // A replace by a process that never saw s1 takes the key from the
        // row; one that moves a record to a new subject stores a new key.
        let cold = new();
        cold.update(&ks, "p", &ids[0], json!({"id": "s1", "n": 3}), false, None)
            .await
            .unwrap();
        new()
            .update(
                &ks,
                "p",
                &ids[2],
                json!({"id": "moved", "n": 4}),
                false,
                None,
            )
            .await
            .unwrap();
        assert_eq!(store.subject_keys("p", None, 100).await.unwrap().len(), 22);
        let got = new()
            .get(&ks, "p", ids[..3].to_vec(), View::Full)
            .await
            .unwrap();
        let n: Vec<&Value> = got
            .iter()
            .map(|g| &g.as_ref().unwrap()["data"]["n"])
            .collect();
        assert_eq!(n, [&json!(3), &json!(2), &json!(4)]);
        // One shred of s1 takes both of its records; the others stay.
        a.shred(&ks, "s1", Some("p")).await.unwrap();
        let got = new().get(&ks, "p", ids.clone(), View::Full).await.unwrap();
        assert!(
            got[..2]
                .iter()
                .all(|g| matches!(g, Err(RecordsError::NotFound))),
            "{got:?}"
        );
        assert!(got[2..].iter().all(|g| g.is_ok()), "{got:?}");
    }

    /// A rewrap job interrupted after its first page (its cursor stored,
    /// the process gone) is resumed by the next process from that cursor,
    /// completes, and loses no key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rewrap_job_resumes_from_its_cursor_after_a_crash() {
        let (_dir, ks, store) = dev_vault();
        let settings = RecordsSettings {
            job_batch: 2,
            ..Default::default()
        };
        let r = Records::new(store.clone(), settings.clone(), Default::default());
        let schema = br#"{"subject": "id", "fields": {"id": {"class": "phi_search"}, "n": {"class": "phi"}}}"#;
        r.put_collection(&ks, "p", schema).await.unwrap();
        let docs: Vec<Value> = (0..7)
            .map(|i| json!({"id": format!("s{i}"), "n": i}))
            .collect();
        let ids = r.create(&ks, "p", docs.clone()).await.unwrap();
        ks.rotate(&data_ring("p")).unwrap();
        let job = r
            .start_job("p", "rewrap", json!({"destroy_old": true}))
            .await
            .unwrap();
        // The first process rewraps one page, stores its progress, dies.
        let mut j = store.job(&job).await.unwrap().unwrap();
        let (n, cursor) = r.rewrap_step(&ks, &j).await.unwrap();
        assert_eq!(n, 2);
        j.done += n;
        j.cursor = cursor;
        store.put_job(j).await.unwrap();
        drop(r);
        // The next process finds it running and resumes it.
        let r2 = Arc::new(Records::new(store.clone(), settings, Default::default()));
        r2.run_pending_jobs(&ks).await;
        let mut state = None;
        for _ in 0..200 {
            let j = store.job(&job).await.unwrap().unwrap();
            if j.state != "running" {
                state = Some(j);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let j = state.expect("the job finished");
        assert_eq!((j.state.as_str(), j.done, j.total), ("done", 7, 7));
        let keys = store.subject_keys("p", None, 100).await.unwrap();
        assert_eq!(keys.len(), 7);
        for k in &keys {
            assert_eq!(envelope::parse_header(&k.wrapped).unwrap().version.get(), 2);
        }
        let info = ks.ring(&data_ring("p")).unwrap();
        assert!(
            info.versions
                .iter()
                .any(|v| v.version == 1 && v.destroyed.is_some())
        );
        let got = r2.get(&ks, "p", ids, View::Full).await.unwrap();
        for (g, d) in got.iter().zip(&docs) {
            assert_eq!(&g.as_ref().unwrap()["data"], d);
        }
    }

    /// The race the destroy sweep closes: a create that wrapped its
    /// subject key under the old version commits after the rewrap scan
    /// passed its place. Destroying then would make it undecryptable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn destroy_sweep_rewraps_keys_committed_after_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        phivault_keystore::store::init(dir.path(), phivault_keystore::InitMethod::Dev).unwrap();
        let ks = Keystore::open_dev(dir.path()).unwrap();
        let store = Arc::new(phivault_store::sqlite::SqliteStore::open(dir.path()).unwrap());
        let r = Records::new(
            store.clone(),
            RecordsSettings::default(),
            Default::default(),
        );
        let schema = br#"{"subject": "id", "fields": {"id": {"class": "phi_search"}, "n": {"class": "phi"}}}"#;
        r.put_collection(&ks, "p", schema).await.unwrap();
        let ids = r
            .create(&ks, "p", vec![json!({"id": "s1", "n": "one"})])
            .await
            .unwrap();
        // A key wrapped under version 1 by a create still in flight...
        let c = r.collection(&ks, "p").await.unwrap();
        let late = SubjectKey::generate().unwrap();
        let handle = c.index.subject_handle("s2");
        let wrapped_v1 = late.wrap(&ks, &data_ring("p"), "p", &handle).unwrap();
        // ...the ring rotates and the rewrap scan completes...
        ks.rotate(&data_ring("p")).unwrap();
        let (mut cursor, mut stale) = (None, 0);
        loop {
            let (n, s, next) = r.rewrap_page(&ks, "p", cursor).await.unwrap();
            stale += s;
            if n == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(stale, 1, "the existing key was rewrapped");
        // ...and only then does the in-flight create commit its v1 key.
        store
            .put_subject_keys(
                "p",
                vec![SubjectKeyRow {
                    handle: handle.clone(),
                    wrapped: wrapped_v1,
                }],
            )
            .await
            .unwrap();
        r.sweep_and_destroy(&ks, "p").await.unwrap();
        let info = ks.ring(&data_ring("p")).unwrap();
        assert!(
            info.versions
                .iter()
                .any(|v| v.version == 1 && v.destroyed.is_some())
        );
        // The late key survived the destruction of version 1.
        let now = store
            .subject_keys_for("p", vec![handle.clone()])
            .await
            .unwrap()[0]
            .clone()
            .unwrap();
        assert_eq!(envelope::parse_header(&now).unwrap().version.get(), 2);
        let back = SubjectKey::unwrap(&ks, &now, "p", &handle).unwrap();
        let rk = late.record_key().unwrap();
        let ct = rk.seal(0, b"ctx", b"v").unwrap();
        let reopened = back.open_record_key(rk.header()).unwrap();
        assert_eq!(reopened.open(b"ctx", &ct).unwrap(), b"v");
        r.keys.lock().unwrap().clear();
        let got = r.get(&ks, "p", ids, View::Full).await.unwrap();
        assert_eq!(got[0].as_ref().unwrap()["data"]["n"], "one");
    }

    #[test]
    fn merge_patch_rfc7386_examples() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (mut t, p, want) in cases {
            merge_patch(&mut t, &p);
            assert_eq!(t, want);
        }
    }

    #[test]
    fn schema_evolution_rules() {
        let s = |j: &str| Schema::parse_json(j.as_bytes()).unwrap();
        let base = s(
            r#"{"subject":"id","fields":{"id":{"class":"phi"},"a":{"class":"phi"},"t":{"class":"token"},"g":{"class":"plain"}}}"#,
        );
        let ok = s(
            r#"{"subject":"id","fields":{"id":{"class":"phi"},"a":{"class":"phi_search"},"t":{"class":"token"},"g":{"class":"phi"}}}"#,
        );
        assert!(check_evolution(&base, &ok).is_ok());
        let declassify = s(
            r#"{"subject":"id","fields":{"id":{"class":"phi"},"a":{"class":"plain"},"t":{"class":"token"}}}"#,
        );
        assert!(
            check_evolution(&base, &declassify)
                .unwrap_err()
                .to_string()
                .contains("field a")
        );
        let tok = s(
            r#"{"subject":"id","fields":{"id":{"class":"phi"},"a":{"class":"phi"},"t":{"class":"phi"}}}"#,
        );
        assert!(
            check_evolution(&base, &tok)
                .unwrap_err()
                .to_string()
                .contains("token field t")
        );
        let subj =
            s(r#"{"fields":{"id":{"class":"phi"},"a":{"class":"phi"},"t":{"class":"token"}}}"#);
        assert!(
            check_evolution(&base, &subj)
                .unwrap_err()
                .to_string()
                .contains("subject")
        );
        assert!(
            valid_collection("patients")
                && !valid_collection("Patients")
                && !valid_collection("-x")
        );
    }
}
