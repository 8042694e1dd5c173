//! One behaviour, two backends: every [`RecordStore`] rule is checked
//! against the embedded SQLite store and against a real PostgreSQL 15
//! cluster started by the test (TLS with `verify-full`, SCRAM passwords).
//! Without PostgreSQL the PostgreSQL half prints `SKIPPED`; CI sets
//! `PHIVAULT_REQUIRE_ALL_TESTS`, which turns that into a failure.

use phivault_store::postgres::{PgSettings, PgStore};
use phivault_store::sqlite::SqliteStore;
use phivault_store::*;
use phivault_testpg::{PgCluster, ServerTls};
use std::sync::Arc;

fn w(id: &str, subject: &[u8], mode: WriteMode, ix: &[(&str, &[u8])]) -> RecordWrite {
    RecordWrite {
        id: id.into(),
        subject: subject.to_vec(),
        version: 1,
        body: format!("{{\"body\":\"{id}\"}}"),
        plain: r#"{"gender":"f","n":3,"ok":true,"odd key":"x"}"#.into(),
        indexes: ix
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect(),
        mode,
    }
}

async fn records_indexes_and_preconditions(s: &dyn RecordStore) {
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
    // Order of the request is kept, duplicates and misses included.
    let got = s
        .get("p", vec!["b".into(), "zz".into(), "a".into(), "b".into()])
        .await
        .unwrap();
    let ids: Vec<Option<&str>> = got
        .iter()
        .map(|r| r.as_ref().map(|r| r.id.as_str()))
        .collect();
    assert_eq!(ids, [Some("b"), None, Some("a"), Some("b")]);
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
    assert_eq!(a.body, r#"{"body":"a"}"#);
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
    assert_eq!(s.find("p", "i", b"x".to_vec(), 0).await.unwrap().len(), 0);
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
    assert_eq!(
        s.list("p", vec![f("$.missing", serde_json::Value::Null)], None, 10)
            .await
            .unwrap()
            .len(),
        2,
        "a missing field equals null"
    );
    assert!(s.delete("p", "b").await.unwrap());
    assert!(!s.delete("p", "b").await.unwrap());
    assert_eq!(s.count("p", None).await.unwrap(), 1);
    assert_eq!(s.count("p", Some(1)).await.unwrap(), 0);
    assert_eq!(s.count("p", Some(2)).await.unwrap(), 1);
}

async fn ids_sort_bytewise(s: &dyn RecordStore) {
    // Pagination must not depend on the database's collation.
    for id in ["B", "a", "_", "Z9", "é", "a-1"] {
        s.write("o", vec![w(id, b"s", WriteMode::Create, &[])])
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.list("o", vec![], after.clone(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id.clone());
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen, ["B", "Z9", "_", "a", "a-1", "é"]);
}

async fn subject_keys_shred_and_jobs(s: &dyn RecordStore) {
    let k = |h: &[u8], w: &[u8]| SubjectKeyRow {
        handle: h.to_vec(),
        wrapped: w.to_vec(),
    };
    assert_eq!(
        s.put_subject_keys("k", vec![k(b"h1", b"WRAPPED-KEY-ONE")])
            .await
            .unwrap(),
        vec![b"WRAPPED-KEY-ONE".to_vec()]
    );
    // A racing second insert gets the first key back.
    assert_eq!(
        s.put_subject_keys("k", vec![k(b"h1", b"other"), k(b"h2", b"w2")])
            .await
            .unwrap(),
        vec![b"WRAPPED-KEY-ONE".to_vec(), b"w2".to_vec()]
    );
    assert_eq!(
        s.subject_keys("k", Some(b"h1".to_vec()), 10).await.unwrap(),
        vec![k(b"h2", b"w2")]
    );
    assert_eq!(s.count_subject_keys("k").await.unwrap(), 2);
    assert_eq!(
        s.rewrap_subject_keys(
            "k",
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
        "k",
        vec![
            w("r1", b"h1", WriteMode::Create, &[("i", b"x")]),
            w("r2", b"h1", WriteMode::Create, &[]),
            w("r3", b"h2", WriteMode::Create, &[]),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        s.get("k", vec!["r1".into()]).await.unwrap()[0]
            .as_ref()
            .unwrap()
            .subject_key
            .as_deref(),
        Some(&b"WRAPPED-KEY-ONE"[..])
    );
    let out = s.shred("k", b"h1").await.unwrap();
    assert_eq!(
        out,
        Shredded {
            key_destroyed: true,
            records: 2
        }
    );
    assert_eq!(
        s.subject_keys_for("k", vec![b"h1".to_vec(), b"h2".to_vec()])
            .await
            .unwrap(),
        vec![None, Some(b"w3".to_vec())]
    );
    assert!(
        s.find("k", "i", b"x".to_vec(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.count("k", None).await.unwrap(), 1);
    assert_eq!(s.shred("k", b"h1").await.unwrap(), Shredded::default());
    let job = JobRow {
        id: "j1".into(),
        kind: "rewrap".into(),
        collection: "k".into(),
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
    assert_eq!(s.job("nope").await.unwrap(), None);
}

async fn concurrent_writes(s: Arc<dyn RecordStore>) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                s.write(
                    "c",
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
    assert_eq!(s.count("c", None).await.unwrap(), 800);
}

async fn schema_versions(s: &dyn RecordStore) {
    let row = |c: &str, v| SchemaRow {
        collection: c.into(),
        version: v,
        schema: format!("{{\"v\":{v}}}"),
        created: 7,
    };
    s.put_schema(row("p", 1)).await.unwrap();
    assert!(matches!(
        s.put_schema(row("p", 1)).await,
        Err(StoreError::Exists)
    ));
    s.put_schema(row("p", 2)).await.unwrap();
    s.put_schema(row("a", 1)).await.unwrap();
    assert_eq!(
        s.schemas("p").await.unwrap(),
        vec![row("p", 1), row("p", 2)]
    );
    assert_eq!(
        s.collections().await.unwrap(),
        vec![row("a", 1), row("p", 2)]
    );
}

/// Dumps every record of `s` (pages of 2) and loads them into `t`: the
/// same rows, revisions, times and index entries come out of `t`.
async fn dump_and_load(s: &dyn RecordStore, t: &dyn RecordStore) {
    s.write(
        "d",
        vec![
            w("r1", b"h1", WriteMode::Create, &[("i", b"x"), ("j", b"y")]),
            w("r2", b"h2", WriteMode::Create, &[]),
            w("r3", b"h1", WriteMode::Create, &[("i", b"x")]),
        ],
    )
    .await
    .unwrap();
    s.write(
        "d",
        vec![w("r2", b"h2", WriteMode::Replace(None), &[("i", b"z")])],
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = s.dump_records("d", after.clone(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id.clone());
        all.extend(page);
    }
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].rev, 2);
    assert_eq!(all[0].indexes.len(), 2);
    t.load_records("d", all.clone()).await.unwrap();
    // Plain fields compare as JSON (PostgreSQL's jsonb reorders keys).
    let norm = |v: Vec<RecordDump>| {
        v.into_iter()
            .map(|mut r| {
                r.plain = serde_json::from_str::<serde_json::Value>(&r.plain)
                    .unwrap()
                    .to_string();
                r
            })
            .collect::<Vec<_>>()
    };
    let back = t.dump_records("d", None, 100).await.unwrap();
    assert_eq!(norm(back), norm(all.clone()));
    assert_eq!(t.find("d", "i", b"x".to_vec(), 10).await.unwrap().len(), 2);
    assert_eq!(
        t.find("d", "i", b"z".to_vec(), 10).await.unwrap()[0].id,
        "r2"
    );
    assert!(matches!(
        t.load_records("d", all[..1].to_vec()).await,
        Err(StoreError::Exists)
    ));
}

/// Every suite against one store.
async fn suite(s: Arc<dyn RecordStore>) {
    schema_versions(&*s).await;
    records_indexes_and_preconditions(&*s).await;
    ids_sort_bytewise(&*s).await;
    subject_keys_shred_and_jobs(&*s).await;
    subject_key_races(s.clone()).await;
    concurrent_writes(s).await;
}

/// Many writers storing keys for the same new subjects at once (creates
/// of one patient on several nodes): every one gets back the same key per
/// subject, the one stored.
async fn subject_key_races(s: Arc<dyn RecordStore>) {
    let handles: Vec<Vec<u8>> = (0..4).map(|i| format!("race-{i}").into_bytes()).collect();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (s, handles) = (s.clone(), handles.clone());
        tasks.push(tokio::spawn(async move {
            let rows = handles
                .iter()
                .map(|h| SubjectKeyRow {
                    handle: h.clone(),
                    wrapped: format!("writer-{w}").into_bytes(),
                })
                .collect();
            s.put_subject_keys("race", rows).await.unwrap()
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let stored: Vec<Vec<u8>> = s
        .subject_keys_for("race", handles)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.expect("stored"))
        .collect();
    for g in &got {
        assert_eq!(g, &stored, "a writer got a key other than the stored one");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    suite(Arc::new(SqliteStore::open(dir.path()).unwrap())).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    dump_and_load(
        &SqliteStore::open(a.path()).unwrap(),
        &SqliteStore::open(b.path()).unwrap(),
    )
    .await;
}

/// A CA and a server certificate for 127.0.0.1 (as phivault's CA issues
/// them: ECDSA P-256).
struct Pki {
    ca_pem: String,
    server: ServerTls,
}

fn pki(names: &[&str]) -> Pki {
    pki_with(names, false)
}

/// [`pki`]; `expired`: the server certificate's validity ended in 2021.
fn pki_with(names: &[&str], expired: bool) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = p.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server: ServerTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    }
}

fn settings(pg: &PgCluster, db: &str, ca: &str) -> PgSettings {
    PgSettings {
        url: pg.url(db, ""),
        ca_pem: Some(ca.as_bytes().to_vec()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance_and_migrations() {
    let p = pki(&["127.0.0.1", "localhost"]);
    let Some(pg) = PgCluster::start(Some(p.server.clone())) else {
        return;
    };
    pg.create_db("conf");
    let s = PgStore::connect(&settings(&pg, "conf", &p.ca_pem))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    let tls = s.tls().unwrap();
    assert!(
        tls.version == "TLSv1.3" && tls.cipher.contains("AES") && tls.cipher.contains("GCM"),
        "{tls:?}"
    );
    assert!(!format!("{:?}", settings(&pg, "conf", "")).contains(pg.password()));
    suite(Arc::new(s)).await;
    // The migration path: SQLite dumped into PostgreSQL.
    pg.create_db("loaded");
    let t = PgStore::connect(&settings(&pg, "loaded", &p.ca_pem))
        .await
        .unwrap();
    let src = tempfile::tempdir().unwrap();
    dump_and_load(&SqliteStore::open(src.path()).unwrap(), &t).await;

    // Four nodes starting at once on an empty database: the advisory lock
    // lets exactly one apply each migration; all four come up.
    pg.create_db("race");
    let mut starts = Vec::new();
    for _ in 0..4 {
        let st = settings(&pg, "race", &p.ca_pem);
        starts.push(tokio::spawn(async move { PgStore::connect(&st).await }));
    }
    let mut stores = Vec::new();
    for t in starts {
        stores.push(t.await.unwrap().unwrap());
    }
    assert_eq!(
        stores[0].applied_migrations().await.unwrap(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        pg.psql("race", "SELECT count(*) FROM pv_migrations"),
        "4",
        "each migration applied once"
    );
    // What one node writes, another reads.
    stores[0]
        .write("p", vec![w("x", b"s", WriteMode::Create, &[])])
        .await
        .unwrap();
    assert!(stores[3].get("p", vec!["x".into()]).await.unwrap()[0].is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tls_is_verified() {
    let p = pki(&["127.0.0.1"]);
    let Some(pg) = PgCluster::start(Some(p.server.clone())) else {
        return;
    };
    let err = |r: Result<PgStore, StoreError>| match r {
        Ok(_) => panic!("connected"),
        Err(e) => e.to_string(),
    };
    // A certificate from another CA does not verify.
    let other = pki(&["127.0.0.1"]);
    let e = err(PgStore::connect(&settings(&pg, "postgres", &other.ca_pem)).await);
    assert!(e.contains("certificate"), "{e}");
    assert!(
        !e.contains(pg.password()),
        "the password never appears: {e}"
    );
    // Nor does one for another name (the URL's host is 127.0.0.1; connect
    // as `localhost`, which the certificate does not name).
    let mut st = settings(&pg, "postgres", &p.ca_pem);
    st.url = st.url.replace("@127.0.0.1:", "@localhost:");
    let e = err(PgStore::connect(&st).await);
    assert!(e.contains("certificate"), "{e}");
    // No CA given: the system roots don't know ours.
    let st = PgSettings {
        url: pg.url("postgres", ""),
        ..Default::default()
    };
    assert!(err(PgStore::connect(&st).await).contains("certificate"));
    // A weaker sslmode is refused without a recorded reason …
    let st = PgSettings {
        url: pg.url("postgres", "sslmode=require"),
        ..Default::default()
    };
    let e = err(PgStore::connect(&st).await);
    assert!(e.contains("insecure_db_tls_reason"), "{e}");
    // … and allowed with one (the server still requires TLS).
    let st = PgSettings {
        insecure_tls_reason: Some("test".into()),
        ..st
    };
    let s = PgStore::connect(&st).await.unwrap();
    assert_eq!(s.tls().unwrap().version, "TLSv1.3");
    // Plaintext is rejected by the server's pg_hba (hostnossl reject).
    let st = PgSettings {
        url: pg.url("postgres", "sslmode=disable"),
        insecure_tls_reason: Some("test".into()),
        ..Default::default()
    };
    assert!(PgStore::connect(&st).await.is_err());
    // The verify-full default works with the right CA.
    let s = PgStore::connect(&settings(&pg, "postgres", &p.ca_pem))
        .await
        .unwrap();
    assert!(s.target().contains("***"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_is_unavailable_then_recovers() {
    let p = pki(&["127.0.0.1"]);
    let Some(pg) = PgCluster::start(Some(p.server.clone())) else {
        return;
    };
    let s = PgStore::connect(&settings(&pg, "postgres", &p.ca_pem))
        .await
        .unwrap();
    s.write("p", vec![w("before", b"s", WriteMode::Create, &[])])
        .await
        .unwrap();
    pg.stop(false);
    let e = s
        .write("p", vec![w("during", b"s", WriteMode::Create, &[])])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    pg.pg_start();
    // The pool reconnects by itself; the first attempts may still meet
    // dead connections.
    let t0 = std::time::Instant::now();
    loop {
        match s
            .write("p", vec![w("after", b"s", WriteMode::Create, &[])])
            .await
        {
            Ok(()) => break,
            Err(StoreError::Unavailable(_)) if t0.elapsed().as_secs() < 30 => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    let got = s
        .get("p", vec!["before".into(), "during".into(), "after".into()])
        .await
        .unwrap();
    assert!(got[0].is_some() && got[1].is_none() && got[2].is_some());
}

/// The keystore document shared through PostgreSQL by two "nodes": a ring
/// created or rotated on one is seen by the other within the poll
/// interval, and concurrent lifecycle writes from both lose nothing.
#[test]
fn postgres_keystore_shared_by_two_nodes() {
    use phivault_core::keys::{KeyDeriver, KeyRingName};
    use phivault_keystore::{InitMethod, Keystore, Location};
    use phivault_store::postgres::PgKeystoreDoc;
    let p = pki(&["127.0.0.1"]);
    let Some(pg) = PgCluster::start(Some(p.server.clone())) else {
        return;
    };
    let dirs = tempfile::tempdir().unwrap();
    let (a, b) = (dirs.path().join("a"), dirs.path().join("b"));
    let st = settings(&pg, "postgres", &p.ca_pem);
    let doc_a = PgKeystoreDoc::open(&st).unwrap();
    let loc_a = Location::shared(&a, doc_a);
    assert!(!phivault_keystore::store::exists(&loc_a));
    phivault_keystore::store::init(&loc_a, InitMethod::Dev).unwrap();
    assert!(
        !a.join("keystore.json").exists(),
        "the document is in PostgreSQL, not the data dir"
    );
    // Node B: only the unseal material (the dev key file) is local.
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(a.join("dev-unseal.key"), b.join("dev-unseal.key")).unwrap();
    let ka = Keystore::open_dev(&loc_a).unwrap();
    let kb = Keystore::open_dev(Location::shared(&b, PgKeystoreDoc::open(&st).unwrap())).unwrap();
    let ring = KeyRingName::parse("app/shared").unwrap();
    ka.create_ring(&ring, 365).unwrap();
    let seen_within = |k: &Keystore, want: u32| {
        let t0 = std::time::Instant::now();
        loop {
            if k.primary_version(&ring).map(|v| v.get()).ok() == Some(want) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(3),
                "node B never saw version {want}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    seen_within(&kb, 1);
    assert_eq!(kb.rotate(&ring).unwrap(), 2);
    let lag = seen_within(&ka, 2);
    assert!(lag < std::time::Duration::from_secs(2), "{lag:?}");
    // 2 × 15 concurrent ring creations: every one lands.
    std::thread::scope(|s| {
        for (k, tag) in [(&ka, "a"), (&kb, "b")] {
            s.spawn(move || {
                for i in 0..15 {
                    k.create_ring(&KeyRingName::parse(&format!("app/{tag}{i}")).unwrap(), 365)
                        .unwrap();
                }
            });
        }
    });
    let fresh = Keystore::open_dev(&loc_a).unwrap();
    assert_eq!(fresh.list(Some("app")).unwrap().len(), 31);
    assert_eq!(
        fresh.body().generation,
        ka.body().generation.max(kb.body().generation)
    );
}

/// A database whose certificate expired is refused (verify-full checks the
/// validity period, not only the chain and the name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_expired_certificate_is_refused() {
    let p = pki_with(&["127.0.0.1"], true);
    let Some(pg) = PgCluster::start(Some(p.server.clone())) else {
        return;
    };
    match PgStore::connect(&settings(&pg, "postgres", &p.ca_pem)).await {
        Ok(_) => panic!("connected to a database with an expired certificate"),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("expired"), "{e}");
            assert!(!e.contains(pg.password()), "{e}");
        }
    }
}

/// The audit mirror against a real PostgreSQL: appends (past one 1 MiB
/// chunk) are sent as tails, a file replaced or shrunk is sent again, an
/// empty file exists, a restarted mirror (inodes unknown) goes on from the
/// database, and a pull gives back every file byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_audit_mirror_copies_tails_rewrites_and_restarts() {
    use phivault_store::postgres::{AuditMirror, pull_audit};
    let p = pki(&["127.0.0.1", "localhost"]);
    let Some(pg) = PgCluster::start(Some(p.server.clone())) else {
        return;
    };
    pg.create_db("mirror");
    let s = PgStore::connect(&settings(&pg, "mirror", &p.ca_pem))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", pg.log()));
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let bytes = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    };
    let append = |rel: &str, b: &[u8]| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join(rel))
            .unwrap()
            .write_all(b)
            .unwrap();
    };
    std::fs::create_dir_all(dir.join("segments")).unwrap();
    std::fs::write(dir.join("segments/0.seg"), bytes(1_500_000, 1)).unwrap();
    std::fs::write(dir.join("empty"), b"").unwrap();
    std::fs::write(dir.join("checkpoint"), bytes(100, 2)).unwrap();
    std::fs::write(dir.join("leaves"), bytes(200_000, 3)).unwrap();
    let mut m = AuditMirror::new(s.pool().clone(), "n1");
    m.sync(dir).await.unwrap();
    append("segments/0.seg", &bytes(2_500_000, 4));
    // Replaced by a file of the same length (an atomic replace).
    std::fs::write(dir.join("checkpoint.tmp"), bytes(100, 5)).unwrap();
    std::fs::rename(dir.join("checkpoint.tmp"), dir.join("checkpoint")).unwrap();
    let st = m.sync(dir).await.unwrap();
    assert_eq!(st.bytes, 2_500_000 + 100, "only the tail and the new file");
    // Shrunk and rewritten in place (a cut tail): sent again whole.
    std::fs::write(dir.join("leaves"), bytes(150_000, 6)).unwrap();
    m.sync(dir).await.unwrap();
    // A restarted mirror: appends go on after the database's copy.
    drop(m);
    let mut m = AuditMirror::new(s.pool().clone(), "n1");
    append("segments/0.seg", &bytes(10, 7));
    let st = m.sync(dir).await.unwrap();
    // The segment's 10 new bytes; the small checkpoint file is sent whole
    // again (its inode is unknown after the restart).
    assert_eq!(st.bytes, 10 + 100, "{st:?}");
    let out = tempfile::tempdir().unwrap();
    pull_audit(s.pool(), "n1", out.path()).await.unwrap();
    for rel in ["segments/0.seg", "empty", "checkpoint", "leaves"] {
        assert!(
            std::fs::read(out.path().join(rel)).unwrap() == std::fs::read(dir.join(rel)).unwrap(),
            "{rel} differs after the pull"
        );
    }
}
