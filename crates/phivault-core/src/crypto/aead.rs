//! AES-GCM (SP 800-38D): AES-256, and AES-128 for transit keys of that type.
//!
//! Callers supply the nonce. phivault's formats never reuse a key with a
//! random nonce: every message or file gets its own derived key, and the
//! nonces under that key are a counter (see docs/FORMAT.md), so the
//! SP 800-38D §8.3 limit of 2^32 random nonces per key is never approached.

use super::CryptoError;
use crate::secret::SecretKey;
use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// GCM nonce length in bytes.
pub const AEAD_NONCE_LEN: usize = 12;
/// GCM tag length in bytes (full 128-bit tags only).
pub const AEAD_TAG_LEN: usize = 16;

/// An AES-256-GCM key, expanded and ready to use. The module zeroizes its
/// expanded key schedule when this is dropped.
pub struct Aes256GcmKey(LessSafeKey);

impl core::fmt::Debug for Aes256GcmKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Aes256GcmKey(<redacted>)")
    }
}

impl Aes256GcmKey {
    /// Expands a 256-bit key.
    pub fn new(key: &SecretKey) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key.expose_secret())
            .map_err(|_| CryptoError::Internal("AES-256-GCM key setup"))?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    /// Expands an AES-128 key: the first 16 bytes of `key`. (The name is
    /// historical: the type holds either key size.)
    pub fn new_aes128(key: &SecretKey) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_128_GCM, &key.expose_secret()[..16])
            .map_err(|_| CryptoError::Internal("AES-128-GCM key setup"))?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    /// Expands a key given as raw bytes (test vectors). Fails unless 32 bytes.
    pub fn from_slice(key: &[u8]) -> Result<Self, CryptoError> {
        let key =
            SecretKey::from_slice(key).ok_or(CryptoError::InvalidInput("AES-256 key length"))?;
        Self::new(&key)
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub fn seal_in_place(
        &self,
        nonce: [u8; AEAD_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; AEAD_TAG_LEN], CryptoError> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map_err(|_| CryptoError::Internal("AES-256-GCM seal"))?;
        let mut out = [0u8; AEAD_TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `in_out` in place, checking `tag`. On failure the buffer
    /// holds unspecified bytes and must not be used.
    pub fn open_in_place(
        &self,
        nonce: [u8; AEAD_NONCE_LEN],
        aad: &[u8],
        tag: &[u8],
        in_out: &mut [u8],
    ) -> Result<(), CryptoError> {
        if tag.len() != AEAD_TAG_LEN {
            return Err(CryptoError::DecryptionFailed);
        }
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                tag,
                in_out,
            )
            .map(|_| ())
            .map_err(|_| CryptoError::DecryptionFailed)
    }
}
