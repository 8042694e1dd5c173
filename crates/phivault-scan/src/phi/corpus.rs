//! A labelled synthetic corpus, and the measurement of the detectors'
//! precision and recall on it.
//!
//! [`generate`] writes clinical notes (text), patient and order exports
//! (CSV), patient records (JSON), an event log (JSON Lines) and a clinic
//! database (SQLite), all made up from a seeded RNG, so the same seed gives
//! the same bytes. Every PHI value written is recorded as a [`Label`]; the
//! negatives are everything else, chosen to be hard: order and invoice
//! numbers shaped like SSNs or phone numbers, ZIP+4 codes, timestamps,
//! version strings, IP addresses, ISBNs, SSNs the SSA never issues,
//! appointment dates, clinicians' names ("Dr. …"), names far from any
//! clinical term, capitalised words that are not names ("Grace
//! Hospital"), role mailboxes and phivault ciphertexts.
//!
//! About a fifth of patient names come from a list the detector does not
//! know, so name recall measures the context rules, not the word lists.

use super::{Location, PhiType, Report};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// One PHI value written into the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// File name relative to the corpus folder.
    pub file: String,
    /// The unit holding it, as [`unit_key`] writes it.
    pub unit: String,
    /// Its type.
    pub kind: PhiType,
    /// Byte offset in the unit.
    pub start: usize,
    /// Byte offset past its end.
    pub end: usize,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// Every PHI value.
    pub labels: Vec<Label>,
    /// The files, relative to the corpus folder.
    pub files: Vec<String>,
    /// Total size in bytes.
    pub bytes: u64,
}

/// The unit key of a location: `L12` (text line), `L12:F3` (CSV cell),
/// `$.a[0].b` or `L4:$.b` (JSON, JSON Lines), `table.column#rowid`.
pub fn unit_key(loc: &Location) -> String {
    match loc {
        Location::Text { line, .. } => format!("L{line}"),
        Location::Csv { line, field, .. } => format!("L{line}:F{field}"),
        Location::Json { path, line, key } => format!(
            "{}{path}{}",
            line.map(|l| format!("L{l}:")).unwrap_or_default(),
            if *key { "#key" } else { "" }
        ),
        Location::Sqlite {
            table,
            column,
            rowid,
        } => format!("{table}.{column}#{}", rowid.unwrap_or(-1)),
        Location::Strings { offset } => format!("@{offset}"),
        Location::FileName => "path".into(),
    }
}

/// xorshift64*: small, fast, deterministic; not for anything secret.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// Names the detector's lists do not hold.
const RARE_FIRST: &[&str] = &[
    "Thaddeus",
    "Priya",
    "Anneliese",
    "Kofi",
    "Ingrid",
    "Mateo",
    "Siobhan",
    "Dmitri",
    "Yuki",
    "Aarav",
    "Oluwaseun",
    "Leocadia",
    "Bartholomew",
    "Svetlana",
    "Tariq",
];
const RARE_LAST: &[&str] = &[
    "Okonkwo",
    "Raman",
    "Vandermeer",
    "Mensah",
    "Halvorsen",
    "Quispe",
    "Gallagher",
    "Volkov",
    "Tanaka",
    "Shah",
    "Adeyemi",
    "Przybylski",
    "Thorsdottir",
    "Haddad",
    "Kowalczyk",
];
const CONDITIONS: &[&str] = &[
    "type 2 diabetes",
    "hypertension",
    "asthma",
    "COPD",
    "major depressive disorder",
    "chronic kidney disease",
    "atrial fibrillation",
    "hypothyroidism",
];
const ICD: &[&str] = &[
    "E11.9", "I10", "J45.909", "J44.9", "F32.9", "N18.3", "I48.91", "E03.9",
];
const DRUGS: &[&str] = &[
    "metformin",
    "lisinopril",
    "atorvastatin",
    "albuterol",
    "sertraline",
    "levothyroxine",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "icloud.com",
    "hotmail.com",
    "aol.com",
    "comcast.net",
    "proton.me",
];
const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const NOT_NAMES: &[&str] = &[
    "Admitted to Grace Hospital for observation; Blood Pressure 128/82.",
    "Transferred from Mercy General to the Emergency Department with chest pain.",
    "Patient moved from New York; Type Two diabetes, insulin dependent.",
    "Seen at Jordan Valley Clinic; prescribed amoxicillin 500 mg.",
    "Discharge Summary reviewed by the Care Team; no acute distress.",
];

struct Person {
    first: String,
    last: String,
    known: bool,
}

