use super::*;
use crate::crypto::SignatureAlgorithm;
use crate::secret::SecretKey;
use proptest::prelude::*;
use std::sync::OnceLock;

/// Segment size of most tests: 4 KiB (exponent 12), so that a few batches
/// of 64 segments stay small.
const EXP: u8 = 12;
const SEG: usize = 1 << EXP;
const SLOT: usize = SEG + 16;
const BATCH: usize = 64;

fn recipient() -> &'static EcdhP384PrivateKey {
    static K: OnceLock<EcdhP384PrivateKey> = OnceLock::new();
    K.get_or_init(|| EcdhP384PrivateKey::from_scalar(&[0x2a; 48]).unwrap())
}

fn other_recipient() -> &'static EcdhP384PrivateKey {
    static K: OnceLock<EcdhP384PrivateKey> = OnceLock::new();
    K.get_or_init(|| EcdhP384PrivateKey::from_scalar(&[0x3c; 48]).unwrap())
}

fn ed25519() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::ed25519_from_seed(&SecretKey::from_bytes([0x5e; 32])).unwrap())
}

fn p256() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::ecdsa_p256_from_scalar(&SecretKey::from_bytes([7; 32])).unwrap())
}

fn meta() -> BackupMeta {
    BackupMeta {
        created: "2025-06-01T12:00:00Z".into(),
        source: "test-node".into(),
        contents: vec!["records".into(), "subject-keys".into()],
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn opts(pool: Option<&rayon::ThreadPool>) -> Options<'_> {
    Options {
        segment_exp: EXP,
        pool,
    }
}

/// Writes `pt` in pieces of `chunk` bytes.
fn write_with(pt: &[u8], signer: &SigningKey, chunk: usize, o: Options<'_>) -> Vec<u8> {
    let mut w =
        BackupWriter::new(Vec::new(), recipient().public_key(), signer, &meta(), o).unwrap();
    for piece in pt.chunks(chunk.max(1)) {
        w.write_all(piece).unwrap();
    }
    w.finish().unwrap()
}

fn write(pt: &[u8]) -> Vec<u8> {
    write_with(pt, ed25519(), usize::MAX, opts(None))
}

fn decrypt_with(
    ct: &[u8],
    key: &EcdhP384PrivateKey,
    signer: Option<&[u8]>,
) -> Result<Vec<u8>, BackupError> {
    let mut r = BackupReader::open(ct, key, signer, opts(None))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

fn decrypt(ct: &[u8]) -> Result<Vec<u8>, BackupError> {
    decrypt_with(ct, recipient(), None)
}

/// Length of the signed part (everything before the signature).
fn signed_len(ct: &[u8]) -> usize {
    let s = u16::from_be_bytes(ct[ct.len() - 8..ct.len() - 6].try_into().unwrap()) as usize;
    ct.len() - 8 - s
}

/// Replaces the trailer with a fresh signature by `signer` over `signed`,
/// as a writer holding that key would.
fn sign_as(signed: &[u8], signer: &SigningKey) -> Vec<u8> {
    let sig = signer
        .sign(&signed_message(&crypto::sha256(signed)))
        .unwrap();
    [
        signed,
        &sig,
        &(sig.len() as u16).to_be_bytes(),
        FOOTER_MAGIC,
    ]
    .concat()
}

/// Applies `f` to the signed part of `ct` and signs it again with the
/// Ed25519 test key, so that only what `f` did is wrong.
fn resign(ct: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut signed = ct[..signed_len(ct)].to_vec();
    f(&mut signed);
    sign_as(&signed, ed25519())
}

fn header_len(ct: &[u8]) -> usize {
    read_header(&mut &ct[..]).unwrap().len()
}

#[test]
fn backup_roundtrip_sizes_around_segment_boundaries() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for len in [
        0,
        1,
        SEG - 1,
        SEG,
        SEG + 1,
        2 * SEG,
        BATCH * SEG - 1,
        BATCH * SEG,
        BATCH * SEG + 1,
        (BATCH + 1) * SEG,
        3 * BATCH * SEG + 7,
    ] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        for (p, chunk) in [(None, usize::MAX), (Some(&pool), 1000), (Some(&pool), SEG)] {
            let ct = write_with(&pt, ed25519(), chunk, opts(p));
            let segs = len.div_ceil(SEG).max(1);
            let h = header_len(&ct);
            assert_eq!(ct.len(), h + 71 + len + 16 * segs + 64 + 8, "len {len}");

            let info = verify_integrity(&ct[..], Some(&ed25519().public_key())).unwrap();
            assert_eq!(info.plaintext_len, len as u64);
            assert_eq!(info.total_len, ct.len() as u64);
            assert_eq!(info.header.meta, meta());
            assert_eq!(
                info.header.recipient_key_id,
                key_id(recipient().public_key())
            );
            assert_eq!(info.header.signer_algorithm, SignatureAlgorithm::Ed25519);
            assert_eq!(info.digest, crypto::sha256(&ct[..signed_len(&ct)]));

            let mut r = BackupReader::open(&ct[..], recipient(), None, opts(p)).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, pt, "len {len}");
            let full = r.into_info().unwrap();
            assert_eq!(
                (full.plaintext_len, full.total_len),
                (len as u64, ct.len() as u64)
            );
            assert_eq!(full.digest, info.digest);
            assert!(verify_full(&ct[..], recipient(), None, opts(p)).is_ok());
        }
    }
}

