//! Verification with no secret: only the log's public key.
//!
//! One pass over the leaf hashes and the entries recomputes the Merkle
//! tree and holds it to every signed checkpoint (in the log, and in any
//! witness folders). What it finds, and how it names the first bad index:
//!
//! * **modified** entry: its frame checksum fails, or the tree stops
//!   matching the checkpoints from some size on. When the `leaves` file
//!   still matches the signed root there, it is authentic, and the first
//!   entry whose hash differs from it is the modified one; otherwise the
//!   first bad index is bounded by the two checkpoints around it;
//! * **deleted**, **inserted**, **reordered** entries: every entry carries
//!   its seq, so the first position whose seq is wrong is named;
//! * **truncated** log: a signed checkpoint (or a witness's) covers more
//!   entries than the log has;
//! * **forked** checkpoints: two signed checkpoints that can't both be
//!   prefixes of one tree (same size and different roots, or one that
//!   doesn't match a log that a later checkpoint does match);
//! * a **bad checkpoint**: a note in checkpoints.log that the key didn't sign.

use crate::log::list_segments;
use crate::segment::{self, Frames};
use crate::{LogError, Result};
use phivault_core::audit::merkle::{self, Frontier, Hash};
use phivault_core::audit::note::{Checkpoint, NoteVerifier};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// An entry's content changed.
    Modified,
    /// Entries are missing from the middle.
    Deleted,
    /// An entry appears that the log didn't write there.
    Inserted,
    /// Entries are out of order.
    Reordered,
    /// The log ends before a signed checkpoint does.
    Truncated,
    /// Signed checkpoints that can't describe one log.
    Fork,
    /// A checkpoint not signed by the trusted key.
    BadCheckpoint,
    /// A partly written last entry (a crash; repaired at the next start).
    TornTail,
    /// A witness's checkpoint does not match the log.
    Witness,
    /// No signed checkpoint covers the log (nothing to verify against).
    Unsigned,
}

/// One problem.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What.
    pub kind: FindingKind,
    /// The first entry it concerns, where known.
    pub index: Option<u64>,
    /// Words for a person.
    pub message: String,
}

/// A checkpoint as verified.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointInfo {
    /// Origin.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
    /// When it was written (from checkpoints.log; unauthenticated), RFC 3339.
    pub written: Option<String>,
    /// The signed note.
    pub note: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// True when there are no findings other than a torn tail.
    pub ok: bool,
    /// Entries in the log.
    pub entries: u64,
    /// Entries whose segments retention removed (their hashes checked).
    pub pruned: u64,
    /// Bytes of segments read.
    pub bytes: u64,
    /// Of the entries, those read from the group-commit journal, not from
    /// a segment (a power loss took them from the newest segment; the next
    /// start puts them back).
    pub journal: u64,
    /// The group-commit journal holds batches of another trail where this
    /// trail's would go on (a journal copied from another node or
    /// folder): none of them were read.
    pub journal_foreign: bool,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// Witness checkpoints checked.
    pub witness_checkpoints: u64,
    /// Entries after the newest checkpoint (not yet signed).
    pub unsigned_tail: u64,
    /// The newest valid checkpoint.
    pub latest: Option<CheckpointInfo>,
    /// The first bad index, when there is one.
    pub first_bad_index: Option<u64>,
    /// Problems, in the order found.
    pub findings: Vec<Finding>,
    /// Seconds taken.
    pub seconds: f64,
}

/// What to verify, against what.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The audit directory.
    pub dir: PathBuf,
    /// Trusted verifier keys (C2SP note verifier key strings).
    pub keys: Vec<NoteVerifier>,
    /// Witness folders.
    pub witnesses: Vec<PathBuf>,
}

struct Cp {
    cp: Checkpoint,
    note: String,
    written: Option<String>,
    from_witness: bool,
}

fn open_note(keys: &[NoteVerifier], note: &str) -> Option<Checkpoint> {
    keys.iter().find_map(|k| k.open_checkpoint(note).ok())
}

