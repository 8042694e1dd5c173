//! The detectors: text in, candidates out (type, byte span, confidence,
//! masked value). No I/O, and a candidate never holds the value it found:
//! only where it is and its masked form.
//!
//! Detection runs in two phases. First every pattern proposes raw matches
//! (shape only: `ddd-dd-dddd`, a NANP number, a calendar date…) that pass
//! their validity rules (SSA rules for SSNs, NANP rules for phone numbers,
//! real calendar dates). Then each match is scored from its context: the
//! nearest label keyword before it in the same text ("SSN", "DOB",
//! "order #"…), stopping at the previous match so that one label binds
//! one value, and the name of the column or key holding the text. Overlaps
//! are resolved by keeping the more confident match.

use super::{PhiType, mask, names};
use aho_corasick::AhoCorasick;
use regex::Regex;
use std::sync::LazyLock;

/// What surrounds a piece of text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The column (CSV, SQLite) or key (JSON) whose value the text is.
    pub field: Option<&'a str>,
    /// The record or table is clinical (a `patients` table, a CSV with a
    /// `diagnosis` column, a JSON value under `patient`): names count as
    /// PHI anywhere in it, not only near a clinical term.
    pub clinical: bool,
}

/// One detected value: what, where in the text and how sure. It holds the
/// masked form only, never the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The type of PHI.
    pub kind: PhiType,
    /// Byte offset of the first byte in the text.
    pub start: usize,
    /// Byte offset one past the last byte in the text.
    pub end: usize,
    /// 0.0 to 1.0; see [`super`] for the scale.
    pub confidence: f32,
    /// The masked value (e.g. `***-**-1234`).
    pub masked: String,
}

/// The label keywords a value's context is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Ssn,
    Mrn,
    Phone,
    Email,
    Dob,
    Name,
    /// A date that is an event: visit, admission, order, creation.
    OtherDate,
    /// An identifier that is not PHI: order, invoice, ZIP, version.
    OtherId,
}

/// What a column or key name says about its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Ssn,
    Mrn,
    Phone,
    Email,
    Dob,
    /// `patient_name`, `full_name`: any capitalised words are a name.
    FullName,
    /// Just `name`: a name only when it looks like a person's.
    GenericName,
    FirstName,
    LastName,
    OtherDate,
    OtherId,
    None,
}

impl Field {
    fn label(self) -> Option<Label> {
        Some(match self {
            Field::Ssn => Label::Ssn,
            Field::Mrn => Label::Mrn,
            Field::Phone => Label::Phone,
            Field::Email => Label::Email,
            Field::Dob => Label::Dob,
            Field::FullName | Field::GenericName | Field::FirstName | Field::LastName => {
                Label::Name
            }
            Field::OtherDate => Label::OtherDate,
            Field::OtherId => Label::OtherId,
            Field::None => return None,
        })
    }
}

fn normalize(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Classifies a column or key name, memoized per thread: the same few
/// column names come back for every row.
pub(crate) fn field_hint(name: &str) -> Field {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static CACHE: RefCell<HashMap<String, Field>> = RefCell::new(HashMap::new());
    }
    if name.len() > 64 {
        return classify_field(name);
    }
    CACHE.with(|c| {
        if let Some(f) = c.borrow().get(name) {
            return *f;
        }
        let f = classify_field(name);
        let mut m = c.borrow_mut();
        if m.len() >= 4096 {
            m.clear();
        }
        m.insert(name.to_string(), f);
        f
    })
}

/// Classifies a column or key name (`SSN`, `patient_phone`, `birthDate`,
/// `created_at`…).
fn classify_field(name: &str) -> Field {
    let n = normalize(name);
    let has = |s: &str| n.contains(s);
    let edge = |s: &str| n.starts_with(s) || n.ends_with(s);
    if n.is_empty() {
        return Field::None;
    }
    if edge("ssn") || has("socialsecurity") || matches!(n.as_str(), "ss" | "ssno" | "socsec") {
        return Field::Ssn;
    }
    if edge("mrn")
        || has("medicalrecord")
        || has("medrec")
        || matches!(
            n.as_str(),
            "chartno"
                | "chartnumber"
                | "chartid"
                | "patientid"
                | "ptid"
                | "patientnumber"
                | "patientno"
                | "patno"
        )
    {
        return Field::Mrn;
    }
    if has("email") || n == "mail" {
        return Field::Email;
    }
    if has("phone")
        || has("mobile")
        || has("fax")
        || n.starts_with("tel")
        || matches!(
            n.as_str(),
            "cell" | "cellno" | "contactno" | "contactnumber"
        )
    {
        return Field::Phone;
    }
    if edge("dob") || has("birth") || has("bday") || n == "born" {
        return Field::Dob;
    }
    if has("name") {
        const NOT_PERSON: &[&str] = &[
            "user",
            "file",
            "host",
            "drug",
            "product",
            "facility",
            "provider",
            "doctor",
            "physician",
            "company",
            "org",
            "clinic",
            "hospital",
            "device",
            "display",
            "domain",
            "table",
            "column",
            "field",
            "brand",
            "medication",
            "test",
            "plan",
            "pharmacy",
            "insur",
            "payer",
            "employer",
            "app",
            "service",
            "server",
            "project",
            "city",
            "street",
            "state",
            "country",
            "item",
            "code",
            "class",
            "type",
            "key",
            "bucket",
        ];
        if NOT_PERSON.iter().any(|w| has(w)) {
            return Field::None;
        }
        if has("firstname") || has("givenname") || has("forename") || n == "fname" {
            return Field::FirstName;
        }
        if has("lastname") || has("surname") || has("familyname") || n == "lname" {
            return Field::LastName;
        }
        if n == "name" || n == "names" {
            return Field::GenericName;
        }
        return Field::FullName;
    }
    match n.as_str() {
        "first" | "given" => return Field::FirstName,
        "last" | "family" => return Field::LastName,
        "patient" | "person" | "guardian" => return Field::FullName,
        _ => {}
    }
    if has("date") || has("time") || has("day") || (n.len() > 4 && n.ends_with("at")) {
        return Field::OtherDate;
    }
    const OTHER_ID: &[&str] = &[
        "order", "invoice", "zip", "postal", "isbn", "version", "sku", "tracking", "ipaddr",
        "serial", "build", "lot", "amount", "price", "qty", "quantity", "count", "total",
    ];
    if OTHER_ID.iter().any(|w| has(w)) || n == "ip" {
        return Field::OtherId;
    }
    Field::None
}

