//! The keystore document in PostgreSQL, shared by every node.
//!
//! The keystore is synchronous (a key use must not wait on a network), so
//! this adapter runs its own thread with its own small tokio runtime and
//! pool; the keystore's rare writes block on a channel to it, and its
//! hot-path change check reads an atomic.
//!
//! * **Lock:** `pg_advisory_lock` on one pooled connection, held until the
//!   guard drops: one read-modify-write at a time across all nodes.
//! * **Write:** one `UPSERT` of the row (the old or the new document,
//!   never a mix), committed before the lock is released.
//! * **Change stamp:** the row's `generation`, polled every
//!   [`POLL`]. A ring rotated, disabled or destroyed on one node is
//!   honoured by every other node within that interval plus the keystore's
//!   own key-use recheck (1 ms).
//! * **Copy:** the poller fetches a changed document along with its
//!   generation, so the stamp always names a document held in memory and
//!   a key use that sees the stamp move never waits on the database (it
//!   would wait out a whole outage otherwise). Only writes, under the
//!   lock, read the row itself.

use super::{PgSettings, open_pool};
use crate::StoreError;
use phivault_keystore::SharedDoc;
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How often each node looks for a keystore changed by another node.
pub const POLL: Duration = Duration::from_millis(500);
/// The advisory lock key of the keystore ("pvks").
const LOCK_KEY: i64 = 0x7076_6b73;
/// `stamp` before any document exists.
const NONE: u64 = u64::MAX;

type Reply<T> = mpsc::SyncSender<std::io::Result<T>>;

enum Req {
    Read(Reply<Option<Vec<u8>>>),
    Write(Vec<u8>, u64, Reply<()>),
    Lock(Reply<tokio::sync::oneshot::Sender<()>>),
}

/// The keystore document in table `pv_keystore` (one row).
pub struct PgKeystoreDoc {
    tx: std::sync::Mutex<mpsc::Sender<Req>>,
    latest: Arc<Latest>,
    target: String,
}

/// The newest document this node has seen, and its generation (the
/// stamp). The stamp is only ever set together with its document.
struct Latest {
    doc: std::sync::Mutex<Option<(u64, Vec<u8>)>>,
    generation: AtomicU64,
}

impl Latest {
    /// Keeps `doc` unless a newer generation is held already.
    fn offer(&self, g: u64, doc: Vec<u8>) {
        let mut d = self.doc.lock().expect("lock");
        if d.as_ref().is_none_or(|(held, _)| g >= *held) {
            *d = Some((g, doc));
            self.generation.store(g, Ordering::SeqCst);
        }
    }
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

struct Guard(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl PgKeystoreDoc {
    /// Connects (same TLS rules as the record store) and starts polling.
    pub fn open(s: &PgSettings) -> Result<Arc<Self>, StoreError> {
        let (tx, rx) = mpsc::channel::<Req>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let latest = Arc::new(Latest {
            doc: std::sync::Mutex::new(None),
            generation: AtomicU64::new(NONE),
        });
        let (latest2, s) = (latest.clone(), s.clone());
        std::thread::Builder::new()
            .name("phivault-pg-keystore".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StoreError::Db(e.to_string())));
                        return;
                    }
                };
                rt.block_on(serve(s, rx, latest2, ready_tx));
            })
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let target = ready_rx.recv().map_err(|_| StoreError::Closed)??;
        Ok(Arc::new(Self {
            tx: std::sync::Mutex::new(tx),
            latest,
            target,
        }))
    }

    fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Req) -> std::io::Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx
            .lock()
            .expect("lock")
            .send(make(tx))
            .map_err(|_| io("the keystore's database thread stopped"))?;
        // The wait can last the pool's acquire timeout while the database
        // is away. On a multi-threaded runtime's worker (a request handler
        // rotating a key) hand the worker's other tasks off first: a
        // blocked worker would otherwise hold a task queued behind it, and
        // a request that never touched the keystore would hang as long.
        let wait = || {
            rx.recv()
                .map_err(|_| io("the keystore's database thread stopped"))?
        };
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }
}

async fn read_generation(pool: &sqlx::PgPool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT generation FROM pv_keystore WHERE id = 1")
        .fetch_optional(pool)
        .await?
        .map(|r| r.try_get::<i64, _>(0))
        .transpose()
}

