//! Two `phivault serve` nodes on one PostgreSQL 15 (started here with
//! initdb/pg_ctl, its certificate issued by phivault's own CA, TLS
//! required): what one node writes the other reads, a shred on one is
//! honoured by the other, nothing lands in the data dirs, no PHI value
//! reaches PostgreSQL's files, and the evidence report scans the database
//! connection. Skipped (loudly) without PostgreSQL; CI makes that a failure.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::{Server, pv, run};

use common::curl_json as curl;

fn node(dir: &Path, config: &Path, url: &str) -> (Server, String) {
    common::serve_with(dir, &[("PHIVAULT_STORAGE_URL", url)], Some(config))
}

fn grep_tree(root: &Path, needle: &[u8], hits: &mut Vec<String>) {
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            grep_tree(&p, needle, hits);
        } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            hits.push(p.display().to_string());
        }
    }
}

#[test]
fn two_nodes_share_one_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (d.join("a"), d.join("b"));
    // Node A's first start bootstraps the dev keystore and phivault's CA,
    // which issues PostgreSQL's server certificate.
    let Some(pg) = common::postgres_with_phivault_ca(&a, d) else {
        return;
    };
    pg.create_db("phivault");
    for f in [
        "records.db",
        "records.db-wal",
        "records.db-shm",
        "subject-keys.db",
        "subject-keys.db-wal",
        "subject-keys.db-shm",
    ] {
        let _ = std::fs::remove_file(a.join(f));
    }
    // Each node names its audit trail (audit.node; the host name by
    // default, so two nodes on one host need their own).
    let cfg = |n: &str| {
        let p = d.join(format!("{n}.toml"));
        std::fs::write(
            &p,
            format!(
                "[storage]\nca_file = \"{}\"\n[records]\nkey_cache_ttl = \"1s\"\n[audit]\nnode = \"{n}\"\ncheckpoint_every = 1\n",
                a.join("ca/ca.pem").display()
            ),
        )
        .unwrap();
        p
    };
    let (config, config_b) = (cfg("node-a"), cfg("node-b"));
    let url = pg.url("phivault", "");
    let (na, ua) = node(&a, &config, &url);
    // Node A's first start on PostgreSQL moved its keystore there.
    assert!(!a.join("keystore.json").exists());
    assert_eq!(pg.psql("phivault", "SELECT count(*) FROM pv_keystore"), "1");
    // Node B has no local state beyond config and unseal: the dev unseal
    // key file and the TLS/CA files. No keystore, records or audit trail.
    common::copy_node_config(&a, &b);
    let (nb, ub) = node(&b, &config_b, &url);
    assert!(!b.join("keystore.json").exists());

    let schema = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/patients.schema.json"),
    )
    .unwrap();
    let (code, v) = curl(
        &a,
        &format!("{ua}/v1/collections/patients"),
        "POST",
        Some(&schema),
    );
    assert!(code == 200 || code == 201, "{code} {v}");
    // A transit key created and rotated on node A is used by node B within
    // the keystore poll interval (500 ms).
    let (code, v) = curl(
        &a,
        &format!("{ua}/v1/transit/keys/shared"),
        "POST",
        Some("{}"),
    );
    assert!(code == 200 || code == 204, "{code} {v}");
    let (code, v) = curl(
        &a,
        &format!("{ua}/v1/transit/keys/shared/rotate"),
        "POST",
        Some("{}"),
    );
    assert!(code == 200 || code == 204, "{code} {v}");
    let (code, v) = curl(
        &a,
        &format!("{ua}/v1/transit/encrypt/shared"),
        "POST",
        Some(r#"{"plaintext":"aGVsbG8="}"#),
    );
    assert_eq!(code, 200, "{v}");
    let ct = v["data"]["ciphertext"].as_str().unwrap().to_string();
    assert_eq!(v["data"]["key_version"], 2, "{v}");
    let t0 = Instant::now();
    loop {
        let (code, v) = curl(
            &b,
            &format!("{ub}/v1/transit/decrypt/shared"),
            "POST",
            Some(&serde_json::json!({ "ciphertext": ct }).to_string()),
        );
        if code == 200 {
            assert_eq!(v["data"]["plaintext"], "aGVsbG8=");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(3), "node B: {code} {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    // Custody from the CLI without a server, on the shared keystore (node
    // B's dir holds no keystore file): `keys` and `status` find it through
    // the same [storage] settings, and a rotation there reaches node A.
    let cli = |args: &[&str]| {
        let mut c = pv(&b);
        c.env("PHIVAULT_STORAGE_URL", &url)
            .arg("--config")
            .arg(&config_b)
            .args(["--insecure-dev", "--json"])
            .args(args);
        run(&mut c)
    };
    let (code, out, err) = cli(&["status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pv_keystore"), "{out}");
    assert!(!out.contains(pg.password()), "{out}");
    let (code, out, err) = cli(&["keys", "list", "--all"]);
    assert!(code == 0 && out.contains("transit/shared"), "{out}{err}");
    let (code, out, err) = cli(&["keys", "rotate", "transit/shared"]);
    assert_eq!(code, 0, "{out}{err}");
    let t0 = Instant::now();
    loop {
        let (code, v) = curl(
            &a,
            &format!("{ua}/v1/transit/encrypt/shared"),
            "POST",
            Some(r#"{"plaintext":"aGVsbG8="}"#),
        );
        assert_eq!(code, 200, "{v}");
        if v["data"]["key_version"] == 3 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "node A never used the CLI's rotation: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let patients: Vec<serde_json::Value> = (0..200)
        .map(|i| {
            serde_json::json!({
                "patient_id": format!("P-{i:07}"),
                "mrn": format!("MRN-{i:07}"),
                "ssn": format!("{:03}-{:02}-{:04}", 100 + i, 11 + i % 80, 2000 + i),
                "name": {"family": format!("Quixotic{i}"), "given": "Ana"},
                "birth_date": "1984-07-19",
                "gender": "female",
                "active": true,
                "managing_org": "org-1"
            })
        })
        .collect();
    let (code, v) = curl(
        &a,
        &format!("{ua}/v1/records/patients/bulk"),
        "POST",
        Some(&serde_json::json!({ "records": patients }).to_string()),
    );
    assert_eq!(code, 201, "{v}");
    // Node B reads and searches what node A wrote.
    let (code, v) = curl(
        &b,
        &format!("{ub}/v1/records/patients/search"),
        "POST",
        Some(r#"{"index":"mrn","value":"MRN-0000007"}"#),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["records"][0]["data"]["name"]["family"], "Quixotic7",
        "{v}"
    );
    let id7 = v["records"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        pg.psql("phivault", "SELECT count(*) FROM pv_records"),
        "200"
    );
    // Nothing about records lives in the nodes' data dirs.
    for n in [&a, &b] {
        assert!(!n.join("records.db").exists() && !n.join("subject-keys.db").exists());
    }
    // A shred on node A is honoured by node B at once (the key and the
    // records are gone from the shared database; B's cached key for the
    // subject expires within key_cache_ttl).
    let (code, v) = curl(&a, &format!("{ua}/v1/subjects/P-0000007"), "DELETE", None);
    assert_eq!(code, 200, "{v}");
    let t0 = Instant::now();
    loop {
        let (code, _) = curl(&b, &format!("{ub}/v1/records/patients/{id7}"), "GET", None);
        if code == 404 || code == 410 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "node B still serves {code}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // No PHI value reached PostgreSQL's files (tables, WAL) in the clear.
    pg.psql("phivault", "CHECKPOINT");
    let mut hits = Vec::new();
    for needle in ["Quixotic1", "MRN-0000012", "102-13-2002"] {
        grep_tree(&pg.data_dir(), needle.as_bytes(), &mut hits);
    }
    assert!(hits.is_empty(), "PHI in PostgreSQL's files: {hits:?}");
    // (The search itself works: a plain field's value is found.)
    grep_tree(&pg.data_dir(), b"org-1", &mut hits);
    assert!(
        !hits.is_empty(),
        "the plain field was not found: the search is broken"
    );
    // The evidence report scans the database connection (STARTTLS).
    common::stop(nb);
    let mut c = pv(&a);
    c.env("PHIVAULT_STORAGE_URL", &url)
        .args(["--config"])
        .arg(&config)
        .args([
            "--json",
            "evidence",
            "--addr",
            ua.trim_start_matches("https://"),
        ]);
    let (_, out, err) = run(&mut c);
    let rep: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    let item = rep["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "tls-database")
        .unwrap_or_else(|| panic!("{rep}"))
        .clone();
    let ids: Vec<&str> = item["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"tls-database/verify-full"), "{item}");
    assert!(ids.contains(&"TLS-CERT-TRUST"), "a real scan ran: {item}");
    assert!(
        !out.contains(pg.password()),
        "no database password in the report"
    );
    // Every node's audit trail is mirrored into PostgreSQL each second,
    // and once more as the node stops: pulled back out right after the
    // stop, node A's verifies with A's public key and holds every entry.
    common::stop(na);
    let pulled = d.join("pulled-a");
    let mut c = pv(d);
    c.env("PHIVAULT_STORAGE_URL", &url)
        .arg("--config")
        .arg(&config)
        .args(["--json", "audit", "pull"]);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["nodes"],
        serde_json::json!(["node-a", "node-b"]),
        "{out}"
    );
    let mut c = pv(d);
    c.env("PHIVAULT_STORAGE_URL", &url)
        .arg("--config")
        .arg(&config)
        .args(["audit", "pull", "--node", "node-a", "--to"])
        .arg(&pulled);
    let (code, _, err) = run(&mut c);
    assert_eq!(code, 0, "{err}");
    let key = std::fs::read_to_string(a.join("audit/log.pub")).unwrap();
    let mut c = pv(d);
    c.args(["audit", "--audit-dir"])
        .arg(&pulled)
        .args(["verify", "--key", key.trim()]);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "the mirrored trail verifies: {out}{err}");
    let entries = |dir: &Path| {
        let mut c = pv(d);
        c.args(["--json", "audit", "--audit-dir"])
            .arg(dir)
            .args(["verify", "--key", key.trim()]);
        let (code, out, err) = run(&mut c);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["entries"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        entries(&pulled),
        entries(&a.join("audit")),
        "the stopped node's copy lacks its last entries (server.stop among them)"
    );
    // It holds what the local trail holds (the records entries).
    let search = |dir: &Path| {
        let mut c = pv(d);
        c.args(["--json", "audit", "--audit-dir"]).arg(dir).args([
            "search",
            "--op",
            "records.*",
            "--limit",
            "100000",
        ]);
        run(&mut c).1.lines().count()
    };
    let (mirrored, local) = (search(&pulled), search(&a.join("audit")));
    assert!(mirrored >= 1 && mirrored == local, "{mirrored} of {local}");
}

#[test]
fn an_audit_node_name_belongs_to_one_trail() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, c) = (d.join("a"), d.join("c"));
    let Some(pg) = common::postgres_with_phivault_ca(&a, d) else {
        return;
    };
    pg.create_db("phivault");
    let config = d.join("a.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nca_file = \"{}\"\n[audit]\nnode = \"ward-1\"\n",
            a.join("ca/ca.pem").display()
        ),
    )
    .unwrap();
    let url = pg.url("phivault", "");
    let (na, _) = node(&a, &config, &url);
    // Another node given the same name (a copied config) is refused at
    // start, and told what to do: two trails under one name would
    // overwrite each other's copy in the database.
    common::copy_node_config(&a, &c);
    let mut child = pv(&c)
        .env("PHIVAULT_STORAGE_URL", &url)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("a second node named ward-1 started");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(
        err.contains("\"ward-1\" already belongs to another node's audit trail")
            && err.contains("[audit]"),
        "{err}"
    );
    assert!(!err.contains(pg.password()), "{err}");
    // Node A itself restarts under its name (same trail).
    drop(na);
    let (na, _) = node(&a, &config, &url);
    drop(na);
    assert_eq!(
        pg.psql("phivault", "SELECT count(*) FROM pv_audit_nodes"),
        "1"
    );
}