impl Person {
    fn new(rng: &mut Rng, rare_pct: u64) -> Self {
        if rng.chance(rare_pct) {
            Person {
                first: rng.pick(RARE_FIRST).to_string(),
                last: rng.pick(RARE_LAST).to_string(),
                known: false,
            }
        } else {
            Person {
                first: cap(rng.pick::<&str>(super::names::FIRST)),
                last: cap(rng.pick::<&str>(super::names::LAST)),
                known: true,
            }
        }
    }
    fn full(&self) -> String {
        format!("{} {}", self.first, self.last)
    }
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn ssn(rng: &mut Rng) -> String {
    loop {
        let a = rng.range(1, 899);
        if a == 666 {
            continue;
        }
        let d = format!("{a:03}{:02}{:04}", rng.range(1, 99), rng.range(1, 9999));
        if !matches!(d.as_str(), "078051120" | "219099999" | "123456789") {
            return d;
        }
    }
}

fn ssn_fmt(rng: &mut Rng, d: &str, labelled: bool) -> String {
    match rng.below(if labelled { 10 } else { 1 }) {
        0..=6 => format!("{}-{}-{}", &d[..3], &d[3..5], &d[5..]),
        7 | 8 => d.to_string(),
        _ => format!("{} {} {}", &d[..3], &d[3..5], &d[5..]),
    }
}

fn invalid_ssn(rng: &mut Rng) -> String {
    let d = ssn(rng);
    match rng.below(5) {
        0 => format!("000-{}-{}", &d[3..5], &d[5..]),
        1 => format!("666-{}-{}", &d[3..5], &d[5..]),
        2 => format!("9{}-{}-{}", rng.digits(2), &d[3..5], &d[5..]),
        3 => format!("{}-00-{}", &d[..3], &d[5..]),
        _ => format!("{}-{}-0000", &d[..3], &d[3..5]),
    }
}

fn phone_digits(rng: &mut Rng) -> String {
    let area = format!("{}{}{}", rng.range(2, 9), rng.range(0, 8), rng.range(0, 9));
    let ex = loop {
        let e = format!("{}{}", rng.range(2, 9), rng.digits(2));
        if &e[1..] != "11" {
            break e;
        }
    };
    format!("{area}{ex}{}", rng.digits(4))
}

fn phone_fmt(rng: &mut Rng, d: &str, labelled: bool) -> String {
    let (a, e, s) = (&d[..3], &d[3..6], &d[6..]);
    match rng.below(if labelled { 6 } else { 5 }) {
        0 => format!("({a}) {e}-{s}"),
        1 => format!("{a}-{e}-{s}"),
        2 => format!("{a}.{e}.{s}"),
        3 => format!("+1 {a} {e} {s}"),
        4 => format!("1-{a}-{e}-{s}"),
        _ => d.to_string(),
    }
}

fn email(rng: &mut Rng, p: &Person) -> String {
    let (f, l) = (p.first.to_lowercase(), p.last.to_lowercase());
    let local = match rng.below(3) {
        0 => format!("{f}.{l}"),
        1 => format!("{}{l}{}", &f[..1], rng.range(1, 99)),
        _ => format!("{f}_{l}"),
    };
    format!("{local}@{}", rng.pick(DOMAINS))
}

fn date_parts(rng: &mut Rng, y0: u64, y1: u64) -> (u64, u64, u64) {
    (rng.range(y0, y1), rng.range(1, 12), rng.range(1, 28))
}

fn date_fmt(rng: &mut Rng, (y, m, d): (u64, u64, u64)) -> String {
    let mon = MONTHS[m as usize - 1];
    match rng.below(5) {
        0 => format!("{y}-{m:02}-{d:02}"),
        1 => format!("{m:02}/{d:02}/{y}"),
        2 => format!("{m}/{d}/{y}"),
        3 => format!("{} {d}, {y}", &mon[..3]),
        _ => format!("{mon} {d}, {y}"),
    }
}

fn date(rng: &mut Rng, y0: u64, y1: u64) -> String {
    let p = date_parts(rng, y0, y1);
    date_fmt(rng, p)
}

fn phone(rng: &mut Rng) -> String {
    let d = phone_digits(rng);
    phone_fmt(rng, &d, false)
}

fn mrn(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!("00{}", rng.digits(6)),
        1 => format!("{}{}", rng.pick(&["A", "E", "MR", "PT"]), rng.digits(7)),
        _ => rng.digits(8),
    }
}

fn base64url(rng: &mut Rng, n: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..n)
        .map(|_| char::from(A[rng.below(64) as usize]))
        .collect()
}