/// The stored document (offered to `latest`), or `None` before the first.
async fn read_doc(pool: &sqlx::PgPool, latest: &Latest) -> std::io::Result<Option<Vec<u8>>> {
    let Some(r) = sqlx::query("SELECT doc, generation FROM pv_keystore WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(io)?
    else {
        return Ok(None);
    };
    let doc: Vec<u8> = r.try_get(0).map_err(io)?;
    let g: i64 = r.try_get(1).map_err(io)?;
    latest.offer(g as u64, doc.clone());
    Ok(Some(doc))
}

async fn serve(
    s: PgSettings,
    rx: mpsc::Receiver<Req>,
    latest: Arc<Latest>,
    ready: mpsc::SyncSender<Result<String, StoreError>>,
) {
    let pool = match open_pool(&s, 4).await {
        Ok((pool, _, target)) => {
            let _ = read_doc(&pool, &latest).await;
            let _ = ready.send(Ok(format!("{target} (table pv_keystore)")));
            pool
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    // The poller: another node's write shows up here within POLL.
    {
        let (pool, latest) = (pool.clone(), latest.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                if let Ok(Some(g)) = read_generation(&pool).await
                    && g as u64 != latest.generation.load(Ordering::SeqCst)
                {
                    let _ = read_doc(&pool, &latest).await;
                }
            }
        });
    }
    // Requests arrive on a blocking channel: take them on a blocking
    // thread and hand them to this runtime.
    let (atx, mut arx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(r) = rx.recv() {
            if atx.send(r).is_err() {
                break;
            }
        }
    });
    while let Some(req) = arx.recv().await {
        let pool = pool.clone();
        let latest = latest.clone();
        // Each request runs on its own task: a lock waiting for another
        // node must not hold up this node's reads.
        tokio::spawn(async move {
            match req {
                Req::Read(reply) => {
                    let _ = reply.send(read_doc(&pool, &latest).await);
                }
                Req::Write(doc, g, reply) => {
                    let r = sqlx::query(
                        "INSERT INTO pv_keystore(id, generation, doc, updated)
                         VALUES (1, $1, $2, extract(epoch from now())::BIGINT)
                         ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation,
                           doc = EXCLUDED.doc, updated = EXCLUDED.updated
                         WHERE pv_keystore.generation < EXCLUDED.generation",
                    )
                    .bind(g as i64)
                    .bind(&doc)
                    .execute(&pool)
                    .await
                    .map_err(io)
                    .and_then(|r| {
                        // Generations only grow: a write that does not
                        // advance it lost a race it should not have run.
                        if r.rows_affected() == 1 {
                            latest.offer(g, doc);
                            Ok(())
                        } else {
                            Err(io("the keystore was changed by another node; retry"))
                        }
                    });
                    let _ = reply.send(r);
                }
                Req::Lock(reply) => {
                    let mut conn = match pool.acquire().await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = reply.send(Err(io(e)));
                            return;
                        }
                    };
                    if let Err(e) = sqlx::query("SELECT pg_advisory_lock($1)")
                        .bind(LOCK_KEY)
                        .execute(&mut *conn)
                        .await
                    {
                        let _ = reply.send(Err(io(e)));
                        return;
                    }
                    let (release, released) = tokio::sync::oneshot::channel();
                    if reply.send(Ok(release)).is_ok() {
                        let _ = released.await;
                    }
                    if sqlx::query("SELECT pg_advisory_unlock($1)")
                        .bind(LOCK_KEY)
                        .execute(&mut *conn)
                        .await
                        .is_err()
                    {
                        // A connection whose unlock failed must not go back
                        // to the pool still holding the lock.
                        conn.detach();
                    }
                }
            }
        });
    }
}

impl SharedDoc for PgKeystoreDoc {
    fn describe(&self) -> String {
        self.target.clone()
    }

    fn read(&self) -> std::io::Result<Option<Vec<u8>>> {
        self.ask(Req::Read)
    }

    fn read_cached(&self) -> std::io::Result<Option<Vec<u8>>> {
        let held = self
            .latest
            .doc
            .lock()
            .expect("lock")
            .as_ref()
            .map(|(_, d)| d.clone());
        match held {
            Some(d) => Ok(Some(d)),
            None => self.read(),
        }
    }

    fn stamp(&self) -> Option<u64> {
        Some(self.latest.generation.load(Ordering::SeqCst)).filter(|g| *g != NONE)
    }

    fn lock(&self) -> std::io::Result<Box<dyn Send>> {
        let release = self.ask(Req::Lock)?;
        Ok(Box::new(Guard(Some(release))))
    }

    fn write(&self, doc: &[u8], generation: u64) -> std::io::Result<()> {
        self.ask(|r| Req::Write(doc.to_vec(), generation, r))
    }
}
