//! Digital signatures: ECDSA P-256/P-384 (FIPS 186-5, ASN.1 DER signatures)
//! and Ed25519 (FIPS 186-5 §7).

use super::CryptoError;
use crate::secret::SecretBytes;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

/// The signature algorithms phivault allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// ECDSA over P-256 with SHA-256, DER-encoded signatures.
    EcdsaP256Sha256,
    /// ECDSA over P-384 with SHA-384, DER-encoded signatures.
    EcdsaP384Sha384,
    /// Ed25519.
    Ed25519,
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private signing key. Its PKCS#8 form is only ever handed out as
/// [`SecretBytes`].
pub struct SigningKey {
    alg: SignatureAlgorithm,
    inner: Inner,
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SigningKey({:?}, <redacted>)", self.alg)
    }
}

fn ecdsa_alg(alg: SignatureAlgorithm) -> &'static signature::EcdsaSigningAlgorithm {
    match alg {
        SignatureAlgorithm::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}

impl SigningKey {
    /// Generates a key with the module's DRBG.
    pub fn generate(alg: SignatureAlgorithm) -> Result<Self, CryptoError> {
        let inner = match alg {
            SignatureAlgorithm::Ed25519 => {
                Inner::Ed25519(Ed25519KeyPair::generate().map_err(|_| CryptoError::Random)?)
            }
            _ => Inner::Ecdsa(
                EcdsaKeyPair::generate(ecdsa_alg(alg)).map_err(|_| CryptoError::Random)?,
            ),
        };
        Ok(Self { alg, inner })
    }

