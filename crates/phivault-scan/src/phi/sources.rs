//! Readers that cut a file into units for the detectors: lines of text,
//! JSON values with their paths, JSON Lines. (CSV is in `csv`, SQLite in
//! `sqlite`.) Text is streamed line by line; a line longer than
//! [`MAX_LINE`] is cut into pieces so memory stays bounded.

use super::detect::{self, Context};
use super::{FileKind, Location, Sink, safe_label};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::io::{self, BufRead, Read};

/// Longest piece of a line handed to the detectors at once.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// Scans a stream of the given kind.
pub(crate) fn scan_stream<R: BufRead>(
    kind: FileKind,
    name: &str,
    mut r: R,
    sink: &mut Sink<'_>,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    match kind {
        FileKind::Text | FileKind::Sqlite => scan_text(r, sink),
        FileKind::Strings => super::strings::scan(r, sink),
        FileKind::Csv => super::csv::scan(r, csv_delimiter(name), sink, notes),
        FileKind::Jsonl => scan_jsonl(r, sink, notes),
        FileKind::Json => {
            let mut all = Vec::new();
            r.read_to_end(&mut all)?;
            scan_json(&all, sink, notes)
        }
    }
}

fn csv_delimiter(name: &str) -> u8 {
    if name.to_ascii_lowercase().ends_with(".tsv") {
        b'\t'
    } else {
        b','
    }
}