/// Whether a table, column or key name marks its records as clinical.
pub(crate) fn is_clinical_name(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "patient",
        "diagnos",
        "icd",
        "medication",
        "prescri",
        "allerg",
        "condition",
        "procedure",
        "treatment",
        "encounter",
        "admission",
        "discharge",
        "mrn",
        "clinical",
        "medical",
        "symptom",
        "vitals",
        "labresult",
        "chart",
        "dob",
        "ssn",
        "immuniz",
    ];
    let n = normalize(name);
    WORDS.iter().any(|w| n.contains(w)) || matches!(n.as_str(), "dx" | "rx" | "meds")
}

/// Label keywords, lower case. A keyword matches at word boundaries.
static KEYWORDS: &[(&str, Label)] = &[
    ("ssn", Label::Ssn),
    ("ss#", Label::Ssn),
    ("ss no", Label::Ssn),
    ("social security", Label::Ssn),
    ("soc sec", Label::Ssn),
    ("social", Label::Ssn),
    ("mrn", Label::Mrn),
    ("medical record", Label::Mrn),
    ("med rec", Label::Mrn),
    ("chart", Label::Mrn),
    ("patient id", Label::Mrn),
    ("phone", Label::Phone),
    ("tel", Label::Phone),
    ("telephone", Label::Phone),
    ("cell", Label::Phone),
    ("mobile", Label::Phone),
    ("fax", Label::Phone),
    ("call", Label::Phone),
    ("contact", Label::Phone),
    ("ph", Label::Phone),
    ("pager", Label::Phone),
    ("email", Label::Email),
    ("e-mail", Label::Email),
    ("dob", Label::Dob),
    ("d.o.b", Label::Dob),
    ("birth", Label::Dob),
    ("birthdate", Label::Dob),
    ("birthday", Label::Dob),
    ("born", Label::Dob),
    ("bday", Label::Dob),
    ("patient", Label::Name),
    ("pt", Label::Name),
    ("name", Label::Name),
    ("mr", Label::Name),
    ("mrs", Label::Name),
    ("ms", Label::Name),
    ("miss", Label::Name),
    ("appointment", Label::OtherDate),
    ("appt", Label::OtherDate),
    ("visit", Label::OtherDate),
    ("seen", Label::OtherDate),
    ("admitted", Label::OtherDate),
    ("admission", Label::OtherDate),
    ("discharged", Label::OtherDate),
    ("discharge", Label::OtherDate),
    ("scheduled", Label::OtherDate),
    ("follow-up", Label::OtherDate),
    ("follow up", Label::OtherDate),
    ("date of service", Label::OtherDate),
    ("dos", Label::OtherDate),
    ("created", Label::OtherDate),
    ("updated", Label::OtherDate),
    ("modified", Label::OtherDate),
    ("expires", Label::OtherDate),
    ("exp", Label::OtherDate),
    ("due", Label::OtherDate),
    ("shipped", Label::OtherDate),
    ("dated", Label::OtherDate),
    ("since", Label::OtherDate),
    ("order", Label::OtherId),
    ("invoice", Label::OtherId),
    ("inv", Label::OtherId),
    ("tracking", Label::OtherId),
    ("isbn", Label::OtherId),
    ("zip", Label::OtherId),
    ("version", Label::OtherId),
    ("build", Label::OtherId),
    ("ip", Label::OtherId),
    ("sku", Label::OtherId),
    ("po", Label::OtherId),
    ("ref", Label::OtherId),
    ("ticket", Label::OtherId),
    ("confirmation", Label::OtherId),
    ("serial", Label::OtherId),
    ("lot", Label::OtherId),
    ("part", Label::OtherId),
    ("account", Label::OtherId),
    ("case", Label::OtherId),
    ("model", Label::OtherId),
    ("item", Label::OtherId),
    ("catalog", Label::OtherId),
    ("product", Label::OtherId),
    ("npi", Label::OtherId),
    ("claim", Label::OtherId),
];

/// How far before a value its label may be, in bytes.
const LABEL_WINDOW: usize = 40;
/// How far from a name a clinical term may be, in bytes.
const CLINICAL_WINDOW: usize = 100;

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The nearest label keyword ending before `start` and after `floor`,
/// and whether only punctuation and spaces stand between it and `start`.
/// All label keywords in one automaton (ASCII case-insensitive).
static KW: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(KEYWORDS.iter().map(|(k, _)| k))
        .expect("keywords")
});

