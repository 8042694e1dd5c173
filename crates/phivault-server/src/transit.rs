//! Encryption as a service with HashiCorp Vault's transit semantics, over
//! the phivault envelope format. No network I/O: [`crate::api`] maps HTTP
//! to these functions.
//!
//! Transit key `NAME` is keystore ring `transit/NAME`. Ciphertexts are
//! envelope text (`pve:…`, docs/FORMAT.md): the header names the ring and
//! version, carries a 256-bit nonce and a 256-bit key commitment. The
//! envelope context binds Vault's `context` and phivault's
//! `associated_data` (length-prefixed, so neither can shift into the other).
//!
//! HMAC keys are derived per version from the ring key with the SP 800-108
//! KBKDF under a separate label, so a transit key's HMACs and its
//! ciphertexts never share a key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use phivault_core::crypto::{self, HmacAlgorithm, HmacKey};
use phivault_core::envelope::{self, EnvelopeError};
use phivault_core::keys::{self, KeyDeriver, KeyError, KeyRingName, KeyUse, KeyVersion};
use phivault_keystore::model::KeyKind;
use phivault_keystore::{Keystore, KeystoreError, RingConfig, RingInfo};
use serde::Serialize;

/// The keystore namespace of transit keys.
pub const NAMESPACE: &str = "transit";
const CONTEXT_LABEL: &[u8] = b"phivault transit v1";
const HMAC_LABEL: &[u8] = b"phivault transit hmac v1";
const ECDSA_LABEL: &[u8] = b"phivault transit ecdsa-p256 v1";
/// SPKI prefix of an uncompressed P-256 point (id-ecPublicKey, prime256v1).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Largest `bytes` for `random`.
pub const MAX_RANDOM: usize = 1 << 20;

/// Transit failures. `status()` gives the HTTP status; messages never
/// contain plaintext or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransitError {
    /// No such key.
    #[error("encryption key not found: '{0}'")]
    NotFound(String),
    /// Bad request field.
    #[error("{0}")]
    Invalid(String),
    /// Uniform decryption failure.
    #[error(
        "decryption failed: wrong key, context or associated data, or the ciphertext was modified"
    )]
    DecryptionFailed,
    /// The key can't be used this way.
    #[error("{0}")]
    KeyState(String),
    /// Keystore failure.
    #[error("keystore: {0}")]
    Keystore(String),
}

impl TransitError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::Keystore(_) => 500,
            _ => 400,
        }
    }
}

fn ring(name: &str) -> Result<KeyRingName, TransitError> {
    KeyRingName::new(NAMESPACE, name).map_err(|_| {
        TransitError::Invalid(format!(
            "invalid key name '{}': use 1-63 of a-z, 0-9, '_', '.', '-'",
            name.escape_default()
        ))
    })
}

fn from_key(name: &str, e: KeyError) -> TransitError {
    match e {
        KeyError::UnknownRing(_) => TransitError::NotFound(name.to_string()),
        KeyError::Sealed => TransitError::KeyState("the vault is sealed".into()),
        other => TransitError::KeyState(other.to_string()),
    }
}

fn from_ks(name: &str, e: KeystoreError) -> TransitError {
    match e {
        KeystoreError::Key(k) => from_key(name, k),
        KeystoreError::Invalid(m) => TransitError::Invalid(m),
        KeystoreError::RingExists(_) => {
            TransitError::Invalid(format!("key '{name}' already exists"))
        }
        other => TransitError::Keystore(other.to_string()),
    }
}

fn from_env(name: &str, e: EnvelopeError) -> TransitError {
    match e {
        EnvelopeError::Key(k) => from_key(name, k),
        EnvelopeError::DecryptionFailed => TransitError::DecryptionFailed,
        EnvelopeError::Malformed(_) => {
            TransitError::Invalid("invalid ciphertext: not a phivault envelope".into())
        }
        EnvelopeError::UnsupportedVersion(_) | EnvelopeError::UnknownAlgorithm(_) => {
            TransitError::Invalid(e.to_string())
        }
        other => TransitError::Keystore(other.to_string()),
    }
}

