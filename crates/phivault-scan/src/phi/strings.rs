//! The fallback for files no reader understands (binary files, SQLite
//! files that do not open): like `strings`, runs of at least
//! [`MIN_RUN`] printable ASCII bytes, each handed to the detectors as one
//! unit. Hits found this way score a notch lower ([`PENALTY`]): the
//! structure that would confirm them (a line, a column) is gone.

use super::detect::Context;
use super::{Location, Sink};
use std::io::{self, BufRead};

/// Shortest run reported, as `strings` does by default (it uses 4; 6 keeps
/// noise from random bytes down and is still shorter than any PHI value).
pub(crate) const MIN_RUN: usize = 6;

/// Longest run handed to the detectors at once.
const MAX_RUN: usize = 1 << 16;

/// Subtracted from the confidence of every hit found in strings.
pub(crate) const PENALTY: f32 = 0.1;

fn printable(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\t'
}

/// Scans the printable runs of `r`.
pub(crate) fn scan<R: BufRead>(mut r: R, sink: &mut Sink<'_>) -> io::Result<()> {
    let saved = sink.penalty;
    sink.penalty = PENALTY;
    let res = scan_runs(&mut r, sink);
    sink.penalty = saved;
    res
}

fn scan_runs<R: BufRead>(r: &mut R, sink: &mut Sink<'_>) -> io::Result<()> {
    let mut run: Vec<u8> = Vec::new();
    let mut run_start: u64 = 0;
    let mut pos: u64 = 0;
    let ctx = Context::default();
    let flush = |run: &mut Vec<u8>, at: u64, sink: &mut Sink<'_>| {
        if run.len() >= MIN_RUN {
            // Printable ASCII only: always valid UTF-8.
            let text = String::from_utf8_lossy(run);
            sink.unit(&text, &ctx, |_| Location::Strings { offset: at });
        }
        run.clear();
    };
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        for &b in buf {
            if printable(b) {
                if run.is_empty() {
                    run_start = pos;
                }
                run.push(b);
                if run.len() >= MAX_RUN {
                    flush(&mut run, run_start, sink);
                }
            } else if !run.is_empty() {
                flush(&mut run, run_start, sink);
            }
            pos += 1;
        }
        r.consume(n);
    }
    flush(&mut run, run_start, sink);
    Ok(())
}
