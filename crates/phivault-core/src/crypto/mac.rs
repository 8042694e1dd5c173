//! HMAC-SHA-256/384/512 (FIPS 198-1), and SHA-256 (FIPS 180-4) for
//! fingerprints and the digests that signatures cover.

use super::CryptoError;
use aws_lc_rs::{digest, hmac};

/// Which HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    /// HMAC-SHA-256, 32-byte tags.
    Sha256,
    /// HMAC-SHA-384, 48-byte tags.
    Sha384,
    /// HMAC-SHA-512, 64-byte tags.
    Sha512,
}

impl HmacAlgorithm {
    fn aws(self) -> hmac::Algorithm {
        match self {
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha384 => hmac::HMAC_SHA384,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// An HMAC key with its inner and outer pads precomputed.
pub struct HmacKey(hmac::Key);

impl core::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

impl HmacKey {
    /// Builds a key from raw key bytes (any length, per FIPS 198-1).
    pub fn new(alg: HmacAlgorithm, key: &[u8]) -> Self {
        Self(hmac::Key::new(alg.aws(), key))
    }

    /// Computes the tag over the concatenation of `parts`.
    pub fn sign(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.0);
        for p in parts {
            ctx.update(p);
        }
        ctx.sign().as_ref().to_vec()
    }

    /// Verifies a tag in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> Result<(), CryptoError> {
        let expected = self.sign(parts);
        if super::constant_time_eq(&expected, tag) {
            Ok(())
        } else {
            Err(CryptoError::DecryptionFailed)
        }
    }
}

/// SHA-256 of `data` (fingerprints, header hashes; never for keys).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// SHA-256 over the concatenation of `parts`, without building the
/// concatenation in memory (domain-separated hashes such as RFC 9162 leaf
/// hashes and C2SP note key IDs).
pub fn sha256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// An incremental SHA-256, for digests of data too large to hold in memory
/// (a backup file, hashed as it is written or read).
#[derive(Clone)]
pub struct Sha256(digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Sha256")
    }
}

impl Sha256 {
    /// An empty hash.
    pub fn new() -> Self {
        Self(digest::Context::new(&digest::SHA256))
    }

    /// Hashes `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything passed to [`Sha256::update`].
    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}
