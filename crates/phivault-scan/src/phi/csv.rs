//! A small streaming CSV/TSV reader (RFC 4180: quoted fields, doubled
//! quotes, line breaks inside quotes, CRLF) that remembers the line each
//! field starts on, and the scan of a CSV file with its header.
//!
//! It is lenient, as exports are: text after a closing quote is kept, and
//! an unbalanced quote cannot swallow the file: a quoted field that grows
//! past [`MAX_FIELD`] ends there and the rest of the line is read unquoted.

use super::detect::{self, Context};
use super::sources::read_piece;
use super::{Location, Sink, safe_label};
use std::io::{self, BufRead};

/// Longest field kept; see the module doc.
pub(crate) const MAX_FIELD: usize = 1 << 20;
/// Most fields kept per record; the rest of a record is ignored.
pub(crate) const MAX_FIELDS: usize = 4096;

/// One record: its fields and the 1-based line each starts on.
#[derive(Debug, Default)]
pub struct Record {
    /// Field bytes.
    pub fields: Vec<Vec<u8>>,
    /// Start line of each field.
    pub lines: Vec<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// Reads records from a stream.
pub struct Reader<R> {
    r: R,
    delim: u8,
    line: u64,
    at_line_start: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    /// A reader with the given delimiter (`,` or `\t`).
    pub fn new(r: R, delim: u8) -> Self {
        Reader {
            r,
            delim,
            line: 0,
            at_line_start: true,
            buf: Vec::new(),
        }
    }

