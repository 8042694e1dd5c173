//! The keys behind a record and the per-field ciphertext format.
//!
//! * Every **data subject** (the value of the schema's `subject` field, or
//!   the record itself when there is none) has its own 256-bit key, the
//!   [`SubjectKey`]. It is stored only wrapped, as an envelope under the
//!   collection's key ring, so rotating the ring re-wraps subject keys
//!   without touching a value, and destroying the wrapped key shreds the
//!   subject.
//! * Field values are sealed in the **PVF** format (docs/FORMAT.md §11.3).
//!   Format 2 (written since 2026-12-05) derives one AES-256-GCM key and
//!   a 256-bit commitment per sealing of a record ([`RecordKey`]: KBKDF
//!   from the subject key and a fresh 256-bit nonce, kept in the record as
//!   its `k` member) and seals each field under it with its own counter:
//!
//! ```text
//! "PVF" | ver=0x02 | counter (4) | ciphertext | tag (16)
//! ```
//!
//!   Format 1 (still read) derived a key per value:
//!
//! ```text
//! "PVF" | ver=0x01 | nonce (32) | commitment (32) | ciphertext | tag (16)
//! ```
//!
//!   Either way the GCM associated data binds the header and the context
//!   `collection ‖ record id ‖ field path`, so a ciphertext copied to
//!   another record or field fails.
//! * Tokens are FF1 under a key derived from the subject key and the field
//!   path, so they too die with the subject.
//! * Blind indexes and subject handles are HMAC-SHA-256 under keys derived
//!   from the collection's index ring ([`IndexKeys`]).

use super::{RecordError, encode_parts};
use crate::crypto::{self, AEAD_TAG_LEN, Aes256GcmKey, Ff1, HmacAlgorithm, HmacKey};
use crate::envelope;
use crate::keys::{self, DerivedKey, KeyDeriver, KeyRingName, KeyUse, KeyVersion};
use crate::secret::SecretKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Magic bytes of a sealed field.
pub const FIELD_MAGIC: &[u8; 3] = b"PVF";
/// Format version of a field sealed under its own derived key (read only).
pub const FIELD_VERSION: u8 = 1;
/// Format version of a field sealed under its record's [`RecordKey`].
pub const FIELD_VERSION_RECORD_KEY: u8 = 2;
const FIELD_LABEL: &[u8] = b"phivault field v1";
const RECORD_KEY_LABEL: &[u8] = b"phivault record key v2";
const RECORD_KEY_MAGIC: &[u8; 4] = b"PVK\x02";
/// A record key's stored header: nonce (32) ‖ commitment (32).
pub const RECORD_KEY_HEADER_LEN: usize = NONCE_LEN + keys::COMMITMENT_LEN;
const V2_HEADER_LEN: usize = 8;
const TOKEN_LABEL: &[u8] = b"phivault token v1";
const INDEX_LABEL: &[u8] = b"phivault blind index v1";
const HANDLE_LABEL: &[u8] = b"phivault subject handle v1";
const WRAP_CONTEXT: &[u8] = b"phivault subject key v1";
const NONCE_LEN: usize = keys::MESSAGE_NONCE_LEN;
const HEADER_LEN: usize = 4 + NONCE_LEN + keys::COMMITMENT_LEN;

/// A data subject's key. Zeroized on drop; never printed.
///
/// It also keeps the keys derived from it that every read and write of
/// the subject's records needs again — the record MAC key and the FF1 key
/// of each token field — so that a subject key held in the server's cache
/// runs those derivations once, not once per record (two KBKDFs and an AES
/// key schedule per read). They live and die with it. The MAC key is kept
/// as its 32 bytes, not as the module's expanded HMAC state (1.2 KB), so a
/// cache of 100 000 subject keys stays small.
pub struct SubjectKey {
    key: SecretKey,
    mac: OnceLock<(String, SecretKey)>,
    ff1: Mutex<Vec<Ff1Memo>>,
}

/// An FF1 key derived from a subject key: (collection, field path, radix).
type Ff1Memo = (String, String, u32, Arc<Ff1>);

impl core::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SubjectKey(<redacted>)")
    }
}

impl SubjectKey {
    /// A fresh key from the module's DRBG.
    pub fn generate() -> Result<Self, RecordError> {
        Ok(Self::from_secret(crypto::generate_key()?))
    }

