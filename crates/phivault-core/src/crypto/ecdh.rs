//! Key agreement: ECDH over P-384 (SP 800-56A r3 §5.7.1.2, the ECC CDH
//! primitive), with the shared secret fed straight into HKDF-SHA-384
//! (SP 800-56C r2 two-step KDF) so that it never leaves this module.
//!
//! Used ephemeral-static: a writer generates a fresh key pair per message
//! and agrees with a recipient's long-lived public key, so the recipient's
//! private key can stay offline.

use super::CryptoError;
use crate::secret::{KEY_LEN, SecretBytes, SecretKey};
use aws_lc_rs::agreement::{self, ECDH_P384, ParsedPublicKey, UnparsedPublicKey};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::hkdf;

/// Length of an uncompressed SEC1 P-384 point: `0x04 ‖ X (48) ‖ Y (48)`.
pub const P384_POINT_LEN: usize = 97;

/// The DER of an RFC 5480 SubjectPublicKeyInfo for P-384 up to and
/// including the BIT STRING's unused-bits byte; the uncompressed point
/// follows. The encoding of a P-384 SPKI is fixed, so this prefix is too.
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, // SEQUENCE, 118 bytes
    0x30, 0x10, // SEQUENCE (AlgorithmIdentifier)
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
    0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, // secp384r1
    0x03, 0x62, 0x00, // BIT STRING, 98 bytes, no unused bits
];

/// A P-384 public key for key agreement, as an uncompressed SEC1 point
/// that has been checked to lie on the curve (SP 800-56A r3 §5.6.2.3.4
/// full public-key validation). Public: it may be printed and copied.
#[derive(Clone, PartialEq, Eq)]
pub struct EcdhP384PublicKey([u8; P384_POINT_LEN]);

impl EcdhP384PublicKey {
    /// Parses an uncompressed SEC1 point (97 bytes starting with 0x04).
    /// Compressed and hybrid forms are refused: the formats store exactly
    /// one encoding.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, CryptoError> {
        let point: [u8; P384_POINT_LEN] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidInput("P-384 public key length"))?;
        if point[0] != 0x04 {
            return Err(CryptoError::InvalidInput(
                "P-384 public key encoding (not an uncompressed point)",
            ));
        }
        ParsedPublicKey::try_from(UnparsedPublicKey::new(&ECDH_P384, &point[..]))
            .map_err(|_| CryptoError::InvalidInput("P-384 public key (not on the curve)"))?;
        Ok(Self(point))
    }

    /// Parses an RFC 5480 SubjectPublicKeyInfo (DER) holding a P-384 key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        match der.strip_prefix(&P384_SPKI_PREFIX[..]) {
            Some(point) => Self::from_sec1(point),
            None => Err(CryptoError::InvalidInput("P-384 SubjectPublicKeyInfo")),
        }
    }

    /// The uncompressed SEC1 point.
    pub fn as_bytes(&self) -> &[u8; P384_POINT_LEN] {
        &self.0
    }

    /// The RFC 5480 SubjectPublicKeyInfo (DER), as `openssl pkey -pubin` reads it.
    pub fn to_spki_der(&self) -> Vec<u8> {
        [&P384_SPKI_PREFIX[..], &self.0[..]].concat()
    }
}

impl core::fmt::Debug for EcdhP384PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("EcdhP384PublicKey(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…)")
    }
}

/// A P-384 private key for key agreement. The module holds the scalar and
/// zeroizes it when this is dropped; its PKCS#8 form is only handed out as
/// [`SecretBytes`]. Not `Clone`; `Debug` prints no key material.
pub struct EcdhP384PrivateKey {
    key: agreement::PrivateKey,
    public: EcdhP384PublicKey,
}

impl core::fmt::Debug for EcdhP384PrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "EcdhP384PrivateKey(public {:?}, <redacted>)",
            self.public
        )
    }
}

impl EcdhP384PrivateKey {
    fn wrap(key: agreement::PrivateKey) -> Result<Self, CryptoError> {
        let public = key
            .compute_public_key()
            .map_err(|_| CryptoError::Internal("P-384 public key"))?;
        let point = public
            .as_ref()
            .try_into()
            .map_err(|_| CryptoError::Internal("P-384 public key length"))?;
        Ok(Self {
            key,
            public: EcdhP384PublicKey(point),
        })
    }

    /// Generates a key pair with the module's DRBG.
    pub fn generate() -> Result<Self, CryptoError> {
        Self::wrap(agreement::PrivateKey::generate(&ECDH_P384).map_err(|_| CryptoError::Random)?)
    }

    /// Loads a PKCS#8 v1 (RFC 5208) P-384 private key. An RFC 5915
    /// `ECPrivateKey` is accepted too. Keys on other curves are refused.
    pub fn from_pkcs8(der: &SecretBytes) -> Result<Self, CryptoError> {
        let key = agreement::PrivateKey::from_private_key_der(&ECDH_P384, der.expose_secret())
            .map_err(|_| CryptoError::InvalidInput("P-384 PKCS#8 private key"))?;
        Self::wrap(key)
    }

