//! The backup file format (docs/FORMAT.md §13): a whole store in one file,
//! encrypted to an offline **backup key** and signed by the server that
//! wrote it.
//!
//! ```text
//! "PVB" | ver=0x01 | alg=0x01 | signer alg | recipient key id (16)
//!       | ephemeral P-384 point (97) | signer public key | meta len u32be | meta JSON
//! stream (§4) with key source 0x02: K = HKDF-SHA-384(ECDH(ephemeral, recipient), header)
//! signature over SHA-256(everything above) | sig len u16be | "PVBEND"
//! ```
//!
//! The writer holds only the recipient's *public* key, so a running server
//! can write backups that it cannot read. Anyone with the signer's public
//! key can check a backup's integrity ([`verify_integrity`]) without the
//! private key; [`BackupReader`] decrypts it with the private key.
//!
//! Both directions stream: the writer hashes what it writes and the
//! readers hash what they read, holding back only the last 64 KiB + 8 bytes
//! (the longest possible trailer) until the input ends. Decryption follows
//! the stream format's rules (truncation, reordering and appended data all
//! fail; a batch of plaintext is released only after it has authenticated),
//! and the signature is checked before the final batch is released.
//!
//! This module must never put key material in an error or a `Debug` output;
//! the metadata is authenticated but **not encrypted**, so it must hold no
//! PHI and no secrets.

use crate::crypto::{
    self, CryptoError, EcdhP384PrivateKey, EcdhP384PublicKey, P384_POINT_LEN, Sha256,
    SignatureAlgorithm, SigningKey,
};
use crate::secret::SecretKey;
use crate::stream::{self, Opener, Options, Sealer, StreamError};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// Magic bytes at the start of every backup file.
pub const MAGIC: &[u8; 3] = b"PVB";
/// The format version this code writes.
pub const VERSION: u8 = 1;
/// Magic bytes at the very end of every backup file.
pub const FOOTER_MAGIC: &[u8; 6] = b"PVBEND";
/// The longest metadata JSON, in bytes.
pub const MAX_META_LEN: usize = 64 << 10;
/// Length of a recipient key id.
pub const KEY_ID_LEN: usize = 16;

/// Algorithm 0x01: ECDH P-384 + HKDF-SHA-384 → a stream (§4) under
/// AES-256-GCM; SHA-256 digest under the signature.
const ALG_ECDH_P384: u8 = 0x01;
const KDF_LABEL: &[u8] = b"phivault backup v1";
const SIG_LABEL: &[u8] = b"phivault backup signature v1";
/// Footer: signature length u16be ‖ "PVBEND".
const FOOTER_LEN: usize = 2 + FOOTER_MAGIC.len();
/// The longest trailer: what a reader must hold back until the input ends.
const MAX_TRAILER_LEN: usize = u16::MAX as usize + FOOTER_LEN;
/// Bytes 0 … 22: magic, version, algorithm, signer algorithm, key id.
const FIXED_LEN: usize = 6 + KEY_ID_LEN;

