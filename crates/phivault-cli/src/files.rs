//! `phivault encrypt`, `decrypt` and `inspect`.

use crate::cli::{DecryptArgs, EncryptArgs, Global, InspectArgs};
use crate::custody::service;
use crate::keys_cmd::ring_name;
use crate::ui;
use anyhow::{Context, Result, bail};
use phivault_core::{envelope, stream};
use phivault_keystore::atomic::AtomicFile;
use phivault_keystore::service::ServiceKeys;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Largest value `--envelope` accepts; bigger data belongs in a stream.
const ENVELOPE_MAX: u64 = 16 << 20;

fn is_stdin(p: &Option<PathBuf>) -> bool {
    p.as_deref().is_none_or(|p| p == Path::new("-"))
}

/// An opened input: the reader, its length, and — for a regular file — the
/// same open file again for positional reads (no second open(2)).
struct Input {
    reader: Box<dyn Read + Send>,
    len: Option<u64>,
    file: Option<File>,
}

fn open_input(p: &Option<PathBuf>) -> Result<Input> {
    if is_stdin(p) {
        return Ok(Input {
            reader: Box::new(io::stdin()),
            len: None,
            file: None,
        });
    }
    let p = p.as_ref().expect("checked");
    let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let m = f
        .metadata()
        .with_context(|| format!("reading {}", p.display()))?;
    let (len, file) = if m.file_type().is_file() {
        (Some(m.len()), Some(f.try_clone()?))
    } else {
        (None, None)
    };
    Ok(Input {
        reader: Box::new(f),
        len,
        file,
    })
}

/// `-o PATH` when it can be written with positional writes: a regular file
/// or a path that doesn't exist yet (never a device or FIFO).
fn atomic_target(output: &Option<PathBuf>) -> Option<&PathBuf> {
    output
        .as_ref()
        .filter(|p| std::fs::metadata(p).map_or(true, |m| m.file_type().is_file()))
}

/// Runs `f` on a temporary file beside `path` and renames it into place
/// only if `f` succeeds.
fn positional(path: &Path, f: impl FnOnce(&File) -> Result<u64>) -> Result<u64> {
    let out = AtomicFile::create(path)
        .with_context(|| format!("creating a temporary file next to {}", path.display()))?;
    let n = f(out.as_file())?;
    out.commit()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(n)
}

fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let n = threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("phivault-seg-{i}"))
        .build()?)
}

fn check_paths(input: &Option<PathBuf>, output: &Option<PathBuf>, binary_out: bool) -> Result<()> {
    if let (Some(i), Some(o)) = (input, output)
        && let (Ok(a), Ok(b)) = (std::fs::canonicalize(i), std::fs::canonicalize(o))
        && a == b
    {
        bail!("input and output are the same file; write to a new file");
    }
    if output.is_none() && binary_out && io::stdout().is_terminal() {
        bail!("refusing to write binary data to a terminal; use -o FILE or redirect stdout");
    }
    Ok(())
}

/// Writes `f`'s output to `-o` atomically, or to stdout.
fn with_output(
    output: &Option<PathBuf>,
    f: impl FnOnce(&mut (dyn Write + Send)) -> Result<u64>,
) -> Result<u64> {
    match output {
        // A path that is not a regular file (a device such as /dev/null, a
        // FIFO) is written in place: renaming a temporary file over it
        // would replace the device.
        Some(p) if std::fs::metadata(p).is_ok_and(|m| !m.file_type().is_file()) => {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?;
            let n = f(&mut out)?;
            out.flush()?;
            Ok(n)
        }
        Some(p) => {
            let mut out = AtomicFile::create(p)
                .with_context(|| format!("creating a temporary file next to {}", p.display()))?;
            let n = f(&mut out)?;
            out.commit()
                .with_context(|| format!("writing {}", p.display()))?;
            Ok(n)
        }
        None => {
            let mut out = io::stdout();
            let n = f(&mut out)?;
            out.flush()?;
            Ok(n)
        }
    }
}

fn report(g: &Global, what: &str, bytes: u64, start: std::time::Instant) {
    let secs = start.elapsed().as_secs_f64();
    if g.json {
        eprintln!(
            "{}",
            serde_json::json!({ "operation": what, "plaintext_bytes": bytes, "seconds": secs })
        );
    }
}

