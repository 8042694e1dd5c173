//! Field-level encryption of records: schemas that classify each field of
//! a JSON document ([`schema`]), the paths that name them ([`path`]), the
//! per-field ciphertext format and the keys behind it ([`field`]), and the
//! transformation of a whole document to its stored form and back
//! ([`document`]). No I/O: the server and the stores sit around this.

pub mod document;
pub mod field;
pub mod path;
pub mod schema;

pub use document::{StoredDoc, View};
pub use field::{IndexKeys, SubjectKey};
pub use path::{ConcretePath, FieldPath};
pub use schema::{Class, Schema};

use crate::crypto::CryptoError;
use crate::envelope::EnvelopeError;

/// Errors of the records area. None carries a field's value: only schema
/// text and field paths.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The schema document is invalid.
    #[error("invalid schema: {0}")]
    BadSchema(String),
    /// A field path in a schema is malformed.
    #[error("invalid field path {path:?}: {why}")]
    BadPath {
        /// The path as written (truncated).
        path: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A document breaks the schema at a field.
    #[error("field {path}: {why}")]
    Violation {
        /// The concrete path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A stored ciphertext failed authentication: the database was
    /// modified, or the value was moved from another record or field.
    #[error(
        "integrity check failed for field {path}: the stored ciphertext was modified or moved from another record; restore this record from a backup"
    )]
    Integrity {
        /// The concrete path.
        path: String,
    },
    /// A stored document is not in the expected form.
    #[error("stored record is malformed: {0}")]
    Corrupt(&'static str),
    /// The crypto module failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A key could not be used.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// Length-prefixes parts (u32be length ‖ bytes each) so that no two
/// different part lists encode the same: the form of every context and
/// index input in this module.
pub(crate) fn encode_parts(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}