/// Decodes a standard-base64 request field.
pub fn b64(field: &str, s: &str) -> Result<Vec<u8>, TransitError> {
    B64.decode(s.trim())
        .map_err(|_| TransitError::Invalid(format!("'{field}' is not valid base64")))
}

/// The envelope context for (Vault context, associated data).
fn envelope_context(context: &[u8], ad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(CONTEXT_LABEL.len() + 9 + context.len() + ad.len());
    v.extend_from_slice(CONTEXT_LABEL);
    v.push(0);
    v.extend_from_slice(&(context.len() as u32).to_be_bytes());
    v.extend_from_slice(context);
    v.extend_from_slice(&(ad.len() as u32).to_be_bytes());
    v.extend_from_slice(ad);
    v
}

/// What binds a ciphertext besides the key.
#[derive(Debug, Default, Clone)]
pub struct Binding {
    /// Vault's `context` (decoded).
    pub context: Vec<u8>,
    /// phivault's `associated_data` (decoded).
    pub associated_data: Vec<u8>,
}

/// Key creation options.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Vault key type; default aes256-gcm96.
    pub key_type: Option<String>,
    /// Auto-rotation period in seconds.
    pub auto_rotate_period_secs: Option<u64>,
    /// Vault's `exportable`: must not be true.
    pub exportable: bool,
    /// Vault's `derived`: convergent/derived keys are not offered.
    pub derived: bool,
}

/// Vault's key description (`GET /v1/transit/keys/NAME` → `data`).
#[derive(Debug, Serialize)]
pub struct KeyDescription {
    /// Name.
    pub name: String,
    /// Vault type.
    #[serde(rename = "type")]
    pub key_type: &'static str,
    /// Version → creation time (Unix seconds), live versions only; for
    /// ecdsa-p256, version → `{name, public_key (PEM), creation_time}`.
    pub keys: serde_json::Value,
    /// Newest version.
    pub latest_version: u32,
    /// Minimum decryption version.
    pub min_decryption_version: u32,
    /// Minimum encryption version (0 = latest).
    pub min_encryption_version: u32,
    /// Whether the key may be deleted.
    pub deletion_allowed: bool,
    /// Always false: keys never leave phivault.
    pub exportable: bool,
    /// Always false.
    pub allow_plaintext_backup: bool,
    /// Always false.
    pub derived: bool,
    /// Whether encrypt works.
    pub supports_encryption: bool,
    /// Whether decrypt works.
    pub supports_decryption: bool,
    /// Always false (derivation is by context binding instead).
    pub supports_derivation: bool,
    /// Whether sign/verify work (ecdsa-p256).
    pub supports_signing: bool,
    /// Auto-rotation period, seconds (Vault serializes a duration in seconds).
    pub auto_rotate_period: u64,
    /// Whether the key is disabled (phivault).
    pub disabled: bool,
    /// Versions that were destroyed (crypto-shredded).
    pub destroyed_versions: Vec<u32>,
    /// Age of the primary version in seconds.
    pub primary_age_seconds: i64,
}