/// Reads every signed checkpoint in checkpoints.log, with findings for
/// notes the keys did not sign.
fn read_checkpoints(dir: &Path, keys: &[NoteVerifier], out: &mut Vec<Finding>) -> Vec<Cp> {
    let mut v = Vec::new();
    let Ok(b) = std::fs::read(dir.join("checkpoints.log")) else {
        return v;
    };
    let mut frames = Frames::new(&b, 0);
    for (i, f) in frames.by_ref().enumerate() {
        let note = String::from_utf8_lossy(f.json()).into_owned();
        match open_note(keys, &note) {
            Some(cp) => v.push(Cp {
                cp,
                note,
                written: Some(crate::event::format_unix_ms(f.seq as i64)),
                from_witness: false,
            }),
            None => out.push(Finding {
                kind: FindingKind::BadCheckpoint,
                index: None,
                message: format!(
                    "checkpoint #{i} in checkpoints.log is not signed by the trusted key (forged, altered, or signed by another key: check --key)"
                ),
            }),
        }
    }
    if let Some(t) = frames.torn {
        out.push(Finding {
            kind: FindingKind::BadCheckpoint,
            index: None,
            message: format!(
                "checkpoints.log: {} at byte {} ({} bytes not read)",
                t.reason, t.offset, t.bytes
            ),
        });
    }
    v
}

fn read_witnesses(wdirs: &[PathBuf], keys: &[NoteVerifier], out: &mut Vec<Finding>) -> Vec<Cp> {
    let mut v = Vec::new();
    for d in wdirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            out.push(Finding {
                kind: FindingKind::Witness,
                index: None,
                message: format!("witness folder {} can't be read", d.display()),
            });
            continue;
        };
        for e in rd.flatten() {
            if !e.file_name().to_string_lossy().ends_with(".checkpoint") {
                continue;
            }
            let Ok(note) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            // Checkpoints of other logs (other keys) are not ours to judge.
            if let Some(cp) = open_note(keys, &note) {
                v.push(Cp {
                    cp,
                    note,
                    written: None,
                    from_witness: true,
                });
            }
        }
    }
    v
}

/// Reads leaf hashes from `audit/leaves` in order.
struct LeafFile {
    r: Option<std::io::BufReader<std::fs::File>>,
}

impl LeafFile {
    fn open(dir: &Path) -> Self {
        Self {
            r: std::fs::File::open(dir.join("leaves"))
                .ok()
                .map(|f| std::io::BufReader::with_capacity(1 << 20, f)),
        }
    }
    fn next(&mut self) -> Option<Hash> {
        let r = self.r.as_mut()?;
        let mut h = [0u8; 32];
        match r.read_exact(&mut h) {
            Ok(()) => Some(h),
            Err(_) => {
                self.r = None;
                None
            }
        }
    }
}

struct Pass {
    entries: Frontier,
    file: Frontier,
    file_ok: bool,
    sizes: BTreeMap<u64, (Option<Hash>, Option<Hash>)>,
    first_leaf_mismatch: Option<u64>,
}

impl Pass {
    fn push(&mut self, entry_leaf: Hash, file_leaf: Option<Hash>) {
        let i = self.entries.size();
        self.entries.push(entry_leaf);
        match file_leaf {
            Some(f) if self.file_ok => {
                self.file.push(f);
                if f != entry_leaf && self.first_leaf_mismatch.is_none() {
                    self.first_leaf_mismatch = Some(i);
                }
            }
            _ => self.file_ok = false,
        }
        let n = i + 1;
        if let Some(slot) = self.sizes.get_mut(&n) {
            *slot = (
                Some(self.entries.root()),
                self.file_ok.then(|| self.file.root()),
            );
        }
    }
}

