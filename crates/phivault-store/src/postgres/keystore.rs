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
    generation: Arc<AtomicU64>,
    target: String,
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
        let generation = Arc::new(AtomicU64::new(NONE));
        let (gen2, s) = (generation.clone(), s.clone());
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
                rt.block_on(serve(s, rx, gen2, ready_tx));
            })
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let target = ready_rx.recv().map_err(|_| StoreError::Closed)??;
        Ok(Arc::new(Self {
            tx: std::sync::Mutex::new(tx),
            generation,
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
        rx.recv()
            .map_err(|_| io("the keystore's database thread stopped"))?
    }
}

async fn read_generation(pool: &sqlx::PgPool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT generation FROM pv_keystore WHERE id = 1")
        .fetch_optional(pool)
        .await?
        .map(|r| r.try_get::<i64, _>(0))
        .transpose()
}

async fn serve(
    s: PgSettings,
    rx: mpsc::Receiver<Req>,
    generation: Arc<AtomicU64>,
    ready: mpsc::SyncSender<Result<String, StoreError>>,
) {
    let pool = match open_pool(&s, 4).await {
        Ok((pool, _, target)) => {
            let g = read_generation(&pool).await.ok().flatten();
            generation.store(g.map_or(NONE, |g| g as u64), Ordering::SeqCst);
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
        let (pool, generation) = (pool.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                if let Ok(g) = read_generation(&pool).await {
                    generation.store(g.map_or(NONE, |g| g as u64), Ordering::SeqCst);
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
        let generation = generation.clone();
        // Each request runs on its own task: a lock waiting for another
        // node must not hold up this node's reads.
        tokio::spawn(async move {
            match req {
                Req::Read(reply) => {
                    let r = sqlx::query("SELECT doc, generation FROM pv_keystore WHERE id = 1")
                        .fetch_optional(&pool)
                        .await
                        .map_err(io)
                        .and_then(|r| {
                            r.map(|r| {
                                let g: i64 = r.try_get(1).map_err(io)?;
                                generation.store(g as u64, Ordering::SeqCst);
                                r.try_get::<Vec<u8>, _>(0).map_err(io)
                            })
                            .transpose()
                        });
                    let _ = reply.send(r);
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
                    .bind(doc)
                    .execute(&pool)
                    .await
                    .map_err(io)
                    .and_then(|r| {
                        // Generations only grow: a write that does not
                        // advance it lost a race it should not have run.
                        if r.rows_affected() == 1 {
                            generation.store(g, Ordering::SeqCst);
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

    fn stamp(&self) -> Option<u64> {
        Some(self.generation.load(Ordering::SeqCst)).filter(|g| *g != NONE)
    }

    fn lock(&self) -> std::io::Result<Box<dyn Send>> {
        let release = self.ask(Req::Lock)?;
        Ok(Box::new(Guard(Some(release))))
    }

    fn write(&self, doc: &[u8], generation: u64) -> std::io::Result<()> {
        self.ask(|r| Req::Write(doc.to_vec(), generation, r))
    }
}
