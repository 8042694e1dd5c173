//! `phivault scan phi` as a user runs it: the real binary over a folder of
//! text, CSV, JSON and SQLite files and phivault's own ciphertexts. Pins
//! the exit codes, the table, the JSON and JUnit reports, and that no raw
//! value ever reaches stdout, stderr, JSON or JUnit.

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::pv;

/// Every raw PHI value written below; none may be printed.
const RAW: &[&str] = &[
    "219-45-6789",
    "219451234",
    "(212) 555-0147",
    "555-0147",
    "mary.jones@gmail.com",
    "04/12/1961",
    "1961-04-12",
    "00123456",
    "John Smith",
    "Okonkwo",
    "Priya Raman",
    "646-555-0199",
];

fn run(c: &mut Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn assert_clean(what: &str, s: &str) {
    for v in RAW {
        assert!(!s.contains(v), "raw value {v:?} in {what}:\n{s}");
    }
}

fn folder(root: &Path) {
    std::fs::create_dir_all(root.join("exports")).unwrap();
    std::fs::write(
        root.join("notes.txt"),
        "Patient John Smith (DOB: 04/12/1961) was seen on 03/14/2024.\n\
         SSN: 219-45-6789   Phone: (212) 555-0147\n",
    )
    .unwrap();
    std::fs::write(
        root.join("exports/patients.csv"),
        "mrn,last_name,ssn,email\n00123456,Okonkwo,219451234,mary.jones@gmail.com\n",
    )
    .unwrap();
    std::fs::write(
        root.join("exports/record.json"),
        r#"{"patient": {"dob": "1961-04-12", "phones": ["646-555-0199"]}}"#,
    )
    .unwrap();
    let c = rusqlite::Connection::open(root.join("exports/clinic.db")).unwrap();
    c.execute_batch(
        "CREATE TABLE patients (full_name TEXT, ssn TEXT);
         INSERT INTO patients VALUES ('Priya Raman', '219-45-6789');",
    )
    .unwrap();
    // Not PHI: an order export.
    std::fs::write(
        root.join("exports/orders.csv"),
        "order_id,zip,created_at\n219451234,10001-2345,2024-01-05 10:00:00\n",
    )
    .unwrap();
}

#[test]
fn finds_phi_in_every_format_and_prints_masked_values_only() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("scan");
    folder(&root);
    let junit = d.path().join("phi.xml");
    let o = run(pv(&d.path().join("data"))
        .args(["scan", "phi", "--junit"])
        .arg(&junit)
        .arg(&root));
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(10), "stdout: {out}\nstderr: {err}");
    assert_clean("stdout", &out);
    assert_clean("stderr", &err);
    for want in [
        "FILE",
        "LOCATION",
        "CONF",
        "notes.txt",
        "line 2, col 6",
        "***-**-6789",
        "***-***-0147",
        "1961-**-**",
        "J. S.",
        "column email (#4)",
        "m***@gmail.com",
        "$.patient.dob",
        "$.patient.phones[0]",
        "patients.full_name, rowid 1",
        "P. R.",
        "PHI FOUND: 12 hits in 4 of 5 files",
    ] {
        assert!(out.contains(want), "stdout lacks {want:?}:\n{out}");
    }
    assert!(!out.contains("orders.csv"), "{out}");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert_clean("JUnit", &x);
    assert_eq!(x.matches("<failure ").count(), 12, "{x}");
    assert!(
        x.contains("PHI-ssn: no unencrypted Social Security number"),
        "{x}"
    );
}

#[test]
fn json_report() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("scan");
    folder(&root);
    let o = run(pv(&d.path().join("data"))
        .args(["--json", "scan", "phi", "--types", "ssn,dob"])
        .arg(&root));
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(10));
    assert_clean("JSON", &out);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["phi_found"], true);
    assert_eq!(v["counts"], serde_json::json!({"ssn": 3, "dob": 2}));
    assert_eq!(v["files_scanned"], 5);
    let files = v["files"].as_array().unwrap();
    let csv = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("patients.csv"))
        .unwrap();
    assert_eq!(
        csv["hits"][0],
        serde_json::json!({
            "type": "ssn", "confidence": 0.9, "masked": "*****1234",
            "location": {"kind": "csv", "line": 2, "field": 3, "column": "ssn"},
            "start": 0, "end": 9
        })
    );
}

#[test]
fn phivault_ciphertexts_and_clean_folders_exit_0() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let root = d.path().join("enc");
    std::fs::create_dir(&root).unwrap();
    let dev = || {
        let mut c = pv(&data);
        c.arg("--insecure-dev").arg("-q");
        c
    };
    assert!(run(dev().arg("init")).status.success());
    assert!(
        run(dev().args(["keys", "create", "test/phi"]))
            .status
            .success()
    );
    let src = d.path().join("notes.txt");
    std::fs::write(&src, "SSN: 219-45-6789 DOB 04/12/1961\n".repeat(2000)).unwrap();
    let o = run(dev()
        .args(["encrypt", "-k", "test/phi"])
        .arg(&src)
        .arg("-o")
        .arg(root.join("notes.txt.pv")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut c = dev();
    c.args(["encrypt", "-k", "test/phi", "--envelope", "--text"]);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"219-45-6789")
        .unwrap();
    let env = child.wait_with_output().unwrap();
    let pve = String::from_utf8(env.stdout).unwrap();
    assert!(pve.starts_with("pve:"));
    std::fs::write(
        root.join("values.csv"),
        format!("id,ssn\n1,{}\n", pve.trim()),
    )
    .unwrap();
    let o = run(pv(&data).args(["scan", "phi"]).arg(&root));
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("No PHI found in 2 files"), "{out}");
    assert!(err.contains("1 phivault ciphertext"), "{err}");
}