fn label_before(text: &str, start: usize, floor: usize, names: bool) -> Option<(Label, bool)> {
    let lo = start.saturating_sub(LABEL_WINDOW).max(floor);
    if lo >= start {
        return None;
    }
    let tb = text.as_bytes();
    let mut best: Option<(usize, usize, Label)> = None;
    for m in KW.find_overlapping_iter(&tb[lo..start]) {
        let (kw, label) = KEYWORDS[m.pattern().as_usize()];
        if (label == Label::Name) != names {
            continue;
        }
        let kb = kw.as_bytes();
        let (s, e) = (lo + m.start(), lo + m.end());
        let left_ok =
            !kb[0].is_ascii_alphanumeric() || s == 0 || !tb[s - 1].is_ascii_alphanumeric();
        let right_ok = !kb[kb.len() - 1].is_ascii_alphanumeric()
            || e >= tb.len()
            || !tb[e].is_ascii_alphanumeric();
        if left_ok
            && right_ok
            && best.is_none_or(|(be, bl, _)| e > be || (e == be && kw.len() > bl))
        {
            best = Some((e, kw.len(), label));
        }
    }
    best.map(|(e, _, label)| {
        let adjacent = text[e..start].bytes().all(|b| {
            matches!(
                b,
                b' ' | b'\t' | b':' | b'#' | b'=' | b'-' | b'.' | b',' | b'(' | b'"'
            )
        });
        (label, adjacent)
    })
}

/// A match must be a whole token: no letter, digit or `_` touching it, and
/// no `-`, `.` or `/` joining it to one (`INV-219-45-1234`, `v1.212.555.0147`).
fn edges_ok(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let joiner = |c: u8| matches!(c, b'-' | b'.' | b'/');
    if start > 0 {
        let c = b[start - 1];
        if word(c) || (joiner(c) && start > 1 && word(b[start - 2])) {
            return false;
        }
    }
    if end < b.len() {
        let c = b[end];
        // A dot then letters is a file extension or a missing space
        // (`219-45-6789.txt`); a dot then digits continues a number.
        let joined = match c {
            b'.' => b.get(end + 1).is_some_and(u8::is_ascii_digit),
            c if joiner(c) => b.get(end + 1).is_some_and(|n| word(*n)),
            _ => false,
        };
        if word(c) || joined {
            return false;
        }
    }
    true
}

/// Inside a long opaque token (base64, hex, a phivault `pve:` ciphertext):
/// not a value but bytes that happen to look like one.
fn in_opaque_token(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    let tok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-');
    let left = b[..start].iter().rev().take_while(|c| tok(**c)).count();
    let right = b[end..].iter().take_while(|c| tok(**c)).count();
    let inner = if b[start..end].iter().all(|c| tok(*c)) {
        end - start
    } else {
        0
    };
    if (left > 0 || right > 0) && left + inner + right >= 32 {
        return true;
    }
    // `pve:` envelopes and `vault:v1:` values, however short.
    let s = start - left;
    let before = &text[floor_boundary(text, s.saturating_sub(10))..s];
    before.ends_with("pve:") || (before.contains("vault:v") && before.ends_with(':'))
}

static SSN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d{3})([- ]?)(\d{2})([- ]?)(\d{4})").unwrap());
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:(\+?1)[-. ]?)?(?:\((\d{3})\) ?|(\d{3})([-. ]?))(\d{3})([-. ]?)(\d{4})").unwrap()
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}",
    )
    .unwrap()
});
static ISO_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\d{4})([-/])(\d{2})([-/])(\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
        .unwrap()
});
static US_DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d{1,2})([/-])(\d{1,2})([/-])(\d{4}|\d{2})").unwrap());
static COMPACT_DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d{8}").unwrap());
static NAMED_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:([a-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4}))|(?:(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]{3,9})\.?,?\s+(\d{4}))",
    )
    .unwrap()
});
static TIME_AFTER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^,?\s{1,3}\d{1,2}:\d{2}").unwrap());
static MRN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:mrn|medical\s+record(?:\s+(?:number|num|no))?|med\.?\s*rec(?:ord)?(?:\s*(?:number|num|no))?|chart(?:\s*(?:number|num|no|id))?|patient\s*(?:id|number|num|no))\.?\s*(?:#\s*)?[:=]?\s*(?:#\s*)?(?:is\s+)?([a-z]{0,3}-?\d{5,12})",
    )
    .unwrap()
});
static MRN_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z]{0,4}-?\d{4,12}$").unwrap());
static WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z]+(?:['-][A-Za-z]+)*").unwrap());
static CLINICAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i:\b(?:patients?|pt|diagnos(?:is|ed|es)|dx|prescribed|prescription|rx|mg|mcg|ml|dose|dosage|tablets?|capsules?|medications?|meds|admitted|admission|discharged?|allerg(?:y|ies|ic)|symptoms?|presents|presented|complains|history\s+of|hx|treatment|treated|therapy|surgery|surgical|procedure|chemotherapy|insulin|metformin|lisinopril|atorvastatin|amoxicillin|albuterol|hospitali[sz]ed|physician|nurse|encounter|icd(?:-?10)?|cpt|blood\s+pressure|bp|hba1c|a1c|mrn|dob|referred|referral|chronic|acute|hypertension|diabetes|diabetic|asthma|copd|depression|anxiety|pregnan(?:t|cy)|cancer|oncology|cardiology|radiology|mri|biopsy|vaccin(?:e|ated)|immunization|prognosis|refills?|pharmacy|pain|fever|cough|nausea|fracture|injury|wound|infection|seizure|stroke|dementia|dialysis)\b)|(?i:\b[a-z]{2,}(?:pril|olol|statin|sartan|mab|cillin|mycin|floxacin|azole|oxetine|aline|triptan|thyroxine|formin|dipine|tidine|gliptin|glitazone|parin|semide|thiazide|cycline|vir|profen|codone|azepam|azolam)\b)|\b[A-TV-Z][0-9][0-9AB]\.[0-9A-TV-Z]{1,4}\b",
    )
    .unwrap()
});