/// Errors from writing, verifying and reading backups. None carries key
/// material; key ids and fingerprints are public.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(io::Error),
    /// The input is not a backup file, or breaks its grammar.
    #[error("not a valid phivault backup file: {0}")]
    Malformed(&'static str),
    /// A version or algorithm this build does not know.
    #[error(
        "the backup uses {what} 0x{value:02x}, which this build does not know; upgrade phivault to read it"
    )]
    Unsupported {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: u8,
    },
    /// The file does not end with a footer: cut short, extended, or never finished.
    #[error(
        "the backup file is incomplete: it does not end with a backup footer (it was cut short, had data appended, or its writer never finished); use an intact copy"
    )]
    Incomplete,
    /// The signature does not verify: the file was changed after it was written.
    #[error(
        "the backup's signature does not verify: the file was modified after it was written; do not restore it, use an intact copy"
    )]
    BadSignature,
    /// A valid signature, but by another key than the one expected.
    #[error(
        "the backup was signed by key {found}, not by the expected key {expected}; it was not written by the server you expected, so check where it came from before restoring it"
    )]
    UnexpectedSigner {
        /// Fingerprint of the expected signer key.
        expected: String,
        /// Fingerprint of the key in the backup.
        found: String,
    },
    /// The backup is encrypted to another backup key.
    #[error(
        "the backup was encrypted to backup key {backup}, but the private key given is {given}; use the private key whose id is {backup}"
    )]
    WrongRecipient {
        /// Key id in the backup.
        backup: String,
        /// Key id of the private key given.
        given: String,
    },
    /// Authentication failed: the backup was modified or reordered after
    /// its header named the right key. Uniform on purpose.
    #[error(
        "decryption failed: the backup was modified, reordered or cut; do not restore it, use an intact copy"
    )]
    DecryptionFailed,
    /// The encrypted data ends before its final segment.
    #[error(
        "the backup is truncated: its encrypted data ends before the final segment; use an intact copy"
    )]
    Truncated,
    /// The metadata serializes to more than [`MAX_META_LEN`] bytes.
    #[error("the backup metadata is {0} bytes long; at most 65536 are allowed")]
    MetadataTooLarge(usize),
    /// The signing key's algorithm cannot sign backups.
    #[error("backups are signed with an Ed25519 or ECDSA P-256 key, not {0:?}")]
    UnsupportedSigner(SignatureAlgorithm),
    /// An earlier call on this writer or reader failed; its output is unusable.
    #[error("an earlier error stopped this backup; discard what was written or read")]
    Stopped,
    /// The crypto module failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl From<io::Error> for BackupError {
    /// Unwraps a [`BackupError`] that travelled inside an `io::Error`
    /// (through a `Read` or `Write`); anything else is [`BackupError::Io`].
    fn from(e: io::Error) -> Self {
        if !e.get_ref().is_some_and(|inner| inner.is::<BackupError>()) {
            return BackupError::Io(e);
        }
        let inner = e.into_inner().expect("checked above");
        *inner.downcast::<BackupError>().expect("checked above")
    }
}

impl From<StreamError> for BackupError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Io(e) => e.into(),
            StreamError::Malformed(m) => Self::Malformed(m),
            StreamError::UnsupportedVersion(value) => Self::Unsupported {
                what: "stream format version",
                value,
            },
            StreamError::UnknownAlgorithm(value) => Self::Unsupported {
                what: "stream algorithm id",
                value,
            },
            StreamError::Truncated => Self::Truncated,
            StreamError::Crypto(c) => Self::Crypto(c),
            StreamError::DecryptionFailed | StreamError::Key(_) => Self::DecryptionFailed,
        }
    }
}

/// A `BackupError` carried through `Read`/`Write`.
fn to_io(e: BackupError) -> io::Error {
    match e {
        BackupError::Io(e) => e,
        e => io::Error::new(io::ErrorKind::InvalidData, e),
    }
}

/// What a backup says about itself. Written in the clear (authenticated,
/// not encrypted): never put PHI or secrets here. Serialized as a JSON
/// object; readers ignore members they do not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupMeta {
    /// When the backup started, RFC 3339 UTC, by the writer's clock.
    pub created: String,
    /// Who wrote it: the server's node name or keystore id.
    pub source: String,
    /// What the plaintext holds, e.g. `["records", "subject-keys"]`.
    pub contents: Vec<String>,
}

/// The id of a backup key: the first 16 bytes of SHA-256 of its
/// uncompressed point. Public; shown to tell keys apart.
pub fn key_id(public: &EcdhP384PublicKey) -> [u8; KEY_ID_LEN] {
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&crypto::sha256(public.as_bytes())[..KEY_ID_LEN]);
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A signer key's fingerprint for messages: the first 8 bytes of SHA-256.
fn fingerprint(public_key: &[u8]) -> String {
    hex(&crypto::sha256(public_key)[..8])
}