#[test]
fn backup_output_does_not_depend_on_how_it_was_written() {
    let pt = pattern(3 * SEG + 100);
    let once = |chunk: usize| {
        let eph = EcdhP384PrivateKey::from_scalar(&[0x41; 48]).unwrap();
        let mut w = BackupWriter::with_ephemeral(
            Vec::new(),
            recipient().public_key(),
            ed25519(),
            &meta(),
            opts(None),
            eph,
            [9; 32],
        )
        .unwrap();
        for piece in pt.chunks(chunk) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    };
    let whole = once(pt.len());
    for chunk in [1, 7, SEG - 1, SEG, SEG + 1] {
        assert_eq!(once(chunk), whole, "chunk {chunk}");
    }
}

#[test]
fn backup_with_ecdsa_p256_signer() {
    let pt = pattern(5000);
    let ct = write_with(&pt, p256(), usize::MAX, opts(None));
    let info = verify_integrity(&ct[..], Some(&p256().public_key())).unwrap();
    assert_eq!(
        info.header.signer_algorithm,
        SignatureAlgorithm::EcdsaP256Sha256
    );
    assert_eq!(info.header.signer_public_key.len(), 65);
    assert_eq!(
        decrypt_with(&ct, recipient(), Some(&p256().public_key())).unwrap(),
        pt
    );
}

fn assert_rejected(ct: &[u8], what: &str) {
    assert!(
        verify_integrity(ct, None).is_err(),
        "verify accepted: {what}"
    );
    assert!(decrypt(ct).is_err(), "decrypt accepted: {what}");
    assert!(
        verify_full(ct, recipient(), None, opts(None)).is_err(),
        "verify_full accepted: {what}"
    );
}

#[test]
fn backup_every_byte_flip_is_detected() {
    // Two segments: every byte of the header, the stream header, both
    // segments, the signature and the footer.
    let ct = write(&pattern(SEG + 100));
    for i in 0..ct.len() {
        let mut bad = ct.clone();
        bad[i] ^= 0x01;
        assert_rejected(&bad, &format!("flip at {i} of {}", ct.len()));
    }
}

#[test]
fn backup_truncation_and_appended_data_fail() {
    let ct = write(&pattern(3 * SEG + 5));
    let signed = signed_len(&ct);
    let body = header_len(&ct) + 71;
    for cut in [
        0,
        1,
        3,
        22,
        body,
        body + SLOT,
        ct.len() - 9,
        ct.len() - 8,
        ct.len() - 1,
    ] {
        let r = verify_integrity(&ct[..cut], None);
        assert!(r.is_err(), "cut at {cut}");
        assert_rejected(&ct[..cut], &format!("cut at {cut}"));
    }
    assert!(matches!(
        verify_integrity(&ct[..ct.len() - 1], None),
        Err(BackupError::Incomplete)
    ));
    assert!(matches!(
        decrypt(&ct[..ct.len() - 1]),
        Err(BackupError::Incomplete)
    ));
    // Appended bytes, and a second trailer.
    let plus = [&ct[..], &[0]].concat();
    assert!(matches!(
        verify_integrity(&plus[..], None),
        Err(BackupError::Incomplete)
    ));
    assert_rejected(&plus, "a byte appended");
    let twice = [&ct[..], &ct[signed..]].concat();
    assert!(matches!(
        verify_integrity(&twice[..], None),
        Err(BackupError::BadSignature)
    ));
    assert_rejected(&twice, "the trailer appended again");

    // Cut at a segment boundary and signed again by the writer's key: the
    // signature holds, the layout is valid, and only decryption can tell.
    let cut = resign(&ct, |s| s.truncate(body + 2 * SLOT));
    verify_integrity(&cut[..], None).unwrap();
    assert!(matches!(decrypt(&cut), Err(BackupError::Truncated)));
    // An extra segment-sized chunk from earlier in the file, re-signed.
    let extended = resign(&ct, |s| {
        let s0 = s[body..body + SLOT].to_vec();
        s.extend_from_slice(&s0)
    });
    assert!(matches!(
        decrypt(&extended),
        Err(BackupError::DecryptionFailed)
    ));
}

