//! C2SP signed notes (<https://c2sp.org/signed-note>) and the
//! tlog-checkpoint body they carry (<https://c2sp.org/tlog-checkpoint>), as
//! implemented by golang.org/x/mod/sumdb/note and the transparency-dev
//! tools, so that any standard witness or monitor can check our log heads.
//!
//! A signed note is a text ending in a newline, a blank line, and signature
//! lines `— <key name> <base64(4-byte key id || signature)>` (U+2014 EM DASH,
//! then a space). The signature covers the text, final newline included.
//!
//! Signature types implemented (C2SP signed-note "Signature types"):
//!
//! * `0x01` Ed25519 (RFC 8032). Key id = `SHA-256(name || 0x0A || 0x01 ||
//!   32-byte public key)[:4]`.
//! * `0x02` ECDSA as used by transparency-dev/witness and Sigstore Rekor,
//!   over NIST P-256 with SHA-256 and ASN.1 DER signatures only (the spec
//!   says SHOULD be P-256; P-384/P-521 are refused). Key id =
//!   `SHA-256(DER SubjectPublicKeyInfo)[:4]`, and the verifier key carries
//!   `0x02 || SPKI`.
//!
//! Parsing is strict and never panics: the note must be UTF-8 (guaranteed
//! by `&str`), contain no control character but newline (so CRLF is
//! refused), end in a newline, have at most 100 signature lines, and every
//! signature line must be well formed even if its key is unknown.
//! Signatures from unknown keys are otherwise ignored, as the spec requires;
//! the first line whose name and key id match the verifier decides.

use super::AuditError;
use super::merkle::Hash;
use crate::crypto::{SignatureAlgorithm, SigningKey, sha256, sha256_concat, verify_signature};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// Starts every signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// golang.org/x/mod/sumdb/note refuses notes with more signatures.
const MAX_SIGNATURES: usize = 100;
const TYPE_ED25519: u8 = 0x01;
const TYPE_ECDSA: u8 = 0x02;
/// c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`: a witness's
/// timestamped statement that it saw the checkpoint consistent.
const TYPE_COSIGNATURE_V1: u8 = 0x04;
/// A cosignature/v1 signature: the 8-byte big-endian timestamp, then the
/// 64-byte Ed25519 signature.
const COSIGNATURE_LEN: usize = 8 + 64;
const ED25519_PUBLIC_KEY_LEN: usize = 32;
/// DER SubjectPublicKeyInfo header for an id-ecPublicKey on prime256v1 with
/// a 65-byte uncompressed point (RFC 5480); the point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P256_POINT_LEN: usize = 65;

/// A transparency log checkpoint: the body of the signed note in which a
/// log publishes its tree head (c2sp.org/tlog-checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `example.com/audit`. Non-empty; should hold
    /// no spaces or `+`.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 9162 tree head at `size`.
    pub root: Hash,
    /// Optional extension lines, each non-empty (their use is not
    /// recommended: monitors can't audit them).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, decimal size and base64 root on one line
    /// each, then the extension lines, each ending in a newline.
    ///
    /// This does not validate the fields; [`NoteSigner::sign_checkpoint`]
    /// does, before it signs.
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a checkpoint note text strictly: at least three lines, each
    /// ending in a newline; a non-blank origin; a decimal size without sign
    /// or leading zeros (except `0`); a root of exactly 32 bytes in padded
    /// standard base64; non-empty extension lines; no control characters.
    ///
    /// Parsing is not trusting: take the body from [`NoteVerifier::verify`]
    /// (or use [`NoteVerifier::open_checkpoint`]), and check `origin`
    /// against the log you expect.
    pub fn parse_body(text: &str) -> Result<Checkpoint, AuditError> {
        let inner = text.strip_suffix('\n').ok_or(AuditError::BadCheckpoint(
            "the text must end with a newline",
        ))?;
        if has_control(text) {
            return Err(AuditError::BadCheckpoint(
                "the text contains a control character other than newline",
            ));
        }
        let mut lines = inner.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.trim().is_empty() {
            return Err(AuditError::BadCheckpoint("the origin line is empty"));
        }
        let size = parse_size(
            lines
                .next()
                .ok_or(AuditError::BadCheckpoint("the tree size line is missing"))?,
        )?;
        let root_line = lines
            .next()
            .ok_or(AuditError::BadCheckpoint("the root hash line is missing"))?;
        let root: Hash = B64
            .decode(root_line)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(AuditError::BadCheckpoint(
                "the root hash must be 32 bytes in standard padded base64",
            ))?;
        let mut extensions = Vec::new();
        for e in lines {
            if e.is_empty() {
                return Err(AuditError::BadCheckpoint("an extension line is empty"));
            }
            extensions.push(e.to_owned());
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

fn parse_size(s: &str) -> Result<u64, AuditError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuditError::BadCheckpoint(
            "the tree size must be a decimal number",
        ));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(AuditError::BadCheckpoint(
            "the tree size must not have leading zeros",
        ));
    }
    s.parse()
        .map_err(|_| AuditError::BadCheckpoint("the tree size does not fit in 64 bits"))
}