/// The shapes proposed in phase 1, with what scoring needs.
enum Shape {
    Ssn {
        digits: String,
        sep: u8,
    },
    Phone {
        digits: String,
        style: PhoneStyle,
    },
    Email,
    Date {
        year: i32,
        weak: bool,
        timestamp: bool,
    },
    Mrn,
}

#[derive(Clone, Copy)]
enum PhoneStyle {
    Parens,
    Intl,
    Dashed,
    Dotted,
    Spaced,
    Bare,
}

struct Raw {
    kind: PhiType,
    start: usize,
    end: usize,
    shape: Shape,
}

/// Today's date (UTC) as (year, month, day): birth dates lie before it.
static TODAY: LazyLock<(i32, u8, u8)> = LazyLock::new(|| {
    let d = time::OffsetDateTime::now_utc().date();
    (d.year(), u8::from(d.month()), d.day())
});

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// A real calendar date no later than today and no earlier than 1900.
fn plausible_birth(y: i32, m: u32, d: u32) -> bool {
    let (ty, tm, td) = *TODAY;
    (1900..=ty).contains(&y)
        && (1..=12).contains(&m)
        && d >= 1
        && d <= days_in_month(y, m)
        && (y, m, d) <= (ty, u32::from(tm), u32::from(td))
}

fn month_number(w: &str) -> Option<u32> {
    const M: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let w = w.to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    M.iter()
        .position(|full| {
            *full == w
                || (w.len() == 3 && full.starts_with(&w))
                || (w == "sept" && *full == "september")
        })
        .map(|i| i as u32 + 1)
}

fn num(s: &str) -> u32 {
    s.parse().unwrap_or(0)
}

/// SSA rules (since 2011 randomisation): area not 000, 666 or 9xx; group
/// not 00; serial not 0000.
fn ssn_valid(d: &str) -> bool {
    let (a, g, s) = (&d[..3], &d[3..5], &d[5..]);
    a != "000" && a != "666" && !a.starts_with('9') && g != "00" && s != "0000"
}

/// NANP: area and exchange start with 2-9; area codes N9X are reserved
/// for expansion; exchanges N11 are service codes.
fn nanp_valid(d: &str) -> bool {
    let b = d.as_bytes();
    (b'2'..=b'9').contains(&b[0])
        && b[1] != b'9'
        && (b'2'..=b'9').contains(&b[3])
        && !(b[4] == b'1' && b[5] == b'1')
}

/// Like `captures_iter`, but the capture engines run only on the text of
/// each match the (much faster) DFA found. Group offsets are made absolute.
fn captures<'t>(re: &'t Regex, text: &'t str) -> impl Iterator<Item = Caps<'t>> + 't {
    re.find_iter(text)
        .filter_map(move |m| re.captures(m.as_str()).map(|c| Caps { base: m.start(), c }))
}

/// Captures of a match, with offsets into the whole text.
struct Caps<'t> {
    base: usize,
    c: regex::Captures<'t>,
}

/// A group of [`Caps`]: absolute offsets and its text.
#[derive(Clone, Copy)]
struct Group<'t> {
    start: usize,
    end: usize,
    text: &'t str,
}

impl<'t> Group<'t> {
    fn start(&self) -> usize {
        self.start
    }
    fn end(&self) -> usize {
        self.end
    }
    fn as_str(&self) -> &'t str {
        self.text
    }
    fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

impl<'t> Caps<'t> {
    fn get(&self, i: usize) -> Option<Group<'t>> {
        self.c.get(i).map(|m| Group {
            start: self.base + m.start(),
            end: self.base + m.end(),
            text: m.as_str(),
        })
    }
}

impl std::ops::Index<usize> for Caps<'_> {
    type Output = str;
    fn index(&self, i: usize) -> &str {
        &self.c[i]
    }
}