/// Verifies the log in `opts.dir`.
pub fn verify(opts: &VerifyOptions) -> Result<Report> {
    let t0 = std::time::Instant::now();
    if opts.keys.is_empty() {
        return Err(LogError::Format(
            "no verifier key: pass --key (the log's public key, from `phivault audit pubkey` or audit/log.pub)".into(),
        ));
    }
    let mut findings = Vec::new();
    let mut cps = read_checkpoints(&opts.dir, &opts.keys, &mut findings);
    let checkpoints = cps.len() as u64;
    let wcps = read_witnesses(&opts.witnesses, &opts.keys, &mut findings);
    let witness_checkpoints = wcps.len() as u64;
    cps.extend(wcps);
    let mut pass = Pass {
        entries: Frontier::new(),
        file: Frontier::new(),
        file_ok: true,
        sizes: cps.iter().map(|c| (c.cp.size, (None, None))).collect(),
        first_leaf_mismatch: None,
    };
    let mut leaf_file = LeafFile::open(&opts.dir);
    let segs = list_segments(&opts.dir)?;
    let mut seq_break: Option<(u64, FindingKind, String)> = None;
    let mut bytes = 0u64;
    let pruned = segs.first().map_or(0, |s| s.0);
    // Entries whose segments were removed: their hashes from the file.
    for _ in 0..pruned {
        match leaf_file.next() {
            Some(h) => pass.push(h, Some(h)),
            None => {
                findings.push(Finding {
                    kind: FindingKind::Truncated,
                    index: Some(pass.entries.size()),
                    message: format!(
                        "the oldest segment starts at entry {pruned}, but audit/leaves ends at {}: hashes of removed entries are missing",
                        pass.entries.size()
                    ),
                });
                break;
            }
        }
    }
    let nsegs = segs.len();
    for (k, (_, path)) in segs.iter().enumerate() {
        let b = std::fs::read(path)
            .map_err(|e| LogError::Io(format!("reading {}", path.display()), e))?;
        bytes += b.len() as u64;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let h = match segment::parse_header(&b) {
            Ok(h) => h,
            Err(e) => {
                let i = pass.entries.size();
                seq_break.get_or_insert((i, FindingKind::Modified, format!("{name}: {e}")));
                continue;
            }
        };
        let mut frames = Frames::new(&b, h.len);
        for f in frames.by_ref() {
            let pos = pass.entries.size();
            if f.seq != pos && seq_break.is_none() {
                let (kind, what) = if f.seq > pos {
                    ("deleted", FindingKind::Deleted)
                } else {
                    ("inserted", FindingKind::Inserted)
                };
                seq_break = Some((
                    pos,
                    what,
                    format!(
                        "entry at position {pos} carries seq {}: entries {kind} or reordered there ({name}, byte {})",
                        f.seq, f.offset
                    ),
                ));
            }
            pass.push(merkle::leaf_hash(f.body), leaf_file.next());
        }
        if let Some(t) = frames.torn {
            let pos = pass.entries.size();
            if k + 1 == nsegs && t.reason != "frame checksum mismatch" {
                findings.push(Finding {
                    kind: FindingKind::TornTail,
                    index: Some(pos),
                    message: format!(
                        "{name}: the last {} bytes are a partly written entry (a crash); the next start cuts them and records it",
                        t.bytes
                    ),
                });
            } else {
                seq_break.get_or_insert((
                    pos,
                    FindingKind::Modified,
                    format!(
                        "{name}: {} at byte {}: entry {pos} was altered",
                        t.reason, t.offset
                    ),
                ));
            }
        }
    }
    // Entries that only the group-commit journal holds: a power loss took
    // them from the newest segment (written through the page cache) after
    // they were acknowledged; the next start appends them to it again.
    // They are checked against the checkpoints like any other entry.
    let mut journal = 0;
    let mut journal_foreign = false;
    if seq_break.is_none() && nsegs > 0 {
        let tail = crate::journal::frames_after(
            &opts.dir.join(crate::journal::FILE),
            pass.entries.size(),
            crate::journal::read_trail_id(&opts.dir).as_ref(),
        )
        .map_err(|e| LogError::Io("reading audit/journal".into(), e))?;
        for f in Frames::new(&tail.frames, 0) {
            pass.push(merkle::leaf_hash(f.body), leaf_file.next());
        }
        journal = tail.count;
        journal_foreign = tail.foreign;
    }
    // Reordering: a deletion whose missing seq shows up later.
    if let Some((pos, FindingKind::Deleted, msg)) = &seq_break
        && segs_contain_seq_after(&segs, *pos)
    {
        seq_break = Some((*pos, FindingKind::Reordered, msg.clone()));
    }
    let n = pass.entries.size();
    let mut first_bad: Option<u64> = None;
    let mut bad = |i: u64| {
        first_bad = Some(first_bad.map_or(i, |b: u64| b.min(i)));
    };
    if let Some((i, kind, message)) = seq_break {
        bad(i);
        findings.push(Finding {
            kind,
            index: Some(i),
            message,
        });
    }
    // Checkpoints against the tree, smallest first.
    cps.sort_by_key(|c| (c.cp.size, c.from_witness));
    let largest_match = cps
        .iter()
        .filter(|c| c.cp.size <= n && pass.sizes[&c.cp.size].0 == Some(c.cp.root))
        .map(|c| c.cp.size)
        .max();
    let mut prev_good = 0u64;
    let mut reported_modified = false;
    for c in &cps {
        let size = c.cp.size;
        let src = if c.from_witness {
            "a witness's checkpoint"
        } else {
            "signed checkpoint"
        };
        if size > n {
            bad(n);
            findings.push(Finding {
                kind: FindingKind::Truncated,
                index: Some(n),
                message: format!(
                    "{src} covers {size} entries but the log has {n}: entries {n}..{} were removed (truncated or deleted log)",
                    size - 1
                ),
            });
            continue;
        }
        let (re, rf) = pass.sizes[&size];
        if re == Some(c.cp.root) {
            prev_good = prev_good.max(size);
            continue;
        }
        if largest_match.is_some_and(|m| m > size) {
            findings.push(Finding {
                kind: if c.from_witness { FindingKind::Witness } else { FindingKind::Fork },
                index: None,
                message: format!(
                    "{src} for size {size} is validly signed but is not a prefix of the log that a later checkpoint matches: the signer signed a fork"
                ),
            });
            continue;
        }
        if reported_modified {
            continue;
        }
        reported_modified = true;
        let exact = (rf == Some(c.cp.root))
            .then_some(pass.first_leaf_mismatch)
            .flatten()
            .filter(|&i| i >= prev_good && i < size);
        match exact {
            Some(i) => {
                bad(i);
                findings.push(Finding {
                    kind: FindingKind::Modified,
                    index: Some(i),
                    message: format!(
                        "entry {i} was modified: its hash differs from the one that {src} for size {size} authenticates"
                    ),
                });
            }
            None => {
                bad(prev_good);
                findings.push(Finding {
                    kind: FindingKind::Modified,
                    index: Some(prev_good),
                    message: format!(
                        "the log does not match {src} for size {size}: an entry from {prev_good} to {} was modified",
                        size - 1
                    ),
                });
            }
        }
    }
    // Same size, different roots: a fork, whatever the log says.
    for w in cps.windows(2) {
        if w[0].cp.size == w[1].cp.size && w[0].cp.root != w[1].cp.root {
            findings.push(Finding {
                kind: FindingKind::Fork,
                index: None,
                message: format!(
                    "two signed checkpoints for size {} have different roots: a forked log",
                    w[0].cp.size
                ),
            });
        }
    }
    let latest = cps
        .iter()
        .filter(|c| !c.from_witness && c.cp.size <= n)
        .max_by_key(|c| c.cp.size)
        .map(|c| CheckpointInfo {
            origin: c.cp.origin.clone(),
            size: c.cp.size,
            root: hex::encode(c.cp.root),
            written: c.written.clone(),
            note: c.note.clone(),
        });
    if latest.is_none() && n > 0 && cps.is_empty() {
        findings.push(Finding {
            kind: FindingKind::Unsigned,
            index: None,
            message: "no checkpoint signed by this key: nothing to verify the entries against (wrong --key, or the server never unsealed)".into(),
        });
    }
    let ok = findings.iter().all(|f| f.kind == FindingKind::TornTail);
    Ok(Report {
        ok,
        entries: n,
        pruned,
        bytes,
        journal,
        journal_foreign,
        checkpoints,
        witness_checkpoints,
        unsigned_tail: n - latest.as_ref().map_or(0, |c| c.size),
        latest,
        first_bad_index: first_bad,
        findings,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Whether an entry with seq `want` appears anywhere (a reorder moved it).
fn segs_contain_seq_after(segs: &[(u64, PathBuf)], want: u64) -> bool {
    segs.iter().any(|(_, p)| {
        std::fs::read(p).ok().is_some_and(|b| {
            segment::parse_header(&b)
                .map(|h| Frames::new(&b, h.len).any(|f| f.seq == want))
                .unwrap_or(false)
        })
    })
}

/// Reads the first `size` leaf hashes (for proofs).
pub fn read_leaves(dir: &Path, size: u64) -> Result<Vec<Hash>> {
    let b = std::fs::read(dir.join("leaves"))
        .map_err(|e| LogError::Io("reading audit/leaves".into(), e))?;
    if (b.len() as u64) < size * 32 {
        return Err(LogError::Format(format!(
            "audit/leaves has {} hashes, fewer than {size}",
            b.len() / 32
        )));
    }
    Ok(b[..size as usize * 32]
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32"))
        .collect())
}

/// The leaf hashes of the log in `dir` from entry `from` on, one at a
/// time (what a push to a witness proves, without holding them all).
pub struct LeafStream {
    r: std::io::BufReader<std::fs::File>,
    at: u64,
    error: Option<LogError>,
}

impl LeafStream {
    /// Opens `audit/leaves` at entry `from`.
    pub fn open(dir: &Path, from: u64) -> Result<Self> {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::File::open(dir.join("leaves"))
            .map_err(|e| LogError::Io("opening audit/leaves".into(), e))?;
        f.seek(SeekFrom::Start(from * 32))
            .map_err(|e| LogError::Io("seeking in audit/leaves".into(), e))?;
        Ok(Self {
            r: std::io::BufReader::with_capacity(1 << 20, f),
            at: from,
            error: None,
        })
    }

    /// The next leaf hash; `None` at the end or on an error (then kept
    /// for [`LeafStream::error`]).
    pub fn next_leaf(&mut self) -> Option<Hash> {
        let mut h = [0u8; 32];
        match self.r.read_exact(&mut h) {
            Ok(()) => {
                self.at += 1;
                Some(h)
            }
            Err(e) => {
                self.error.get_or_insert(LogError::Io(
                    format!("reading leaf hash {} of audit/leaves", self.at),
                    e,
                ));
                None
            }
        }
    }

    /// Why the stream ended early, if it did.
    pub fn error(&self) -> Option<&LogError> {
        self.error.as_ref()
    }
}

/// The Merkle frontier of the log's first `size` entries, streamed from
/// `audit/leaves` (O(size) hashing, constant memory).
pub fn frontier_at(dir: &Path, size: u64) -> Result<Frontier> {
    let mut leaves = LeafStream::open(dir, 0)?;
    let mut out = Frontier::new();
    while out.size() < size {
        match leaves.next_leaf() {
            Some(h) => out.push(h),
            None => {
                return Err(LogError::Format(format!(
                    "audit/leaves holds fewer than {size} leaf hashes ({})",
                    leaves.error().map(|e| e.to_string()).unwrap_or_default()
                )));
            }
        }
    }
    Ok(out)
}

/// The newest signed checkpoint in the log's folder (`audit/checkpoint`),
/// verified under one of `keys`.
pub fn latest_checkpoint(dir: &Path, keys: &[NoteVerifier]) -> Result<(Checkpoint, String)> {
    let note = std::fs::read_to_string(dir.join("checkpoint")).map_err(|e| {
        LogError::Io(
            "reading audit/checkpoint (no checkpoint yet: it is signed once the server unseals)"
                .into(),
            e,
        )
    })?;
    let cp = open_note(keys, &note).ok_or_else(|| {
        LogError::Format("audit/checkpoint is not signed by the given key".into())
    })?;
    Ok((cp, note))
}

/// Verifier keys from a file of key strings (one a line), or one string.
pub fn parse_keys(text: &str) -> Result<Vec<NoteVerifier>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            NoteVerifier::parse(l).map_err(|e| LogError::Format(format!("bad verifier key: {e}")))
        })
        .collect()
}