    /// Loads a PKCS#8 v1 private key.
    pub fn from_pkcs8(alg: SignatureAlgorithm, pkcs8: &SecretBytes) -> Result<Self, CryptoError> {
        let der = pkcs8.expose_secret();
        let inner = match alg {
            SignatureAlgorithm::Ed25519 => Inner::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| CryptoError::InvalidInput("Ed25519 PKCS#8 key"))?,
            ),
            _ => Inner::Ecdsa(
                EcdsaKeyPair::from_pkcs8(ecdsa_alg(alg), der)
                    .map_err(|_| CryptoError::InvalidInput("ECDSA PKCS#8 key"))?,
            ),
        };
        Ok(Self { alg, inner })
    }

    /// An Ed25519 key from its 32-byte RFC 8032 seed (the private key as
    /// C2SP signed-note and golang.org/x/mod/sumdb/note store it), for keys
    /// derived from a ring key or loaded from a note signer key. The public
    /// key is computed from the seed, so there is nothing to cross-check.
    pub fn ed25519_from_seed(seed: &crate::secret::SecretKey) -> Result<Self, CryptoError> {
        let k = Ed25519KeyPair::from_seed_unchecked(seed.expose_secret())
            .map_err(|_| CryptoError::InvalidInput("Ed25519 seed"))?;
        Ok(Self {
            alg: SignatureAlgorithm::Ed25519,
            inner: Inner::Ed25519(k),
        })
    }

    /// An ECDSA P-256 key whose private scalar is `scalar` (big-endian),
    /// for keys derived from a ring key. Fails if the scalar is 0 or not
    /// below the group order (probability about 2⁻³²); callers derive again.
    pub fn ecdsa_p256_from_scalar(scalar: &crate::secret::SecretKey) -> Result<Self, CryptoError> {
        // RFC 5915 ECPrivateKey: version 1, the 32-byte key, and the
        // namedCurve parameter (prime256v1); the module computes the public
        // point (and in FIPS mode runs its pairwise consistency test).
        let mut der = zeroize::Zeroizing::new(Vec::with_capacity(51));
        der.extend_from_slice(&[0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20]);
        der.extend_from_slice(scalar.expose_secret());
        der.extend_from_slice(&[
            0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ]);
        let k =
            EcdsaKeyPair::from_private_key_der(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der)
                .map_err(|_| CryptoError::InvalidInput("P-256 scalar out of range"))?;
        Ok(Self {
            alg: SignatureAlgorithm::EcdsaP256Sha256,
            inner: Inner::Ecdsa(k),
        })
    }

    /// The PKCS#8 v1 encoding of the private key.
    pub fn to_pkcs8(&self) -> Result<SecretBytes, CryptoError> {
        let doc = match &self.inner {
            Inner::Ecdsa(k) => k.to_pkcs8v1(),
            Inner::Ed25519(k) => k.to_pkcs8v1(),
        }
        .map_err(|_| CryptoError::Internal("PKCS#8 encoding"))?;
        Ok(SecretBytes::new(doc.as_ref().to_vec()))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.alg
    }

    /// The public key: an uncompressed SEC1 point for ECDSA, 32 bytes for Ed25519.
    pub fn public_key(&self) -> Vec<u8> {
        match &self.inner {
            Inner::Ecdsa(k) => k.public_key().as_ref().to_vec(),
            Inner::Ed25519(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.inner {
            Inner::Ecdsa(k) => k
                .sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CryptoError::Internal("ECDSA sign")),
            Inner::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

/// A fresh RSA key pair from the module (for PS256 token signing): its
/// PKCS#8 v1 private key and its SubjectPublicKeyInfo DER.
pub fn generate_rsa(bits: usize) -> Result<(SecretBytes, Vec<u8>), CryptoError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        _ => {
            return Err(CryptoError::InvalidInput(
                "RSA size must be 2048, 3072 or 4096",
            ));
        }
    };
    let k = RsaKeyPair::generate(size).map_err(|_| CryptoError::Random)?;
    let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'_> = k
        .as_der()
        .map_err(|_| CryptoError::Internal("RSA PKCS#8"))?;
    let spki: aws_lc_rs::encoding::PublicKeyX509Der<'_> =
        aws_lc_rs::signature::KeyPair::public_key(&k)
            .as_der()
            .map_err(|_| CryptoError::Internal("RSA SPKI"))?;
    Ok((
        SecretBytes::new(pkcs8.as_ref().to_vec()),
        spki.as_ref().to_vec(),
    ))
}

/// Verifies `sig` over `msg` under `public_key`.
pub fn verify_signature(
    alg: SignatureAlgorithm,
    public_key: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), CryptoError> {
    let v: &dyn signature::VerificationAlgorithm = match alg {
        SignatureAlgorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
        SignatureAlgorithm::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
        SignatureAlgorithm::Ed25519 => &signature::ED25519,
    };
    signature::UnparsedPublicKey::new(v, public_key)
        .verify(msg, sig)
        .map_err(|_| CryptoError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_pkcs8_roundtrip() {
        for alg in [
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureAlgorithm::EcdsaP384Sha384,
            SignatureAlgorithm::Ed25519,
        ] {
            let k = SigningKey::generate(alg).unwrap();
            let sig = k.sign(b"checkpoint").unwrap();
            verify_signature(alg, &k.public_key(), b"checkpoint", &sig).unwrap();
            assert_eq!(
                verify_signature(alg, &k.public_key(), b"checkpoinT", &sig),
                Err(CryptoError::BadSignature)
            );
            let k2 = SigningKey::from_pkcs8(alg, &k.to_pkcs8().unwrap()).unwrap();
            assert_eq!(k2.public_key(), k.public_key());
        }
    }

    #[test]
    fn ed25519_from_seed_is_deterministic() {
        // RFC 8032 §7.1 TEST 1: secret key 9d61b1…7f60, public key d75a98…511a.
        let seed: [u8; 32] = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let k = SigningKey::ed25519_from_seed(&crate::secret::SecretKey::from_bytes(seed)).unwrap();
        assert_eq!(
            k.public_key(),
            [
                0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
                0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
                0xf7, 0x07, 0x51, 0x1a,
            ]
        );
        let sig = k.sign(b"").unwrap();
        assert_eq!(
            hex::encode(&sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        verify_signature(SignatureAlgorithm::Ed25519, &k.public_key(), b"", &sig).unwrap();
    }

    #[test]
    fn p256_from_scalar() {
        let d = crate::secret::SecretKey::from_bytes([7u8; 32]);
        let k = SigningKey::ecdsa_p256_from_scalar(&d).unwrap();
        let k2 = SigningKey::ecdsa_p256_from_scalar(&d).unwrap();
        assert_eq!(k.public_key(), k2.public_key());
        let sig = k.sign(b"m").unwrap();
        verify_signature(
            SignatureAlgorithm::EcdsaP256Sha256,
            &k2.public_key(),
            b"m",
            &sig,
        )
        .unwrap();
        // 0 and n-or-more are refused.
        assert!(
            SigningKey::ecdsa_p256_from_scalar(&crate::secret::SecretKey::from_bytes([0; 32]))
                .is_err()
        );
        assert!(
            SigningKey::ecdsa_p256_from_scalar(&crate::secret::SecretKey::from_bytes([0xff; 32]))
                .is_err()
        );
    }
}