    /// A key from its 48-byte big-endian private scalar, for test vectors
    /// only (feature `test-vectors`): a fixed ephemeral key repeats a key.
    #[cfg(any(test, feature = "test-vectors"))]
    #[doc(hidden)]
    pub fn from_scalar(scalar: &[u8; 48]) -> Result<Self, CryptoError> {
        let key = agreement::PrivateKey::from_private_key(&ECDH_P384, scalar)
            .map_err(|_| CryptoError::InvalidInput("P-384 private scalar"))?;
        Self::wrap(key)
    }

    /// The PKCS#8 v1 encoding of the private key.
    pub fn to_pkcs8(&self) -> Result<SecretBytes, CryptoError> {
        let der: Pkcs8V1Der<'static> = self
            .key
            .as_der()
            .map_err(|_| CryptoError::Internal("P-384 PKCS#8 encoding"))?;
        Ok(SecretBytes::new(der.as_ref().to_vec()))
    }

    /// The public key.
    pub fn public_key(&self) -> &EcdhP384PublicKey {
        &self.public
    }

    /// ECDH with `peer`, then HKDF-SHA-384 (RFC 5869) of the shared secret
    /// `Z` (the 48-byte x-coordinate) with `salt` and `info`, giving a
    /// 256-bit key. `Z` itself never leaves the module.
    pub fn agree_hkdf_sha384(
        &self,
        peer: &EcdhP384PublicKey,
        salt: &[u8],
        info: &[u8],
    ) -> Result<SecretKey, CryptoError> {
        struct Len;
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                KEY_LEN
            }
        }
        let peer = UnparsedPublicKey::new(&ECDH_P384, &peer.0[..]);
        agreement::agree(&self.key, peer, CryptoError::Internal("ECDH P-384"), |z| {
            let mut out = zeroize::Zeroizing::new([0u8; KEY_LEN]);
            hkdf::Salt::new(hkdf::HKDF_SHA384, salt)
                .extract(z)
                .expand(&[info], Len)
                .and_then(|okm| okm.fill(&mut out[..]))
                .map_err(|_| CryptoError::Internal("HKDF-SHA-384"))?;
            Ok(SecretKey::from_bytes(*out))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_is_symmetric_and_pkcs8_round_trips() {
        let a = EcdhP384PrivateKey::generate().unwrap();
        let b = EcdhP384PrivateKey::generate().unwrap();
        let ab = a.agree_hkdf_sha384(b.public_key(), b"s", b"i").unwrap();
        let ba = b.agree_hkdf_sha384(a.public_key(), b"s", b"i").unwrap();
        assert_eq!(ab.expose_secret(), ba.expose_secret());
        let other = a.agree_hkdf_sha384(b.public_key(), b"s", b"j").unwrap();
        assert_ne!(ab.expose_secret(), other.expose_secret());

        let a2 = EcdhP384PrivateKey::from_pkcs8(&a.to_pkcs8().unwrap()).unwrap();
        assert_eq!(a2.public_key(), a.public_key());
        let spki = a.public_key().to_spki_der();
        assert_eq!(spki.len(), 120);
        assert_eq!(
            &EcdhP384PublicKey::from_spki_der(&spki).unwrap(),
            a.public_key()
        );
    }

    #[test]
    fn invalid_points_are_refused() {
        let a = EcdhP384PrivateKey::generate().unwrap();
        let good = *a.public_key().as_bytes();
        assert!(EcdhP384PublicKey::from_sec1(&good).is_ok());
        assert!(EcdhP384PublicKey::from_sec1(&good[..96]).is_err());
        let mut off_curve = good;
        off_curve[96] ^= 1;
        assert!(EcdhP384PublicKey::from_sec1(&off_curve).is_err());
        let mut compressed = [0u8; 97];
        compressed[..49].copy_from_slice(&good[..49]);
        compressed[0] = 0x02 | (good[96] & 1);
        assert!(EcdhP384PublicKey::from_sec1(&compressed).is_err());
        assert!(EcdhP384PublicKey::from_sec1(&[0x04; 97]).is_err());
        // A P-256 key in PKCS#8 is not a P-384 key.
        let p256 =
            super::super::SigningKey::generate(super::super::SignatureAlgorithm::EcdsaP256Sha256)
                .unwrap()
                .to_pkcs8()
                .unwrap();
        assert!(EcdhP384PrivateKey::from_pkcs8(&p256).is_err());
    }

    #[test]
    fn debug_never_reveals_the_private_key() {
        let a = EcdhP384PrivateKey::from_scalar(&[0x5a; 48]).unwrap();
        let text = format!("{a:?}");
        assert!(!text.contains("5a5a5a"), "{text}");
        assert!(text.contains("redacted"));
        let pkcs8 = a.to_pkcs8().unwrap();
        assert!(!format!("{pkcs8:?}").contains("5a"));
    }
}
