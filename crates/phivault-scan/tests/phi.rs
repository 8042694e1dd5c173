//! The PHI scanner end to end over real files: exact types and places for
//! known inputs in every format, what is skipped and why, and that no raw
//! value ever reaches a report, its JSON or its Debug form. Property tests
//! at the end: no panics on any input, offsets inside the unit, masks that
//! never give the value back.

use phivault_scan::phi::{self, Context, FileKind, Location, Options, PhiType, Types};
use proptest::prelude::*;
use std::path::Path;

fn opts() -> Options {
    Options::default()
}

/// (type, location, masked) of every hit.
fn hits(r: &phi::FileReport) -> Vec<(PhiType, String, String)> {
    r.hits
        .iter()
        .map(|h| (h.kind, h.location.to_string(), h.masked.clone()))
        .collect()
}

/// Fails if any of `raw` occurs in the report's Debug or JSON form.
fn assert_no_raw(r: &impl std::fmt::Debug, json: &str, raw: &[&str]) {
    let dbg = format!("{r:?}");
    for v in raw {
        assert!(!dbg.contains(v), "raw value {v:?} in Debug output");
        assert!(!json.contains(v), "raw value {v:?} in JSON output");
    }
}

const NOTE: &str = "\
Visit note, 2024-03-14
Patient John Smith (DOB: 04/12/1961) was seen on 03/14/2024 for follow-up.
SSN: 219-45-6789   Phone: (212) 555-0147
MRN: 00123456  Diagnosis: E11.9 type 2 diabetes
Contact: mary.jones@gmail.com
Order #219-45-6780 shipped to ZIP 10001-2345; invalid SSN 000-12-3456.
Encrypted copy: ssn=pve:AQEEYmlsbGluZy9rZXkAAAABq1-219-45-6789-Zm9vYmFyYmF6cXV4
";

const NOTE_RAW: &[&str] = &[
    "John Smith",
    "04/12/1961",
    "219-45-6789",
    "555-0147",
    "00123456",
    "mary.jones@gmail.com",
];

#[test]
fn text_file_exact_hits() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("note.txt");
    std::fs::write(&p, NOTE).unwrap();
    let r = phi::scan_file(&p, &opts());
    assert_eq!(r.kind, Some(FileKind::Text));
    assert_eq!(
        hits(&r),
        vec![
            (PhiType::Name, "line 2, col 9".into(), "J. S.".into()),
            (PhiType::Dob, "line 2, col 26".into(), "1961-**-**".into()),
            (PhiType::Ssn, "line 3, col 6".into(), "***-**-6789".into()),
            (
                PhiType::Phone,
                "line 3, col 27".into(),
                "***-***-0147".into()
            ),
            (PhiType::Mrn, "line 4, col 6".into(), "******56".into()),
            (
                PhiType::Email,
                "line 5, col 10".into(),
                "m***@gmail.com".into()
            ),
        ]
    );
    // Columns are 1-based byte offsets: the value starts there.
    let line3 = NOTE.lines().nth(2).unwrap();
    assert!(line3[5..].starts_with("219-45-6789"));
    assert_eq!(r.counts.values().sum::<usize>(), 6);
    assert_no_raw(&r, &serde_json::to_string(&r).unwrap(), NOTE_RAW);
}

