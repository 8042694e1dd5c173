//! Where a keystore document lives: `keystore.json` in a data dir (the
//! default), or a [`SharedDoc`] that several nodes share (PostgreSQL, in
//! `phivault-store`). The unseal material (dev key file, shares,
//! passphrase) never moves: only the sealed, MACed document is shared.
//!
//! Everything else about the keystore (the MAC, validation, the
//! read-modify-write with a generation counter) is the same on both; a
//! shared document only swaps the four file operations: read, a cheap
//! change stamp, an exclusive lock across processes, and write.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A keystore document shared by several processes or machines.
///
/// Implementations must make `write` atomic (a reader sees the old or the
/// new document, never a mix) and `lock` exclusive across every process
/// that shares the document.
pub trait SharedDoc: Send + Sync + 'static {
    /// Where it is, for messages (never a password).
    fn describe(&self) -> String;
    /// The stored document, or `None` if none was stored yet.
    fn read(&self) -> std::io::Result<Option<Vec<u8>>>;
    /// The document as of the latest [`stamp`](Self::stamp), from a copy
    /// the adapter keeps if it has one: read on key uses, so it should
    /// not wait on a network. Writes are always preceded by [`read`](Self::read)
    /// under the lock.
    fn read_cached(&self) -> std::io::Result<Option<Vec<u8>>> {
        self.read()
    }
    /// A cheap value that changes whenever the document does: it is
    /// checked on key uses, so it must not do I/O. It may lag a change
    /// made elsewhere by a bounded, documented time.
    fn stamp(&self) -> Option<u64>;
    /// Takes the exclusive lock; it is held until the guard drops.
    fn lock(&self) -> std::io::Result<Box<dyn Send>>;
    /// Replaces the document (the caller holds the lock). `generation` is
    /// the document's generation counter.
    fn write(&self, doc: &[u8], generation: u64) -> std::io::Result<()>;
}

/// A keystore's place: its data dir (for the dev key file and the agent)
/// and, when shared, the shared document.
#[derive(Clone)]
pub struct Location {
    pub(crate) dir: PathBuf,
    pub(crate) shared: Option<Arc<dyn SharedDoc>>,
}

impl Location {
    /// `keystore.json` in `dir`.
    pub fn dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            shared: None,
        }
    }

    /// The shared document `doc`; `dir` still holds local unseal material
    /// (a dev key file) and the agent's socket.
    pub fn shared(dir: &Path, doc: Arc<dyn SharedDoc>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            shared: Some(doc),
        }
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the document is shared (not a local file).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Where the document is, for messages.
    pub fn describe(&self) -> String {
        match &self.shared {
            Some(s) => s.describe(),
            None => self
                .dir
                .join(crate::store::KEYSTORE_FILE)
                .display()
                .to_string(),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({})", self.describe())
    }
}

impl From<&Path> for Location {
    fn from(dir: &Path) -> Self {
        Self::dir(dir)
    }
}

impl From<&PathBuf> for Location {
    fn from(dir: &PathBuf) -> Self {
        Self::dir(dir)
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Self {
        l.clone()
    }
}
