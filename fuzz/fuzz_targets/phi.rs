//! The PHI scanner's parsers and detectors on arbitrary bytes: the CSV/TSV
//! reader, the JSON and JSON Lines walkers, line splitting, the detectors
//! with any column name, and the masks. None may panic, every hit must lie
//! inside its unit, and no mask may contain the value it hides.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use phivault_scan::phi::{self, Context, Options};

const NAMES: [&str; 6] = [
    "f.csv",
    "f.tsv",
    "f.json",
    "f.jsonl",
    "f.txt",
    "ssn 219-45-6789.csv",
];
const FIELDS: [Option<&str>; 6] = [
    None,
    Some("ssn"),
    Some("name"),
    Some("dob"),
    Some("mrn"),
    Some("last_name"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let opts = Options {
        min_confidence: 0.0,
        max_hits_per_file: 64,
        ..Options::default()
    };
    if mode & 0x80 == 0 {
        let r = phi::scan_bytes(NAMES[(mode as usize) % NAMES.len()], rest, &opts);
        for h in &r.hits {
            assert!(h.start < h.end, "empty hit");
        }
    } else if let Ok(s) = std::str::from_utf8(rest) {
        let ctx = Context {
            field: FIELDS[(mode as usize) % FIELDS.len()],
            clinical: mode & 0x40 != 0,
        };
        for c in phi::detect(s, &ctx) {
            assert!(c.start < c.end && c.end <= s.len());
            let raw = &s[c.start..c.end];
            assert!(
                raw.len() < 4 || !c.masked.contains(raw),
                "mask holds the value"
            );
        }
        let _ = phi::mask_text(s);
    }
});