fn phase1(text: &str, out: &mut Vec<Raw>) {
    let has_digit = text.bytes().any(|b| b.is_ascii_digit());
    if has_digit {
        for c in captures(&SSN, text) {
            let m = c.get(0).unwrap();
            let (s1, s2) = (&c[2], &c[4]);
            if s1 != s2 || !edges_ok(text, m.start(), m.end()) {
                continue;
            }
            let d = format!("{}{}{}", &c[1], &c[3], &c[5]);
            if ssn_valid(&d) {
                let sep = s1.bytes().next().unwrap_or(0);
                out.push(Raw {
                    kind: PhiType::Ssn,
                    start: m.start(),
                    end: m.end(),
                    shape: Shape::Ssn { digits: d, sep },
                });
            }
        }
        for c in captures(&PHONE, text) {
            let m = c.get(0).unwrap();
            if !edges_ok(text, m.start(), m.end()) {
                continue;
            }
            let style = if c.get(2).is_some() {
                if c.get(6).is_none_or(|s| s.is_empty()) {
                    continue;
                }
                PhoneStyle::Parens
            } else {
                let (s1, s2) = (&c[4], &c[6]);
                if s1 != s2 {
                    continue;
                }
                match s1 {
                    "-" => PhoneStyle::Dashed,
                    "." => PhoneStyle::Dotted,
                    " " => PhoneStyle::Spaced,
                    _ => PhoneStyle::Bare,
                }
            };
            let style = match c.get(1) {
                Some(cc) if cc.as_str().starts_with('+') => PhoneStyle::Intl,
                _ => style,
            };
            let area = c.get(2).or(c.get(3)).unwrap().as_str();
            let d = format!("{area}{}{}", &c[5], &c[7]);
            if nanp_valid(&d) {
                out.push(Raw {
                    kind: PhiType::Phone,
                    start: m.start(),
                    end: m.end(),
                    shape: Shape::Phone { digits: d, style },
                });
            }
        }
        for c in captures(&ISO_DATE, text) {
            let m = c.get(0).unwrap();
            if c[2] != c[4] || !edges_ok(text, m.start(), m.end()) {
                continue;
            }
            let y = num(&c[1]) as i32;
            if plausible_birth(y, num(&c[3]), num(&c[5])) {
                let timestamp = c.get(6).is_some() || TIME_AFTER.is_match(&text[m.end()..]);
                out.push(Raw {
                    kind: PhiType::Dob,
                    start: m.start(),
                    end: m.end(),
                    shape: Shape::Date {
                        year: y,
                        weak: false,
                        timestamp,
                    },
                });
            }
        }
        for c in captures(&US_DATE, text) {
            let m = c.get(0).unwrap();
            if c[2] != c[4] || !edges_ok(text, m.start(), m.end()) {
                continue;
            }
            let (a, b) = (num(&c[1]), num(&c[3]));
            let (yr, weak) = if c[5].len() == 2 {
                let yy = num(&c[5]) as i32;
                let pivot = TODAY.0 % 100;
                (if yy > pivot { 1900 + yy } else { 2000 + yy }, true)
            } else {
                (num(&c[5]) as i32, false)
            };
            // m/d/yyyy; d/m/yyyy when the first part cannot be a month.
            if plausible_birth(yr, a, b) || (a > 12 && plausible_birth(yr, b, a)) {
                let timestamp = TIME_AFTER.is_match(&text[m.end()..]);
                out.push(Raw {
                    kind: PhiType::Dob,
                    start: m.start(),
                    end: m.end(),
                    shape: Shape::Date {
                        year: yr,
                        weak,
                        timestamp,
                    },
                });
            }
        }
        for m in COMPACT_DATE.find_iter(text) {
            if !edges_ok(text, m.start(), m.end()) {
                continue;
            }
            let s = m.as_str();
            let y = num(&s[..4]) as i32;
            if plausible_birth(y, num(&s[4..6]), num(&s[6..])) {
                out.push(Raw {
                    kind: PhiType::Dob,
                    start: m.start(),
                    end: m.end(),
                    shape: Shape::Date {
                        year: y,
                        weak: true,
                        timestamp: false,
                    },
                });
            }
        }
        for c in captures(&NAMED_DATE, text) {
            let m = c.get(0).unwrap();
            if !edges_ok(text, m.start(), m.end()) {
                continue;
            }
            let (mon, day, year) = if c.get(1).is_some() {
                (&c[1], &c[2], &c[3])
            } else {
                (&c[5], &c[4], &c[6])
            };
            let Some(mo) = month_number(mon) else {
                continue;
            };
            let y = num(year) as i32;
            if plausible_birth(y, mo, num(day)) {
                let timestamp = TIME_AFTER.is_match(&text[m.end()..]);
                out.push(Raw {
                    kind: PhiType::Dob,
                    start: m.start(),
                    end: m.end(),
                    shape: Shape::Date {
                        year: y,
                        weak: false,
                        timestamp,
                    },
                });
            }
        }
        for c in captures(&MRN, text) {
            let v = c.get(1).unwrap();
            if !edges_ok(text, v.start(), v.end()) {
                continue;
            }
            out.push(Raw {
                kind: PhiType::Mrn,
                start: v.start(),
                end: v.end(),
                shape: Shape::Mrn,
            });
        }
    }
    if text.contains('@') {
        for m in EMAIL.find_iter(text) {
            let b = text.as_bytes();
            if m.start() > 0 && matches!(b[m.start() - 1], b'.' | b'_' | b'-' | b'%' | b'+') {
                continue;
            }
            let tld = m
                .as_str()
                .rsplit('.')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            const FILE_EXT: &[&str] = &[
                "png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "ts", "py", "rs", "json",
                "txt", "pdf", "html",
            ];
            if FILE_EXT.contains(&tld.as_str()) {
                continue;
            }
            out.push(Raw {
                kind: PhiType::Email,
                start: m.start(),
                end: m.end(),
                shape: Shape::Email,
            });
        }
    }
}

