//! The envelope format: one value (a field, a record, a token) encrypted
//! under a key ring, with key commitment and caller-supplied context.
//!
//! Byte layout (docs/FORMAT.md §Envelope is the normative text):
//!
//! ```text
//! "PVE" | ver=0x01 | alg=0x01 | n | ring name (n) | key version u32be
//!       | nonce (32) | commitment (32) | ciphertext | tag (16)
//! ```
//!
//! Each message gets its own AES-256-GCM key, derived from the ring version
//! and the header (which holds a fresh 256-bit nonce) with SP 800-108
//! KBKDF. The same derivation yields a 256-bit commitment that is checked
//! before decryption, so a ciphertext opens under exactly one key. The
//! caller's context (e.g. record id ‖ field path) and the whole header are
//! the GCM associated data.

use crate::crypto::{self, AEAD_TAG_LEN, Aes256GcmKey};
use crate::keys::{self, KeyDeriver, KeyError, KeyRingName, KeyUse, KeyVersion, MAX_RING_NAME_LEN};
use base64::Engine;

/// Magic bytes at the start of every binary envelope.
pub const MAGIC: &[u8; 3] = b"PVE";
/// The format version this code writes.
pub const VERSION: u8 = 1;
/// Prefix of the compact text form.
pub const TEXT_PREFIX: &str = "pve:";
/// KBKDF label for envelope keys.
const LABEL: &[u8] = b"phivault envelope v1";
const NONCE_LEN: usize = keys::MESSAGE_NONCE_LEN;
const COMMIT_LEN: usize = keys::COMMITMENT_LEN;

/// Algorithm ids for envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// 0x01: AES-256-GCM, per-message key and 256-bit commitment from
    /// KBKDF-CTR-HMAC-SHA-256, zero GCM nonce (the key is single-use).
    Aes256GcmKbkdfSha256Commit,
    /// 0x02: the same with AES-128-GCM (the first 16 bytes of the derived
    /// key), for transit keys of Vault type `aes128-gcm96`.
    Aes128GcmKbkdfSha256Commit,
}

impl Algorithm {
    /// The id byte.
    pub fn id(self) -> u8 {
        match self {
            Self::Aes256GcmKbkdfSha256Commit => 0x01,
            Self::Aes128GcmKbkdfSha256Commit => 0x02,
        }
    }
    /// Parses an id byte.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            0x01 => Some(Self::Aes256GcmKbkdfSha256Commit),
            0x02 => Some(Self::Aes128GcmKbkdfSha256Commit),
            _ => None,
        }
    }
    /// The AES-GCM key for a derived key under this algorithm.
    fn cipher(self, dk: &crate::secret::SecretKey) -> Result<Aes256GcmKey, crypto::CryptoError> {
        match self {
            Self::Aes256GcmKbkdfSha256Commit => Aes256GcmKey::new(dk),
            Self::Aes128GcmKbkdfSha256Commit => Aes256GcmKey::new_aes128(dk),
        }
    }

    /// A stable human name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes256GcmKbkdfSha256Commit => "AES-256-GCM/KBKDF-HMAC-SHA256/commit",
            Self::Aes128GcmKbkdfSha256Commit => "AES-128-GCM/KBKDF-HMAC-SHA256/commit",
        }
    }
}

/// Errors from envelope encryption and decryption.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The input is not a well-formed envelope.
    #[error("not a phivault envelope, or it is truncated: {0}")]
    Malformed(&'static str),
    /// The format version is newer than this build understands.
    #[error("unsupported envelope format version {0}; upgrade phivault to read it")]
    UnsupportedVersion(u8),
    /// The algorithm id is unknown.
    #[error("unknown envelope algorithm id 0x{0:02x}; upgrade phivault to read it")]
    UnknownAlgorithm(u8),
    /// The key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Wrong key, wrong context, or the ciphertext was modified. Uniform on purpose.
    #[error("decryption failed: wrong key or context, or the ciphertext was modified")]
    DecryptionFailed,
    /// The crypto module failed.
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
}

/// A parsed envelope header. Holds the exact bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// The key ring that encrypted it.
    pub ring: KeyRingName,
    /// The ring version.
    pub version: KeyVersion,
    /// The per-message nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The key commitment.
    pub commitment: [u8; COMMIT_LEN],
    /// Length in bytes of the header, including the commitment.
    pub len: usize,
}

fn fixed_info(prefix: &[u8]) -> Vec<u8> {
    keys::fixed_info(LABEL, prefix)
}

