//! SQLite-only behaviour; what every store must do is in
//! `tests/conformance.rs`, run against SQLite and PostgreSQL.
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shredded_key_leaves_no_bytes_in_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.put_subject_keys(
        "p",
        vec![SubjectKeyRow {
            handle: b"h1".to_vec(),
            wrapped: b"WRAPPED-KEY-ONE".to_vec(),
        }],
    )
    .await
    .unwrap();
    assert!(s.shred("p", b"h1").await.unwrap().key_destroyed);
    // secure_delete + WAL truncation: the destroyed key's bytes are gone
    // from the files.
    s.close();
    for f in [
        "records.db",
        "records.db-wal",
        "subject-keys.db",
        "subject-keys.db-wal",
    ] {
        if let Ok(bytes) = std::fs::read(dir.path().join(f)) {
            assert!(!bytes.windows(15).any(|w| w == b"WRAPPED-KEY-ONE"), "{f}");
        }
    }
}
