//! The audit trail of a real server over real mTLS: every request,
//! failed handshake and failed authentication is recorded; no PHI is ever
//! in the trail; break-glass reads are marked and time-limited; the trail
//! fails closed when it can't be written (a full filesystem); and the
//! trail verifies with only the public key.

mod common;

use common::*;
use phivault_audit::query::{self, Entry, Filter};
use phivault_audit::verify::{VerifyOptions, parse_keys, verify};
use phivault_audit::{Kind, Outcome, Severity};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const SCHEMA: &str = r#"{
  "expected_rows": 1000, "subject": "patient_id",
  "fields": {
    "patient_id": {"class": "phi_search"},
    "name": {"class": "phi"},
    "ssn": {"class": "token", "mask": "last4"},
    "dx": {"class": "phi"},
    "org": {"class": "plain"}
  }
}"#;

fn entries(dir: &Path) -> Vec<Entry> {
    let mut v = Vec::new();
    query::for_each(dir, 0, |e| {
        v.push(e);
        true
    })
    .unwrap();
    v
}

fn audit_dir(h: &Harness) -> std::path::PathBuf {
    h.settings.audit.dir.clone()
}

fn id_key(h: &Harness) -> phivault_core::crypto::HmacKey {
    phivault_server::audit::id_key(h.ks.as_ref()).unwrap()
}

fn purpose() -> [&'static str; 2] {
    ["-H", "X-Purpose-Of-Use: TREAT"]
}

async fn stop(h: &mut Harness) {
    h.running.take().unwrap().shutdown().await;
}

