//! Our own committed test vectors (tests/vectors/ at the workspace root),
//! checked in both directions: the code must reproduce every valid vector
//! byte for byte from its inputs, decrypt it, and reject every invalid one.
//!
//! Regenerate (only when a format deliberately changes, with a new version
//! byte) with `PHIVAULT_WRITE_VECTORS=1 cargo test -p phivault-core --test vectors`.

use phivault_core::keys::{KeyRingName, KeyVersion, StaticKeys};
use phivault_core::secret::SecretKey;
use phivault_core::{envelope, stream};
use serde_json::{Value, json};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn keys(ring: &str, version: u32, key: &[u8]) -> StaticKeys {
    let mut k = StaticKeys::new();
    k.insert(
        KeyRingName::parse(ring).unwrap(),
        KeyVersion::new(version).unwrap(),
        SecretKey::from_slice(key).unwrap(),
    );
    k
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn generate() {
    let ring = "test/vectors";
    let key = [0x0fu8; 32];
    let wrong = [0xf0u8; 32];
    let rn = KeyRingName::parse(ring).unwrap();
    let mut env = vec![];
    for (i, (name, version, ctx, pt)) in [
        ("empty plaintext, empty context", 1u32, &b""[..], &b""[..]),
        (
            "short value with context",
            1,
            b"patients/123/ssn",
            b"123-45-6789",
        ),
        ("version 7, binary", 7, b"ctx", &[0u8, 1, 2, 255][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let k = keys(ring, version, &key);
        let nonce = [0x10 + i as u8; 32]; // distinct per vector: no data key is reused
        let ct = envelope::encrypt_with_nonce(
            &k,
            envelope::Algorithm::Aes256GcmKbkdfSha256Commit,
            &rn,
            KeyVersion::new(version).unwrap(),
            nonce,
            ctx,
            pt,
        )
        .unwrap();
        env.push(json!({ "name": name, "ring": ring, "version": version, "ring_key": hex::encode(key), "nonce": hex::encode(nonce),
            "context": hex::encode(ctx), "plaintext": hex::encode(pt), "ciphertext": hex::encode(&ct), "text": envelope::to_text(&ct) }));
    }
    {
        // Algorithm 0x02: AES-128-GCM (transit keys of type aes128-gcm96).
        let (version, ctx, pt) = (1u32, &b"orders/9/card"[..], &b"4111 1111 1111 1111"[..]);
        let k = keys(ring, version, &key);
        let nonce = [0x20u8; 32];
        let ct = envelope::encrypt_with_nonce(
            &k,
            envelope::Algorithm::Aes128GcmKbkdfSha256Commit,
            &rn,
            KeyVersion::new(version).unwrap(),
            nonce,
            ctx,
            pt,
        )
        .unwrap();
        env.push(json!({ "name": "algorithm 0x02 (AES-128-GCM)", "algorithm": 2, "ring": ring, "version": version, "ring_key": hex::encode(key), "nonce": hex::encode(nonce),
            "context": hex::encode(ctx), "plaintext": hex::encode(pt), "ciphertext": hex::encode(&ct), "text": envelope::to_text(&ct) }));
    }
    let good = h(env[1]["ciphertext"].as_str().unwrap());
    let ctx = hex::encode(b"patients/123/ssn");
    let bad = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = good.clone();
        f(&mut v);
        hex::encode(v)
    };
    let inv = |name: &str, ct: String, c: &str, k: &[u8; 32], expect: &str| json!({ "name": name, "ciphertext": ct, "context": c, "ring_key": hex::encode(k), "expect": expect });
    let invalid = json!([
        inv(
            "wrong ring key",
            hex::encode(&good),
            &ctx,
            &wrong,
            "commitment"
        ),
        inv(
            "nonce bit flipped",
            bad(&|v| v[6 + ring.len() + 4] ^= 1),
            &ctx,
            &key,
            "commitment"
        ),
        inv(
            "commitment bit flipped",
            bad(&|v| v[6 + ring.len() + 36] ^= 1),
            &ctx,
            &key,
            "commitment"
        ),
        inv(
            "key version changed to 2",
            bad(&|v| v[6 + ring.len() + 3] = 2),
            &ctx,
            &key,
            "commitment"
        ),
        inv(
            "ciphertext bit flipped",
            bad(&|v| v[6 + ring.len() + 68] ^= 4),
            &ctx,
            &key,
            "tag"
        ),
        inv(
            "tag bit flipped",
            bad(&|v| *v.last_mut().unwrap() ^= 0x80),
            &ctx,
            &key,
            "tag"
        ),
        inv(
            "wrong context",
            hex::encode(&good),
            &hex::encode(b"patients/124/ssn"),
            &key,
            "tag"
        ),
        inv(
            "truncated by one byte",
            bad(&|v| {
                v.pop();
            }),
            &ctx,
            &key,
            "tag"
        ),
        inv("one byte appended", bad(&|v| v.push(0)), &ctx, &key, "tag"),
        inv("bad magic", bad(&|v| v[0] = b'X'), &ctx, &key, "malformed"),
        inv(
            "format version 2",
            bad(&|v| v[3] = 2),
            &ctx,
            &key,
            "unsupported"
        ),
        inv(
            "algorithm id 3",
            bad(&|v| v[4] = 3),
            &ctx,
            &key,
            "unsupported"
        ),
        inv("name length 0", bad(&|v| v[5] = 0), &ctx, &key, "malformed"),
        inv(
            "upper-case name",
            bad(&|v| v[6] = b'T'),
            &ctx,
            &key,
            "malformed"
        ),
        inv(
            "key version 0",
            bad(&|v| v[6 + ring.len() + 3] = 0),
            &ctx,
            &key,
            "malformed"
        ),
        inv(
            "shorter than header and tag",
            hex::encode(&good[..6 + ring.len() + 4 + 64 + 15]),
            &ctx,
            &key,
            "malformed"
        ),
    ]);
    let doc = json!({ "format": "phivault envelope v1", "note": "docs/FORMAT.md §3 and §8", "vectors": env, "invalid": invalid,
        "invalid_texts": ["pve:" .to_string() + &envelope::to_text(&good)[4..] + "=", envelope::to_text(&good).replacen("pve:", "PVE:", 1),
            envelope::to_text(&good).replacen('-', "+", 1).replacen('_', "/", 1), format!("{} {}", &envelope::to_text(&good)[..20], &envelope::to_text(&good)[20..])] });
    std::fs::write(
        dir().join("envelope.json"),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();

    let mut st = vec![];
    let k = keys(ring, 3, &key);
    for (i, (name, exp, len)) in [
        ("empty", 12u8, 0usize),
        ("one byte", 12, 1),
        ("exactly one segment", 12, 4096),
        ("one segment and a byte", 12, 4097),
        ("three segments", 12, 10000),
        ("default 64 KiB segments, two segments", 16, 70000),
    ]
    .into_iter()
    .enumerate()
    {
        let pt = pattern(len);
        let nonce = [0x20 + i as u8; 32];
        let mut ct = Vec::new();
        stream::encrypt_with_nonce(
            &k,
            &rn,
            nonce,
            &pt[..],
            &mut ct,
            stream::Options {
                segment_exp: exp,
                pool: None,
            },
            &mut |_| {},
        )
        .unwrap();
        st.push(json!({ "name": name, "ring": ring, "version": 3, "ring_key": hex::encode(key), "segment_exp": exp,
            "plaintext_len": len, "ciphertext": hex::encode(&ct) }));
    }
    let three = h(st[4]["ciphertext"].as_str().unwrap());
    let hl = 8 + ring.len() + 4 + 64;
    let slot = 4096 + 16;
    let sb = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = three.clone();
        f(&mut v);
        hex::encode(v)
    };
    let sinv = |name: &str, ct: String, k: &[u8; 32], expect: &str| json!({ "name": name, "ciphertext": ct, "ring_key": hex::encode(k), "expect": expect });
    // An "empty final segment after segment 0": a one-segment file sealed
    // as non-final followed by an empty final segment, built by hand.
    let one = h(st[2]["ciphertext"].as_str().unwrap());
    let invalid = json!([
        sinv("wrong ring key", hex::encode(&three), &wrong, "commitment"),
        sinv(
            "nonce bit flipped",
            sb(&|v| v[12 + ring.len()] ^= 1),
            &key,
            "commitment"
        ),
        sinv(
            "segment size exponent changed to 13",
            sb(&|v| v[5] = 13),
            &key,
            "commitment"
        ),
        sinv(
            "segment size exponent 11",
            sb(&|v| v[5] = 11),
            &key,
            "malformed"
        ),
        sinv("key source 2", sb(&|v| v[6] = 2), &key, "malformed"),
        sinv("format version 2", sb(&|v| v[3] = 2), &key, "unsupported"),
        sinv("algorithm id 9", sb(&|v| v[4] = 9), &key, "unsupported"),
        sinv(
            "truncated at a segment boundary",
            hex::encode(&three[..hl + 2 * slot]),
            &key,
            "truncated"
        ),
        sinv(
            "truncated inside the last segment",
            hex::encode(&three[..three.len() - 1]),
            &key,
            "tag"
        ),
        sinv(
            "truncated inside a middle segment",
            hex::encode(&three[..hl + slot + 100]),
            &key,
            "tag"
        ),
        sinv(
            "segments 0 and 1 swapped",
            sb(&|v| v[hl..hl + 2 * slot].rotate_left(slot)),
            &key,
            "tag"
        ),
        sinv(
            "segment 0 appended",
            sb(&|v| {
                let s0 = v[hl..hl + slot].to_vec();
                v.extend_from_slice(&s0)
            }),
            &key,
            "tag"
        ),
        sinv("one byte appended", sb(&|v| v.push(0)), &key, "tag"),
        sinv(
            "bit flipped in segment 1",
            sb(&|v| v[hl + slot + 7] ^= 0x40),
            &key,
            "tag"
        ),
        sinv(
            "empty final segment after segment 0",
            hex::encode([&one[..], &[0u8; 16][..]].concat()),
            &key,
            "tag"
        ),
        sinv("header only", hex::encode(&three[..hl]), &key, "truncated"),
        sinv(
            "final segment shorter than a tag",
            hex::encode(&three[..hl + 2 * slot + 10]),
            &key,
            "truncated"
        ),
    ]);
    let doc = json!({ "format": "phivault stream v1", "note": "docs/FORMAT.md §4 and §8", "vectors": st, "invalid": invalid, "invalid_ring_version": 3 });
    std::fs::write(
        dir().join("stream.json"),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();
}

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join(name)).expect("vectors committed"))
        .unwrap()
}