    /// Wraps this key as an envelope under the collection ring's primary
    /// version, bound to the collection and the subject handle.
    pub fn wrap(
        &self,
        keys: &dyn KeyDeriver,
        ring: &KeyRingName,
        collection: &str,
        handle: &[u8],
    ) -> Result<Vec<u8>, RecordError> {
        let ctx = encode_parts(&[WRAP_CONTEXT, collection.as_bytes(), handle]);
        Ok(envelope::encrypt(
            keys,
            ring,
            &ctx,
            self.key.expose_secret(),
        )?)
    }

    /// Unwraps [`Self::wrap`]'s output.
    pub fn unwrap(
        keys: &dyn KeyDeriver,
        wrapped: &[u8],
        collection: &str,
        handle: &[u8],
    ) -> Result<Self, RecordError> {
        let ctx = encode_parts(&[WRAP_CONTEXT, collection.as_bytes(), handle]);
        let mut raw = envelope::decrypt(keys, wrapped, &ctx)?;
        let key = SecretKey::from_slice(&raw).ok_or(RecordError::Corrupt("subject key length"));
        zeroize::Zeroize::zeroize(&mut raw);
        Ok(Self::from_secret(key?))
    }

    /// Seals one field value in format 1 (no longer written; kept so the
    /// tests can make format-1 values for the reader).
    #[cfg(test)]
    pub(crate) fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, RecordError> {
        let nonce: [u8; NONCE_LEN] = crypto::random_array()?;
        self.seal_with_nonce(nonce, context, plaintext)
    }

    #[cfg(test)]
    fn seal_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        context: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + AEAD_TAG_LEN);
        out.extend_from_slice(FIELD_MAGIC);
        out.push(FIELD_VERSION);
        out.extend_from_slice(&nonce);
        let dk = DerivedKey::derive(&self.key, &keys::fixed_info(FIELD_LABEL, &out))?;
        out.extend_from_slice(&dk.commitment);
        let mut aad = Vec::with_capacity(HEADER_LEN + context.len());
        aad.extend_from_slice(&out);
        aad.extend_from_slice(context);
        out.extend_from_slice(plaintext);
        let tag =
            Aes256GcmKey::new(&dk.key)?.seal_in_place([0; 12], &aad, &mut out[HEADER_LEN..])?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens a sealed field of format 1. Every failure (wrong key, wrong context,
    /// modified bytes, bad framing) is the same `None`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < HEADER_LEN + AEAD_TAG_LEN
            || &sealed[..3] != FIELD_MAGIC
            || sealed[3] != FIELD_VERSION
        {
            return None;
        }
        let dk = DerivedKey::derive(
            &self.key,
            &keys::fixed_info(FIELD_LABEL, &sealed[..4 + NONCE_LEN]),
        )
        .ok()?;
        if !crypto::constant_time_eq(&dk.commitment, &sealed[4 + NONCE_LEN..HEADER_LEN]) {
            return None;
        }
        let mut aad = Vec::with_capacity(HEADER_LEN + context.len());
        aad.extend_from_slice(&sealed[..HEADER_LEN]);
        aad.extend_from_slice(context);
        let key = Aes256GcmKey::new(&dk.key).ok()?;
        open_detached(&key, [0; 12], &aad, &sealed[HEADER_LEN..])
    }

    pub(crate) fn from_secret(key: SecretKey) -> Self {
        Self {
            key,
            mac: OnceLock::new(),
            ff1: Mutex::new(Vec::new()),
        }
    }

    /// The record MAC key of this subject's records in `collection`
    /// (docs/FORMAT.md §11.3): `derive` runs on first use (and for another
    /// collection than the one kept).
    pub(crate) fn mac_key(
        &self,
        collection: &str,
        derive: impl Fn(&SecretKey) -> Result<SecretKey, RecordError>,
    ) -> Result<HmacKey, RecordError> {
        let expand = |k: &SecretKey| HmacKey::new(HmacAlgorithm::Sha256, k.expose_secret());
        match self.mac.get() {
            Some((c, k)) if c == collection => Ok(expand(k)),
            Some(_) => Ok(expand(&derive(&self.key)?)),
            None => {
                let k = derive(&self.key)?;
                let out = expand(&k);
                // Another thread may have kept one meanwhile: the same key.
                let _ = self.mac.set((collection.to_owned(), k));
                Ok(out)
            }
        }
    }

    /// The FF1 key for one token field of this subject.
    pub fn ff1(&self, collection: &str, field: &str, radix: u32) -> Result<Arc<Ff1>, RecordError> {
        let mut memo = self.ff1.lock().expect("lock");
        if let Some((.., f)) = memo
            .iter()
            .find(|(c, p, r, _)| c == collection && p == field && *r == radix)
        {
            return Ok(f.clone());
        }
        let info = keys::fixed_info(
            TOKEN_LABEL,
            &encode_parts(&[collection.as_bytes(), field.as_bytes()]),
        );
        let dk = DerivedKey::derive(&self.key, &info)?;
        let f = Arc::new(Ff1::new(dk.key.expose_secret(), radix)?);
        // A schema has a handful of token fields; the bound only guards
        // against a caller that varies them without end.
        if memo.len() >= 16 {
            memo.clear();
        }
        memo.push((collection.to_owned(), field.to_owned(), radix, f.clone()));
        Ok(f)
    }
}