/// Signer algorithm ids, and the length of their public keys.
fn signer_id(alg: SignatureAlgorithm) -> Option<(u8, usize)> {
    match alg {
        SignatureAlgorithm::Ed25519 => Some((0x01, 32)),
        SignatureAlgorithm::EcdsaP256Sha256 => Some((0x02, 65)),
        _ => None,
    }
}

fn signer_from_id(id: u8) -> Option<(SignatureAlgorithm, usize)> {
    match id {
        0x01 => Some((SignatureAlgorithm::Ed25519, 32)),
        0x02 => Some((SignatureAlgorithm::EcdsaP256Sha256, 65)),
        _ => None,
    }
}

/// What the signature signs: a label, then the SHA-256 of bytes 0 … T.
fn signed_message(digest: &[u8; 32]) -> Vec<u8> {
    [SIG_LABEL, &[0u8], &digest[..]].concat()
}

/// K = HKDF-SHA-384(salt = E ‖ R, IKM = ECDH, info = label ‖ 0x00 ‖ header).
fn backup_key(
    own: &EcdhP384PrivateKey,
    peer: &EcdhP384PublicKey,
    ephemeral: &EcdhP384PublicKey,
    recipient: &EcdhP384PublicKey,
    header: &[u8],
) -> Result<SecretKey, CryptoError> {
    let salt = [&ephemeral.as_bytes()[..], &recipient.as_bytes()[..]].concat();
    let info = [KDF_LABEL, &[0u8], header].concat();
    own.agree_hkdf_sha384(peer, &salt, &info)
}

/// A parsed backup header, with the exact bytes it came from.
#[derive(Clone)]
#[non_exhaustive]
pub struct BackupHeader {
    /// Id of the backup key it is encrypted to ([`key_id`]).
    pub recipient_key_id: [u8; KEY_ID_LEN],
    /// The signer's algorithm.
    pub signer_algorithm: SignatureAlgorithm,
    /// The signer's public key: 32 bytes (Ed25519) or an uncompressed
    /// P-256 point (65 bytes).
    pub signer_public_key: Vec<u8>,
    /// The metadata.
    pub meta: BackupMeta,
    ephemeral: EcdhP384PublicKey,
    bytes: Vec<u8>,
}

impl core::fmt::Debug for BackupHeader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BackupHeader")
            .field("recipient_key_id", &hex(&self.recipient_key_id))
            .field("signer_algorithm", &self.signer_algorithm)
            .field("signer", &fingerprint(&self.signer_public_key))
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl BackupHeader {
    /// The header's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Never true; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

fn read_exact_or(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), BackupError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => BackupError::Malformed(what),
        _ => e.into(),
    })
}