/// Confidence and masked value of a raw match, given the label before it
/// (or the field's label).
fn score(text: &str, r: &Raw, label: Option<Label>) -> Option<(f32, String)> {
    use Label as L;
    Some(match &r.shape {
        Shape::Ssn { digits, sep } => {
            let known_sample = matches!(digits.as_str(), "078051120" | "219099999" | "123456789");
            let c = match (sep, label) {
                (_, Some(L::Ssn)) if *sep == b'-' => 0.95,
                (_, Some(L::Ssn)) => 0.9,
                (_, Some(L::OtherId | L::OtherDate)) => 0.15,
                (b'-', Some(_)) => 0.35,
                (b'-', None) => 0.6,
                (b' ', None) => 0.4,
                (b' ', Some(_)) => 0.2,
                (_, None) => 0.1,
                (_, Some(_)) => 0.05,
            };
            let c = if known_sample { f32::min(c, 0.3) } else { c };
            (c, mask::ssn(digits, *sep == b'-'))
        }
        Shape::Phone { digits, style } => {
            let c = match label {
                Some(L::Phone) => 0.95,
                Some(L::OtherId) => 0.15,
                Some(L::Ssn | L::Mrn | L::Dob | L::OtherDate) => 0.3,
                _ => match style {
                    PhoneStyle::Intl => 0.85,
                    PhoneStyle::Parens => 0.8,
                    PhoneStyle::Dashed => 0.75,
                    PhoneStyle::Dotted => 0.6,
                    PhoneStyle::Spaced => 0.5,
                    PhoneStyle::Bare => 0.2,
                },
            };
            (c, mask::phone(digits))
        }
        Shape::Email => {
            let v = &text[r.start..r.end];
            let local = v.split('@').next().unwrap_or("").to_ascii_lowercase();
            const ROLE: &[&str] = &[
                "noreply",
                "no-reply",
                "donotreply",
                "do-not-reply",
                "support",
                "info",
                "admin",
                "help",
                "billing",
                "webmaster",
                "postmaster",
                "sales",
                "contact",
                "notifications",
                "git",
                "root",
                "abuse",
                "security",
                "privacy",
                "hostmaster",
                "office",
            ];
            let c = if ROLE.contains(&local.as_str()) {
                0.3
            } else if label == Some(L::Email) {
                0.95
            } else {
                0.9
            };
            (c, mask::email(v))
        }
        Shape::Date {
            year,
            weak,
            timestamp,
        } => {
            let c = match label {
                Some(L::Dob) if *timestamp => 0.9,
                Some(L::Dob) if *weak => 0.85,
                Some(L::Dob) => 0.95,
                _ if *timestamp => 0.05,
                _ if *weak => 0.05,
                Some(L::OtherDate) => 0.1,
                Some(_) => 0.15,
                None => 0.3,
            };
            (c, mask::dob(*year, TODAY.0))
        }
        Shape::Mrn => (0.9, mask::identifier(&text[r.start..r.end])),
    })
}

/// Runs every detector over `text`. Returns all candidates (any
/// confidence), without overlaps, in text order.
pub fn detect(text: &str, ctx: &Context<'_>) -> Vec<Candidate> {
    let mut field = ctx.field.map_or(Field::None, field_hint);
    if field == Field::GenericName && ctx.clinical {
        // `name` in a patients table is the patient's name.
        field = Field::FullName;
    }
    let mut raw = Vec::new();
    phase1(text, &mut raw);
    raw.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    let mut out = Vec::with_capacity(raw.len());
    let mut floor = 0;
    for r in &raw {
        if in_opaque_token(text, r.start, r.end) {
            continue;
        }
        let label = label_before(text, r.start, floor, false)
            .map(|(l, _)| l)
            .or_else(|| field.label());
        if let Some((confidence, masked)) = score(text, r, label) {
            out.push(Candidate {
                kind: r.kind,
                start: r.start,
                end: r.end,
                confidence,
                masked,
            });
        }
        floor = floor.max(r.end);
    }
    field_value(text, field, &mut out);
    names_in(text, ctx, field, &mut out);
    resolve_overlaps(out)
}

/// A whole value whose column says what it is (`mrn`, `first_name`).
fn field_value(text: &str, field: Field, out: &mut Vec<Candidate>) {
    let t = text.trim();
    if t.is_empty() {
        return;
    }
    let start = text.len() - text.trim_start().len();
    let end = start + t.len();
    match field {
        Field::Mrn if MRN_VALUE.is_match(t) => out.push(Candidate {
            kind: PhiType::Mrn,
            start,
            end,
            confidence: 0.9,
            masked: mask::identifier(t),
        }),
        // An SSN stored as an integer lost its leading zeros.
        Field::Ssn if (7..=8).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) => {
            let d = format!("{t:0>9}");
            if ssn_valid(&d) {
                out.push(Candidate {
                    kind: PhiType::Ssn,
                    start,
                    end,
                    confidence: 0.8,
                    masked: mask::ssn(&d, false),
                });
            }
        }
        Field::FirstName | Field::LastName => {
            if !is_name_word(t) || names::is_stop(t) {
                return;
            }
            let known = if field == Field::FirstName {
                names::is_first(t)
            } else {
                names::is_last(t)
            };
            out.push(Candidate {
                kind: PhiType::Name,
                start,
                end,
                confidence: if known { 0.9 } else { 0.75 },
                masked: mask::name([t]),
            });
        }
        _ => {}
    }
}

/// `Smith`, `O'Brien`, `McDonald`, `Garcia-Lopez`, `SMITH`.
fn is_name_word(w: &str) -> bool {
    let b = w.as_bytes();
    if b.len() < 2
        || !b[0].is_ascii_uppercase()
        || !b
            .iter()
            .all(|c| c.is_ascii_alphabetic() || *c == b'\'' || *c == b'-')
    {
        return false;
    }
    if b.iter().all(|c| !c.is_ascii_lowercase()) {
        return b.iter().filter(|c| c.is_ascii_alphabetic()).count() >= 2;
    }
    // Upper case only at the start, after ' or -, and in Mc/Mac prefixes.
    (1..b.len()).all(|i| {
        !b[i].is_ascii_uppercase()
            || matches!(b[i - 1], b'\'' | b'-')
            || (i == 2 && &b[..2] == b"Mc")
            || (i == 3 && &b[..3] == b"Mac")
    }) && b.iter().any(u8::is_ascii_lowercase)
}

fn is_upper(w: &str) -> bool {
    !w.bytes().any(|c| c.is_ascii_lowercase())
}

