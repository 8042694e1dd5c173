//! `phivault scan at-rest` through the real binary on a data dir made by a
//! real `serve --dev`: each requirement passes on the fresh dir and fails
//! once the matching thing is broken (a loose key file, an open data dir,
//! plaintext planted in the records database, plaintext PHI in a file, an
//! unencrypted backup), and no planted value is ever printed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

mod common;
use common::{Server, curl_admin as curl, pv, run, stop};

/// Runs the scan with --json; returns the exit code, the report and the
/// raw output (to check that nothing planted leaks into it).
fn scan(d: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(pv(d).args(["--json", "scan", "at-rest"]).args(extra));
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v, out + &err)
}

fn finding<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {r:#}"))
}

fn status(r: &serde_json::Value, id: &str) -> String {
    finding(r, id)["status"].as_str().unwrap().to_owned()
}

/// A dev data dir with one collection and two records, server stopped.
fn dev_dir_with_records(d: &Path) {
    let (child, url) = common::spawn_dev_server(d, &[], "warn", Stdio::null());
    let child = Server(child);
    let schema = r#"{"subject":"patient_id","fields":{"patient_id":{"class":"phi_search"},"name":{"class":"phi"},"ward":{"class":"plain"},"ssn":{"class":"token"}}}"#;
    let (c, b) = curl(d, &format!("{url}/v1/collections/pts"), &["-d", schema]);
    assert_eq!(c, 201, "{b}");
    for rec in [
        r#"{"patient_id":"PT-Zq-0001","name":"Ysolde Brannagh","ward":"3B","ssn":"219-09-9999"}"#,
        r#"{"patient_id":"PT-Zq-0002","name":"Oskar Vantreight","ward":"4A","ssn":"078-05-1120"}"#,
    ] {
        let (c, b) = curl(d, &format!("{url}/v1/records/pts"), &["-d", rec]);
        assert_eq!(c, 201, "{b}");
    }
    stop(child);
}

#[test]
fn help_teaches_the_checks_and_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let (code, out, _) = run(pv(t.path()).args(["scan", "at-rest", "--help"]));
    assert_eq!(code, 0);
    for s in [
        "at-rest/keystore-wrapped",
        "at-rest/records-ciphertext",
        "at-rest/block-device",
        "EXIT CODES",
        "10  at least one requirement fails",
    ] {
        assert!(out.contains(s), "--help lacks {s}: {out}");
    }
}

#[test]
fn a_missing_data_dir_says_what_to_do() {
    let t = tempfile::tempdir().unwrap();
    let (code, _, err) = run(pv(&t.path().join("nope")).args(["scan", "at-rest"]));
    assert_eq!(code, 1);
    assert!(err.contains("--data-dir"), "{err}");
}