#[test]
fn envelope_vectors() {
    if std::env::var_os("PHIVAULT_WRITE_VECTORS").is_some() {
        generate();
    }
    let doc = load("envelope.json");
    for v in doc["vectors"].as_array().unwrap() {
        let ring = v["ring"].as_str().unwrap();
        let version = v["version"].as_u64().unwrap() as u32;
        let k = keys(ring, version, &h(v["ring_key"].as_str().unwrap()));
        let ct = h(v["ciphertext"].as_str().unwrap());
        let nonce: [u8; 32] = h(v["nonce"].as_str().unwrap()).try_into().unwrap();
        let ctx = h(v["context"].as_str().unwrap());
        let pt = h(v["plaintext"].as_str().unwrap());
        let ring = KeyRingName::parse(ring).unwrap();
        let alg = envelope::Algorithm::from_id(v["algorithm"].as_u64().unwrap_or(1) as u8).unwrap();
        let again = envelope::encrypt_with_nonce(
            &k,
            alg,
            &ring,
            KeyVersion::new(version).unwrap(),
            nonce,
            &ctx,
            &pt,
        )
        .unwrap();
        assert_eq!(again, ct, "{}", v["name"]);
        assert_eq!(envelope::parse_header(&ct).unwrap().algorithm, alg);
        assert_eq!(envelope::decrypt(&k, &ct, &ctx).unwrap(), pt);
        assert_eq!(
            envelope::from_text(v["text"].as_str().unwrap()).unwrap(),
            ct
        );
    }
    for v in doc["invalid"].as_array().unwrap() {
        let k = keys("test/vectors", 1, &h(v["ring_key"].as_str().unwrap()));
        let r = envelope::decrypt(
            &k,
            &h(v["ciphertext"].as_str().unwrap()),
            &h(v["context"].as_str().unwrap()),
        );
        let got = match r {
            Ok(_) => panic!("accepted invalid vector {}", v["name"]),
            Err(envelope::EnvelopeError::DecryptionFailed) => "commitment or tag",
            Err(
                envelope::EnvelopeError::UnsupportedVersion(_)
                | envelope::EnvelopeError::UnknownAlgorithm(_),
            ) => "unsupported",
            Err(envelope::EnvelopeError::Malformed(_)) => "malformed",
            // The header names a version the reader has no key for.
            Err(envelope::EnvelopeError::Key(_)) => "commitment",
            Err(e) => panic!("unexpected error {e}"),
        };
        assert!(
            got.contains(v["expect"].as_str().unwrap()),
            "{}: got {got}",
            v["name"]
        );
    }
    for t in doc["invalid_texts"].as_array().unwrap() {
        assert!(
            envelope::from_text(t.as_str().unwrap()).is_err(),
            "accepted text {t}"
        );
    }
}

