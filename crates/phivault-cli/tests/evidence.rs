//! `phivault evidence` through the real binary against a real
//! `serve --dev`: every control of the matrix gets a status, the OSCAL
//! document has the assessment-results structure, the HTML is
//! self-contained with its three charts, the report's hash reaches the
//! audit trail, a sealed keystore fails only the key evidence, documented
//! risk decisions are shown and counted, and `--diff` finds a rotation.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{Server, pv, run, stop};

/// Every control the report must carry, with its framework.
const CONTROLS: &[(&str, &str)] = &[
    ("HIPAA", "164.312(a)(1)"),
    ("HIPAA", "164.312(a)(2)(i)"),
    ("HIPAA", "164.312(a)(2)(ii)"),
    ("HIPAA", "164.312(a)(2)(iii)"),
    ("HIPAA", "164.312(a)(2)(iv)"),
    ("HIPAA", "164.312(b)"),
    ("HIPAA", "164.312(c)(1)"),
    ("HIPAA", "164.312(c)(2)"),
    ("HIPAA", "164.312(d)"),
    ("HIPAA", "164.312(e)(1)"),
    ("HIPAA", "164.312(e)(2)(i)"),
    ("HIPAA", "164.312(e)(2)(ii)"),
    ("HIPAA", "164.308(a)(1)(ii)(A)"),
    ("HIPAA", "164.308(a)(1)(ii)(D)"),
    ("HIPAA", "164.316(b)(2)(i)"),
    ("SOC 2", "CC6.1"),
    ("SOC 2", "CC6.6"),
    ("SOC 2", "CC6.7"),
    ("SOC 2", "CC7.2"),
    ("ISO/IEC 27001:2022", "A.8.5"),
    ("ISO/IEC 27001:2022", "A.8.15"),
    ("ISO/IEC 27001:2022", "A.8.24"),
];

/// A freshly started server signs its first checkpoint within a second or so.
fn wait_for_checkpoint(d: &Path) {
    for _ in 0..100 {
        if d.join("audit/checkpoint").exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server never signed a checkpoint");
}

fn addr(url: &str) -> String {
    url.trim_start_matches("https://").to_owned()
}

/// Runs `evidence --out OUT` and returns (exit code, evidence.json parsed, stdout+stderr).
fn evidence(
    d: &Path,
    global: &[&str],
    url: &str,
    out: &Path,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let (code, o, e) = run(pv(d)
        .args(global)
        .args(["evidence", "--addr", &addr(url), "--out"])
        .arg(out)
        .args(extra));
    assert!(code == 0 || code == 10, "exit {code}: {o}\n{e}");
    let j = std::fs::read(out.join("evidence.json")).unwrap_or_else(|_| panic!("{o}\n{e}"));
    (code, serde_json::from_slice(&j).unwrap(), o + &e)
}

fn item<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    r["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no evidence {id}"))
}

fn control<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    r["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no control {id}"))
}