#[test]
fn backup_reordered_segments_fail() {
    let ct = write(&pattern(3 * SEG));
    let body = header_len(&ct) + 71;
    let swapped = resign(&ct, |s| s[body..body + 2 * SLOT].rotate_left(SLOT));
    verify_integrity(&swapped[..], None).unwrap();
    assert!(matches!(
        decrypt(&swapped),
        Err(BackupError::DecryptionFailed)
    ));
}

#[test]
fn backup_signer_is_checked_and_bound() {
    let pt = pattern(2 * SEG);
    let ct = write(&pt);
    let ours = ed25519().public_key();
    let theirs = SigningKey::generate(SignatureAlgorithm::Ed25519).unwrap();

    // Signature by another key, header unchanged.
    let forged = sign_as(&ct[..signed_len(&ct)], &theirs);
    assert!(matches!(
        verify_integrity(&forged[..], None),
        Err(BackupError::BadSignature)
    ));
    assert!(matches!(decrypt(&forged), Err(BackupError::BadSignature)));

    // The signer key in the header swapped too: a valid signature by
    // another key, caught by the expected key; and since the header is
    // bound into the backup key, the ciphertext no longer opens at all.
    let at = FIXED_LEN + P384_POINT_LEN;
    let mut signed = ct[..signed_len(&ct)].to_vec();
    signed[at..at + 32].copy_from_slice(&theirs.public_key());
    let swapped = sign_as(&signed, &theirs);
    verify_integrity(&swapped[..], None).unwrap();
    let err = verify_integrity(&swapped[..], Some(&ours)).unwrap_err();
    assert!(matches!(err, BackupError::UnexpectedSigner { .. }), "{err}");
    assert!(matches!(
        decrypt_with(&swapped, recipient(), Some(&ours)),
        Err(BackupError::UnexpectedSigner { .. })
    ));
    assert!(matches!(
        decrypt(&swapped),
        Err(BackupError::DecryptionFailed)
    ));

    // The expected key passes; another algorithm's key is refused.
    assert_eq!(decrypt_with(&ct, recipient(), Some(&ours)).unwrap(), pt);
    assert!(verify_integrity(&ct[..], Some(&p256().public_key())).is_err());
}

#[test]
fn backup_wrong_recipient_key() {
    let ct = write(&pattern(100));
    let err = decrypt_with(&ct, other_recipient(), None).unwrap_err();
    assert!(matches!(err, BackupError::WrongRecipient { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&hex(&key_id(recipient().public_key()))),
        "{msg}"
    );
    // A header claiming the other key's id (re-signed) still cannot be
    // opened by it: the key agreement gives another key, and the failure
    // looks like any other.
    let claimed = resign(&ct, |s| {
        s[6..22].copy_from_slice(&key_id(other_recipient().public_key()))
    });
    assert!(matches!(
        decrypt_with(&claimed, other_recipient(), None),
        Err(BackupError::DecryptionFailed)
    ));
    // Verification needs no private key at all.
    verify_integrity(&ct[..], None).unwrap();
}

#[test]
fn backup_reader_releases_nothing_unauthenticated() {
    /// Reads until the first error; returns what was released.
    fn released(ct: &[u8]) -> (Vec<u8>, Option<BackupError>) {
        let mut r = match BackupReader::open(ct, recipient(), None, opts(None)) {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => {
                    // Every later read fails too.
                    assert!(r.read(&mut buf).is_err());
                    return (out, Some(e.into()));
                }
            }
        }
    }
    let pt = pattern(2 * BATCH * SEG + 10);
    let ct = write(&pt);
    let body = header_len(&ct) + 71;

    // A bad segment in the first batch: nothing comes out.
    let bad = resign(&ct, |s| s[body + 3 * SLOT + 5] ^= 4);
    let (out, err) = released(&bad);
    assert!(out.is_empty());
    assert!(matches!(err, Some(BackupError::DecryptionFailed)));

    // A bad signature: the final batch (here the third) is held back.
    let mut bad = ct.clone();
    let sig_at = signed_len(&ct);
    bad[sig_at + 3] ^= 1;
    let (out, err) = released(&bad);
    assert!(matches!(err, Some(BackupError::BadSignature)));
    assert_eq!(out, pt[..2 * BATCH * SEG]);

    // A small backup with a bad signature releases nothing.
    let small = write(b"patient 123");
    let mut bad = small.clone();
    let n = bad.len();
    bad[n - 9] ^= 1;
    assert_eq!(released(&bad).0, b"");
}

