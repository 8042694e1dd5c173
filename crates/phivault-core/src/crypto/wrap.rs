//! AES-256 key wrap with padding, KWP (SP 800-38F §6.3, RFC 5649).
//!
//! Used for every key at rest: data-key versions under the root key, the
//! root key under the unseal key, escrow under the backup key.

use super::CryptoError;
use crate::secret::{SecretBytes, SecretKey};
use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrapPadded};

/// KWP adds at most this many bytes (8-byte integrity block plus up to 7 of padding).
pub const KWP_OVERHEAD_MAX: usize = 15;

/// Wraps `key` (1..=4096 bytes) under `kek`.
pub fn wrap_key(kek: &SecretKey, key: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if key.is_empty() || key.len() > 4096 {
        return Err(CryptoError::InvalidInput("key length for wrapping"));
    }
    let kek = KeyEncryptionKey::new(&AES_256, kek.expose_secret())
        .map_err(|_| CryptoError::Internal("KWP key setup"))?;
    let mut out = vec![0u8; key.len() + KWP_OVERHEAD_MAX + 1];
    let n = kek
        .wrap_with_padding(key, &mut out)
        .map_err(|_| CryptoError::Internal("KWP wrap"))?
        .len();
    out.truncate(n);
    Ok(out)
}

/// Unwraps a KWP-wrapped key. Any failure, whatever its cause, is
/// [`CryptoError::UnwrapFailed`].
pub fn unwrap_key(kek: &SecretKey, wrapped: &[u8]) -> Result<SecretBytes, CryptoError> {
    if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) || wrapped.len() > 4096 + 16 {
        return Err(CryptoError::UnwrapFailed);
    }
    let kek = KeyEncryptionKey::new(&AES_256, kek.expose_secret())
        .map_err(|_| CryptoError::Internal("KWP key setup"))?;
    let mut out = vec![0u8; wrapped.len()];
    let res = kek.unwrap_with_padding(wrapped, &mut out).map(|s| s.len());
    match res {
        Ok(n) => {
            // Move only the key bytes into the secret type; wipe the rest.
            let key = out[..n].to_vec();
            zeroize::Zeroize::zeroize(&mut out);
            Ok(SecretBytes::new(key))
        }
        Err(_) => {
            zeroize::Zeroize::zeroize(&mut out);
            Err(CryptoError::UnwrapFailed)
        }
    }
}

/// Unwraps a KWP-wrapped 256-bit key.
pub fn unwrap_key256(kek: &SecretKey, wrapped: &[u8]) -> Result<SecretKey, CryptoError> {
    let bytes = unwrap_key(kek, wrapped)?;
    SecretKey::from_slice(bytes.expose_secret()).ok_or(CryptoError::UnwrapFailed)
}