/// Opens `ciphertext ‖ tag` (the caller checked it holds a tag) into a
/// fresh buffer; on failure the buffer, which may hold unauthenticated
/// plaintext, is zeroized and the answer is `None` (both field formats).
fn open_detached(
    key: &Aes256GcmKey,
    nonce: [u8; 12],
    aad: &[u8],
    body_and_tag: &[u8],
) -> Option<Vec<u8>> {
    let (body, tag) = body_and_tag.split_at(body_and_tag.len() - AEAD_TAG_LEN);
    let mut buf = body.to_vec();
    match key.open_in_place(nonce, aad, tag, &mut buf) {
        Ok(()) => Some(buf),
        Err(_) => {
            zeroize::Zeroize::zeroize(&mut buf);
            None
        }
    }
}

/// The key one sealing of a record seals its fields under (field format
/// 2): `(key, commitment) = KBKDF(subject key, "phivault record key v2",
/// "PVK" ‖ 0x02 ‖ nonce)`. One derivation per record instead of one per
/// field; each field gets its own GCM nonce (a counter), and the key is
/// never used for another sealing (a fresh nonce each time).
pub struct RecordKey {
    key: Aes256GcmKey,
    header: [u8; RECORD_KEY_HEADER_LEN],
}

impl core::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RecordKey(<redacted>)")
    }
}

impl SubjectKey {
    /// A fresh record key (a new nonce from the DRBG).
    pub fn record_key(&self) -> Result<RecordKey, RecordError> {
        let nonce: [u8; NONCE_LEN] = crypto::random_array()?;
        let dk = self.derive_record_key(&nonce)?;
        let mut header = [0u8; RECORD_KEY_HEADER_LEN];
        header[..NONCE_LEN].copy_from_slice(&nonce);
        header[NONCE_LEN..].copy_from_slice(&dk.commitment);
        Ok(RecordKey {
            key: Aes256GcmKey::new(&dk.key)?,
            header,
        })
    }

    /// The record key of a stored header, if its commitment matches this
    /// subject key. Every failure is the same `None`.
    pub fn open_record_key(&self, header: &[u8]) -> Option<RecordKey> {
        let header: [u8; RECORD_KEY_HEADER_LEN] = header.try_into().ok()?;
        let dk = self.derive_record_key(&header[..NONCE_LEN]).ok()?;
        if !crypto::constant_time_eq(&dk.commitment, &header[NONCE_LEN..]) {
            return None;
        }
        Some(RecordKey {
            key: Aes256GcmKey::new(&dk.key).ok()?,
            header,
        })
    }

    fn derive_record_key(&self, nonce: &[u8]) -> Result<DerivedKey, RecordError> {
        let mut ctx = Vec::with_capacity(RECORD_KEY_MAGIC.len() + NONCE_LEN);
        ctx.extend_from_slice(RECORD_KEY_MAGIC);
        ctx.extend_from_slice(nonce);
        Ok(DerivedKey::derive(
            &self.key,
            &keys::fixed_info(RECORD_KEY_LABEL, &ctx),
        )?)
    }
}

impl RecordKey {
    /// The header the record stores (base64 in its `k` member).
    pub fn header(&self) -> &[u8; RECORD_KEY_HEADER_LEN] {
        &self.header
    }

