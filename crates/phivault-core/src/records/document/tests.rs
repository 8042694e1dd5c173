use super::*;
use crate::keys::{KeyRingName, KeyVersion, StaticKeys};
use proptest::prelude::*;
use serde_json::json;

const SCHEMA: &str = r#"{
  "expected_rows": 1000, "subject": "patient_id",
  "fields": {
    "patient_id": {"class": "phi_search", "normalize": ["whitespace"]},
    "name[*].family": {"class": "phi_search", "normalize": ["lowercase"], "mask": "initials"},
    "name[*].given": {"class": "phi", "mask": "initials"},
    "birth_date": {"class": "phi", "mask": "year"},
    "ssn": {"class": "token", "mask": "last4"},
    "mrn": {"class": "token", "alphabet": "upper_alnum"},
    "gender": {"class": "plain"},
    "meta.source": {"class": "plain"}
  },
  "indexes": {"id_dob": {"fields": ["patient_id", "birth_date"]}}
}"#;

fn setup(schema: &str) -> (Schema, SubjectKey, IndexKeys) {
    let s = Schema::parse_json(schema.as_bytes()).unwrap();
    let ks = StaticKeys::random("records-index/p");
    let ring = KeyRingName::parse("records-index/p").unwrap();
    let names: Vec<&str> = s.indexes.iter().map(|i| i.name.as_str()).collect();
    let ix = IndexKeys::derive(&ks, &ring, KeyVersion::MIN, "p", names).unwrap();
    (s, SubjectKey::generate().unwrap(), ix)
}

fn patient() -> Value {
    json!({
        "patient_id": "P-1001",
        "name": [{"family": "Smith", "given": ["Mary", "Ann"]}],
        "birth_date": "1970-03-14",
        "ssn": "123-45-6789",
        "mrn": "AB12345",
        "gender": "female",
        "meta": {"source": "ehr", "note": "allergic to penicillin"},
        "telecom": []
    })
}

#[test]
fn round_trip_and_views() {
    let (s, k, ix) = setup(SCHEMA);
    let doc = patient();
    let sealed = seal(&s, 1, "p", "r1", &doc, &k, &ix).unwrap();
    let text = serde_json::to_string(&sealed.doc).unwrap();
    // The stored body is the same document.
    assert_eq!(
        serde_json::from_str::<StoredDoc>(&sealed.body).unwrap(),
        sealed.doc
    );
    assert_eq!(
        serde_json::from_str::<Value>(&sealed.plain_json).unwrap(),
        sealed.doc.plain
    );
    for phi in [
        "P-1001",
        "Smith",
        "Mary",
        "1970-03-14",
        "123-45-6789",
        "AB12345",
        "penicillin",
    ] {
        assert!(!text.contains(phi), "{phi} leaked into {text}");
    }
    assert!(text.contains("female") && text.contains("ehr"));
    // Tokens keep the shape.
    let t = &sealed.doc.tokens["ssn"];
    assert_eq!(t.len(), 11);
    assert_eq!(&t[3..4], "-");
    assert_ne!(t, "123-45-6789");
    assert_eq!(sealed.doc.tokens["mrn"].len(), 7);
    assert_eq!(
        open(&s, "p", "r1", &sealed.body, &k, View::Full).unwrap(),
        doc
    );
    let masked = open(&s, "p", "r1", &sealed.body, &k, View::Masked).unwrap();
    assert_eq!(
        masked,
        json!({
            "name": [{"family": "S."}],
            "birth_date": "1970",
            "ssn": "***-**-6789",
            "gender": "female",
            "meta": {"source": "ehr"}
        })
    );
    let red = open(&s, "p", "r1", &sealed.body, &k, View::Redacted).unwrap();
    assert_eq!(
        red,
        json!({"name": [{}], "gender": "female", "meta": {"source": "ehr"}})
    );
    // Three indexes: patient_id, name[*].family, id_dob.
    assert_eq!(sealed.indexes.len(), 3);
    let id_ix = s.index("patient_id").unwrap();
    let want = ix
        .blind_index("patient_id", id_ix.bits, &["P-1001"])
        .unwrap();
    assert!(sealed.indexes.contains(&("patient_id".into(), want)));
    assert_eq!(subject_of(&s, &doc).unwrap().as_deref(), Some("P-1001"));
    // Peeking at an index's fields (for false-positive removal).
    let ix_name = s.index("name[*].family").unwrap();
    let peeked = peek_fields(&s, "p", "r1", &sealed.body, &k, &ix_name.fields).unwrap();
    assert!(peek_matches(&s, ix_name, &peeked, &["smith".to_string()]));
    assert!(!peek_matches(&s, ix_name, &peeked, &["smyth".to_string()]));
    let comp = s.index("id_dob").unwrap();
    let peeked = peek_fields(&s, "p", "r1", &sealed.body, &k, &comp.fields).unwrap();
    assert!(peek_matches(
        &s,
        comp,
        &peeked,
        &["P-1001".into(), "1970-03-14".into()]
    ));
    assert!(!peek_matches(
        &s,
        comp,
        &peeked,
        &["P-1001".into(), "1970-03-15".into()]
    ));
    assert!(
        peek_fields(&s, "p", "r2", &sealed.body, &k, &comp.fields).is_err(),
        "bound to the record id"
    );
}