    /// The next record into `rec`; false at the end of input.
    pub fn next_record(&mut self, rec: &mut Record) -> io::Result<bool> {
        rec.fields.clear();
        rec.lines.clear();
        let mut state = State::FieldStart;
        let mut cur: Vec<u8> = Vec::new();
        let mut cur_line = 0;
        let mut started = false;
        loop {
            let (n, ended) = read_piece(&mut self.r, &mut self.buf)?;
            if n == 0 {
                if started {
                    push(rec, &mut cur, cur_line, state == State::Unquoted);
                }
                return Ok(started);
            }
            if self.at_line_start {
                self.line += 1;
            }
            self.at_line_start = ended;
            started = true;
            for i in 0..self.buf.len() {
                let b = self.buf[i];
                match state {
                    State::FieldStart => {
                        cur_line = self.line;
                        if b == b'"' {
                            state = State::Quoted;
                        } else if b == self.delim {
                            push(rec, &mut cur, cur_line, false);
                        } else {
                            cur.push(b);
                            state = State::Unquoted;
                        }
                    }
                    State::Unquoted => {
                        if b == self.delim {
                            push(rec, &mut cur, cur_line, true);
                            state = State::FieldStart;
                        } else {
                            cur.push(b);
                        }
                    }
                    State::Quoted => {
                        if b == b'"' {
                            state = State::QuoteInQuoted;
                        } else if cur.len() >= MAX_FIELD {
                            push(rec, &mut cur, cur_line, false);
                            cur.push(b);
                            state = State::Unquoted;
                        } else {
                            cur.push(b);
                        }
                    }
                    State::QuoteInQuoted => {
                        if b == b'"' {
                            cur.push(b'"');
                            state = State::Quoted;
                        } else if b == self.delim {
                            push(rec, &mut cur, cur_line, false);
                            state = State::FieldStart;
                        } else {
                            cur.push(b);
                            state = State::Unquoted;
                        }
                    }
                }
            }
            if !ended {
                // A piece of an over-long line: carry on with the same line.
                continue;
            }
            if state == State::Quoted && cur.len() < MAX_FIELD {
                // A line break inside quotes belongs to the field.
                cur.push(b'\n');
                continue;
            }
            if state == State::FieldStart && rec.fields.is_empty() && cur.is_empty() {
                // An empty line: one empty field, as RFC 4180 readers do.
                rec.fields.push(Vec::new());
                rec.lines.push(self.line);
                return Ok(true);
            }
            push(rec, &mut cur, cur_line.max(1), state == State::Unquoted);
            return Ok(true);
        }
    }
}

fn push(rec: &mut Record, cur: &mut Vec<u8>, line: u64, _unquoted: bool) {
    if rec.fields.len() < MAX_FIELDS {
        rec.fields.push(std::mem::take(cur));
        rec.lines.push(line);
    } else {
        cur.clear();
    }
}

/// Whether the first record is a header: short, non-empty names that do
/// not start with a digit and hold nothing that looks like PHI.
fn is_header(rec: &Record) -> bool {
    !rec.fields.is_empty()
        && rec.fields.iter().all(|f| {
            let t = String::from_utf8_lossy(f);
            let t = t.trim();
            !t.is_empty()
                && t.len() <= 64
                && !t.as_bytes()[0].is_ascii_digit()
                && detect::detect(t, &Context::default())
                    .iter()
                    .all(|c| c.confidence < 0.3)
        })
}

/// Scans a CSV stream: each cell is a unit whose context is its header
/// name; a header with a clinical column name (`diagnosis`, `mrn`) makes
/// every row clinical.
pub(crate) fn scan<R: BufRead>(
    r: R,
    delim: u8,
    sink: &mut Sink<'_>,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    let mut reader = Reader::new(r, delim);
    let mut rec = Record::default();
    if !reader.next_record(&mut rec)? {
        return Ok(());
    }
    let mut header: Vec<String> = Vec::new();
    let mut raw_header: Vec<String> = Vec::new();
    let mut clinical = false;
    let mut first_is_data = true;
    if is_header(&rec) {
        raw_header = rec
            .fields
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_string())
            .collect();
        header = raw_header.iter().map(|h| safe_label(h)).collect();
        clinical = raw_header.iter().any(|h| detect::is_clinical_name(h));
        first_is_data = false;
    } else {
        notes.push("no header row; columns are numbered".into());
    }
    let mut wide = false;
    loop {
        if first_is_data {
            first_is_data = false;
        } else if !reader.next_record(&mut rec)? {
            break;
        }
        wide |= rec.fields.len() >= MAX_FIELDS;
        for (i, f) in rec.fields.iter().enumerate() {
            if f.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(f);
            let ctx = Context {
                field: raw_header.get(i).map(String::as_str),
                clinical,
            };
            let line0 = rec.lines[i];
            let column = header
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("column {}", i + 1));
            sink.unit(&text, &ctx, |c| Location::Csv {
                line: line0
                    + text.as_bytes()[..c.start]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count() as u64,
                field: i + 1,
                column: column.clone(),
            });
        }
    }
    if wide {
        notes.push(format!(
            "records with more than {MAX_FIELDS} fields: the rest ignored"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &str) -> Vec<(Vec<String>, Vec<u64>)> {
        let mut r = Reader::new(input.as_bytes(), b',');
        let mut rec = Record::default();
        let mut out = Vec::new();
        while r.next_record(&mut rec).unwrap() {
            out.push((
                rec.fields
                    .iter()
                    .map(|f| String::from_utf8(f.clone()).unwrap())
                    .collect(),
                rec.lines.clone(),
            ));
        }
        out
    }

    #[test]
    fn rfc4180() {
        let v = all("a,b,c\r\n1,\"x, \"\"y\"\"\",3\n\"multi\nline\",z,\n");
        assert_eq!(v[0].0, ["a", "b", "c"]);
        assert_eq!(v[1].0, ["1", "x, \"y\"", "3"]);
        assert_eq!(v[2].0, ["multi\nline", "z", ""]);
        assert_eq!(v[2].1, [3, 4, 4]);
        assert_eq!(all("a,b").len(), 1);
        assert_eq!(all("").len(), 0);
    }

    #[test]
    fn unbalanced_quote_is_bounded() {
        let mut s = String::from("\"");
        s.push_str(&"x\n".repeat(MAX_FIELD));
        let v = all(&s);
        assert!(v.len() > 1, "the quote did not swallow the whole input");
        assert!(
            v.iter()
                .all(|(f, _)| f.iter().all(|x| x.len() <= MAX_FIELD + 1))
        );
    }
}
