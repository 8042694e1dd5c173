//! `phivault records` and the records store through the real binary:
//! apply and import with the CLI, acknowledged writes surviving `kill -9`,
//! and a reclassification job resuming from its cursor after `kill -9`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::pv;

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, config: &Path) -> Server {
    let (child, url) = common::spawn_dev_server(
        dir,
        &["--config".as_ref(), config.as_os_str()],
        "warn",
        Stdio::null(),
    );
    Server {
        child,
        addr: url.trim_start_matches("https://").to_string(),
    }
}

fn kill9(s: &mut Server) {
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
}

fn records(dir: &Path, s: &Server, args: &[&str]) -> (i32, String, String) {
    let o = pv(dir)
        .args(["records", "--addr", &s.addr])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn curl(
    dir: &Path,
    s: &Server,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--http1.1",
        "-w",
        "\n%{http_code}",
        "--max-time",
        "10",
        "-X",
        method,
    ])
    .arg("--cacert")
    .arg(dir.join("ca/ca.pem"))
    .arg("--cert")
    .arg(dir.join("clients/admin.pem"))
    .arg("--key")
    .arg(dir.join("clients/admin.key"))
    .args([
        "-H",
        "X-Purpose-Of-Use: TREAT",
        "-H",
        "Content-Type: application/json",
    ]);
    if let Some(b) = body {
        c.args(["--data-binary", b]);
    }
    let o = c.arg(format!("https://{}{path}", s.addr)).output().unwrap();
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    let (b, code) = t.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(b).unwrap_or(serde_json::Value::Null),
    )
}

