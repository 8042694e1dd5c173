//! The PostgreSQL store, for several stateless nodes sharing one database.
//!
//! * **TLS.** `sslmode=verify-full` unless the URL says otherwise, and a
//!   weaker `sslmode` is refused unless the operator records a reason
//!   ([`PgSettings::insecure_tls_reason`]). Every new connection then
//!   checks what it negotiated (`pg_stat_ssl`): TLS 1.2 or 1.3 with an
//!   AES-GCM suite (SP 800-52r2), or the connection is dropped. rustls
//!   runs on aws-lc-rs, so a `--features fips` build talks to PostgreSQL
//!   through the validated module too.
//! * **Migrations** are versioned and run at start under PostgreSQL's
//!   advisory lock (sqlx's migrator), so nodes starting together apply
//!   each one exactly once.
//! * **Durability.** A write is one transaction; `Ok` means PostgreSQL
//!   committed it, which under its defaults (`synchronous_commit = on`,
//!   `fsync = on`) is on disk, and on a synchronous standby when the
//!   operator configures one.
//! * **Subject keys** live in their own table, `pv_subject_keys`, so a
//!   record backup (`pg_dump --exclude-table=pv_subject_keys`) never
//!   carries the keys that open it (SECURITY.md §5b).
//! * **Availability.** A connection or pool failure is
//!   [`StoreError::Unavailable`] (HTTP 503); the pool reconnects by itself
//!   once PostgreSQL is back.

use super::*;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::{AssertSqlSafe, Executor, Row};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod audit_mirror;
mod keystore;
pub use audit_mirror::{AuditMirror, SyncStats, audit_nodes, pull_audit};
pub use keystore::PgKeystoreDoc;

/// The migrations, in order. Never edit one that shipped: add the next.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "records, indexes, subject keys, jobs",
        r#"
CREATE TABLE pv_collections(
  name TEXT NOT NULL, version INTEGER NOT NULL, schema TEXT NOT NULL, created BIGINT NOT NULL,
  PRIMARY KEY(name, version));
CREATE TABLE pv_subject_keys(
  collection TEXT NOT NULL, handle BYTEA NOT NULL, wrapped BYTEA NOT NULL, created BIGINT NOT NULL,
  PRIMARY KEY(collection, handle));
CREATE TABLE pv_records(
  collection TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, subject BYTEA NOT NULL, v INTEGER NOT NULL,
  rev BIGINT NOT NULL, plain JSONB NOT NULL, body TEXT NOT NULL, updated BIGINT NOT NULL,
  PRIMARY KEY(collection, id));
CREATE INDEX pv_records_subject ON pv_records(collection, subject);
CREATE INDEX pv_records_version ON pv_records(collection, v);
CREATE TABLE pv_record_index(
  collection TEXT NOT NULL, name TEXT NOT NULL, value BYTEA NOT NULL, id TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY(collection, name, value, id));
CREATE INDEX pv_record_index_id ON pv_record_index(collection, id);
CREATE TABLE pv_jobs(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, collection TEXT NOT NULL, state TEXT NOT NULL,
  cursor TEXT, done BIGINT NOT NULL, total BIGINT NOT NULL, error TEXT, params TEXT NOT NULL,
  started BIGINT NOT NULL, updated BIGINT NOT NULL);
"#,
    ),
    (
        2,
        "the shared keystore document",
        r#"
CREATE TABLE pv_keystore(
  id INTEGER PRIMARY KEY CHECK (id = 1), generation BIGINT NOT NULL, doc BYTEA NOT NULL,
  updated BIGINT NOT NULL);
"#,
    ),
    (
        3,
        "the nodes' audit trails, mirrored",
        r#"
CREATE TABLE pv_audit_chunks(
  node TEXT NOT NULL, path TEXT COLLATE "C" NOT NULL, off BIGINT NOT NULL, data BYTEA NOT NULL,
  PRIMARY KEY(node, path, off));
"#,
    ),
    (
        4,
        "each audit node name bound to one trail",
        r#"
CREATE TABLE pv_audit_nodes(
  node TEXT PRIMARY KEY, trail TEXT NOT NULL, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL);
"#,
    ),
];

/// The table of applied migrations.
const MIGRATIONS_TABLE: &str = "pv_migrations";

