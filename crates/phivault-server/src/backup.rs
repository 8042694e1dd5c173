//! What a backup holds: the whole store as one stream of JSON lines
//! (docs/FORMAT.md §14), written into and read out of the encrypted,
//! signed backup file of `phivault_core::backup` (§13).
//!
//! Order matters for a backup taken while nodes write: schemas, then
//! records, then subject keys, then the keystore document. A subject key
//! is stored before the records that need it, so every record in the
//! backup has its key in the backup too, unless the subject was shredded
//! meanwhile (then it stays shredded). The keystore is read after the
//! subject keys, so it holds every ring version they are wrapped with,
//! even when the collection's ring rotated and its keys were rewrapped
//! during the backup (tested). A version *destroyed* during the subject
//! keys' dump could leave keys the archive's keystore can't unwrap: the
//! backup then fails and says to run it again (tested). The audit trail's
//! files come last, and an `end` line with the counts closes the archive:
//! a restore without it fails (the file's signature already rules out
//! truncation; this guards the archive's own logic). Readers take the
//! keystore line anywhere (archives before this order have it first).
//!
//! No I/O of its own beyond the store port, the keystore [`Location`] and
//! the audit folder it is given.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use phivault_keystore::Location;
use phivault_store::{RecordDump, RecordStore, SchemaRow, StoreError, SubjectKeyRow};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// The archive's format name and version (first line).
pub const FORMAT: &str = "phivault-archive";
/// Rows per store page.
const PAGE: u32 = 500;
/// Audit file chunk size.
const CHUNK: usize = 1 << 20;

/// Errors of backup archives. Never holds record contents or key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The keystore failed.
    #[error("keystore: {0}")]
    Keystore(#[from] phivault_keystore::KeystoreError),
    /// Reading or writing failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The archive is not what this version writes.
    #[error(
        "the backup's contents are malformed ({0}); it was not written by phivault, or by a newer version"
    )]
    Malformed(String),
    /// The store changed under the backup in a way it can't hold (a key
    /// version destroyed while it ran); nothing usable was written.
    #[error("{0}")]
    Raced(String),
    /// A restore target is not empty.
    #[error("{0} is not empty; restore into an empty store (a new data dir or an empty database)")]
    NotEmpty(String),
}

/// One line of the archive.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        version: u32,
    },
    Keystore {
        doc: String,
    },
    Schema {
        collection: String,
        version: u32,
        schema: String,
        created: i64,
    },
    Record {
        collection: String,
        id: String,
        subject: String,
        v: u32,
        rev: u64,
        plain: String,
        body: String,
        updated: i64,
        indexes: Vec<(String, String)>,
    },
    SubjectKey {
        collection: String,
        handle: String,
        wrapped: String,
    },
    AuditChunk {
        path: String,
        offset: u64,
        data: String,
    },
    End {
        counts: Counts,
    },
}

/// What an archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Keystore documents (0 or 1).
    pub keystore: u64,
    /// Schema versions.
    pub schemas: u64,
    /// Records.
    pub records: u64,
    /// Subject keys.
    pub subject_keys: u64,
    /// Audit trail files.
    pub audit_files: u64,
    /// Audit trail bytes.
    pub audit_bytes: u64,
}

fn put(w: &mut impl Write, line: &Line) -> Result<(), ArchiveError> {
    let mut v = serde_json::to_vec(line).expect("serializes");
    v.push(b'\n');
    w.write_all(&v)
        .map_err(|e| ArchiveError::Io("writing the backup".into(), e))
}

/// Streams one audit file (`rel`, inside `audit_dir`) as chunks.
fn put_audit_file(
    w: &mut impl Write,
    audit_dir: &Path,
    rel: &Path,
    c: &mut Counts,
) -> Result<(), ArchiveError> {
    let path = audit_dir.join(rel);
    let mut f = std::fs::File::open(&path)
        .map_err(|e| ArchiveError::Io(format!("reading {}", path.display()), e))?;
    let mut offset = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)
            .map_err(|e| ArchiveError::Io(format!("reading {}", path.display()), e))?;
        if n == 0 && offset > 0 {
            break;
        }
        put(
            w,
            &Line::AuditChunk {
                path: rel.to_string_lossy().into_owned(),
                offset,
                data: B64.encode(&buf[..n]),
            },
        )?;
        offset += n as u64;
        if n == 0 {
            break;
        }
    }
    c.audit_files += 1;
    c.audit_bytes += offset;
    Ok(())
}