#[test]
fn permissions_pass_on_a_dev_dir_and_fail_when_loosened() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    dev_dir_with_records(&d);
    let (code, r, _) = scan(&d, &[]);
    // A dev keystore keeps its unseal key beside the data: that alone fails.
    assert_eq!(code, 10);
    assert_eq!(status(&r, "at-rest/unseal-key"), "fail");
    for id in [
        "at-rest/keystore-wrapped",
        "at-rest/permissions-data-dir",
        "at-rest/permissions-key-files",
        "at-rest/records-ciphertext",
        "at-rest/subject-keys",
        "at-rest/key-rotation",
        "at-rest/phi-scan",
    ] {
        assert_eq!(status(&r, id), "pass", "{id}: {:#}", finding(&r, id));
    }
    // `serve` creates everything under umask 077: nothing readable or
    // writable by group or others.
    assert_eq!(
        status(&r, "at-rest/permissions-files"),
        "pass",
        "{:#}",
        finding(&r, "at-rest/permissions-files")
    );
    let rc = &r["records"];
    assert_eq!(rc["records"], 2, "{rc}");
    assert!(rc["sealed_values"].as_u64().unwrap() >= 4, "{rc}");
    assert_eq!(rc["tokens"], 2, "{rc}");
    assert_eq!(rc["plain_values"], 2, "{rc}");
    assert_eq!(rc["subject_keys"], 2, "{rc}");
    // The block device is reported plainly either way; never a failure.
    let b = finding(&r, "at-rest/block-device");
    assert_ne!(b["status"], "fail");
    if b["status"] == "warn" {
        assert!(
            b["evidence"]
                .as_str()
                .unwrap()
                .contains("not an encrypted block device"),
            "{b}"
        );
    }

    // A key file readable by others.
    let key = d.join("tls/server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, r, _) = scan(&d, &[]);
    assert_eq!(code, 10);
    let f = finding(&r, "at-rest/permissions-key-files");
    assert_eq!(f["status"], "fail");
    assert!(
        f["evidence"]
            .as_str()
            .unwrap()
            .contains("tls/server.key (0644)"),
        "{f}"
    );
    assert!(
        f["remediation"].as_str().unwrap().contains("chmod 600"),
        "{f}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ks = d.join("keystore.json");
    std::fs::set_permissions(&ks, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (_, r, _) = scan(&d, &[]);
    assert_eq!(status(&r, "at-rest/permissions-key-files"), "fail");
    std::fs::set_permissions(&ks, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, r, _) = scan(&d, &[]);
    assert_eq!(status(&r, "at-rest/permissions-key-files"), "pass");

    // The data dir itself, and a file writable by others.
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.join("records.db"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let (_, r, _) = scan(&d, &[]);
    assert_eq!(status(&r, "at-rest/permissions-data-dir"), "fail");
    let f = finding(&r, "at-rest/permissions-files");
    assert_eq!(f["status"], "fail");
    assert!(
        f["evidence"]
            .as_str()
            .unwrap()
            .contains("records.db (0666)"),
        "{f}"
    );

    // Text output: verdicts, the fix, and the tally.
    let (code, out, _) = run(pv(&d).args(["scan", "at-rest"]));
    assert_eq!(code, 10);
    assert!(out.contains("FAIL  at-rest/permissions-data-dir"), "{out}");
    assert!(out.contains("fix: chmod 700"), "{out}");
}

#[test]
fn plaintext_planted_in_the_records_database_fails_and_is_never_printed() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    dev_dir_with_records(&d);
    let (_, r, out) = scan(&d, &[]);
    assert_eq!(status(&r, "at-rest/records-ciphertext"), "pass");
    assert!(!out.contains("Ysolde") && !out.contains("219-09-9999"));

    let db = rusqlite::Connection::open(d.join("records.db")).unwrap();
    // A PHI value written around the API into the skeleton…
    let n = db
        .execute(
            "UPDATE records SET body = json_set(body, '$.plain.name', 'Ysolde Brannagh') \
             WHERE rowid = (SELECT min(rowid) FROM records)",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
    let (code, r, out) = scan(&d, &[]);
    assert_eq!(code, 10);
    let f = finding(&r, "at-rest/records-ciphertext");
    assert_eq!(f["status"], "fail", "{f}");
    let ev = f["evidence"].as_str().unwrap();
    assert!(ev.contains("pts: name: value stored in the clear"), "{ev}");
    assert!(!out.contains("Ysolde"), "a planted value leaked: {out}");
    assert!(!out.contains("PT-Zq-0001"), "a record id leaked: {out}");

    // …and a sealed value replaced by plaintext.
    db.execute(
        "UPDATE records SET body = json_set(json_remove(body, '$.plain.name'), '$.sealed.name', '219-09-9999') \
         WHERE rowid = (SELECT min(rowid) FROM records)",
        [],
    )
    .unwrap();
    let (_, r, out) = scan(&d, &[]);
    let ev = finding(&r, "at-rest/records-ciphertext")["evidence"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ev.contains("sealed value is not a PVF ciphertext"), "{ev}");
    assert!(!ev.contains("value stored in the clear"), "{ev}");
    assert!(!out.contains("219-09-9999"), "{out}");

    // A subject key stored unwrapped.
    let k = rusqlite::Connection::open(d.join("subject-keys.db")).unwrap();
    k.execute(
        "UPDATE subject_keys SET wrapped = zeroblob(32) WHERE handle = (SELECT min(handle) FROM subject_keys)",
        [],
    )
    .unwrap();
    let (_, r, _) = scan(&d, &[]);
    assert_eq!(status(&r, "at-rest/subject-keys"), "fail");
}

#[test]
fn plaintext_phi_files_and_backups() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    dev_dir_with_records(&d);
    let (_, r, _) = scan(&d, &[]);
    let f = finding(&r, "at-rest/backup-exists");
    assert_eq!(f["status"], "fail");
    assert!(
        f["evidence"].as_str().unwrap().contains("no backup found"),
        "{f}"
    );
    assert!(
        f["remediation"]
            .as_str()
            .unwrap()
            .contains("phivault keys backup"),
        "{f}"
    );

    // A key escrow in a backup folder apart from the data.
    let b = t.path().join("escrow");
    std::fs::create_dir(&b).unwrap();
    let (code, out, err) = run(pv(&d)
        .env("PHIVAULT_BACKUP_PASSPHRASE", "correct horse battery staple")
        .args(["--insecure-dev", "-q", "keys", "backup", "--all", "-o"])
        .arg(b.join("keys.escrow")));
    assert_eq!(code, 0, "{out}{err}");
    let bs = b.to_str().unwrap();
    let (_, r, _) = scan(&d, &["--backup", bs]);
    assert_eq!(status(&r, "at-rest/backup-exists"), "pass", "{r:#}");
    assert_eq!(status(&r, "at-rest/backup-encrypted"), "pass");
    assert_eq!(r["backups"][0]["kind"], "key-escrow");

    // A plaintext dump beside it is not a backup to be proud of.
    std::fs::write(
        b.join("patients.csv"),
        "name,ssn\nYsolde Brannagh,219-09-9999\n",
    )
    .unwrap();
    let (_, r, out) = scan(&d, &["--backup", bs]);
    let f = finding(&r, "at-rest/backup-encrypted");
    assert_eq!(f["status"], "fail");
    assert!(
        f["evidence"].as_str().unwrap().contains("patients.csv"),
        "{f}"
    );
    assert!(!out.contains("219-09-9999"));

    // Plaintext PHI inside the data dir: the PHI detector finds it.
    std::fs::write(
        d.join("export.csv"),
        "patient_name,ssn,dob\nYsolde Brannagh,219-09-9999,1961-04-12\nOskar Vantreight,078-05-1120,1975-11-30\n",
    )
    .unwrap();
    let (code, r, out) = scan(&d, &["--backup", bs]);
    assert_eq!(code, 10);
    let f = finding(&r, "at-rest/phi-scan");
    assert_eq!(f["status"], "fail", "{f}");
    assert!(
        f["evidence"].as_str().unwrap().contains("export.csv"),
        "{f}"
    );
    // A file phivault did not write goes through the detector too.
    assert_eq!(status(&r, "at-rest/data-files"), "fail");
    assert!(
        !out.contains("219-09-9999") && !out.contains("Ysolde"),
        "{out}"
    );
    let (_, r, _) = scan(&d, &["--backup", bs, "--no-phi"]);
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["id"] != "at-rest/phi-scan")
    );

    // JUnit for CI.
    let x = t.path().join("at-rest.xml");
    let (code, _, _) = run(pv(&d).args(["scan", "at-rest", "--junit"]).arg(&x));
    assert_eq!(code, 10);
    let xml = std::fs::read_to_string(&x).unwrap();
    assert!(
        xml.contains("<failure") && xml.contains("at-rest/phi-scan"),
        "{xml}"
    );
}