pub fn encrypt(g: &Global, a: &EncryptArgs, cfg: &crate::config::FileConfig) -> Result<ExitCode> {
    check_paths(&a.input, &a.output, !a.text)?;
    let svc = service(g, cfg)?;
    let keys = ServiceKeys(&*svc);
    let ring = ring_name(g, &a.key)?;
    let Input {
        reader: mut input,
        len,
        file,
    } = open_input(&a.input)?;
    let start = std::time::Instant::now();
    let n = if a.envelope {
        let mut pt = Vec::new();
        input.by_ref().take(ENVELOPE_MAX + 1).read_to_end(&mut pt)?;
        if pt.len() as u64 > ENVELOPE_MAX {
            bail!(
                "--envelope takes values up to 16 MiB; encrypt larger data as a stream (drop --envelope)"
            );
        }
        let ct = envelope::encrypt(&keys, &ring, a.context.as_bytes(), &pt)?;
        let n = pt.len() as u64;
        zeroize::Zeroize::zeroize(&mut pt);
        with_output(&a.output, |w| {
            if a.text {
                writeln!(w, "{}", envelope::to_text(&ct))?;
            } else {
                w.write_all(&ct)?;
            }
            Ok(n)
        })?
    } else {
        let pool = pool(a.threads)?;
        let bar = ui::progress(g, len, a.output.is_none());
        let opts = stream::Options {
            segment_exp: a.segment_exp,
            pool: Some(&pool),
        };
        let mut tick = ui::ticker(&bar);
        let n = match (file.zip(len), atomic_target(&a.output)) {
            // File to file: every worker reads, seals and writes its own segments.
            (Some((file, len)), Some(p)) => positional(p, |out| {
                Ok(stream::encrypt_file(
                    &keys, &ring, &file, len, out, opts, &mut tick,
                )?)
            })?,
            // From a file: each worker reads the segments it seals.
            (Some((file, len)), None) => with_output(&a.output, |w| {
                Ok(stream::encrypt_at(
                    &keys, &ring, &file, len, w, opts, &mut tick,
                )?)
            })?,
            (None, _) => with_output(&a.output, |w| {
                Ok(stream::encrypt(&keys, &ring, input, w, opts, &mut tick)?)
            })?,
        };
        drop(tick);
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        n
    };
    report(g, "encrypt", n, start);
    Ok(ExitCode::SUCCESS)
}

enum Kind {
    Stream,
    Envelope,
    EnvelopeText,
}

fn detect(head: &[u8]) -> Result<Kind> {
    if head.starts_with(stream::MAGIC) {
        Ok(Kind::Stream)
    } else if head.starts_with(envelope::MAGIC) {
        Ok(Kind::Envelope)
    } else if head
        .trim_ascii_start()
        .starts_with(envelope::TEXT_PREFIX.as_bytes())
    {
        Ok(Kind::EnvelopeText)
    } else if head.len() < 3 {
        Err(stream::StreamError::Malformed("input is empty or too short").into())
    } else {
        Err(stream::StreamError::Malformed(
            "input is not a phivault ciphertext (no PVS/PVE/pve: header)",
        )
        .into())
    }
}

/// Reads the first 4 bytes, plus any leading whitespace before a text
/// envelope (FORMAT.md §3.1 lets readers trim it), up to 256 bytes.
fn read_head(r: &mut dyn Read) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(8);
    r.take(4).read_to_end(&mut head)?;
    while head.len() < 256 && head.len() >= 4 && head.trim_ascii_start().len() < 4 {
        if r.take(1).read_to_end(&mut head)? == 0 {
            break;
        }
    }
    Ok(head)
}

fn read_envelope(kind: &Kind, head: Vec<u8>, mut input: impl Read) -> Result<Vec<u8>> {
    let mut all = head;
    input
        .by_ref()
        .take(4 * ENVELOPE_MAX)
        .read_to_end(&mut all)?;
    Ok(match kind {
        Kind::EnvelopeText => envelope::from_text(
            std::str::from_utf8(&all)
                .map_err(|_| envelope::EnvelopeError::Malformed("text form is not UTF-8"))?,
        )?,
        _ => all,
    })
}

