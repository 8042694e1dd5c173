//! The key hierarchy, as the formats see it.
//!
//! ```text
//! root key (never on disk unwrapped)
//!   └─ key ring  "<namespace>/<name>", versions 1, 2, 3 … (the primary encrypts)
//!        └─ per-message / per-file key, derived with SP 800-108 KBKDF
//!           from the ring version and the ciphertext header
//! ```
//!
//! This module holds the typed names ([`KeyRingName`], [`KeyVersion`]) and
//! the [`KeyDeriver`] port that the formats call. The custody side (wrapped
//! keys on disk, sealing, rotation, destruction) implements that port in the
//! `phivault-keystore` crate; [`StaticKeys`] is a plain in-memory
//! implementation for tests, vectors and benchmarks.

use crate::crypto::{self, CryptoError};
use crate::secret::{KEY_LEN, SecretKey};
use core::fmt;
use core::num::NonZeroU32;
use std::collections::BTreeMap;

/// Longest key ring name, in bytes: two 63-byte parts and the '/'.
pub const MAX_RING_NAME_LEN: usize = 127;

/// A key ring's full name, `namespace/name`, e.g. `prod/billing`.
///
/// Both parts are 1–63 bytes of `[a-z0-9_.-]`, starting with a letter or
/// digit. The namespace is part of the name written in every ciphertext
/// header, so production and test keys can never stand in for each other.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyRingName(String);

/// Why a key ring name was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// Not of the form `namespace/name`.
    #[error("key ring name must look like 'namespace/name', e.g. 'prod/billing'")]
    MissingNamespace,
    /// A part was empty, too long, or had a character outside `[a-z0-9_.-]`.
    #[error(
        "key ring name parts must be 1-63 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
    )]
    BadPart,
}

fn valid_part(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 63
        && p.as_bytes()[0].is_ascii_alphanumeric()
        && p.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
}

impl KeyRingName {
    /// Parses `namespace/name`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (ns, name) = s.split_once('/').ok_or(NameError::MissingNamespace)?;
        if !valid_part(ns) || !valid_part(name) {
            return Err(NameError::BadPart);
        }
        Ok(Self(s.to_owned()))
    }

    /// Builds a name from its parts.
    pub fn new(namespace: &str, name: &str) -> Result<Self, NameError> {
        Self::parse(&format!("{namespace}/{name}"))
    }

    /// Parses a name given with or without a namespace; a bare name gets
    /// `default_namespace`.
    pub fn parse_in(s: &str, default_namespace: &str) -> Result<Self, NameError> {
        if s.contains('/') {
            Self::parse(s)
        } else {
            Self::new(default_namespace, s)
        }
    }

    /// The whole name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace part.
    pub fn namespace(&self) -> &str {
        self.0.split_once('/').map(|(n, _)| n).unwrap_or_default()
    }
}

impl fmt::Display for KeyRingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for KeyRingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRingName({})", self.0)
    }
}

/// A key version number; versions start at 1.
pub type KeyVersion = NonZeroU32;

/// Why a key could not be used. These name the key and its state; they
/// never contain key bytes.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// No such key ring.
    #[error("key ring '{0}' does not exist (list them with `phivault keys list`)")]
    UnknownRing(String),
    /// The ring has no such version.
    #[error("key ring '{0}' has no version {1}")]
    UnknownVersion(String, u32),
    /// The version was destroyed: its data is crypto-shredded.
    #[error(
        "key ring '{0}' version {1} was destroyed; data encrypted under it cannot be recovered"
    )]
    Destroyed(String, u32),
    /// The version is below the ring's minimum decryption version.
    #[error("key ring '{0}' version {1} is below the ring's minimum decryption version {2}")]
    BelowMinimum(String, u32, u32),
    /// The ring is disabled.
    #[error("key ring '{0}' is disabled; re-enable it with `phivault keys enable`")]
    Disabled(String),
    /// The keystore is sealed.
    #[error("the keystore is sealed; unseal it with `phivault unseal`")]
    Sealed,
    /// Encrypting under a version that is no longer the primary (the ring
    /// was rotated after the version was read).
    #[error("version {1} of '{0}' is not the primary (the ring was rotated); retry")]
    NotPrimary(String, u32),
    /// The key service could not be reached or failed.
    #[error("key service: {0}")]
    Service(String),
}

/// What a derived key will be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Encrypting new data: the version must be the ring's primary, and the ring enabled.
    Encrypt,
    /// Decrypting: any live version at or above the minimum decryption version.
    Decrypt,
}

/// Output of a per-message derivation: an AES-256-GCM key and a 256-bit key
/// commitment (docs/FORMAT.md §"Key derivation and commitment").
pub struct DerivedKey {
    /// The one-time data key.
    pub key: SecretKey,
    /// The commitment value stored in the header.
    pub commitment: [u8; 32],
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKey(<redacted>)")
    }
}