/// Parses the header of a binary envelope without decrypting anything.
pub fn parse_header(ct: &[u8]) -> Result<Header, EnvelopeError> {
    if ct.len() < 6 || &ct[..3] != MAGIC {
        return Err(EnvelopeError::Malformed("bad magic"));
    }
    if ct[3] != VERSION {
        return Err(EnvelopeError::UnsupportedVersion(ct[3]));
    }
    let algorithm = Algorithm::from_id(ct[4]).ok_or(EnvelopeError::UnknownAlgorithm(ct[4]))?;
    let n = ct[5] as usize;
    if n == 0 || n > MAX_RING_NAME_LEN {
        return Err(EnvelopeError::Malformed("bad key ring name length"));
    }
    let len = 6 + n + 4 + NONCE_LEN + COMMIT_LEN;
    if ct.len() < len + AEAD_TAG_LEN {
        return Err(EnvelopeError::Malformed("too short"));
    }
    let name = core::str::from_utf8(&ct[6..6 + n])
        .map_err(|_| EnvelopeError::Malformed("bad key ring name"))?;
    let ring =
        KeyRingName::parse(name).map_err(|_| EnvelopeError::Malformed("bad key ring name"))?;
    let v = u32::from_be_bytes(ct[6 + n..10 + n].try_into().expect("4 bytes"));
    let version = KeyVersion::new(v).ok_or(EnvelopeError::Malformed("key version 0"))?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&ct[10 + n..10 + n + NONCE_LEN]);
    let mut commitment = [0u8; COMMIT_LEN];
    commitment.copy_from_slice(&ct[10 + n + NONCE_LEN..len]);
    Ok(Header {
        algorithm,
        ring,
        version,
        nonce,
        commitment,
        len,
    })
}

/// Encrypts `plaintext` under the primary version of `ring`, binding `context`.
pub fn encrypt(
    keys: &dyn KeyDeriver,
    ring: &KeyRingName,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    // The primary is read, then used: a rotation in between (another
    // request, or another node's write seen meanwhile) makes it stale and
    // the deriver refuses it. Read it again; rotations are rare, so a few
    // tries suffice.
    let mut attempts = 0;
    loop {
        let version = keys.primary_version(ring)?;
        match encrypt_version(keys, ring, version, context, plaintext) {
            Err(EnvelopeError::Key(KeyError::NotPrimary(..))) if attempts < 3 => attempts += 1,
            r => return r,
        }
    }
}

/// [`encrypt`] under a chosen version, which the key deriver must allow
/// for encryption (the primary, or one at or above the ring's minimum
/// encryption version).
pub fn encrypt_version(
    keys: &dyn KeyDeriver,
    ring: &KeyRingName,
    version: KeyVersion,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    encrypt_with(
        keys,
        Algorithm::Aes256GcmKbkdfSha256Commit,
        ring,
        version,
        context,
        plaintext,
    )
}

/// [`encrypt_version`] with a chosen algorithm.
pub fn encrypt_with(
    keys: &dyn KeyDeriver,
    algorithm: Algorithm,
    ring: &KeyRingName,
    version: KeyVersion,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let nonce: [u8; NONCE_LEN] = crypto::random_array()?;
    encrypt_inner(keys, algorithm, ring, version, nonce, context, plaintext)
}

/// [`encrypt_with`] with a caller-chosen nonce, for test vectors only
/// (feature `test-vectors`). The same nonce twice repeats a data key.
#[cfg(any(test, feature = "test-vectors"))]
#[doc(hidden)]
pub fn encrypt_with_nonce(
    keys: &dyn KeyDeriver,
    algorithm: Algorithm,
    ring: &KeyRingName,
    version: KeyVersion,
    nonce: [u8; NONCE_LEN],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    encrypt_inner(keys, algorithm, ring, version, nonce, context, plaintext)
}