#[test]
fn confidence_threshold_and_types_filter() {
    let o = Options {
        types: Types::of(&[PhiType::Ssn, PhiType::Email]),
        ..opts()
    };
    let r = phi::scan_bytes("n.txt", NOTE.as_bytes(), &o);
    let k: Vec<_> = r.hits.iter().map(|h| h.kind).collect();
    assert_eq!(k, [PhiType::Ssn, PhiType::Email]);
    let strict = Options {
        min_confidence: 0.99,
        ..opts()
    };
    assert!(
        phi::scan_bytes("n.txt", NOTE.as_bytes(), &strict)
            .hits
            .is_empty()
    );
    // A date with no label scores 0.3: shown at 0.3, not by default; a
    // visit date (0.1) not even then.
    let loose = Options {
        min_confidence: 0.3,
        ..opts()
    };
    let text = "Kept 1961-04-12 on file; visit 03/14/2024.";
    assert!(
        phi::scan_bytes("n.txt", text.as_bytes(), &opts())
            .hits
            .is_empty()
    );
    let r = phi::scan_bytes("n.txt", text.as_bytes(), &loose);
    assert_eq!(
        hits(&r),
        vec![(PhiType::Dob, "line 1, col 6".into(), "1961-**-**".into())]
    );
    assert_eq!(r.hits[0].confidence, 0.3);
}

#[test]
fn csv_cells_by_header_name() {
    let csv = "\
patient_id,first_name,last_name,birth_date,ssn,phone,notes,order_no
A0012345,Jane,Okonkwo,1980-01-05,219451234,2125550147,\"stable, BP 120/80\",219451235
00991234,Luis,Garcia,\"Jan 5, 1975\",219-45-1111,(646) 555-0199,\"multi
line: DOB 02/03/1990\",10001
";
    let r = phi::scan_bytes("export.csv", csv.as_bytes(), &opts());
    assert_eq!(r.kind, Some(FileKind::Csv));
    let v = hits(&r);
    let expect = [
        (PhiType::Mrn, "line 2, column patient_id (#1)", "******45"),
        (PhiType::Name, "line 2, column first_name (#2)", "J."),
        (PhiType::Name, "line 2, column last_name (#3)", "O."),
        (PhiType::Dob, "line 2, column birth_date (#4)", "1980-**-**"),
        (PhiType::Ssn, "line 2, column ssn (#5)", "*****1234"),
        (PhiType::Phone, "line 2, column phone (#6)", "***-***-0147"),
        (PhiType::Mrn, "line 3, column patient_id (#1)", "******34"),
        (PhiType::Name, "line 3, column first_name (#2)", "L."),
        (PhiType::Name, "line 3, column last_name (#3)", "G."),
        (PhiType::Dob, "line 3, column birth_date (#4)", "1975-**-**"),
        (PhiType::Ssn, "line 3, column ssn (#5)", "***-**-1111"),
        (PhiType::Phone, "line 3, column phone (#6)", "***-***-0199"),
        // The second line of a quoted cell.
        (PhiType::Dob, "line 4, column notes (#7)", "1990-**-**"),
    ];
    let expect: Vec<_> = expect
        .iter()
        .map(|(k, l, m)| (*k, l.to_string(), m.to_string()))
        .collect();
    assert_eq!(v, expect);
    assert_no_raw(
        &r,
        &serde_json::to_string(&r).unwrap(),
        &[
            "A0012345",
            "Okonkwo",
            "219451234",
            "2125550147",
            "02/03/1990",
            "Garcia",
        ],
    );
}

#[test]
fn csv_without_header_numbers_columns() {
    let csv = "x,SSN 219-45-6789\n";
    let r = phi::scan_bytes("a.csv", csv.as_bytes(), &opts());
    assert_eq!(hits(&r)[0].1, "line 1, column column 2 (#2)");
    assert!(r.notes.iter().any(|n| n.contains("no header")));
    let tsv = "name\tdx\nMary Johnson\tI10\n";
    let r = phi::scan_bytes("a.tsv", tsv.as_bytes(), &opts());
    assert_eq!(
        hits(&r),
        vec![(
            PhiType::Name,
            "line 2, column name (#1)".into(),
            "M. J.".into()
        )]
    );
}