#[test]
fn ciphertexts_are_bound_to_record_and_field() {
    let (s, k, ix) = setup(SCHEMA);
    let sealed = seal(&s, 1, "p", "r1", &patient(), &k, &ix).unwrap();
    let (a, body_a) = (sealed.doc, sealed.body);
    // Same document under another id: the MAC and every context differ.
    assert!(matches!(
        open(&s, "p", "r2", &body_a, &k, View::Full),
        Err(RecordError::Integrity { .. })
    ));
    assert!(matches!(
        open(&s, "q", "r1", &body_a, &k, View::Full),
        Err(RecordError::Integrity { .. })
    ));
    // Move one value to another field and re-MAC honestly: the field's own
    // AEAD context still catches it.
    let mut moved = a.clone();
    let v = moved.sealed["birth_date"].clone();
    moved.sealed.insert("patient_id".into(), v);
    let moved = remac(&k, "p", "r1", &moved);
    match open(&s, "p", "r1", &moved, &k, View::Full) {
        Err(RecordError::Integrity { path }) => assert_eq!(path, "patient_id"),
        other => panic!("{other:?}"),
    }
    // Any change to plain values, tokens or the set of fields is caught.
    for edit in 0..4 {
        let mut t = a.clone();
        match edit {
            0 => t.plain["gender"] = json!("male"),
            1 => {
                t.tokens.insert("ssn".into(), "999-99-9999".into());
            }
            2 => {
                t.sealed.remove("birth_date");
            }
            _ => t.v = 2,
        }
        assert!(
            matches!(
                open(
                    &s,
                    "p",
                    "r1",
                    &serde_json::to_string(&t).unwrap(),
                    &k,
                    View::Full
                ),
                Err(RecordError::Integrity { .. })
            ),
            "edit {edit}"
        );
    }
    // A wrong subject key fails the same way.
    let other = SubjectKey::generate().unwrap();
    assert!(matches!(
        open(&s, "p", "r1", &body_a, &other, View::Full),
        Err(RecordError::Integrity { .. })
    ));
}

#[test]
fn bodies_of_another_shape_fail_integrity() {
    let (s, k, ix) = setup(SCHEMA);
    let body = seal(&s, 1, "p", "r1", &patient(), &k, &ix).unwrap().body;
    let mac_at = body.rfind(r#","mac":""#).unwrap();
    let bad = [
        format!("{body} "),
        format!("{body}}}"),
        body.replacen(r#"{"v":1,"#, r#"{"v":1,"v":2,"#, 1),
        format!("{},\"plain\":{{}}{}", &body[..mac_at], &body[mac_at..]),
        body[..mac_at].to_string(),
        String::new(),
    ];
    for b in bad {
        assert!(
            matches!(
                open(&s, "p", "r1", &b, &k, View::Full),
                Err(RecordError::Integrity { .. })
            ),
            "{b}"
        );
    }
}

#[test]
fn violations_name_the_field() {
    let strict = SCHEMA.replacen(
        "\"expected_rows\"",
        "\"unknown_fields\": \"reject\", \"expected_rows\"",
        1,
    );
    let (s, k, ix) = setup(&strict);
    let err = |d: Value| seal(&s, 1, "p", "r", &d, &k, &ix).unwrap_err().to_string();
    let mut d = patient();
    d["meta"].as_object_mut().unwrap().remove("note");
    d.as_object_mut().unwrap().remove("telecom");
    assert!(seal(&s, 1, "p", "r", &d, &k, &ix).is_ok());
    let mut e = d.clone();
    e["diagnosis"] = json!("flu");
    let m = err(e);
    assert!(
        m.contains("field diagnosis") && m.contains("reject") && !m.contains("flu"),
        "{m}"
    );
    let mut e = d.clone();
    e["ssn"] = json!("12-34");
    let m = err(e);
    assert!(m.contains("field ssn") && m.contains("at least 6"), "{m}");
    let mut e = d.clone();
    e["mrn"] = json!("ab12345");
    assert!(err(e).contains("upper-case"));
    let mut e = d.clone();
    e["ssn"] = json!(123456789);
    assert!(err(e).contains("must be a string"));
    let mut e = d.clone();
    e.as_object_mut().unwrap().remove("patient_id");
    assert!(
        subject_of(&s, &e)
            .unwrap_err()
            .to_string()
            .contains("field patient_id")
    );
    assert!(err(json!([1])).contains("JSON object"));
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "a": deep });
    }
    let (s2, k2, ix2) = setup(r#"{"fields": {}}"#);
    assert!(
        seal(&s2, 1, "p", "r", &json!({"x": deep}), &k2, &ix2).is_ok(),
        "an unknown subtree is sealed whole"
    );
    let mut arr = json!(1);
    for _ in 0..40 {
        arr = json!([arr]);
    }
    let s3 = Schema::parse_json(
        format!(
            r#"{{"fields": {{"x{}": {{"class": "phi"}}}}}}"#,
            "[*]".repeat(15)
        )
        .as_bytes(),
    )
    .unwrap();
    let _ = seal(&s3, 1, "p", "r", &json!({"x": arr}), &k2, &ix2);
}