    fn aad(&self, field_header: &[u8], context: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(V2_HEADER_LEN + RECORD_KEY_HEADER_LEN + context.len());
        aad.extend_from_slice(field_header);
        aad.extend_from_slice(&self.header);
        aad.extend_from_slice(context);
        aad
    }

    /// Seals one field value with GCM nonce `counter` (unique within this
    /// record key: the caller counts its fields).
    pub fn seal(
        &self,
        counter: u32,
        context: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(V2_HEADER_LEN + plaintext.len() + AEAD_TAG_LEN);
        out.extend_from_slice(FIELD_MAGIC);
        out.push(FIELD_VERSION_RECORD_KEY);
        out.extend_from_slice(&counter.to_be_bytes());
        let aad = self.aad(&out, context);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place(Self::nonce(counter), &aad, &mut out[V2_HEADER_LEN..])?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens a format-2 field. Every failure is the same `None`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < V2_HEADER_LEN + AEAD_TAG_LEN
            || &sealed[..3] != FIELD_MAGIC
            || sealed[3] != FIELD_VERSION_RECORD_KEY
        {
            return None;
        }
        let counter = u32::from_be_bytes(sealed[4..8].try_into().ok()?);
        let aad = self.aad(&sealed[..V2_HEADER_LEN], context);
        open_detached(
            &self.key,
            Self::nonce(counter),
            &aad,
            &sealed[V2_HEADER_LEN..],
        )
    }

    fn nonce(counter: u32) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[8..].copy_from_slice(&counter.to_be_bytes());
        n
    }
}

/// The HMAC keys of one collection's blind indexes and subject handles,
/// derived from the collection's index ring at a fixed version.
pub struct IndexKeys {
    handle: HmacKey,
    by_index: HashMap<String, HmacKey>,
}

impl core::fmt::Debug for IndexKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IndexKeys(<redacted>)")
    }
}

fn derive_hmac(
    keys: &dyn KeyDeriver,
    ring: &KeyRingName,
    version: KeyVersion,
    label: &[u8],
    parts: &[&[u8]],
) -> Result<HmacKey, RecordError> {
    let dk = keys
        .derive(
            ring,
            version,
            KeyUse::Decrypt,
            &keys::fixed_info(label, &encode_parts(parts)),
        )
        .map_err(envelope::EnvelopeError::from)?;
    Ok(HmacKey::new(HmacAlgorithm::Sha256, dk.key.expose_secret()))
}

impl IndexKeys {
    /// Derives the keys for `collection`'s indexes from `ring` at `version`.
    pub fn derive<'a>(
        keys: &dyn KeyDeriver,
        ring: &KeyRingName,
        version: KeyVersion,
        collection: &str,
        index_names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, RecordError> {
        let c = collection.as_bytes();
        let handle = derive_hmac(keys, ring, version, HANDLE_LABEL, &[c])?;
        let mut by_index = HashMap::new();
        for n in index_names {
            by_index.insert(
                n.to_owned(),
                derive_hmac(keys, ring, version, INDEX_LABEL, &[c, n.as_bytes()])?,
            );
        }
        Ok(Self { handle, by_index })
    }

    /// The subject handle: HMAC of the normalized subject value (full
    /// length; it is a lookup key, not a search index).
    pub fn subject_handle(&self, subject: &str) -> Vec<u8> {
        self.handle.sign(&[b"s", subject.as_bytes()])
    }

    /// The handle of a record that is its own subject (the schema names no
    /// subject field): a different domain from subject values.
    pub fn record_handle(&self, id: &str) -> Vec<u8> {
        self.handle.sign(&[b"r", id.as_bytes()])
    }

