//! The tamper-evidence math of the audit trail: the RFC 9162 Merkle tree
//! whose head commits to every audit record ([`merkle`]), and the C2SP
//! signed-note and tlog-checkpoint formats in which that head is signed and
//! published ([`note`]), and the witness protocol that keeps a copy of it
//! no one can roll back or fork ([`witness`]).
//!
//! This module is pure: it hashes, signs and verifies values handed to it,
//! and never reads or writes files, clocks or the network. The log itself
//! (record storage, the persisted [`merkle::Frontier`], checkpoint
//! publication) lives in the `phivault-audit` adapter crate.
//!
//! Everything here is public data (hashes, proofs, notes, public keys), so
//! errors may name what was wrong in detail; they never carry private key
//! material.

pub mod merkle;
pub mod note;
pub mod witness;

use crate::crypto::CryptoError;

/// Errors from building or checking audit proofs, checkpoints and notes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A Merkle inclusion or consistency proof did not verify.
    #[error(
        "the Merkle proof is invalid ({0}): the log does not contain what it claims, \
         or the proof and tree heads are mismatched; do not trust this log state"
    )]
    InvalidProof(&'static str),
    /// A leaf index or tree size outside the tree.
    #[error("index or tree size out of range: {0}")]
    OutOfRange(&'static str),
    /// A saved [`merkle::Frontier`] could not be restored.
    #[error("the saved Merkle frontier is inconsistent: {0}; rebuild it from the log's leaves")]
    InvalidFrontier(&'static str),
    /// A tlog-witness `add-checkpoint` request body is malformed.
    #[error("malformed add-checkpoint request: {0}")]
    BadRequest(&'static str),
    /// A signed note is malformed.
    #[error("malformed signed note: {0}")]
    BadNote(&'static str),
    /// A checkpoint body is malformed.
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
    /// A key name is not allowed in a signed note.
    #[error(
        "invalid note key name: {0}; use a non-empty name without spaces, control \
         characters or '+', such as example.com/log"
    )]
    BadKeyName(&'static str),
    /// A verifier key string could not be parsed.
    #[error(
        "invalid verifier key: {0}; expected <name>+<8 hex digit key id>+<base64 key>, \
         copied exactly as the log published it"
    )]
    BadVerifierKey(&'static str),
    /// A key or signature type this module does not implement.
    #[error("unsupported note key: {0}")]
    UnsupportedKey(&'static str),
    /// No signature line in the note is from the expected key.
    #[error(
        "the note has no signature from key {key}; check that the verifier key is the \
         one this log signs with"
    )]
    UnknownKey {
        /// The expected key, as `<name>+<key id in hex>` (public).
        key: String,
    },
    /// The note carries a signature from the expected key, and it does not
    /// verify.
    #[error(
        "the signature from key {key} does not verify: the note was altered after \
         signing, or signed by a different key with the same name and id; reject it"
    )]
    BadSignature {
        /// The key, as `<name>+<key id in hex>` (public).
        key: String,
    },
    /// The crypto module failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}