#[test]
fn json_paths_and_redacted_keys() {
    let doc = r#"{
      "meta": {"version": "2.301.5550", "generated": "2024-01-05T10:00:00Z", "ip": "10.2.3.4"},
      "patients": [
        {"mrn": "E0012345", "name": "Kofi Mensah", "dob": "1970-02-03", "ssn": 219451234,
         "contact": {"home phone": "212.555.0147"}},
        {"notes": "Patient Ruth Olson, tel 646-555-0199", "jane.doe@yahoo.com": true}
      ]
    }"#;
    let r = phi::scan_bytes("r.json", doc.as_bytes(), &opts());
    assert_eq!(r.kind, Some(FileKind::Json));
    let v: Vec<(PhiType, String)> = r
        .hits
        .iter()
        .map(|h| (h.kind, h.location.to_string()))
        .collect();
    assert_eq!(
        v,
        vec![
            (PhiType::Mrn, "$.patients[0].mrn".into()),
            (PhiType::Name, "$.patients[0].name".into()),
            (PhiType::Dob, "$.patients[0].dob".into()),
            (PhiType::Ssn, "$.patients[0].ssn".into()),
            (
                PhiType::Phone,
                "$.patients[0].contact[\"home phone\"]".into()
            ),
            (PhiType::Name, "$.patients[1].notes".into()),
            (PhiType::Phone, "$.patients[1].notes".into()),
            (PhiType::Email, "$.patients[1][<redacted>] (key)".into()),
        ]
    );
    assert_no_raw(
        &r,
        &serde_json::to_string(&r).unwrap(),
        &[
            "jane.doe",
            "Kofi",
            "Mensah",
            "219451234",
            "Ruth Olson",
            "E0012345",
        ],
    );
}

#[test]
fn invalid_json_is_scanned_as_text_with_a_content_free_note() {
    let doc = "{\"ssn\": \"219-45-6789\", oops 'Patient Mary Smith'";
    let r = phi::scan_bytes("bad.json", doc.as_bytes(), &opts());
    assert_eq!(r.notes.len(), 1);
    assert!(
        r.notes[0].starts_with("not valid JSON (syntax error at line 1, column "),
        "{}",
        r.notes[0]
    );
    assert!(!r.notes[0].contains("oops") && !r.notes[0].contains("Mary"));
    let kinds: Vec<_> = r.hits.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, [PhiType::Ssn, PhiType::Name]);
    assert!(matches!(
        r.hits[0].location,
        Location::Text {
            line: 1,
            column: 10
        }
    ));
}

#[test]
fn json_lines() {
    let doc = "{\"user_email\":\"a.b@gmail.com\"}\nnot json, SSN 219-45-6789\n\n{\"ok\":1}\n";
    let r = phi::scan_bytes("e.jsonl", doc.as_bytes(), &opts());
    assert_eq!(
        hits(&r),
        vec![
            (
                PhiType::Email,
                "line 1, $.user_email".into(),
                "a***@gmail.com".into()
            ),
            (PhiType::Ssn, "line 2, col 15".into(), "***-**-6789".into()),
        ]
    );
    assert!(r.notes[0].contains("1 lines are not valid JSON"));
}

fn make_db(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE patients (id INTEGER PRIMARY KEY, full_name TEXT, ssn INTEGER, dob TEXT, note BLOB);
         INSERT INTO patients VALUES (7, 'Priya Raman', 12345678, '1955-06-07', CAST('call 646-555-0199' AS BLOB));
         CREATE TABLE kv (k TEXT PRIMARY KEY, email TEXT) WITHOUT ROWID;
         INSERT INTO kv VALUES ('x', 'p.raman@outlook.com');
         CREATE TABLE stock (sku TEXT, qty INTEGER, updated_at TEXT);
         INSERT INTO stock VALUES ('SKU-219-45-6789', 219451234, '2024-01-05 10:00:00');",
    )
    .unwrap();
}

