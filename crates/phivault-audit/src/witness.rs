//! Witness folders: a copy of every checkpoint, somewhere the log's
//! writer can't rewrite (another disk, a mount of another host, a WORM
//! bucket's sync folder). With one, deleting or truncating the whole log
//! is detectable too: `phivault audit verify --witness DIR` holds the log
//! to the newest checkpoint the witness saw.
//!
//! Layout: `<dir>/<origin with '/' as '_'>.checkpoint`, the newest signed
//! note, replaced atomically. A witness copy is never replaced by a
//! smaller tree: that would be a rollback, and is refused.

use crate::{LogError, Result};
use phivault_core::audit::note::Checkpoint;
use std::path::{Path, PathBuf};

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
    if let Some(old) = std::fs::read_to_string(&p)
        .ok()
        .as_deref()
        .and_then(note_size)
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
