//! # phivault-keystore
//!
//! Key custody for phivault: the sealed keystore file (only wrapped keys and
//! metadata on disk), the unseal methods (Shamir K-of-N, passphrase, dev key
//! file), key lifecycle (create, rotate, minimum version, disable,
//! destroy), key escrow, and the local key agent that holds an unsealed
//! keystore between CLI calls. Every write is atomic (see [`atomic`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod atomic;
pub mod escrow;
pub mod location;
pub mod model;
pub mod seal;
pub mod service;
pub mod store;

pub use location::{Location, SharedDoc};
pub use service::KeyService;
pub use store::{InitMethod, InitOutcome, Keystore, RingConfig, RingInfo};

use phivault_core::crypto::CryptoError;
use phivault_core::keys::KeyError;
use phivault_core::shamir::ShamirError;
use std::path::PathBuf;

/// Errors from key custody. Messages name the problem and the next step;
/// none contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// No keystore in the data dir.
    #[error("no keystore in {0}; create one with `phivault init`")]
    NotInitialized(PathBuf),
    /// `init` on a data dir that has one.
    #[error("a keystore already exists in {0}; refusing to overwrite it")]
    AlreadyInitialized(PathBuf),
    /// Filesystem failure.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The file could not be parsed.
    #[error("the keystore file is corrupt ({0}); restore it from a backup")]
    Corrupt(String),
    /// A newer file format.
    #[error("keystore format version {0} is newer than this phivault; upgrade phivault")]
    UnsupportedVersion(u32),
    /// The MAC or a wrapped key failed to verify.
    #[error(
        "the keystore file was modified outside phivault (integrity check failed); restore it from a backup"
    )]
    Tampered,
    /// Generic wrong unseal key (callers map it to the method's own error).
    #[error("the unseal key does not open this keystore")]
    WrongUnsealKey,
    /// Enough shares, but they don't open the keystore.
    #[error(
        "the unseal shares do not open this keystore: at least one share is wrong; start again with the right shares"
    )]
    WrongShares,
    /// Wrong passphrase.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Wrong escrow backup secret, or the escrow file was modified.
    #[error("wrong backup passphrase, or the escrow file was modified")]
    WrongBackupSecret,
    /// The keystore uses another unseal method.
    #[error("this keystore is unsealed with '{uses}', not '{given}'")]
    WrongMethod {
        /// The keystore's method.
        uses: &'static str,
        /// What was tried.
        given: &'static str,
    },
    /// Dev key file asked of a non-dev keystore.
    #[error(
        "this keystore is sealed with '{0}', so it has no dev key file; unseal it with `phivault unseal`"
    )]
    NotDevKeystore(&'static str),
    /// The keystore is sealed.
    #[error("the keystore is sealed; unseal it with `phivault unseal`")]
    Sealed,
    /// Ring exists.
    #[error("key ring '{0}' already exists")]
    RingExists(String),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
    /// Key state.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Shamir share problems.
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// Crypto module.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// An error reported by the agent.
    #[error("{1}")]
    Remote(String, String),
}

impl KeystoreError {
    /// A stable machine code, used on the agent wire and for exit codes.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotInitialized(_) => "not_initialized",
            Self::Sealed => "sealed",
            Self::WrongShares
            | Self::WrongPassphrase
            | Self::WrongUnsealKey
            | Self::WrongBackupSecret => "wrong_secret",
            Self::Shamir(ShamirError::TooFewShares { .. }) => "too_few_shares",
            Self::Shamir(_) => "bad_share",
            Self::Key(_) => "key",
            Self::Tampered | Self::Corrupt(_) | Self::UnsupportedVersion(_) => "corrupt",
            Self::Invalid(_)
            | Self::RingExists(_)
            | Self::WrongMethod { .. }
            | Self::NotDevKeystore(_) => "invalid",
            Self::Remote(..) => "remote",
            _ => "other",
        }
    }

    /// [`Self::code`], or for an error relayed by the agent, the agent's code.
    pub fn remote_or_own_code(&self) -> &str {
        match self {
            Self::Remote(code, _) => code,
            other => other.code(),
        }
    }

    /// Rebuilds an error from the agent wire.
    pub fn from_remote(code: &str, message: String) -> Self {
        match code {
            "sealed" => Self::Sealed,
            _ => Self::Remote(code.to_string(), message),
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, KeystoreError>;
