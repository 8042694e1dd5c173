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
    use rusqlite::types::Value::{Integer, Text};
    // The store's own statements, each run with different values.
    type Binds = fn(i64) -> Vec<rusqlite::types::Value>;
    let queries: [(String, Binds); 4] = [
        (get_sql(), |i| {
            vec![Text(format!("c{i}")), Text(format!("id{i}"))]
        }),
        (find_sql(), |i| {
            vec![
                Text(format!("c{i}")),
                Text("mrn".into()),
                Text(format!("v{i}")),
                Integer(10 + i),
            ]
        }),
        (list_sql(0), |i| {
            vec![
                Text(format!("c{i}")),
                Text(format!("id{i}")),
                Integer(10 + i),
            ]
        }),
        (list_sql(1), |i| {
            vec![
                Text(format!("c{i}")),
                Text(format!("id{i}")),
                Integer(10 + i),
                Text("$.gender".into()),
                Text(format!("g{i}")),
            ]
        }),
    ];
    for (sql, binds) in queries {
        for i in 0..5i64 {
            let mut st = c.prepare_cached(&sql).unwrap();
            let rows = st
                .query_map(params_from_iter(binds(i).iter()), record_row)
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