/// Deterministic core of [`encrypt`], for test vectors. Never call with a
/// nonce that is not fresh from the DRBG outside of tests.
fn encrypt_inner(
    keys: &dyn KeyDeriver,
    algorithm: Algorithm,
    ring: &KeyRingName,
    version: KeyVersion,
    nonce: [u8; NONCE_LEN],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let name = ring.as_str().as_bytes();
    let hlen = 6 + name.len() + 4 + NONCE_LEN + COMMIT_LEN;
    let mut out = Vec::with_capacity(hlen + plaintext.len() + AEAD_TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(algorithm.id());
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&version.get().to_be_bytes());
    out.extend_from_slice(&nonce);
    let derived = keys.derive(ring, version, KeyUse::Encrypt, &fixed_info(&out))?;
    out.extend_from_slice(&derived.commitment);
    let aead = algorithm.cipher(&derived.key)?;
    let mut aad = Vec::with_capacity(hlen + context.len());
    aad.extend_from_slice(&out);
    aad.extend_from_slice(context);
    out.extend_from_slice(plaintext);
    let tag = aead.seal_in_place([0u8; 12], &aad, &mut out[hlen..])?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Decrypts a binary envelope, checking the key commitment and `context`.
pub fn decrypt(keys: &dyn KeyDeriver, ct: &[u8], context: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let h = parse_header(ct)?;
    let derived = keys.derive(
        &h.ring,
        h.version,
        KeyUse::Decrypt,
        &fixed_info(&ct[..h.len - COMMIT_LEN]),
    )?;
    if !crypto::constant_time_eq(&derived.commitment, &h.commitment) {
        return Err(EnvelopeError::DecryptionFailed);
    }
    let aead = h.algorithm.cipher(&derived.key)?;
    let mut aad = Vec::with_capacity(h.len + context.len());
    aad.extend_from_slice(&ct[..h.len]);
    aad.extend_from_slice(context);
    let body_end = ct.len() - AEAD_TAG_LEN;
    let mut body = ct[h.len..body_end].to_vec();
    aead.open_in_place([0u8; 12], &aad, &ct[body_end..], &mut body)
        .map_err(|_| EnvelopeError::DecryptionFailed)?;
    Ok(body)
}

/// The compact text form: `pve:` followed by unpadded base64url.
pub fn to_text(ct: &[u8]) -> String {
    let mut s = String::from(TEXT_PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(ct, &mut s);
    s
}

/// Parses the compact text form back to bytes.
pub fn from_text(s: &str) -> Result<Vec<u8>, EnvelopeError> {
    let b64 = s
        .trim_matches([' ', '\t', '\r', '\n'])
        .strip_prefix(TEXT_PREFIX)
        .ok_or(EnvelopeError::Malformed("text form must start with 'pve:'"))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| EnvelopeError::Malformed("bad base64url in text form"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::StaticKeys;
    use crate::secret::SecretKey;
    use proptest::prelude::*;

    fn ring() -> KeyRingName {
        KeyRingName::parse("test/billing").unwrap()
    }

    #[test]
    fn roundtrip_and_context_binding() {
        let keys = StaticKeys::random("test/billing");
        let ct = encrypt(&keys, &ring(), b"rec-1/ssn", b"123-45-6789").unwrap();
        assert_eq!(decrypt(&keys, &ct, b"rec-1/ssn").unwrap(), b"123-45-6789");
        assert!(matches!(
            decrypt(&keys, &ct, b"rec-2/ssn"),
            Err(EnvelopeError::DecryptionFailed)
        ));
        let text = to_text(&ct);
        assert!(text.starts_with("pve:"));
        assert_eq!(from_text(&text).unwrap(), ct);
    }

    #[test]
    fn wrong_key_fails_at_commitment() {
        let a = StaticKeys::random("test/billing");
        let b = StaticKeys::random("test/billing");
        let ct = encrypt(&a, &ring(), b"", b"x").unwrap();
        assert!(matches!(
            decrypt(&b, &ct, b""),
            Err(EnvelopeError::DecryptionFailed)
        ));
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut keys = StaticKeys::new();
        keys.insert(ring(), KeyVersion::MIN, SecretKey::from_bytes([7; 32]));
        for pt in [&b""[..], b"a", b"0123456789abcdef0"] {
            let ct = encrypt(&keys, &ring(), b"ctx", pt).unwrap();
            for i in 0..ct.len() * 8 {
                let mut bad = ct.clone();
                bad[i / 8] ^= 1 << (i % 8);
                assert!(
                    decrypt(&keys, &bad, b"ctx").is_err(),
                    "flip of bit {i} not detected"
                );
            }
            for cut in 0..ct.len() {
                assert!(
                    decrypt(&keys, &ct[..cut], b"ctx").is_err(),
                    "truncation to {cut} not detected"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn prop_roundtrip(pt in proptest::collection::vec(any::<u8>(), 0..2048), ctx in proptest::collection::vec(any::<u8>(), 0..64)) {
            let keys = StaticKeys::random("test/billing");
            let ct = encrypt(&keys, &ring(), &ctx, &pt).unwrap();
            prop_assert_eq!(decrypt(&keys, &ct, &ctx).unwrap(), pt);
            prop_assert_eq!(from_text(&to_text(&ct)).unwrap(), ct);
        }

        #[test]
        fn prop_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let keys = StaticKeys::random("test/billing");
            let _ = parse_header(&data);
            let _ = decrypt(&keys, &data, b"");
        }
    }
}
