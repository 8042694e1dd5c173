//! The embedded store: SQLite in WAL mode, in the data directory.
//!
//! * **Durability.** `synchronous = FULL`: every commit fsyncs the WAL
//!   before the write is acknowledged, so an acknowledged write survives a
//!   process crash *and* a power loss (on a disk that honours fsync).
//!   `NORMAL` would survive a process crash only.
//! * **Group commit.** One writer thread owns the write connection and
//!   drains every queued write into one transaction (one fsync), each
//!   write inside its own savepoint so one failure doesn't undo the
//!   others. That is what makes durable writes fast.
//! * **Readers** use a small pool of read-only connections on tokio's
//!   blocking threads; WAL lets them run beside the writer.
//! * **Two files.** Subject keys live in `subject-keys.db`, attached to
//!   the connection; records, indexes and jobs in `records.db`. A key is
//!   always committed before the records that need it, and destroyed
//!   before them on a shred, so no cross-file atomicity is needed.
//! * **Checkpoints** run in their own thread every 200 ms (PASSIVE), so
//!   copying the WAL into the database never stalls a commit; the writer's
//!   own auto-checkpoint is only a backstop at 50 000 pages.
//! * **Shredding.** `secure_delete = ON` overwrites deleted rows, and after
//!   a shred the WAL is checkpointed and truncated, so a destroyed subject
//!   key does not linger in free pages or old WAL frames.

use super::*;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