/// A text being built with the spans of its PHI.
struct Doc {
    text: String,
    line: u64,
    line_start: usize,
    labels: Vec<(String, PhiType, usize, usize)>,
}

impl Doc {
    fn new() -> Self {
        Doc {
            text: String::new(),
            line: 1,
            line_start: 0,
            labels: Vec::new(),
        }
    }
    fn s(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    fn phi(&mut self, kind: PhiType, v: &str) -> &mut Self {
        let start = self.text.len() - self.line_start;
        self.text.push_str(v);
        self.labels
            .push((format!("L{}", self.line), kind, start, start + v.len()));
        self
    }
    fn nl(&mut self) {
        self.text.push('\n');
        self.line += 1;
        self.line_start = self.text.len();
    }
}

/// Lines of a second, harder family: other label spellings, other layouts,
/// and negatives the first family lacks (GUIDs, hashes, card numbers, lab
/// values, coordinates, NPIs).
fn hard_line(rng: &mut Rng, d: &mut Doc) {
    use PhiType::*;
    let p = Person::new(rng, 0);
    match rng.below(20) {
        0 => {
            let dob = date(rng, 1930, 2015);
            d.s("pt. ").phi(Name, &p.full());
            d.s(&format!(
                ", {}yo {}, dob ",
                rng.range(18, 90),
                rng.pick(&["F", "M"])
            ))
            .phi(Dob, &dob);
            d.s(&format!(", hx of {}", rng.pick(CONDITIONS)));
        }
        1 => {
            let s = ssn(rng);
            let s = ssn_fmt(rng, &s, false);
            let lab = rng
                .pick(&["SS#", "Soc Sec No:", "SSN#", "social security no."])
                .to_string();
            d.s(&lab).s(" ").phi(Ssn, &s);
        }
        2 => {
            let ph = phone_digits(rng);
            let ph = phone_fmt(rng, &ph, true);
            d.s(&format!("Refill request for {}; ", rng.pick(DRUGS)));
            d.s("call ")
                .phi(Name, &p.full())
                .s(" back at ")
                .phi(Phone, &ph);
        }
        3 => {
            let dob = date(rng, 1930, 2015);
            let lab = rng
                .pick(&["Birthdate", "born on", "Birth date:", "D.O.B."])
                .to_string();
            d.s(&lab).s(" ").phi(Dob, &dob).s(&format!(
                "; allergies: {}",
                rng.pick(&["none", "penicillin", "sulfa"])
            ));
        }
        4 => {
            let m = mrn(rng);
            d.s("Chart #")
                .phi(Mrn, &m)
                .s(&format!(" reviewed, {} stable", rng.pick(CONDITIONS)));
        }
        5 => {
            let m = mrn(rng);
            let n = format!("{}, {}", p.last, p.first);
            d.phi(Name, &n)
                .s(" - MRN ")
                .phi(Mrn, &m)
                .s(&format!(" - dx {}", rng.pick(ICD)));
        }
        6 => {
            let e = email(rng, &p);
            d.s("Patient portal e-mail address on file: ")
                .phi(Email, &e);
        }
        7 => {
            let n = p.full().to_uppercase();
            d.s("PATIENT: ")
                .phi(Name, &n)
                .s(&format!("  DX: {}", rng.pick(ICD)));
        }
        8 => {
            let mid = char::from(b'A' + rng.below(26) as u8);
            let n = format!("{} {mid}. {}", p.first, p.last);
            d.s("Discharged ").phi(Name, &n).s(&format!(
                " on {} mg {} twice daily.",
                25 * rng.range(1, 8),
                rng.pick(DRUGS)
            ));
        }
        // Negatives.
        9 => {
            d.s(&format!(
                "Lab accession {}-{}-{}; specimen id {:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                rng.range(2019, 2024),
                rng.digits(4),
                rng.digits(4),
                rng.next() as u32,
                rng.next() as u16,
                rng.next() as u16,
                rng.next() as u16,
                rng.next() & 0xffff_ffff_ffff
            ));
        }
        10 => {
            d.s(&format!(
                "sha256 {:016x}{:016x}{:016x}{:016x}",
                rng.next(),
                rng.next(),
                rng.next(),
                rng.next()
            ));
        }
        11 => {
            d.s(&format!(
                "Card on file 4{}-{}-{}-{} exp {:02}/{}",
                rng.digits(3),
                rng.digits(4),
                rng.digits(4),
                rng.digits(4),
                rng.range(1, 12),
                rng.range(26, 31)
            ));
        }
        12 => {
            let collected = date(rng, 2019, 2024);
            d.s(&format!(
                "Vitals collected {collected}: BP {}/{}, HR {}, temp 98.{}, A1c {}.{}%, LDL {} mg/dL",
                rng.range(100, 160),
                rng.range(60, 100),
                rng.range(50, 110),
                rng.below(10),
                rng.range(5, 11),
                rng.below(10),
                rng.range(70, 190)
            ));
        }
        13 => {
            d.s(&format!(
                "Clinic location {}.{}, -{}.{}; NPI {}; Tax ID {}-{}",
                rng.range(25, 48),
                rng.digits(4),
                rng.range(70, 122),
                rng.digits(4),
                rng.digits(10),
                rng.digits(2),
                rng.digits(7)
            ));
        }
        14 => {
            d.s(&format!(
                "Copyright 1998-{} Example Health Systems. Phone hours Mon-Fri 8:00-17:00. Page {} of {}.",
                rng.range(2020, 2025),
                rng.range(1, 3),
                rng.range(3, 9)
            ));
        }
        15 => {
            d.s(&format!(
                "Total charges ${},{}.{} for CPT {} and {}; claim {}.",
                rng.range(1, 99),
                rng.digits(3),
                rng.digits(2),
                rng.range(99201, 99499),
                rng.range(80000, 89999),
                rng.digits(12)
            ));
        }
        16 => {
            let c = Person::new(rng, 0);
            d.s(&format!(
                "Attending: Dr. {}; consult requested {}.",
                c.full(),
                date(rng, 2019, 2024)
            ));
        }
        17 => {
            d.s(&format!(
                "Replace the filter every {} days; model {}-{}-{} ships in {} weeks.",
                rng.range(30, 90),
                rng.digits(3),
                rng.digits(3),
                rng.digits(4),
                rng.range(2, 6)
            ));
        }
        18 => {
            d.s(&format!(
                "Release {}.{}.{} (2023-{:02}-{:02}) fixes login on iOS {}.{}",
                rng.range(1, 9),
                rng.range(0, 20),
                rng.range(0, 99),
                rng.range(1, 12),
                rng.range(1, 28),
                rng.range(14, 18),
                rng.range(0, 6)
            ));
        }
        _ => {
            d.s(&format!(
                "Ask Grace about the Monday staff meeting; Jordan will bring {} copies.",
                rng.range(2, 30)
            ));
        }
    }
    d.nl();
}

fn note_line(rng: &mut Rng, d: &mut Doc) {
    use PhiType::*;
    if rng.chance(35) {
        return hard_line(rng, d);
    }
    let p = Person::new(rng, 20);
    match rng.below(22) {
        0 | 1 => {
            let dob = date(rng, 1930, 2015);
            let visit = date(rng, 2019, 2024);
            d.s("Patient ")
                .phi(Name, &p.full())
                .s(" (DOB: ")
                .phi(Dob, &dob);
            d.s(&format!(
                ") was seen on {visit} for follow-up of {}.",
                rng.pick(CONDITIONS)
            ));
        }
        2 | 3 => {
            // Names from the lists only: a rare name with no label is missed
            // by design, and the next arm measures that.
            let p = Person::new(rng, 0);
            d.phi(Name, &p.full());
            d.s(&format!(
                " was prescribed {} {} mg daily.",
                rng.pick(DRUGS),
                5 * rng.range(1, 100)
            ));
        }
        4 => {
            let s = ssn(rng);
            let s = ssn_fmt(rng, &s, true);
            let ph = phone_digits(rng);
            let ph = phone_fmt(rng, &ph, true);
            d.s("SSN: ").phi(Ssn, &s).s("   Phone: ").phi(Phone, &ph);
        }
        5 => {
            let e = email(rng, &p);
            let ph = phone_digits(rng);
            let ph = phone_fmt(rng, &ph, false);
            d.s("Contact: ").phi(Email, &e).s(", cell ").phi(Phone, &ph);
        }
        6 => {
            let m = mrn(rng);
            d.s("MRN: ").phi(Mrn, &m);
            d.s(&format!(
                "  Diagnosis: {} {}",
                rng.pick(ICD),
                rng.pick(CONDITIONS)
            ));
        }
        7 => {
            let (y, m, dd) = date_parts(rng, 1930, 2015);
            let dob = format!("{} {dd}, {y}", MONTHS[m as usize - 1]);
            let s = ssn(rng);
            let s = ssn_fmt(rng, &s, false);
            d.s("Date of birth ")
                .phi(Dob, &dob)
                .s("; social security number ")
                .phi(Ssn, &s)
                .s(".");
        }
        8 => {
            let ph = phone_digits(rng);
            let ph = phone_fmt(rng, &ph, true);
            d.s("The patient's emergency contact is ")
                .phi(Name, &p.full())
                .s(", tel. ")
                .phi(Phone, &ph)
                .s(".");
        }
        9 => {
            let hon = rng.pick(&["Mrs.", "Mr.", "Ms."]).to_string();
            d.s(&hon).s(" ").phi(Name, &p.full());
            d.s(&format!(
                " reports allergies to penicillin; {} noted.",
                rng.pick(ICD)
            ));
        }
        10 => {
            let m = mrn(rng);
            let dob = date(rng, 1930, 2015);
            d.s("Medical record number ")
                .phi(Mrn, &m)
                .s(", born ")
                .phi(Dob, &dob)
                .s(".");
        }
        11 if !p.known => {
            // A rare name, no label, a clinical term: scored 0.3, missed.
            d.phi(Name, &p.full())
                .s(" was prescribed insulin 10 units.");
        }
        // Negatives from here on.
        11 => {
            let date = date(rng, 2019, 2024);
            d.s(&format!(
                "Order #{} shipped on {date} to ZIP {}-{}.",
                rng.digits(9),
                rng.digits(5),
                rng.digits(4)
            ));
        }
        12 => {
            let s = ssn(rng);
            let date = date(rng, 2019, 2024);
            d.s(&format!(
                "Invoice INV-{}-{}-{} dated {date}, total ${}.{}; order {}.",
                &s[..3],
                &s[3..5],
                &s[5..],
                rng.range(10, 999),
                rng.digits(2),
                phone(rng)
            ));
        }
        13 => {
            d.s(&format!(
                "Server 10.{}.{}.{} upgraded to version {}.{}.{} at 2024-{:02}-{:02}T{:02}:{:02}:{:02}Z (build {}).",
                rng.below(256),
                rng.below(256),
                rng.below(256),
                rng.range(1, 9),
                rng.range(0, 30),
                rng.range(0, 999),
                rng.range(1, 12),
                rng.range(1, 28),
                rng.below(24),
                rng.below(60),
                rng.below(60),
                format_args!("20{}{:02}{:02}", rng.range(10, 24), rng.range(1, 12), rng.range(1, 28))
            ));
        }
        14 => {
            d.s(&format!(
                "Reference: ISBN 978-0-{}-{}-{}; example of an invalid SSN: {}.",
                rng.digits(3),
                rng.digits(5),
                rng.digits(1),
                invalid_ssn(rng)
            ));
        }
        15 => {
            let date = date(rng, 2019, 2024);
            d.s(&format!(
                "Next appointment: {date} at {}:{:02}.",
                rng.range(8, 17),
                rng.below(60)
            ));
        }
        16 => {
            let t = rng.pick(NOT_NAMES);
            d.s(t);
        }
        17 => {
            let c = Person::new(rng, 0);
            d.s(&format!(
                "Dr. {} reviewed the labs; {} adjusted to {} mg.",
                c.full(),
                rng.pick(DRUGS),
                10 * rng.range(1, 9)
            ));
        }
        18 => {
            d.s(&format!(
                "Meeting with {} about the quarterly budget on {}.",
                p.full(),
                date(rng, 2019, 2024)
            ));
        }
        19 => {
            d.s(&format!(
                "Encrypted copy: ssn=pve:{} dob=pve:{}",
                base64url(rng, 70),
                base64url(rng, 66)
            ));
        }
        20 => {
            d.s(&format!(
                "Questions? Email support@{} or call the front desk at extension {}.",
                rng.pick(DOMAINS),
                rng.digits(4)
            ));
        }
        _ => {
            d.s(&format!(
                "Tracking 1Z{}; lot {}-{}; call center hours 9-5; created {}-{:02}-{:02} {:02}:{:02}.",
                base64url(rng, 16).to_uppercase().replace(['-', '_'], "X"),
                rng.digits(5),
                rng.digits(4),
                rng.range(2019, 2024),
                rng.range(1, 12),
                rng.range(1, 28),
                rng.below(24),
                rng.below(60)
            ));
        }
    }
    d.nl();
}

/// A CSV cell value: quoted when it must be.
fn csv_cell(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

struct Writer {
    dir: PathBuf,
    corpus: Corpus,
}

impl Writer {
    fn file(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        std::fs::write(self.dir.join(name), bytes)?;
        self.corpus.files.push(name.to_string());
        self.corpus.bytes += bytes.len() as u64;
        Ok(())
    }
    fn label(&mut self, file: &str, unit: String, kind: PhiType, start: usize, end: usize) {
        self.corpus.labels.push(Label {
            file: file.to_string(),
            unit,
            kind,
            start,
            end,
        });
    }
}

fn notes(w: &mut Writer, rng: &mut Rng, name: &str, lines: usize) -> io::Result<()> {
    let mut d = Doc::new();
    for _ in 0..lines {
        note_line(rng, &mut d);
    }
    for (unit, kind, s, e) in std::mem::take(&mut d.labels) {
        w.label(name, unit, kind, s, e);
    }
    w.file(name, d.text.as_bytes())
}

fn patients_csv(w: &mut Writer, rng: &mut Rng, name: &str, rows: usize) -> io::Result<()> {
    use PhiType::*;
    let mut out = String::from(
        "patient_id,first_name,last_name,dob,ssn,phone,email,diagnosis,visit_date,notes\n",
    );
    let mut line = 1u64;
    for _ in 0..rows {
        line += 1;
        let p = Person::new(rng, 20);
        let s = ssn(rng);
        let ph = phone_digits(rng);
        let cells: Vec<(Option<PhiType>, String)> = vec![
            (Some(Mrn), mrn(rng)),
            (Some(Name), p.first.clone()),
            (Some(Name), p.last.clone()),
            (Some(Dob), date(rng, 1930, 2015)),
            (Some(Ssn), ssn_fmt(rng, &s, true)),
            (Some(Phone), phone_fmt(rng, &ph, true)),
            (Some(Email), email(rng, &p)),
            (None, format!("{} {}", rng.pick(ICD), rng.pick(CONDITIONS))),
            (None, date(rng, 2019, 2024)),
            (
                None,
                rng.pick(&[
                    "BP 120/80",
                    "follow-up in 3 months",
                    "labs pending, A1c 7.2",
                    "no change",
                ])
                .to_string(),
            ),
        ];
        let mut row = Vec::new();
        for (i, (kind, v)) in cells.iter().enumerate() {
            if let Some(k) = kind {
                w.label(name, format!("L{line}:F{}", i + 1), *k, 0, v.len());
            }
            row.push(csv_cell(v));
        }
        out.push_str(&row.join(","));
        out.push('\n');
    }
    w.file(name, out.as_bytes())
}

fn orders_csv(w: &mut Writer, rng: &mut Rng, name: &str, rows: usize) -> io::Result<()> {
    let mut out = String::from("order_id,sku,zip,created_at,amount,tracking,reference\n");
    for _ in 0..rows {
        let _ = writeln!(
            out,
            "{},SKU-{}-{},{}-{},{}-{:02}-{:02} {:02}:{:02}:{:02},{}.{},1Z{},{}",
            rng.digits(9),
            rng.digits(3),
            rng.digits(4),
            rng.digits(5),
            rng.digits(4),
            rng.range(2019, 2024),
            rng.range(1, 12),
            rng.range(1, 28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.range(1, 999),
            rng.digits(2),
            rng.digits(16),
            phone_digits(rng),
        );
    }
    w.file(name, out.as_bytes())
}

fn records_json(w: &mut Writer, rng: &mut Rng, name: &str, n: usize) -> io::Result<()> {
    use PhiType::*;
    use serde_json::{Value, json};
    let mut patients = Vec::new();
    for i in 0..n {
        let p = Person::new(rng, 20);
        let base = format!("$.patients[{i}]");
        let m = mrn(rng);
        let full = p.full();
        let dob = date(rng, 1930, 2015);
        let s = ssn(rng);
        let s = ssn_fmt(rng, &s, true);
        let ph = phone_digits(rng);
        let ph = phone_fmt(rng, &ph, true);
        let e = email(rng, &p);
        for (path, k, v) in [
            (format!("{base}.mrn"), Mrn, &m),
            (format!("{base}.name"), Name, &full),
            (format!("{base}.dob"), Dob, &dob),
            (format!("{base}.ssn"), Ssn, &s),
            (format!("{base}.contact.phone"), Phone, &ph),
            (format!("{base}.contact.email"), Email, &e),
        ] {
            w.label(name, path, k, 0, v.len());
        }
        let mut encounters = Vec::new();
        for j in 0..2 {
            let known = Person::new(rng, 0);
            let note = if j == 0 {
                let pre = "Patient ";
                w.label(
                    name,
                    format!("{base}.encounters[{j}].note"),
                    Name,
                    pre.len(),
                    pre.len() + known.full().len(),
                );
                format!("{pre}{} tolerating {} well.", known.full(), rng.pick(DRUGS))
            } else {
                format!(
                    "Dr. {} ordered an HbA1c; ZIP {}-{}.",
                    known.full(),
                    rng.digits(5),
                    rng.digits(4)
                )
            };
            encounters.push(json!({
                "date": date(rng, 2019, 2024),
                "icd10": rng.pick(ICD),
                "note": note,
            }));
        }
        patients.push(json!({
            "mrn": m, "name": full, "dob": dob, "ssn": s,
            "contact": {"phone": ph, "email": e},
            "encounters": encounters,
            "sealed": {"insurance": format!("pve:{}", base64url(rng, 80))},
        }));
    }
    let doc: Value = json!({
        "meta": {
            "version": format!("{}.{}.{}", rng.range(1, 9), rng.range(0, 20), rng.range(0, 200)),
            "generated": format!("2024-{:02}-{:02}T{:02}:{:02}:00Z", rng.range(1, 12), rng.range(1, 28), rng.below(24), rng.below(60)),
            "source_ip": format!("192.168.{}.{}", rng.below(256), rng.below(256)),
            "order_count": rng.digits(9),
        },
        "patients": patients,
    });
    w.file(
        name,
        serde_json::to_string_pretty(&doc)
            .unwrap_or_default()
            .as_bytes(),
    )
}

fn events_jsonl(w: &mut Writer, rng: &mut Rng, name: &str, n: usize) -> io::Result<()> {
    let mut out = String::new();
    for line in 1..=n as u64 {
        let ts = format!(
            "2024-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            rng.range(1, 12),
            rng.range(1, 28),
            rng.below(24),
            rng.below(60),
            rng.below(60)
        );
        if rng.chance(30) {
            let p = Person::new(rng, 20);
            let e = email(rng, &p);
            w.label(
                name,
                format!("L{line}:$.user_email"),
                PhiType::Email,
                0,
                e.len(),
            );
            let _ = writeln!(
                out,
                "{}",
                serde_json::json!({"event": "portal_login", "user_email": e, "ts": ts})
            );
        } else {
            let _ = writeln!(
                out,
                "{}",
                serde_json::json!({"event": "sync", "ts": ts, "ip": format!("10.0.{}.{}", rng.below(256), rng.below(256)), "records": rng.range(1, 99999), "batch": rng.digits(10)})
            );
        }
    }
    w.file(name, out.as_bytes())
}

fn clinic_db(w: &mut Writer, rng: &mut Rng, name: &str, n: usize) -> io::Result<()> {
    use PhiType::*;
    let path = w.dir.join(name);
    let _ = std::fs::remove_file(&path);
    let err = |e: rusqlite::Error| io::Error::other(e.to_string());
    let conn = rusqlite::Connection::open(&path).map_err(err)?;
    conn.execute_batch(
        "CREATE TABLE patients (id INTEGER PRIMARY KEY, mrn TEXT, full_name TEXT, birth_date TEXT, ssn INTEGER, phone TEXT, email TEXT, notes TEXT);
         CREATE TABLE inventory (sku TEXT, lot TEXT, expires TEXT, qty INTEGER, supplier_phone_ext TEXT);
         BEGIN;",
    )
    .map_err(err)?;
    for id in 1..=n as i64 {
        let p = Person::new(rng, 20);
        let (m, full) = (mrn(rng), p.full());
        let dob = date(rng, 1930, 2015);
        let s = ssn(rng);
        let ph = phone_digits(rng);
        let ph = phone_fmt(rng, &ph, true);
        let e = email(rng, &p);
        for (col, k, len) in [
            ("mrn", Mrn, m.len()),
            ("full_name", Name, full.len()),
            ("birth_date", Dob, dob.len()),
            ("ssn", Ssn, s.trim_start_matches('0').len()),
            ("phone", Phone, ph.len()),
            ("email", Email, e.len()),
        ] {
            w.label(name, format!("patients.{col}#{id}"), k, 0, len);
        }
        let ssn_int: i64 = s.parse().unwrap_or(0);
        conn.execute(
            "INSERT INTO patients VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                id,
                m,
                full,
                dob,
                ssn_int,
                ph,
                e,
                "stable; recheck A1c in 3 months"
            ],
        )
        .map_err(err)?;
        conn.execute(
            "INSERT INTO inventory VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                format!("SKU-{}", rng.digits(8)),
                rng.digits(9),
                date(rng, 2019, 2024),
                rng.range(1, 500) as i64,
                rng.digits(4)
            ],
        )
        .map_err(err)?;
    }
    conn.execute_batch("COMMIT;").map_err(err)?;
    drop(conn);
    let len = std::fs::metadata(&path)?.len();
    w.corpus.files.push(name.to_string());
    w.corpus.bytes += len;
    Ok(())
}

/// Writes a corpus into `dir` (which should be empty). `scale` 1 is about
/// 1 MB in 11 files; the size grows linearly with it.
pub fn generate(dir: &Path, seed: u64, scale: usize) -> io::Result<Corpus> {
    let mut rng = Rng::new(seed);
    let mut w = Writer {
        dir: dir.to_path_buf(),
        corpus: Corpus::default(),
    };
    let scale = scale.max(1);
    for i in 0..4 {
        notes(&mut w, &mut rng, &format!("notes_{i}.txt"), 600 * scale)?;
    }
    for i in 0..2 {
        patients_csv(&mut w, &mut rng, &format!("patients_{i}.csv"), 400 * scale)?;
        orders_csv(&mut w, &mut rng, &format!("orders_{i}.csv"), 400 * scale)?;
        records_json(&mut w, &mut rng, &format!("records_{i}.json"), 100 * scale)?;
    }
    events_jsonl(&mut w, &mut rng, "events.jsonl", 1000 * scale)?;
    clinic_db(&mut w, &mut rng, "clinic.db", 300 * scale)?;
    Ok(w.corpus)
}

/// Precision and recall of one type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// Labels of this type in the corpus.
    pub labels: usize,
    /// Labels found by at least one hit of this type.
    pub found: usize,
    /// Hits of this type reported.
    pub hits: usize,
    /// Hits that lie on a label of their type.
    pub true_hits: usize,
}

