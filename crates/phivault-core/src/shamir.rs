//! Shamir secret sharing over GF(2^8), for dual control of the root key:
//! the unseal key is split K-of-N so that no single person holds it.
//!
//! Written here rather than taken from a crate because (a) the polynomial
//! coefficients must come from the FIPS module's DRBG, which the crates on
//! crates.io take only through `rand` traits, and (b) the arithmetic must be
//! constant-time: multiplication is done bit by bit with no log/exp tables,
//! so no share-dependent memory access happens. The field is GF(2^8) with
//! the AES polynomial x^8+x^4+x^3+x+1, as in Vault.
//!
//! Shares travel as text (`pvshare1-…`) carrying the share-set id, the
//! threshold and a checksum, so a mistyped share or one from another
//! keystore is refused with a clear message instead of silently producing
//! a wrong key.

use crate::crypto::{self, CryptoError};
use crate::secret::SecretBytes;
use base64::Engine;
use zeroize::Zeroize;

/// Prefix of an encoded share.
pub const SHARE_PREFIX: &str = "pvshare1-";

/// Errors from splitting, combining and decoding shares.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShamirError {
    /// Threshold or share count out of range.
    #[error("need 2 <= threshold <= shares <= 255 (got threshold {0}, shares {1})")]
    BadParameters(u8, u8),
    /// Fewer shares than the threshold.
    #[error("too few unseal shares: have {have}, need {need}")]
    TooFewShares {
        /// Shares given.
        have: usize,
        /// Threshold.
        need: usize,
    },
    /// The same share was given twice.
    #[error("the same unseal share (number {0}) was given twice")]
    DuplicateShare(u8),
    /// The share text is damaged or mistyped.
    #[error("the unseal share is damaged or mistyped (checksum mismatch); check it and try again")]
    BadChecksum,
    /// Not a share at all.
    #[error("not an unseal share: shares start with '{SHARE_PREFIX}'")]
    NotAShare,
    /// The share belongs to another share set (another keystore, or before a re-key).
    #[error("this unseal share belongs to a different keystore or an older share set")]
    WrongSet,
    /// Shares of different lengths or thresholds.
    #[error("the unseal shares do not belong together")]
    Inconsistent,
    /// The DRBG failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// One share: its x coordinate (1..=255) and the y bytes.
pub struct Share {
    /// Which share-set this belongs to.
    pub set_id: [u8; 8],
    /// The threshold of the set.
    pub threshold: u8,
    /// x coordinate, never 0.
    pub x: u8,
    y: SecretBytes,
}

impl core::fmt::Debug for Share {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Share(#{} of set {:02x?}, <redacted>)",
            self.x, self.set_id
        )
    }
}

/// Constant-time multiplication in GF(2^8) mod x^8+x^4+x^3+x+1.
fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    p
}

/// Inverse as a^254 (Fermat), constant-time. gf_inv(0) = 0, never used.
fn gf_inv(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            result = gf_mul(result, base);
        }
        base = gf_mul(base, base);
        e >>= 1;
    }
    result
}

/// Splits `secret` into `n` shares, any `k` of which recover it.
pub fn split(secret: &[u8], k: u8, n: u8, set_id: [u8; 8]) -> Result<Vec<Share>, ShamirError> {
    if k < 2 || k > n {
        return Err(ShamirError::BadParameters(k, n));
    }
    let mut coeffs = vec![0u8; secret.len() * (k as usize - 1)];
    crypto::fill_random(&mut coeffs)?;
    let mut shares = Vec::with_capacity(n as usize);
    for x in 1..=n {
        let mut y = Vec::with_capacity(secret.len());
        for (i, &s) in secret.iter().enumerate() {
            // Horner: s + c1 x + c2 x^2 + … ; coefficients for byte i.
            let c = &coeffs[i * (k as usize - 1)..(i + 1) * (k as usize - 1)];
            let mut acc = 0u8;
            for &cj in c.iter().rev() {
                acc = gf_mul(acc, x) ^ cj;
            }
            y.push(gf_mul(acc, x) ^ s);
        }
        shares.push(Share {
            set_id,
            threshold: k,
            x,
            y: SecretBytes::new(y),
        });
    }
    coeffs.zeroize();
    Ok(shares)
}

/// Recovers the secret from at least `threshold` shares of one set.
pub fn combine(shares: &[Share]) -> Result<SecretBytes, ShamirError> {
    let first = shares
        .first()
        .ok_or(ShamirError::TooFewShares { have: 0, need: 2 })?;
    let need = first.threshold as usize;
    if shares.len() < need {
        return Err(ShamirError::TooFewShares {
            have: shares.len(),
            need,
        });
    }
    for (i, s) in shares.iter().enumerate() {
        if s.set_id != first.set_id || s.threshold != first.threshold || s.y.len() != first.y.len()
        {
            return Err(ShamirError::Inconsistent);
        }
        if shares[..i].iter().any(|t| t.x == s.x) {
            return Err(ShamirError::DuplicateShare(s.x));
        }
    }
    let used = &shares[..need];
    let mut out = vec![0u8; first.y.len()];
    // Lagrange interpolation at x = 0.
    for (i, si) in used.iter().enumerate() {
        let mut basis = 1u8;
        for (j, sj) in used.iter().enumerate() {
            if i != j {
                // l_i(0) = Π x_j / (x_j - x_i); subtraction is XOR.
                basis = gf_mul(basis, gf_mul(sj.x, gf_inv(sj.x ^ si.x)));
            }
        }
        for (o, &y) in out.iter_mut().zip(si.y.expose_secret()) {
            *o ^= gf_mul(basis, y);
        }
    }
    Ok(SecretBytes::new(out))
}