fn patient(i: usize) -> serde_json::Value {
    serde_json::json!({
        "patient_id": format!("P-{i:07}"),
        "mrn": format!("MRN-{i:07}"),
        "ssn": format!("{:03}-{:02}-{:04}", 100 + i % 800, 10 + i % 89, 1000 + i % 8999),
        "name": {"family": format!("Family{i}"), "given": "Ana"},
        "birth_date": "1984-07-19",
        "gender": if i.is_multiple_of(2) { "female" } else { "male" },
        "active": true,
        "managing_org": "org-1"
    })
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn records_cli_acknowledged_writes_survive_kill9_and_jobs_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("config.toml");
    std::fs::write(&config, "[records]\njob_batch = 100\njob_pause_ms = 150\n").unwrap();
    let mut s = serve(d, &config);
    let (code, out, err) = records(
        d,
        &s,
        &[
            "apply",
            "patients",
            repo_file("examples/patients.schema.json").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("schema version 1") && out.contains("family_dob"),
        "{out}"
    );
    // Import 3000 records from JSON Lines.
    let jsonl = d.join("patients.jsonl");
    let mut f = std::fs::File::create(&jsonl).unwrap();
    for i in 0..3000 {
        writeln!(f, "{}", patient(i)).unwrap();
    }
    drop(f);
    let (code, out, err) = records(
        d,
        &s,
        &[
            "--json",
            "import",
            "patients",
            jsonl.to_str().unwrap(),
            "--batch",
            "250",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["imported"],
        3000
    );
    // A bad line is reported by number, without its contents.
    std::fs::write(
        d.join("bad.jsonl"),
        "{\"patient_id\": \"P-1\"}\n{ssn 123-45-6789\n",
    )
    .unwrap();
    let (code, _, err) = records(
        d,
        &s,
        &["import", "patients", d.join("bad.jsonl").to_str().unwrap()],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("line 2") && !err.contains("123-45-6789"),
        "{err}"
    );

    // Acknowledged writes survive kill -9: write in a loop, kill the
    // server mid-stream, restart, and read back every acknowledged id.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (acked, d, s_addr) = (acked.clone(), d.to_path_buf(), s.addr.clone());
        std::thread::spawn(move || {
            let srv = Server {
                child: Command::new("true").spawn().unwrap(),
                addr: s_addr,
            };
            for round in 0.. {
                let body = serde_json::json!({"records": (0..20).map(|k| patient(10_000 + round * 20 + k)).collect::<Vec<_>>()});
                let (code, v) = curl(
                    &d,
                    &srv,
                    "POST",
                    "/v1/records/patients/bulk",
                    Some(&body.to_string()),
                );
                if code != 201 {
                    break;
                }
                acked.lock().unwrap().extend(
                    v["ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_string()),
                );
            }
        })
    };
    let t0 = Instant::now();
    while acked.lock().unwrap().len() < 400 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill9(&mut s);
    writer.join().unwrap();
    let ids = acked.lock().unwrap().clone();
    assert!(ids.len() >= 400, "{} writes acknowledged", ids.len());
    let s2 = serve(d, &config);
    for chunk in ids.chunks(500) {
        let (code, v) = curl(
            d,
            &s2,
            "POST",
            "/v1/records/patients/bulk-get",
            Some(&serde_json::json!({"ids": chunk}).to_string()),
        );
        assert_eq!(code, 200, "{v}");
        for r in v["records"].as_array().unwrap() {
            assert!(
                r.get("error").is_none(),
                "acknowledged record lost or broken after kill -9: {r}"
            );
        }
    }
    let mut s = s2;

    // Reclassify `gender` (plain → phi): a migration job re-seals every
    // record; kill -9 mid-job; after restart it resumes from its cursor.
    let mut v2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo_file("examples/patients.schema.json")).unwrap())
            .unwrap();
    v2["fields"]["gender"] = serde_json::json!({"class": "phi"});
    let schema2 = d.join("v2.json");
    std::fs::write(&schema2, v2.to_string()).unwrap();
    let (code, out, err) = records(
        d,
        &s,
        &["--json", "apply", "patients", schema2.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let applied: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(applied["version"], 2);
    let job = applied["migration_job"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    let mut before = serde_json::Value::Null;
    while t0.elapsed() < Duration::from_secs(60) {
        before = curl(d, &s, "GET", &format!("/v1/jobs/{job}"), None).1;
        if before["done"].as_u64().unwrap_or(0) >= 300 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill9(&mut s);
    let total = before["total"].as_u64().unwrap();
    assert!(
        before["state"] == "running" && before["done"].as_u64().unwrap() < total,
        "{before}"
    );
    let s = serve(d, &config);
    let after_restart = curl(d, &s, "GET", &format!("/v1/jobs/{job}"), None).1;
    assert!(
        after_restart["done"].as_u64().unwrap() >= 300,
        "the job keeps its progress: {after_restart}"
    );
    let (code, out, err) = records(d, &s, &["--json", "job", &job, "--wait"]);
    assert_eq!(code, 0, "{err}");
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["state"], "done", "{done}");
    assert!(done["done"].as_u64().unwrap() >= total);
    // Every record is now at version 2, and gender is no longer stored in the clear.
    let db = rusqlite::Connection::open(d.join("records.db")).unwrap();
    let old: i64 = db
        .query_row("SELECT count(*) FROM records WHERE v < 2", [], |r| r.get(0))
        .unwrap();
    let clear: i64 = db
        .query_row(
            "SELECT count(*) FROM records WHERE plain LIKE '%male%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((old, clear), (0, 0));
    let (code, v) = curl(
        d,
        &s,
        "POST",
        "/v1/records/patients/search",
        Some(r#"{"index":"mrn","value":"MRN-0000007"}"#),
    );
    assert_eq!(code, 200);
    assert_eq!(v["records"][0]["data"]["gender"], "male");
    assert_eq!(v["records"][0]["schema_version"], 2);
    // Shred through the CLI: the receipt is printed.
    let (code, out, err) = records(d, &s, &["shred", "P-0000007"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"key_destroyed\": true") && out.contains("\"records_deleted\": 1"),
        "{out}"
    );
    let (_, v) = curl(
        d,
        &s,
        "POST",
        "/v1/records/patients/search",
        Some(r#"{"index":"mrn","value":"MRN-0000007"}"#),
    );
    assert_eq!(v["records"], serde_json::json!([]));

    // The audit trail went through two kill -9s: it verifies, and every
    // acknowledged create has its entry (the record id's HMAC).
    drop(s);
    let ks = phivault_keystore::Keystore::open_dev(d).unwrap();
    let key = phivault_server::audit::id_key(&ks).unwrap();
    let mut created = std::collections::HashSet::new();
    phivault_audit::query::for_each(&d.join("audit"), 0, |e| {
        if e.event.op == "records.create" && e.event.status == Some(201) {
            created.extend(e.event.records);
        }
        true
    })
    .unwrap();
    for id in &ids {
        let h = phivault_server::audit::id_hash(&key, "record", id);
        assert!(
            created.contains(&h),
            "acknowledged create of {id} has no audit entry"
        );
    }
    let o = pv(d)
        .args(["audit", "verify"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
}
