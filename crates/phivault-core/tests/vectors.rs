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
    let mut env = vec![];
    for (name, version, ctx, pt) in [
        ("empty plaintext, empty context", 1u32, &b""[..], &b""[..]),
        (
            "short value with context",
            1,
            b"patients/123/ssn",
            b"123-45-6789",
        ),
        ("version 7, binary", 7, b"ctx", &[0u8, 1, 2, 255][..]),
    ] {
        let k = keys(ring, version, &key);
        let nonce = [version as u8; 32];
        let ct = envelope::encrypt_with_nonce(
            &k,
            &KeyRingName::parse(ring).unwrap(),
            KeyVersion::new(version).unwrap(),
            nonce,
            ctx,
            pt,
        )
        .unwrap();
        env.push(json!({ "name": name, "ring": ring, "version": version, "ring_key": hex::encode(key), "nonce": hex::encode(nonce),
            "context": hex::encode(ctx), "plaintext": hex::encode(pt), "ciphertext": hex::encode(&ct), "text": envelope::to_text(&ct) }));
    }
    let good = h(env[1]["ciphertext"].as_str().unwrap());
    let mut flip = good.clone();
    flip[50] ^= 1;
    let mut tag = good.clone();
    *tag.last_mut().unwrap() ^= 0x80;
    let invalid = json!([
        { "name": "nonce bit flipped (commitment fails)", "ciphertext": hex::encode(&flip), "context": hex::encode(b"patients/123/ssn") },
        { "name": "tag bit flipped", "ciphertext": hex::encode(&tag), "context": hex::encode(b"patients/123/ssn") },
        { "name": "wrong context", "ciphertext": hex::encode(&good), "context": hex::encode(b"patients/124/ssn") },
        { "name": "truncated", "ciphertext": hex::encode(&good[..good.len() - 1]), "context": hex::encode(b"patients/123/ssn") },
    ]);
    let doc = json!({ "format": "phivault envelope v1", "note": "ring_key is the key of the ring version; see docs/FORMAT.md §2-3", "vectors": env, "invalid": invalid, "invalid_ring_key": hex::encode(key) });
    std::fs::write(
        dir().join("envelope.json"),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();

    let mut st = vec![];
    let k = keys(ring, 3, &key);
    for (name, len) in [
        ("empty", 0usize),
        ("one byte", 1),
        ("exactly one segment", 4096),
        ("one segment and a byte", 4097),
        ("three segments", 10000),
    ] {
        let pt = pattern(len);
        let nonce = [len as u8; 32];
        let mut ct = Vec::new();
        stream::encrypt_with_nonce(
            &k,
            &KeyRingName::parse(ring).unwrap(),
            nonce,
            &pt[..],
            &mut ct,
            stream::Options {
                segment_exp: 12,
                pool: None,
            },
            &mut |_| {},
        )
        .unwrap();
        st.push(json!({ "name": name, "ring": ring, "version": 3, "ring_key": hex::encode(key), "segment_exp": 12,
            "plaintext_len": len, "plaintext": "bytes i mod 251 for i in 0..plaintext_len", "ciphertext": hex::encode(&ct) }));
    }
    let three = h(st[4]["ciphertext"].as_str().unwrap());
    let hl = 8 + ring.len() + 4 + 64;
    let slot = 4096 + 16;
    let mut swapped = three.clone();
    swapped[hl..hl + 2 * slot].rotate_left(slot);
    let mut appended = three.clone();
    appended.extend_from_slice(&three[hl..hl + slot]);
    let invalid = json!([
        { "name": "truncated at a segment boundary", "ciphertext": hex::encode(&three[..hl + 2 * slot]) },
        { "name": "segments 0 and 1 swapped", "ciphertext": hex::encode(&swapped) },
        { "name": "segment appended", "ciphertext": hex::encode(&appended) },
        { "name": "header only", "ciphertext": hex::encode(&three[..hl]) },
    ]);
    let doc = json!({ "format": "phivault stream v1", "note": "see docs/FORMAT.md §2 and §4", "vectors": st, "invalid": invalid, "invalid_ring_key": hex::encode(key), "invalid_ring_version": 3 });
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
        let again = envelope::encrypt_with_nonce(
            &k,
            &KeyRingName::parse(ring).unwrap(),
            KeyVersion::new(version).unwrap(),
            nonce,
            &ctx,
            &pt,
        )
        .unwrap();
        assert_eq!(again, ct, "{}", v["name"]);
        assert_eq!(envelope::decrypt(&k, &ct, &ctx).unwrap(), pt);
        assert_eq!(
            envelope::from_text(v["text"].as_str().unwrap()).unwrap(),
            ct
        );
    }
    let k = keys(
        "test/vectors",
        1,
        &h(doc["invalid_ring_key"].as_str().unwrap()),
    );
    for v in doc["invalid"].as_array().unwrap() {
        let r = envelope::decrypt(
            &k,
            &h(v["ciphertext"].as_str().unwrap()),
            &h(v["context"].as_str().unwrap()),
        );
        assert!(r.is_err(), "accepted invalid vector {}", v["name"]);
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
        stream::encrypt_with_nonce(
            &k,
            &hdr.ring,
            hdr.nonce,
            &pt[..],
            &mut again,
            stream::Options {
                segment_exp: hdr.segment_exp,
                pool: None,
            },
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
    let k = keys(
        "test/vectors",
        3,
        &h(doc["invalid_ring_key"].as_str().unwrap()),
    );
    for v in doc["invalid"].as_array().unwrap() {
        let r = stream::decrypt(
            &k,
            &h(v["ciphertext"].as_str().unwrap())[..],
            Vec::new(),
            stream::Options::default(),
            &mut |_| {},
        );
        assert!(r.is_err(), "accepted invalid vector {}", v["name"]);
    }
}