/// Any ASCII control character other than newline (C2SP signed-note:
/// notes "MUST NOT contain any ASCII control characters ... other than
/// newline").
fn has_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 && b != b'\n')
}

/// The C2SP rule for key names: non-empty, no Unicode space, no `+`.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '+')
}

/// The names we accept for our own signers and verifiers: the C2SP rule,
/// and no control characters (which a note can't carry).
fn check_own_name(name: &str) -> Result<(), AuditError> {
    if name.is_empty() {
        return Err(AuditError::BadKeyName("the name is empty"));
    }
    if !is_valid_name(name) || name.contains(char::is_control) {
        return Err(AuditError::BadKeyName(
            "the name contains a space, a control character or '+'",
        ));
    }
    Ok(())
}

fn ed25519_key_id(name: &str, public_key: &[u8]) -> [u8; 4] {
    typed_key_id(TYPE_ED25519, name, public_key)
}

/// `SHA-256(name || "\n" || type || public key)[:4]`.
fn typed_key_id(ty: u8, name: &str, public_key: &[u8]) -> [u8; 4] {
    let h = sha256_concat(&[name.as_bytes(), b"\n", &[ty], public_key]);
    [h[0], h[1], h[2], h[3]]
}

fn ecdsa_key_id(spki: &[u8]) -> [u8; 4] {
    let h = sha256(spki);
    [h[0], h[1], h[2], h[3]]
}

/// The message a cosignature/v1 signs: a header line, a timestamp line,
/// then the checkpoint's note text.
fn cosigned_message(time: u64, text: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{text}")
}

fn key_label(name: &str, key_id: [u8; 4]) -> String {
    format!("{name}+{:08x}", u32::from_be_bytes(key_id))
}

/// Signs note texts with one key, under one key name.
///
/// Holds the private key; its `Debug` shows only the name and key id.
pub struct NoteSigner {
    name: String,
    key_id: [u8; 4],
    /// The signature type byte followed by the public key encoding, as it
    /// appears in the verifier key.
    typed_public_key: Vec<u8>,
    key: SigningKey,
    /// A witness's cosigner: signs with [`NoteSigner::cosign`] only.
    cosigner: bool,
}

impl core::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "NoteSigner({}, <private key redacted>)",
            key_label(&self.name, self.key_id)
        )
    }
}