#[test]
fn sqlite_cells_read_only() {
    let d = tempfile::tempdir().unwrap();
    // A name without an extension: the magic bytes decide.
    let p = d.path().join("clinic");
    make_db(&p);
    let before = std::fs::read(&p).unwrap();
    let r = phi::scan_file(&p, &opts());
    assert_eq!(r.kind, Some(FileKind::Sqlite));
    assert!(r.warning.is_none(), "{:?}", r.warning);
    assert_eq!(
        hits(&r),
        vec![
            (PhiType::Email, "kv.email".into(), "p***@outlook.com".into()),
            (
                PhiType::Name,
                "patients.full_name, rowid 7".into(),
                "P. R.".into()
            ),
            // An integer SSN that lost its leading zero.
            (
                PhiType::Ssn,
                "patients.ssn, rowid 7".into(),
                "*****5678".into()
            ),
            (
                PhiType::Dob,
                "patients.dob, rowid 7".into(),
                "1955-**-**".into()
            ),
            (
                PhiType::Phone,
                "patients.note, rowid 7".into(),
                "***-***-0199".into()
            ),
        ]
    );
    assert_eq!(std::fs::read(&p).unwrap(), before, "opened read-only");
    assert!(!d.path().join("clinic-journal").exists() && !d.path().join("clinic-wal").exists());
    let too_small = Options {
        max_file_size: 100,
        ..opts()
    };
    let r = phi::scan_file(&p, &too_small);
    assert!(
        r.skipped
            .as_deref()
            .unwrap()
            .contains("larger than the size limit")
    );
}

#[test]
fn skips_binary_ciphertext_and_symlinks_and_hidden() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::write(root.join("a.bin"), b"SSN 219-45-6789\0\x01\x02").unwrap();
    let mut pvs = b"PVS\x01\x01\x10\x01\x0bdefault/abc".to_vec();
    pvs.extend_from_slice(b"SSN 219-45-6789 looks like text but is ciphertext");
    std::fs::write(root.join("b.pvs"), &pvs).unwrap();
    std::fs::write(
        root.join("c.txt"),
        "ok=pve:AAEC-219-45-6789_x\nvault:v1:219-45-6789\n",
    )
    .unwrap();
    std::fs::create_dir(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/x.txt"), "SSN 219-45-6789").unwrap();
    std::fs::create_dir(root.join("logs")).unwrap();
    std::fs::write(root.join("logs/app.log"), "SSN 219-45-6789").unwrap();
    std::fs::write(root.join("outside.txt"), "SSN 219-45-6789").unwrap();
    std::os::unix::fs::symlink(root.join("outside.txt"), root.join("link.txt")).unwrap();
    let o = Options {
        exclude: vec!["*.log".into()],
        ..opts()
    };
    let r = phi::scan(&[root.to_path_buf()], &o, &|_| {});
    let by: Vec<(String, Option<String>, usize)> = r
        .files
        .iter()
        .map(|f| {
            (
                f.path.rsplit('/').next().unwrap().to_string(),
                f.skipped.clone(),
                f.hits.len(),
            )
        })
        .collect();
    assert_eq!(
        by,
        vec![
            // Binary: its printable strings are scanned.
            ("a.bin".into(), None, 1),
            ("b.pvs".into(), Some("phivault ciphertext".into()), 0),
            ("c.txt".into(), None, 0),
            ("link.txt".into(), Some("symlink (not followed)".into()), 0),
            ("outside.txt".into(), None, 1),
        ]
    );
    // --hidden scans .git too.
    let o = Options { hidden: true, ..o };
    let r = phi::scan(&[root.to_path_buf()], &o, &|_| {});
    assert!(
        r.files
            .iter()
            .any(|f| f.path.ends_with(".git/x.txt") && f.hits.len() == 1)
    );
    // A symlink given by the user is followed.
    let r = phi::scan(&[root.join("link.txt")], &opts(), &|_| {});
    assert_eq!(r.total_hits(), 1);
}