/// Reads one line (or a piece of at most [`MAX_LINE`] bytes) into `buf`
/// without its line ending. Returns (bytes read, whether the line ended).
pub(crate) fn read_piece<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<(usize, bool)> {
    buf.clear();
    let n = r.by_ref().take(MAX_LINE as u64).read_until(b'\n', buf)?;
    let ended = buf.last() == Some(&b'\n');
    if ended {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok((n, ended || n < MAX_LINE))
}

/// Plain text, line by line.
pub(crate) fn scan_text<R: BufRead>(mut r: R, sink: &mut Sink<'_>) -> io::Result<()> {
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut col = 0usize;
    let ctx = Context::default();
    loop {
        let (n, ended) = read_piece(&mut r, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if col == 0 {
            line += 1;
        }
        let text = String::from_utf8_lossy(&buf);
        sink.unit(&text, &ctx, |c| Location::Text {
            line,
            column: col + c.start + 1,
        });
        col = if ended { 0 } else { col + n };
    }
}

/// One JSON document; when it does not parse, the whole file is scanned
/// as text instead (with a note giving the position of the error).
pub(crate) fn scan_json(
    data: &[u8],
    sink: &mut Sink<'_>,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    let saved = (sink.hits.len(), sink.counts.clone());
    match walk_json(data, sink, None) {
        Ok(()) => Ok(()),
        Err(e) => {
            sink.hits.truncate(saved.0);
            sink.counts = saved.1;
            notes.push(format!(
                "not valid JSON ({} at line {}, column {}); scanned as text",
                json_error_class(&e),
                e.line(),
                e.column()
            ));
            scan_text(data, sink)
        }
    }
}

/// JSON Lines: each line a document; a line that does not parse is
/// scanned as text.
fn scan_jsonl<R: BufRead>(
    mut r: R,
    sink: &mut Sink<'_>,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut bad = 0u64;
    loop {
        let (n, ended) = read_piece(&mut r, &mut buf)?;
        if n == 0 {
            break;
        }
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let saved = (sink.hits.len(), sink.counts.clone());
        if !ended || walk_json(&buf, sink, Some(line)).is_err() {
            sink.hits.truncate(saved.0);
            sink.counts = saved.1;
            bad += 1;
            let text = String::from_utf8_lossy(&buf);
            sink.unit(&text, &Context::default(), |c| Location::Text {
                line,
                column: c.start + 1,
            });
            if !ended {
                // The rest of an over-long line: plain text.
                let mut rest = Vec::new();
                loop {
                    let (n, ended) = read_piece(&mut r, &mut rest)?;
                    let text = String::from_utf8_lossy(&rest);
                    sink.unit(&text, &Context::default(), |c| Location::Text {
                        line,
                        column: c.start + 1,
                    });
                    if n == 0 || ended {
                        break;
                    }
                }
            }
        }
    }
    if bad > 0 {
        notes.push(format!("{bad} lines are not valid JSON; scanned as text"));
    }
    Ok(())
}

/// serde_json's error category, never its message (which may quote input).
fn json_error_class(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "data error",
        serde_json::error::Category::Eof => "unexpected end",
    }
}

/// A step of a JSON path.
enum Seg {
    /// An object key; `redacted` when the key itself looks like PHI.
    Key(String, bool),
    Index(usize),
}

struct JsonState<'s, 'o> {
    path: Vec<Seg>,
    /// How many keys on the path are clinical names (`patient`, `diagnosis`).
    clinical: usize,
    line: Option<u64>,
    sink: &'s mut Sink<'o>,
}

fn push_key(s: &mut String, k: &str, redacted: bool) {
    if redacted {
        s.push_str("[<redacted>]");
    } else if !k.is_empty()
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !k.as_bytes()[0].is_ascii_digit()
    {
        s.push('.');
        s.push_str(k);
    } else {
        s.push('[');
        s.push_str(&serde_json::Value::from(safe_label(k)).to_string());
        s.push(']');
    }
}

/// `$.patients[3]["home phone"]`.
fn render(path: &[Seg], extra_key: Option<(&str, bool)>) -> String {
    let mut s = String::from("$");
    for seg in path {
        match seg {
            Seg::Key(k, red) => push_key(&mut s, k, *red),
            Seg::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    if let Some((k, red)) = extra_key {
        push_key(&mut s, k, red);
    }
    s
}

fn field(path: &[Seg]) -> Option<&str> {
    path.iter().rev().find_map(|s| match s {
        Seg::Key(k, _) => Some(k.as_str()),
        Seg::Index(_) => None,
    })
}

impl JsonState<'_, '_> {
    fn value(&mut self, text: &str) {
        let JsonState {
            path,
            clinical,
            line,
            sink,
        } = self;
        let ctx = Context {
            field: field(path),
            clinical: *clinical > 0,
        };
        let mut shown: Option<String> = None;
        sink.unit(text, &ctx, |_| Location::Json {
            path: shown.get_or_insert_with(|| render(path, None)).clone(),
            line: *line,
            key: false,
        });
    }

    /// Scans a key; returns whether it looks like PHI (then paths show it
    /// redacted).
    fn key(&mut self, k: &str) -> bool {
        let JsonState {
            path,
            clinical,
            line,
            sink,
        } = self;
        let ctx = Context {
            field: field(path),
            clinical: *clinical > 0,
        };
        let redact = detect::detect(k, &ctx).iter().any(|c| c.confidence >= 0.3);
        if redact {
            let shown = render(path, Some((k, true)));
            sink.unit(k, &ctx, |_| Location::Json {
                path: shown.clone(),
                line: *line,
                key: true,
            });
        }
        redact
    }
}

struct Walk<'a, 's, 'o>(&'a mut JsonState<'s, 'o>);

impl<'de> DeserializeSeed<'de> for Walk<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.value(&v.to_string());
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.value(&v.to_string());
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        // No detected type is a fraction.
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.value(v);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.0.path.push(Seg::Index(i));
            let more = seq.next_element_seed(Walk(&mut *self.0))?;
            self.0.path.pop();
            if more.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            let redacted = self.0.key(&k);
            let clinical = detect::is_clinical_name(&k);
            self.0.clinical += usize::from(clinical);
            self.0.path.push(Seg::Key(k, redacted));
            let r = map.next_value_seed(Walk(&mut *self.0));
            self.0.path.pop();
            self.0.clinical -= usize::from(clinical);
            r?;
        }
        Ok(())
    }
}

/// Walks one JSON document, scanning every string, integer and key.
fn walk_json(data: &[u8], sink: &mut Sink<'_>, line: Option<u64>) -> Result<(), serde_json::Error> {
    let mut st = JsonState {
        path: Vec::new(),
        clinical: 0,
        line,
        sink,
    };
    let mut de = serde_json::Deserializer::from_slice(data);
    Walk(&mut st).deserialize(&mut de)?;
    de.end()
}