impl NoteSigner {
    /// A signer for `key` under key name `name` (for a log, its origin,
    /// e.g. `example.com/audit`). The key must be Ed25519 or ECDSA P-256.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, AuditError> {
        check_own_name(name)?;
        let public_key = key.public_key();
        let (key_id, typed_public_key) = match key.algorithm() {
            SignatureAlgorithm::Ed25519 => {
                let mut t = vec![TYPE_ED25519];
                t.extend_from_slice(&public_key);
                (ed25519_key_id(name, &public_key), t)
            }
            SignatureAlgorithm::EcdsaP256Sha256 => {
                let mut t = vec![TYPE_ECDSA];
                t.extend_from_slice(&P256_SPKI_PREFIX);
                t.extend_from_slice(&public_key);
                (ecdsa_key_id(&t[1..]), t)
            }
            _ => {
                return Err(AuditError::UnsupportedKey(
                    "note signers take Ed25519 or ECDSA P-256 keys",
                ));
            }
        };
        Ok(Self {
            name: name.to_owned(),
            key_id,
            typed_public_key,
            key,
            cosigner: false,
        })
    }

    /// A witness's cosigner (c2sp.org/tlog-cosignature, Ed25519
    /// `cosignature/v1`) under key name `name`; `key` must be Ed25519. Its
    /// verifier key has type `0x04`, and it signs with
    /// [`NoteSigner::cosign`] only.
    pub fn cosigner(name: &str, key: SigningKey) -> Result<Self, AuditError> {
        check_own_name(name)?;
        if key.algorithm() != SignatureAlgorithm::Ed25519 {
            return Err(AuditError::UnsupportedKey(
                "cosignature/v1 takes an Ed25519 key",
            ));
        }
        let public_key = key.public_key();
        let mut typed_public_key = vec![TYPE_COSIGNATURE_V1];
        typed_public_key.extend_from_slice(&public_key);
        Ok(Self {
            name: name.to_owned(),
            key_id: typed_key_id(TYPE_COSIGNATURE_V1, name, &public_key),
            typed_public_key,
            key,
            cosigner: true,
        })
    }

    /// A cosignature line (`— <name> base64(key id || timestamp ||
    /// signature)` and a newline) over a checkpoint's note text `text`
    /// (the note before its blank line, final newline included), made at
    /// `time` (POSIX seconds, below 2⁶³).
    pub fn cosign(&self, text: &str, time: u64) -> Result<String, AuditError> {
        if !self.cosigner {
            return Err(AuditError::UnsupportedKey(
                "this key signs notes; a witness cosigns with a NoteSigner::cosigner key",
            ));
        }
        if time > i64::MAX as u64 {
            return Err(AuditError::BadNote("a cosignature time must be below 2^63"));
        }
        Checkpoint::parse_body(text)?;
        let sig = self.key.sign(cosigned_message(time, text).as_bytes())?;
        let mut blob = Vec::with_capacity(4 + COSIGNATURE_LEN);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(&sig);
        Ok(format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(&blob)))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id that prefixes each signature.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The verifier key to publish: `<name>+<key id hex>+<base64(type ||
    /// public key)>`, which [`NoteVerifier::parse`] and Go's
    /// `note.NewVerifier` (Ed25519) read.
    pub fn verifier_key(&self) -> String {
        format!(
            "{}+{}",
            key_label(&self.name, self.key_id),
            B64.encode(&self.typed_public_key)
        )
    }

    /// Signs `body` and returns the whole signed note: `body`, a blank line,
    /// and one signature line. `body` must be non-empty, end in a newline
    /// and contain no control character other than newline.
    pub fn sign(&self, body: &str) -> Result<String, AuditError> {
        if self.cosigner {
            return Err(AuditError::UnsupportedKey(
                "a cosigner key signs only cosignatures (NoteSigner::cosign)",
            ));
        }
        if !body.ends_with('\n') {
            return Err(AuditError::BadNote("the text must end with a newline"));
        }
        if has_control(body) {
            return Err(AuditError::BadNote(
                "the text contains a control character other than newline",
            ));
        }
        let sig = self.key.sign(body.as_bytes())?;
        let mut blob = Vec::with_capacity(4 + sig.len());
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&sig);
        Ok(format!(
            "{body}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(&blob)
        ))
    }

    /// Checks that `checkpoint` is well formed (its body parses back to the
    /// same fields, so no field smuggles in a newline) and signs its body.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, AuditError> {
        let body = checkpoint.body();
        if Checkpoint::parse_body(&body)? != *checkpoint {
            return Err(AuditError::BadCheckpoint(
                "a field contains a newline, so the body would not parse back to it",
            ));
        }
        self.sign(&body)
    }
}

/// Checks signed notes against one trusted key, parsed from its verifier
/// key string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    alg: SignatureAlgorithm,
    /// Raw Ed25519 key, or the uncompressed SEC1 P-256 point.
    public_key: Vec<u8>,
    /// A witness's cosignature/v1 key (type `0x04`).
    cosigner: bool,
}

/// One parsed signature line.
struct SigLine<'a> {
    name: &'a str,
    key_id: [u8; 4],
    sig: Vec<u8>,
}

