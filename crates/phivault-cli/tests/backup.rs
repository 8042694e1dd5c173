//! `phivault backup` end to end: a dev server's store (records, subject
//! keys, a shredded subject, the audit trail) is backed up to an offline
//! key, verified with and without the key, tampering and wrong keys are
//! refused, and it is restored into a new data dir (SQLite) and into an
//! empty PostgreSQL database (the migration path), where a server serves
//! it again: same records, the shredded subject still shredded, the audit
//! trail still verifying.

use std::path::Path;

mod common;
use common::{pv, run};

use common::curl_json as curl;

fn search(dir: &Path, url: &str, mrn: &str) -> serde_json::Value {
    let (code, v) = curl(
        dir,
        &format!("{url}/v1/records/patients/search"),
        "POST",
        Some(&format!(r#"{{"index":"mrn","value":"{mrn}"}}"#)),
    );
    assert_eq!(code, 200, "{v}");
    v["records"].clone()
}

use common::copy_node_config as copy_config;
use common::serve_with as serve_at;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|_| panic!("not JSON: {out}"))
}

#[test]
fn backup_verify_restore_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = d.join("a");
    // Checkpoint after every entry: a backup taken while the server runs
    // then holds a trail whose every entry is covered by a signature.
    let acfg = d.join("a.toml");
    std::fs::write(&acfg, "[audit]\ncheckpoint_every = 1\n").unwrap();
    let (s, url) = serve_at(&a, &[], Some(&acfg));
    let schema = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/patients.schema.json"),
    )
    .unwrap();
    let (code, v) = curl(
        &a,
        &format!("{url}/v1/collections/patients"),
        "POST",
        Some(&schema),
    );
    assert!(code == 200 || code == 201, "{v}");
    let patients: Vec<serde_json::Value> = (0..300)
        .map(|i| {
            serde_json::json!({
                "patient_id": format!("P-{i:07}"), "mrn": format!("MRN-{i:07}"),
                "ssn": format!("{:03}-{:02}-{:04}", 100 + i, 11 + i % 80, 2000 + i),
                "name": {"family": format!("Zebulon{i}"), "given": "Ana"},
                "birth_date": "1984-07-19", "gender": "female", "active": true
            })
        })
        .collect();
    let (code, v) = curl(
        &a,
        &format!("{url}/v1/records/patients/bulk"),
        "POST",
        Some(&serde_json::json!({ "records": patients }).to_string()),
    );
    assert_eq!(code, 201, "{v}");
    let (code, v) = curl(&a, &format!("{url}/v1/subjects/P-0000007"), "DELETE", None);
    assert_eq!(code, 200, "{v}");
    // The backup key is made offline; the server side only has the public key.
    let (code, _, err) = run(pv(d)
        .args(["backup", "keygen", "--out"])
        .arg(d.join("bk.key")));
    assert_eq!(code, 0, "{err}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join("bk.key")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the private key is owner-only");
    // A backup while the server runs.
    let b1 = d.join("b1.pvb");
    let (code, out, err) = run(pv(&a)
        .args([
            "--insecure-dev",
            "--json",
            "backup",
            "create",
            "--recipient",
        ])
        .arg(d.join("bk.pub"))
        .arg("--out")
        .arg(&b1));
    assert_eq!(code, 0, "{err}");
    let created = json(&out);
    assert_eq!(created["counts"]["records"], 299, "{created}");
    assert_eq!(created["counts"]["keystore"], 1);
    let signer = created["signer"].as_str().unwrap().to_string();
    common::stop(s);
    // No PHI in the backup file.
    let bytes = std::fs::read(&b1).unwrap();
    for needle in ["Zebulon12", "MRN-0000012", "P-0000012"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle}"
        );
    }
    // Verify: anyone (signature), the key holder (decryption), a pinned signer.
    let (code, out, err) = run(pv(d).args(["--json", "backup", "verify"]).arg(&b1));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["decrypted"], false);
    let (code, out, err) = run(pv(d)
        .args(["--json", "backup", "verify"])
        .arg(&b1)
        .arg("--key")
        .arg(d.join("bk.key"))
        .args(["--signer", &signer]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["decrypted"], true);
    let (code, _, err) = run(pv(d)
        .args(["backup", "verify"])
        .arg(&b1)
        .args(["--signer", &"00".repeat(32)]));
    assert_ne!(code, 0);
    assert!(err.contains("did not verify"), "{err}");
    // One flipped byte anywhere is caught without the key.
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    std::fs::write(d.join("bad.pvb"), &bad).unwrap();
    let (code, _, err) = run(pv(d).args(["backup", "verify"]).arg(d.join("bad.pvb")));
    assert_ne!(code, 0, "{err}");
    // Another backup key can't restore it.
    let (code, _, _) = run(pv(d)
        .args(["backup", "keygen", "--out"])
        .arg(d.join("other.key")));
    assert_eq!(code, 0);
    let (code, _, err) = run(pv(&d.join("x"))
        .args(["backup", "restore"])
        .arg(&b1)
        .arg("--key")
        .arg(d.join("other.key")));
    assert_ne!(code, 0);
    assert!(!err.contains("Zebulon"), "{err}");

    // An audit folder holding only a group-commit journal (left from
    // another trail) is not empty: the journal could be replayed onto the
    // restored trail at its first start.
    let j = d.join("j");
    copy_config(&a, &j);
    std::fs::create_dir_all(j.join("audit")).unwrap();
    std::fs::copy(a.join("audit/journal"), j.join("audit/journal")).unwrap();
    let (code, _, err) = run(pv(&j)
        .args(["backup", "restore"])
        .arg(&b1)
        .arg("--key")
        .arg(d.join("bk.key")));
    assert_ne!(code, 0);
    assert!(err.contains("audit is not empty"), "{err}");

    // Restore into a new data dir.
    let r = d.join("r");
    copy_config(&a, &r);
    let (code, out, err) = run(pv(&r)
        .args(["--json", "backup", "restore"])
        .arg(&b1)
        .arg("--key")
        .arg(d.join("bk.key"))
        .args(["--signer", &signer]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["counts"]["records"], 299);
    // A second restore into the same (now full) store is refused.
    let (code, _, err) = run(pv(&r)
        .args(["backup", "restore"])
        .arg(&b1)
        .arg("--key")
        .arg(d.join("bk.key")));
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");
    let (code, out, err) = run(pv(&r).args(["audit", "verify"]));
    assert_eq!(code, 0, "the restored audit trail verifies: {out}{err}");
    let (s, url) = serve_at(&r, &[], None);
    let hit = search(&r, &url, "MRN-0000012");
    assert_eq!(hit[0]["data"]["name"]["family"], "Zebulon12", "{hit}");
    assert_eq!(
        search(&r, &url, "MRN-0000007"),
        serde_json::json!([]),
        "still shredded"
    );
    common::stop(s);

    // Restore into an empty PostgreSQL database: the migration path.
    let Some(pg) = common::postgres_with_phivault_ca(&a, d) else {
        return;
    };
    pg.create_db("restored");
    let p = d.join("p");
    copy_config(&a, &p);
    let config = d.join("pg.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nca_file = \"{}\"\n",
            a.join("ca/ca.pem").display()
        ),
    )
    .unwrap();
    let pg_url = pg.url("restored", "");
    let env = [("PHIVAULT_STORAGE_URL", pg_url.as_str())];
    let (code, out, err) = run(pv(&p)
        .envs(env)
        .arg("--config")
        .arg(&config)
        .args(["--json", "backup", "restore"])
        .arg(&b1)
        .arg("--key")
        .arg(d.join("bk.key")));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["counts"]["records"], 299);
    assert_eq!(
        pg.psql("restored", "SELECT count(*) FROM pv_records"),
        "299"
    );
    assert_eq!(pg.psql("restored", "SELECT count(*) FROM pv_keystore"), "1");
    assert!(!p.join("keystore.json").exists() && !p.join("records.db").exists());
    let (s, url) = serve_at(&p, &env, Some(&config));
    let hit = search(&p, &url, "MRN-0000299");
    assert_eq!(hit[0]["data"]["name"]["family"], "Zebulon299", "{hit}");
    assert_eq!(
        search(&p, &url, "MRN-0000007"),
        serde_json::json!([]),
        "still shredded"
    );
    // And a backup of the PostgreSQL store, restored into SQLite again.
    let b2 = d.join("b2.pvb");
    let (code, out, err) = run(pv(&p)
        .envs(env)
        .arg("--config")
        .arg(&config)
        .args([
            "--insecure-dev",
            "--json",
            "backup",
            "create",
            "--recipient",
        ])
        .arg(d.join("bk.pub"))
        .arg("--out")
        .arg(&b2));
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["counts"]["records"], 299);
    common::stop(s);
    let q = d.join("q");
    copy_config(&a, &q);
    let (code, _, err) = run(pv(&q)
        .args(["backup", "restore"])
        .arg(&b2)
        .arg("--key")
        .arg(d.join("bk.key")));
    assert_eq!(code, 0, "{err}");
    let (s, url) = serve_at(&q, &[], None);
    assert_eq!(
        search(&q, &url, "MRN-0000100")[0]["data"]["name"]["family"],
        "Zebulon100"
    );
    common::stop(s);
}
