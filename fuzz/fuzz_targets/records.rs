//! The records parsers of untrusted input: collection schemas, declared
//! and stored field paths, and documents sealed and opened under a schema
//! (including stored documents an attacker with database access could
//! write). The first byte picks the parser. None may panic.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use phivault_core::keys::{KeyRingName, KeyVersion, StaticKeys};
use phivault_core::records::document::{self, View};
use phivault_core::records::{ConcretePath, FieldPath, IndexKeys, Schema, SubjectKey};
use std::sync::OnceLock;

const SCHEMA: &str = r#"{"expected_rows": 1000, "subject": "id", "fields": {
  "id": {"class": "phi_search", "normalize": ["whitespace"]},
  "n[*].f": {"class": "phi_search", "normalize": ["lowercase"], "mask": "initials"},
  "ssn": {"class": "token", "mask": "last4"}, "m": {"class": "token", "alphabet": "upper_alnum"},
  "d": {"class": "phi", "mask": "year"}, "g": {"class": "plain"}},
  "indexes": {"c": {"fields": ["id", "d"]}}}"#;

struct Fixture {
    schema: Schema,
    key: SubjectKey,
    index: IndexKeys,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let schema = Schema::parse_json(SCHEMA.as_bytes()).unwrap();
        let ks = StaticKeys::random("records-index/p");
        let ring = KeyRingName::parse("records-index/p").unwrap();
        let names: Vec<&str> = schema.indexes.iter().map(|i| i.name.as_str()).collect();
        let index = IndexKeys::derive(&ks, &ring, KeyVersion::MIN, "p", names).unwrap();
        Fixture { schema, key: SubjectKey::generate().unwrap(), index }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match sel % 4 {
        0 => {
            if let Ok(s) = Schema::parse_json(rest) {
                let _ = s.indexes.iter().map(|i| i.bits).sum::<u32>();
                let _ = serde_json::to_string(s.decl());
            }
        }
        1 => {
            if let Ok(p) = FieldPath::parse(&text) {
                assert_eq!(FieldPath::parse(&p.to_string()).unwrap(), p);
            }
            if let Ok(p) = ConcretePath::parse(&text) {
                assert_eq!(ConcretePath::parse(&p.to_string()).unwrap(), p);
            }
        }
        2 => {
            // Any document: sealed and opened, or refused with an error.
            let f = fixture();
            if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(rest)
                && let Ok(sealed) = document::seal(&f.schema, 1, "p", "r", &doc, &f.key, &f.index)
            {
                let back = document::open(&f.schema, "p", "r", &sealed.body, &f.key, View::Full).unwrap();
                assert_eq!(back, doc);
                let _ = document::open(&f.schema, "p", "r", &sealed.body, &f.key, View::Masked).unwrap();
            }
        }
        _ => {
            // A stored body written by someone with database access.
            let f = fixture();
            let body = String::from_utf8_lossy(rest);
            for v in [View::Full, View::Masked, View::Redacted] {
                let _ = document::open(&f.schema, "p", "r", &body, &f.key, v);
            }
            let _ = document::body_version(&body);
        }
    }
});
