//! Events from other processes (the CLI's key and CA commands) while a
//! server holds the log: each is written atomically as a file under
//! `audit/inbox/`, and the log's owner appends them in name order (at
//! open, and when the server polls), deleting each file only after its
//! entry is durable. A crash between the two appends it again
//! (at-least-once; the `request_id` names duplicates).

use crate::event::Event;
use crate::{LogError, Result};
use std::path::{Path, PathBuf};

/// The inbox folder of the log in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("inbox")
}

/// Leaves `ev` for the log in `dir` to append.
pub fn submit(dir: &Path, ev: &Event) -> Result<()> {
    let d = path(dir);
    std::fs::create_dir_all(&d)
        .map_err(|e| LogError::Io(format!("creating {}", d.display()), e))?;
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let rnd = hex::encode(phivault_core::crypto::random_array::<6>().unwrap_or_default());
    let p = d.join(format!("{ns:024}-{rnd}.json"));
    phivault_keystore::atomic::write_atomic(&p, &ev.to_json())
        .map_err(|e| LogError::Io(format!("writing {}", p.display()), e))
}

/// The waiting events, oldest first (files that don't parse are skipped
/// and left for a person to look at).
pub fn pending(dir: &Path) -> Vec<(PathBuf, Event)> {
    let Ok(rd) = std::fs::read_dir(path(dir)) else {
        return Vec::new();
    };
    let mut v: Vec<(PathBuf, Event)> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| {
            let b = std::fs::read(e.path()).ok()?;
            Some((e.path(), serde_json::from_slice(&b).ok()?))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