/// Reads and parses a backup header, leaving `r` at the embedded stream.
/// Nothing here is authenticated yet: use it to show what a file claims to
/// be, and [`verify_integrity`] or [`BackupReader`] to trust it.
pub fn read_header(r: &mut impl Read) -> Result<BackupHeader, BackupError> {
    let mut bytes = vec![0u8; FIXED_LEN];
    read_exact_or(r, &mut bytes, "too short for a header")?;
    if &bytes[..3] != MAGIC {
        return Err(BackupError::Malformed("bad magic"));
    }
    if bytes[3] != VERSION {
        return Err(BackupError::Unsupported {
            what: "format version",
            value: bytes[3],
        });
    }
    if bytes[4] != ALG_ECDH_P384 {
        return Err(BackupError::Unsupported {
            what: "algorithm id",
            value: bytes[4],
        });
    }
    let (signer_algorithm, p) = signer_from_id(bytes[5]).ok_or(BackupError::Unsupported {
        what: "signer algorithm",
        value: bytes[5],
    })?;
    let recipient_key_id: [u8; KEY_ID_LEN] = bytes[6..FIXED_LEN].try_into().expect("16 bytes");
    bytes.resize(FIXED_LEN + P384_POINT_LEN + p + 4, 0);
    read_exact_or(r, &mut bytes[FIXED_LEN..], "header truncated")?;
    let ephemeral = EcdhP384PublicKey::from_sec1(&bytes[FIXED_LEN..FIXED_LEN + P384_POINT_LEN])
        .map_err(|_| BackupError::Malformed("the ephemeral key is not a P-384 point"))?;
    let signer_public_key = bytes[FIXED_LEN + P384_POINT_LEN..][..p].to_vec();
    if signer_algorithm == SignatureAlgorithm::EcdsaP256Sha256 && signer_public_key[0] != 0x04 {
        return Err(BackupError::Malformed(
            "the signer key is not an uncompressed P-256 point",
        ));
    }
    let m_at = bytes.len() - 4;
    let m = u32::from_be_bytes(bytes[m_at..].try_into().expect("4 bytes")) as usize;
    if !(2..=MAX_META_LEN).contains(&m) {
        return Err(BackupError::Malformed("metadata length out of range"));
    }
    bytes.resize(m_at + 4 + m, 0);
    read_exact_or(r, &mut bytes[m_at + 4..], "header truncated")?;
    // An object first: serde would also read a struct from a JSON array.
    let meta =
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes[m_at + 4..])
            .ok()
            .and_then(|o| serde_json::from_value(o.into()).ok())
            .ok_or(BackupError::Malformed(
                "the metadata is not the expected JSON object",
            ))?;
    Ok(BackupHeader {
        recipient_key_id,
        signer_algorithm,
        signer_public_key,
        meta,
        ephemeral,
        bytes,
    })
}

fn check_signer(h: &BackupHeader, expected: Option<&[u8]>) -> Result<(), BackupError> {
    match expected {
        Some(e) if e != h.signer_public_key => Err(BackupError::UnexpectedSigner {
            expected: fingerprint(e),
            found: fingerprint(&h.signer_public_key),
        }),
        _ => Ok(()),
    }
}

/// A `Write` that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a backup. Bytes written to it are the plaintext; they are sealed
/// a batch of segments at a time and go to the inner writer as they are.
/// [`BackupWriter::finish`] must be called: without it the file has no
/// final segment and no signature, and every reader rejects it.
pub struct BackupWriter<'a, W: Write> {
    out: Hashing<W>,
    sealer: Option<Sealer<'a>>,
    signer: &'a SigningKey,
}

impl<W: Write> core::fmt::Debug for BackupWriter<'_, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BackupWriter(<redacted>)")
    }
}

impl<'a, W: Write> BackupWriter<'a, W> {
    /// Writes the header for a backup to `recipient`, signed by `signer`
    /// (Ed25519 or ECDSA P-256), with a fresh ephemeral key.
    pub fn new(
        inner: W,
        recipient: &EcdhP384PublicKey,
        signer: &'a SigningKey,
        meta: &BackupMeta,
        opts: Options<'a>,
    ) -> Result<Self, BackupError> {
        let ephemeral = EcdhP384PrivateKey::generate()?;
        let nonce = crypto::random_array()?;
        Self::with_secrets(inner, recipient, signer, meta, opts, ephemeral, nonce)
    }

    /// [`BackupWriter::new`] with a given ephemeral key and stream nonce,
    /// for test vectors only (feature `test-vectors`). Reusing an
    /// ephemeral key with the same header repeats the backup key.
    #[cfg(any(test, feature = "test-vectors"))]
    #[doc(hidden)]
    pub fn with_ephemeral(
        inner: W,
        recipient: &EcdhP384PublicKey,
        signer: &'a SigningKey,
        meta: &BackupMeta,
        opts: Options<'a>,
        ephemeral: EcdhP384PrivateKey,
        nonce: [u8; 32],
    ) -> Result<Self, BackupError> {
        Self::with_secrets(inner, recipient, signer, meta, opts, ephemeral, nonce)
    }