fn sha256_hex(b: &[u8]) -> String {
    phivault_core::crypto::sha256(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn help_teaches_controls_outputs_and_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let (code, out, _) = run(pv(t.path()).args(["evidence", "--help"]));
    assert_eq!(code, 0);
    for s in [
        "164.312(a)(1)",
        "CC6.1",
        "A.8.24",
        "evidence.oscal.json",
        "[evidence.decisions]",
        "--diff",
        "EXIT CODES",
        "10  at least one control fails",
    ] {
        assert!(out.contains(s), "--help lacks {s}: {out}");
    }
}

#[test]
fn report_of_a_running_dev_server() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    let (child, url) = common::spawn_dev_server(&d, &[], "warn", Stdio::null());
    let child = Server(child);
    wait_for_checkpoint(&d);
    // A refused request (no client certificate): activity to review.
    let o = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(d.join("ca/ca.pem"))
        .arg(format!("{url}/v1/transit/keys"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "401");
    let out = t.path().join("ev");
    let (code, r, text) = evidence(&d, &["--insecure-dev"], &url, &out, &[]);
    // A dev deployment is not fit for PHI: the report must say so.
    assert_eq!(code, 10, "{text}");
    assert_eq!(r["format"], "phivault-evidence");
    assert_eq!(r["status"], "fail");

    // Every control, with a status and the time its evidence was collected.
    assert_eq!(r["controls"].as_array().unwrap().len(), CONTROLS.len());
    for (fw, id) in CONTROLS {
        let c = control(&r, id);
        assert_eq!(c["framework"], *fw);
        assert!(
            ["pass", "warn", "fail", "info"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
        assert!(c["checked"].as_str().unwrap().starts_with("20"), "{c}");
        assert!(!c["evidence"].as_array().unwrap().is_empty(), "{c}");
    }
    // The evidence behind them.
    let tls = item(&r, &format!("tls-listener/{}", addr(&url)));
    assert_ne!(tls["findings"].as_array().unwrap().len(), 0, "{tls}");
    let db = item(&r, "tls-database");
    assert_eq!(db["status"], "info");
    assert!(
        db["summary"]
            .as_str()
            .unwrap()
            .contains("no network database connection: embedded SQLite")
    );
    assert_eq!(item(&r, "keys-inventory")["status"], "pass");
    assert_eq!(item(&r, "fips-module")["findings"][0]["id"], "fips/module");
    let at_rest = item(&r, "at-rest");
    assert!(
        at_rest["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "at-rest/unseal-key" && f["status"] == "fail"),
        "{at_rest}"
    );
    assert_eq!(item(&r, "backup")["status"], "fail");
    let cp = item(&r, "audit-checkpoint");
    assert_eq!(cp["status"], "pass", "{cp}");
    assert!(
        cp["data"]["checkpoint"]["note"]
            .as_str()
            .unwrap()
            .contains("— phivault-audit")
    );
    let activity = item(&r, "audit-activity")["summary"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(activity.contains("refused"), "{activity}");
    // The report's own TLS probes are refused handshakes too; they are
    // not activity to review, in this report or in the next one.
    assert!(
        activity.contains(" 0 failed TLS handshake(s)") && activity.contains("not counted"),
        "{activity}"
    );
    let (_, again, _) = evidence(
        &d,
        &["--insecure-dev"],
        &url,
        &t.path().join("ev-again"),
        &[],
    );
    let activity = item(&again, "audit-activity")["summary"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        activity.contains(" 0 failed TLS handshake(s)"),
        "{activity}"
    );
    let keys = r["keys"].as_array().unwrap();
    assert!(
        keys.iter().any(|k| k["name"] == "transit/billing"),
        "{keys:?}"
    );
    assert!(!r["certificates"].as_array().unwrap().is_empty());
    // The dev keystore is a weakening without a documented reason.
    let risk = item(&r, "risk-decisions");
    assert!(
        risk["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "risk/keystore.dev" && f["status"] == "fail"),
        "{risk}"
    );

    // OSCAL 1.1 assessment-results.
    let o: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("evidence.oscal.json")).unwrap()).unwrap();
    let ar = &o["assessment-results"];
    assert!(ar["uuid"].as_str().unwrap().len() == 36);
    assert!(
        ar["metadata"]["oscal-version"]
            .as_str()
            .unwrap()
            .starts_with("1.1")
    );
    assert!(ar["metadata"]["last-modified"].is_string());
    assert!(ar["import-ap"]["href"].is_string());
    let res = &ar["results"][0];
    assert!(res["start"].is_string());
    let obs = res["observations"].as_array().unwrap();
    assert_eq!(obs.len(), r["evidence"].as_array().unwrap().len());
    for ob in obs {
        assert!(ob["collected"].as_str().unwrap().starts_with("20"), "{ob}");
        assert!(ob["methods"].as_array().is_some_and(|m| !m.is_empty()));
    }
    let fs = res["findings"].as_array().unwrap();
    assert_eq!(fs.len(), CONTROLS.len());
    let mut not_satisfied = 0;
    for f in fs {
        let st = f["target"]["status"]["state"].as_str().unwrap();
        assert!(st == "satisfied" || st == "not-satisfied", "{f}");
        not_satisfied += usize::from(st == "not-satisfied");
        assert_eq!(f["target"]["type"], "objective-id");
    }
    let fails = r["controls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .count();
    assert_eq!(not_satisfied, fails);
    let ev_json = std::fs::read(out.join("evidence.json")).unwrap();
    let sha = sha256_hex(&ev_json);
    assert_eq!(
        ar["back-matter"]["resources"][1]["rlinks"][0]["hashes"][0]["value"],
        sha.as_str()
    );

    // HTML: self-contained, three charts.
    let html = std::fs::read_to_string(out.join("evidence.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 3, "three charts");
    for bad in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!html.contains(bad), "external asset or script: {bad}");
    }
    assert!(html.contains("key ages against rotation policy"));
    assert!(html.contains("certificate expiry timeline"));
    assert!(html.contains("handshake failures and access denials over time"));
    let md = std::fs::read_to_string(out.join("evidence.md")).unwrap();
    assert!(
        md.contains("§164.312(e)(2)(ii)") && md.contains(&sha),
        "{md}"
    );
    // Nothing secret: no PEM key, no dev unseal key.
    let dev_key = std::fs::read_to_string(d.join("dev-unseal.key")).unwrap();
    for f in [
        "evidence.json",
        "evidence.md",
        "evidence.html",
        "evidence.oscal.json",
    ] {
        let s = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(
            !s.contains("PRIVATE KEY") && !s.contains(dev_key.trim()),
            "{f}"
        );
    }

    // The hash reaches the audit trail through the inbox (the server polls it).
    assert!(text.contains(&sha), "{text}");
    let mut found = false;
    for _ in 0..100 {
        let (_, s, _) = run(pv(&d).args(["--json", "audit", "search", "--op", "evidence.report"]));
        if s.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["detail"]["sha256"] == sha.as_str())
        }) {
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(found, "the report's hash never reached the audit trail");
    stop(child);
}

#[test]
fn a_sealed_keystore_fails_the_key_evidence_only() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    let (child, url) = common::spawn_dev_server(&d, &[], "warn", Stdio::null());
    let child = Server(child);
    wait_for_checkpoint(&d);
    let out = t.path().join("ev");
    // Without --insecure-dev the dev keystore can't be opened.
    let (code, r, _) = evidence(&d, &[], &url, &out, &[]);
    assert_eq!(code, 10);
    let k = item(&r, "keys-inventory");
    assert_eq!(k["status"], "fail");
    assert!(
        k["findings"][0]["remediation"]
            .as_str()
            .unwrap()
            .contains("unseal first"),
        "{k}"
    );
    assert!(r["keys"].is_null());
    // The rest still ran.
    assert_eq!(item(&r, "audit-checkpoint")["status"], "pass");
    assert_eq!(item(&r, "tls-database")["status"], "info");
    assert_eq!(r["controls"].as_array().unwrap().len(), CONTROLS.len());
    stop(child);
}

#[test]
fn decisions_and_drift() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    let (child, url) = common::spawn_dev_server(&d, &[], "warn", Stdio::null());
    let child = Server(child);
    wait_for_checkpoint(&d);
    let cfg = t.path().join("phivault.toml");
    std::fs::write(
        &cfg,
        r#"
[evidence]
system = "test clinic"
[evidence.decisions]
"keystore.dev" = "test system with synthetic data only; never real PHI"
"164.312(a)(2)(iv)" = "test system: FIPS build and Shamir keystore in production only"
"at-rest/block-device" = "CI runners have no LUKS; synthetic data only"
"#,
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let o1 = t.path().join("one");
    let (_, r1, _) = evidence(&d, &["--insecure-dev", "--config", cfg_s], &url, &o1, &[]);
    assert_eq!(r1["system"], "test clinic");
    let enc = control(&r1, "164.312(a)(2)(iv)");
    assert_eq!(enc["status"], "warn", "{enc}");
    assert!(
        enc["note"]
            .as_str()
            .unwrap()
            .contains("FIPS build and Shamir keystore in production only")
    );
    assert!(enc["decision"].is_string());
    let risk = item(&r1, "risk-decisions");
    assert!(
        risk["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "risk/keystore.dev" && f["status"] == "pass"),
        "{risk}"
    );
    let keys: Vec<&str> = r1["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["key"].as_str().unwrap())
        .collect();
    for k in ["keystore.dev", "164.312(a)(2)(iv)", "at-rest/block-device"] {
        assert!(keys.contains(&k), "{keys:?}");
    }
    let html = std::fs::read_to_string(o1.join("evidence.html")).unwrap();
    assert!(html.contains("CI runners have no LUKS"));

    // Rotate a key, add one, then compare.
    let (c, o, e) = run(pv(&d).args(["--insecure-dev", "-q", "keys", "rotate", "transit/billing"]));
    assert_eq!(c, 0, "{o}{e}");
    let (c, o, e) = run(pv(&d).args(["--insecure-dev", "-q", "keys", "create", "ops/new-ring"]));
    assert_eq!(c, 0, "{o}{e}");
    let o2 = t.path().join("two");
    let old = o1.join("evidence.json");
    let (_, out, err) = run(pv(&d)
        .args([
            "--insecure-dev",
            "--config",
            cfg_s,
            "--json",
            "evidence",
            "--addr",
            &addr(&url),
            "--out",
        ])
        .arg(&o2)
        .arg("--diff")
        .arg(&old));
    let j: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let drift = &j["drift"];
    let changed = drift["keys_changed"].as_array().unwrap();
    assert!(
        changed.iter().any(|k| k["ring"] == "transit/billing"
            && k["changes"][0].as_str().unwrap().contains("v1 → v2")),
        "{drift:#}"
    );
    assert!(
        drift["keys_added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k.as_str().unwrap().starts_with("ops/new-ring")),
        "{drift:#}"
    );
    assert!(o2.join("evidence.json").exists());
    // Text form.
    let (_, out, _) = run(pv(&d)
        .args([
            "--insecure-dev",
            "--config",
            cfg_s,
            "evidence",
            "--addr",
            &addr(&url),
            "--diff",
        ])
        .arg(&old));
    assert!(
        out.contains("transit/billing: rotated: primary v1 → v2"),
        "{out}"
    );
    // Not a report.
    let (c, _, e) = run(pv(&d).args(["evidence", "--diff"]).arg(&cfg));
    assert_eq!(c, 1);
    assert!(
        e.contains("not JSON") || e.contains("not a phivault evidence report"),
        "{e}"
    );
    stop(child);
}