impl Share {
    /// Text form: `pvshare1-` ‖ base64url(set_id ‖ threshold ‖ x ‖ y ‖ check),
    /// where check is the first 4 bytes of SHA-256 over what precedes it.
    pub fn encode(&self) -> SecretBytes {
        let mut raw = Vec::with_capacity(8 + 2 + self.y.len() + 4);
        raw.extend_from_slice(&self.set_id);
        raw.push(self.threshold);
        raw.push(self.x);
        raw.extend_from_slice(self.y.expose_secret());
        let check = crypto::sha256(&raw);
        raw.extend_from_slice(&check[..4]);
        let mut s = String::from(SHARE_PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&raw, &mut s);
        raw.zeroize();
        SecretBytes::from(s)
    }

    /// Parses the text form, checking the checksum and, if given, the set id.
    pub fn decode(text: &str, expect_set: Option<&[u8; 8]>) -> Result<Self, ShamirError> {
        let b64 = text
            .trim()
            .strip_prefix(SHARE_PREFIX)
            .ok_or(ShamirError::NotAShare)?;
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| ShamirError::BadChecksum)?;
        if raw.len() < 8 + 2 + 1 + 4 {
            raw.zeroize();
            return Err(ShamirError::BadChecksum);
        }
        let body = raw.len() - 4;
        let ok = crypto::constant_time_eq(&crypto::sha256(&raw[..body])[..4], &raw[body..]);
        let set_id: [u8; 8] = raw[..8].try_into().expect("8");
        let (threshold, x) = (raw[8], raw[9]);
        let y = SecretBytes::new(raw[10..body].to_vec());
        raw.zeroize();
        if !ok || x == 0 || threshold < 2 {
            return Err(ShamirError::BadChecksum);
        }
        if expect_set.is_some_and(|e| e != &set_id) {
            return Err(ShamirError::WrongSet);
        }
        Ok(Self {
            set_id,
            threshold,
            x,
            y,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn field_inverse() {
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "a={a}");
        }
        // 0x53 * 0xCA = 1 in the AES field (FIPS 197 §4.2 example of inverses).
        assert_eq!(gf_mul(0x53, 0xca), 0x01);
        assert_eq!(gf_mul(0x57, 0x83), 0xc1); // FIPS 197 §4.2
    }

    #[test]
    fn three_of_five() {
        let secret = [0xabu8; 32];
        let shares = split(&secret, 3, 5, [1; 8]).unwrap();
        for combo in [[0, 1, 2], [0, 2, 4], [4, 3, 1], [1, 3, 4]] {
            let picked: Vec<Share> = combo
                .iter()
                .map(|&i| {
                    Share::decode(
                        shares[i]
                            .encode()
                            .expose_secret()
                            .iter()
                            .map(|&b| b as char)
                            .collect::<String>()
                            .as_str(),
                        Some(&[1; 8]),
                    )
                    .unwrap()
                })
                .collect();
            assert_eq!(combine(&picked).unwrap().expose_secret(), &secret);
        }
        let two: Vec<Share> = shares.into_iter().take(2).collect();
        assert_eq!(
            combine(&two).unwrap_err(),
            ShamirError::TooFewShares { have: 2, need: 3 }
        );
    }

    #[test]
    fn share_text_errors() {
        let shares = split(&[9u8; 32], 2, 3, [2; 8]).unwrap();
        let text = String::from_utf8(shares[0].encode().expose_secret().to_vec()).unwrap();
        assert_eq!(
            Share::decode(&text, Some(&[3; 8])).unwrap_err(),
            ShamirError::WrongSet
        );
        assert_eq!(
            Share::decode("hello", None).unwrap_err(),
            ShamirError::NotAShare
        );
        let mut typo = text.clone().into_bytes();
        let i = typo.len() - 10;
        typo[i] = if typo[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            Share::decode(std::str::from_utf8(&typo).unwrap(), None).unwrap_err(),
            ShamirError::BadChecksum
        );
        let a = Share::decode(&text, None).unwrap();
        let b = Share::decode(&text, None).unwrap();
        assert_eq!(
            combine(&[a, b]).unwrap_err(),
            ShamirError::DuplicateShare(1)
        );
    }

    proptest! {
        #[test]
        fn prop_any_k_subset_recovers(secret in proptest::collection::vec(any::<u8>(), 1..64), k in 2u8..6, extra in 0u8..4, seed in any::<u64>()) {
            let n = k + extra;
            let shares = split(&secret, k, n, [0; 8]).unwrap();
            let mut idx: Vec<usize> = (0..n as usize).collect();
            // deterministic shuffle from the seed
            let mut s = seed;
            for i in (1..idx.len()).rev() { s = s.wrapping_mul(6364136223846793005).wrapping_add(1); idx.swap(i, (s >> 33) as usize % (i + 1)); }
            let picked: Vec<Share> = idx[..k as usize].iter().map(|&i| Share { set_id: [0;8], threshold: k, x: shares[i].x, y: SecretBytes::new(shares[i].y.expose_secret().to_vec()) }).collect();
            let got = combine(&picked).unwrap();
            prop_assert_eq!(got.expose_secret(), &secret[..]);
        }
    }
}