    fn with_secrets(
        inner: W,
        recipient: &EcdhP384PublicKey,
        signer: &'a SigningKey,
        meta: &BackupMeta,
        opts: Options<'a>,
        ephemeral: EcdhP384PrivateKey,
        nonce: [u8; 32],
    ) -> Result<Self, BackupError> {
        let alg = signer.algorithm();
        let (signer_id, _) = signer_id(alg).ok_or(BackupError::UnsupportedSigner(alg))?;
        let meta = serde_json::to_vec(meta).expect("strings serialize");
        if meta.len() > MAX_META_LEN {
            return Err(BackupError::MetadataTooLarge(meta.len()));
        }
        let eph_pub = ephemeral.public_key().clone();
        let mut header = Vec::with_capacity(FIXED_LEN + P384_POINT_LEN + 65 + 4 + meta.len());
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&[VERSION, ALG_ECDH_P384, signer_id]);
        header.extend_from_slice(&key_id(recipient));
        header.extend_from_slice(eph_pub.as_bytes());
        header.extend_from_slice(&signer.public_key());
        header.extend_from_slice(&(meta.len() as u32).to_be_bytes());
        header.extend_from_slice(&meta);
        let key = backup_key(&ephemeral, recipient, &eph_pub, recipient, &header)?;
        drop(ephemeral); // SP 800-56A r3 §5.6.3.3: destroy it once used.
        let mut out = Hashing {
            inner,
            hash: Sha256::new(),
        };
        out.write_all(&header)?;
        let sealer = Sealer::new(&key, nonce, opts, &mut out)?;
        Ok(Self {
            out,
            sealer: Some(sealer),
            signer,
        })
    }

    /// Seals the last segment, appends the signature and the footer, flushes,
    /// and returns the inner writer. The backup is complete only if this
    /// returns `Ok`.
    pub fn finish(mut self) -> Result<W, BackupError> {
        let sealer = self.sealer.take().ok_or(BackupError::Stopped)?;
        sealer.finish(&mut self.out)?;
        let Hashing { mut inner, hash } = self.out;
        let signature = self.signer.sign(&signed_message(&hash.finish()))?;
        let len = u16::try_from(signature.len())
            .ok()
            .filter(|&l| l > 0)
            .ok_or(CryptoError::Internal("signature length"))?;
        inner.write_all(&signature)?;
        inner.write_all(&len.to_be_bytes())?;
        inner.write_all(FOOTER_MAGIC)?;
        inner.flush()?;
        Ok(inner)
    }
}

impl<W: Write> Write for BackupWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let sealer = self
            .sealer
            .as_mut()
            .ok_or_else(|| to_io(BackupError::Stopped))?;
        if let Err(e) = sealer.write(buf, &mut self.out) {
            // A batch may be half written: nothing after it can be valid.
            self.sealer = None;
            return Err(to_io(e.into()));
        }
        Ok(buf.len())
    }

    /// Flushes what has been sealed. Bytes of a batch that is not full yet
    /// stay in memory until more arrive or [`BackupWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A `Read` over a backup file that yields the signed bytes (header and
/// stream) and keeps the trailer. The trailer's start is known only at the
/// end, so the last [`MAX_TRAILER_LEN`] bytes are held back until the input
/// ends. Everything yielded is hashed; at the end the bytes held back before
/// the signature are hashed before any of them is yielded, so the signature
/// can be checked before the last of the plaintext is released.
struct Signed<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Once the input has ended: where the signature starts in `buf`.
    limit: Option<usize>,
    hash: Option<Sha256>,
    signature: Vec<u8>,
    /// Signed bytes yielded so far.
    yielded: u64,
}