/// The database file inside the data directory.
pub const DB_FILE: &str = "records.db";
/// The subject-key database, a separate file so that a copy of the
/// records database never carries the keys that decrypt it: restored
/// records are opened with the *live* key table, in which a shredded
/// subject has no key (SECURITY.md §5b).
pub const KEYS_FILE: &str = "subject-keys.db";
const MAX_GROUP: usize = 512;
/// How often the checkpointer copies the WALs into the databases.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// Most read connections one thread keeps (one per open store).
const READERS: usize = 16;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS collections(
  name TEXT NOT NULL, version INTEGER NOT NULL, schema TEXT NOT NULL, created INTEGER NOT NULL,
  PRIMARY KEY(name, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys.subject_keys(
  collection TEXT NOT NULL, handle BLOB NOT NULL, wrapped BLOB NOT NULL, created INTEGER NOT NULL,
  PRIMARY KEY(collection, handle)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records(
  collection TEXT NOT NULL, id TEXT NOT NULL, subject BLOB NOT NULL, v INTEGER NOT NULL,
  rev INTEGER NOT NULL, plain TEXT NOT NULL, body TEXT NOT NULL, updated INTEGER NOT NULL,
  PRIMARY KEY(collection, id));
CREATE INDEX IF NOT EXISTS records_subject ON records(collection, subject);
CREATE INDEX IF NOT EXISTS records_version ON records(collection, v);
CREATE TABLE IF NOT EXISTS record_index(
  collection TEXT NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL, id TEXT NOT NULL,
  PRIMARY KEY(collection, name, value, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_index_id ON record_index(collection, id);
CREATE TABLE IF NOT EXISTS jobs(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, collection TEXT NOT NULL, state TEXT NOT NULL,
  cursor TEXT, done INTEGER NOT NULL, total INTEGER NOT NULL, error TEXT, params TEXT NOT NULL,
  started INTEGER NOT NULL, updated INTEGER NOT NULL) WITHOUT ROWID;
";

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One queued write: runs inside a savepoint, then learns whether the
/// group committed.
trait WriteOp: Send {
    fn run(&mut self, c: &Connection) -> bool;
    fn finish(self: Box<Self>, committed: Result<(), String>);
    fn shreds(&self) -> bool;
}

struct Typed<R, F> {
    f: Option<F>,
    out: Option<Result<R, StoreError>>,
    tx: Option<oneshot::Sender<Result<R, StoreError>>>,
    shred: bool,
}

impl<R: Send, F: FnOnce(&Connection) -> Result<R, StoreError> + Send> WriteOp for Typed<R, F> {
    fn run(&mut self, c: &Connection) -> bool {
        let r = (self.f.take().expect("run once"))(c);
        let ok = r.is_ok();
        self.out = Some(r);
        ok
    }
    fn finish(mut self: Box<Self>, committed: Result<(), String>) {
        let r = match (self.out.take(), committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(StoreError::Db(e)),
            (None, Ok(())) => Err(StoreError::Closed),
        };
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(r);
        }
    }
    fn shreds(&self) -> bool {
        self.shred
    }
}

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    keys: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Box<dyn WriteOp>>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<
        Option<(
            Arc<std::sync::atomic::AtomicBool>,
            std::thread::JoinHandle<()>,
        )>,
    >,
    /// Names this store's connections in each thread's reader map.
    id: u64,
}

fn configure(c: &Connection, keys: &Path, write: bool) -> Result<(), StoreError> {
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db)?;
    // The query planner stability guarantee: a cached statement keeps its
    // plan whatever is bound to it. Without it, SQLite (3.54, STAT4 on in
    // the bundled build) marks parameters whose value the planner looked
    // at (an equality propagated through a join, a LIMIT) and re-prepares
    // the statement whenever a new value is bound: a get spent a fifth of
    // the server's CPU re-parsing and re-planning its SELECT
    // (`MODE=get scripts/profile-records.sh` with `--call-graph dwarf`).
    // Our statements are point and range lookups on keys, whose plans
    // never depend on the values.
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(db)?;
    let keys = keys
        .to_str()
        .ok_or_else(|| StoreError::Db("data directory path is not UTF-8".into()))?;
    c.execute("ATTACH DATABASE ?1 AS keys", params![keys])
        .map_err(db)?;
    c.execute_batch(
        "PRAGMA foreign_keys = OFF; PRAGMA main.secure_delete = ON; PRAGMA keys.secure_delete = ON;",
    )
    .map_err(db)?;
    if write {
        for schema in ["main", "keys"] {
            let mode: String = c
                .query_row(&format!("PRAGMA {schema}.journal_mode = WAL"), [], |r| {
                    r.get(0)
                })
                .map_err(db)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Db(format!("could not enable WAL (got {mode})")));
            }
        }
        // A moderately larger page cache for the writer (random blind-index
        // and handle keys touch pages all over the indexes). Not much
        // larger: SQLite scans the whole cache's hash table when a
        // transaction ends (pcache1TruncateUnsafe took 29% of the writer
        // thread with 256 MiB, `perf record -t` on it during
        // `MODE=create scripts/profile-records.sh`).
        c.execute_batch(
            "PRAGMA main.synchronous = FULL; PRAGMA keys.synchronous = FULL;
             PRAGMA main.cache_size = -16384; PRAGMA keys.cache_size = -8192;
             PRAGMA main.wal_autocheckpoint = 50000; PRAGMA keys.wal_autocheckpoint = 50000;",
        )
        .map_err(db)?;
    } else {
        // Readers map the files (no read(2) per page) and keep a larger
        // page cache: point reads on a database bigger than 2 MiB were
        // otherwise dominated by syscalls.
        c.execute_batch(
            "PRAGMA query_only = ON; PRAGMA main.mmap_size = 17179869184; PRAGMA keys.mmap_size = 4294967296;
             PRAGMA main.cache_size = -65536; PRAGMA keys.cache_size = -16384;",
        )
        .map_err(db)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) `records.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        let keys = dir.join(KEYS_FILE);
        let c = Connection::open(&path).map_err(db)?;
        configure(&c, &keys, true)?;
        c.execute_batch(SCHEMA).map_err(db)?;
        let (tx, rx) = mpsc::channel::<Box<dyn WriteOp>>();
        let thread = std::thread::Builder::new()
            .name("phivault-sqlite-writer".into())
            .spawn(move || writer_loop(c, rx))
            .map_err(|e| StoreError::Db(e.to_string()))?;
        // Checkpoints run beside the writer, not inside its commits.
        let ck = Connection::open(&path).map_err(db)?;
        ck.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        let keys_str = keys.to_str().unwrap_or_default().to_owned();
        ck.execute("ATTACH DATABASE ?1 AS keys", params![keys_str])
            .map_err(db)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let checkpointer = std::thread::Builder::new()
            .name("phivault-sqlite-checkpoint".into())
            .spawn(move || {
                use std::sync::atomic::Ordering;
                while !stop2.load(Ordering::Relaxed) {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    for schema in ["main", "keys"] {
                        let _ = ck.query_row(
                            &format!("PRAGMA {schema}.wal_checkpoint(PASSIVE)"),
                            [],
                            |_| Ok(()),
                        );
                    }
                }
            })
            .map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(Self {
            path,
            keys,
            writer: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(Some((stop, checkpointer))),
            id: NEXT_STORE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the writer after the queued writes (also done on drop).
    pub fn close(&self) {
        self.writer.lock().expect("lock").take();
        if let Some(t) = self.thread.lock().expect("lock").take() {
            let _ = t.join();
        }
        if let Some((stop, t)) = self.checkpointer.lock().expect("lock").take() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = t.join();
        }
    }

    fn write_op<R, F>(&self, shred: bool, f: F) -> StoreFuture<'_, R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let op = Box::new(Typed {
            f: Some(f),
            out: None,
            tx: Some(tx),
            shred,
        });
        let sent = self
            .writer
            .lock()
            .expect("lock")
            .as_ref()
            .map(|w| w.send(op).is_ok())
            .unwrap_or(false);
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    /// A read. Point reads (`Inline`) run on the calling task's thread with
    /// that thread's own connection: a few microseconds of SQLite on cached
    /// pages costs less than handing the work to another thread and back
    /// (measured with `MODE=get scripts/profile-records.sh`: the handoff
    /// dominated the profile).
    /// Scans (`Blocking`) go to tokio's blocking pool.
    fn read<R, F>(&self, how: Read, f: F) -> StoreFuture<'_, R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (id, path, keys) = (self.id, self.path.clone(), self.keys.clone());
        let run = move || {
            READERS_BY_THREAD.with(|cell| {
                let mut map = cell.borrow_mut();
                if !map.contains_key(&id) {
                    if map.len() >= READERS {
                        map.clear();
                    }
                    let c = Connection::open(&path).map_err(db)?;
                    configure(&c, &keys, false)?;
                    map.insert(id, c);
                }
                f(map.get(&id).expect("inserted"))
            })
        };
        match how {
            Read::Inline => Box::pin(async move { run() }),
            Read::Blocking => Box::pin(async move {
                tokio::task::spawn_blocking(run)
                    .await
                    .map_err(|_| StoreError::Closed)?
            }),
        }
    }
}

/// How a read runs (see [`SqliteStore::read`]).
#[derive(Clone, Copy)]
enum Read {
    Inline,
    Blocking,
}

thread_local! {
    /// Each thread's read-only connections, by store id.
    static READERS_BY_THREAD: std::cell::RefCell<std::collections::HashMap<u64, Connection>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

static NEXT_STORE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop(c: Connection, rx: mpsc::Receiver<Box<dyn WriteOp>>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let shred = group.iter().any(|o| o.shreds());
        let committed = (|| -> Result<(), rusqlite::Error> {
            c.execute_batch("BEGIN IMMEDIATE")?;
            for op in group.iter_mut() {
                c.prepare_cached("SAVEPOINT op")?.execute([])?;
                if !op.run(&c) {
                    c.prepare_cached("ROLLBACK TO op")?.execute([])?;
                }
                c.prepare_cached("RELEASE op")?.execute([])?;
            }
            c.execute_batch("COMMIT")
        })();
        if committed.is_err() {
            let _ = c.execute_batch("ROLLBACK");
        }
        let committed = committed.map_err(|e| e.to_string());
        for op in group {
            op.finish(committed.clone());
        }
        if shred {
            // Overwrite old WAL frames that may hold the destroyed key.
            for schema in ["keys", "main"] {
                let _ = c.query_row(
                    &format!("PRAGMA {schema}.wal_checkpoint(TRUNCATE)"),
                    [],
                    |_| Ok(()),
                );
            }
        }
    }
}

fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok(RecordRow {
        id: r.get(0)?,
        subject: r.get(1)?,
        version: r.get(2)?,
        rev: r.get::<_, i64>(3)? as u64,
        body: r.get(4)?,
        updated: r.get(5)?,
        subject_key: r.get(6)?,
    })
}

/// A record's columns with its subject's wrapped key (one read for both).
const RECORD_COLS: &str = "r.id, r.subject, r.v, r.rev, r.body, r.updated, k.wrapped";
const RECORD_FROM: &str = "records r LEFT JOIN keys.subject_keys k ON k.collection = r.collection AND k.handle = r.subject";

/// One record by id.
fn get_sql() -> String {
    format!("SELECT {RECORD_COLS} FROM {RECORD_FROM} WHERE r.collection = ?1 AND r.id = ?2")
}

/// The records whose blind index `?2` has value `?3`, at most `?4`.
fn find_sql() -> String {
    format!(
        "SELECT {RECORD_COLS} FROM record_index i
         JOIN records r ON r.collection = i.collection AND r.id = i.id
         LEFT JOIN keys.subject_keys k ON k.collection = r.collection AND k.handle = r.subject
         WHERE i.collection = ?1 AND i.name = ?2 AND i.value = ?3 LIMIT ?4"
    )
}

/// A page of records after id `?2`, at most `?3`, with `filters` plain
/// field filters bound as (JSON path, value) pairs from `?4` on.
fn list_sql(filters: usize) -> String {
    let mut sql =
        format!("SELECT {RECORD_COLS} FROM {RECORD_FROM} WHERE r.collection = ?1 AND r.id > ?2");
    for k in 0..filters {
        let p = 4 + 2 * k;
        sql.push_str(&format!(" AND json_extract(r.plain, ?{p}) IS ?{}", p + 1));
    }
    sql.push_str(" ORDER BY r.id LIMIT ?3");
    sql
}

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        collection: r.get(2)?,
        state: r.get(3)?,
        cursor: r.get(4)?,
        done: r.get::<_, i64>(5)? as u64,
        total: r.get::<_, i64>(6)? as u64,
        error: r.get(7)?,
        params: r.get(8)?,
        started: r.get(9)?,
        updated: r.get(10)?,
    })
}

const JOB_COLS: &str =
    "id, kind, collection, state, cursor, done, total, error, params, started, updated";

fn apply_write(c: &Connection, coll: &str, w: &RecordWrite) -> Result<(), StoreError> {
    let t = now();
    match w.mode {
        WriteMode::Create => {
            let r = c
                .prepare_cached(
                    "INSERT INTO records(collection, id, subject, v, rev, plain, body, updated)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7)",
                )
                .map_err(db)?
                .execute(params![
                    coll, w.id, w.subject, w.version, w.plain, w.body, t
                ]);
            match r {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Err(StoreError::Exists);
                }
                Err(e) => return Err(db(e)),
            }
        }
        WriteMode::Replace(rev) => {
            let n = c
                .prepare_cached(
                    "UPDATE records SET subject = ?3, v = ?4, rev = rev + 1, plain = ?5, body = ?6, updated = ?7
                     WHERE collection = ?1 AND id = ?2 AND (?8 IS NULL OR rev = ?8)",
                )
                .map_err(db)?
                .execute(params![
                    coll,
                    w.id,
                    w.subject,
                    w.version,
                    w.plain,
                    w.body,
                    t,
                    rev.map(|r| r as i64)
                ])
                .map_err(db)?;
            if n == 0 {
                let exists: Option<i64> = c
                    .query_row(
                        "SELECT 1 FROM records WHERE collection = ?1 AND id = ?2",
                        params![coll, w.id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db)?;
                return Err(if exists.is_some() {
                    StoreError::Conflict
                } else {
                    StoreError::NotFound
                });
            }
            c.prepare_cached("DELETE FROM record_index WHERE collection = ?1 AND id = ?2")
                .map_err(db)?
                .execute(params![coll, w.id])
                .map_err(db)?;
        }
    }
    let mut ins = c
        .prepare_cached(
            "INSERT OR IGNORE INTO record_index(collection, name, value, id) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db)?;
    for (name, value) in &w.indexes {
        ins.execute(params![coll, name, value, w.id]).map_err(db)?;
    }
    Ok(())
}

fn bind_json(v: &serde_json::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        serde_json::Value::Null => V::Null,
        serde_json::Value::Bool(b) => V::Integer(*b as i64),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => V::Integer(i),
            None => V::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => V::Text(s.clone()),
        other => V::Text(other.to_string()),
    }
}

impl RecordStore for SqliteStore {
    fn put_schema(&self, row: SchemaRow) -> StoreFuture<'_, ()> {
        self.write_op(false, move |c| {
            match c.execute(
                "INSERT INTO collections(name, version, schema, created) VALUES (?1, ?2, ?3, ?4)",
                params![row.collection, row.version, row.schema, row.created],
            ) {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::Exists)
                }
                Err(e) => Err(db(e)),
            }
        })
    }

    fn schemas(&self, collection: &str) -> StoreFuture<'_, Vec<SchemaRow>> {
        let coll = collection.to_owned();
        self.read(Read::Inline, move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT name, version, schema, created FROM collections WHERE name = ?1 ORDER BY version",
                )
                .map_err(db)?;
            let rows = s
                .query_map(params![coll], |r| {
                    Ok(SchemaRow {
                        collection: r.get(0)?,
                        version: r.get(1)?,
                        schema: r.get(2)?,
                        created: r.get(3)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
    }

    fn collections(&self) -> StoreFuture<'_, Vec<SchemaRow>> {
        self.read(Read::Inline, move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT name, version, schema, created FROM collections c
                     WHERE version = (SELECT max(version) FROM collections d WHERE d.name = c.name)
                     ORDER BY name",
                )
                .map_err(db)?;
            let rows = s
                .query_map([], |r| {
                    Ok(SchemaRow {
                        collection: r.get(0)?,
                        version: r.get(1)?,
                        schema: r.get(2)?,
                        created: r.get(3)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
    }

    fn subject_keys_for(
        &self,
        collection: &str,
        handles: Vec<Vec<u8>>,
    ) -> StoreFuture<'_, Vec<Option<Vec<u8>>>> {
        let coll = collection.to_owned();
        self.read(Read::Inline, move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT wrapped FROM keys.subject_keys WHERE collection = ?1 AND handle = ?2",
                )
                .map_err(db)?;
            handles
                .iter()
                .map(|h| {
                    s.query_row(params![coll, h], |r| r.get(0))
                        .optional()
                        .map_err(db)
                })
                .collect()
        })
    }

    fn put_subject_keys(
        &self,
        collection: &str,
        keys: Vec<SubjectKeyRow>,
    ) -> StoreFuture<'_, Vec<Vec<u8>>> {
        let coll = collection.to_owned();
        self.write_op(false, move |c| {
            let mut ins = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO keys.subject_keys(collection, handle, wrapped, created) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(db)?;
            let mut sel = c
                .prepare_cached("SELECT wrapped FROM keys.subject_keys WHERE collection = ?1 AND handle = ?2")
                .map_err(db)?;
            let t = now();
            keys.iter()
                .map(|k| {
                    ins.execute(params![coll, k.handle, k.wrapped, t]).map_err(db)?;
                    sel.query_row(params![coll, k.handle], |r| r.get(0)).map_err(db)
                })
                .collect()
        })
    }

    fn subject_keys(
        &self,
        collection: &str,
        after: Option<Vec<u8>>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<SubjectKeyRow>> {
        let coll = collection.to_owned();
        self.read(Read::Blocking, move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT handle, wrapped FROM keys.subject_keys WHERE collection = ?1 AND handle > ?2
                     ORDER BY handle LIMIT ?3",
                )
                .map_err(db)?;
            let rows = s
                .query_map(params![coll, after.unwrap_or_default(), limit], |r| {
                    Ok(SubjectKeyRow {
                        handle: r.get(0)?,
                        wrapped: r.get(1)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
    }

    fn rewrap_subject_keys(
        &self,
        collection: &str,
        swaps: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    ) -> StoreFuture<'_, u64> {
        let coll = collection.to_owned();
        self.write_op(false, move |c| {
            let mut s = c
                .prepare_cached(
                    "UPDATE keys.subject_keys SET wrapped = ?4 WHERE collection = ?1 AND handle = ?2 AND wrapped = ?3",
                )
                .map_err(db)?;
            let mut n = 0;
            for (h, old, new) in swaps {
                n += s.execute(params![coll, h, old, new]).map_err(db)? as u64;
            }
            Ok(n)
        })
    }

    fn count_subject_keys(&self, collection: &str) -> StoreFuture<'_, u64> {
        let coll = collection.to_owned();
        self.read(Read::Blocking, move |c| {
            c.query_row(
                "SELECT count(*) FROM keys.subject_keys WHERE collection = ?1",
                params![coll],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db)
        })
    }

    fn shred(&self, collection: &str, handle: &[u8]) -> StoreFuture<'_, Shredded> {
        let (coll, handle) = (collection.to_owned(), handle.to_vec());
        self.write_op(true, move |c| {
            let key = c
                .execute(
                    "DELETE FROM keys.subject_keys WHERE collection = ?1 AND handle = ?2",
                    params![coll, handle],
                )
                .map_err(db)?;
            c.execute(
                "DELETE FROM record_index WHERE collection = ?1 AND id IN
                 (SELECT id FROM records WHERE collection = ?1 AND subject = ?2)",
                params![coll, handle],
            )
            .map_err(db)?;
            let records = c
                .execute(
                    "DELETE FROM records WHERE collection = ?1 AND subject = ?2",
                    params![coll, handle],
                )
                .map_err(db)?;
            Ok(Shredded {
                key_destroyed: key > 0,
                records: records as u64,
            })
        })
    }

    fn write(&self, collection: &str, writes: Vec<RecordWrite>) -> StoreFuture<'_, ()> {
        let coll = collection.to_owned();
        self.write_op(false, move |c| {
            for w in &writes {
                apply_write(c, &coll, w)?;
            }
            Ok(())
        })
    }

    fn get(&self, collection: &str, ids: Vec<String>) -> StoreFuture<'_, Vec<Option<RecordRow>>> {
        let coll = collection.to_owned();
        self.read(Read::Inline, move |c| {
            let mut s = c.prepare_cached(&get_sql()).map_err(db)?;
            ids.iter()
                .map(|id| {
                    s.query_row(params![coll, id], record_row)
                        .optional()
                        .map_err(db)
                })
                .collect()
        })
    }

    fn delete(&self, collection: &str, id: &str) -> StoreFuture<'_, bool> {
        let (coll, id) = (collection.to_owned(), id.to_owned());
        self.write_op(false, move |c| {
            c.prepare_cached("DELETE FROM record_index WHERE collection = ?1 AND id = ?2")
                .map_err(db)?
                .execute(params![coll, id])
                .map_err(db)?;
            let n = c
                .prepare_cached("DELETE FROM records WHERE collection = ?1 AND id = ?2")
                .map_err(db)?
                .execute(params![coll, id])
                .map_err(db)?;
            Ok(n > 0)
        })
    }

    fn list(
        &self,
        collection: &str,
        filters: Vec<PlainFilter>,
        after: Option<String>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<RecordRow>> {
        let coll = collection.to_owned();
        self.read(Read::Blocking, move |c| {
            let mut binds: Vec<rusqlite::types::Value> = vec![
                coll.into(),
                after.unwrap_or_default().into(),
                (limit as i64).into(),
            ];
            for f in &filters {
                binds.push(f.path.clone().into());
                binds.push(bind_json(&f.value));
            }
            let mut s = c.prepare_cached(&list_sql(filters.len())).map_err(db)?;
            let rows = s
                .query_map(params_from_iter(binds.iter()), record_row)
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
    }

    fn find(
        &self,
        collection: &str,
        name: &str,
        value: Vec<u8>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<RecordRow>> {
        let (coll, name) = (collection.to_owned(), name.to_owned());
        self.read(Read::Inline, move |c| {
            let mut s = c.prepare_cached(&find_sql()).map_err(db)?;
            let rows = s
                .query_map(params![coll, name, value, limit], record_row)
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
    }

    fn count(&self, collection: &str, below_version: Option<u32>) -> StoreFuture<'_, u64> {
        let coll = collection.to_owned();
        self.read(Read::Blocking, move |c| {
            c.query_row(
                "SELECT count(*) FROM records WHERE collection = ?1 AND (?2 IS NULL OR v < ?2)",
                params![coll, below_version],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db)
        })
    }

    fn dump_records(
        &self,
        collection: &str,
        after: Option<String>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<RecordDump>> {
        let coll = collection.to_owned();
        self.read(Read::Blocking, move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT id, subject, v, rev, plain, body, updated FROM records
                     WHERE collection = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(db)?;
            let mut rows: Vec<RecordDump> = s
                .query_map(params![coll, after.unwrap_or_default(), limit], |r| {
                    Ok(RecordDump {
                        id: r.get(0)?,
                        subject: r.get(1)?,
                        version: r.get(2)?,
                        rev: r.get::<_, i64>(3)? as u64,
                        plain: r.get(4)?,
                        body: r.get(5)?,
                        updated: r.get(6)?,
                        indexes: Vec::new(),
                    })
                })
                .map_err(db)?
                .collect::<Result<_, _>>()
                .map_err(db)?;
            let mut ix = c
                .prepare_cached(
                    "SELECT name, value FROM record_index WHERE collection = ?1 AND id = ?2 ORDER BY name, value",
                )
                .map_err(db)?;
            for r in &mut rows {
                r.indexes = ix
                    .query_map(params![coll, r.id], |x| Ok((x.get(0)?, x.get(1)?)))
                    .map_err(db)?
                    .collect::<Result<_, _>>()
                    .map_err(db)?;
            }
            Ok(rows)
        })
    }

    fn load_records(&self, collection: &str, rows: Vec<RecordDump>) -> StoreFuture<'_, ()> {
        let coll = collection.to_owned();
        self.write_op(false, move |c| {
            let mut ins = c
                .prepare_cached(
                    "INSERT INTO records(collection, id, subject, v, rev, plain, body, updated)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(db)?;
            let mut ix = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO record_index(collection, name, value, id) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(db)?;
            for r in &rows {
                match ins.execute(params![
                    coll,
                    r.id,
                    r.subject,
                    r.version,
                    r.rev as i64,
                    r.plain,
                    r.body,
                    r.updated
                ]) {
                    Ok(_) => {}
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        return Err(StoreError::Exists);
                    }
                    Err(e) => return Err(db(e)),
                }
                for (n, v) in &r.indexes {
                    ix.execute(params![coll, n, v, r.id]).map_err(db)?;
                }
            }
            Ok(())
        })
    }

    fn put_job(&self, job: JobRow) -> StoreFuture<'_, ()> {
        self.write_op(false, move |c| {
            c.prepare_cached(&format!(
                "INSERT OR REPLACE INTO jobs({JOB_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))
            .map_err(db)?
            .execute(params![
                job.id,
                job.kind,
                job.collection,
                job.state,
                job.cursor,
                job.done as i64,
                job.total as i64,
                job.error,
                job.params,
                job.started,
                job.updated
            ])
            .map_err(db)?;
            Ok(())
        })
    }

    fn job(&self, id: &str) -> StoreFuture<'_, Option<JobRow>> {
        let id = id.to_owned();
        self.read(Read::Inline, move |c| {
            c.query_row(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
                params![id],
                job_row,
            )
            .optional()
            .map_err(db)
        })
    }

    fn running_jobs(&self) -> StoreFuture<'_, Vec<JobRow>> {
        self.read(Read::Inline, move |c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE state = 'running' ORDER BY started"
                ))
                .map_err(db)?;
            let rows = s.query_map([], job_row).map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
    }
}

#[cfg(test)]
mod tests;
