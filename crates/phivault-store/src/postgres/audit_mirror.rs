//! Each node's audit trail, mirrored into PostgreSQL.
//!
//! A node writes its trail to local files first (group commit, fsync,
//! fail closed: the write path stays local and fast), and this mirror
//! copies what the files hold into `pv_audit_chunks` every second: appended
//! bytes as new chunks, a rewritten or shrunk file (the `checkpoint` file,
//! a pruned segment) as a fresh set of chunks, a deleted file's chunks
//! removed. So the database holds every node's trail, verifiable with the
//! same verifier after `phivault audit pull`, and a node that loses its
//! disk loses at most the last second (which its signed checkpoints, also
//! mirrored, bound).
//!
//! The mirror copies bytes; it never interprets them, so the trail's
//! formats stay one (docs/FORMAT.md §12).

use super::db;
use crate::StoreError;
use sqlx::{PgPool, Row};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest chunk stored in one row.
const CHUNK: usize = 1 << 20;

/// Files smaller than this are always sent whole (see `changed`).
const WHOLE_BELOW: u64 = 64 << 10;

/// A file's state, and its bytes from an offset on, read ahead of the
/// rest of a pass.
type Read = (Seen, (u64, Vec<u8>));

/// What the mirror last copied of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    ino: u64,
    mtime_ns: i128,
}

/// A node's mirror; keep one per node and call [`AuditMirror::sync`]
/// periodically.
pub struct AuditMirror {
    pool: PgPool,
    node: String,
    seen: BTreeMap<PathBuf, Seen>,
    loaded: bool,
}

/// What one sync copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    /// Bytes sent.
    pub bytes: u64,
    /// Files added, extended or rewritten.
    pub files: u64,
    /// Files removed.
    pub removed: u64,
}

fn stat(p: &Path) -> Option<Seen> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).ok()?;
    m.is_file().then(|| Seen {
        len: m.len(),
        ino: m.ino(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    })
}

