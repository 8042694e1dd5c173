//! The keystore file, as it is on disk (docs/FORMAT.md §Keystore file).
//!
//! It holds only wrapped keys and their metadata. The body is MACed with a
//! key derived from the root key, so any edit made outside phivault is
//! caught at unseal.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Top-level file: the body and its MAC.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoreFile {
    /// Everything that is authenticated.
    pub body: Body,
    /// base64 HMAC-SHA-256 over the canonical JSON of `body`.
    pub mac: String,
}

/// The authenticated content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// Always "phivault-keystore".
    pub format: String,
    /// File format version (1).
    pub version: u32,
    /// Random id, hex; shares and escrow files name it.
    pub keystore_id: String,
    /// When `init` ran (RFC 3339).
    pub created: String,
    /// Incremented on every write.
    pub generation: u64,
    /// How the root key is unsealed.
    pub seal: Seal,
    /// The root key, AES-256-KWP-wrapped under the unseal key (base64).
    pub wrapped_root: String,
    /// Key rings by full name.
    pub rings: BTreeMap<String, Ring>,
}

/// The unseal method and its public parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Seal {
    /// Shamir K-of-N over the unseal key.
    Shamir {
        /// K.
        threshold: u8,
        /// N.
        shares: u8,
        /// Share-set id (hex), carried by every share.
        share_set: String,
    },
    /// Unseal key = PBKDF2-HMAC-SHA-256(passphrase, salt, iterations).
    Passphrase {
        /// Iterations (≥ 600 000).
        iterations: u32,
        /// base64 salt (16 bytes).
        salt: String,
    },
    /// Dev mode: the unseal key sits in a file beside the keystore.
    Dev {
        /// File name, relative to the data dir.
        key_file: String,
    },
}

impl Seal {
    /// Short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Seal::Shamir { .. } => "shamir",
            Seal::Passphrase { .. } => "passphrase",
            Seal::Dev { .. } => "dev",
        }
    }
}

/// A key ring and its versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ring {
    /// What the keys are for.
    pub purpose: Purpose,
    /// When the ring was created.
    pub created: String,
    /// Rotation policy: the primary version should be at most this old.
    pub max_age_days: u32,
    /// Versions below this cannot decrypt.
    pub min_decryption_version: u32,
    /// A disabled ring can neither encrypt nor decrypt.
    pub disabled: bool,
    /// Versions, ascending.
    pub versions: Vec<Version>,
    /// What the key does (transit key type). Absent means AES-256-GCM, so
    /// files written before this field existed MAC the same.
    #[serde(default, skip_serializing_if = "is_default")]
    pub kind: KeyKind,
    /// Whether the whole ring may be deleted (transit `deletion_allowed`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub deletion_allowed: bool,
    /// Lowest version a caller may pick to encrypt with; 0 = only the primary.
    #[serde(default, skip_serializing_if = "is_default")]
    pub min_encryption_version: u32,
    /// Rotate automatically when the primary is this many seconds old; 0 = never.
    #[serde(default, skip_serializing_if = "is_default")]
    pub auto_rotate_period_secs: u64,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// What a ring's keys do, named as Vault's transit key types.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// Envelope encryption with AES-256-GCM (and HMAC by derivation).
    #[default]
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
    /// Envelope encryption with AES-128-GCM (envelope algorithm 0x02).
    #[serde(rename = "aes128-gcm96")]
    Aes128Gcm96,
    /// HMAC only.
    #[serde(rename = "hmac")]
    Hmac,
    /// ECDSA P-256 signing; the private scalar is derived from the ring key.
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
}

impl KeyKind {
    /// Vault's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm96 => "aes256-gcm96",
            Self::Aes128Gcm96 => "aes128-gcm96",
            Self::Hmac => "hmac",
            Self::EcdsaP256 => "ecdsa-p256",
        }
    }
    /// Parses Vault's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "aes256-gcm96" => Some(Self::Aes256Gcm96),
            "aes128-gcm96" => Some(Self::Aes128Gcm96),
            "hmac" => Some(Self::Hmac),
            "ecdsa-p256" => Some(Self::EcdsaP256),
            _ => None,
        }
    }
    /// Whether the key signs.
    pub fn signs(self) -> bool {
        matches!(self, Self::EcdsaP256)
    }
    /// Whether the key encrypts.
    pub fn encrypts(self) -> bool {
        matches!(self, Self::Aes256Gcm96 | Self::Aes128Gcm96)
    }
}

/// What a ring's keys may be used for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Purpose {
    /// Envelope and stream encryption.
    Encrypt,
}

/// One key version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// Version number, from 1.
    pub version: u32,
    /// When it was created (by create or rotate).
    pub created: String,
    /// Live or destroyed.
    pub state: VersionState,
    /// When it was destroyed, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<String>,
    /// The key, AES-256-KWP-wrapped under the root key (base64); empty once destroyed.
    pub wrapped: String,
}

/// A version's state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Usable.
    Active,
    /// Crypto-shredded: the wrapped key was erased.
    Destroyed,
}