    /// A blind index value: HMAC over the length-prefixed normalized
    /// members, truncated to `bits` (trailing bits of the last byte zero).
    pub fn blind_index(&self, index: &str, bits: u32, members: &[&str]) -> Option<Vec<u8>> {
        let parts: Vec<&[u8]> = members.iter().map(|m| m.as_bytes()).collect();
        let mut tag = self.by_index.get(index)?.sign(&[&encode_parts(&parts)]);
        let bytes = (bits as usize).div_ceil(8).min(tag.len());
        tag.truncate(bytes);
        let spare = bytes * 8 - bits.min(256) as usize;
        if let (Some(last), true) = (tag.last_mut(), spare > 0) {
            *last &= 0xffu8 << spare;
        }
        Some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::StaticKeys;

    #[test]
    fn field_seal_binds_context_and_rejects_tampering() {
        let k = SubjectKey::generate().unwrap();
        let ct = k.seal(b"ctx-a", b"value").unwrap();
        assert_eq!(k.open(b"ctx-a", &ct).unwrap(), b"value");
        assert!(k.open(b"ctx-b", &ct).is_none());
        let other = SubjectKey::generate().unwrap();
        assert!(other.open(b"ctx-a", &ct).is_none());
        for i in 0..ct.len() {
            let mut t = ct.clone();
            t[i] ^= 1;
            assert!(k.open(b"ctx-a", &t).is_none(), "byte {i}");
        }
        assert!(k.open(b"ctx-a", &ct[..ct.len() - 1]).is_none());
        assert!(k.open(b"ctx-a", b"").is_none());
    }

    #[test]
    fn record_key_fields_bind_context_key_and_counter() {
        let k = SubjectKey::generate().unwrap();
        let rk = k.record_key().unwrap();
        let ct = rk.seal(3, b"ctx-a", b"value").unwrap();
        assert_eq!(&ct[..8], b"PVF\x02\0\0\0\x03");
        assert_eq!(rk.open(b"ctx-a", &ct).unwrap(), b"value");
        assert!(rk.open(b"ctx-b", &ct).is_none());
        // The same subject key re-derives the record key from its header.
        let again = k.open_record_key(rk.header()).unwrap();
        assert_eq!(again.open(b"ctx-a", &ct).unwrap(), b"value");
        // Another sealing's record key, or another subject's, opens nothing.
        assert!(k.record_key().unwrap().open(b"ctx-a", &ct).is_none());
        let other = SubjectKey::generate().unwrap();
        assert!(other.open_record_key(rk.header()).is_none());
        for i in 0..rk.header().len() {
            let mut h = *rk.header();
            h[i] ^= 1;
            assert!(k.open_record_key(&h).is_none(), "header byte {i}");
        }
        assert!(k.open_record_key(&rk.header()[..63]).is_none());
        for i in 0..ct.len() {
            let mut t = ct.clone();
            t[i] ^= 1;
            assert!(rk.open(b"ctx-a", &t).is_none(), "byte {i}");
        }
        assert!(rk.open(b"ctx-a", &ct[..ct.len() - 1]).is_none());
        assert!(rk.open(b"ctx-a", b"").is_none());
        // A format-1 value is not opened by a record key, nor the reverse.
        assert!(
            rk.open(b"ctx-a", &k.seal(b"ctx-a", b"value").unwrap())
                .is_none()
        );
        assert!(k.open(b"ctx-a", &ct).is_none());
    }

    #[test]
    fn wrap_is_bound_to_collection_and_handle() {
        let ks = StaticKeys::random("records/p");
        let ring = KeyRingName::parse("records/p").unwrap();
        let k = SubjectKey::generate().unwrap();
        let w = k.wrap(&ks, &ring, "p", b"h1").unwrap();
        let back = SubjectKey::unwrap(&ks, &w, "p", b"h1").unwrap();
        let ct = k.seal(b"c", b"v").unwrap();
        assert_eq!(back.open(b"c", &ct).unwrap(), b"v");
        assert!(SubjectKey::unwrap(&ks, &w, "p", b"h2").is_err());
        assert!(SubjectKey::unwrap(&ks, &w, "q", b"h1").is_err());
    }

    #[test]
    fn blind_index_truncates_to_bits() {
        let ks = StaticKeys::random("records-index/p");
        let ring = KeyRingName::parse("records-index/p").unwrap();
        let ix = IndexKeys::derive(&ks, &ring, KeyVersion::MIN, "p", ["a"]).unwrap();
        let v = ix.blind_index("a", 18, &["x"]).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[2] & 0x3f, 0);
        assert_eq!(v, ix.blind_index("a", 18, &["x"]).unwrap());
        // Length prefixes: ("ab","c") and ("a","bc") differ.
        assert_ne!(
            ix.blind_index("a", 256, &["ab", "c"]),
            ix.blind_index("a", 256, &["a", "bc"])
        );
        assert!(ix.blind_index("nope", 8, &["x"]).is_none());
        assert_eq!(ix.subject_handle("s").len(), 32);
    }
}
