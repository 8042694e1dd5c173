//! # phivault-store
//!
//! Where records live. [`RecordStore`] is the narrow port the server uses:
//! collections and their schema versions, wrapped subject keys, records
//! (only ciphertext, tokens, blind indexes and plain metadata ever reach
//! it), index lookups, and the cursors of background jobs. Every method
//! is one atomic operation.
//!
//! [`sqlite::SqliteStore`] is the embedded default;
//! [`postgres::PgStore`] implements the same trait for several nodes
//! sharing one PostgreSQL.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod postgres;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

/// Errors of the storage area. Never holds record contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record (or collection) already exists.
    #[error("already exists")]
    Exists,
    /// The record does not exist.
    #[error("not found")]
    NotFound,
    /// The record changed since it was read (optimistic concurrency).
    #[error("the record was changed by another request; read it again and retry")]
    Conflict,
    /// The database failed.
    #[error("database error: {0}; check the data directory's disk and permissions")]
    Db(String),
    /// The database can't be reached right now (connection refused or
    /// lost, restarting, out of connections). Retrying later may work.
    #[error("the database is unavailable ({0}); phivault reconnects by itself once it is back")]
    Unavailable(String),
    /// The storage settings are wrong.
    #[error("{0}")]
    Config(String),
    /// The store's worker is gone (shutting down).
    #[error("the store is shutting down")]
    Closed,
}

/// A boxed future: the trait stays object-safe and async-friendly without
/// a proc macro.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One version of a collection's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRow {
    /// Collection name.
    pub collection: String,
    /// Schema version, from 1.
    pub version: u32,
    /// The schema document (JSON).
    pub schema: String,
    /// Unix seconds.
    pub created: i64,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// Record id.
    pub id: String,
    /// Subject handle (HMAC of the subject value).
    pub subject: Vec<u8>,
    /// Schema version it was sealed under.
    pub version: u32,
    /// Revision, bumped by every write (for compare-and-swap).
    pub rev: u64,
    /// The stored document (JSON: skeleton, sealed values, tokens, MAC).
    pub body: String,
    /// Unix seconds of the last write.
    pub updated: i64,
    /// The subject's wrapped key, read with the row (`None`: shredded).
    pub subject_key: Option<Vec<u8>>,
}

/// A record write.
#[derive(Debug, Clone)]
pub struct RecordWrite {
    /// Record id.
    pub id: String,
    /// Subject handle.
    pub subject: Vec<u8>,
    /// Schema version.
    pub version: u32,
    /// Stored document (JSON).
    pub body: String,
    /// The plain fields (JSON object), for filtering.
    pub plain: String,
    /// `(index name, blind index value)` entries.
    pub indexes: Vec<(String, Vec<u8>)>,
    /// What must hold for the write to apply.
    pub mode: WriteMode,
}

/// The precondition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The id must be new.
    Create,
    /// The record must exist, at this revision if given.
    Replace(Option<u64>),
}

/// A wrapped subject key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKeyRow {
    /// Subject handle.
    pub handle: Vec<u8>,
    /// The wrapped key (an envelope under the collection ring).
    pub wrapped: Vec<u8>,
}

/// What a shred removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shredded {
    /// Whether a subject key was destroyed.
    pub key_destroyed: bool,
    /// Records deleted with it.
    pub records: u64,
}

/// A background job's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Job id.
    pub id: String,
    /// `rewrap` or `migrate`.
    pub kind: String,
    /// Collection.
    pub collection: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Resume point (last key processed), if any.
    pub cursor: Option<String>,
    /// Items done.
    pub done: u64,
    /// Items in total at start.
    pub total: u64,
    /// Failure reason.
    pub error: Option<String>,
    /// Parameters (JSON).
    pub params: String,
    /// Unix seconds.
    pub started: i64,
    /// Unix seconds.
    pub updated: i64,
}

/// A filter on one plain field: `json path = value`.
#[derive(Debug, Clone)]
pub struct PlainFilter {
    /// The path in SQLite/PostgreSQL JSON path form (`$.a.b`).
    pub path: String,
    /// The value it must equal.
    pub value: serde_json::Value,
}