fn unix(ts: &str) -> i64 {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

fn describe(name: &str, r: &RingInfo) -> KeyDescription {
    use phivault_keystore::model::VersionState;
    KeyDescription {
        name: name.to_string(),
        key_type: r.kind.name(),
        keys: r
            .versions
            .iter()
            .filter(|v| v.state == VersionState::Active)
            .map(|v| (v.version.to_string(), serde_json::json!(unix(&v.created))))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        latest_version: r.versions.last().map(|v| v.version).unwrap_or(0),
        min_decryption_version: r.min_decryption_version,
        min_encryption_version: r.min_encryption_version,
        deletion_allowed: r.deletion_allowed,
        exportable: false,
        allow_plaintext_backup: false,
        derived: false,
        supports_encryption: r.kind.encrypts(),
        supports_decryption: r.kind.encrypts(),
        supports_derivation: false,
        supports_signing: r.kind.signs(),
        auto_rotate_period: r.auto_rotate_period_secs,
        disabled: r.disabled,
        destroyed_versions: r
            .versions
            .iter()
            .filter(|v| v.state == VersionState::Destroyed)
            .map(|v| v.version)
            .collect(),
        primary_age_seconds: r.primary_age_secs,
    }
}

/// Parses a Vault duration: seconds as a number, or `30s`, `15m`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Result<u64, TransitError> {
    let s = s.trim();
    let bad = || {
        TransitError::Invalid(format!(
            "bad duration '{}': use e.g. 3600, 90s, 15m, 24h, 30d",
            s.escape_default()
        ))
    };
    let (num, mult) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1),
        Some(b'm') => (&s[..s.len() - 1], 60),
        Some(b'h') => (&s[..s.len() - 1], 3600),
        Some(b'd') => (&s[..s.len() - 1], 86_400),
        Some(_) => (s, 1),
        None => return Err(bad()),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)
}

/// The transit engine over one keystore.
#[derive(Debug, Clone)]
pub struct Transit<'a> {
    ks: &'a Keystore,
}

/// A key checked for encryption, with the envelope algorithm its type uses.
#[derive(Debug, Clone)]
pub struct EncryptingKey {
    /// The ring.
    pub ring: KeyRingName,
    /// aes256-gcm96 → 0x01, aes128-gcm96 → 0x02.
    pub algorithm: envelope::Algorithm,
}

/// One encrypt/rewrap result.
#[derive(Debug, Clone, Serialize)]
pub struct Sealed {
    /// Envelope text.
    pub ciphertext: String,
    /// The version that encrypted it.
    pub key_version: u32,
}

impl<'a> Transit<'a> {
    /// Over an unsealed keystore.
    pub fn new(ks: &'a Keystore) -> Self {
        Self { ks }
    }

    fn info(&self, name: &str) -> Result<RingInfo, TransitError> {
        self.ks.ring(&ring(name)?).map_err(|e| from_ks(name, e))
    }