/// How to reach PostgreSQL.
#[derive(Clone, Default)]
pub struct PgSettings {
    /// `postgres://user:password@host:port/db?…` (libpq URL syntax).
    pub url: String,
    /// Trust anchors for the server's certificate (PEM), e.g. phivault's
    /// CA. `None`: the URL's `sslrootcert`, else the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate and key (PEM) for `clientcert=verify-full`.
    pub client_cert_pem: Option<Vec<u8>>,
    /// The client key (PEM).
    pub client_key_pem: Option<Vec<u8>>,
    /// Why the URL may use an `sslmode` weaker than `verify-full` (an
    /// operator's recorded risk decision); `None` refuses such URLs.
    pub insecure_tls_reason: Option<String>,
    /// Pool size (default 32).
    pub max_connections: u32,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password; print only where it points.
        f.debug_struct("PgSettings")
            .field("url", &redact_url(&self.url))
            .field("ca_pem", &self.ca_pem.is_some())
            .field("client_cert", &self.client_cert_pem.is_some())
            .field("insecure_tls_reason", &self.insecure_tls_reason)
            .finish()
    }
}

/// The URL without its password (for logs and errors).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            let user = cred.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The TCP host and port a URL points at (`None` for a Unix socket).
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let o = PgConnectOptions::from_str(url).ok()?;
    if o.get_socket().is_some() || o.get_host().starts_with('/') {
        return None;
    }
    Some((o.get_host().to_owned(), o.get_port()))
}

/// What one connection negotiated, as PostgreSQL reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbTls {
    /// `TLSv1.3`, `TLSv1.2`, or empty without TLS.
    pub version: String,
    /// The suite name (OpenSSL's spelling), or empty.
    pub cipher: String,
}

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    tls: Arc<Mutex<Option<DbTls>>>,
    target: String,
}

fn db(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(d) => {
            // Class 08 (connection), 57P0x (shutdown, crash recovery),
            // 53 (out of resources), 40001/40P01 are transient.
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
                StoreError::Unavailable(d.to_string())
            } else {
                StoreError::Db(d.to_string())
            }
        }
        other => StoreError::Db(other.to_string()),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// The `sslmode` a libpq URL names, if any.
fn url_sslmode(url: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "sslmode")
        .map(|(_, v)| v.to_ascii_lowercase())
}

/// Whether a negotiated TLS session meets SP 800-52r2: TLS 1.2 with an
/// ECDHE/DHE AES-GCM suite, or TLS 1.3 with an AES-GCM suite.
fn approved(t: &DbTls) -> bool {
    let c = t.cipher.to_ascii_uppercase();
    match t.version.as_str() {
        "TLSv1.3" => c == "TLS_AES_256_GCM_SHA384" || c == "TLS_AES_128_GCM_SHA256",
        "TLSv1.2" => {
            (c.starts_with("ECDHE-") || c.starts_with("DHE-"))
                && c.contains("AES")
                && c.contains("GCM")
        }
        _ => false,
    }
}

impl PgStore {
    /// Connects, checks TLS, and runs pending migrations (under an
    /// advisory lock).
    pub async fn connect(s: &PgSettings) -> Result<Self, StoreError> {
        let (pool, tls, target) = open_pool(s, s.max_connections).await?;
        Ok(Self { pool, tls, target })
    }

    /// What the most recent connection negotiated (`None` before one).
    pub fn tls(&self) -> Option<DbTls> {
        self.tls.lock().expect("lock").clone()
    }
}

type SeenTls = Arc<Mutex<Option<DbTls>>>;

