//! HMAC-SHA-256/384/512 (FIPS 198-1), and SHA-256 for fingerprints.

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
