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

/// Every cached read statement runs without being re-prepared when new
/// values are bound (the query planner stability guarantee in
/// `configure`). Without it, each get, search and list re-parsed and
/// re-planned its SELECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_reads_are_not_re_prepared_for_new_values() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.close();
    let c = Connection::open(dir.path().join("records.db")).unwrap();
    configure(&c, &s.keys, false).unwrap();
    let queries = [
        (
            format!("SELECT {RECORD_COLS} FROM {RECORD_FROM} WHERE r.collection = ?1 AND r.id = ?2"),
            2,
        ),
        (
            format!(
                "SELECT {RECORD_COLS} FROM record_index i
                 JOIN records r ON r.collection = i.collection AND r.id = i.id
                 LEFT JOIN keys.subject_keys k ON k.collection = r.collection AND k.handle = r.subject
                 WHERE i.collection = ?1 AND i.name = ?2 AND i.value = ?3 LIMIT ?4"
            ),
            4,
        ),
        (
            format!(
                "SELECT {RECORD_COLS} FROM {RECORD_FROM} WHERE r.collection = ?1 AND r.id > ?2 ORDER BY r.id LIMIT ?3"
            ),
            3,
        ),
    ];
    for (sql, n) in queries {
        for i in 0..5i64 {
            let mut st = c.prepare_cached(&sql).unwrap();
            let binds: Vec<rusqlite::types::Value> = (0..n)
                .map(|k| match k {
                    0 => rusqlite::types::Value::Text(format!("coll-{i}")),
                    3 => rusqlite::types::Value::Integer(10 + i),
                    2 if n == 3 => rusqlite::types::Value::Integer(10 + i),
                    _ => rusqlite::types::Value::Text(format!("value-{i}")),
                })
                .collect();
            let rows = st
                .query_map(params_from_iter(binds.iter()), record_row)
                .unwrap();
            assert_eq!(rows.count(), 0);
            assert_eq!(
                st.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "re-prepared on run {i}: {sql}"
            );
        }
    }
}
