use super::*;

fn w(id: &str, subject: &[u8], mode: WriteMode, ix: &[(&str, &[u8])]) -> RecordWrite {
    RecordWrite {
        id: id.into(),
        subject: subject.to_vec(),
        version: 1,
        body: format!("{{\"body\":\"{id}\"}}"),
        plain: r#"{"gender":"f","n":3,"ok":true}"#.into(),
        indexes: ix
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect(),
        mode,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_indexes_and_preconditions() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    s.write(
        "p",
        vec![
            w("a", b"s1", WriteMode::Create, &[("i", b"x")]),
            w("b", b"s2", WriteMode::Create, &[("i", b"x")]),
        ],
    )
    .await
    .unwrap();
    // All or none: the second write's Exists undoes the first.
    let e = s
        .write(
            "p",
            vec![
                w("c", b"s1", WriteMode::Create, &[]),
                w("a", b"s1", WriteMode::Create, &[]),
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Exists));
    assert_eq!(s.get("p", vec!["c".into()]).await.unwrap(), vec![None]);
    let found = s.find("p", "i", b"x".to_vec(), 10).await.unwrap();
    assert_eq!(found.len(), 2);
    assert!(
        s.find("q", "i", b"x".to_vec(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Replace with a revision: stale revisions conflict.
    let a = s.get("p", vec!["a".into()]).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(a.rev, 1);
    s.write(
        "p",
        vec![w("a", b"s1", WriteMode::Replace(Some(1)), &[("i", b"y")])],
    )
    .await
    .unwrap();
    assert!(matches!(
        s.write("p", vec![w("a", b"s1", WriteMode::Replace(Some(1)), &[])])
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.write("p", vec![w("zz", b"s1", WriteMode::Replace(None), &[])])
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.find("p", "i", b"x".to_vec(), 10).await.unwrap().len(), 1);
    assert_eq!(
        s.find("p", "i", b"y".to_vec(), 10).await.unwrap()[0].id,
        "a"
    );
    // Filters on plain fields and pagination.
    let f = |path: &str, v: serde_json::Value| PlainFilter {
        path: path.into(),
        value: v,
    };
    assert_eq!(
        s.list("p", vec![f("$.gender", "f".into())], None, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.list("p", vec![], Some("a".into()), 10).await.unwrap()[0].id,
        "b"
    );
    assert_eq!(
        s.list(
            "p",
            vec![f("$.n", 3.into()), f("$.ok", true.into())],
            None,
            10
        )
        .await
        .unwrap()
        .len(),
        2
    );
    assert!(
        s.list("p", vec![f("$.gender", "m".into())], None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.delete("p", "b").await.unwrap());
    assert!(!s.delete("p", "b").await.unwrap());
    assert_eq!(s.count("p", None).await.unwrap(), 1);
    assert_eq!(s.count("p", Some(1)).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_keys_shred_and_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path()).unwrap();
    let k = |h: &[u8], w: &[u8]| SubjectKeyRow {
        handle: h.to_vec(),
        wrapped: w.to_vec(),
    };
    assert_eq!(
        s.put_subject_keys("p", vec![k(b"h1", b"WRAPPED-KEY-ONE")])
            .await
            .unwrap(),
        vec![b"WRAPPED-KEY-ONE".to_vec()]
    );
    // A racing second insert gets the first key back.
    assert_eq!(
        s.put_subject_keys("p", vec![k(b"h1", b"other"), k(b"h2", b"w2")])
            .await
            .unwrap(),
        vec![b"WRAPPED-KEY-ONE".to_vec(), b"w2".to_vec()]
    );
    assert_eq!(
        s.subject_keys("p", Some(b"h1".to_vec()), 10).await.unwrap(),
        vec![k(b"h2", b"w2")]
    );
    assert_eq!(
        s.rewrap_subject_keys(
            "p",
            vec![
                (b"h2".to_vec(), b"w2".to_vec(), b"w3".to_vec()),
                (b"h2".to_vec(), b"stale".to_vec(), b"w4".to_vec())
            ]
        )
        .await
        .unwrap(),
        1
    );
    s.write(
        "p",
        vec![
            w("r1", b"h1", WriteMode::Create, &[("i", b"x")]),
            w("r2", b"h1", WriteMode::Create, &[]),
            w("r3", b"h2", WriteMode::Create, &[]),
        ],
    )
    .await
    .unwrap();
    let out = s.shred("p", b"h1").await.unwrap();
    assert_eq!(
        out,
        Shredded {
            key_destroyed: true,
            records: 2
        }
    );
    assert_eq!(
        s.subject_keys_for("p", vec![b"h1".to_vec(), b"h2".to_vec()])
            .await
            .unwrap(),
        vec![None, Some(b"w3".to_vec())]
    );
    assert!(
        s.find("p", "i", b"x".to_vec(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.count("p", None).await.unwrap(), 1);
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
    let s = SqliteStore::open(dir.path()).unwrap();
    let job = JobRow {
        id: "j1".into(),
        kind: "rewrap".into(),
        collection: "p".into(),
        state: "running".into(),
        cursor: Some("abc".into()),
        done: 5,
        total: 9,
        error: None,
        params: "{}".into(),
        started: 1,
        updated: 2,
    };
    s.put_job(job.clone()).await.unwrap();
    assert_eq!(s.running_jobs().await.unwrap(), vec![job.clone()]);
    s.put_job(JobRow {
        state: "done".into(),
        ..job
    })
    .await
    .unwrap();
    assert!(s.running_jobs().await.unwrap().is_empty());
    assert_eq!(s.job("j1").await.unwrap().unwrap().state, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                s.write(
                    "p",
                    vec![w(&format!("{t}-{i}"), b"s", WriteMode::Create, &[])],
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.count("p", None).await.unwrap(), 800);
}

#[test]
fn schema_versions() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let row = |v| SchemaRow {
            collection: "p".into(),
            version: v,
            schema: format!("{{\"v\":{v}}}"),
            created: 0,
        };
        s.put_schema(row(1)).await.unwrap();
        assert!(matches!(
            s.put_schema(row(1)).await,
            Err(StoreError::Exists)
        ));
        s.put_schema(row(2)).await.unwrap();
        assert_eq!(s.schemas("p").await.unwrap().len(), 2);
        assert_eq!(s.collections().await.unwrap(), vec![row(2)]);
    });
}