/// Writes the archive of `store`, the keystore at `keystore`, and the
/// audit trail in `audit_dir` to `w`. `progress` gets the counts so far.
pub async fn write(
    store: &dyn RecordStore,
    keystore: &Location,
    audit_dir: &Path,
    w: &mut (impl Write + Send),
    progress: &(dyn Fn(&Counts) + Sync),
) -> Result<Counts, ArchiveError> {
    let mut c = Counts::default();
    put(
        w,
        &Line::Header {
            format: FORMAT.into(),
            version: 1,
        },
    )?;
    let has_keystore = phivault_keystore::store::exists(keystore);
    let collections = store.collections().await?;
    for coll in &collections {
        for s in store.schemas(&coll.collection).await? {
            put(
                w,
                &Line::Schema {
                    collection: s.collection,
                    version: s.version,
                    schema: s.schema,
                    created: s.created,
                },
            )?;
            c.schemas += 1;
        }
    }
    for coll in &collections {
        let name = &coll.collection;
        let mut after = None;
        loop {
            let page = store.dump_records(name, after.clone(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for r in page {
                put(
                    w,
                    &Line::Record {
                        collection: name.clone(),
                        id: r.id,
                        subject: B64.encode(r.subject),
                        v: r.version,
                        rev: r.rev,
                        plain: r.plain,
                        body: r.body,
                        updated: r.updated,
                        indexes: r
                            .indexes
                            .into_iter()
                            .map(|(n, v)| (n, B64.encode(v)))
                            .collect(),
                    },
                )?;
                c.records += 1;
            }
            progress(&c);
        }
    }
    let destroyed_before = if has_keystore {
        destroyed(&phivault_keystore::store::read_file(keystore)?)
    } else {
        Default::default()
    };
    for coll in &collections {
        let name = &coll.collection;
        let mut after = None;
        loop {
            let page = store.subject_keys(name, after.clone(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.handle.clone());
            for k in page {
                put(
                    w,
                    &Line::SubjectKey {
                        collection: name.clone(),
                        handle: B64.encode(k.handle),
                        wrapped: B64.encode(k.wrapped),
                    },
                )?;
                c.subject_keys += 1;
            }
        }
    }
    progress(&c);
    // Read now: it holds every version the subject keys above are wrapped
    // with, unless one was destroyed while they were read.
    if has_keystore {
        let doc = phivault_keystore::store::read_raw(keystore)?;
        let file: phivault_keystore::model::KeystoreFile = serde_json::from_slice(&doc)
            .map_err(|e| phivault_keystore::KeystoreError::Corrupt(e.to_string()))?;
        if let Some((ring, v)) = destroyed(&file).difference(&destroyed_before).next() {
            return Err(ArchiveError::Raced(format!(
                "version {v} of key ring {ring} was destroyed while the backup ran (a rotation with \
                 destroy_old finished), so some subject keys it read may be wrapped with it; \
                 this backup is incomplete and was not kept: run it again"
            )));
        }
        put(
            w,
            &Line::Keystore {
                doc: B64.encode(doc),
            },
        )?;
        c.keystore = 1;
    }
    // The checkpoint files first, and the rest listed only after them:
    // every entry a copied checkpoint covers is then in a listed segment
    // (see `record_files`).
    let is_checkpoint = |r: &Path| {
        phivault_audit::log::CHECKPOINT_FILES
            .iter()
            .any(|c| r == Path::new(c))
    };
    for name in phivault_audit::log::CHECKPOINT_FILES {
        if audit_dir.join(name).is_file() {
            put_audit_file(w, audit_dir, Path::new(name), &mut c)?;
            progress(&c);
        }
    }
    let files = phivault_audit::log::record_files(audit_dir)
        .map_err(|e| ArchiveError::Io(format!("reading {}", audit_dir.display()), e))?;
    for rel in files.iter().filter(|r| !is_checkpoint(r)) {
        put_audit_file(w, audit_dir, rel, &mut c)?;
        progress(&c);
    }
    put(w, &Line::End { counts: c })?;
    Ok(c)
}

fn b64(what: &str, s: &str) -> Result<Vec<u8>, ArchiveError> {
    B64.decode(s)
        .map_err(|_| ArchiveError::Malformed(format!("{what} is not base64")))
}

/// A relative path inside the audit folder: no `..`, no root.
fn safe_rel(p: &str) -> Result<PathBuf, ArchiveError> {
    let rel = PathBuf::from(p);
    let ok = !p.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if ok {
        Ok(rel)
    } else {
        Err(ArchiveError::Malformed(format!("audit file path '{p}'")))
    }
}

/// One checked item of an archive.
#[derive(Debug)]
pub enum Item {
    /// The keystore document's bytes.
    Keystore(Vec<u8>),
    /// A schema version.
    Schema(SchemaRow),
    /// A record of a collection.
    Record(String, RecordDump),
    /// A subject key of a collection.
    SubjectKey(String, SubjectKeyRow),
    /// Bytes of an audit file at `offset` (0 starts a new file).
    AuditChunk {
        /// Path relative to the audit folder (checked: no `..`, no root).
        rel: PathBuf,
        /// Offset in the file.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
}

/// Reads an archive line by line, checking its structure (FORMAT.md §14):
/// the header first, known kinds, base64, safe paths, audit chunks in
/// order, and an `end` line whose counts match. `next` returns `None`
/// after a valid `end` line.
pub struct ArchiveReader<R> {
    r: R,
    line: String,
    started: bool,
    done: bool,
    counts: Counts,
    file: Option<(PathBuf, u64)>,
}

impl<R: BufRead> ArchiveReader<R> {
    /// Reads from `r`.
    pub fn new(r: R) -> Self {
        Self {
            r,
            line: String::new(),
            started: false,
            done: false,
            counts: Counts::default(),
            file: None,
        }
    }

    /// What the items so far held.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The next item; `None` after the `end` line.
    pub fn next_item(&mut self) -> Result<Option<Item>, ArchiveError> {
        if self.done {
            return Ok(None);
        }
        loop {
            self.line.clear();
            let n = self
                .r
                .read_line(&mut self.line)
                .map_err(|e| ArchiveError::Io("reading the backup".into(), e))?;
            if n == 0 || !self.line.ends_with('\n') {
                return Err(ArchiveError::Malformed(
                    "it ends before its end line".into(),
                ));
            }
            let l: Line = serde_json::from_str(&self.line).map_err(|e| {
                ArchiveError::Malformed(format!("a line is not an archive item: {e}"))
            })?;
            let c = &mut self.counts;
            if !self.started {
                match &l {
                    Line::Header { format, version } if format == FORMAT && *version == 1 => {
                        self.started = true;
                        continue;
                    }
                    _ => return Err(ArchiveError::Malformed("no archive header".into())),
                }
            }
            return Ok(Some(match l {
                Line::Header { .. } => {
                    return Err(ArchiveError::Malformed("a second header".into()));
                }
                Line::Keystore { doc } => {
                    if c.keystore > 0 {
                        return Err(ArchiveError::Malformed("a second keystore".into()));
                    }
                    c.keystore += 1;
                    Item::Keystore(b64("keystore", &doc)?)
                }
                Line::Schema {
                    collection,
                    version,
                    schema,
                    created,
                } => {
                    c.schemas += 1;
                    Item::Schema(SchemaRow {
                        collection,
                        version,
                        schema,
                        created,
                    })
                }
                Line::Record {
                    collection,
                    id,
                    subject,
                    v,
                    rev,
                    plain,
                    body,
                    updated,
                    indexes,
                } => {
                    c.records += 1;
                    Item::Record(
                        collection,
                        RecordDump {
                            id,
                            subject: b64("subject", &subject)?,
                            version: v,
                            rev,
                            plain,
                            body,
                            updated,
                            indexes: indexes
                                .into_iter()
                                .map(|(n, v)| Ok((n, b64("index", &v)?)))
                                .collect::<Result<_, ArchiveError>>()?,
                        },
                    )
                }
                Line::SubjectKey {
                    collection,
                    handle,
                    wrapped,
                } => {
                    c.subject_keys += 1;
                    Item::SubjectKey(
                        collection,
                        SubjectKeyRow {
                            handle: b64("handle", &handle)?,
                            wrapped: b64("wrapped key", &wrapped)?,
                        },
                    )
                }
                Line::AuditChunk { path, offset, data } => {
                    let rel = safe_rel(&path)?;
                    let data = b64("audit data", &data)?;
                    let expected = match &self.file {
                        Some((p, next)) if *p == rel => *next,
                        _ => {
                            c.audit_files += 1;
                            0
                        }
                    };
                    if offset != expected {
                        return Err(ArchiveError::Malformed(format!(
                            "audit file {path}: a chunk at {offset}, expected {expected}"
                        )));
                    }
                    c.audit_bytes += data.len() as u64;
                    self.file = Some((rel.clone(), offset + data.len() as u64));
                    Item::AuditChunk { rel, offset, data }
                }
                Line::End { counts } => {
                    if counts != *c {
                        return Err(ArchiveError::Malformed(format!(
                            "its end line counts {counts:?}, but it held {c:?}"
                        )));
                    }
                    self.line.clear();
                    let extra = self
                        .r
                        .read_line(&mut self.line)
                        .map_err(|e| ArchiveError::Io("reading the backup".into(), e))?;
                    if extra != 0 {
                        return Err(ArchiveError::Malformed("data after the end line".into()));
                    }
                    self.done = true;
                    return Ok(None);
                }
            }));
        }
    }
}

/// The (ring, version) pairs a keystore document lists as destroyed.
fn destroyed(
    f: &phivault_keystore::model::KeystoreFile,
) -> std::collections::BTreeSet<(String, u32)> {
    f.body
        .rings
        .iter()
        .flat_map(|(name, r)| {
            r.versions
                .iter()
                .filter(|v| v.state == phivault_keystore::model::VersionState::Destroyed)
                .map(move |v| (name.clone(), v.version))
        })
        .collect()
}

/// Checks a whole archive's structure without restoring anything (what
/// `phivault backup verify --key` adds after decrypting).
pub fn check(r: impl BufRead) -> Result<Counts, ArchiveError> {
    let mut a = ArchiveReader::new(r);
    while a.next_item()?.is_some() {}
    Ok(a.counts())
}

/// Restores an archive into an EMPTY store, keystore location and audit
/// folder. Returns what it restored.
pub async fn restore(
    r: &mut (impl BufRead + Send),
    store: &dyn RecordStore,
    keystore: &Location,
    audit_dir: &Path,
    progress: &(dyn Fn(&Counts) + Sync),
) -> Result<Counts, ArchiveError> {
    if !store.collections().await?.is_empty() {
        return Err(ArchiveError::NotEmpty("the record store".into()));
    }
    if phivault_keystore::store::exists(keystore) {
        return Err(ArchiveError::NotEmpty(keystore.describe()));
    }
    // Any file counts here, a group-commit journal too: one left from
    // another trail must not be replayed onto the restored one.
    if std::fs::read_dir(audit_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ArchiveError::NotEmpty(audit_dir.display().to_string()));
    }
    let mut a = ArchiveReader::new(r);
    let mut batch: Vec<RecordDump> = Vec::new();
    let mut batch_coll = String::new();
    let mut keys: Vec<SubjectKeyRow> = Vec::new();
    let mut keys_coll = String::new();
    let mut open: Option<std::fs::File> = None;
    loop {
        let item = a.next_item()?;
        // Flush batches when the kind or collection changes (or at the end).
        if !batch.is_empty() && !matches!(&item, Some(Item::Record(c, _)) if *c == batch_coll) {
            store
                .load_records(&batch_coll, std::mem::take(&mut batch))
                .await?;
            progress(&a.counts());
        }
        if !keys.is_empty() && !matches!(&item, Some(Item::SubjectKey(c, _)) if *c == keys_coll) {
            store
                .put_subject_keys(&keys_coll, std::mem::take(&mut keys))
                .await?;
        }
        let Some(item) = item else { break };
        match item {
            Item::Keystore(doc) => phivault_keystore::store::install_raw(keystore, &doc)?,
            Item::Schema(row) => store.put_schema(row).await?,
            Item::Record(coll, r) => {
                batch_coll = coll;
                batch.push(r);
                if batch.len() >= PAGE as usize {
                    store
                        .load_records(&batch_coll, std::mem::take(&mut batch))
                        .await?;
                    progress(&a.counts());
                }
            }
            Item::SubjectKey(coll, k) => {
                keys_coll = coll;
                keys.push(k);
                if keys.len() >= PAGE as usize {
                    store
                        .put_subject_keys(&keys_coll, std::mem::take(&mut keys))
                        .await?;
                }
            }
            Item::AuditChunk { rel, offset, data } => {
                if offset == 0 {
                    if let Some(f) = open.take() {
                        f.sync_all()
                            .map_err(|e| ArchiveError::Io("syncing the audit trail".into(), e))?;
                    }
                    let dest = audit_dir.join(&rel);
                    if let Some(parent) = dest.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            ArchiveError::Io(format!("creating {}", parent.display()), e)
                        })?;
                    }
                    open = Some(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(&dest)
                            .map_err(|e| {
                                ArchiveError::Io(format!("creating {}", dest.display()), e)
                            })?,
                    );
                }
                let f = open.as_mut().ok_or_else(|| {
                    ArchiveError::Malformed("an audit chunk without its file".into())
                })?;
                f.write_all(&data)
                    .map_err(|e| ArchiveError::Io(format!("writing {}", rel.display()), e))?;
            }
        }
    }
    if let Some(f) = open.take() {
        f.sync_all()
            .map_err(|e| ArchiveError::Io("syncing the audit trail".into(), e))?;
    }
    progress(&a.counts());
    Ok(a.counts())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(lines: &[&str]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    }

    const HEAD: &str = r#"{"t":"header","format":"phivault-archive","version":1}"#;

    #[test]
    fn structure_is_checked() {
        let ok = archive(&[
            HEAD,
            r#"{"t":"audit_chunk","path":"segments/a.seg","offset":0,"data":"AAE="}"#,
            r#"{"t":"audit_chunk","path":"segments/a.seg","offset":2,"data":"Ag=="}"#,
            r#"{"t":"end","counts":{"keystore":0,"schemas":0,"records":0,"subject_keys":0,"audit_files":1,"audit_bytes":3}}"#,
        ]);
        assert_eq!(check(&ok[..]).unwrap().audit_bytes, 3);
        let bad = |lines: &[&str], why: &str| {
            let e = check(&archive(lines)[..]).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        };
        bad(&[], "ends before");
        bad(&[r#"{"t":"keystore","doc":""}"#], "no archive header");
        bad(&[HEAD, HEAD], "second header");
        bad(&[HEAD, r#"{"t":"nope"}"#], "not an archive item");
        bad(
            &[
                HEAD,
                r#"{"t":"audit_chunk","path":"../x","offset":0,"data":""}"#,
            ],
            "audit file path",
        );
        bad(
            &[
                HEAD,
                r#"{"t":"audit_chunk","path":"/etc/x","offset":0,"data":""}"#,
            ],
            "audit file path",
        );
        bad(
            &[
                HEAD,
                r#"{"t":"audit_chunk","path":"a","offset":5,"data":""}"#,
            ],
            "expected 0",
        );
        bad(&[HEAD, r#"{"t":"keystore","doc":"!!"}"#], "not base64");
        bad(
            &[
                HEAD,
                r#"{"t":"end","counts":{"keystore":1,"schemas":0,"records":0,"subject_keys":0,"audit_files":0,"audit_bytes":0}}"#,
            ],
            "end line counts",
        );
        let mut extra = ok.clone();
        extra.extend_from_slice(b"{}\n");
        assert!(
            check(&extra[..])
                .unwrap_err()
                .to_string()
                .contains("after the end")
        );
        // Every truncation of a valid archive fails.
        for n in 0..ok.len() {
            assert!(check(&ok[..n]).is_err(), "{n}");
        }
    }
}
