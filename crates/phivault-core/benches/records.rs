//! Criterion benches for field-level encryption, without HTTP or storage:
//! sealing and opening the ~2 KiB FHIR-like Patient of the records
//! benchmark (8 PHI fields, 2 blind indexes, 1 FF1 token), a masked view,
//! one FF1 tokenization and one blind index; and what a subject-key cache
//! miss adds to an open (unwrapping the key, then deriving its record MAC
//! and FF1 keys afresh). `scripts/bench-records.sh`
//! measures the whole server beside PostgreSQL + pgcrypto; see BENCHMARKS.md.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phivault_core::keys::{KeyRingName, KeyVersion, StaticKeys};
use phivault_core::records::document::{self, View};
use phivault_core::records::{IndexKeys, Schema, SubjectKey};
use std::hint::black_box;

fn patient() -> serde_json::Value {
    serde_json::json!({
        "resourceType": "Patient", "patient_id": "P-0001234", "mrn": "MRN-0001234", "ssn": "55-123456-1234",
        "name": {"use": "official", "family": "Rivera-Delgado", "given": ["Ana", "Lucia"], "prefix": ["Ms."]},
        "birth_date": "1984-07-19",
        "telecom": {"phone": "+1 617 555 0100", "mobile": "+1 617 555 0199", "email": "ana.rivera@example.org"},
        "address": {"use": "home", "line": ["12 Elm Street", "Apartment 4B"], "city": "Boston", "state": "MA", "postal_code": "02139"},
        "contact": {"relationship": "emergency", "name": "Jorge Rivera", "phone": "+1 617 555 0142"},
        "note": "x".repeat(1200),
        "gender": "female", "active": true, "managing_org": "org-17",
        "meta": {"version_id": "1", "last_updated": "2026-12-04T10:00:00Z"}
    })
}

fn records_bench(c: &mut Criterion) {
    let schema =
        Schema::parse_json(include_bytes!("../../../benches/records-bench.schema.json")).unwrap();
    let ks = StaticKeys::random("records-index/bench");
    let ring = KeyRingName::parse("records-index/bench").unwrap();
    let names: Vec<&str> = schema.indexes.iter().map(|i| i.name.as_str()).collect();
    let ix = IndexKeys::derive(&ks, &ring, KeyVersion::MIN, "bench", names).unwrap();
    let key = SubjectKey::generate().unwrap();
    let doc = patient();
    let sealed = document::seal(&schema, 1, "bench", "r1", &doc, &key, &ix).unwrap();
    let mut g = c.benchmark_group("records");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seal_patient_2KiB", |b| {
        b.iter(|| document::seal(&schema, 1, "bench", "r1", black_box(&doc), &key, &ix).unwrap())
    });
    g.bench_function("open_full_patient_2KiB", |b| {
        b.iter(|| {
            document::open(
                &schema,
                "bench",
                "r1",
                black_box(&sealed.body),
                &key,
                View::Full,
            )
            .unwrap()
        })
    });
    g.bench_function("open_masked_patient_2KiB", |b| {
        b.iter(|| {
            document::open(
                &schema,
                "bench",
                "r1",
                black_box(&sealed.body),
                &key,
                View::Masked,
            )
            .unwrap()
        })
    });
    g.bench_function("peek_index_field", |b| {
        b.iter(|| {
            document::peek_fields(
                &schema,
                "bench",
                "r1",
                black_box(&sealed.body),
                &key,
                &schema.indexes[0].fields,
            )
            .unwrap()
        })
    });
    let dks = StaticKeys::random("records/bench");
    let dring = KeyRingName::parse("records/bench").unwrap();
    let wrapped = key.wrap(&dks, &dring, "bench", b"handle-0001").unwrap();
    g.bench_function("unwrap_subject_key", |b| {
        b.iter(|| SubjectKey::unwrap(&dks, black_box(&wrapped), "bench", b"handle-0001").unwrap())
    });
    g.bench_function("open_full_patient_2KiB_cold_key", |b| {
        b.iter(|| {
            let k = SubjectKey::unwrap(&dks, black_box(&wrapped), "bench", b"handle-0001").unwrap();
            document::open(
                &schema,
                "bench",
                "r1",
                black_box(&sealed.body),
                &k,
                View::Full,
            )
            .unwrap()
        })
    });
    let ff1 = key.ff1("bench", "ssn", 10).unwrap();
    let digits: Vec<u16> = (0..9).map(|i| i as u16).collect();
    g.bench_function("ff1_9_digits", |b| {
        b.iter(|| ff1.encrypt(b"", black_box(&digits)).unwrap())
    });
    g.bench_function("blind_index", |b| {
        b.iter(|| {
            ix.blind_index("mrn", 18, &[black_box("mrn-0001234")])
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, records_bench);
criterion_main!(benches);