impl<R: Read> Signed<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0u8; MAX_TRAILER_LEN + (256 << 10)].into_boxed_slice(),
            start: 0,
            end: 0,
            limit: None,
            hash: Some(Sha256::new()),
            signature: Vec::new(),
            yielded: 0,
        }
    }

    /// At the end of the input: finds the trailer in what was held back.
    fn split_trailer(&mut self) -> Result<(), BackupError> {
        let held = &self.buf[self.start..self.end];
        let Some(rest) = held.strip_suffix(&FOOTER_MAGIC[..]) else {
            return Err(BackupError::Incomplete);
        };
        let Some((rest, len)) = rest.split_last_chunk::<2>() else {
            return Err(BackupError::Incomplete);
        };
        let s = u16::from_be_bytes(*len) as usize;
        if s == 0 || s > rest.len() {
            return Err(BackupError::Malformed(
                "the signature length is out of range",
            ));
        }
        let limit = self.end - FOOTER_LEN - s;
        self.signature = self.buf[limit..self.end - FOOTER_LEN].to_vec();
        if let Some(h) = self.hash.as_mut() {
            h.update(&self.buf[self.start..limit]);
        }
        self.limit = Some(limit);
        Ok(())
    }

    /// Checks the signature once every signed byte has been read; returns
    /// the digest.
    fn check_signature(&mut self, h: &BackupHeader) -> Result<[u8; 32], BackupError> {
        if self.limit != Some(self.start) {
            return Err(BackupError::Stopped); // not at the end: a bug in the caller
        }
        let digest = self.hash.take().ok_or(BackupError::Stopped)?.finish();
        crypto::verify_signature(
            h.signer_algorithm,
            &h.signer_public_key,
            &signed_message(&digest),
            &self.signature,
        )
        .map_err(|_| BackupError::BadSignature)?;
        Ok(digest)
    }

    /// Reads the rest of the signed bytes; returns how many there were.
    fn drain(&mut self) -> Result<u64, BackupError> {
        let mut sink = vec![0u8; 256 << 10];
        let mut n = 0u64;
        loop {
            match self.read(&mut sink) {
                Ok(0) => return Ok(n),
                Ok(k) => n += k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Bytes of the whole file read so far (signed bytes and trailer).
    fn total_len(&self) -> u64 {
        self.yielded + (self.signature.len() + FOOTER_LEN) as u64
    }
}

impl<R: Read> Read for Signed<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let (ready, hashed) = match self.limit {
                Some(limit) => (limit - self.start, true),
                None => (
                    (self.end - self.start).saturating_sub(MAX_TRAILER_LEN),
                    false,
                ),
            };
            if ready > 0 || self.limit.is_some() {
                let n = ready.min(out.len());
                let chunk = &self.buf[self.start..self.start + n];
                if !hashed && let Some(h) = self.hash.as_mut() {
                    h.update(chunk);
                }
                out[..n].copy_from_slice(chunk);
                self.start += n;
                self.yielded += n as u64;
                return Ok(n);
            }
            if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.split_trailer().map_err(to_io)?,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// What a verified backup holds and who wrote it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupInfo {
    /// The header: recipient key id, signer, metadata.
    pub header: BackupHeader,
    /// Length of the whole file.
    pub total_len: u64,
    /// Length of the plaintext.
    pub plaintext_len: u64,
    /// SHA-256 of the signed bytes (everything before the signature).
    pub digest: [u8; 32],
}

/// Checks a backup's integrity without its private key: parses the header,
/// checks the signer (if `expected_signer` is given, its public key must be
/// the one in the header), hashes the whole file and verifies the
/// signature, and checks that the encrypted body is a whole number of
/// segments. Whether the ciphertext decrypts needs the private key:
/// [`verify_full`].
pub fn verify_integrity<R: Read>(
    input: R,
    expected_signer: Option<&[u8]>,
) -> Result<BackupInfo, BackupError> {
    let mut src = Signed::new(input);
    let header = read_header(&mut src)?;
    check_signer(&header, expected_signer)?;
    let stream_header = stream::read_keyed_header(&mut src)?;
    let body = src.drain()?;
    let digest = src.check_signature(&header)?;
    let layout = stream::body_layout(stream_header.segment_exp(), body).map_err(|_| {
        BackupError::Malformed("the encrypted body is not a valid sequence of segments")
    })?;
    Ok(BackupInfo {
        total_len: src.total_len(),
        plaintext_len: layout.plaintext_len,
        digest,
        header,
    })
}

/// Decrypts a backup as it is read. Plaintext is released a batch of
/// segments at a time, only after every segment in the batch has
/// authenticated, and the final batch only after the signature has
/// verified. Any error is final: later reads fail too, and what was read
/// so far must be discarded (as with the stream format). `Ok(0)` means the
/// whole backup decrypted and its signature verified.
pub struct BackupReader<'a, R: Read> {
    opener: Opener<'a, Signed<R>>,
    header: BackupHeader,
    digest: Option<[u8; 32]>,
    plaintext_len: u64,
    failed: bool,
}