impl Score {
    /// true hits / hits (1.0 when there are none).
    pub fn precision(&self) -> f64 {
        if self.hits == 0 {
            1.0
        } else {
            self.true_hits as f64 / self.hits as f64
        }
    }
    /// found / labels (1.0 when there are none).
    pub fn recall(&self) -> f64 {
        if self.labels == 0 {
            1.0
        } else {
            self.found as f64 / self.labels as f64
        }
    }
}

/// Scores a scan of the corpus in `root` against its labels, per type.
/// Hits in files the corpus did not write are ignored.
pub fn measure(corpus: &Corpus, root: &Path, report: &Report) -> BTreeMap<PhiType, Score> {
    let root = root.to_string_lossy().trim_end_matches('/').to_string() + "/";
    // (file, unit, type) → (start, end, label index)
    type Spans = Vec<(usize, usize, usize)>;
    let mut by_unit: HashMap<(&str, &str, PhiType), Spans> = HashMap::new();
    for (i, l) in corpus.labels.iter().enumerate() {
        by_unit
            .entry((&l.file, &l.unit, l.kind))
            .or_default()
            .push((l.start, l.end, i));
    }
    let mut found = vec![false; corpus.labels.len()];
    let mut scores: BTreeMap<PhiType, Score> = PhiType::ALL
        .iter()
        .map(|t| (*t, Score::default()))
        .collect();
    for l in &corpus.labels {
        if let Some(s) = scores.get_mut(&l.kind) {
            s.labels += 1;
        }
    }
    for f in &report.files {
        let Some(file) = f.path.strip_prefix(&root) else {
            continue;
        };
        if !corpus.files.iter().any(|c| c == file) {
            continue;
        }
        for h in &f.hits {
            let s = scores.get_mut(&h.kind).expect("every type");
            s.hits += 1;
            let unit = unit_key(&h.location);
            let mut hit_true = false;
            if let Some(v) = by_unit.get(&(file, unit.as_str(), h.kind)) {
                for &(a, b, i) in v {
                    if h.start < b && a < h.end {
                        hit_true = true;
                        found[i] = true;
                    }
                }
            }
            s.true_hits += usize::from(hit_true);
        }
    }
    for (i, l) in corpus.labels.iter().enumerate() {
        if let (true, Some(s)) = (found[i], scores.get_mut(&l.kind)) {
            s.found += 1;
        }
    }
    scores
}

/// A Markdown table of the scores.
pub fn table(scores: &BTreeMap<PhiType, Score>) -> String {
    let mut s =
        String::from("| type | labels | hits | precision | recall |\n|---|---:|---:|---:|---:|\n");
    let mut tot = Score::default();
    for (t, v) in scores {
        let _ = writeln!(
            s,
            "| {t} | {} | {} | {:.3} | {:.3} |",
            v.labels,
            v.hits,
            v.precision(),
            v.recall()
        );
        tot.labels += v.labels;
        tot.hits += v.hits;
        tot.found += v.found;
        tot.true_hits += v.true_hits;
    }
    let _ = writeln!(
        s,
        "| **all** | {} | {} | {:.3} | {:.3} |",
        tot.labels,
        tot.hits,
        tot.precision(),
        tot.recall()
    );
    s
}
