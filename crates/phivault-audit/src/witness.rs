//! Witness folders: a copy of every checkpoint, somewhere the log's
//! writer can't rewrite (another disk, a mount of another host, a WORM
//! bucket's sync folder). With one, deleting or truncating the whole log
//! is detectable too: `phivault audit verify --witness DIR` holds the log
//! to the newest checkpoint the witness saw.
//!
//! Layout: `<dir>/<origin with '/' as '_'>.checkpoint`, the newest signed
//! note, replaced atomically. A witness copy is never replaced by a
//! smaller tree: that would be a rollback, and is refused.
//!
//! The same layout is the state of a c2sp.org/tlog-witness ([`take`]): a
//! node that witnesses other logs keeps there the newest checkpoint it
//! verified per log, and takes a new one only with a consistency proof
//! from it (the decision is `phivault_core::audit::witness::check`).

use crate::{LogError, Result};
use phivault_core::audit::note::{Checkpoint, NoteVerifier};
use phivault_core::audit::witness::{AddCheckpoint, Refusal, TrustedLog, check};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The witness file for `origin` in `dir`.
pub fn path(dir: &Path, origin: &str) -> PathBuf {
    let slug: String = origin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{slug}.checkpoint"))
}

/// The tree size in a note's checkpoint body (unverified).
pub fn note_size(note: &str) -> Option<u64> {
    let (body, _) = note.split_once("\n\n")?;
    Checkpoint::parse_body(&format!("{body}\n"))
        .ok()
        .map(|c| c.size)
}

/// Stores `note` (for a tree of `size`) as the witness copy in `dir`.
pub fn store(dir: &Path, origin: &str, note: &str, size: u64) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| LogError::Io(format!("creating witness folder {}", dir.display()), e))?;
    let p = path(dir, origin);
    // A copy that can't be read is never overwritten: it may be the
    // evidence this folder exists for.
    let held = match std::fs::read_to_string(&p) {
        Ok(s) => Some(note_size(&s).ok_or_else(|| {
            LogError::Witness(format!(
                "{} does not hold a readable checkpoint; it is left as it is: move it aside once examined",
                p.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(LogError::Io(format!("reading {}", p.display()), e)),
    };
    if let Some(old) = held
        && old > size
    {
        return Err(LogError::Witness(format!(
            "{} holds a checkpoint for {old} entries and this log has {size}: the log was rolled back or replaced; verify it with `phivault audit verify --witness {}`",
            p.display(),
            dir.display()
        )));
    }
    phivault_keystore::atomic::write_atomic(&p, note.as_bytes())
        .map_err(|e| LogError::Io(format!("writing {}", p.display()), e))
}

/// The witness copy for `origin` in `dir`, if any.
pub fn load(dir: &Path, origin: &str) -> Result<Option<String>> {
    match std::fs::read_to_string(path(dir, origin)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::Io(
            format!("reading witness {}", dir.display()),
            e,
        )),
    }
}

/// What [`take`] did with a request.
#[derive(Debug)]
pub enum Taken {
    /// Stored as the newest checkpoint of its log: cosign it.
    Accepted(Checkpoint),
    /// Refused, with the status tlog-witness assigns.
    Refused {
        /// Why.
        refusal: Refusal,
        /// Where a signed fork was kept as evidence.
        kept: Option<PathBuf>,
    },
}

/// Serializes every tlog-witness decision in this process: checking the
/// old size and storing the new checkpoint must be one step, or two racing
/// requests could roll the witness back (tlog-witness).
static TAKE: Mutex<()> = Mutex::new(());
/// Tells apart evidence files written in the same millisecond.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// A tlog witness's whole step for one `add-checkpoint` request, with its
/// state in `dir`: read the checkpoint held for the origin, decide
/// ([`check`]), and either store the new checkpoint (its text and the
/// signature lines that verify under the log's keys, nothing else the
/// client sent) or refuse it. A refused checkpoint that the log's key
/// signed but that does not extend the held one (a fork) is kept as
/// `<origin>.refused-<unix ms>-<n>`: two signed, inconsistent heads prove
/// the key was misused.
///
/// Fails closed: a held checkpoint that can't be read or doesn't verify is
/// an error, never taken for "nothing witnessed yet".
pub fn take(dir: &Path, logs: &[TrustedLog], req: &AddCheckpoint) -> Result<Taken> {
    let _one = TAKE.lock().unwrap_or_else(|p| p.into_inner());
    let mut failed = None;
    let decided = check(req, logs, |origin| {
        let keys = &logs.iter().find(|l| l.origin == origin)?.keys;
        match load(dir, origin) {
            Ok(None) => None,
            Ok(Some(note)) => {
                let cp = keys.iter().find_map(|k| k.open_checkpoint(&note).ok());
                if cp.is_none() {
                    failed = Some(LogError::Witness(format!(
                        "the checkpoint held for {origin} in {} does not verify under the key in audit.witness_logs; nothing is accepted for that log until it is restored or the key fixed",
                        dir.display()
                    )));
                }
                cp
            }
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let text_end = req.note.rfind("\n\n").map_or(0, |i| i + 1);
    let text = &req.note[..text_end];
    match decided {
        Ok(cp) => {
            let keys = &logs
                .iter()
                .find(|l| l.origin == cp.origin)
                .expect("check found the log")
                .keys;
            store(
                dir,
                &cp.origin,
                &trusted_note(text, &req.note[text_end..], keys),
                cp.size,
            )?;
            Ok(Taken::Accepted(cp))
        }
        Err(r) => {
            let mut kept = None;
            if matches!(r, Refusal::BadProof | Refusal::Conflict { fork: true, .. })
                && let Ok(cp) = Checkpoint::parse_body(text)
            {
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let n = REFUSED.fetch_add(1, Ordering::Relaxed);
                let keep = path(dir, &cp.origin).with_extension(format!("refused-{ms}-{n}"));
                phivault_keystore::atomic::write_atomic(&keep, req.note.as_bytes())
                    .map_err(|e| LogError::Io(format!("writing {}", keep.display()), e))?;
                kept = Some(keep);
            }
            Ok(Taken::Refused { refusal: r, kept })
        }
    }
}

/// `text`, a blank line, and those of the signature lines in `sigs` (the
/// note after its text) that verify under `keys`.
fn trusted_note(text: &str, sigs: &str, keys: &[NoteVerifier]) -> String {
    let mut out = format!("{text}\n");
    for l in sigs.lines().filter(|l| !l.is_empty()) {
        if keys
            .iter()
            .any(|k| k.verify(&format!("{text}\n{l}\n")).is_ok())
        {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}