/// A record as stored, with what a write derives from it (for backups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDump {
    /// Record id.
    pub id: String,
    /// Subject handle.
    pub subject: Vec<u8>,
    /// Schema version.
    pub version: u32,
    /// Revision.
    pub rev: u64,
    /// The plain fields (JSON object).
    pub plain: String,
    /// The stored document (JSON).
    pub body: String,
    /// Unix seconds of the last write.
    pub updated: i64,
    /// `(index name, blind index value)` entries.
    pub indexes: Vec<(String, Vec<u8>)>,
}

/// The storage port. Every call is atomic; a returned `Ok` is durable.
pub trait RecordStore: Send + Sync + 'static {
    /// Adds a schema version; `Exists` if that version is taken.
    fn put_schema(&self, row: SchemaRow) -> StoreFuture<'_, ()>;
    /// Every schema version of one collection, oldest first.
    fn schemas(&self, collection: &str) -> StoreFuture<'_, Vec<SchemaRow>>;
    /// The newest schema of every collection.
    fn collections(&self) -> StoreFuture<'_, Vec<SchemaRow>>;

    /// Subjects' wrapped keys, in the order of `handles`.
    fn subject_keys_for(
        &self,
        collection: &str,
        handles: Vec<Vec<u8>>,
    ) -> StoreFuture<'_, Vec<Option<Vec<u8>>>>;
    /// Stores subject keys unless one exists for the handle; returns
    /// whichever is stored, in order (a racing writer's key wins).
    fn put_subject_keys(
        &self,
        collection: &str,
        keys: Vec<SubjectKeyRow>,
    ) -> StoreFuture<'_, Vec<Vec<u8>>>;
    /// A page of subject keys after `after` (by handle), for rewrapping.
    fn subject_keys(
        &self,
        collection: &str,
        after: Option<Vec<u8>>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<SubjectKeyRow>>;
    /// Replaces wrapped keys, each only if it still holds `old`. Returns
    /// how many were replaced.
    fn rewrap_subject_keys(
        &self,
        collection: &str,
        swaps: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    ) -> StoreFuture<'_, u64>;
    /// Counts subject keys.
    fn count_subject_keys(&self, collection: &str) -> StoreFuture<'_, u64>;
    /// Destroys a subject's key and deletes its records, atomically.
    fn shred(&self, collection: &str, handle: &[u8]) -> StoreFuture<'_, Shredded>;

    /// Writes records, all or none. Per-record failures (`Exists`,
    /// `NotFound`, `Conflict`) fail the whole batch.
    fn write(&self, collection: &str, writes: Vec<RecordWrite>) -> StoreFuture<'_, ()>;
    /// Reads records by id, in order.
    fn get(&self, collection: &str, ids: Vec<String>) -> StoreFuture<'_, Vec<Option<RecordRow>>>;
    /// Deletes a record; whether it existed.
    fn delete(&self, collection: &str, id: &str) -> StoreFuture<'_, bool>;
    /// Records in id order after `after`, matching every filter.
    fn list(
        &self,
        collection: &str,
        filters: Vec<PlainFilter>,
        after: Option<String>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<RecordRow>>;
    /// Records whose index `name` has `value` (candidates: truncated
    /// indexes collide), at most `limit`.
    fn find(
        &self,
        collection: &str,
        name: &str,
        value: Vec<u8>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<RecordRow>>;
    /// Counts records (optionally those below a schema version).
    fn count(&self, collection: &str, below_version: Option<u32>) -> StoreFuture<'_, u64>;

    /// Records in id order after `after`, as stored (for backups).
    fn dump_records(
        &self,
        collection: &str,
        after: Option<String>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<RecordDump>>;
    /// Writes dumped records as they were (revision and time kept), all
    /// or none; `Exists` if one is there (restores go into empty stores).
    fn load_records(&self, collection: &str, rows: Vec<RecordDump>) -> StoreFuture<'_, ()>;

    /// Creates or updates a job.
    fn put_job(&self, job: JobRow) -> StoreFuture<'_, ()>;
    /// A job by id.
    fn job(&self, id: &str) -> StoreFuture<'_, Option<JobRow>>;
    /// Jobs still `running` (to resume after a restart).
    fn running_jobs(&self) -> StoreFuture<'_, Vec<JobRow>>;
}