/// Splits a note into its text and its signature lines, strictly.
fn parse_note(note: &str) -> Result<(&str, Vec<SigLine<'_>>), AuditError> {
    if note.is_empty() {
        return Err(AuditError::BadNote("the note is empty"));
    }
    if has_control(note) {
        return Err(AuditError::BadNote(
            "the note contains a control character other than newline (CRLF line endings?)",
        ));
    }
    if !note.ends_with('\n') {
        return Err(AuditError::BadNote("the note must end with a newline"));
    }
    // The text ends at the last blank line (C2SP: the text MAY itself
    // contain blank lines).
    let split = note.rfind("\n\n").ok_or(AuditError::BadNote(
        "no blank line separates the text from the signatures",
    ))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    if sigs.is_empty() {
        return Err(AuditError::BadNote("the note has no signature lines"));
    }
    let mut out = Vec::new();
    // `sigs` ends in a newline and holds no empty line.
    for line in sigs.split_terminator('\n') {
        if out.len() == MAX_SIGNATURES {
            return Err(AuditError::BadNote("the note has more than 100 signatures"));
        }
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(AuditError::BadNote(
            "a signature line does not start with an em dash (U+2014) and a space",
        ))?;
        let (name, b64) = rest.split_once(' ').ok_or(AuditError::BadNote(
            "a signature line has no space between key name and signature",
        ))?;
        if !is_valid_name(name) {
            return Err(AuditError::BadNote(
                "a signature line has an empty key name or one with '+'",
            ));
        }
        let raw = B64
            .decode(b64)
            .map_err(|_| AuditError::BadNote("a signature is not standard padded base64"))?;
        if raw.len() < 5 {
            return Err(AuditError::BadNote(
                "a signature is shorter than a key id and one byte",
            ));
        }
        out.push(SigLine {
            name,
            key_id: [raw[0], raw[1], raw[2], raw[3]],
            sig: raw[4..].to_vec(),
        });
    }
    Ok((text, out))
}

