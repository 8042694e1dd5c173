//! # phivault-core
//!
//! The core of phivault, with no network I/O: the single crypto seam over
//! aws-lc-rs ([`crypto`]), secret-holding types ([`secret`]), the ciphertext
//! formats ([`envelope`] for values, [`stream`] for files, [`backup`] for
//! signed backups to an offline key), Shamir secret
//! sharing for dual control ([`shamir`]), the key hierarchy ([`keys`]), and
//! the audit trail's Merkle tree and signed checkpoints ([`audit`]).
//!
//! Storage, custody and transport live in other crates; see ARCHITECTURE.md.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod backup;
pub mod crypto;
pub mod envelope;
pub mod keys;
pub mod records;
pub mod secret;
pub mod shamir;
pub mod stream;