#[test]
fn a_vanished_file_is_a_warning_and_the_scan_goes_on() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.txt"), "SSN 219-45-6789").unwrap();
    std::fs::write(d.path().join("b.txt"), "SSN 219-45-6789").unwrap();
    let (files, skipped) = phi::collect(&[d.path().to_path_buf()], &opts());
    std::fs::remove_file(d.path().join("a.txt")).unwrap();
    let r = phi::scan_collected(&files, skipped, &opts(), &|_| {});
    assert_eq!(
        r.files[0].warning.as_deref(),
        Some("cannot read: not found")
    );
    assert_eq!(r.files[1].hits.len(), 1);
}

#[test]
fn size_cap_and_long_lines() {
    // A line longer than the 1 MiB piece size: columns stay true.
    let mut s = "x ".repeat(600_000);
    let col = s.len() + 1;
    s.push_str("SSN 219-45-6789\n");
    let r = phi::scan_bytes("big.txt", s.as_bytes(), &opts());
    assert_eq!(r.hits.len(), 1);
    assert_eq!(
        r.hits[0].location,
        Location::Text {
            line: 1,
            column: col + 4
        }
    );
    let capped = Options {
        max_file_size: 1000,
        ..opts()
    };
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.txt");
    std::fs::write(&p, &s).unwrap();
    let r = phi::scan_file(&p, &capped);
    assert!(r.hits.is_empty());
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("only the first 1000 B scanned"))
    );
}

#[test]
fn hits_are_capped_per_file_but_counted() {
    let s = "SSN 219-45-6789\n".repeat(50);
    let o = Options {
        max_hits_per_file: 10,
        ..opts()
    };
    let r = phi::scan_bytes("a.txt", s.as_bytes(), &o);
    assert_eq!((r.hits.len(), r.total_hits()), (10, 50));
}

#[test]
fn paths_with_phi_are_masked() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("patient 219-45-6789.txt");
    std::fs::write(&p, "nothing here").unwrap();
    let r = phi::scan_file(&p, &opts());
    assert!(r.path.ends_with("patient ***-**-6789.txt"), "{}", r.path);
    assert_eq!(
        hits(&r),
        vec![(PhiType::Ssn, "file name".into(), "***-**-6789".into())]
    );
    assert_eq!(
        phi::mask_text("Patient Mary Smith.csv"),
        "Patient M. S..csv"
    );
}

#[test]
fn file_names_with_underscores_are_scanned_and_masked() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("Roe_Jane_219-45-7777.txt");
    std::fs::write(&p, "nothing here").unwrap();
    let r = phi::scan_file(&p, &opts());
    assert!(r.path.ends_with("Roe_Jane_***-**-7777.txt"), "{}", r.path);
    assert_eq!(r.hits.len(), 1, "{:?}", r.hits);
    assert_eq!(r.hits[0].kind, PhiType::Ssn);
    assert_eq!(r.hits[0].location, Location::FileName);
    assert_eq!(r.hits[0].location.to_string(), "file name");
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains(r#""kind":"filename""#), "{json}");
    assert_no_raw(&r, &json, &["219-45-7777"]);
    // Through a folder walk, and with a hyphen instead.
    std::fs::write(d.path().join("Doe-219-45-8888.csv"), "a,b\n1,2\n").unwrap();
    let r = phi::scan(&[d.path().to_path_buf()], &opts(), &|_| {});
    let json = serde_json::to_string(&r).unwrap();
    assert_no_raw(&r, &json, &["219-45-7777", "219-45-8888"]);
    assert_eq!(r.total_hits(), 2);
    assert_eq!(phi::mask_text("x/ssn_219451234.db"), "x/ssn_*****1234.db");
}

#[test]
fn the_woolworth_ssn_is_a_low_confidence_sample_not_invalid() {
    let low = Options {
        min_confidence: 0.3,
        ..opts()
    };
    let r = phi::scan_bytes("a.txt", b"SSN: 078-05-1120\n", &low);
    assert_eq!(r.hits.len(), 1);
    assert!((r.hits[0].confidence - 0.3).abs() < 1e-6);
    assert!(
        phi::scan_bytes("a.txt", b"SSN: 078-05-1120\n", &opts())
            .hits
            .is_empty()
    );
}