/// Opens a pool (TLS checked on every connection) and runs pending
/// migrations under the advisory lock.
async fn open_pool(s: &PgSettings, max: u32) -> Result<(PgPool, SeenTls, String), StoreError> {
    {
        let target = redact_url(&s.url);
        let mut opts = PgConnectOptions::from_str(&s.url).map_err(|e| {
            StoreError::Config(format!(
                "storage.url {target} is not a PostgreSQL URL ({e}); write postgres://USER:PASSWORD@HOST:PORT/DB"
            ))
        })?;
        let tls_required = match url_sslmode(&s.url).as_deref() {
            None => {
                opts = opts.ssl_mode(PgSslMode::VerifyFull);
                true
            }
            Some("verify-full") => true,
            Some(other) => {
                if s.insecure_tls_reason.as_deref().is_none_or(str::is_empty) {
                    return Err(StoreError::Config(format!(
                        "storage.url sets sslmode={other}, which does not verify the database server's \
                         certificate and name; remove it (verify-full is the default) or record why in \
                         storage.insecure_db_tls_reason"
                    )));
                }
                other != "disable" && other != "allow" && other != "prefer"
            }
        };
        if let Some(ca) = &s.ca_pem {
            opts = opts.ssl_root_cert_from_pem(ca.clone());
        }
        if let (Some(c), Some(k)) = (&s.client_cert_pem, &s.client_key_pem) {
            opts = opts.ssl_client_cert_from_pem(c).ssl_client_key_from_pem(k);
        }
        opts = opts.application_name("phivault");
        let tls = Arc::new(Mutex::new(None));
        let seen = tls.clone();
        let pool = PgPoolOptions::new()
            .max_connections(if max == 0 { 32 } else { max })
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings every connection before handing it out: a second
            // round trip (over TLS) for every statement. Ping only ones
            // idle for over a second; a connection broken more recently
            // (the database restarted within that second) fails its one
            // request with a clean 503 and is dropped.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > Duration::from_secs(1) {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _meta| {
                let seen = seen.clone();
                Box::pin(async move {
                    let row = conn
                        .fetch_optional(
                            "SELECT COALESCE(version, ''), COALESCE(cipher, ''), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                        )
                        .await?;
                    let t = match row {
                        Some(r) if r.try_get::<bool, _>(2)? => DbTls {
                            version: r.try_get(0)?,
                            cipher: r.try_get(1)?,
                        },
                        _ => DbTls::default(),
                    };
                    if tls_required && !approved(&t) {
                        return Err(sqlx::Error::Tls(
                            format!(
                                "the database negotiated {} {}, not TLS 1.2/1.3 with AES-GCM (SP 800-52r2); \
                                 set ssl_min_protocol_version = 'TLSv1.2' and ssl_ciphers = 'ECDHE+AESGCM' in postgresql.conf",
                                if t.version.is_empty() { "no TLS" } else { &t.version },
                                t.cipher
                            )
                            .into(),
                        ));
                    }
                    *seen.lock().expect("lock") = Some(t);
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| {
                let hint = match &e {
                    sqlx::Error::Tls(_) => {
                        "the database's TLS certificate did not verify (or TLS failed): give phivault the CA that \
                         signed it (storage.ca_file) and connect by the name in the certificate"
                    }
                    sqlx::Error::Database(_) => "check the user, password and database in storage.url",
                    _ => "check that PostgreSQL is running and reachable at the URL's host and port",
                };
                StoreError::Unavailable(format!("connecting to {target}: {e}; {hint}"))
            })?;
        let migrations = MIGRATIONS
            .iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    (*d).into(),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(*sql),
                    false,
                )
            })
            .collect();
        let mut m = Migrator::with_migrations(migrations);
        m.dangerous_set_table_name(MIGRATIONS_TABLE);
        m.run(&pool)
            .await
            .map_err(|e| StoreError::Db(format!("migrating {target}: {e}")))?;
        Ok((pool, tls, target))
    }
}