fn rel_str(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

impl AuditMirror {
    /// A mirror of node `node`'s trail through `pool`.
    pub fn new(pool: PgPool, node: &str) -> Self {
        Self {
            pool,
            node: node.to_owned(),
            seen: BTreeMap::new(),
            loaded: false,
        }
    }

    /// Binds this node's name to its trail (`trail`: the trail's random
    /// id, kept in its folder), or refuses: two nodes under one name
    /// would overwrite each other's copy, and neither copy would verify.
    /// The first claim of a name binds it for good.
    pub async fn claim(&self, trail: &str) -> Result<(), StoreError> {
        let now = super::now();
        sqlx::query(
            "INSERT INTO pv_audit_nodes(node, trail, first_seen, last_seen) VALUES ($1, $2, $3, $3)
             ON CONFLICT (node) DO NOTHING",
        )
        .bind(&self.node)
        .bind(trail)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        let r = sqlx::query("SELECT trail, last_seen FROM pv_audit_nodes WHERE node = $1")
            .bind(&self.node)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let held: String = r.try_get(0).map_err(db)?;
        let last: i64 = r.try_get(1).map_err(db)?;
        if held != trail {
            return Err(StoreError::Config(format!(
                "the audit node name \"{}\" already belongs to another node's audit trail in this database \
                 (that node was last seen {} s ago); give this node its own name with `node = \"…\"` under \
                 [audit] in its config (each node keeps its own trail, SECURITY.md §5c)",
                self.node,
                (now - last).max(0)
            )));
        }
        Ok(())
    }

    /// Copies what changed in `dir` since the last call.
    pub async fn sync(&mut self, dir: &Path) -> Result<SyncStats, StoreError> {
        if !self.loaded {
            // After a restart: what the database already holds per file.
            let rows = sqlx::query(
                "SELECT path, COALESCE(max(off + length(data)), 0) FROM pv_audit_chunks
                 WHERE node = $1 GROUP BY path",
            )
            .bind(&self.node)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            for r in rows {
                let path: String = r.try_get(0).map_err(db)?;
                let len: i64 = r.try_get(1).map_err(db)?;
                // Inode and time unknown: the next sync re-checks the
                // length only for these (an append continues, a shorter
                // file is re-sent).
                self.seen.insert(
                    PathBuf::from(path),
                    Seen {
                        len: len as u64,
                        ino: 0,
                        mtime_ns: 0,
                    },
                );
            }
            self.loaded = true;
        }
        let mut st = SyncStats::default();
        // Checkpoints are read first (before the folder is even listed) and
        // stored last. The log writes an entry before any checkpoint that
        // covers it, so checkpoint bytes read before the listing and the
        // segments' reads cover only entries those reads hold; stored after
        // them, a pass cut short anywhere (a stop, a crash, a database
        // error) never leaves the copy with a checkpoint over entries it
        // lacks, and the copy always verifies. (Listed first, a segment
        // started between the listing and the checkpoints' read would be
        // missing.)
        let is_checkpoint = |r: &PathBuf| {
            phivault_audit::log::CHECKPOINT_FILES
                .iter()
                .any(|c| r == Path::new(c))
        };
        let mut late = Vec::new();
        for rel in phivault_audit::log::CHECKPOINT_FILES.map(PathBuf::from) {
            let prev = self.seen.get(&rel).copied();
            if let Some(cur) = stat(&dir.join(&rel))
                && prev != Some(cur)
                && let Some(read) = self.changed(dir, &rel, prev).await?
            {
                late.push((rel, Some(read)));
            }
        }
        let now = phivault_audit::log::record_files(dir).map_err(|e| {
            StoreError::Db(format!("reading the audit folder {}: {e}", dir.display()))
        })?;
        let order: Vec<(PathBuf, Option<Read>)> = now
            .iter()
            .filter(|r| !is_checkpoint(r))
            .map(|r| (r.clone(), None))
            .chain(late)
            .collect();
        for (rel, read) in order {
            let rel = &rel;
            let (cur, (from, bytes)) = match read {
                Some(r) => r,
                None => {
                    let prev = self.seen.get(rel).copied();
                    let Some(cur) = stat(&dir.join(rel)) else {
                        continue;
                    };
                    if prev == Some(cur) {
                        continue;
                    }
                    match self.changed(dir, rel, prev).await? {
                        Some(read) => read,
                        None => continue, // removed meanwhile: the next sync sees it
                    }
                }
            };
            let len = from + bytes.len() as u64;
            if from > 0 && bytes.is_empty() {
                self.seen.insert(rel.clone(), Seen { len, ..cur });
                continue;
            }
            let mut tx = self.pool.begin().await.map_err(db)?;
            if from == 0 {
                sqlx::query("DELETE FROM pv_audit_chunks WHERE node = $1 AND path = $2")
                    .bind(&self.node)
                    .bind(rel_str(rel))
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
                sqlx::query(
                    "INSERT INTO pv_audit_chunks(node, path, off, data) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (node, path, off) DO UPDATE SET data = EXCLUDED.data",
                )
                .bind(&self.node)
                .bind(rel_str(rel))
                .bind((from + (i * CHUNK) as u64) as i64)
                .bind(chunk)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                st.bytes += chunk.len() as u64;
            }
            if bytes.is_empty() {
                // An empty file: one empty chunk says it exists.
                sqlx::query(
                    "INSERT INTO pv_audit_chunks(node, path, off, data) VALUES ($1, $2, 0, $3)
                     ON CONFLICT (node, path, off) DO UPDATE SET data = EXCLUDED.data",
                )
                .bind(&self.node)
                .bind(rel_str(rel))
                .bind(&[] as &[u8])
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
            st.files += 1;
            self.seen.insert(rel.clone(), Seen { len, ..cur });
        }
        let gone: Vec<PathBuf> = self
            .seen
            .keys()
            .filter(|p| now.binary_search(p).is_err())
            .cloned()
            .collect();
        for rel in gone {
            sqlx::query("DELETE FROM pv_audit_chunks WHERE node = $1 AND path = $2")
                .bind(&self.node)
                .bind(rel_str(&rel))
                .execute(&self.pool)
                .await
                .map_err(db)?;
            self.seen.remove(&rel);
            st.removed += 1;
        }
        // The node is alive: `claim`'s refusal says when it was last seen.
        sqlx::query("UPDATE pv_audit_nodes SET last_seen = $2 WHERE node = $1")
            .bind(&self.node)
            .bind(super::now())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(st)
    }

    /// What of `rel` (in `dir`) to send: the file's state as opened, and
    /// `(from, its bytes from there to its end)`. Only what is new is read
    /// when the file was appended to since `prev` (a segment, the leaves
    /// file and checkpoints.log only grow; reading them whole every second
    /// would cost their size each time); from 0 otherwise, and always for
    /// a file under [`WHOLE_BELOW`] (the atomically replaced `checkpoint`
    /// and the like: a reused inode number must not pass for an append).
    /// After a restart (inode unknown) an append is trusted only if the
    /// database's last chunk still matches the file: recovery may have cut
    /// a torn tail and rewritten it. `None`: the file can't be read
    /// (removed meanwhile).
    async fn changed(
        &self,
        dir: &Path,
        rel: &Path,
        prev: Option<Seen>,
    ) -> Result<Option<(Seen, (u64, Vec<u8>))>, StoreError> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::{FileExt, MetadataExt};
        let Ok(mut f) = std::fs::File::open(dir.join(rel)) else {
            return Ok(None);
        };
        // The state of the file actually read, not of an earlier stat.
        let Ok(m) = f.metadata() else {
            return Ok(None);
        };
        let cur = Seen {
            len: m.len(),
            ino: m.ino(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        };
        let append_from = match prev {
            _ if cur.len < WHOLE_BELOW => None,
            Some(p) if p.ino == cur.ino && cur.len >= p.len && p.len > 0 => Some(p.len),
            Some(p) if p.ino == 0 && cur.len >= p.len && p.len > 0 => {
                let last = sqlx::query(
                    "SELECT off, data FROM pv_audit_chunks WHERE node = $1 AND path = $2
                     ORDER BY off DESC LIMIT 1",
                )
                .bind(&self.node)
                .bind(rel_str(rel))
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
                let same = last.is_some_and(|r| {
                    let off = r.try_get::<i64, _>(0).unwrap_or(-1);
                    let data: Vec<u8> = r.try_get(1).unwrap_or_default();
                    let mut have = vec![0u8; data.len()];
                    off >= 0 && f.read_exact_at(&mut have, off as u64).is_ok() && have == data
                });
                same.then_some(p.len)
            }
            _ => None,
        };
        let from = append_from.unwrap_or(0);
        let mut bytes = Vec::new();
        let read = f
            .seek(SeekFrom::Start(from))
            .and_then(|_| std::io::Read::read_to_end(&mut f, &mut bytes));
        Ok(read.ok().map(|_| (cur, (from, bytes))))
    }
}

/// The nodes whose trails the database holds.
pub async fn audit_nodes(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT DISTINCT node FROM pv_audit_chunks ORDER BY node")
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(|r| r.try_get(0).map_err(db)).collect()
}

/// Writes node `node`'s mirrored trail into the empty folder `dest`;
/// returns the number of files.
pub async fn pull_audit(pool: &PgPool, node: &str, dest: &Path) -> Result<u64, StoreError> {
    let rows = sqlx::query(
        "SELECT path, off, data FROM pv_audit_chunks WHERE node = $1 ORDER BY path, off",
    )
    .bind(node)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for r in rows {
        let path: String = r.try_get(0).map_err(db)?;
        let off: i64 = r.try_get(1).map_err(db)?;
        let data: Vec<u8> = r.try_get(2).map_err(db)?;
        let f = files.entry(path).or_default();
        if f.len() as i64 != off {
            return Err(StoreError::Db(format!(
                "the mirrored audit trail of {node} has a gap; sync it again from the node"
            )));
        }
        f.extend_from_slice(&data);
    }
    for (path, data) in &files {
        let rel = PathBuf::from(path);
        if !rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(StoreError::Db(format!(
                "a mirrored audit path is unsafe: {path}"
            )));
        }
        let p = dest.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Db(e.to_string()))?;
        }
        std::fs::write(&p, data).map_err(|e| StoreError::Db(format!("{}: {e}", p.display())))?;
    }
    Ok(files.len() as u64)
}