/// A SQLite header followed by garbage: the magic says SQLite, but it does
/// not open (SQLITE_NOTADB).
fn corrupt_sqlite() -> Vec<u8> {
    let mut v = b"SQLite format 3\0".to_vec();
    v.extend_from_slice(&[0xff; 84]);
    v.extend_from_slice(&[0u8; 300]);
    v.extend_from_slice(b"\x07\x12patient SSN: 219-45-7777\x00\x01");
    v.extend_from_slice(&[0u8; 3700]);
    v
}

#[test]
fn unreadable_sqlite_and_binary_files_fall_back_to_strings() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("broken.db");
    std::fs::write(&db, corrupt_sqlite()).unwrap();
    let r = phi::scan_file(&db, &opts());
    assert_eq!(r.kind, Some(FileKind::Strings));
    let w = r.warning.as_deref().unwrap();
    assert!(w.contains("NotADatabase"), "{w}");
    assert!(w.contains("printable strings"), "{w}");
    assert_eq!(r.hits.len(), 1, "{:?}", r.hits);
    let h = &r.hits[0];
    assert_eq!((h.kind, h.masked.as_str()), (PhiType::Ssn, "***-**-7777"));
    assert!(
        (h.confidence - 0.85).abs() < 1e-6,
        "a notch lower: {}",
        h.confidence
    );
    assert!(
        matches!(h.location, Location::Strings { offset: 402 }),
        "{:?}",
        h.location
    );
    let json = serde_json::to_string(&r).unwrap();
    assert_no_raw(&r, &json, &["219-45-7777"]);

    let bin = d.path().join("blob.bin");
    let mut b = vec![0u8, 1, 2, 0xfe, 0x80];
    b.extend_from_slice(b"SSN: 219-45-7777");
    b.extend_from_slice(&[0, 0x9c, 0x42, 0x10, 0]);
    b.extend_from_slice(b"ab\x01cd\x02ef"); // runs too short
    std::fs::write(&bin, &b).unwrap();
    let r = phi::scan_file(&bin, &opts());
    assert_eq!(r.kind, Some(FileKind::Strings));
    assert!(r.skipped.is_none() && r.warning.is_none());
    assert_eq!(
        hits(&r),
        vec![(
            PhiType::Ssn,
            "byte 5 (strings)".into(),
            "***-**-7777".into()
        )]
    );
    assert_eq!(phi::scan_bytes("blob.bin", &b, &opts()).hits, r.hits);
}

#[test]
fn phivault_ciphertexts_yield_nothing_in_the_strings_fallback() {
    // A real sealed stream file (docs/FORMAT.md §3) is skipped before any
    // fallback, even when it contains NUL bytes.
    let mut pvs = b"PVS\x01\x01\x10\x01\x0bdefault/abc\0\0".to_vec();
    pvs.extend_from_slice(b"SSN 219-45-6789 looks like text but is ciphertext\0");
    let r = phi::scan_bytes("x.pv", &pvs, &opts());
    assert_eq!(r.skipped.as_deref(), Some("phivault ciphertext"));
    assert!(r.hits.is_empty());
    // A binary file holding `pve:` envelopes: opaque, no hits.
    let mut b = vec![0u8, 1, 2];
    b.extend_from_slice(b"ssn=pve:AQEEYmlsbGluZy9rZXkAAAABq1-219-45-6789-Zm9vYmFyYmF6cXV4");
    b.push(0);
    let r = phi::scan_bytes("x.bin", &b, &opts());
    assert_eq!(r.kind, Some(FileKind::Strings));
    assert!(r.hits.is_empty(), "{:?}", r.hits);
}