    /// Creates a key. Like Vault, creating an existing key of the same
    /// type succeeds without change.
    pub fn create(&self, name: &str, o: &CreateOptions) -> Result<(), TransitError> {
        if o.exportable {
            return Err(TransitError::Invalid(
                "exportable keys are not supported: phivault keys never leave the server".into(),
            ));
        }
        if o.derived {
            return Err(TransitError::Invalid(
                "derived keys are not supported; bind data with 'associated_data' or 'context' instead, which every phivault key accepts".into(),
            ));
        }
        let kind = match o.key_type.as_deref() {
            None => KeyKind::Aes256Gcm96,
            Some(t) => KeyKind::parse(t).ok_or_else(|| {
                TransitError::Invalid(format!(
                    "unsupported key type '{}' (supported: aes256-gcm96, aes128-gcm96, hmac, ecdsa-p256)",
                    t.escape_default()
                ))
            })?,
        };
        let r = ring(name)?;
        match self.ks.create_ring_of(&r, 365, kind) {
            Ok(()) => {}
            Err(KeystoreError::RingExists(_)) => {
                let existing = self.info(name)?;
                if existing.kind != kind {
                    return Err(TransitError::Invalid(format!(
                        "key '{name}' exists with type {}",
                        existing.kind.name()
                    )));
                }
                return Ok(());
            }
            Err(e) => return Err(from_ks(name, e)),
        }
        if let Some(p) = o.auto_rotate_period_secs {
            self.config(
                name,
                &RingConfig {
                    auto_rotate_period_secs: Some(p),
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }

    /// Reads a key's description (with public keys for signing keys).
    pub fn read(&self, name: &str) -> Result<KeyDescription, TransitError> {
        let info = self.info(name)?;
        let mut d = describe(name, &info);
        if info.kind.signs() {
            let r = ring(name)?;
            let mut keys = serde_json::Map::new();
            for v in info
                .versions
                .iter()
                .filter(|v| v.state == phivault_keystore::model::VersionState::Active)
            {
                if v.version < info.min_decryption_version {
                    continue;
                }
                let ver = KeyVersion::new(v.version).expect("versions start at 1");
                let k = self.signing_key(&r, name, ver, KeyUse::Decrypt)?;
                let mut spki = P256_SPKI_PREFIX.to_vec();
                spki.extend_from_slice(&k.public_key());
                let b64 = B64.encode(&spki);
                let lines: Vec<&str> = b64
                    .as_bytes()
                    .chunks(64)
                    .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
                    .collect();
                let pem = format!(
                    "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                    lines.join("\n")
                );
                keys.insert(
                    v.version.to_string(),
                    serde_json::json!({ "name": "P-256", "public_key": pem, "creation_time": v.created }),
                );
            }
            d.keys = keys.into();
        }
        Ok(d)
    }

    /// The P-256 key of a signing key's version: the private scalar is
    /// KBKDF(ring key, label, [i]) for the first i in 0..16 that is a valid
    /// scalar (each try fails with probability about 2⁻³²).
    fn signing_key(
        &self,
        r: &KeyRingName,
        name: &str,
        v: KeyVersion,
        usage: KeyUse,
    ) -> Result<crypto::SigningKey, TransitError> {
        let kind = self.ks.ring_kind(r).map_err(|e| from_ks(name, e))?;
        if !kind.signs() {
            return Err(TransitError::Invalid(format!(
                "key '{name}' is of type {} and does not support signing",
                kind.name()
            )));
        }
        for i in 0u8..16 {
            let d = self
                .ks
                .derive(r, v, usage, &keys::fixed_info(ECDSA_LABEL, &[i]))
                .map_err(|e| from_key(name, e))?;
            if let Ok(k) = crypto::SigningKey::ecdsa_p256_from_scalar(&d.key) {
                return Ok(k);
            }
        }
        Err(TransitError::Keystore(
            "no valid P-256 scalar derived".into(),
        ))
    }

    /// Signs `input` (SHA-256 inside ECDSA), as `vault:vN:base64(ASN.1 DER)`.
    pub fn sign(
        &self,
        name: &str,
        hash: &str,
        input: &[u8],
        key_version: Option<u32>,
    ) -> Result<(String, u32), TransitError> {
        if !matches!(hash, "" | "sha2-256") {
            return Err(TransitError::Invalid(
                "ecdsa-p256 keys sign with hash_algorithm sha2-256".into(),
            ));
        }
        let r = ring(name)?;
        let v = self.version(&r, name, key_version)?;
        let k = self.signing_key(&r, name, v, KeyUse::Encrypt)?;
        let sig = k
            .sign(input)
            .map_err(|e| TransitError::Keystore(e.to_string()))?;
        Ok((format!("vault:v{}:{}", v.get(), B64.encode(sig)), v.get()))
    }

    /// Verifies a signature made by [`Self::sign`].
    pub fn verify_signature(
        &self,
        name: &str,
        hash: &str,
        input: &[u8],
        sig: &str,
    ) -> Result<bool, TransitError> {
        if !matches!(hash, "" | "sha2-256") {
            return Err(TransitError::Invalid(
                "ecdsa-p256 keys sign with hash_algorithm sha2-256".into(),
            ));
        }
        let r = ring(name)?;
        let (v, raw) = parse_versioned("signature", sig)?;
        let k = self.signing_key(&r, name, v, KeyUse::Decrypt)?;
        Ok(crypto::verify_signature(
            crypto::SignatureAlgorithm::EcdsaP256Sha256,
            &k.public_key(),
            input,
            &raw,
        )
        .is_ok())
    }

    /// Lists key names.
    pub fn list(&self) -> Result<Vec<String>, TransitError> {
        Ok(self
            .ks
            .list(Some(NAMESPACE))
            .map_err(|e| from_ks("", e))?
            .into_iter()
            .map(|r| {
                r.name
                    .split_once('/')
                    .map(|(_, n)| n.to_string())
                    .unwrap_or(r.name)
            })
            .collect())
    }

    /// Deletes a key (needs `deletion_allowed`).
    pub fn delete(&self, name: &str) -> Result<(), TransitError> {
        self.ks
            .delete_ring(&ring(name)?)
            .map_err(|e| from_ks(name, e))
    }

    /// Applies config.
    pub fn config(&self, name: &str, c: &RingConfig) -> Result<(), TransitError> {
        self.ks
            .configure(&ring(name)?, c)
            .map_err(|e| from_ks(name, e))
    }

    /// Rotates; returns the new version.
    pub fn rotate(&self, name: &str) -> Result<u32, TransitError> {
        self.ks.rotate(&ring(name)?).map_err(|e| from_ks(name, e))
    }

    fn encrypting(&self, name: &str) -> Result<EncryptingKey, TransitError> {
        let r = ring(name)?;
        // The kind check costs a lookup; HMAC keys must not encrypt.
        let kind = self.ks.ring_kind(&r).map_err(|e| from_ks(name, e))?;
        let algorithm = match kind {
            KeyKind::Aes128Gcm96 => envelope::Algorithm::Aes128GcmKbkdfSha256Commit,
            k if k.encrypts() => envelope::Algorithm::Aes256GcmKbkdfSha256Commit,
            k => {
                return Err(TransitError::Invalid(format!(
                    "key '{name}' is of type {} and does not support encryption",
                    k.name()
                )));
            }
        };
        Ok(EncryptingKey { ring: r, algorithm })
    }

    fn version(
        &self,
        r: &KeyRingName,
        name: &str,
        v: Option<u32>,
    ) -> Result<KeyVersion, TransitError> {
        match v.filter(|v| *v != 0) {
            Some(v) => Ok(KeyVersion::new(v).expect("non-zero")),
            None => self.ks.primary_version(r).map_err(|e| from_key(name, e)),
        }
    }

    /// Encrypts one plaintext.
    pub fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        b: &Binding,
        key_version: Option<u32>,
    ) -> Result<Sealed, TransitError> {
        let r = self.encrypting(name)?;
        self.encrypt_ring(&r, name, plaintext, b, key_version)
    }

    /// Encrypts many (one key lookup for all).
    pub fn encrypt_ring(
        &self,
        k: &EncryptingKey,
        name: &str,
        plaintext: &[u8],
        b: &Binding,
        key_version: Option<u32>,
    ) -> Result<Sealed, TransitError> {
        let ctx = envelope_context(&b.context, &b.associated_data);
        // The primary is read, then used: a rotation in between makes the
        // version stale. Read it again (a few times; rotations are rare).
        let mut attempts = 0;
        loop {
            let v = self.version(&k.ring, name, key_version)?;
            match envelope::encrypt_with(self.ks, k.algorithm, &k.ring, v, &ctx, plaintext) {
                Ok(ct) => {
                    return Ok(Sealed {
                        ciphertext: envelope::to_text(&ct),
                        key_version: v.get(),
                    });
                }
                Err(EnvelopeError::Key(KeyError::NotPrimary(..)))
                    if key_version.is_none() && attempts < 3 =>
                {
                    attempts += 1;
                }
                Err(e) => return Err(from_env(name, e)),
            }
        }
    }

    /// The primary version of a ring.
    pub fn primary(&self, r: &KeyRingName, name: &str) -> Result<u32, TransitError> {
        Ok(self.version(r, name, None)?.get())
    }

    /// The checked ring for `name`, for batch encrypt.
    pub fn ring_for_encrypt(&self, name: &str) -> Result<EncryptingKey, TransitError> {
        self.encrypting(name)
    }

    /// Decrypts one ciphertext; returns plaintext.
    pub fn decrypt(
        &self,
        name: &str,
        ciphertext: &str,
        b: &Binding,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, TransitError> {
        let r = ring(name)?;
        let ct = envelope::from_text(ciphertext.trim()).map_err(|_| {
            TransitError::Invalid("invalid ciphertext: not a phivault envelope (pve:…)".into())
        })?;
        let h = envelope::parse_header(&ct).map_err(|e| from_env(name, e))?;
        if h.ring != r {
            return Err(TransitError::Invalid(format!(
                "ciphertext was not encrypted with key '{name}'"
            )));
        }
        let ctx = envelope_context(&b.context, &b.associated_data);
        envelope::decrypt(self.ks, &ct, &ctx)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| from_env(name, e))
    }

    /// Decrypts and re-encrypts under the latest (or given) version. The
    /// binding may change: `from` opens, `to` seals.
    pub fn rewrap(
        &self,
        name: &str,
        ciphertext: &str,
        from: &Binding,
        to: &Binding,
        key_version: Option<u32>,
    ) -> Result<Sealed, TransitError> {
        let pt = self.decrypt(name, ciphertext, from)?;
        self.encrypt(name, &pt, to, key_version)
    }

    /// Generates a data key of `bits` and returns it encrypted (and, if
    /// asked, in plaintext).
    pub fn datakey(
        &self,
        name: &str,
        bits: u32,
        b: &Binding,
    ) -> Result<(zeroize::Zeroizing<Vec<u8>>, Sealed), TransitError> {
        if !matches!(bits, 128 | 256 | 512) {
            return Err(TransitError::Invalid("bits must be 128, 256 or 512".into()));
        }
        let mut key = zeroize::Zeroizing::new(vec![0u8; bits as usize / 8]);
        crypto::fill_random(&mut key).map_err(|e| TransitError::Keystore(e.to_string()))?;
        let sealed = self.encrypt(name, &key, b, None)?;
        Ok((key, sealed))
    }

    fn hmac_key(
        &self,
        r: &KeyRingName,
        name: &str,
        v: KeyVersion,
        usage: KeyUse,
        alg: HmacAlgorithm,
    ) -> Result<HmacKey, TransitError> {
        let d = self
            .ks
            .derive(r, v, usage, &keys::fixed_info(HMAC_LABEL, b""))
            .map_err(|e| from_key(name, e))?;
        Ok(HmacKey::new(alg, d.key.expose_secret()))
    }

    /// HMAC of `input`, as `vault:vN:base64`.
    pub fn hmac(
        &self,
        name: &str,
        alg: &str,
        input: &[u8],
        key_version: Option<u32>,
    ) -> Result<String, TransitError> {
        let alg = hmac_alg(alg)?;
        let r = ring(name)?;
        let v = self.version(&r, name, key_version)?;
        let k = self.hmac_key(&r, name, v, KeyUse::Encrypt, alg)?;
        Ok(format!(
            "vault:v{}:{}",
            v.get(),
            B64.encode(k.sign(&[input]))
        ))
    }

    /// Verifies an HMAC made by [`Self::hmac`].
    pub fn verify_hmac(
        &self,
        name: &str,
        alg: &str,
        input: &[u8],
        mac: &str,
    ) -> Result<bool, TransitError> {
        let alg = hmac_alg(alg)?;
        let r = ring(name)?;
        let (v, tag) = parse_versioned("hmac", mac)?;
        let k = self.hmac_key(&r, name, v, KeyUse::Decrypt, alg)?;
        Ok(k.verify(&[input], &tag).is_ok())
    }
}

/// Parses `vault:vN:base64` (HMACs and signatures).
fn parse_versioned(field: &str, s: &str) -> Result<(KeyVersion, Vec<u8>), TransitError> {
    let bad = || TransitError::Invalid(format!("invalid {field}: expected vault:vN:base64"));
    let rest = s.strip_prefix("vault:v").ok_or_else(bad)?;
    let (v, b) = rest.split_once(':').ok_or_else(bad)?;
    let v = v
        .parse::<u32>()
        .ok()
        .and_then(KeyVersion::new)
        .ok_or_else(bad)?;
    Ok((v, B64.decode(b).map_err(|_| bad())?))
}

fn hmac_alg(s: &str) -> Result<HmacAlgorithm, TransitError> {
    match s {
        "" | "sha2-256" => Ok(HmacAlgorithm::Sha256),
        "sha2-384" => Ok(HmacAlgorithm::Sha384),
        "sha2-512" => Ok(HmacAlgorithm::Sha512),
        other => Err(TransitError::Invalid(format!(
            "unsupported hash algorithm '{}' (supported: sha2-256, sha2-384, sha2-512)",
            other.escape_default()
        ))),
    }
}

/// Random bytes from the module's DRBG, as base64 or hex.
pub fn random(bytes: usize, format: &str) -> Result<String, TransitError> {
    if bytes == 0 || bytes > MAX_RANDOM {
        return Err(TransitError::Invalid(format!(
            "bytes must be 1..={MAX_RANDOM}"
        )));
    }
    let mut b = vec![0u8; bytes];
    crypto::fill_random(&mut b).map_err(|e| TransitError::Keystore(e.to_string()))?;
    match format {
        "" | "base64" => Ok(B64.encode(&b)),
        "hex" => Ok(hex::encode(&b)),
        other => Err(TransitError::Invalid(format!(
            "unsupported format '{}' (base64 or hex)",
            other.escape_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks() -> (tempfile::TempDir, Keystore) {
        let d = tempfile::tempdir().unwrap();
        phivault_keystore::store::init(d.path(), phivault_keystore::InitMethod::Dev).unwrap();
        let k = Keystore::open_dev(d.path()).unwrap();
        (d, k)
    }

    #[test]
    fn encrypt_decrypt_bindings_and_rotation() {
        let (_d, k) = ks();
        let t = Transit::new(&k);
        t.create("billing", &CreateOptions::default()).unwrap();
        t.create("billing", &CreateOptions::default()).unwrap();
        let b = Binding {
            context: b"ctx".to_vec(),
            associated_data: b"record-1".to_vec(),
        };
        let s = t.encrypt("billing", b"4111 1111", &b, None).unwrap();
        assert_eq!(s.key_version, 1);
        assert_eq!(
            &t.decrypt("billing", &s.ciphertext, &b).unwrap()[..],
            b"4111 1111"
        );
        // Associated data and context are bound, and cannot trade bytes.
        let shifted = Binding {
            context: b"ctxr".to_vec(),
            associated_data: b"ecord-1".to_vec(),
        };
        assert!(matches!(
            t.decrypt("billing", &s.ciphertext, &shifted),
            Err(TransitError::DecryptionFailed)
        ));
        assert!(matches!(
            t.decrypt("billing", &s.ciphertext, &Binding::default()),
            Err(TransitError::DecryptionFailed)
        ));
        // Rotation, rewrap, min_decryption_version.
        assert_eq!(t.rotate("billing").unwrap(), 2);
        let r = t.rewrap("billing", &s.ciphertext, &b, &b, None).unwrap();
        assert_eq!(r.key_version, 2);
        t.config(
            "billing",
            &RingConfig {
                min_decryption_version: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(
            t.decrypt("billing", &s.ciphertext, &b),
            Err(TransitError::KeyState(_))
        ));
        assert_eq!(
            &t.decrypt("billing", &r.ciphertext, &b).unwrap()[..],
            b"4111 1111"
        );
        // Another key's ciphertext is refused by name.
        t.create("other", &CreateOptions::default()).unwrap();
        assert!(matches!(
            t.decrypt("other", &r.ciphertext, &b),
            Err(TransitError::Invalid(_))
        ));
        assert!(matches!(
            t.encrypt("nope", b"x", &b, None),
            Err(TransitError::NotFound(_))
        ));
        // Old versions encrypt only at or above min_encryption_version.
        assert!(t.encrypt("billing", b"x", &b, Some(1)).is_err());
        // Delete needs deletion_allowed.
        assert!(t.delete("other").is_err());
        t.config(
            "other",
            &RingConfig {
                deletion_allowed: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
        t.delete("other").unwrap();
        assert_eq!(t.list().unwrap(), ["billing"]);
        let d = t.read("billing").unwrap();
        assert_eq!(d.latest_version, 2);
        assert_eq!(d.min_decryption_version, 2);
    }

    #[test]
    fn aes128_keys_use_envelope_algorithm_2() {
        let (_d, k) = ks();
        let t = Transit::new(&k);
        t.create(
            "small",
            &CreateOptions {
                key_type: Some("aes128-gcm96".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let s = t.encrypt("small", b"x", &Binding::default(), None).unwrap();
        let ct = envelope::from_text(&s.ciphertext).unwrap();
        assert_eq!(envelope::parse_header(&ct).unwrap().algorithm.id(), 2);
        assert_eq!(
            &t.decrypt("small", &s.ciphertext, &Binding::default())
                .unwrap()[..],
            b"x"
        );
        assert_eq!(t.read("small").unwrap().key_type, "aes128-gcm96");
    }

    #[test]
    fn ecdsa_sign_verify_and_public_key() {
        let (_d, k) = ks();
        let t = Transit::new(&k);
        t.create(
            "signer",
            &CreateOptions {
                key_type: Some("ecdsa-p256".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            t.encrypt("signer", b"x", &Binding::default(), None)
                .is_err()
        );
        let (sig, v) = t.sign("signer", "", b"claim 42", None).unwrap();
        assert_eq!(v, 1);
        assert!(
            t.verify_signature("signer", "sha2-256", b"claim 42", &sig)
                .unwrap()
        );
        assert!(!t.verify_signature("signer", "", b"claim 43", &sig).unwrap());
        assert!(t.sign("signer", "sha2-512", b"x", None).is_err());
        let d = t.read("signer").unwrap();
        assert!(d.supports_signing && !d.supports_encryption);
        let pem = d.keys["1"]["public_key"].as_str().unwrap().to_string();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        // Rotation: the old signature still verifies; the new key differs.
        t.rotate("signer").unwrap();
        assert!(t.verify_signature("signer", "", b"claim 42", &sig).unwrap());
        let d = t.read("signer").unwrap();
        assert_ne!(d.keys["1"]["public_key"], d.keys["2"]["public_key"]);
        // Signing with an AES key is refused.
        t.create("aes", &CreateOptions::default()).unwrap();
        assert!(t.sign("aes", "", b"x", None).is_err());
    }

    #[test]
    fn hmac_and_types() {
        let (_d, k) = ks();
        let t = Transit::new(&k);
        t.create(
            "mac",
            &CreateOptions {
                key_type: Some("hmac".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(t.encrypt("mac", b"x", &Binding::default(), None).is_err());
        let m = t.hmac("mac", "sha2-256", b"hello", None).unwrap();
        assert!(m.starts_with("vault:v1:"));
        assert!(t.verify_hmac("mac", "sha2-256", b"hello", &m).unwrap());
        assert!(!t.verify_hmac("mac", "sha2-256", b"hellO", &m).unwrap());
        assert!(!t.verify_hmac("mac", "sha2-384", b"hello", &m).unwrap());
        assert!(
            t.create(
                "x",
                &CreateOptions {
                    key_type: Some("rsa-2048".into()),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            t.create(
                "x",
                &CreateOptions {
                    exportable: true,
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert_eq!(parse_duration("24h").unwrap(), 86_400);
        assert!(parse_duration("h").is_err());
        assert_eq!(random(16, "hex").unwrap().len(), 32);
    }
}