fn patient(i: usize) -> Value {
    json!({
        "patient_id": format!("PT-Zq{i:05}-xk"),
        "name": format!("Quentessa Vahlrudd-{i:04}"),
        "ssn": format!("{:09}", 417_223_000 + i),
        "dx": format!("Chronic xylophagia stage {i} (confidential)"),
        "org": "north"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_recorded_and_the_trail_holds_no_phi() {
    let mut h = Harness::new(|_, _| {});
    let admin = h.client(
        "admin",
        &[
            "records:*:*",
            "transit:*:*",
            "keys:admin",
            "sys:metrics",
            "audit:read",
            "audit:hash",
        ],
    );
    let nobody = h.client("nobody", &["transit:encrypt:other"]);
    h.start_unsealed().await;
    let (c, v) = h.post(
        &admin,
        "/v1/collections/patients",
        serde_json::from_str(SCHEMA).unwrap(),
    );
    assert_eq!(c, 201, "{v}");
    let docs: Vec<Value> = (0..40).map(patient).collect();
    let (c, v) = h.post(
        &admin,
        "/v1/records/patients/bulk",
        json!({ "records": docs }),
    );
    assert_eq!(c, 201, "{v}");
    let ids: Vec<String> = serde_json::from_value(v["ids"].clone()).unwrap();
    // Reads, a search, transit with a PHI plaintext.
    for id in &ids[..5] {
        let (c, _) = h.json(
            Some(&admin),
            "GET",
            &format!("/v1/records/patients/{id}"),
            None,
            &purpose(),
        );
        assert_eq!(c, 200);
    }
    let (c, v) = h.json(
        Some(&admin),
        "POST",
        "/v1/records/patients/search",
        Some(&json!({"index": "patient_id", "value": "PT-Zq00007-xk"}).to_string()),
        &purpose(),
    );
    assert_eq!(c, 200, "{v}");
    let (c, _) = h.post(&admin, "/v1/transit/keys/billing", json!({}));
    assert!(c == 200 || c == 204, "{c}");
    let secret_pt = "Quentessa Vahlrudd diagnosis xylophagia";
    let (c, _) = h.post(
        &admin,
        "/v1/transit/encrypt/billing",
        json!({ "plaintext": b64(secret_pt.as_bytes()) }),
    );
    assert_eq!(c, 200);
    // Refusals: a wrong scope (403), no certificate (401), plaintext HTTP
    // on the TLS port (a failed handshake).
    let (c, _) = h.post(
        &nobody,
        "/v1/transit/encrypt/billing",
        json!({ "plaintext": "aGk=" }),
    );
    assert_eq!(c, 403);
    let (c, _) = h.json(None, "GET", "/v1/transit/keys", None, &[]);
    assert_eq!(c, 401);
    // Probing: an unknown path and a wrong method.
    let (c, _) = h.get(&nobody, "/v1/no/such/path");
    assert_eq!(c, 404);
    let (c, _) = h.json(
        Some(&nobody),
        "DELETE",
        "/v1/transit/encrypt/billing",
        None,
        &[],
    );
    assert_eq!(c, 405);
    {
        use std::io::{Read, Write};
        let mut t = std::net::TcpStream::connect(h.addr()).unwrap();
        t.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut b = Vec::new();
        let _ = t.read_to_end(&mut b);
    }
    // Proofs and id hashes over the API, against a checkpoint.
    // The first checkpoint after the requests (one a second; a loaded CI
    // machine may be slower).
    let mut tries = 0;
    let note = loop {
        let (c, note) = h.curl(Some(&admin), "GET", "/v1/audit/checkpoint", None, &[]);
        if c == 200 && note.lines().nth(1).and_then(|n| n.parse::<u64>().ok()) > Some(10) {
            break note;
        }
        tries += 1;
        assert!(tries < 100, "no checkpoint: {c} {note}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    let vkeys =
        parse_keys(&std::fs::read_to_string(audit_dir(&h).join("log.pub")).unwrap()).unwrap();
    let cp = vkeys[0].open_checkpoint(&note).unwrap();
    let unb64 = |v: &Value| -> [u8; 32] {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let (c, p) = h.get(&admin, "/v1/audit/proof/inclusion/3");
    assert_eq!(c, 200, "{p}");
    let proof: Vec<[u8; 32]> = p["proof"].as_array().unwrap().iter().map(unb64).collect();
    phivault_core::audit::merkle::verify_inclusion(
        &unb64(&p["leaf_hash"]),
        3,
        cp.size,
        &proof,
        &cp.root,
    )
    .expect("inclusion proof verifies against the signed root");
    let (c, p) = h.get(&admin, "/v1/audit/proof/consistency/2");
    assert_eq!(c, 200, "{p}");
    let proof: Vec<[u8; 32]> = p["proof"].as_array().unwrap().iter().map(unb64).collect();
    phivault_core::audit::merkle::verify_consistency(
        2,
        cp.size,
        &unb64(&p["old_root"]),
        &cp.root,
        &proof,
    )
    .expect("consistency proof verifies");
    let (c, _) = h.get(&admin, &format!("/v1/audit/proof/inclusion/{}", cp.size));
    assert_eq!(c, 400);
    let (c, v) = h.post(
        &admin,
        "/v1/audit/hash",
        json!({ "input": "PT-Zq00007-xk" }),
    );
    assert_eq!(c, 200, "{v}");
    let (c, _) = h.post(
        &nobody,
        "/v1/audit/hash",
        json!({ "input": "PT-Zq00007-xk" }),
    );
    assert_eq!(c, 403);
    // Let the handshake event land, then stop (server.stop, last checkpoint).
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop(&mut h).await;

    let dir = audit_dir(&h);
    let all = entries(&dir);
    let ops: Vec<&str> = all.iter().map(|e| e.event.op.as_str()).collect();
    for want in [
        "server.start",
        "records.create",
        "records.read",
        "records.search",
        "transit.encrypt",
        "key.create",
        "tls.handshake",
        "server.stop",
    ] {
        assert!(ops.contains(&want), "no {want} in {ops:?}");
    }
    let enc = all
        .iter()
        .find(|e| e.event.op == "transit.encrypt" && e.event.status == Some(200))
        .unwrap();
    let ev = &enc.event;
    assert_eq!(ev.principal.as_deref(), Some("spiffe://test.local/admin"));
    assert_eq!(ev.resource.as_deref(), Some("transit/billing"));
    assert!(ev.cert_sha256.is_some() && ev.latency_us.is_some() && ev.request_id.is_some());
    assert_eq!(ev.scopes, ["transit:encrypt:billing"]);
    assert!(ev.tls.as_ref().unwrap().version.starts_with("TLSv1"));
    let denied = all
        .iter()
        .find(|e| e.event.status == Some(403))
        .expect("403 recorded");
    assert_eq!(denied.event.outcome, Outcome::Denied);
    assert_eq!(denied.event.reason.as_deref(), Some("scope_denied"));
    assert!(all.iter().any(|e| e.event.status == Some(401)
        && e.event.kind == Kind::Auth
        && e.event.reason.as_deref() == Some("client_cert_missing")));
    assert!(
        all.iter().any(|e| e.event.kind == Kind::Handshake
            && e.event.reason.as_deref() == Some("plaintext_http"))
    );
    for (status, reason) in [(404, "no_route"), (405, "no_method")] {
        assert!(
            all.iter().any(|e| e.event.status == Some(status)
                && e.event.reason.as_deref() == Some(reason)
                && e.event.principal.as_deref() == Some("spiffe://test.local/nobody")),
            "no {status} entry"
        );
    }
    // Reads name the record and the subject, as HMACs, with the purpose.
    let k = id_key(&h);
    let subj = phivault_server::audit::id_hash(&k, "subject", "PT-Zq00007-xk");
    assert_eq!(
        v["hash"].as_str(),
        Some(subj.as_str()),
        "the API's hash is the trail's"
    );
    let f = Filter {
        subject: Some(subj),
        ..Default::default()
    };
    let hits: Vec<&Entry> = all.iter().filter(|e| f.matches(&e.event)).collect();
    let hit_ops: Vec<&str> = hits.iter().map(|e| e.event.op.as_str()).collect();
    assert!(
        hit_ops.contains(&"records.create") && hit_ops.contains(&"records.search"),
        "{hit_ops:?}"
    );
    let read = all
        .iter()
        .find(|e| e.event.op == "records.read" && e.event.status == Some(200))
        .unwrap();
    assert_eq!(read.event.purpose.as_deref(), Some("TREAT"));
    let rid = phivault_server::audit::id_hash(&k, "record", &ids[0]);
    assert!(read.event.records.contains(&rid));
    // No PHI value, and no record id in the clear, anywhere in the trail.
    let mut needles: Vec<String> = Vec::new();
    for i in 0..40 {
        let p = patient(i);
        for f in ["patient_id", "name", "ssn", "dx"] {
            needles.push(p[f].as_str().unwrap().to_owned());
        }
    }
    needles.push(secret_pt.into());
    needles.push(b64(secret_pt.as_bytes()));
    needles.extend(ids.iter().cloned());
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    let ac = aho_corasick::AhoCorasick::new(&needles).unwrap();
    let mut bytes = 0;
    for f in &files {
        let b = std::fs::read(f).unwrap();
        bytes += b.len();
        if let Some(m) = ac.find(&b) {
            panic!(
                "PHI value #{} found in {}",
                m.pattern().as_usize(),
                f.display()
            );
        }
    }
    assert!(bytes > 10_000, "the trail was read ({bytes} bytes)");
    // And it verifies with only the public key.
    let keys = parse_keys(&std::fs::read_to_string(dir.join("log.pub")).unwrap()).unwrap();
    let r = verify(&VerifyOptions {
        dir,
        keys,
        witnesses: vec![],
    })
    .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.unsigned_tail, 0, "a checkpoint at shutdown");
}

/// A trail that an earlier start found with signed entries lost or changed
/// (`audit/signing-blocked`) records requests but signs no checkpoint, and
/// the metrics say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trail_with_signing_blocked_shows_in_the_metrics() {
    let mut h = Harness::new(|_, _| {});
    let admin = h.client("admin", &["sys:metrics", "transit:*:*", "keys:admin"]);
    let dir = audit_dir(&h);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("signing-blocked"),
        "signed entries were lost (test)\n",
    )
    .unwrap();
    h.start_unsealed().await;
    let (c, _) = h.post(&admin, "/v1/transit/keys/billing", json!({}));
    assert!(c == 200 || c == 204);
    let (c, m) = h.curl(Some(&admin), "GET", "/v1/sys/metrics", None, &[]);
    assert_eq!(c, 200);
    assert_eq!(metric(&m, "phivault_audit_signing_blocked "), 1.0, "{m}");
    assert!(metric(&m, "phivault_audit_entries ") >= 2.0, "{m}");
    stop(&mut h).await;
    // Unsealed, started and stopped: a checkpoint each time, were it not
    // blocked.
    assert!(!dir.join("checkpoint").exists());
    assert!(
        std::fs::read(dir.join("checkpoints.log"))
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_is_marked_counted_and_time_limited() {
    let mut h = Harness::new(|_, _| {});
    h.settings.audit.break_glass_window = Duration::from_secs(5);
    let admin = h.client(
        "admin",
        &["records:*:*", "sys:metrics", "transit:*:*", "keys:admin"],
    );
    let er = h.client("er-doctor", &["break-glass"]);
    let plain = h.client("clerk", &[]);
    h.start_unsealed().await;
    let (c, _) = h.post(
        &admin,
        "/v1/collections/patients",
        serde_json::from_str(SCHEMA).unwrap(),
    );
    assert_eq!(c, 201);
    let (c, v) = h.post(&admin, "/v1/records/patients", patient(1));
    assert_eq!(c, 201);
    let id = v["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/records/patients/{id}");
    let bg = [
        "-H",
        "X-Purpose-Of-Use: ETREAT",
        "-H",
        "X-Break-Glass-Reason: unconscious patient in ED",
    ];
    // Without the header: refused. Without the scope: refused.
    let (c, _) = h.json(
        Some(&er),
        "GET",
        &path,
        None,
        &["-H", "X-Purpose-Of-Use: ETREAT"],
    );
    assert_eq!(c, 403);
    let (c, _) = h.json(Some(&plain), "GET", &path, None, &bg);
    assert_eq!(c, 403);
    // With both: the full record.
    let (c, v) = h.json(Some(&er), "GET", &path, None, &bg);
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["data"]["name"], patient(1)["name"]);
    // A PHI-free reason is required.
    let (c, _) = h.json(
        Some(&er),
        "GET",
        &path,
        None,
        &[
            "-H",
            "X-Purpose-Of-Use: ETREAT",
            "-H",
            "X-Break-Glass-Reason: x",
        ],
    );
    assert_eq!(c, 400);
    assert_eq!(
        metric(&h.metrics(), "phivault_break_glass_accesses_total"),
        1.0
    );
    // Transit decrypt too.
    let (c, _) = h.post(&admin, "/v1/transit/keys/er", json!({}));
    assert!(c == 200 || c == 204);
    let (_, v) = h.post(
        &admin,
        "/v1/transit/encrypt/er",
        json!({ "plaintext": b64(b"allergy: penicillin") }),
    );
    let ct = v["data"]["ciphertext"].as_str().unwrap().to_owned();
    let dec = |extra: &[&str]| {
        h.json(
            Some(&er),
            "POST",
            "/v1/transit/decrypt/er",
            Some(&json!({ "ciphertext": ct }).to_string()),
            extra,
        )
    };
    assert_eq!(dec(&[]).0, 403);
    let (c, v) = dec(&["-H", "X-Break-Glass-Reason: unconscious patient in ED"]);
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["data"]["plaintext"], b64(b"allergy: penicillin"));
    assert_eq!(
        metric(&h.metrics(), "phivault_break_glass_accesses_total"),
        2.0
    );
    // The window closes.
    tokio::time::sleep(Duration::from_millis(5100)).await;
    let (c, v) = h.json(Some(&er), "GET", &path, None, &bg);
    assert_eq!(c, 403, "{v}");
    assert!(v.to_string().contains("break-glass window"), "{v}");
    stop(&mut h).await;
    let all = entries(&audit_dir(&h));
    let f = Filter {
        break_glass: true,
        ..Default::default()
    };
    let bgs: Vec<&Entry> = all.iter().filter(|e| f.matches(&e.event)).collect();
    assert_eq!(bgs.len(), 2, "{bgs:?}");
    assert_eq!(bgs[1].event.op, "transit.decrypt");
    assert_eq!(bgs[1].event.reason, None, "the override is not a refusal");
    let e = &bgs[0].event;
    assert_eq!(e.severity, Severity::High);
    assert_eq!(e.break_glass.as_deref(), Some("unconscious patient in ED"));
    assert_eq!(
        e.principal.as_deref(),
        Some("spiffe://test.local/er-doctor")
    );
    assert_eq!(e.purpose.as_deref(), Some("ETREAT"));
    assert!(
        all.iter()
            .any(|e| e.event.reason.as_deref() == Some("break_glass_expired"))
    );
}

/// A tmpfs of `size` at `at` (needs root, as in CI); false if it can't.
fn small_fs(at: &Path, size: &str) -> bool {
    std::fs::create_dir_all(at).unwrap();
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
}

fn umount(at: &Path) {
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(at)
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_closed_then_recovers() {
    let mut h = Harness::new(|_, _| {});
    let mnt = h.dir.path().join("audit-fs");
    if !small_fs(&mnt, "2m") {
        assert!(
            std::env::var_os("PHIVAULT_REQUIRE_ALL_TESTS").is_none(),
            "mounting a tmpfs failed (CI runs as root)"
        );
        eprintln!("SKIPPED a_full_disk_fails_closed_then_recovers: mounting a tmpfs needs root");
        return;
    }
    h.settings.audit.dir = mnt.join("audit");
    // The group-commit journal is written in full at start: a small one
    // leaves this 2 MiB disk to the segment.
    h.settings.audit.journal_bytes = 256 << 10;
    let admin = h.client("admin", &["transit:*:*", "keys:admin", "sys:metrics"]);
    h.start_unsealed().await;
    let (c, _) = h.post(&admin, "/v1/transit/keys/billing", json!({}));
    assert!(c == 200 || c == 204);
    let enc = |h: &Harness| {
        h.post(
            &admin,
            "/v1/transit/encrypt/billing",
            json!({ "plaintext": "aGk=" }),
        )
    };
    assert_eq!(enc(&h).0, 200);
    // Fill the filesystem.
    let filler = mnt.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "count=64"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let mut codes = Vec::new();
    for _ in 0..20 {
        let (c, v) = enc(&h);
        if c != 200 {
            assert_eq!(c, 503, "{v}");
            assert!(v.to_string().contains("audit"), "{v}");
        }
        codes.push(c);
    }
    // The last page of the segment may still take a few entries; from the
    // first failed write on, every ePHI request is refused.
    let first = codes
        .iter()
        .position(|c| *c == 503)
        .expect("no 503 on a full disk");
    assert!(
        first < 10 && codes[first..].iter().all(|c| *c == 503),
        "{codes:?}"
    );
    let refused = (codes.len() - first - 1) as f64;
    // Health and metrics still answer; the refusals are counted.
    let (c, _) = h.json(None, "GET", "/v1/sys/health", None, &[]);
    assert_eq!(c, 200);
    let m = h.metrics();
    assert!(
        metric(&m, "phivault_audit_refusals_total") >= refused,
        "{m}"
    );
    assert!(metric(&m, "phivault_audit_write_failures_total") >= 1.0);
    // Space again: service resumes, and nothing written is lost or torn.
    std::fs::remove_file(&filler).unwrap();
    let mut ok = false;
    for _ in 0..5 {
        if enc(&h).0 == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok, "service did not resume after space was freed");
    stop(&mut h).await;
    let dir = audit_dir(&h);
    let keys = parse_keys(&std::fs::read_to_string(dir.join("log.pub")).unwrap()).unwrap();
    let r = verify(&VerifyOptions {
        dir: dir.clone(),
        keys,
        witnesses: vec![],
    })
    .unwrap();
    umount(&mnt);
    assert!(r.ok, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_reach_witnesses_a_folder_and_nginx_over_mtls() {
    let have_nginx = std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_ok();
    if !have_nginx {
        assert!(
            std::env::var_os("PHIVAULT_REQUIRE_ALL_TESTS").is_none(),
            "nginx is missing (.ci/run installs it)"
        );
        eprintln!("SKIPPED checkpoints_reach_witnesses…: no nginx (apt-get install nginx)");
        return;
    }
    let mut h = Harness::new(|_, _| {});
    let work = h.dir.path().join("nginx");
    std::fs::create_dir_all(work.join("www/logs")).unwrap();
    std::fs::create_dir_all(work.join("tmp")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = h.dir.path().to_path_buf();
    // As root (CI), nginx's workers would drop to www-data, which can't
    // write into this test's private temp folder.
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    let root = if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        "user root;"
    } else {
        ""
    };
    std::fs::write(
        work.join("nginx.conf"),
        format!(
            "{root}\nworker_processes 1;\npid {w}/nginx.pid;\nerror_log {w}/error.log warn;\nevents {{}}\n\
             http {{ access_log {w}/access.log; client_body_temp_path {w}/tmp;\n\
             server {{ listen 127.0.0.1:{port} ssl;\n ssl_certificate {d}/tls/server.pem; ssl_certificate_key {d}/tls/server.key;\n\
             ssl_protocols TLSv1.2 TLSv1.3; ssl_client_certificate {d}/ca/ca.pem; ssl_verify_client on;\n\
             location /logs/ {{ root {w}/www; dav_methods PUT; create_full_put_path on; }} }} }}\n",
            w = work.display(),
            d = d.display()
        ),
    )
    .unwrap();
    let st = std::process::Command::new("nginx")
        .arg("-c")
        .arg(work.join("nginx.conf"))
        .status()
        .unwrap();
    assert!(
        st.success(),
        "nginx did not start: {}",
        std::fs::read_to_string(work.join("error.log")).unwrap_or_default()
    );
    let wc = h.client("audit-witness", &[]);
    let wdir = h.dir.path().join("witness-folder");
    let af = phivault_server::config::AuditFile {
        witness_urls: vec![format!(
            "https://127.0.0.1:{port}/logs/phivault-node.checkpoint"
        )],
        witness_cert: Some(wc.cert.clone()),
        witness_key: Some(wc.key.clone()),
        witness_dirs: vec![wdir.clone()],
        ..Default::default()
    };
    h.settings.audit = phivault_server::config::AuditSettings::resolve(&d, &af).unwrap();
    let admin = h.client("admin", &["sys:metrics"]);
    h.start_unsealed().await;
    for _ in 0..5 {
        let (c, _) = h.json(Some(&admin), "GET", "/v1/sys/metrics", None, &[]);
        assert_eq!(c, 200);
    }
    let pushed = work.join("www/logs/phivault-node.checkpoint");
    for _ in 0..100 {
        if pushed.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop(&mut h).await;
    let pid = std::fs::read_to_string(work.join("nginx.pid")).unwrap_or_default();
    let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    let got = std::fs::read_to_string(work.join("www/logs/phivault-node.checkpoint"))
        .unwrap_or_else(|_| {
            panic!(
                "nothing PUT to nginx: {}",
                std::fs::read_to_string(work.join("error.log")).unwrap_or_default()
            )
        });
    let dir = audit_dir(&h);
    let keys = parse_keys(&std::fs::read_to_string(dir.join("log.pub")).unwrap()).unwrap();
    let cp = keys[0]
        .open_checkpoint(&got)
        .expect("the witness holds a signed checkpoint");
    assert!(cp.size > 5, "{cp:?}");
    // The folder witness lets verify hold a rewritten log to it.
    let opts = |witnesses| VerifyOptions {
        dir: dir.clone(),
        keys: keys.clone(),
        witnesses,
    };
    assert!(verify(&opts(vec![wdir.clone()])).unwrap().ok);
    let nginx_copy = h.dir.path().join("nginx-copy");
    std::fs::create_dir_all(&nginx_copy).unwrap();
    std::fs::write(nginx_copy.join("n.checkpoint"), &got).unwrap();
    assert!(verify(&opts(vec![nginx_copy.clone()])).unwrap().ok);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let r = verify(&opts(vec![nginx_copy])).unwrap();
    assert!(!r.ok, "a deleted log must fail against the witness: {r:?}");
}

/// A node that is a c2sp.org/tlog-witness for another node's trail: the
/// log pushes each checkpoint with a consistency proof, the witness
/// cosigns it, keeps the newest, and refuses forks and rollbacks even when
/// they carry the log's own signature; a restarted log learns the
/// witness's size (409) and proves from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tlog_witness_node_cosigns_growth_and_keeps_its_copy_against_forks() {
    use phivault_core::audit::note::{Checkpoint, NoteSigner, NoteVerifier};
    use phivault_core::crypto::{SignatureAlgorithm, SigningKey};
    use phivault_server::config::{AuditFile, AuditSettings};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut w = Harness::new(|_, _| {});
    let mut a = Harness::new(|_, _| {});
    let pusher = w.client("log-a", &["witness:submit"]);
    // The witness's cosigner key, as it will publish it once unsealed.
    w.ks.create_ring(
        &phivault_core::keys::KeyRingName::parse(phivault_server::audit::AUDIT_RING).unwrap(),
        36_500,
    )
    .unwrap();
    let wkey_pub = phivault_server::audit::cosigner(w.ks.as_ref(), "witness.test/w1")
        .unwrap()
        .verifier_key();
    let af = AuditFile {
        witness_cosigners: vec![wkey_pub.clone()],
        witness_urls: vec![format!(
            "https://127.0.0.1:{port}/v1/witness/add-checkpoint"
        )],
        witness_ca: Some(w.ca_pem()),
        witness_cert: Some(pusher.cert.clone()),
        witness_key: Some(pusher.key.clone()),
        ..Default::default()
    };
    a.settings.audit = AuditSettings::resolve(a.dir.path(), &af).unwrap();
    a.start_unsealed().await;
    let origin = a.settings.audit.origin.clone();
    let log_vkey = std::fs::read_to_string(audit_dir(&a).join("log.pub")).unwrap();
    let log_vkey = log_vkey.lines().next().unwrap().to_owned();
    let log_key = NoteVerifier::parse(&log_vkey).unwrap();
    let wf = AuditFile {
        witness_logs: vec![format!("{origin} {log_vkey}")],
        witness_name: Some("witness.test/w1".into()),
        ..Default::default()
    };
    w.settings.audit = AuditSettings::resolve(w.dir.path(), &wf).unwrap();
    w.settings.listen = format!("127.0.0.1:{port}").parse().unwrap();
    w.start_unsealed().await;
    let held_path = phivault_audit::witness::path(&w.settings.audit.witness_state, &origin);
    let held = || -> Option<Checkpoint> {
        let n = std::fs::read_to_string(&held_path).ok()?;
        Some(
            log_key
                .open_checkpoint(&n)
                .expect("the witness holds a note the log signed"),
        )
    };
    let admin = a.client("admin", &["sys:metrics"]);
    // Requests make entries, entries make checkpoints (one a second);
    // wait for the witness to take two, the second by a proof.
    let drive = |a: &Harness, until: &dyn Fn(u64) -> bool| {
        for _ in 0..60 {
            for _ in 0..5 {
                assert_eq!(
                    a.json(Some(&admin), "GET", "/v1/sys/metrics", None, &[]).0,
                    200
                );
            }
            std::thread::sleep(Duration::from_millis(250));
            if held().is_some_and(|c| until(c.size)) {
                return held().unwrap().size;
            }
        }
        panic!(
            "the witness did not take the log's checkpoints: {:?}",
            held()
        );
    };
    let first = drive(&a, &|_| true);
    let second = drive(&a, &|s| s > first);
    assert!(second > first);
    // The log keeps the witness's cosignature, which verifies under the
    // witness's published key, on a checkpoint the log signed.
    let wkey = std::fs::read_to_string(w.settings.audit.witness_state.join("witness.pub")).unwrap();
    assert_eq!(wkey.trim(), wkey_pub);
    let wkey = NoteVerifier::parse(wkey.trim()).unwrap();
    let kept = std::fs::read_dir(audit_dir(&a).join("witnessed"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .next()
        .expect("a cosigned checkpoint in audit/witnessed");
    let (_, time) = wkey.verify_timed(&kept).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(time.unwrap().abs_diff(now) < 300);
    assert_eq!(log_key.open_checkpoint(&kept).unwrap().origin, origin);

    // Checkpoints signed by the log's own key that do not extend what the
    // witness holds: each refused, and the witness's copy stays.
    let signer = phivault_server::audit::signer(a.ks.as_ref()).unwrap();
    stop(&mut a).await;
    let h = held().unwrap();
    // A copy of the stopped log's folder, restored at the end.
    let snapshot = a.dir.path().join("audit-snapshot");
    let cp = |from: &Path, to: &Path| {
        let _ = std::fs::remove_dir_all(to);
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(st.success());
    };
    cp(&audit_dir(&a), &snapshot);
    let sign = |s: &NoteSigner, size: u64, root: [u8; 32]| {
        s.sign_checkpoint(&Checkpoint {
            origin: origin.clone(),
            size,
            root,
            extensions: vec![],
        })
        .unwrap()
    };
    let submitter = w.client("submitter", &["witness:submit"]);
    let post = |body: String| {
        w.curl(
            Some(&submitter),
            "POST",
            "/v1/witness/add-checkpoint",
            Some(&body),
            &["-H", "Content-Type: text/plain"],
        )
    };
    let b64 = |h: &[u8; 32]| common::b64(h);
    // A fork that grew: no proof from the held tree can reach it.
    let (code, body) = post(format!(
        "old {}\n{}\n\n{}",
        h.size,
        b64(&[9; 32]),
        sign(&signer, h.size + 7, [7; 32])
    ));
    assert_eq!(code, 422, "{body}");
    // A fork of the same size.
    let (code, body) = post(format!(
        "old {}\n\n{}",
        h.size,
        sign(&signer, h.size, [8; 32])
    ));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("forked"), "{body}");
    // A rollback, and a client that does not know the held size: 409 and
    // the size, typed text/x.tlog.size.
    let hdrs = w.dir.path().join("409.headers");
    let (code, body) = w.curl(
        Some(&submitter),
        "POST",
        "/v1/witness/add-checkpoint",
        Some(&format!("old 0\n\n{}", sign(&signer, h.size - 1, [1; 32]))),
        &[
            "-H",
            "Content-Type: text/plain",
            "-D",
            hdrs.to_str().unwrap(),
        ],
    );
    assert_eq!(
        (code, body.as_str()),
        (409, format!("{}\n", h.size).as_str())
    );
    let hdrs = std::fs::read_to_string(&hdrs).unwrap().to_ascii_lowercase();
    assert!(hdrs.contains("content-type: text/x.tlog.size"), "{hdrs}");
    // An old size above the checkpoint's.
    let (code, _) = post(format!(
        "old {}\n\n{}",
        h.size + 5,
        sign(&signer, h.size + 1, [1; 32])
    ));
    assert_eq!(code, 400);
    // A stranger's key, and an unknown origin.
    let stranger = NoteSigner::new(
        "phivault-audit",
        SigningKey::generate(SignatureAlgorithm::Ed25519).unwrap(),
    )
    .unwrap();
    let (code, _) = post(format!(
        "old {}\n\n{}",
        h.size,
        sign(&stranger, h.size + 1, [2; 32])
    ));
    assert_eq!(code, 403);
    let other = stranger
        .sign_checkpoint(&Checkpoint {
            origin: "elsewhere/audit".into(),
            size: 3,
            root: [3; 32],
            extensions: vec![],
        })
        .unwrap();
    assert_eq!(post(format!("old 0\n\n{other}")).0, 404);
    assert_eq!(post("old 01\n\nx\n".into()).0, 400);
    assert_eq!(
        held().unwrap(),
        h,
        "a refused checkpoint never replaces the witness's copy"
    );
    // Both signed forks are kept as evidence, named for their log.
    let stem = held_path.with_extension("");
    let stem = stem.file_name().unwrap().to_string_lossy().to_string();
    let refused: Vec<String> = std::fs::read_dir(&w.settings.audit.witness_state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".refused-"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            assert!(name.starts_with(&format!("{stem}.refused-")), "{name}");
            std::fs::read_to_string(p).unwrap()
        })
        .collect();
    assert_eq!(refused.len(), 2, "the 422 and the same-size fork");
    for n in &refused {
        assert_ne!(log_key.open_checkpoint(n).unwrap().root, h.root);
    }
    // A held copy that can't be read fails closed: nothing replaces it.
    let good = std::fs::read(&held_path).unwrap();
    std::fs::write(&held_path, b"\xff\xfe not a note").unwrap();
    let (code, _) = post(format!("old 0\n\n{}", sign(&signer, h.size + 1, [5; 32])));
    assert_eq!(code, 500);
    assert_eq!(std::fs::read(&held_path).unwrap(), b"\xff\xfe not a note");
    std::fs::write(&held_path, &good).unwrap();
    // The witness counts what it saw; forks are the ones to alert on.
    let m = w.metrics();
    assert!(
        metric(
            &m,
            "phivault_witness_checkpoints_total{reason=\"accepted\"}"
        ) >= 2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "phivault_witness_checkpoints_total{reason=\"fork\"}"),
        2.0
    );
    assert_eq!(
        metric(&m, "phivault_witness_checkpoints_total{reason=\"error\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "phivault_witness_checkpoints_total{reason=\"bad_signature\"}"
        ),
        1.0
    );
    // Without the scope: 403.
    let nobody = w.client("nobody", &[]);
    let (code, _) = w.curl(
        Some(&nobody),
        "POST",
        "/v1/witness/add-checkpoint",
        Some("old 0\n\nx\n"),
        &[],
    );
    assert_eq!(code, 403);

    // Both restart: the witness keeps its state; the log no longer knows
    // the witness's size, learns it from a 409, rebuilds the frontier
    // there and proves from it.
    stop(&mut w).await;
    w.start_unsealed().await;
    assert_eq!(held().unwrap(), h);
    a.start_unsealed().await;
    let third = drive(&a, &|s| s > h.size);
    assert!(third > h.size);
    stop(&mut a).await;
    let witness_state = w.settings.audit.witness_state.clone();
    let verified = |a: &Harness| {
        verify(&VerifyOptions {
            dir: audit_dir(a),
            keys: parse_keys(&log_vkey).unwrap(),
            witnesses: vec![witness_state.clone()],
        })
        .unwrap()
        .ok
    };
    assert!(verified(&a));

    // The log's folder restored from the older copy: a rolled-back log
    // that goes on signing under its key. Its pushes fail (the witness
    // holds a larger tree, or the grown copy is a fork), are counted, and
    // the witness keeps its checkpoint; verify against it fails.
    // (The shutdown checkpoint may still be on its way to the witness.)
    std::thread::sleep(Duration::from_millis(500));
    let last = held().unwrap();
    assert!(last.size >= third);
    cp(&snapshot, &audit_dir(&a));
    a.start_unsealed().await;
    let failures = |a: &Harness| {
        let (code, text) = a.curl(Some(&admin), "GET", "/v1/sys/metrics", None, &[]);
        assert_eq!(code, 200);
        metric(&text, "phivault_audit_witness_failures")
    };
    let mut failed = 0.0;
    for _ in 0..40 {
        assert_eq!(
            a.json(Some(&admin), "GET", "/v1/sys/health", None, &[]).0,
            200
        );
        std::thread::sleep(Duration::from_millis(250));
        failed = failures(&a);
        if failed >= 1.0 {
            break;
        }
    }
    assert!(failed >= 1.0, "the rolled-back log's pushes must fail");
    assert_eq!(held().unwrap(), last);
    stop(&mut a).await;
    stop(&mut w).await;
    assert!(!verified(&a), "the restored log is behind the witness");
}