// ---- properties ----

fn valid_ssn() -> impl Strategy<Value = String> {
    (1u32..900, 1u32..100, 1u32..10000)
        .prop_filter("SSA rules", |(a, _, _)| *a != 666)
        .prop_map(|(a, g, s)| format!("{a:03}-{g:02}-{s:04}"))
        .prop_filter("advertising numbers", |v| {
            !matches!(v.as_str(), "078-05-1120" | "219-09-9999" | "123-45-6789")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn detect_never_panics_and_offsets_are_in_the_text(s in "\\PC{0,200}", field in proptest::option::of("[a-z_]{0,12}"), clinical: bool) {
        let ctx = Context { field: field.as_deref(), clinical };
        for c in phi::detect(&s, &ctx) {
            prop_assert!(c.start < c.end && c.end <= s.len());
            prop_assert!(s.is_char_boundary(c.start) && s.is_char_boundary(c.end));
            prop_assert!((0.0..=1.0).contains(&c.confidence));
            let raw = &s[c.start..c.end];
            prop_assert_ne!(raw, c.masked.as_str());
            if raw.len() >= 4 {
                prop_assert!(!c.masked.contains(raw), "mask {} holds the value", c.masked);
            }
        }
    }

    #[test]
    fn detect_on_phi_like_noise(s in "[0-9A-Za-z @.()+:/#-]{0,120}") {
        for c in phi::detect(&s, &Context::default()) {
            let raw = &s[c.start..c.end];
            prop_assert!(c.end <= s.len());
            prop_assert!(raw.len() < 4 || !c.masked.contains(raw));
        }
    }

    #[test]
    fn labelled_ssns_are_found_and_masked(ssn in valid_ssn(), pre in "[a-z ]{0,20}", post in "[a-z .]{0,20}") {
        let line = format!("{pre} SSN: {ssn} {post}");
        let r = phi::scan_bytes("x.txt", line.as_bytes(), &Options::default());
        let h: Vec<_> = r.hits.iter().filter(|h| h.kind == PhiType::Ssn).collect();
        prop_assert_eq!(h.len(), 1);
        prop_assert_eq!(&h[0].masked, &format!("***-**-{}", &ssn[7..]));
        prop_assert_eq!(&line[h[0].start..h[0].end], ssn.as_str());
        let json = serde_json::to_string(&r).unwrap();
        prop_assert!(!json.contains(&ssn));
    }

    #[test]
    fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), ext in prop::sample::select(vec!["csv", "tsv", "json", "jsonl", "txt"])) {
        let r = phi::scan_bytes(&format!("f.{ext}"), &data, &Options { min_confidence: 0.0, ..Options::default() });
        for h in &r.hits {
            prop_assert!(h.start <= h.end);
        }
    }

    #[test]
    fn csv_cells_keep_their_column(cells in proptest::collection::vec("[a-z ,\"\n]{0,12}", 1..6), ssn in valid_ssn(), at in 0usize..6) {
        // A row of quoted junk with an SSN in one column named ssn.
        let at = at % (cells.len() + 1);
        let mut header: Vec<String> = (0..=cells.len()).map(|i| format!("c{i}")).collect();
        header[at] = "ssn".into();
        let mut row: Vec<String> = cells.iter().map(|c| format!("\"{}\"", c.replace('"', "\"\""))).collect();
        row.insert(at, ssn.clone());
        let doc = format!("{}\n{}\n", header.join(","), row.join(","));
        let r = phi::scan_bytes("p.csv", doc.as_bytes(), &Options::default());
        let h: Vec<_> = r.hits.iter().filter(|h| h.kind == PhiType::Ssn).collect();
        prop_assert_eq!(h.len(), 1);
        match &h[0].location {
            Location::Csv { field, column, .. } => {
                prop_assert_eq!(*field, at + 1);
                prop_assert_eq!(column.as_str(), "ssn");
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }
}
