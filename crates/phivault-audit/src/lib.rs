//! # phivault-audit
//!
//! The audit trail (HIPAA 45 CFR 164.312(b)): an append-only log of
//! PHI-free [`event::Event`]s in segment files, one RFC 6962 Merkle tree
//! over all of them, and C2SP signed checkpoints of that tree.
//!
//! * [`log`]: the writer: group commit on one thread, torn-tail recovery,
//!   segment rotation, retention, checkpoints, witness copies;
//! * [`verify`]: verification with only the public key, naming the first
//!   bad index;
//! * [`query`]: reading, filtering, following and exporting (JSON lines,
//!   RFC 5424 syslog) for `phivault audit`;
//! * [`segment`]: the on-disk format (docs/FORMAT.md §12);
//! * [`journal`]: where each group commit is made durable (§12.4);
//! * [`idle`]: when the appenders' runtime runs out of work, which ends a
//!   group commit's gather.
//!
//! The Merkle and signed-note math is in `phivault_core::audit`; this
//! crate adds files. See ARCHITECTURE.md and SECURITY.md §6.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod event;
pub mod idle;
pub mod inbox;
pub mod journal;
pub mod log;
pub mod query;
pub mod segment;
pub mod verify;
pub mod witness;

pub use event::{Event, Kind, Outcome, Severity, TlsInfo};
pub use idle::RuntimeIdle;
pub use log::{AuditLog, LogConfig, Recovery, set_ack_slot};

/// Errors of the audit trail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A file operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A file is not in the expected format.
    #[error("audit trail format: {0}")]
    Format(String),
    /// Another process holds the log.
    #[error(
        "the audit trail in {0} is open in another process (a running server?); stop it or use the read-only commands"
    )]
    Busy(String),
    /// The log is closed.
    #[error("the audit trail is closed")]
    Closed,
    /// An event is larger than a frame may be.
    #[error("audit event larger than 4 MiB")]
    TooLarge,
    /// The last write failed; the event is not recorded.
    #[error("the audit trail can't be written durably ({0})")]
    Unavailable(String),
    /// Signing a checkpoint failed.
    #[error("signing an audit checkpoint failed: {0}")]
    Sign(String),
    /// A witness refused or could not take a checkpoint.
    #[error("audit witness: {0}")]
    Witness(String),
}

/// Result.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