/// Names: two capitalised words (with an optional middle initial), or
/// `Last, First`, near a clinical term or in a clinical record; scored by
/// the embedded name lists, honorifics and the label before them.
fn names_in(text: &str, ctx: &Context<'_>, field: Field, out: &mut Vec<Candidate>) {
    if !text.bytes().any(|b| b.is_ascii_uppercase()) {
        return;
    }
    let name_field = matches!(field, Field::FullName | Field::GenericName);
    let clinical: Vec<(usize, usize)> = if ctx.clinical || name_field {
        Vec::new()
    } else {
        let v: Vec<_> = CLINICAL
            .find_iter(text)
            .map(|m| (m.start(), m.end()))
            .collect();
        if v.is_empty() {
            return;
        }
        v
    };
    let near = |s: usize, e: usize| {
        ctx.clinical
            || name_field
            || clinical
                .iter()
                .any(|&(cs, ce)| ce + CLINICAL_WINDOW >= s && cs <= e + CLINICAL_WINDOW)
    };
    let toks: Vec<(usize, usize)> = WORD.find_iter(text).map(|m| (m.start(), m.end())).collect();
    let w = |i: usize| &text[toks[i].0..toks[i].1];
    let gap = |i: usize| &text[toks[i].1..toks[i + 1].0];
    let spaced =
        |g: &str| !g.is_empty() && g.len() <= 3 && g.bytes().all(|b| b == b' ' || b == b'\t');
    let initial = |i: usize| {
        let t = w(i);
        t.len() == 1 && t.as_bytes()[0].is_ascii_uppercase()
    };
    let mut i = 0;
    while i + 1 < toks.len() {
        let a = w(i);
        if !is_name_word(a) || names::is_stop(a) || is_honorific(a) {
            i += 1;
            continue;
        }
        let g = gap(i);
        // Middle initial: "John Q. Smith" / "John Q Smith".
        let (j, mid) = if i + 2 < toks.len()
            && initial(i + 1)
            && spaced(g)
            && matches!(gap(i + 1), " " | ". ")
        {
            (i + 2, true)
        } else {
            (i + 1, false)
        };
        let b = w(j);
        let comma = !mid && matches!(g, ", " | ",");
        if !(spaced(if mid { " " } else { g }) || comma)
            || !is_name_word(b)
            || names::is_stop(b)
            || is_honorific(b)
            || is_upper(a) != is_upper(b)
        {
            i += 1;
            continue;
        }
        let (s, e) = (toks[i].0, toks[j].1);
        let (fk, lk) = if comma {
            (names::is_first(b), names::is_last(a))
        } else {
            let direct = (names::is_first(a), names::is_last(b));
            // "SMITH JOHN" in exports: surname first.
            if direct == (false, false) && names::is_last(a) && names::is_first(b) {
                (true, true)
            } else {
                direct
            }
        };
        let mut c: f32 = match (fk, lk) {
            (true, true) => 0.9,
            (true, false) => 0.7,
            (false, true) => 0.6,
            (false, false) => 0.3,
        };
        if (comma || is_upper(a)) && !(fk && lk) {
            c = c.min(0.3);
        }
        let prev_hon = (i > 0 && spaced_or_dot(gap(i - 1)))
            .then(|| w(i - 1))
            .filter(|p| is_honorific(p));
        let lab = label_before(text, s, 0, true).filter(|(_, adj)| *adj);
        if lab.is_some() && !comma {
            c = c.max(0.8);
        }
        match prev_hon.map(|h| h.to_ascii_lowercase()) {
            Some(h) if h == "dr" => c = c.min(0.35),
            Some(_) => c = c.max(0.85),
            None => {}
        }
        if mid {
            c = (c + 0.05).min(1.0);
        }
        if field == Field::FullName
            && c >= 0.3
            && prev_hon.is_none_or(|h| !h.eq_ignore_ascii_case("dr"))
        {
            c = c.max(0.85);
        }
        if !near(s, e) {
            i += 1;
            continue;
        }
        let words: Vec<&str> = if comma {
            vec![b, a]
        } else if mid {
            vec![a, w(i + 1), b]
        } else {
            vec![a, b]
        };
        out.push(Candidate {
            kind: PhiType::Name,
            start: s,
            end: e,
            confidence: c,
            masked: mask::name(words),
        });
        // A weak pair ("Discharged Ruth") must not swallow the start of a
        // strong one ("Ruth E. Olson"); overlaps are resolved later.
        i = if c >= 0.5 { j + 1 } else { i + 1 };
    }
}

fn spaced_or_dot(g: &str) -> bool {
    matches!(g, " " | ". " | "  ")
}

fn is_honorific(w: &str) -> bool {
    matches!(
        w.to_ascii_lowercase().as_str(),
        "mr" | "mrs" | "ms" | "miss" | "mx" | "dr"
    )
}

fn resolve_overlaps(mut v: Vec<Candidate>) -> Vec<Candidate> {
    if v.len() < 2 {
        return v;
    }
    v.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Candidate> = Vec::with_capacity(v.len());
    for c in v {
        if kept.iter().all(|k| c.end <= k.start || c.start >= k.end) {
            kept.push(c);
        }
    }
    kept.sort_by_key(|c| (c.start, c.end));
    kept
}