#[test]
fn stream_vectors() {
    let doc = load("stream.json");
    for v in doc["vectors"].as_array().unwrap() {
        let k = keys(
            v["ring"].as_str().unwrap(),
            v["version"].as_u64().unwrap() as u32,
            &h(v["ring_key"].as_str().unwrap()),
        );
        let ct = h(v["ciphertext"].as_str().unwrap());
        let pt = pattern(v["plaintext_len"].as_u64().unwrap() as usize);
        let hdr = stream::read_header(&mut &ct[..]).unwrap();
        let mut again = Vec::new();
        let opts = stream::Options {
            segment_exp: hdr.segment_exp,
            pool: None,
        };
        stream::encrypt_with_nonce(
            &k,
            &hdr.ring,
            hdr.nonce,
            &pt[..],
            &mut again,
            opts,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(again, ct, "{}", v["name"]);
        let mut out = Vec::new();
        stream::decrypt(
            &k,
            &ct[..],
            &mut out,
            stream::Options::default(),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(out, pt);
    }
    for v in doc["invalid"].as_array().unwrap() {
        let k = keys("test/vectors", 3, &h(v["ring_key"].as_str().unwrap()));
        let ct = h(v["ciphertext"].as_str().unwrap());
        let r = stream::decrypt(
            &k,
            &ct[..],
            Vec::new(),
            stream::Options::default(),
            &mut |_| {},
        );
        let got = match r {
            Ok(_) => panic!("accepted invalid vector {}", v["name"]),
            Err(stream::StreamError::DecryptionFailed) => "commitment or tag",
            Err(stream::StreamError::Truncated) => "truncated",
            Err(
                stream::StreamError::UnsupportedVersion(_)
                | stream::StreamError::UnknownAlgorithm(_),
            ) => "unsupported",
            Err(stream::StreamError::Malformed(_)) => "malformed",
            Err(e) => panic!("unexpected error {e}"),
        };
        assert!(
            got.contains(v["expect"].as_str().unwrap()),
            "{}: got {got}",
            v["name"]
        );
    }
}