impl NoteVerifier {
    /// Parses a verifier key `<name>+<8 hex digit key id>+<base64(type ||
    /// public key)>` and checks that the key id matches the key. Types:
    /// `0x01` Ed25519 (32-byte key), `0x02` ECDSA P-256 (DER SPKI with an
    /// uncompressed point).
    pub fn parse(vkey: &str) -> Result<Self, AuditError> {
        let (name, rest) = vkey.split_once('+').ok_or(AuditError::BadVerifierKey(
            "it does not have three '+'-separated parts",
        ))?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or(AuditError::BadVerifierKey(
            "it does not have three '+'-separated parts",
        ))?;
        check_own_name(name)
            .map_err(|_| AuditError::BadVerifierKey("the key name is empty or invalid"))?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuditError::BadVerifierKey("the key id is not 8 hex digits"));
        }
        let key_id = u32::from_str_radix(id_hex, 16)
            .map_err(|_| AuditError::BadVerifierKey("the key id is not 8 hex digits"))?
            .to_be_bytes();
        let typed = B64
            .decode(key_b64)
            .map_err(|_| AuditError::BadVerifierKey("the key is not standard padded base64"))?;
        let (alg, public_key, computed) = match typed.split_first() {
            None => return Err(AuditError::BadVerifierKey("the key is empty")),
            // A log's Ed25519 key, or a witness's cosignature/v1 key (the
            // same Ed25519 key material, another key id and message).
            Some((&ty @ (TYPE_ED25519 | TYPE_COSIGNATURE_V1), pk)) => {
                if pk.len() != ED25519_PUBLIC_KEY_LEN {
                    return Err(AuditError::BadVerifierKey(
                        "an Ed25519 public key must be 32 bytes",
                    ));
                }
                (
                    SignatureAlgorithm::Ed25519,
                    pk.to_vec(),
                    typed_key_id(ty, name, pk),
                )
            }
            Some((&TYPE_ECDSA, spki)) => {
                let point = spki
                    .strip_prefix(&P256_SPKI_PREFIX[..])
                    .filter(|p| p.len() == P256_POINT_LEN && p[0] == 0x04)
                    .ok_or(AuditError::UnsupportedKey(
                        "only ECDSA keys on P-256 in DER SPKI form with an uncompressed \
                         point are supported",
                    ))?;
                (
                    SignatureAlgorithm::EcdsaP256Sha256,
                    point.to_vec(),
                    ecdsa_key_id(spki),
                )
            }
            Some(_) => {
                return Err(AuditError::UnsupportedKey(
                    "unknown signature type; only Ed25519 (0x01), ECDSA P-256 (0x02) \
                     and cosignature/v1 (0x04) are supported",
                ));
            }
        };
        if computed != key_id {
            return Err(AuditError::BadVerifierKey(
                "the key id does not match the name and key; the string was altered or \
                 mistyped",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            cosigner: typed[0] == TYPE_COSIGNATURE_V1,
            key_id,
            alg,
            public_key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// True for a witness's `cosignature/v1` key (type `0x04`): it vouches
    /// for consistency, and must never stand in for a log's own key.
    pub fn is_cosigner(&self) -> bool {
        self.cosigner
    }

    /// Parses `note` strictly and checks the signature from this key; on
    /// success returns the signed text (the part of `note` before the blank
    /// line, final newline included).
    ///
    /// Fails with [`AuditError::BadNote`] if the note is malformed,
    /// [`AuditError::UnknownKey`] if no line carries this key's name and key
    /// id, and [`AuditError::BadSignature`] if the first such line does not
    /// verify.
    pub fn verify<'a>(&self, note: &'a str) -> Result<&'a str, AuditError> {
        self.verify_timed(note).map(|(text, _)| text)
    }

    /// [`NoteVerifier::verify`], also returning a cosignature's timestamp
    /// (`None` for a log's own signature types).
    pub fn verify_timed<'a>(&self, note: &'a str) -> Result<(&'a str, Option<u64>), AuditError> {
        let (text, sigs) = parse_note(note)?;
        let line = sigs
            .iter()
            .find(|s| s.name == self.name && s.key_id == self.key_id)
            .ok_or_else(|| AuditError::UnknownKey {
                key: key_label(&self.name, self.key_id),
            })?;
        let bad = || AuditError::BadSignature {
            key: key_label(&self.name, self.key_id),
        };
        if !self.cosigner {
            verify_signature(self.alg, &self.public_key, text.as_bytes(), &line.sig)
                .map_err(|_| bad())?;
            return Ok((text, None));
        }
        if line.sig.len() != COSIGNATURE_LEN {
            return Err(bad());
        }
        let (time, sig) = line.sig.split_at(8);
        let time = u64::from_be_bytes(time.try_into().expect("8 bytes"));
        if time > i64::MAX as u64 {
            return Err(bad());
        }
        verify_signature(
            self.alg,
            &self.public_key,
            cosigned_message(time, text).as_bytes(),
            sig,
        )
        .map_err(|_| bad())?;
        Ok((text, Some(time)))
    }

    /// [`NoteVerifier::verify`], then [`Checkpoint::parse_body`] on the
    /// signed text. The caller still checks that `origin` is the log it
    /// expects (the key name of a witness differs from the log's origin, so
    /// this can't).
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, AuditError> {
        Checkpoint::parse_body(self.verify(note)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretKey;
    use proptest::prelude::*;

    // Published vectors from golang.org/x/mod/sumdb/note, note_test.go
    // (TestNewVerifier, TestSign, TestOpen): the PeterNeumann and EnochRoot
    // keys, the PeterNeumann signer key, and the signed text.
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    // Published ECDSA P-256 vector (Sigstore Rekor's key and one of its
    // checkpoints) from transparency-dev/formats, note/note_verifier_test.go.
    const REKOR_VKEY: &str = "rekor.sigstore.dev+c0d23d6a+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc=";
    const REKOR_NOTE: &str = "Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n\n\u{2014} rekor.sigstore.dev wNI9ajBEAiARInWIWyCdyG27CO6LPnPekyw20qO0YJfoaPaowGp/XgIgc+qEHS3+GKVClgqq20uDLet7MCoTURUCRdxwWBHHufk=\n";

    fn peter_signer() -> NoteSigner {
        let b64 = PETER_SKEY.splitn(5, '+').nth(4).unwrap();
        let raw = B64.decode(b64).unwrap();
        assert_eq!(raw[0], TYPE_ED25519);
        let seed = SecretKey::from_slice(&raw[1..]).unwrap();
        NoteSigner::new(
            "PeterNeumann",
            SigningKey::ed25519_from_seed(&seed).unwrap(),
        )
        .unwrap()
    }

    fn peter() -> NoteVerifier {
        NoteVerifier::parse(PETER_VKEY).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "example.com/audit".into(),
            size: 20852163,
            root: [7; 32],
            extensions: vec![],
        }
    }

    #[test]
    fn go_vector_signs_byte_for_byte() {
        let s = peter_signer();
        assert_eq!(s.verifier_key(), PETER_VKEY);
        assert_eq!(s.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
        assert_eq!(s.sign(TEXT).unwrap(), format!("{TEXT}\n{PETER_SIG}"));
        assert!(!format!("{s:?}").contains("AYEK"));
    }

    #[test]
    fn go_vector_verifies() {
        let v = peter();
        assert_eq!(v.name(), "PeterNeumann");
        assert_eq!(v.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
        let note = format!("{TEXT}\n{PETER_SIG}");
        assert_eq!(v.verify(&note).unwrap(), TEXT);
        // Unknown signatures are ignored, in either order.
        let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        assert_eq!(v.verify(&both).unwrap(), TEXT);
        let enoch = NoteVerifier::parse(ENOCH_VKEY).unwrap();
        assert_eq!(enoch.verify(&both).unwrap(), TEXT);
        // Duplicates of a good signature, and a bad one from an unknown key.
        let enoch_bad = format!("{}ABCD{}", &ENOCH_SIG[..60], &ENOCH_SIG[60..]);
        let dup = format!("{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{enoch_bad}");
        assert_eq!(v.verify(&dup).unwrap(), TEXT);
    }

    #[test]
    fn go_vector_failures() {
        let v = peter();
        // Invalid signature (TestOpen).
        let bad = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert!(matches!(
            v.verify(&bad),
            Err(AuditError::BadSignature { .. })
        ));
        // Tampered text.
        let tampered = format!("{TEXT}\n{PETER_SIG}").replace("cryptography", "cryptographY");
        assert!(matches!(
            v.verify(&tampered),
            Err(AuditError::BadSignature { .. })
        ));
        // Only another key's signature; a same-name key with another id;
        // the right id under another name.
        let enoch_only = format!("{TEXT}\n{ENOCH_SIG}");
        assert!(matches!(
            v.verify(&enoch_only),
            Err(AuditError::UnknownKey { .. })
        ));
        let renamed = format!(
            "{TEXT}\n{}",
            PETER_SIG.replace("PeterNeumann", "CarmenSandiego")
        );
        assert!(matches!(
            v.verify(&renamed),
            Err(AuditError::UnknownKey { .. })
        ));
        let rehashed = format!("{TEXT}\n{}", PETER_SIG.replace("x08g", "xxxx"));
        assert!(matches!(
            v.verify(&rehashed),
            Err(AuditError::UnknownKey { .. })
        ));
        // Too many signatures.
        let many = format!("{TEXT}\n{}", PETER_SIG.repeat(101));
        assert!(matches!(v.verify(&many), Err(AuditError::BadNote(_))));
        let hundred = format!("{TEXT}\n{}", PETER_SIG.repeat(100));
        assert_eq!(v.verify(&hundred).unwrap(), TEXT);
        // Malformed messages (TestOpen's badMsgs, plus ours).
        let sig_no_nl = &PETER_SIG[..PETER_SIG.len() - 1];
        let bad_msgs = [
            TEXT.to_string(),
            format!("{TEXT}\n"),
            format!("{TEXT}\n{sig_no_nl}"),
            format!("\x01{TEXT}\n{PETER_SIG}"),
            format!(
                "{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
            String::new(),
            "\n".into(),
            "\n\n".into(),
            format!("{TEXT}\n{PETER_SIG}").replace('\n', "\r\n"),
            format!("{TEXT}{PETER_SIG}"),
            format!("{TEXT}\n{}", PETER_SIG.replace('=', "")),
            format!("{TEXT}\n{}", PETER_SIG.replace("x08go", "x08g!")),
            format!("{TEXT}\n{}", PETER_SIG.replace('\u{2014}', "-")),
            format!("{TEXT}\n\u{2014} PeterNeumann\n"),
            format!("{TEXT}\n\u{2014} PeterNeumann AAAA\n"),
            format!("{TEXT}\n\u{2014} Peter+Neumann {}", &PETER_SIG[17..]),
            format!("{TEXT}\n{}", PETER_SIG.replace("— ", "—  ")),
            format!("{TEXT}\n{PETER_SIG}\t"),
        ];
        for m in &bad_msgs {
            assert!(
                matches!(v.verify(m), Err(AuditError::BadNote(_))),
                "{m:?} gave {:?}",
                v.verify(m)
            );
        }
    }

    #[test]
    fn verifier_key_manglings_are_refused() {
        // After TestNewVerifier: every proper substring and every one-byte
        // change of the key must fail.
        let b = PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i != 0 || j != b.len() {
                    assert!(NoteVerifier::parse(&PETER_VKEY[i..j]).is_err(), "{i}..{j}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            let m = String::from_utf8(m).unwrap();
            assert!(NoteVerifier::parse(&m).is_err(), "{m}");
        }
        // Wrong length key with adjusted id; unknown type with adjusted id.
        assert!(matches!(
            NoteVerifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            ),
            Err(AuditError::BadVerifierKey(_))
        ));
        assert!(matches!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            ),
            Err(AuditError::UnsupportedKey(_))
        ));
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_ok()
        );
    }

    #[test]
    fn rekor_ecdsa_vector_verifies() {
        let v = NoteVerifier::parse(REKOR_VKEY).unwrap();
        assert_eq!(v.key_id(), [0xc0, 0xd2, 0x3d, 0x6a]);
        let cp = v.open_checkpoint(REKOR_NOTE).unwrap();
        assert_eq!(cp.origin, "Rekor");
        assert_eq!(cp.size, 798034);
        assert_eq!(
            B64.encode(cp.root),
            "f+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0="
        );
        assert!(cp.extensions.is_empty());
        let tampered = REKOR_NOTE.replace("798034", "798035");
        assert!(matches!(
            v.verify(&tampered),
            Err(AuditError::BadSignature { .. })
        ));
        let renamed = REKOR_VKEY.replace("rekor.sigstore.dev", "bananas.sigstore.dev");
        // The ECDSA key id does not cover the name, so this parses, and then
        // finds no signature under its name.
        let other = NoteVerifier::parse(&renamed).unwrap();
        assert!(matches!(
            other.verify(REKOR_NOTE),
            Err(AuditError::UnknownKey { .. })
        ));
        assert!(NoteVerifier::parse("rekor.sigstore.dev+00000000+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc=").is_err());
        assert!(NoteVerifier::parse("rekor.sigstore.dev+12345678+AwEB").is_err());
    }

    #[test]
    fn round_trips_with_generated_keys() {
        for alg in [
            SignatureAlgorithm::Ed25519,
            SignatureAlgorithm::EcdsaP256Sha256,
        ] {
            let s =
                NoteSigner::new("example.com/audit", SigningKey::generate(alg).unwrap()).unwrap();
            assert_eq!(s.name(), "example.com/audit");
            let v = NoteVerifier::parse(&s.verifier_key()).unwrap();
            assert_eq!(v.key_id(), s.key_id());
            let cp = checkpoint();
            let note = s.sign_checkpoint(&cp).unwrap();
            assert!(note.starts_with(&cp.body()));
            assert_eq!(v.open_checkpoint(&note).unwrap(), cp);
            // Another key with the same name: unknown key id.
            let s2 =
                NoteSigner::new("example.com/audit", SigningKey::generate(alg).unwrap()).unwrap();
            assert!(matches!(
                v.verify(&s2.sign(&cp.body()).unwrap()),
                Err(AuditError::UnknownKey { .. })
            ));
            // Tampered body.
            let t = note.replace("20852163", "20852164");
            assert!(matches!(v.verify(&t), Err(AuditError::BadSignature { .. })));
        }
        let p384 = SigningKey::generate(SignatureAlgorithm::EcdsaP384Sha384).unwrap();
        assert!(matches!(
            NoteSigner::new("x", p384),
            Err(AuditError::UnsupportedKey(_))
        ));
    }

    #[test]
    fn signer_refuses_bad_names_and_texts() {
        for name in ["", "a b", "a+b", "a\tb", "a\u{a0}b", "a\u{7f}b", "a\nb"] {
            let k = SigningKey::generate(SignatureAlgorithm::Ed25519).unwrap();
            assert!(
                matches!(NoteSigner::new(name, k), Err(AuditError::BadKeyName(_))),
                "{name:?}"
            );
        }
        let s = peter_signer();
        for body in ["", "no newline", "cr\r\n", "tab\t\n"] {
            assert!(
                matches!(s.sign(body), Err(AuditError::BadNote(_))),
                "{body:?}"
            );
        }
        // A body with blank lines, even a trailing one, still round-trips.
        for body in ["\n", "a\n\nb\n", "a\n\n", "a\n\n\u{2014} x y\n"] {
            assert_eq!(peter().verify(&s.sign(body).unwrap()).unwrap(), body);
        }
        let mut cp = checkpoint();
        cp.origin = "a\n5".into();
        assert!(s.sign_checkpoint(&cp).is_err());
        let mut cp = checkpoint();
        cp.extensions = vec!["x\ny".into()];
        assert!(s.sign_checkpoint(&cp).is_err());
    }

    #[test]
    fn checkpoint_body_round_trips_and_is_strict() {
        let mut cp = checkpoint();
        cp.extensions = vec!["ext one".into(), "two".into()];
        let body = cp.body();
        assert_eq!(
            body,
            format!(
                "example.com/audit\n20852163\n{}\next one\ntwo\n",
                B64.encode([7u8; 32])
            )
        );
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), cp);
        let root = B64.encode([7u8; 32]);
        let ok = format!("o\n0\n{root}\n");
        assert_eq!(Checkpoint::parse_body(&ok).unwrap().size, 0);
        let max = format!("o\n18446744073709551615\n{root}\n");
        assert_eq!(Checkpoint::parse_body(&max).unwrap().size, u64::MAX);
        let short_root = B64.encode([7u8; 31]);
        let unpadded = root.trim_end_matches('=');
        let bad = [
            String::new(),
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            format!(" \n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n1 \n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n1\n{short_root}\n"),
            format!("o\n1\n{unpadded}\n"),
            format!("o\n1\n{root}x\n"),
            format!("o\n1\n{root}\n\n"),
            format!("o\n1\n{root}\next\n\n"),
            format!("o\r\n1\n{root}\n"),
            "o\n1\n".into(),
            "o\n".into(),
        ];
        for b in &bad {
            assert!(
                matches!(Checkpoint::parse_body(b), Err(AuditError::BadCheckpoint(_))),
                "{b:?}"
            );
        }
    }

    /// Strings over the characters notes and keys are made of, so random
    /// inputs reach deep into the parsers.
    fn note_like() -> impl Strategy<Value = String> {
        let alphabet: Vec<char> = "\u{2014} \n+=/AZaz09x\r\t".chars().collect();
        prop::collection::vec(prop::sample::select(alphabet), 0..200)
            .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parsers_never_panic(s in any::<String>(), t in note_like()) {
            let v = peter();
            for x in [&s, &t] {
                let _ = v.verify(x);
                let _ = v.open_checkpoint(x);
                let _ = Checkpoint::parse_body(x);
                let _ = NoteVerifier::parse(x);
            }
        }

        #[test]
        fn mutated_notes_never_verify_wrongly(pos in any::<prop::sample::Index>(), c in any::<char>(), del in 0usize..4) {
            // Splice random text into a valid note: it either still verifies
            // with the same text (the edit hit nothing signed) or fails; it
            // never panics.
            let note = format!("{TEXT}\n{PETER_SIG}");
            let cuts: Vec<usize> = note.char_indices().map(|(i, _)| i).chain([note.len()]).collect();
            let at = cuts[pos.index(cuts.len())];
            let end = cuts[(pos.index(cuts.len()) + del).min(cuts.len() - 1)];
            let mutated = format!("{}{}{}", &note[..at], c, &note[end..]);
            if let Ok(text) = peter().verify(&mutated) {
                prop_assert_eq!(text, TEXT);
            }
        }

        #[test]
        fn checkpoints_round_trip(
            origin in "[a-z./]{1,20}",
            size in any::<u64>(),
            root in any::<[u8; 32]>(),
            extensions in prop::collection::vec("[ -~]{1,10}", 0..3),
        ) {
            let cp = Checkpoint { origin, size, root, extensions };
            prop_assert_eq!(Checkpoint::parse_body(&cp.body()).unwrap(), cp);
        }
    }
}
