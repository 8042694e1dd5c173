//! Key escrow: an encrypted export of key rings under a backup secret that
//! is separate from the unseal key, and its restore into any keystore.
//!
//! The escrow file is JSON (docs/FORMAT.md §Key escrow): public metadata,
//! PBKDF2 parameters, and an AES-256-GCM ciphertext whose associated data
//! is the canonical JSON of that metadata.

use crate::model::Ring;
use crate::store::{Keystore, now};
use crate::{KeystoreError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use phivault_core::crypto::{self, Aes256GcmKey, PBKDF2_MIN_ITERATIONS};
use phivault_core::secret::{SecretBytes, SecretKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The escrow file's public part.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowMeta {
    /// "phivault-key-escrow".
    pub format: String,
    /// 1.
    pub version: u32,
    /// The keystore it came from.
    pub source_keystore: String,
    /// When it was made.
    pub created: String,
    /// Ring names inside (public, so an operator can tell what a file holds).
    pub rings: Vec<String>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// PBKDF2 salt, base64.
    pub salt: String,
    /// GCM nonce, base64.
    pub nonce: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EscrowFile {
    meta: EscrowMeta,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    rings: Vec<PayloadRing>,
}

#[derive(Serialize, Deserialize)]
struct PayloadRing {
    name: String,
    ring: Ring,
    keys: Vec<(u32, String)>,
}

fn key_for(passphrase: &SecretBytes, salt: &[u8], iterations: u32) -> Result<Aes256GcmKey> {
    let k = crypto::pbkdf2_hmac_sha256(passphrase.expose_secret(), salt, iterations)?;
    Ok(Aes256GcmKey::new(&k)?)
}

/// Exports rings (all, or one namespace) under `passphrase`.
pub fn export(ks: &Keystore, passphrase: &SecretBytes, namespace: Option<&str>) -> Result<Vec<u8>> {
    if passphrase.len() < 12 {
        return Err(KeystoreError::Invalid(
            "the backup passphrase must be at least 12 characters".into(),
        ));
    }
    let rings = ks.export(namespace)?;
    let payload = Payload {
        rings: rings
            .into_iter()
            .map(|(name, ring, keys)| PayloadRing {
                name,
                ring,
                keys: keys
                    .into_iter()
                    .map(|(v, k)| (v, B64.encode(k.expose_secret())))
                    .collect(),
            })
            .collect(),
    };
    let names: Vec<String> = payload.rings.iter().map(|r| r.name.clone()).collect();
    let mut plain = Zeroizing::new(serde_json::to_vec(&payload).expect("serializes"));
    for r in payload.rings {
        for (_, mut k) in r.keys {
            zeroize::Zeroize::zeroize(&mut k);
        }
    }
    let salt: [u8; 16] = crypto::random_array()?;
    let nonce: [u8; 12] = crypto::random_array()?;
    let meta = EscrowMeta {
        format: "phivault-key-escrow".into(),
        version: 1,
        source_keystore: ks.body().keystore_id,
        created: now(),
        // The same list as the payload, so the public part can't disagree.
        rings: names,
        iterations: PBKDF2_MIN_ITERATIONS,
        salt: B64.encode(salt),
        nonce: B64.encode(nonce),
    };
    let aad = serde_json::to_vec(&meta).expect("serializes");
    let key = key_for(passphrase, &salt, meta.iterations)?;
    let tag = key.seal_in_place(nonce, &aad, &mut plain)?;
    let mut ct = plain.to_vec();
    ct.extend_from_slice(&tag);
    Ok(serde_json::to_vec_pretty(&EscrowFile {
        meta,
        ciphertext: B64.encode(ct),
    })
    .expect("serializes"))
}

/// Reads only the public metadata of an escrow file.
pub fn inspect(bytes: &[u8]) -> Result<EscrowMeta> {
    let f: EscrowFile = serde_json::from_slice(bytes)
        .map_err(|e| KeystoreError::Corrupt(format!("escrow file: {e}")))?;
    if f.meta.format != "phivault-key-escrow" || f.meta.version != 1 {
        return Err(KeystoreError::Corrupt(
            "not a phivault key escrow file (or a newer version)".into(),
        ));
    }
    Ok(f.meta)
}

/// Restores the rings of an escrow file into `ks`. Refuses rings that exist.
pub fn import(ks: &Keystore, bytes: &[u8], passphrase: &SecretBytes) -> Result<Vec<String>> {
    inspect(bytes)?;
    let f: EscrowFile =
        serde_json::from_slice(bytes).map_err(|e| KeystoreError::Corrupt(e.to_string()))?;
    let salt = B64
        .decode(&f.meta.salt)
        .map_err(|_| KeystoreError::Corrupt("escrow salt".into()))?;
    let nonce: [u8; 12] = B64
        .decode(&f.meta.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(KeystoreError::Corrupt("escrow nonce".into()))?;
    let mut ct = Zeroizing::new(
        B64.decode(&f.ciphertext)
            .map_err(|_| KeystoreError::Corrupt("escrow ciphertext".into()))?,
    );
    if ct.len() < 16
        || f.meta.iterations > crate::seal::MAX_ITERATIONS
        || f.meta.iterations < PBKDF2_MIN_ITERATIONS
    {
        return Err(KeystoreError::Corrupt("escrow ciphertext".into()));
    }
    let aad = serde_json::to_vec(&f.meta).expect("serializes");
    let key = key_for(passphrase, &salt, f.meta.iterations)?;
    let n = ct.len() - 16;
    let (body, tag) = ct.split_at_mut(n);
    key.open_in_place(nonce, &aad, tag, body)
        .map_err(|_| KeystoreError::WrongBackupSecret)?;
    let payload: Payload = serde_json::from_slice(body)
        .map_err(|_| KeystoreError::Corrupt("escrow payload".into()))?;
    let mut rings = Vec::new();
    for r in payload.rings {
        let mut keys = Vec::new();
        for (v, k) in r.keys {
            let raw = Zeroizing::new(
                B64.decode(&k)
                    .map_err(|_| KeystoreError::Corrupt("escrow key".into()))?,
            );
            keys.push((
                v,
                SecretKey::from_slice(&raw).ok_or(KeystoreError::Corrupt("escrow key".into()))?,
            ));
        }
        rings.push((r.name, r.ring, keys));
    }
    ks.import(rings)
}
