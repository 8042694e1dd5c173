//! `phivault audit` through the real binary against a real `serve --dev`:
//! verify (and tampering caught with exit 1), search, report (table, JSON,
//! HTML with its chart), export (JSON lines, RFC 5424), hash, prove,
//! tail -f, and CLI key events reaching the trail through the inbox.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{Server, curl_admin as curl, pv, run, stop};

fn ok(c: &mut Command) -> String {
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    out
}

#[test]
fn audit_commands_over_a_real_trail() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    let (child, url) = common::spawn_dev_server(&d, &[], "warn", Stdio::null());
    let child = Server(child);
    let schema = r#"{"subject":"patient_id","fields":{"patient_id":{"class":"phi_search"},"name":{"class":"phi"}}}"#;
    let (c, b) = curl(&d, &format!("{url}/v1/collections/pts"), &["-d", schema]);
    assert_eq!(c, 201, "{b}");
    let (c, b) = curl(
        &d,
        &format!("{url}/v1/records/pts"),
        &[
            "-d",
            r#"{"patient_id":"PT-Qx-0001","name":"Ysolde Brannagh"}"#,
        ],
    );
    assert_eq!(c, 201, "{b}");
    let id = serde_json::from_str::<serde_json::Value>(&b).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (c, _) = curl(
        &d,
        &format!("{url}/v1/records/pts/{id}"),
        &["-H", "X-Purpose-Of-Use: TREAT"],
    );
    assert_eq!(c, 200);
    // Refused: no client certificate.
    let o = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(d.join("ca/ca.pem"))
        .arg(format!("{url}/v1/transit/keys"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "401");
    // A CLI key event while the server runs: through the inbox.
    ok(pv(&d).args(["--insecure-dev", "-q", "keys", "create", "audited-ring"]));
    // The server takes it in at its next poll (every 2 s).
    let mut seen = false;
    for _ in 0..100 {
        phivault_audit::query::for_each(&d.join("audit"), 0, |e| {
            seen |= e.event.op == "key.create";
            !seen
        })
        .unwrap();
        if seen {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(seen, "the CLI's key event never reached the trail");
    stop(child);

    let key = ok(pv(&d).args(["audit", "pubkey"]));
    assert!(key.starts_with("phivault-audit+"), "{key}");
    let kf = t.path().join("audit.pub");
    std::fs::write(&kf, &key).unwrap();
    let out = ok(pv(&d).args(["audit", "verify", "--key"]).arg(&kf));
    assert!(out.contains("OK: the audit trail verifies"), "{out}");
    let j: serde_json::Value = serde_json::from_str(&ok(pv(&d)
        .args(["--json", "audit", "verify", "--key"])
        .arg(&kf)))
    .unwrap();
    assert_eq!(j["ok"], true);

    // Search and the inbox event.
    let out = ok(pv(&d).args(["--json", "audit", "search", "--op", "key.create"]));
    assert!(out.contains("default/audited-ring"), "{out}");
    assert!(out.contains("\"principal\":\"cli:"), "{out}");
    // Who accessed this patient: by the id (hashed with the audit key).
    let out = ok(pv(&d).args([
        "--insecure-dev",
        "audit",
        "report",
        "--subject",
        "PT-Qx-0001",
    ]));
    assert!(
        out.contains("records.create") && out.contains("records.read"),
        "{out}"
    );
    assert!(out.contains("TREAT"), "{out}");
    assert!(
        !out.contains("PT-Qx-0001"),
        "the id itself is never printed: {out}"
    );
    let h = ok(pv(&d).args(["--insecure-dev", "audit", "hash", "PT-Qx-0001"]));
    let out = ok(pv(&d).args(["--json", "audit", "search", "--subject-hash", h.trim()]));
    assert_eq!(out.lines().count(), 2, "{out}");
    let out = ok(pv(&d).args(["audit", "report", "--denied"]));
    assert!(out.contains("401"), "{out}");
    let html = t.path().join("r.html");
    ok(pv(&d)
        .args(["audit", "report", "--format", "html", "-o"])
        .arg(&html));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("<rect") && page.contains("records.read"));
    // Export.
    let sys = ok(pv(&d).args(["audit", "export", "--format", "syslog"]));
    let first = sys.lines().next().unwrap();
    assert!(
        first.starts_with('<')
            && first.contains(">1 ")
            && first.contains("[phivault@32473 seq=\"0\""),
        "{first}"
    );
    let jl = ok(pv(&d).args(["audit", "export", "--format", "jsonl", "--op", "records.*"]));
    for l in jl.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["op"].as_str().unwrap().starts_with("records."));
    }
    // Proofs against the newest checkpoint.
    let p: serde_json::Value = serde_json::from_str(&ok(pv(&d)
        .args(["--json", "audit", "prove", "--index", "2", "--key"])
        .arg(&kf)))
    .unwrap();
    assert_eq!(p["type"], "inclusion");
    let p: serde_json::Value = serde_json::from_str(&ok(pv(&d)
        .args(["--json", "audit", "prove", "--from", "3", "--key"])
        .arg(&kf)))
    .unwrap();
    assert_eq!(p["type"], "consistency");
    // tail -n.
    let out = ok(pv(&d).args(["audit", "tail", "-n", "3"]));
    assert_eq!(out.lines().count(), 3, "{out}");

    // tail -f sees entries written after it started.
    let mut tail = pv(&d)
        .args(["--json", "audit", "tail", "-f", "-n", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (child, _) = common::spawn_dev_server(&d, &[], "warn", Stdio::null());
    let child = Server(child);
    let mut line = String::new();
    std::io::BufReader::new(tail.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"op\":\"server.start\""), "{line}");
    let _ = tail.kill();
    let _ = tail.wait();
    stop(child);

    // Tampering: one entry's principal changed in place.
    let seg = std::fs::read_dir(d.join("audit/segments"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut b = std::fs::read(&seg).unwrap();
    let at = b
        .windows(b"spiffe://".len())
        .position(|w| w == b"spiffe://")
        .unwrap();
    b[at + 9] ^= 0x01;
    std::fs::write(&seg, b).unwrap();
    let (code, out, _) = run(pv(&d).args(["audit", "verify", "--key"]).arg(&kf));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FIRST BAD INDEX") && out.contains("FAILED"),
        "{out}"
    );
}