#[test]
fn unknown_tables_and_files_fail_and_their_phi_is_masked() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    dev_dir_with_records(&d);
    let (_, r, _) = scan(&d, &[]);
    assert_eq!(status(&r, "at-rest/records-ciphertext"), "pass", "{r:#}");

    // A table phivault never writes, holding PHI.
    let db = rusqlite::Connection::open(d.join("records.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE zz(note TEXT); \
         INSERT INTO zz VALUES ('Patient Maria Lopez SSN 219-45-7777');",
    )
    .unwrap();
    drop(db);
    let (code, r, out) = scan(&d, &[]);
    assert_eq!(code, 10);
    let f = finding(&r, "at-rest/records-ciphertext");
    assert_eq!(f["status"], "fail", "{f}");
    let ev = f["evidence"].as_str().unwrap();
    assert!(ev.contains("unknown table zz"), "{ev}");
    assert!(ev.contains("zz.note: likely PHI"), "{ev}");
    assert!(
        !out.contains("219-45-7777") && !out.contains("Maria Lopez"),
        "a planted value leaked: {out}"
    );

    // An unexpected file in one of phivault's folders, its name PHI.
    std::fs::write(
        d.join("audit").join("Roe_Jane_219-45-7777.txt"),
        "Patient Jane Roe, SSN 219-45-7777\n",
    )
    .unwrap();
    let (_, r, out) = scan(&d, &[]);
    let f = finding(&r, "at-rest/data-files");
    assert_eq!(f["status"], "fail", "{f}");
    assert!(
        !out.contains("219-45-7777"),
        "a planted value leaked: {out}"
    );
}