impl<R: Read> core::fmt::Debug for BackupReader<'_, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BackupReader(<redacted>)")
    }
}

impl<'a, R: Read> BackupReader<'a, R> {
    /// Reads the header and opens the backup with `key`. If
    /// `expected_signer` is given, the backup must be signed by that public
    /// key. Fails with [`BackupError::WrongRecipient`] if the backup was
    /// encrypted to another key, and [`BackupError::DecryptionFailed`] if
    /// its key commitment does not match.
    pub fn open(
        input: R,
        key: &EcdhP384PrivateKey,
        expected_signer: Option<&[u8]>,
        opts: Options<'a>,
    ) -> Result<Self, BackupError> {
        let mut src = Signed::new(input);
        let header = read_header(&mut src)?;
        check_signer(&header, expected_signer)?;
        let given = key_id(key.public_key());
        if given != header.recipient_key_id {
            return Err(BackupError::WrongRecipient {
                backup: hex(&header.recipient_key_id),
                given: hex(&given),
            });
        }
        let backup_key = backup_key(
            key,
            &header.ephemeral,
            &header.ephemeral,
            key.public_key(),
            &header.bytes,
        )
        .map_err(|_| BackupError::DecryptionFailed)?;
        let stream_header = stream::read_keyed_header(&mut src)?;
        let aead = stream_header.open(&backup_key)?;
        Ok(Self {
            opener: Opener::new(aead, stream_header.segment_exp(), src, opts.pool),
            header,
            digest: None,
            plaintext_len: 0,
            failed: false,
        })
    }

    /// The header as read. The signature that covers it is checked when
    /// the reader reaches the end; until then, trust only what
    /// `expected_signer` was checked against.
    pub fn header(&self) -> &BackupHeader {
        &self.header
    }

    /// After the reader returned `Ok(0)`: what was verified.
    pub fn into_info(mut self) -> Result<BackupInfo, BackupError> {
        let digest = self.digest.ok_or(BackupError::Stopped)?;
        Ok(BackupInfo {
            total_len: self.opener.input_mut().total_len(),
            plaintext_len: self.plaintext_len,
            digest,
            header: self.header,
        })
    }

    fn read_inner(&mut self, out: &mut [u8]) -> Result<usize, BackupError> {
        let more = self.opener.load()?;
        if self.opener.at_final_batch() && self.digest.is_none() {
            self.digest = Some(self.opener.input_mut().check_signature(&self.header)?);
        }
        if !more {
            return Ok(0);
        }
        let n = self.opener.take(out);
        self.plaintext_len += n as u64;
        Ok(n)
    }
}

impl<R: Read> Read for BackupReader<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(to_io(BackupError::Stopped));
        }
        if out.is_empty() {
            return Ok(0);
        }
        self.read_inner(out).map_err(|e| {
            self.failed = true;
            to_io(e)
        })
    }
}

/// Checks a backup fully with its private key: everything
/// [`verify_integrity`] checks, and that every segment decrypts. The
/// plaintext is discarded.
pub fn verify_full<R: Read>(
    input: R,
    key: &EcdhP384PrivateKey,
    expected_signer: Option<&[u8]>,
    opts: Options<'_>,
) -> Result<BackupInfo, BackupError> {
    let mut reader = BackupReader::open(input, key, expected_signer, opts)?;
    let mut sink = vec![0u8; 256 << 10];
    loop {
        match reader.read(&mut sink) {
            Ok(0) => return reader.into_info(),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