#[test]
fn backup_writer_refuses_what_it_cannot_write() {
    let p384 = SigningKey::generate(SignatureAlgorithm::EcdsaP384Sha384).unwrap();
    let r = BackupWriter::new(
        Vec::new(),
        recipient().public_key(),
        &p384,
        &meta(),
        opts(None),
    );
    assert!(matches!(r, Err(BackupError::UnsupportedSigner(_))));
    let mut big = meta();
    big.source = "x".repeat(MAX_META_LEN);
    let r = BackupWriter::new(
        Vec::new(),
        recipient().public_key(),
        ed25519(),
        &big,
        opts(None),
    );
    assert!(matches!(r, Err(BackupError::MetadataTooLarge(_))));
    // Just under the limit is fine.
    big.source = "x".repeat(MAX_META_LEN - 100);
    let mut w = BackupWriter::new(
        Vec::new(),
        recipient().public_key(),
        ed25519(),
        &big,
        opts(None),
    )
    .unwrap();
    w.write_all(b"y").unwrap();
    let ct = w.finish().unwrap();
    assert_eq!(verify_integrity(&ct[..], None).unwrap().header.meta, big);
}

#[test]
fn backup_writer_stops_after_an_io_error() {
    struct Fails(usize);
    impl Write for Fails {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 < b.len() {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut w = BackupWriter::new(
        Fails(10_000),
        recipient().public_key(),
        ed25519(),
        &meta(),
        opts(None),
    )
    .unwrap();
    let pt = pattern(BATCH * SEG + 1);
    assert!(w.write_all(&pt).is_err());
    assert!(w.write(b"more").is_err());
    assert!(matches!(w.finish(), Err(BackupError::Stopped)));
}

#[test]
fn backup_and_stream_headers_are_not_confused() {
    let ct = write(b"abc");
    // A backup is not a stream, and its embedded stream (key source 0x02)
    // is refused by the key-ring stream reader.
    assert!(crate::stream::read_header(&mut &ct[..]).is_err());
    let inner = &ct[header_len(&ct)..];
    let err = crate::stream::read_header(&mut &inner[..]).unwrap_err();
    assert!(err.to_string().contains("backup"), "{err}");
    // A stream is not a backup.
    let mut s = Vec::new();
    let keys = crate::keys::StaticKeys::random("test/files");
    let ring = crate::keys::KeyRingName::parse("test/files").unwrap();
    crate::stream::encrypt(
        &keys,
        &ring,
        &b"abc"[..],
        &mut s,
        Options::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(matches!(
        read_header(&mut &s[..]),
        Err(BackupError::Malformed("bad magic"))
    ));
}

#[test]
fn backup_secrets_stay_out_of_debug_and_errors() {
    let ct = write(b"x");
    let w = BackupWriter::new(
        Vec::new(),
        recipient().public_key(),
        ed25519(),
        &meta(),
        opts(None),
    )
    .unwrap();
    assert_eq!(format!("{w:?}"), "BackupWriter(<redacted>)");
    let r = BackupReader::open(&ct[..], recipient(), None, opts(None)).unwrap();
    assert_eq!(format!("{r:?}"), "BackupReader(<redacted>)");
    let pkcs8 = recipient().to_pkcs8().unwrap();
    let scalar = hex(&[0x2a; 8]);
    for e in [
        decrypt_with(&ct, other_recipient(), None).unwrap_err(),
        decrypt(&ct[..ct.len() - 1]).unwrap_err(),
    ] {
        let text = format!("{e} {e:?}");
        assert!(
            !text.contains(&scalar) && !text.contains(&hex(&pkcs8.expose_secret()[..8])),
            "{text}"
        );
    }
}

fn sample() -> &'static Vec<u8> {
    static CT: OnceLock<Vec<u8>> = OnceLock::new();
    CT.get_or_init(|| write(&pattern(2 * SEG + 33)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn backup_prop_roundtrip(
        pt in proptest::collection::vec(any::<u8>(), 0..20000),
        exp in 12u8..14,
        chunk in 1usize..6000,
    ) {
        let o = Options { segment_exp: exp, pool: None };
        let ct = write_with(&pt, ed25519(), chunk, o);
        prop_assert_eq!(verify_integrity(&ct[..], None).unwrap().plaintext_len, pt.len() as u64);
        prop_assert_eq!(decrypt(&ct).unwrap(), pt);
    }

    #[test]
    fn backup_prop_any_byte_flip_is_detected(at in any::<prop::sample::Index>(), x in 1u8..=255) {
        let mut bad = sample().clone();
        let i = at.index(bad.len());
        bad[i] ^= x;
        prop_assert!(verify_integrity(&bad[..], None).is_err());
        prop_assert!(decrypt(&bad).is_err());
    }

    #[test]
    fn backup_prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2000), keep in 0usize..400) {
        // Random bytes, and a real backup's prefix followed by random bytes.
        let _ = verify_integrity(&data[..], None);
        let _ = decrypt(&data);
        let mixed = [&sample()[..keep], &data[..]].concat();
        let _ = verify_integrity(&mixed[..], None);
        let _ = decrypt(&mixed);
    }
}

// ---- tests/vectors/backup.json ------------------------------------------

fn vectors_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/backup.json")
}

fn h(s: &serde_json::Value) -> Vec<u8> {
    let s = s.as_str().expect("hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The deterministic writer behind every valid vector.
fn vector_backup(
    signer: &SigningKey,
    eph: [u8; 48],
    nonce: [u8; 32],
    exp: u8,
    m: &BackupMeta,
    len: usize,
) -> Vec<u8> {
    let o = Options {
        segment_exp: exp,
        pool: None,
    };
    let eph = EcdhP384PrivateKey::from_scalar(&eph).unwrap();
    let mut w = BackupWriter::with_ephemeral(
        Vec::new(),
        recipient().public_key(),
        signer,
        m,
        o,
        eph,
        nonce,
    )
    .unwrap();
    w.write_all(&pattern(len)).unwrap();
    w.finish().unwrap()
}

fn generate_vectors() {
    use serde_json::json;
    let mut vectors = vec![];
    // (name, signer, its algorithm's name, its private key, segment_exp, length)
    type Case = (
        &'static str,
        &'static SigningKey,
        &'static str,
        [u8; 32],
        u8,
        usize,
    );
    let cases: [Case; 5] = [
        ("empty", ed25519(), "ed25519", [0x5e; 32], 12, 0),
        ("one byte", ed25519(), "ed25519", [0x5e; 32], 12, 1),
        (
            "exactly one segment",
            ed25519(),
            "ed25519",
            [0x5e; 32],
            12,
            SEG,
        ),
        (
            "three segments",
            ed25519(),
            "ed25519",
            [0x5e; 32],
            12,
            10000,
        ),
        (
            "ECDSA P-256 signer, two segments",
            p256(),
            "ecdsa-p256",
            [7; 32],
            12,
            5000,
        ),
    ];
    for (i, (name, signer, alg, signer_key, exp, len)) in cases.into_iter().enumerate() {
        let eph = [0x40 + i as u8; 48];
        let nonce = [0x60 + i as u8; 32];
        let ct = vector_backup(signer, eph, nonce, exp, &meta(), len);
        let hdr = read_header(&mut &ct[..]).unwrap();
        let k = backup_key(
            recipient(),
            &hdr.ephemeral,
            &hdr.ephemeral,
            recipient().public_key(),
            &hdr.bytes,
        )
        .unwrap();
        vectors.push(json!({
            "name": name, "signer_algorithm": alg, "signer_private_key": hex(&signer_key),
            "signer_public_key": hex(&signer.public_key()), "ephemeral_private_key": hex(&eph),
            "stream_nonce": hex(&nonce), "segment_exp": exp, "meta": meta(), "plaintext_len": len,
            "backup_key": hex(k.expose_secret()), "digest": hex(&crypto::sha256(&ct[..signed_len(&ct)])),
            "deterministic": alg == "ed25519", "backup": hex(&ct),
        }));
    }
    // Header and trailer cases change the one-byte vector; segment cases
    // the three-segment one (both have the same header layout).
    let ct = h(&vectors[1]["backup"]);
    let three = h(&vectors[3]["backup"]);
    let hl = header_len(&ct);
    let body = hl + 71;
    let meta_json = serde_json::to_vec(&meta()).unwrap();
    let meta_at = hl - meta_json.len();
    // A byte inside the value "test-node", so the JSON stays valid.
    let in_value = meta_at
        + meta_json
            .windows(9)
            .position(|w| w == b"test-node")
            .unwrap()
        + 2;
    let sig_at = signed_len(&ct);
    let theirs = SigningKey::ed25519_from_seed(&SecretKey::from_bytes([0x77; 32])).unwrap();
    let ours = hex(&ed25519().public_key());
    let flipped = |at: usize, x: u8| {
        let mut v = ct.clone();
        v[at] ^= x;
        v
    };
    let new_header = |m: &[u8]| {
        let mut v = ct[..meta_at - 4].to_vec();
        v.extend_from_slice(&(m.len() as u32).to_be_bytes());
        v.extend_from_slice(m);
        v
    };
    // (name, backup, verify, expected signer, decrypt key, decrypt)
    let inv = |name: &str, b: Vec<u8>, verify: &str, decrypt: &str| json!({ "name": name, "backup": hex(&b), "verify": verify, "decrypt": decrypt });
    let mut swapped_signer = ct[..sig_at].to_vec();
    swapped_signer[FIXED_LEN + P384_POINT_LEN..][..32].copy_from_slice(&theirs.public_key());
    let swapped_signer = sign_as(&swapped_signer, &theirs);
    let mut off_curve = ct.clone();
    off_curve[FIXED_LEN + P384_POINT_LEN - 1] ^= 1;
    let invalid = json!([
        json!({ "name": "wrong recipient key", "backup": hex(&ct), "verify": "ok", "decrypt_with": "other", "decrypt": "recipient" }),
        inv(
            "metadata byte changed",
            flipped(in_value, 1),
            "signature",
            "fail"
        ),
        inv(
            "metadata byte changed, re-signed",
            resign(&ct, |s| s[in_value] ^= 1),
            "ok",
            "commitment"
        ),
        inv(
            "signer key replaced, re-signed by the new key",
            swapped_signer.clone(),
            "ok",
            "commitment"
        ),
        json!({ "name": "signer key replaced, re-signed by the new key, original signer expected", "backup": hex(&swapped_signer),
            "expected_signer": ours, "verify": "signer", "decrypt": "signer" }),
        inv(
            "signature by another key",
            sign_as(&ct[..sig_at], &theirs),
            "signature",
            "signature"
        ),
        inv(
            "signature bit flipped",
            flipped(sig_at + 10, 0x20),
            "signature",
            "signature"
        ),
        inv(
            "segment 1 bit flipped",
            {
                let mut v = three.clone();
                v[body + SLOT + 7] ^= 0x40;
                v
            },
            "signature",
            "fail"
        ),
        inv(
            "segment 1 bit flipped, re-signed",
            resign(&three, |s| s[body + SLOT + 7] ^= 0x40),
            "ok",
            "tag"
        ),
        inv(
            "segments 0 and 1 swapped, re-signed",
            resign(&three, |s| s[body..body + 2 * SLOT].rotate_left(SLOT)),
            "ok",
            "tag"
        ),
        inv(
            "stream commitment bit flipped, re-signed",
            resign(&ct, |s| s[hl + 40] ^= 1),
            "ok",
            "commitment"
        ),
        inv(
            "stream nonce bit flipped, re-signed",
            resign(&ct, |s| s[hl + 7] ^= 1),
            "ok",
            "commitment"
        ),
        inv(
            "recipient key id changed, re-signed",
            resign(&ct, |s| s[10] ^= 1),
            "ok",
            "recipient"
        ),
        inv(
            "truncated at a segment boundary, re-signed",
            resign(&three, |s| s.truncate(body + 2 * SLOT)),
            "ok",
            "truncated"
        ),
        inv(
            "empty final segment after segment 0, re-signed",
            resign(&three, |s| {
                s.truncate(body + SLOT);
                s.extend_from_slice(&[0; 16])
            }),
            "malformed",
            "fail"
        ),
        inv(
            "final segment shorter than a tag, re-signed",
            resign(&three, |s| s.truncate(body + 2 * SLOT + 10)),
            "malformed",
            "fail"
        ),
        inv(
            "no segments, re-signed",
            resign(&ct, |s| s.truncate(body)),
            "malformed",
            "fail"
        ),
        inv(
            "no stream header, re-signed",
            resign(&ct, |s| s.truncate(hl)),
            "malformed",
            "malformed"
        ),
        inv(
            "stream key source 0x01, re-signed",
            resign(&ct, |s| s[hl + 6] = 1),
            "malformed",
            "malformed"
        ),
        inv(
            "last byte of the final segment cut, re-signed",
            resign(&ct, |s| {
                s.pop();
            }),
            "ok",
            "tag"
        ),
        inv(
            "truncated by one byte",
            ct[..ct.len() - 1].to_vec(),
            "incomplete",
            "incomplete"
        ),
        inv(
            "one byte appended",
            [&ct[..], &[0]].concat(),
            "incomplete",
            "incomplete"
        ),
        inv(
            "trailer appended again",
            [&ct[..], &ct[sig_at..]].concat(),
            "signature",
            "fail"
        ),
        inv(
            "signature length 0",
            {
                let mut v = ct.clone();
                let n = v.len();
                v[n - 8..n - 6].copy_from_slice(&[0, 0]);
                v
            },
            "malformed",
            "malformed"
        ),
        inv(
            "format version 2, re-signed",
            resign(&ct, |s| s[3] = 2),
            "unsupported",
            "unsupported"
        ),
        inv(
            "algorithm id 2, re-signed",
            resign(&ct, |s| s[4] = 2),
            "unsupported",
            "unsupported"
        ),
        inv(
            "signer algorithm 3, re-signed",
            resign(&ct, |s| s[5] = 3),
            "unsupported",
            "unsupported"
        ),
        inv(
            "bad magic, re-signed",
            resign(&ct, |s| s[2] = b'S'),
            "malformed",
            "malformed"
        ),
        inv(
            "ephemeral key not on the curve, re-signed",
            resign(&off_curve, |_| {}),
            "malformed",
            "malformed"
        ),
        inv(
            "metadata length 65537, re-signed",
            resign(&ct, |s| s[meta_at - 4..meta_at]
                .copy_from_slice(&65537u32.to_be_bytes())),
            "malformed",
            "malformed"
        ),
        inv(
            "metadata is a JSON array, re-signed",
            resign(&ct, |s| {
                let rest = s[hl..].to_vec();
                *s = new_header(br#"["2025-06-01T12:00:00Z","test-node",["records"]]"#);
                s.extend_from_slice(&rest);
            }),
            "malformed",
            "malformed"
        ),
        inv(
            "metadata lacks \"source\", re-signed",
            resign(&ct, |s| {
                let rest = s[hl..].to_vec();
                *s = new_header(br#"{"created":"2025-06-01T12:00:00Z","contents":[]}"#);
                s.extend_from_slice(&rest);
            }),
            "malformed",
            "malformed"
        ),
    ]);
    let doc = json!({
        "format": "phivault backup v1",
        "note": "docs/FORMAT.md §13 and §10. Plaintexts are the bytes i mod 251. Regenerate with PHIVAULT_WRITE_VECTORS=1 cargo test -p phivault-core backup_vectors",
        "recipient_private_key": hex(recipient().to_pkcs8().unwrap().expose_secret()),
        "recipient_public_key": hex(recipient().public_key().as_bytes()),
        "recipient_key_id": hex(&key_id(recipient().public_key())),
        "other_private_key": hex(other_recipient().to_pkcs8().unwrap().expose_secret()),
        "vectors": vectors,
        "invalid": invalid,
    });
    std::fs::write(
        vectors_path(),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();
}

/// The reason a vector's `verify`/`decrypt` field names for an error.
fn reason(r: Result<(), BackupError>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(BackupError::Malformed(_)) => "malformed",
        Err(BackupError::Unsupported { .. }) => "unsupported",
        Err(BackupError::Incomplete) => "incomplete",
        Err(BackupError::BadSignature) => "signature",
        Err(BackupError::UnexpectedSigner { .. }) => "signer",
        Err(BackupError::WrongRecipient { .. }) => "recipient",
        Err(BackupError::DecryptionFailed) => "commitment or tag",
        Err(BackupError::Truncated) => "truncated",
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn backup_vectors() {
    if std::env::var_os("PHIVAULT_WRITE_VECTORS").is_some() {
        generate_vectors();
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_path()).expect("vectors committed"))
            .unwrap();
    let key = EcdhP384PrivateKey::from_pkcs8(&crate::secret::SecretBytes::new(h(
        &doc["recipient_private_key"],
    )))
    .unwrap();
    assert_eq!(
        key.public_key().as_bytes()[..],
        h(&doc["recipient_public_key"])[..]
    );
    assert_eq!(
        key_id(key.public_key())[..],
        h(&doc["recipient_key_id"])[..]
    );
    let other = EcdhP384PrivateKey::from_pkcs8(&crate::secret::SecretBytes::new(h(
        &doc["other_private_key"],
    )))
    .unwrap();
    for v in doc["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let ct = h(&v["backup"]);
        let seed = SecretKey::from_slice(&h(&v["signer_private_key"])).unwrap();
        let signer = match v["signer_algorithm"].as_str().unwrap() {
            "ed25519" => SigningKey::ed25519_from_seed(&seed).unwrap(),
            _ => SigningKey::ecdsa_p256_from_scalar(&seed).unwrap(),
        };
        assert_eq!(signer.public_key(), h(&v["signer_public_key"]));
        let m: BackupMeta = serde_json::from_value(v["meta"].clone()).unwrap();
        let again = vector_backup(
            &signer,
            h(&v["ephemeral_private_key"]).try_into().unwrap(),
            h(&v["stream_nonce"]).try_into().unwrap(),
            v["segment_exp"].as_u64().unwrap() as u8,
            &m,
            v["plaintext_len"].as_u64().unwrap() as usize,
        );
        // ECDSA signatures are randomized: everything before them must match.
        let n = if v["deterministic"].as_bool().unwrap() {
            ct.len()
        } else {
            signed_len(&ct)
        };
        assert_eq!(again[..n.min(again.len())], ct[..n], "{name}");
        assert_eq!(
            crypto::sha256(&ct[..signed_len(&ct)])[..],
            h(&v["digest"])[..],
            "{name}"
        );
        let pt = pattern(v["plaintext_len"].as_u64().unwrap() as usize);
        assert_eq!(
            decrypt_with(&ct, &key, Some(&signer.public_key())).unwrap(),
            pt,
            "{name}"
        );
        let info = verify_integrity(&ct[..], Some(&signer.public_key())).unwrap();
        assert_eq!(info.header.meta, m);
        let k = backup_key(
            &key,
            &info.header.ephemeral,
            &info.header.ephemeral,
            key.public_key(),
            &info.header.bytes,
        )
        .unwrap();
        assert_eq!(k.expose_secret()[..], h(&v["backup_key"])[..], "{name}");
    }
    for v in doc["invalid"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let ct = h(&v["backup"]);
        let expected = v.get("expected_signer").map(h);
        let verify = reason(verify_integrity(&ct[..], expected.as_deref()).map(|_| ()));
        assert!(
            verify.contains(v["verify"].as_str().unwrap()),
            "{name}: verify gave {verify}"
        );
        let k = if v.get("decrypt_with").is_some() {
            &other
        } else {
            &key
        };
        let want = v["decrypt"].as_str().unwrap();
        let r = decrypt_with(&ct, k, expected.as_deref()).map(|_| ());
        let full = verify_full(&ct[..], k, expected.as_deref(), opts(None)).map(|_| ());
        assert_eq!(r.is_ok(), full.is_ok(), "{name}");
        match want {
            "fail" => assert!(r.is_err(), "{name}: decrypted"),
            _ => {
                let got = reason(r);
                assert!(got.contains(want), "{name}: decrypt gave {got}");
            }
        }
    }
}