#[test]
fn floats_round_trip_exactly() {
    // Found by the fuzzer: without serde_json's float_roundtrip, a float
    // read back from storage could differ in its last bit, which would
    // change values and break the record MAC of plain fields.
    let (s, k, ix) = setup(r#"{"fields": {"p": {"class": "plain"}}}"#);
    let d: Value = serde_json::from_str(
        r#"{"p": 1.0333333333333333333333333333e125, "q": 0.30000000000000004}"#,
    )
    .unwrap();
    let sealed = seal(&s, 1, "p", "r", &d, &k, &ix).unwrap();
    // The body is stored as text and parsed again on every read.
    let text: String = serde_json::from_str(&serde_json::to_string(&sealed.body).unwrap()).unwrap();
    assert_eq!(open(&s, "p", "r", &text, &k, View::Full).unwrap(), d);
}

#[test]
fn unknown_fields_default_to_phi() {
    let (s, k, ix) = setup(r#"{"fields": {"kind": {"class": "plain"}}}"#);
    let d = json!({"kind": "lab", "result": {"hiv": "positive"}, "list": [1, 2]});
    let sealed = seal(&s, 1, "p", "r", &d, &k, &ix).unwrap();
    let text = serde_json::to_string(&sealed.doc).unwrap();
    assert!(!text.contains("positive") && !text.contains("hiv"));
    assert_eq!(sealed.doc.plain, json!({"kind": "lab"}));
    assert_eq!(open(&s, "p", "r", &sealed.body, &k, View::Full).unwrap(), d);
    assert_eq!(
        open(&s, "p", "r", &sealed.body, &k, View::Masked).unwrap(),
        json!({"kind": "lab"})
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}|name|gender|ssn", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_document_round_trips_or_is_refused(
        m in proptest::collection::btree_map("[a-z]{1,4}|name|gender|meta", json_value(), 0..6)
    ) {
        let (s, k, ix) = setup(r#"{"fields": {
            "name[*].family": {"class": "phi_search"}, "gender": {"class": "plain"},
            "meta.source": {"class": "plain"}}}"#);
        let d = Value::Object(m.into_iter().collect());
        if let Ok(sealed) = seal(&s, 1, "p", "r", &d, &k, &ix) {
            prop_assert_eq!(open(&s, "p", "r", &sealed.body, &k, View::Full).unwrap(), d.clone());
            prop_assert!(open(&s, "p", "r", &sealed.body, &k, View::Redacted).is_ok());
            prop_assert_eq!(body_version(&sealed.body), Some(1));
        }
    }
}

#[test]
fn keys_kept_with_a_subject_key_match_fresh_derivations() {
    // `k` keeps its record MAC key and FF1 keys after the first seal; a
    // copy unwrapped from storage starts without them. Each must open what
    // the other sealed, with the same tokens.
    let (s, k, ix) = setup(SCHEMA);
    let ks = StaticKeys::random("records/p");
    let ring = KeyRingName::parse("records/p").unwrap();
    let wrapped = k.wrap(&ks, &ring, "p", b"handle").unwrap();
    let by_kept = seal(&s, 1, "p", "r1", &patient(), &k, &ix).unwrap();
    let again = seal(&s, 1, "p", "r2", &patient(), &k, &ix).unwrap();
    let fresh = SubjectKey::unwrap(&ks, &wrapped, "p", b"handle").unwrap();
    let by_fresh = seal(&s, 1, "p", "r3", &patient(), &fresh, &ix).unwrap();
    assert_eq!(by_kept.doc.tokens, by_fresh.doc.tokens);
    assert_eq!(by_kept.doc.tokens, again.doc.tokens);
    let want = open(&s, "p", "r1", &by_kept.body, &k, View::Full).unwrap();
    let fresh2 = SubjectKey::unwrap(&ks, &wrapped, "p", b"handle").unwrap();
    assert_eq!(
        open(&s, "p", "r1", &by_kept.body, &fresh2, View::Full).unwrap(),
        want
    );
    assert_eq!(
        open(&s, "p", "r3", &by_fresh.body, &k, View::Full).unwrap(),
        want
    );
    // A key kept for collection "p" is not used for another collection.
    assert!(matches!(
        open(&s, "q", "r1", &by_kept.body, &k, View::Full),
        Err(RecordError::Integrity { .. })
    ));
}