#[test]
fn usage_errors_and_help() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let o = run(pv(&data).args(["scan", "phi", "--min-confidence", "2", "."]));
    assert_eq!(o.status.code(), Some(2));
    let o = run(pv(&data).args(["scan", "phi", "--types", "ssn,passport", "."]));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("unknown PHI type"));
    // A missing path is an error, and its PHI is masked in the message.
    let o = run(pv(&data)
        .args(["scan", "phi"])
        .arg(d.path().join("SSN 219-45-6789.csv")));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("SSN ***-**-6789.csv: no such file or folder"),
        "{err}"
    );
    assert_clean("stderr", &err);
    let o = run(pv(&data).args(["scan", "phi", "--help"]));
    let (out, _) = text(&o);
    for want in [
        "WHAT IS DETECTED",
        "CONFIDENCE",
        "EXAMPLES",
        "EXIT CODES",
        "10  PHI found",
        "--min-confidence",
        "--junit",
    ] {
        assert!(out.contains(want), "--help lacks {want:?}");
    }
}

#[test]
fn file_names_binaries_and_broken_databases_are_scanned_and_masked() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("scan");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("Roe_Jane_219-45-7777.txt"), "nothing here\n").unwrap();
    // SQLite magic, then garbage: does not open (SQLITE_NOTADB).
    let mut db = b"SQLite format 3\0".to_vec();
    db.extend_from_slice(&[0xff; 84]);
    db.extend_from_slice(b"\0\0patient SSN: 219-45-8888\0");
    db.extend_from_slice(&[0u8; 4000]);
    std::fs::write(root.join("clinic.db"), &db).unwrap();
    std::fs::write(root.join("blob.bin"), b"\0\x01\x02SSN: 219-45-9999\0\xfe").unwrap();
    // A binary file with the SSN in its own name: listed masked.
    std::fs::write(root.join("ssn_219-45-6666.dat"), b"\0\x01\x02\x03").unwrap();
    let raw = ["219-45-7777", "219-45-8888", "219-45-9999", "219-45-6666"];
    let junit = d.path().join("phi.xml");
    let o = run(pv(&d.path().join("data"))
        .args(["scan", "phi", "--junit"])
        .arg(&junit)
        .arg(&root));
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(10), "{out}\n{err}");
    let x = std::fs::read_to_string(&junit).unwrap();
    for (what, s) in [("stdout", &out), ("stderr", &err), ("JUnit", &x)] {
        for v in raw {
            assert!(!s.contains(v), "raw value {v:?} in {what}:\n{s}");
        }
    }
    for want in [
        "file name",
        "***-**-7777",
        "***-**-8888",
        "***-**-9999",
        "***-**-6666",
        "(strings)",
        "Not scanned or not fully read (1):",
        "clinic.db: cannot list tables: SQLite error NotADatabase; scanned its printable strings instead",
    ] {
        assert!(out.contains(want), "stdout lacks {want:?}:\n{out}");
    }
    assert!(x.contains("PHI-ssn"), "{x}");
    assert!(x.contains("***-**-7777"), "{x}");

    let o = run(pv(&d.path().join("data"))
        .args(["--json", "scan", "phi"])
        .arg(&root));
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(10));
    for v in raw {
        assert!(!out.contains(v), "raw value {v:?} in JSON:\n{out}");
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["counts"], serde_json::json!({"ssn": 4}));
    let files = v["files"].as_array().unwrap();
    let named = files
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .ends_with("Roe_Jane_***-**-7777.txt")
        })
        .unwrap();
    assert_eq!(
        named["hits"][0]["location"],
        serde_json::json!({"kind": "filename"})
    );
    let db = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("clinic.db"))
        .unwrap();
    assert_eq!(db["kind"], "strings");
    assert_eq!(db["hits"][0]["confidence"], 0.85);
}

#[test]
fn skipped_files_are_listed_with_masked_paths() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("scan");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "hello\n").unwrap();
    std::os::unix::fs::symlink(root.join("a.txt"), root.join("Roe_Jane_219-45-7777.txt")).unwrap();
    let o = run(pv(&d.path().join("data")).args(["scan", "phi"]).arg(&root));
    let (out, err) = text(&o);
    assert!(
        !out.contains("219-45-7777") && !err.contains("219-45-7777"),
        "{out}\n{err}"
    );
    assert!(
        out.contains("Roe_Jane_***-**-7777.txt: symlink (not followed)"),
        "{out}"
    );
}