/// Length of the random per-message nonce in every header.
pub const MESSAGE_NONCE_LEN: usize = 32;
/// Length of the key commitment in every header.
pub const COMMITMENT_LEN: usize = 32;

/// The SP 800-108 fixed input for a per-message derivation:
/// `Label ‖ 0x00 ‖ Context ‖ [512]₃₂` (docs/FORMAT.md §2). Each format
/// passes its own label and its header bytes before the commitment.
pub fn fixed_info(label: &[u8], context: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(label.len() + 1 + context.len() + 4);
    v.extend_from_slice(label);
    v.push(0);
    v.extend_from_slice(context);
    v.extend_from_slice(&512u32.to_be_bytes());
    v
}

impl DerivedKey {
    /// Runs the phivault derivation on a ring key: KBKDF-CTR-HMAC-SHA-256
    /// with `fixed_info`, 512 bits out; the first half is the key, the
    /// second the commitment.
    pub fn derive(ring_key: &SecretKey, fixed_info: &[u8]) -> Result<Self, CryptoError> {
        let mut out = [0u8; 2 * KEY_LEN];
        crypto::kbkdf_ctr_hmac_sha256(ring_key, fixed_info, &mut out)?;
        let key = SecretKey::from_slice(&out[..KEY_LEN]).expect("32 bytes");
        let mut commitment = [0u8; 32];
        commitment.copy_from_slice(&out[KEY_LEN..]);
        zeroize::Zeroize::zeroize(&mut out);
        Ok(Self { key, commitment })
    }
}

/// The port the formats use to get per-message keys. Implementations hold
/// the ring keys (or talk to whoever holds them) and enforce key state.
pub trait KeyDeriver: Send + Sync {
    /// The ring's primary (newest, encrypting) version.
    fn primary_version(&self, ring: &KeyRingName) -> Result<KeyVersion, KeyError>;

    /// Derives the per-message key for `fixed_info` from `ring` at `version`.
    fn derive(
        &self,
        ring: &KeyRingName,
        version: KeyVersion,
        usage: KeyUse,
        fixed_info: &[u8],
    ) -> Result<DerivedKey, KeyError>;
}

/// An in-memory [`KeyDeriver`] with explicit keys: for tests, test vectors
/// and benchmarks. Versions are all live; the highest is primary.
#[derive(Default)]
pub struct StaticKeys {
    rings: BTreeMap<KeyRingName, BTreeMap<KeyVersion, SecretKey>>,
}

impl StaticKeys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a ring version.
    pub fn insert(&mut self, ring: KeyRingName, version: KeyVersion, key: SecretKey) {
        self.rings.entry(ring).or_default().insert(version, key);
    }

    /// Convenience: a set with one ring and one version with a fresh random key.
    pub fn random(ring: &str) -> Self {
        let mut s = Self::new();
        s.insert(
            KeyRingName::parse(ring).expect("valid ring name"),
            KeyVersion::MIN,
            crypto::generate_key().expect("DRBG"),
        );
        s
    }
}

impl KeyDeriver for StaticKeys {
    fn primary_version(&self, ring: &KeyRingName) -> Result<KeyVersion, KeyError> {
        self.rings
            .get(ring)
            .and_then(|v| v.keys().next_back().copied())
            .ok_or_else(|| KeyError::UnknownRing(ring.to_string()))
    }

    fn derive(
        &self,
        ring: &KeyRingName,
        version: KeyVersion,
        _usage: KeyUse,
        fixed_info: &[u8],
    ) -> Result<DerivedKey, KeyError> {
        let versions = self
            .rings
            .get(ring)
            .ok_or_else(|| KeyError::UnknownRing(ring.to_string()))?;
        let key = versions
            .get(&version)
            .ok_or_else(|| KeyError::UnknownVersion(ring.to_string(), version.get()))?;
        DerivedKey::derive(key, fixed_info).map_err(|e| KeyError::Service(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_names() {
        assert!(KeyRingName::parse("prod/billing").is_ok());
        assert_eq!(
            KeyRingName::parse("billing"),
            Err(NameError::MissingNamespace)
        );
        assert_eq!(KeyRingName::parse("prod/Billing"), Err(NameError::BadPart));
        assert_eq!(KeyRingName::parse("prod/a/b"), Err(NameError::BadPart));
        assert_eq!(KeyRingName::parse("/x"), Err(NameError::BadPart));
        assert_eq!(KeyRingName::parse("p/-x"), Err(NameError::BadPart));
        assert_eq!(
            KeyRingName::parse_in("billing", "test").unwrap().as_str(),
            "test/billing"
        );
        assert_eq!(
            KeyRingName::parse("prod/billing").unwrap().namespace(),
            "prod"
        );
        let long = format!("{}/{}", "a".repeat(63), "b".repeat(63));
        assert!(KeyRingName::parse(&long).unwrap().as_str().len() <= MAX_RING_NAME_LEN);
    }
}