/// A record sealed by the format-1 code (one key derivation per field;
/// before 2026-12-05), subject key 32 bytes of 7, collection "p", id "r1".
const V1_RECORD: &str = include_str!("v1-record.json");

#[test]
fn records_sealed_in_format_1_still_open() {
    let (s, _, _) = setup(SCHEMA);
    let k = SubjectKey::from_secret(crate::secret::SecretKey::from_slice(&[7u8; 32]).unwrap());
    let body = V1_RECORD.trim_end();
    assert!(
        !body.contains(r#""k":"#),
        "a format-1 body has no record key"
    );
    let got = open(&s, "p", "r1", body, &k, View::Full).unwrap();
    let mut want = patient();
    want["telecom"] = json!([]);
    assert_eq!(got, want);
    // Its fields are format 1, and still bound to record and key.
    assert!(matches!(
        open(&s, "p", "r2", body, &k, View::Full),
        Err(RecordError::Integrity { .. })
    ));
    let other = SubjectKey::from_secret(crate::secret::SecretKey::from_slice(&[8u8; 32]).unwrap());
    assert!(open(&s, "p", "r1", body, &other, View::Full).is_err());
}

#[test]
fn one_record_key_per_sealing_with_a_counter_per_value() {
    let (s, k, ix) = setup(SCHEMA);
    let a = seal(&s, 1, "p", "r1", &patient(), &k, &ix).unwrap();
    let b = seal(&s, 1, "p", "r1", &patient(), &k, &ix).unwrap();
    // Format 2: the record key's header in `k`, every value version 2 with
    // its own counter; a new sealing has a new record key.
    let ka = a.doc.k.clone().expect("a record key");
    assert_eq!(
        B64.decode(&ka).unwrap().len(),
        crate::records::field::RECORD_KEY_HEADER_LEN
    );
    assert_ne!(Some(&ka), b.doc.k.as_ref());
    let mut counters = Vec::new();
    for ct in a.doc.sealed.values() {
        let ct = B64.decode(ct).unwrap();
        assert_eq!(&ct[..4], b"PVF\x02");
        counters.push(u32::from_be_bytes(ct[4..8].try_into().unwrap()));
    }
    let n = counters.len();
    counters.sort();
    counters.dedup();
    assert_eq!(counters.len(), n, "each value has its own GCM nonce");
    assert!(
        a.body
            .starts_with(&format!(r#"{{"v":1,"k":"{ka}","plain":"#))
    );
    // Another sealing's record key, honestly re-MACed: no value opens.
    let mut swapped = a.doc.clone();
    swapped.k = b.doc.k.clone();
    assert!(matches!(
        open(
            &s,
            "p",
            "r1",
            &remac(&k, "p", "r1", &swapped),
            &k,
            View::Full
        ),
        Err(RecordError::Integrity { .. })
    ));
    // A record key that is not this subject's (its commitment fails), or
    // none at all, fails the record.
    let other = SubjectKey::generate().unwrap();
    let mut foreign = a.doc.clone();
    foreign.k = Some(B64.encode(other.record_key().unwrap().header()));
    let mut missing = a.doc.clone();
    missing.k = None;
    for doc in [foreign, missing] {
        assert!(matches!(
            open(&s, "p", "r1", &remac(&k, "p", "r1", &doc), &k, View::Full),
            Err(RecordError::Integrity { .. })
        ));
    }
    // A format-1 value in a format-2 record fails, even honestly MACed.
    let mut mixed = a.doc.clone();
    let v1 = k
        .seal(&context("p", "r1", "birth_date"), br#""1970-03-14""#)
        .unwrap();
    mixed.sealed.insert("birth_date".into(), B64.encode(v1));
    match open(&s, "p", "r1", &remac(&k, "p", "r1", &mixed), &k, View::Full) {
        Err(RecordError::Integrity { path }) => assert_eq!(path, "birth_date"),
        other => panic!("{other:?}"),
    }
    // A record with no sealed values needs no record key.
    let plain = seal(&s, 1, "p", "r9", &json!({"gender": "x"}), &k, &ix).unwrap();
    assert!(plain.doc.k.is_none());
    assert_eq!(
        open(&s, "p", "r9", &plain.body, &k, View::Full).unwrap(),
        json!({"gender": "x"})
    );
}