/// Byte ranges worth hiding in a display string (a file path): the spans of
/// candidates at or above `min`.
pub(crate) fn spans_to_mask(text: &str, min: f32) -> Vec<(usize, usize, String)> {
    detect(text, &Context::default())
        .into_iter()
        .filter(|c| c.confidence >= min)
        .map(|c| {
            (
                floor_boundary(text, c.start),
                ceil_boundary(text, c.end),
                c.masked,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str, ctx: &Context<'_>, min: f32) -> Vec<(PhiType, String, String)> {
        detect(text, ctx)
            .into_iter()
            .filter(|c| c.confidence >= min)
            .map(|c| (c.kind, text[c.start..c.end].to_string(), c.masked))
            .collect()
    }

    fn one(text: &str) -> Vec<(PhiType, String)> {
        kinds(text, &Context::default(), 0.5)
            .into_iter()
            .map(|(k, v, _)| (k, v))
            .collect()
    }

    #[test]
    fn ssn_rules_and_labels() {
        assert_eq!(
            one("SSN: 219-45-1234"),
            vec![(PhiType::Ssn, "219-45-1234".into())]
        );
        assert_eq!(
            one("ssn 219451234"),
            vec![(PhiType::Ssn, "219451234".into())]
        );
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "219-00-1234",
            "219-45-0000",
        ] {
            assert!(one(&format!("SSN {bad}")).is_empty(), "{bad}");
        }
        assert!(one("order 219-45-1234").is_empty());
        assert!(one("INV-219-45-1234").is_empty());
        assert!(one("219451234").is_empty(), "bare 9 digits need a label");
        let d = detect("SSN: 219-45-1234", &Context::default());
        assert_eq!(d[0].masked, "***-**-1234");
    }

    #[test]
    fn phones() {
        for p in [
            "(212) 555-0147",
            "212-555-0147",
            "+1 212 555 0147",
            "212.555.0147",
            "1-212-555-0147",
        ] {
            assert_eq!(one(p).len(), 1, "{p}");
            assert_eq!(one(p)[0].0, PhiType::Phone, "{p}");
        }
        assert_eq!(one("tel 2125550147")[0].0, PhiType::Phone);
        assert!(one("123-456-7890").is_empty(), "area code starting with 1");
        assert!(one("212-911-0147").is_empty(), "N11 exchange");
        assert!(one("order #212-555-0147").is_empty());
        assert!(one("192.168.100.200").is_empty());
    }

    #[test]
    fn dates_need_context() {
        assert_eq!(one("DOB: 01/05/1980")[0].0, PhiType::Dob);
        assert_eq!(one("born Jan 5, 1980")[0].0, PhiType::Dob);
        assert_eq!(one("Date of birth 1980-01-05")[0].0, PhiType::Dob);
        assert!(one("seen on 01/05/2020").is_empty());
        assert!(one("01/05/1980").is_empty());
        assert!(one("DOB 2024-02-30").is_empty(), "no such date");
        assert!(one("DOB 2099-01-01").is_empty(), "future");
        let v = one("DOB 01/05/1980, visit 03/04/2021");
        assert_eq!(v, vec![(PhiType::Dob, "01/05/1980".into())]);
        let ctx = Context {
            field: Some("birth_date"),
            clinical: false,
        };
        assert_eq!(kinds("1980-01-05", &ctx, 0.5).len(), 1);
        assert!(one("created 2021-03-04 10:22:01").is_empty());
    }

    #[test]
    fn mrn_and_email() {
        assert_eq!(
            one("MRN: 00123456"),
            vec![(PhiType::Mrn, "00123456".into())]
        );
        assert_eq!(one("Medical Record Number: AB-1234567")[0].0, PhiType::Mrn);
        assert!(one("order 00123456").is_empty());
        let ctx = Context {
            field: Some("mrn"),
            clinical: false,
        };
        assert_eq!(kinds("A0012345", &ctx, 0.5)[0].2, "******45");
        assert_eq!(one("mail jane.doe@gmail.com")[0].0, PhiType::Email);
        assert!(one("logo@2x.png").is_empty());
        assert!(one("write to noreply@example.com").is_empty());
    }

    #[test]
    fn names_near_clinical_terms() {
        let v = one("Patient John Smith was prescribed metformin 500 mg.");
        assert_eq!(v, vec![(PhiType::Name, "John Smith".into())]);
        assert!(one("John Smith approved the budget.").is_empty());
        assert!(one("Admitted to Grace Hospital with chest pain.").is_empty());
        assert!(one("Dr. Sarah Chen prescribed lisinopril 10 mg.").is_empty());
        assert_eq!(
            one("Patient: Thaddeus Okonkwo, diagnosis E11.9")[0].1,
            "Thaddeus Okonkwo"
        );
        assert_eq!(one("pt Mary Q. Johnson, dx I10")[0].1, "Mary Q. Johnson");
        let d = detect("Patient Mary Q. Johnson", &Context::default());
        assert_eq!(d[0].masked, "M. Q. J.");
        let ctx = Context {
            field: Some("patient_name"),
            clinical: false,
        };
        assert_eq!(kinds("Thaddeus Okonkwo", &ctx, 0.5).len(), 1);
        let ctx = Context {
            field: Some("name"),
            clinical: false,
        };
        assert!(kinds("Blood Pressure", &ctx, 0.5).is_empty());
        let ctx = Context {
            field: Some("last_name"),
            clinical: false,
        };
        assert_eq!(kinds("Okonkwo", &ctx, 0.5).len(), 1);
    }

    #[test]
    fn ciphertexts_are_opaque() {
        assert!(one("ssn: pve:AQEEYmlsbC0xMjMtNDUtNjc4OQ-219-45-1234-AAAAAAAAAAAAAAAA").is_empty());
        assert!(one("pve:219-45-1234").is_empty());
    }

    #[test]
    fn field_hints() {
        assert_eq!(field_hint("SSN"), Field::Ssn);
        assert_eq!(field_hint("class_name"), Field::None);
        assert_eq!(field_hint("patient_phone"), Field::Phone);
        assert_eq!(field_hint("birthDate"), Field::Dob);
        assert_eq!(field_hint("created_at"), Field::OtherDate);
        assert_eq!(field_hint("medical_record_number"), Field::Mrn);
        assert_eq!(field_hint("drug_name"), Field::None);
        assert_eq!(field_hint("first_name"), Field::FirstName);
        assert!(is_clinical_name("patients"));
    }
}