pub fn decrypt(g: &Global, a: &DecryptArgs, cfg: &crate::config::FileConfig) -> Result<ExitCode> {
    check_paths(&a.input, &a.output, true)?;
    let Input {
        reader: mut input,
        len,
        file,
    } = open_input(&a.input)?;
    let head = read_head(&mut input)?;
    let kind = detect(&head)?;
    let svc = service(g, cfg)?;
    let keys = ServiceKeys(&*svc);
    let start = std::time::Instant::now();
    let n = match kind {
        Kind::Stream => {
            if let Some((off, n)) = a.range {
                let Some(f) = file else {
                    bail!("--range needs a regular input file, not stdin or a pipe");
                };
                with_output(&a.output, |w| {
                    Ok(stream::decrypt_range(&keys, f, off, n, w)?)
                })?
            } else {
                let pool = pool(a.threads)?;
                let bar = ui::progress(g, len, a.output.is_none());
                let opts = stream::Options {
                    pool: Some(&pool),
                    ..Default::default()
                };
                let mut tick = ui::ticker(&bar);
                let n = match (file.zip(len), atomic_target(&a.output)) {
                    // File to file: every worker reads, opens and writes its own segments.
                    (Some((file, len)), Some(p)) => positional(p, |out| {
                        Ok(stream::decrypt_file(
                            &keys, &file, len, out, opts, &mut tick,
                        )?)
                    })?,
                    _ => {
                        let reader = io::Cursor::new(head).chain(input);
                        with_output(&a.output, |w| {
                            Ok(stream::decrypt(&keys, reader, w, opts, &mut tick)?)
                        })?
                    }
                };
                drop(tick);
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                n
            }
        }
        Kind::Envelope | Kind::EnvelopeText => {
            if a.range.is_some() {
                bail!("--range applies to stream files only");
            }
            let ct = read_envelope(&kind, head, input)?;
            let mut pt = envelope::decrypt(&keys, &ct, a.context.as_bytes())?;
            let n = pt.len() as u64;
            let r = with_output(&a.output, |w| {
                w.write_all(&pt)?;
                Ok(n)
            });
            zeroize::Zeroize::zeroize(&mut pt);
            r?
        }
    };
    report(g, "decrypt", n, start);
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(g: &Global, a: &InspectArgs) -> Result<ExitCode> {
    let Input {
        reader: mut input,
        len,
        file: _,
    } = open_input(&a.input)?;
    let head = read_head(&mut input)?;
    let kind = detect(&head)?;
    let hexs = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let info = match kind {
        Kind::Stream => {
            let h = stream::read_header(&mut io::Cursor::new(head).chain(input))?;
            let layout = len.map(|l| stream::layout(&h, l));
            let mut v = serde_json::json!({
                "format": "stream", "format_version": stream::VERSION, "algorithm": h.algorithm.name(),
                "algorithm_id": h.algorithm.id(), "key_ring": h.ring.as_str(), "key_version": h.version.get(),
                "segment_size": h.segment_size(), "header_len": h.len(), "nonce": hexs(&h.nonce), "commitment": hexs(&h.commitment),
            });
            match layout {
                Some(Ok(l)) => {
                    v["segments"] = l.segments.into();
                    v["plaintext_len"] = l.plaintext_len.into();
                }
                Some(Err(e)) => v["layout_error"] = e.to_string().into(),
                None => {}
            }
            v
        }
        Kind::Envelope | Kind::EnvelopeText => {
            let ct = read_envelope(&kind, head, input)?;
            let h = envelope::parse_header(&ct)?;
            serde_json::json!({
                "format": if matches!(kind, Kind::EnvelopeText) { "envelope (text)" } else { "envelope" },
                "format_version": envelope::VERSION, "algorithm": h.algorithm.name(), "algorithm_id": h.algorithm.id(),
                "key_ring": h.ring.as_str(), "key_version": h.version.get(), "header_len": h.len,
                "plaintext_len": ct.len() - h.len - 16, "nonce": hexs(&h.nonce), "commitment": hexs(&h.commitment),
            })
        }
    };
    if g.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else if let Some(obj) = info.as_object() {
        for (k, v) in obj {
            println!(
                "{:<15} {}",
                format!("{k}:"),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
