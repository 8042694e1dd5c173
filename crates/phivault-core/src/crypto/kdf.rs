//! Key derivation: HKDF (SP 800-56C rev2 two-step), KBKDF in counter mode
//! with HMAC-SHA-256 (SP 800-108r1), and PBKDF2-HMAC-SHA-256 (SP 800-132).

use super::CryptoError;
use crate::secret::SecretKey;
use aws_lc_rs::kdf::{KbkdfCtrHmacAlgorithmId, get_kbkdf_ctr_hmac_algorithm, kbkdf_ctr_hmac};
use aws_lc_rs::{hkdf, pbkdf2};
use core::num::NonZeroU32;

/// OWASP's 2023 floor for PBKDF2-HMAC-SHA-256; SP 800-132 asks for "as large
/// as feasible". phivault refuses fewer.
pub const PBKDF2_MIN_ITERATIONS: u32 = 600_000;
/// Salt length for PBKDF2 (SP 800-132 §5.1 asks for at least 128 bits).
pub const PBKDF2_SALT_LEN: usize = 16;

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_with(
    alg: hkdf::Algorithm,
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    if out.is_empty() || out.len() > 255 * alg.hmac_algorithm().digest_algorithm().output_len {
        return Err(CryptoError::InvalidInput("HKDF output length"));
    }
    let prk = hkdf::Salt::new(alg, salt).extract(ikm);
    let info = [info];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| CryptoError::Internal("HKDF"))
}

/// HKDF-SHA-256 extract-then-expand into `out`.
pub fn hkdf_sha256(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    hkdf_with(hkdf::HKDF_SHA256, salt, ikm, info, out)
}

/// HKDF-SHA-384 extract-then-expand into `out`.
pub fn hkdf_sha384(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    hkdf_with(hkdf::HKDF_SHA384, salt, ikm, info, out)
}

/// SP 800-108r1 KDF in counter mode with HMAC-SHA-256 as the PRF, computed
/// inside the module. `fixed_info` is Label ‖ 0x00 ‖ Context ‖ [L]₃₂, built
/// by the caller (see docs/FORMAT.md for each use).
pub fn kbkdf_ctr_hmac_sha256(
    key: &SecretKey,
    fixed_info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let alg = get_kbkdf_ctr_hmac_algorithm(KbkdfCtrHmacAlgorithmId::Sha256)
        .ok_or(CryptoError::Internal("KBKDF algorithm"))?;
    kbkdf_ctr_hmac(alg, key.expose_secret(), fixed_info, out)
        .map_err(|_| CryptoError::Internal("KBKDF"))
}

/// PBKDF2-HMAC-SHA-256 (SP 800-132). Refuses fewer than
/// [`PBKDF2_MIN_ITERATIONS`] iterations or a salt under 128 bits.
pub fn pbkdf2_hmac_sha256(
    passphrase: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<SecretKey, CryptoError> {
    if iterations < PBKDF2_MIN_ITERATIONS {
        return Err(CryptoError::InvalidInput(
            "PBKDF2 iteration count (minimum 600000)",
        ));
    }
    if salt.len() < PBKDF2_SALT_LEN {
        return Err(CryptoError::InvalidInput(
            "PBKDF2 salt length (minimum 16 bytes)",
        ));
    }
    pbkdf2_raw(passphrase, salt, iterations)
}

/// PBKDF2 without phivault's policy floors, for published test vectors only.
#[doc(hidden)]
pub fn pbkdf2_raw(
    passphrase: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<SecretKey, CryptoError> {
    let iters =
        NonZeroU32::new(iterations).ok_or(CryptoError::InvalidInput("PBKDF2 iterations"))?;
    let mut out = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iters,
        salt,
        passphrase,
        &mut out,
    );
    let key = SecretKey::from_bytes(out);
    zeroize::Zeroize::zeroize(&mut out);
    Ok(key)
}