impl PgStore {
    /// Where the store points (password removed).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The pool (for the other PostgreSQL-backed parts of a node).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The applied migration versions, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT version FROM {MIGRATIONS_TABLE} WHERE success ORDER BY version"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>(0).map_err(db))
            .collect()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn schema_row(r: &PgRow) -> Result<SchemaRow, StoreError> {
    Ok(SchemaRow {
        collection: r.try_get(0).map_err(db)?,
        version: r.try_get::<i32, _>(1).map_err(db)? as u32,
        schema: r.try_get(2).map_err(db)?,
        created: r.try_get(3).map_err(db)?,
    })
}

/// A record's columns with its subject's wrapped key (one read for both).
const RECORD_COLS: &str = "r.id, r.subject, r.v, r.rev, r.body, r.updated, k.wrapped";
const RECORD_FROM: &str = "pv_records r LEFT JOIN pv_subject_keys k ON k.collection = r.collection AND k.handle = r.subject";

fn record_row(r: &PgRow) -> Result<RecordRow, StoreError> {
    Ok(RecordRow {
        id: r.try_get(0).map_err(db)?,
        subject: r.try_get(1).map_err(db)?,
        version: r.try_get::<i32, _>(2).map_err(db)? as u32,
        rev: r.try_get::<i64, _>(3).map_err(db)? as u64,
        body: r.try_get(4).map_err(db)?,
        updated: r.try_get(5).map_err(db)?,
        subject_key: r.try_get(6).map_err(db)?,
    })
}

const JOB_COLS: &str =
    "id, kind, collection, state, cursor, done, total, error, params, started, updated";

fn job_row(r: &PgRow) -> Result<JobRow, StoreError> {
    Ok(JobRow {
        id: r.try_get(0).map_err(db)?,
        kind: r.try_get(1).map_err(db)?,
        collection: r.try_get(2).map_err(db)?,
        state: r.try_get(3).map_err(db)?,
        cursor: r.try_get(4).map_err(db)?,
        done: r.try_get::<i64, _>(5).map_err(db)? as u64,
        total: r.try_get::<i64, _>(6).map_err(db)? as u64,
        error: r.try_get(7).map_err(db)?,
        params: r.try_get(8).map_err(db)?,
        started: r.try_get(9).map_err(db)?,
        updated: r.try_get(10).map_err(db)?,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Puts rows fetched for `keys` back in the order of `keys`.
fn in_order<K: std::hash::Hash + Eq, T: Clone>(keys: &[K], rows: Vec<(K, T)>) -> Vec<Option<T>> {
    let by: std::collections::HashMap<K, T> = rows.into_iter().collect();
    keys.iter().map(|k| by.get(k).cloned()).collect()
}

/// One new record and its index rows in one statement: on the pool, one
/// round trip in its own implicit transaction (instead of BEGIN, two
/// INSERTs, COMMIT); in a bulk write's transaction, one of its statements.
async fn create_one<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    coll: &str,
    w: &RecordWrite,
) -> Result<(), StoreError> {
    let plain: serde_json::Value = serde_json::from_str(&w.plain)
        .map_err(|e| StoreError::Db(format!("plain fields are not JSON: {e}")))?;
    let (names, values): (Vec<String>, Vec<Vec<u8>>) = w.indexes.iter().cloned().unzip();
    let created: i64 = sqlx::query_scalar(
        "WITH r AS (
           INSERT INTO pv_records(collection, id, subject, v, rev, plain, body, updated)
           VALUES ($1, $2, $3, $4, 1, $5, $6, $7) ON CONFLICT DO NOTHING
           RETURNING id),
         i AS (
           INSERT INTO pv_record_index(collection, name, value, id)
           SELECT $1, n, v, r.id FROM r, unnest($8::TEXT[], $9::BYTEA[]) AS t(n, v)
           ON CONFLICT DO NOTHING)
         SELECT count(*) FROM r",
    )
    .bind(coll)
    .bind(&w.id)
    .bind(&w.subject)
    .bind(w.version as i32)
    .bind(sqlx::types::Json(&plain))
    .bind(&w.body)
    .bind(now())
    .bind(&names)
    .bind(&values)
    .fetch_one(ex)
    .await
    .map_err(db)?;
    if created == 0 {
        return Err(StoreError::Exists);
    }
    Ok(())
}

async fn apply_write(
    tx: &mut sqlx::PgConnection,
    coll: &str,
    w: &RecordWrite,
) -> Result<(), StoreError> {
    let rev = match w.mode {
        WriteMode::Create => return create_one(&mut *tx, coll, w).await,
        WriteMode::Replace(rev) => rev,
    };
    let plain: serde_json::Value = serde_json::from_str(&w.plain)
        .map_err(|e| StoreError::Db(format!("plain fields are not JSON: {e}")))?;
    let t = now();
    let n = sqlx::query(
        "UPDATE pv_records SET subject = $3, v = $4, rev = rev + 1, plain = $5, body = $6, updated = $7
         WHERE collection = $1 AND id = $2 AND ($8::BIGINT IS NULL OR rev = $8)",
    )
    .bind(coll)
    .bind(&w.id)
    .bind(&w.subject)
    .bind(w.version as i32)
    .bind(sqlx::types::Json(&plain))
    .bind(&w.body)
    .bind(t)
    .bind(rev.map(|r| r as i64))
    .execute(&mut *tx)
    .await
    .map_err(db)?
    .rows_affected();
    if n == 0 {
        let exists = sqlx::query("SELECT 1 FROM pv_records WHERE collection = $1 AND id = $2")
            .bind(coll)
            .bind(&w.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        return Err(if exists.is_some() {
            StoreError::Conflict
        } else {
            StoreError::NotFound
        });
    }
    sqlx::query("DELETE FROM pv_record_index WHERE collection = $1 AND id = $2")
        .bind(coll)
        .bind(&w.id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    if !w.indexes.is_empty() {
        let (names, values): (Vec<String>, Vec<Vec<u8>>) = w.indexes.iter().cloned().unzip();
        sqlx::query(
            "INSERT INTO pv_record_index(collection, name, value, id)
             SELECT $1, n, v, $4 FROM unnest($2::TEXT[], $3::BYTEA[]) AS t(n, v)
             ON CONFLICT DO NOTHING",
        )
        .bind(coll)
        .bind(&names)
        .bind(&values)
        .bind(&w.id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    Ok(())
}

impl RecordStore for PgStore {
    fn put_schema(&self, row: SchemaRow) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            match sqlx::query(
                "INSERT INTO pv_collections(name, version, schema, created) VALUES ($1, $2, $3, $4)",
            )
            .bind(&row.collection)
            .bind(row.version as i32)
            .bind(&row.schema)
            .bind(row.created)
            .execute(&self.pool)
            .await
            {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Exists),
                Err(e) => Err(db(e)),
            }
        })
    }

    fn schemas(&self, collection: &str) -> StoreFuture<'_, Vec<SchemaRow>> {
        let coll = collection.to_owned();
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT name, version, schema, created FROM pv_collections WHERE name = $1 ORDER BY version",
            )
            .bind(coll)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(schema_row).collect()
        })
    }

    fn collections(&self) -> StoreFuture<'_, Vec<SchemaRow>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT DISTINCT ON (name) name, version, schema, created FROM pv_collections
                 ORDER BY name, version DESC",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(schema_row).collect()
        })
    }

    fn subject_keys_for(
        &self,
        collection: &str,
        handles: Vec<Vec<u8>>,
    ) -> StoreFuture<'_, Vec<Option<Vec<u8>>>> {
        let coll = collection.to_owned();
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT handle, wrapped FROM pv_subject_keys WHERE collection = $1 AND handle = ANY($2)",
            )
            .bind(coll)
            .bind(&handles)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            let rows = rows
                .iter()
                .map(|r| Ok((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?)))
                .collect::<Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>>()?;
            Ok(in_order(&handles, rows))
        })
    }

    fn put_subject_keys(
        &self,
        collection: &str,
        keys: Vec<SubjectKeyRow>,
    ) -> StoreFuture<'_, Vec<Vec<u8>>> {
        let coll = collection.to_owned();
        Box::pin(async move {
            let (handles, wrapped): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
                keys.into_iter().map(|k| (k.handle, k.wrapped)).unzip();
            // One statement, one round trip: insert what is missing, and
            // return each handle's stored key (ours, or a racing writer's
            // committed before this statement began).
            //
            // No fsync of its own (`synchronous_commit` off for this
            // statement's implicit transaction): a subject key is only ever
            // needed by a record written after it, and that record's
            // (synchronous) commit flushes the WAL up to and past this one.
            // A crash before that loses only a key no acknowledged record
            // uses.
            let rows = sqlx::query(
                "WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true) AS v),
                 ins AS (
                   INSERT INTO pv_subject_keys(collection, handle, wrapped, created)
                   SELECT $1, h, w, $4 FROM cfg, unnest($2::BYTEA[], $3::BYTEA[]) AS t(h, w)
                   ON CONFLICT DO NOTHING
                   RETURNING handle, wrapped)
                 SELECT handle, wrapped FROM ins
                 UNION ALL
                 SELECT k.handle, k.wrapped FROM pv_subject_keys k
                 WHERE k.collection = $1 AND k.handle = ANY($2)
                   AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.handle = k.handle)",
            )
            .bind(&coll)
            .bind(&handles)
            .bind(&wrapped)
            .bind(now())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            let rows = rows
                .iter()
                .map(|r| Ok((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?)))
                .collect::<Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>>()?;
            let mut out = in_order(&handles, rows);
            // A racing writer's key committed after this statement's
            // snapshot was taken: skipped by ON CONFLICT, not seen by its
            // SELECT. Read those again (a new snapshot sees them).
            let missing: Vec<Vec<u8>> = handles
                .iter()
                .zip(&out)
                .filter(|(_, k)| k.is_none())
                .map(|(h, _)| h.clone())
                .collect();
            if !missing.is_empty() {
                let again = self.subject_keys_for(&coll, missing.clone()).await?;
                let found: std::collections::HashMap<Vec<u8>, Vec<u8>> = missing
                    .into_iter()
                    .zip(again)
                    .filter_map(|(h, k)| Some((h, k?)))
                    .collect();
                for (h, k) in handles.iter().zip(out.iter_mut()) {
                    if k.is_none() {
                        *k = found.get(h).cloned();
                    }
                }
            }
            out.into_iter()
                .map(|k| {
                    k.ok_or_else(|| StoreError::Db("a subject key vanished while stored".into()))
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
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT handle, wrapped FROM pv_subject_keys WHERE collection = $1 AND handle > $2
                 ORDER BY handle LIMIT $3",
            )
            .bind(coll)
            .bind(after.unwrap_or_default())
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter()
                .map(|r| {
                    Ok(SubjectKeyRow {
                        handle: r.try_get(0).map_err(db)?,
                        wrapped: r.try_get(1).map_err(db)?,
                    })
                })
                .collect()
        })
    }

    fn rewrap_subject_keys(
        &self,
        collection: &str,
        swaps: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    ) -> StoreFuture<'_, u64> {
        let coll = collection.to_owned();
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let mut n = 0;
            for (h, old, new) in swaps {
                n += sqlx::query(
                    "UPDATE pv_subject_keys SET wrapped = $4 WHERE collection = $1 AND handle = $2 AND wrapped = $3",
                )
                .bind(&coll)
                .bind(h)
                .bind(old)
                .bind(new)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            }
            tx.commit().await.map_err(db)?;
            Ok(n)
        })
    }

    fn count_subject_keys(&self, collection: &str) -> StoreFuture<'_, u64> {
        let coll = collection.to_owned();
        Box::pin(async move {
            let r = sqlx::query("SELECT count(*) FROM pv_subject_keys WHERE collection = $1")
                .bind(coll)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
            Ok(r.try_get::<i64, _>(0).map_err(db)? as u64)
        })
    }

    fn shred(&self, collection: &str, handle: &[u8]) -> StoreFuture<'_, Shredded> {
        let (coll, handle) = (collection.to_owned(), handle.to_vec());
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let key =
                sqlx::query("DELETE FROM pv_subject_keys WHERE collection = $1 AND handle = $2")
                    .bind(&coll)
                    .bind(&handle)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?
                    .rows_affected();
            sqlx::query(
                "DELETE FROM pv_record_index WHERE collection = $1 AND id IN
                 (SELECT id FROM pv_records WHERE collection = $1 AND subject = $2)",
            )
            .bind(&coll)
            .bind(&handle)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let records =
                sqlx::query("DELETE FROM pv_records WHERE collection = $1 AND subject = $2")
                    .bind(&coll)
                    .bind(&handle)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?
                    .rows_affected();
            tx.commit().await.map_err(db)?;
            Ok(Shredded {
                key_destroyed: key > 0,
                records,
            })
        })
    }

    fn write(&self, collection: &str, writes: Vec<RecordWrite>) -> StoreFuture<'_, ()> {
        let coll = collection.to_owned();
        Box::pin(async move {
            if let [w] = writes.as_slice()
                && matches!(w.mode, WriteMode::Create)
            {
                return create_one(&self.pool, &coll, w).await;
            }
            let mut tx = self.pool.begin().await.map_err(db)?;
            for w in &writes {
                // An error drops `tx`, which rolls the whole batch back.
                apply_write(&mut tx, &coll, w).await?;
            }
            tx.commit().await.map_err(db)
        })
    }

    fn get(&self, collection: &str, ids: Vec<String>) -> StoreFuture<'_, Vec<Option<RecordRow>>> {
        let coll = collection.to_owned();
        Box::pin(async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {RECORD_COLS} FROM {RECORD_FROM} WHERE r.collection = $1 AND r.id = ANY($2)"
            )))
            .bind(coll)
            .bind(&ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            let rows = rows
                .iter()
                .map(|r| record_row(r).map(|x| (x.id.clone(), x)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(in_order(&ids, rows))
        })
    }

    fn delete(&self, collection: &str, id: &str) -> StoreFuture<'_, bool> {
        let (coll, id) = (collection.to_owned(), id.to_owned());
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db)?;
            sqlx::query("DELETE FROM pv_record_index WHERE collection = $1 AND id = $2")
                .bind(&coll)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let n = sqlx::query("DELETE FROM pv_records WHERE collection = $1 AND id = $2")
                .bind(&coll)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
            tx.commit().await.map_err(db)?;
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
        Box::pin(async move {
            let mut sql = format!(
                "SELECT {RECORD_COLS} FROM {RECORD_FROM} WHERE r.collection = $1 AND r.id > $2"
            );
            // `$.a.b` paths name plain fields by identifier; quote each
            // step so any key is a valid jsonpath member.
            let mut binds: Vec<(String, serde_json::Value)> = Vec::new();
            for f in &filters {
                let steps = f.path.strip_prefix("$.").unwrap_or(&f.path);
                let jp = steps
                    .split('.')
                    .map(|k| serde_json::to_string(k).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(".");
                let (p, v) = (binds.len() * 2 + 4, binds.len() * 2 + 5);
                // A missing field reads as JSON null, as SQLite's
                // `json_extract(…) IS NULL` does.
                sql.push_str(&format!(
                    " AND COALESCE(jsonb_path_query_first(r.plain, ${p}::jsonpath), 'null'::jsonb) = ${v}::jsonb"
                ));
                binds.push((format!("$.{jp}"), f.value.clone()));
            }
            sql.push_str(" ORDER BY r.id LIMIT $3");
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(coll)
                .bind(after.unwrap_or_default())
                .bind(limit as i64);
            for (p, v) in binds {
                q = q.bind(p).bind(sqlx::types::Json(v));
            }
            let rows = q.fetch_all(&self.pool).await.map_err(db)?;
            rows.iter().map(record_row).collect()
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
        Box::pin(async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {RECORD_COLS} FROM pv_record_index i
                 JOIN pv_records r ON r.collection = i.collection AND r.id = i.id
                 LEFT JOIN pv_subject_keys k ON k.collection = r.collection AND k.handle = r.subject
                 WHERE i.collection = $1 AND i.name = $2 AND i.value = $3 LIMIT $4"
            )))
            .bind(coll)
            .bind(name)
            .bind(value)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(record_row).collect()
        })
    }

    fn count(&self, collection: &str, below_version: Option<u32>) -> StoreFuture<'_, u64> {
        let coll = collection.to_owned();
        Box::pin(async move {
            let r = sqlx::query(
                "SELECT count(*) FROM pv_records WHERE collection = $1 AND ($2::INTEGER IS NULL OR v < $2)",
            )
            .bind(coll)
            .bind(below_version.map(|v| v as i32))
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
            Ok(r.try_get::<i64, _>(0).map_err(db)? as u64)
        })
    }

    fn dump_records(
        &self,
        collection: &str,
        after: Option<String>,
        limit: u32,
    ) -> StoreFuture<'_, Vec<RecordDump>> {
        let coll = collection.to_owned();
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT r.id, r.subject, r.v, r.rev, r.plain::TEXT, r.body, r.updated,
                   COALESCE((SELECT array_agg(i.name ORDER BY i.name, i.value) FROM pv_record_index i
                     WHERE i.collection = r.collection AND i.id = r.id), '{}'),
                   COALESCE((SELECT array_agg(i.value ORDER BY i.name, i.value) FROM pv_record_index i
                     WHERE i.collection = r.collection AND i.id = r.id), '{}')
                 FROM pv_records r WHERE r.collection = $1 AND r.id > $2 ORDER BY r.id LIMIT $3",
            )
            .bind(coll)
            .bind(after.unwrap_or_default())
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter()
                .map(|r| {
                    let names: Vec<String> = r.try_get(7).map_err(db)?;
                    let values: Vec<Vec<u8>> = r.try_get(8).map_err(db)?;
                    Ok(RecordDump {
                        id: r.try_get(0).map_err(db)?,
                        subject: r.try_get(1).map_err(db)?,
                        version: r.try_get::<i32, _>(2).map_err(db)? as u32,
                        rev: r.try_get::<i64, _>(3).map_err(db)? as u64,
                        plain: r.try_get(4).map_err(db)?,
                        body: r.try_get(5).map_err(db)?,
                        updated: r.try_get(6).map_err(db)?,
                        indexes: names.into_iter().zip(values).collect(),
                    })
                })
                .collect()
        })
    }

    fn load_records(&self, collection: &str, rows: Vec<RecordDump>) -> StoreFuture<'_, ()> {
        let coll = collection.to_owned();
        Box::pin(async move {
            // One statement per page, its columns as arrays unnested by
            // the server: a round trip per row held restores to 15 MB/s.
            let n = rows.len();
            let (mut ids, mut subjects, mut vs, mut revs) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut plains, mut bodies, mut updated) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut inames, mut ivalues, mut iids) = (Vec::new(), Vec::new(), Vec::new());
            for r in rows {
                for (name, value) in r.indexes {
                    inames.push(name);
                    ivalues.push(value);
                    iids.push(r.id.clone());
                }
                ids.push(r.id);
                subjects.push(r.subject);
                vs.push(r.version as i32);
                revs.push(r.rev as i64);
                plains.push(r.plain);
                bodies.push(r.body);
                updated.push(r.updated);
            }
            let mut tx = self.pool.begin().await.map_err(db)?;
            let added = sqlx::query(
                "INSERT INTO pv_records(collection, id, subject, v, rev, plain, body, updated)
                 SELECT $1, i, s, v, r, p::jsonb, b, u
                 FROM unnest($2::TEXT[], $3::BYTEA[], $4::INT4[], $5::INT8[], $6::TEXT[], $7::TEXT[], $8::INT8[])
                   AS t(i, s, v, r, p, b, u)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&coll)
            .bind(&ids)
            .bind(&subjects)
            .bind(&vs)
            .bind(&revs)
            .bind(&plains)
            .bind(&bodies)
            .bind(&updated)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            if added != n as u64 {
                return Err(StoreError::Exists);
            }
            if !inames.is_empty() {
                sqlx::query(
                    "INSERT INTO pv_record_index(collection, name, value, id)
                     SELECT $1, n, v, i FROM unnest($2::TEXT[], $3::BYTEA[], $4::TEXT[]) AS t(n, v, i)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&coll)
                .bind(&inames)
                .bind(&ivalues)
                .bind(&iids)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)
        })
    }

    fn put_job(&self, job: JobRow) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO pv_jobs({JOB_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, collection = EXCLUDED.collection,
                   state = EXCLUDED.state, cursor = EXCLUDED.cursor, done = EXCLUDED.done,
                   total = EXCLUDED.total, error = EXCLUDED.error, params = EXCLUDED.params,
                   started = EXCLUDED.started, updated = EXCLUDED.updated"
            )))
            .bind(job.id)
            .bind(job.kind)
            .bind(job.collection)
            .bind(job.state)
            .bind(job.cursor)
            .bind(job.done as i64)
            .bind(job.total as i64)
            .bind(job.error)
            .bind(job.params)
            .bind(job.started)
            .bind(job.updated)
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    fn job(&self, id: &str) -> StoreFuture<'_, Option<JobRow>> {
        let id = id.to_owned();
        Box::pin(async move {
            let r = sqlx::query(AssertSqlSafe(format!(
                "SELECT {JOB_COLS} FROM pv_jobs WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            r.as_ref().map(job_row).transpose()
        })
    }

    fn running_jobs(&self) -> StoreFuture<'_, Vec<JobRow>> {
        Box::pin(async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {JOB_COLS} FROM pv_jobs WHERE state = 'running' ORDER BY started"
            )))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter().map(job_row).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_and_sslmode_read() {
        assert_eq!(
            redact_url("postgres://pv:s3cret@db:5432/x?sslmode=require"),
            "postgres://pv:***@db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(url_sslmode("postgres://db/x"), None);
        assert_eq!(
            url_sslmode("postgres://db/x?a=b&sslmode=Verify-Full").as_deref(),
            Some("verify-full")
        );
    }

    #[test]
    fn only_approved_suites_pass() {
        let t = |v: &str, c: &str| DbTls {
            version: v.into(),
            cipher: c.into(),
        };
        assert!(approved(&t("TLSv1.3", "TLS_AES_256_GCM_SHA384")));
        assert!(approved(&t("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")));
        assert!(!approved(&t("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")));
        assert!(!approved(&t("TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305")));
        assert!(!approved(&t("TLSv1.2", "AES256-GCM-SHA384")));
        assert!(!approved(&t("TLSv1.1", "ECDHE-RSA-AES256-SHA")));
        assert!(!approved(&t("", "")));
    }
}
