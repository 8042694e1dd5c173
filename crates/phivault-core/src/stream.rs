//! The stream format: files of any size, in the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway, Vizár 2015, as used by age).
//!
//! ```text
//! "PVS" | ver=0x01 | alg=0x01 | seg_exp | source=0x01 | n | ring name (n)
//!       | key version u32be | nonce (32) | commitment (32)
//! segment 0 | segment 1 | … | segment k (last)
//! segment i = AES-256-GCM(file key, nonce = i as 88-bit BE ‖ last-flag, aad = "")
//! ```
//!
//! The file key and its commitment are derived from the ring version and the
//! whole header with SP 800-108 KBKDF, so a change to any header byte gives a
//! different key and fails the commitment check. The segment nonce is a
//! counter plus a flag that is 1 only on the last segment, so truncation, reordering and appended data all fail authentication.
//!
//! Memory stays constant: three batch buffers of [`batch_len`] segments each. The
//! segments of a batch are sealed or opened in parallel on a rayon pool, a
//! reader thread and a writer thread overlap I/O with the crypto, and a batch
//! reaches the writer only after every segment in it has authenticated, so
//! no unauthenticated plaintext is ever released.
//!
//! A stream can also be keyed directly with a given 256-bit key instead of
//! a key ring (key source 0x02, docs/FORMAT.md §4.1). Only the backup format
//! (`crate::backup`) writes such streams, through the push-style `Sealer`
//! and pull-style `Opener` here, which seal and open the same segments.

use crate::crypto::{self, AEAD_TAG_LEN, Aes256GcmKey, CryptoError};
use crate::keys::{
    self, DerivedKey, KeyDeriver, KeyError, KeyRingName, KeyUse, KeyVersion, MAX_RING_NAME_LEN,
};
use crate::secret::SecretKey;
use rayon::prelude::*;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::mpsc;

/// Magic bytes at the start of every stream.
pub const MAGIC: &[u8; 3] = b"PVS";
/// The format version this code writes.
pub const VERSION: u8 = 1;
/// Default segment size exponent: 2^16 = 64 KiB segments.
pub const DEFAULT_SEGMENT_EXP: u8 = 16;
/// Allowed segment size exponents (4 KiB … 16 MiB).
pub const SEGMENT_EXP_RANGE: core::ops::RangeInclusive<u8> = 12..=24;
/// Segments per batch handed to the worker pool.
const BATCH: usize = 64;
/// Bytes of plaintext per batch that [`batch_len`] aims for (64 × 64 KiB).
const BATCH_BYTES: usize = 4 << 20;

/// Segments per batch for a segment slot size: 64 for the default 64 KiB
/// segments, fewer (at least 4, for parallelism) for larger ones, so memory
/// stays at three batches of about 4 MiB (64 MiB with 16 MiB segments).
fn batch_len(slot: usize) -> usize {
    (BATCH_BYTES / slot).clamp(4, BATCH)
}
const LABEL: &[u8] = b"phivault stream v1";
const NONCE_LEN: usize = keys::MESSAGE_NONCE_LEN;
const COMMIT_LEN: usize = keys::COMMITMENT_LEN;
const SOURCE_KEY_RING: u8 = 0x01;
/// Key source 0x02: the key is given by the enclosing format (a backup).
const SOURCE_GIVEN_KEY: u8 = 0x02;
/// Length of a header with key source 0x02: 7 fixed bytes, nonce, commitment.
const KEYED_HEADER_LEN: usize = 7 + NONCE_LEN + COMMIT_LEN;

/// Algorithm ids for streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// 0x01: AES-256-GCM STREAM; file key and 256-bit commitment from
    /// KBKDF-CTR-HMAC-SHA-256 over the header.
    Aes256GcmStreamKbkdfSha256Commit,
}

impl Algorithm {
    /// The id byte.
    pub fn id(self) -> u8 {
        0x01
    }
    /// Parses an id byte.
    pub fn from_id(id: u8) -> Option<Self> {
        (id == 0x01).then_some(Self::Aes256GcmStreamKbkdfSha256Commit)
    }
    /// A stable human name.
    pub fn name(self) -> &'static str {
        "AES-256-GCM-STREAM/KBKDF-HMAC-SHA256/commit"
    }
}

/// Errors from stream encryption and decryption.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The input is not a phivault stream.
    #[error("not a phivault stream: {0}")]
    Malformed(&'static str),
    /// The format version is newer than this build understands.
    #[error("unsupported stream format version {0}; upgrade phivault to read it")]
    UnsupportedVersion(u8),
    /// The algorithm id is unknown.
    #[error("unknown stream algorithm id 0x{0:02x}; upgrade phivault to read it")]
    UnknownAlgorithm(u8),
    /// The key could not be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Wrong key, or a header or segment was modified, reordered, cut
    /// mid-segment or extended. Uniform on purpose.
    #[error(
        "decryption failed: the key is wrong, or the ciphertext was modified, reordered or cut"
    )]
    DecryptionFailed,
    /// The stream ends before its last segment: it was truncated.
    #[error("the ciphertext is truncated: it ends before its final segment")]
    Truncated,
    /// The crypto module failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// A parsed stream header, with the exact bytes it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// log2 of the segment plaintext size.
    pub segment_exp: u8,
    /// The key ring.
    pub ring: KeyRingName,
    /// The ring version.
    pub version: KeyVersion,
    /// The per-file nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The key commitment.
    pub commitment: [u8; COMMIT_LEN],
    bytes: Vec<u8>,
}

impl Header {
    /// Segment plaintext size in bytes.
    pub fn segment_size(&self) -> usize {
        1 << self.segment_exp
    }
    /// Header length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Never true; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// The exact header bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn fixed_info(&self) -> Vec<u8> {
        fixed_info(&self.bytes[..self.bytes.len() - COMMIT_LEN])
    }
}

fn fixed_info(prefix: &[u8]) -> Vec<u8> {
    keys::fixed_info(LABEL, prefix)
}

fn read_exact_or(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), StreamError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => StreamError::Malformed(what),
        _ => StreamError::Io(e),
    })
}

/// Reads and parses a stream header, leaving `r` at the first segment.
pub fn read_header(r: &mut impl Read) -> Result<Header, StreamError> {
    let mut fixed = [0u8; 8];
    read_exact_or(r, &mut fixed, "too short for a header")?;
    let (algorithm, segment_exp) = parse_prefix(&fixed)?;
    match fixed[6] {
        SOURCE_KEY_RING => {}
        SOURCE_GIVEN_KEY => {
            return Err(StreamError::Malformed(
                "key source 0x02 marks the stream inside a backup file; read it as a backup",
            ));
        }
        _ => return Err(StreamError::Malformed("unknown key source")),
    }
    let n = fixed[7] as usize;
    if n == 0 || n > MAX_RING_NAME_LEN {
        return Err(StreamError::Malformed("bad key ring name length"));
    }
    let mut rest = vec![0u8; n + 4 + NONCE_LEN + COMMIT_LEN];
    read_exact_or(r, &mut rest, "header truncated")?;
    let name = core::str::from_utf8(&rest[..n])
        .map_err(|_| StreamError::Malformed("bad key ring name"))?;
    let ring = KeyRingName::parse(name).map_err(|_| StreamError::Malformed("bad key ring name"))?;
    let version = KeyVersion::new(u32::from_be_bytes(rest[n..n + 4].try_into().expect("4")))
        .ok_or(StreamError::Malformed("key version 0"))?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&rest[n + 4..n + 4 + NONCE_LEN]);
    let mut commitment = [0u8; COMMIT_LEN];
    commitment.copy_from_slice(&rest[n + 4 + NONCE_LEN..]);
    let mut bytes = fixed.to_vec();
    bytes.extend_from_slice(&rest);
    Ok(Header {
        algorithm,
        segment_exp,
        ring,
        version,
        nonce,
        commitment,
        bytes,
    })
}

/// Checks magic, version, algorithm and segment size (bytes 0 … 6).
fn parse_prefix(fixed: &[u8]) -> Result<(Algorithm, u8), StreamError> {
    if &fixed[..3] != MAGIC {
        return Err(StreamError::Malformed("bad magic"));
    }
    if fixed[3] != VERSION {
        return Err(StreamError::UnsupportedVersion(fixed[3]));
    }
    let algorithm = Algorithm::from_id(fixed[4]).ok_or(StreamError::UnknownAlgorithm(fixed[4]))?;
    let segment_exp = fixed[5];
    if !SEGMENT_EXP_RANGE.contains(&segment_exp) {
        return Err(StreamError::Malformed("segment size out of range"));
    }
    Ok((algorithm, segment_exp))
}

/// A parsed header with key source 0x02 (docs/FORMAT.md §4.1): no key ring,
/// the key comes from the enclosing format.
pub(crate) struct KeyedHeader {
    bytes: [u8; KEYED_HEADER_LEN],
}

impl KeyedHeader {
    /// log2 of the segment plaintext size.
    pub(crate) fn segment_exp(&self) -> u8 {
        self.bytes[5]
    }

    /// Derives the file key from the given key and checks the commitment
    /// (§2) before any segment is opened.
    pub(crate) fn open(&self, key: &SecretKey) -> Result<Aes256GcmKey, StreamError> {
        let (prefix, commitment) = self.bytes.split_at(KEYED_HEADER_LEN - COMMIT_LEN);
        let derived = DerivedKey::derive(key, &fixed_info(prefix))?;
        if !crypto::constant_time_eq(&derived.commitment, commitment) {
            return Err(StreamError::DecryptionFailed);
        }
        Ok(Aes256GcmKey::new(&derived.key)?)
    }
}

/// Reads a header with key source 0x02, leaving `r` at the first segment.
pub(crate) fn read_keyed_header(r: &mut impl Read) -> Result<KeyedHeader, StreamError> {
    let mut bytes = [0u8; KEYED_HEADER_LEN];
    read_exact_or(r, &mut bytes, "too short for a header")?;
    parse_prefix(&bytes)?;
    if bytes[6] != SOURCE_GIVEN_KEY {
        return Err(StreamError::Malformed("key source is not 0x02 (given key)"));
    }
    Ok(KeyedHeader { bytes })
}

/// Writes a header with key source 0x02 for `key` and returns the file's
/// AEAD key. `key` must be used for this one stream only.
fn write_keyed_header(
    key: &SecretKey,
    nonce: [u8; NONCE_LEN],
    segment_exp: u8,
    output: &mut impl Write,
) -> Result<Aes256GcmKey, StreamError> {
    if !SEGMENT_EXP_RANGE.contains(&segment_exp) {
        return Err(StreamError::Malformed("segment size out of range"));
    }
    let mut header = Vec::with_capacity(KEYED_HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&[
        VERSION,
        Algorithm::Aes256GcmStreamKbkdfSha256Commit.id(),
        segment_exp,
        SOURCE_GIVEN_KEY,
    ]);
    header.extend_from_slice(&nonce);
    let derived = DerivedKey::derive(key, &fixed_info(&header))?;
    header.extend_from_slice(&derived.commitment);
    output.write_all(&header)?;
    Ok(Aes256GcmKey::new(&derived.key)?)
}

/// How to run a stream operation.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// log2 of the segment size, in [`SEGMENT_EXP_RANGE`] (encryption only).
    pub segment_exp: u8,
    /// The pool to run segments on; `None` runs them on the calling thread.
    pub pool: Option<&'a rayon::ThreadPool>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            segment_exp: DEFAULT_SEGMENT_EXP,
            pool: None,
        }
    }
}

/// The 96-bit GCM nonce of segment `i`: 88-bit big-endian counter ‖ flag.
fn segment_nonce(i: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&i.to_be_bytes());
    n[11] = last as u8;
    n
}

/// A reader that can tell whether it is at EOF without losing a byte.
struct PeekReader<R> {
    inner: R,
    carry: Option<u8>,
}

impl<R: Read> PeekReader<R> {
    /// Fills `buf` completely unless EOF comes first; returns the count.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        if let (Some(b), Some(first)) = (self.carry, buf.first_mut()) {
            *first = b;
            self.carry = None;
            n = 1;
        }
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn at_eof(&mut self) -> io::Result<bool> {
        if self.carry.is_some() {
            return Ok(false);
        }
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(true),
                Ok(_) => {
                    self.carry = Some(b[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A batch of segments in one buffer: segment `j` occupies
/// `buf[j*slot .. j*slot + lens[j]]` (plaintext on encrypt, ciphertext on
/// decrypt), with room for the tag.
struct Batch {
    buf: Vec<u8>,
    lens: Vec<usize>,
    first: u64,
    eof: bool,
}

fn fill_batch<R: Read>(
    r: &mut PeekReader<R>,
    b: &mut Batch,
    unit: usize,
    slot: usize,
) -> io::Result<()> {
    b.lens.clear();
    b.eof = false;
    for j in 0..batch_len(slot) {
        let n = r.fill(&mut b.buf[j * slot..j * slot + unit])?;
        if n == 0 {
            b.eof = true;
            break;
        }
        b.lens.push(n);
        if n < unit {
            b.eof = true;
            break;
        }
    }
    if !b.eof {
        b.eof = r.at_eof()?;
    }
    Ok(())
}

fn for_each_segment<F>(
    pool: Option<&rayon::ThreadPool>,
    b: &mut Batch,
    slot: usize,
    f: F,
) -> Result<(), StreamError>
where
    F: Fn(u64, bool, &mut [u8], usize) -> Result<(), StreamError> + Sync,
{
    let count = b.lens.len();
    let (first, eof, lens) = (b.first, b.eof, &b.lens);
    let run =
        |(j, chunk): (usize, &mut [u8])| f(first + j as u64, eof && j + 1 == count, chunk, lens[j]);
    let used = &mut b.buf[..count * slot];
    match pool {
        Some(p) if count > 1 => {
            p.install(|| used.par_chunks_mut(slot).enumerate().try_for_each(run))
        }
        _ => used.chunks_mut(slot).enumerate().try_for_each(run),
    }
}

/// Runs the fill → crypto → writer pipeline. `fill` (on its own thread)
/// loads the next batch and sets its segment lengths and `eof`; `process`
/// turns a filled batch into output in place and returns an error to stop
/// everything; `emit` (on the writer thread) writes a processed batch.
fn pipeline<F, W, P, E>(
    mut fill: F,
    output: &mut W,
    slot: usize,
    mut process: P,
    emit: E,
) -> Result<(), StreamError>
where
    F: FnMut(&mut Batch) -> io::Result<()> + Send,
    W: Write + Send,
    P: FnMut(&mut Batch) -> Result<(), StreamError>,
    E: Fn(&mut W, &Batch) -> io::Result<()> + Send,
{
    const BUFFERS: usize = 3;
    let (free_tx, free_rx) = mpsc::channel::<Batch>();
    for _ in 0..BUFFERS {
        free_tx
            .send(Batch {
                buf: vec![0u8; batch_len(slot) * slot],
                lens: Vec::with_capacity(batch_len(slot)),
                first: 0,
                eof: false,
            })
            .expect("receiver alive");
    }
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<Batch>>(1);
    let (done_tx, done_rx) = mpsc::sync_channel::<Batch>(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut next = 0u64;
            while let Ok(mut b) = free_rx.recv() {
                b.first = next;
                let res = fill(&mut b).map(|()| b);
                let stop = !matches!(&res, Ok(b) if !b.eof);
                if let Ok(b) = &res {
                    next += b.lens.len() as u64;
                }
                if full_tx.send(res).is_err() || stop {
                    break;
                }
            }
        });
        let writer = s.spawn(move || -> io::Result<()> {
            for b in done_rx {
                emit(output, &b)?;
                let _ = free_tx.send(b);
            }
            output.flush()
        });
        let crypto_side = (|| -> Result<(), StreamError> {
            for res in full_rx {
                let mut b = res?;
                let eof = b.eof;
                process(&mut b)?;
                if done_tx.send(b).is_err() {
                    break; // the writer failed; its error is reported below
                }
                if eof {
                    return Ok(());
                }
            }
            Ok(())
        })();
        drop(done_tx);
        let written = writer.join().expect("writer thread panicked");
        crypto_side?;
        written.map_err(StreamError::Io)
    })
}

/// Input that can be read at any offset from several threads at once
/// (a regular file, or bytes in memory). With it, [`encrypt_at`] reads each
/// segment on the worker that seals it, so reading scales with the cores.
pub trait ReadAt: Sync {
    /// Reads at `offset`, like `pread(2)`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

#[cfg(unix)]
impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = (offset as usize).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

fn read_exact_at(
    r: &(impl ReadAt + ?Sized),
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match r.read_at(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the input file shrank while phivault was reading it",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes the header and returns the file's AEAD key.
fn begin(
    keys: &dyn KeyDeriver,
    ring: &KeyRingName,
    nonce: [u8; NONCE_LEN],
    segment_exp: u8,
    output: &mut impl Write,
) -> Result<Aes256GcmKey, StreamError> {
    if !SEGMENT_EXP_RANGE.contains(&segment_exp) {
        return Err(StreamError::Malformed("segment size out of range"));
    }
    let version = keys.primary_version(ring)?;
    let name = ring.as_str().as_bytes();
    let mut header = Vec::with_capacity(8 + name.len() + 4 + NONCE_LEN + COMMIT_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&[
        VERSION,
        Algorithm::Aes256GcmStreamKbkdfSha256Commit.id(),
        segment_exp,
    ]);
    header.extend_from_slice(&[SOURCE_KEY_RING, name.len() as u8]);
    header.extend_from_slice(name);
    header.extend_from_slice(&version.get().to_be_bytes());
    header.extend_from_slice(&nonce);
    let derived = keys.derive(ring, version, KeyUse::Encrypt, &fixed_info(&header))?;
    header.extend_from_slice(&derived.commitment);
    output.write_all(&header)?;
    Ok(Aes256GcmKey::new(&derived.key)?)
}

fn seal_segment(
    aead: &Aes256GcmKey,
    i: u64,
    last: bool,
    chunk: &mut [u8],
    len: usize,
) -> Result<(), StreamError> {
    let tag = aead.seal_in_place(segment_nonce(i, last), &[], &mut chunk[..len])?;
    chunk[len..len + AEAD_TAG_LEN].copy_from_slice(&tag);
    Ok(())
}

fn emit_sealed(w: &mut impl Write, b: &Batch, slot: usize) -> io::Result<()> {
    let n = b.lens.len();
    w.write_all(&b.buf[..(n - 1) * slot + b.lens[n - 1] + AEAD_TAG_LEN])
}

/// Encrypts `len` bytes of a random-access input (a regular file). Same
/// output as [`encrypt`], but each worker reads the segments it seals, so
/// both reading and sealing run on every core. Fails if the input shrinks,
/// or has grown, by the end.
pub fn encrypt_at<R: ReadAt + ?Sized, W: Write + Send>(
    keys: &dyn KeyDeriver,
    ring: &KeyRingName,
    input: &R,
    len: u64,
    mut output: W,
    opts: Options<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    let nonce = crypto::random_array::<NONCE_LEN>()?;
    let aead = begin(keys, ring, nonce, opts.segment_exp, &mut output)?;
    let seg = 1u64 << opts.segment_exp;
    let slot = seg as usize + AEAD_TAG_LEN;
    let segments = len.div_ceil(seg).max(1);
    let mut total = 0u64;
    pipeline(
        |b: &mut Batch| {
            b.lens.clear();
            let end = (b.first + batch_len(slot) as u64).min(segments);
            for i in b.first..end {
                b.lens.push((len - i * seg).min(seg) as usize);
            }
            b.eof = end == segments;
            Ok(())
        },
        &mut output,
        slot,
        |b| {
            for_each_segment(opts.pool, b, slot, |i, last, chunk, l| {
                read_exact_at(input, &mut chunk[..l], i * seg)?;
                seal_segment(&aead, i, last, chunk, l)
            })?;
            total += b.lens.iter().map(|&l| l as u64).sum::<u64>();
            progress(total);
            Ok(())
        },
        |w, b| emit_sealed(w, b, slot),
    )?;
    if input.read_at(&mut [0u8; 1], len)? != 0 {
        return Err(StreamError::Io(io::Error::other(
            "the input file grew while it was being encrypted; encrypt a copy that does not change",
        )));
    }
    Ok(total)
}

/// Encrypts `input` to `output` under the primary version of `ring`.
/// Returns the plaintext length. `progress` is called with the running
/// plaintext byte count.
pub fn encrypt<R: Read + Send, W: Write + Send>(
    keys: &dyn KeyDeriver,
    ring: &KeyRingName,
    input: R,
    output: W,
    opts: Options<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    let nonce = crypto::random_array::<NONCE_LEN>()?;
    encrypt_inner(keys, ring, nonce, input, output, opts, progress)
}

/// [`encrypt`] with a caller-chosen nonce, for test vectors only (feature
/// `test-vectors`). The same nonce twice repeats a file key.
#[cfg(any(test, feature = "test-vectors"))]
#[doc(hidden)]
pub fn encrypt_with_nonce<R: Read + Send, W: Write + Send>(
    keys: &dyn KeyDeriver,
    ring: &KeyRingName,
    nonce: [u8; NONCE_LEN],
    input: R,
    output: W,
    opts: Options<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    encrypt_inner(keys, ring, nonce, input, output, opts, progress)
}

/// Deterministic core of [`encrypt`], for test vectors only. Never call it
/// with a nonce that is not fresh from the DRBG outside of tests.
fn encrypt_inner<R: Read + Send, W: Write + Send>(
    keys: &dyn KeyDeriver,
    ring: &KeyRingName,
    nonce: [u8; NONCE_LEN],
    input: R,
    mut output: W,
    opts: Options<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    let aead = begin(keys, ring, nonce, opts.segment_exp, &mut output)?;
    let seg = 1usize << opts.segment_exp;
    let slot = seg + AEAD_TAG_LEN;
    let mut total = 0u64;
    let mut reader = PeekReader {
        inner: input,
        carry: None,
    };
    pipeline(
        move |b: &mut Batch| fill_batch(&mut reader, b, seg, slot),
        &mut output,
        slot,
        |b| {
            if b.lens.is_empty() {
                // Only possible for an empty input: one empty, final segment.
                b.lens.push(0);
            }
            for_each_segment(opts.pool, b, slot, |i, last, chunk, len| {
                seal_segment(&aead, i, last, chunk, len)
            })?;
            total += b.lens.iter().map(|&l| l as u64).sum::<u64>();
            progress(total);
            Ok(())
        },
        |w, b| emit_sealed(w, b, slot),
    )?;
    Ok(total)
}

/// Output that can be written at any offset from several threads at once
/// (a regular file). With it, [`encrypt_file`] and [`decrypt_file`] write
/// each segment on the worker that produced it.
pub trait WriteAt: Sync {
    /// Writes all of `buf` at `offset`, like `pwrite(2)` in a loop.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
}

#[cfg(unix)]
impl WriteAt for std::fs::File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }
}

/// Runs `f` over the segments `0..segments` in batches of [`batch_len`], the
/// segments of a batch in parallel. `lens(i)` is segment `i`'s length in
/// the batch buffer.
fn positional_batches(
    pool: Option<&rayon::ThreadPool>,
    segments: u64,
    slot: usize,
    lens: impl Fn(u64) -> usize,
    f: impl Fn(u64, bool, &mut [u8], usize) -> Result<(), StreamError> + Sync,
    progress: &mut dyn FnMut(u64),
) -> Result<(), StreamError> {
    let mut b = Batch {
        buf: vec![0u8; batch_len(slot) * slot],
        lens: Vec::with_capacity(batch_len(slot)),
        first: 0,
        eof: false,
    };
    while b.first < segments {
        let end = (b.first + batch_len(slot) as u64).min(segments);
        b.lens.clear();
        b.lens.extend((b.first..end).map(&lens));
        b.eof = end == segments;
        for_each_segment(pool, &mut b, slot, &f)?;
        progress(end);
        b.first = end;
    }
    Ok(())
}

/// Encrypts a regular file into a regular file with positional reads and
/// writes: every worker reads, seals and writes its own segments, so the
/// I/O scales with the cores too. The output is the same format as
/// [`encrypt`]. Returns the plaintext length.
pub fn encrypt_file<R: ReadAt + ?Sized, W: WriteAt + ?Sized>(
    keys: &dyn KeyDeriver,
    ring: &KeyRingName,
    input: &R,
    len: u64,
    output: &W,
    opts: Options<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    let nonce = crypto::random_array::<NONCE_LEN>()?;
    let mut header = Vec::new();
    let aead = begin(keys, ring, nonce, opts.segment_exp, &mut header)?;
    output.write_all_at(&header, 0)?;
    let hl = header.len() as u64;
    let seg = 1u64 << opts.segment_exp;
    let slot = seg as usize + AEAD_TAG_LEN;
    let segments = len.div_ceil(seg).max(1);
    positional_batches(
        opts.pool,
        segments,
        slot,
        |i| (len - i * seg).min(seg) as usize,
        |i, last, chunk, l| {
            read_exact_at(input, &mut chunk[..l], i * seg)?;
            seal_segment(&aead, i, last, chunk, l)?;
            Ok(output.write_all_at(&chunk[..l + AEAD_TAG_LEN], hl + i * slot as u64)?)
        },
        &mut |done| progress((done * seg).min(len)),
    )?;
    if input.read_at(&mut [0u8; 1], len)? != 0 {
        return Err(StreamError::Io(io::Error::other(
            "the input file grew while it was being encrypted; encrypt a copy that does not change",
        )));
    }
    Ok(len)
}

/// Decrypts a stream file of length `len` into a regular file with
/// positional reads and writes on every core. Only authenticated plaintext
/// is ever written, but on failure the output may hold some of it with
/// holes, so the caller must write to a temporary file and discard it on
/// error (the CLI's `AtomicFile` does). Returns the plaintext length.
pub fn decrypt_file<R: ReadAt + ?Sized, W: WriteAt + ?Sized>(
    keys: &dyn KeyDeriver,
    input: &R,
    len: u64,
    output: &W,
    opts: Options<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    struct At<'a, R: ?Sized>(&'a R, u64);
    impl<R: ReadAt + ?Sized> Read for At<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read_at(buf, self.1)?;
            self.1 += n as u64;
            Ok(n)
        }
    }
    let h = read_header(&mut At(input, 0))?;
    let aead = open_header(keys, &h)?;
    let lay = layout(&h, len)?;
    let hl = h.len() as u64;
    let seg = h.segment_size() as u64;
    let slot = seg as usize + AEAD_TAG_LEN;
    let body = len - hl;
    positional_batches(
        opts.pool,
        lay.segments,
        slot,
        |i| (body - i * slot as u64).min(slot as u64) as usize,
        |i, last, chunk, l| {
            read_exact_at(input, &mut chunk[..l], hl + i * slot as u64)?;
            let n = open_segment(&aead, i, last, &mut chunk[..l])?;
            Ok(output.write_all_at(&chunk[..n], i * seg)?)
        },
        &mut |done| progress((done * seg).min(lay.plaintext_len)),
    )?;
    Ok(lay.plaintext_len)
}

/// Opens one segment in place and returns its plaintext length. A final
/// segment that fails but opens as non-final means the stream was cut at a
/// segment boundary, which is reported as [`StreamError::Truncated`].
fn open_segment(
    aead: &Aes256GcmKey,
    i: u64,
    last: bool,
    ct: &mut [u8],
) -> Result<usize, StreamError> {
    if ct.len() < AEAD_TAG_LEN {
        return Err(StreamError::Truncated);
    }
    let n = ct.len() - AEAD_TAG_LEN;
    if last && n == 0 && i != 0 {
        // Only an empty stream may end with an empty segment.
        return Err(StreamError::DecryptionFailed);
    }
    // GCM may clobber the buffer on failure, so keep the final segment's
    // ciphertext (one segment per stream) to diagnose truncation.
    let original = last.then(|| ct.to_vec());
    let (body, tag) = ct.split_at_mut(n);
    if aead
        .open_in_place(segment_nonce(i, last), &[], tag, body)
        .is_ok()
    {
        return Ok(n);
    }
    if let Some(orig) = original {
        let mut body = orig[..n].to_vec();
        if aead
            .open_in_place(segment_nonce(i, false), &[], &orig[n..], &mut body)
            .is_ok()
        {
            return Err(StreamError::Truncated);
        }
    }
    Err(StreamError::DecryptionFailed)
}

fn open_header(keys: &dyn KeyDeriver, h: &Header) -> Result<Aes256GcmKey, StreamError> {
    let derived = keys.derive(&h.ring, h.version, KeyUse::Decrypt, &h.fixed_info())?;
    if !crypto::constant_time_eq(&derived.commitment, &h.commitment) {
        return Err(StreamError::DecryptionFailed);
    }
    Ok(Aes256GcmKey::new(&derived.key)?)
}

/// Decrypts a stream. Plaintext reaches `output` only in batches whose
/// every segment has authenticated; on any error, what was written so far
/// is an authenticated prefix, and the caller must discard it (the CLI
/// writes to a temporary file and renames only on success).
pub fn decrypt<R: Read + Send, W: Write + Send>(
    keys: &dyn KeyDeriver,
    mut input: R,
    mut output: W,
    opts: Options<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    let h = read_header(&mut input)?;
    let aead = open_header(keys, &h)?;
    let seg = h.segment_size();
    let slot = seg + AEAD_TAG_LEN;
    let mut total = 0u64;
    let mut reader = PeekReader {
        inner: input,
        carry: None,
    };
    pipeline(
        move |b: &mut Batch| fill_batch(&mut reader, b, slot, slot),
        &mut output,
        slot,
        |b| {
            if b.lens.is_empty() {
                return Err(StreamError::Truncated);
            }
            for_each_segment(opts.pool, b, slot, |i, last, chunk, len| {
                open_segment(&aead, i, last, &mut chunk[..len]).map(|_| ())
            })?;
            for l in b.lens.iter_mut() {
                *l -= AEAD_TAG_LEN;
            }
            total += b.lens.iter().map(|&l| l as u64).sum::<u64>();
            progress(total);
            Ok(())
        },
        |w, b| {
            for (j, &len) in b.lens.iter().enumerate() {
                w.write_all(&b.buf[j * slot..j * slot + len])?;
            }
            Ok(())
        },
    )?;
    Ok(total)
}

/// The geometry of a complete stream, computed from its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Number of segments.
    pub segments: u64,
    /// Plaintext length.
    pub plaintext_len: u64,
}

/// Computes segment count and plaintext length from the header and the
/// total ciphertext length, without decrypting.
pub fn layout(h: &Header, total_len: u64) -> Result<Layout, StreamError> {
    let body = total_len
        .checked_sub(h.len() as u64)
        .ok_or(StreamError::Truncated)?;
    body_layout(h.segment_exp, body)
}

/// [`layout`] from the segment size exponent and the length of the
/// segments (everything after the header).
pub(crate) fn body_layout(segment_exp: u8, body: u64) -> Result<Layout, StreamError> {
    let slot = (1u64 << segment_exp) + AEAD_TAG_LEN as u64;
    if body == 0 {
        return Err(StreamError::Truncated);
    }
    let segments = body.div_ceil(slot);
    let last = body - (segments - 1) * slot;
    if last < AEAD_TAG_LEN as u64 {
        return Err(StreamError::Truncated);
    }
    if last == AEAD_TAG_LEN as u64 && segments > 1 {
        // An empty final segment after others is never written: treat it
        // like any other invalid segment (the streaming reader agrees).
        return Err(StreamError::DecryptionFailed);
    }
    Ok(Layout {
        segments,
        plaintext_len: body - segments * AEAD_TAG_LEN as u64,
    })
}

/// Decrypts only plaintext bytes `offset .. offset+len` (clamped to the
/// plaintext), reading just the segments that hold them. Each segment read
/// is authenticated; truncation is detected when the range reaches the end.
pub fn decrypt_range<R: Read + Seek, W: Write>(
    keys: &dyn KeyDeriver,
    mut input: R,
    offset: u64,
    len: u64,
    mut output: W,
) -> Result<u64, StreamError> {
    // The stream starts at offset 0 of the input (the layout is computed
    // from its total length), wherever the caller's cursor is.
    input.seek(SeekFrom::Start(0))?;
    let h = read_header(&mut input)?;
    let aead = open_header(keys, &h)?;
    let total_len = input.seek(SeekFrom::End(0))?;
    let lay = layout(&h, total_len)?;
    let end = offset.saturating_add(len).min(lay.plaintext_len);
    if offset >= end {
        return Ok(0);
    }
    let seg = h.segment_size() as u64;
    let slot = seg + AEAD_TAG_LEN as u64;
    let mut buf = vec![0u8; slot as usize];
    let mut written = 0u64;
    for i in offset / seg..=(end - 1) / seg {
        let last = i + 1 == lay.segments;
        let ct_len = if last {
            total_len - h.len() as u64 - i * slot
        } else {
            slot
        } as usize;
        input.seek(SeekFrom::Start(h.len() as u64 + i * slot))?;
        read_exact_or(&mut input, &mut buf[..ct_len], "segment truncated")?;
        let n = open_segment(&aead, i, last, &mut buf[..ct_len])? as u64;
        let seg_start = i * seg;
        let from = offset.max(seg_start) - seg_start;
        let to = end.min(seg_start + n) - seg_start;
        output.write_all(&buf[from as usize..to as usize])?;
        written += to - from;
    }
    output.flush()?;
    Ok(written)
}

/// Push-style encryption with a given key (key source 0x02): bytes are
/// written in, and sealed segments come out a batch at a time. A segment is
/// sealed only once it is known whether it is the last, so a full batch
/// waits for the next byte (or for [`Sealer::finish`]).
pub(crate) struct Sealer<'a> {
    aead: Aes256GcmKey,
    pool: Option<&'a rayon::ThreadPool>,
    seg: usize,
    slot: usize,
    batch: Batch,
    /// Plaintext bytes in the batch; segment `j` is at `buf[j*slot ..]`.
    filled: usize,
}

impl<'a> Sealer<'a> {
    /// Writes the header (key source 0x02) for `key` and `nonce`. `key`
    /// must be used for this one stream (the nonce then need not be fresh,
    /// but callers draw it from the DRBG all the same).
    pub(crate) fn new(
        key: &SecretKey,
        nonce: [u8; NONCE_LEN],
        opts: Options<'a>,
        output: &mut impl Write,
    ) -> Result<Self, StreamError> {
        let aead = write_keyed_header(key, nonce, opts.segment_exp, output)?;
        let seg = 1usize << opts.segment_exp;
        let slot = seg + AEAD_TAG_LEN;
        Ok(Self {
            aead,
            pool: opts.pool,
            seg,
            slot,
            batch: Batch {
                buf: vec![0u8; batch_len(slot) * slot],
                lens: Vec::with_capacity(batch_len(slot)),
                first: 0,
                eof: false,
            },
            filled: 0,
        })
    }

    /// Takes `data`; writes out every batch that fills up and is followed
    /// by more data.
    pub(crate) fn write(
        &mut self,
        mut data: &[u8],
        output: &mut impl Write,
    ) -> Result<(), StreamError> {
        let capacity = batch_len(self.slot) * self.seg;
        while !data.is_empty() {
            if self.filled == capacity {
                self.seal_batch(false, output)?;
            }
            let (j, off) = (self.filled / self.seg, self.filled % self.seg);
            let n = (self.seg - off).min(data.len()).min(capacity - self.filled);
            let at = j * self.slot + off;
            self.batch.buf[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
        }
        Ok(())
    }

    /// Seals what is left with the last segment marked final. An empty
    /// stream is one empty final segment.
    pub(crate) fn finish(mut self, output: &mut impl Write) -> Result<(), StreamError> {
        self.seal_batch(true, output)
    }

    fn seal_batch(&mut self, last: bool, output: &mut impl Write) -> Result<(), StreamError> {
        let b = &mut self.batch;
        b.lens.clear();
        let mut left = self.filled;
        loop {
            let n = left.min(self.seg);
            b.lens.push(n);
            left -= n;
            if left == 0 {
                break;
            }
        }
        b.eof = last;
        let aead = &self.aead;
        for_each_segment(self.pool, b, self.slot, |i, last, chunk, len| {
            seal_segment(aead, i, last, chunk, len)
        })?;
        emit_sealed(output, b, self.slot)?;
        b.first += b.lens.len() as u64;
        self.filled = 0;
        Ok(())
    }
}

/// Pull-style decryption of a stream whose header was already read and
/// opened: [`Opener::load`] reads and authenticates a batch of segments,
/// then [`Opener::take`] hands out its plaintext. Nothing of a batch is
/// available before every segment in it has authenticated, and the final
/// batch is the one that ends at the end of the input.
pub(crate) struct Opener<'a, R> {
    aead: Aes256GcmKey,
    reader: PeekReader<R>,
    pool: Option<&'a rayon::ThreadPool>,
    slot: usize,
    batch: Batch,
    /// Position in the batch: segment `seg`, byte `off`.
    seg: usize,
    off: usize,
    started: bool,
}

impl<'a, R: Read> Opener<'a, R> {
    /// Opens the segments that follow in `input` with `aead` (from
    /// [`KeyedHeader::open`]).
    pub(crate) fn new(
        aead: Aes256GcmKey,
        segment_exp: u8,
        input: R,
        pool: Option<&'a rayon::ThreadPool>,
    ) -> Self {
        let slot = (1usize << segment_exp) + AEAD_TAG_LEN;
        Self {
            aead,
            reader: PeekReader {
                inner: input,
                carry: None,
            },
            pool,
            slot,
            batch: Batch {
                buf: vec![0u8; batch_len(slot) * slot],
                lens: Vec::new(),
                first: 0,
                eof: false,
            },
            seg: 0,
            off: 0,
            started: false,
        }
    }

    /// Makes plaintext available: returns `Ok(true)` when some is, and
    /// `Ok(false)` once the final segment has been handed out.
    pub(crate) fn load(&mut self) -> Result<bool, StreamError> {
        while self.seg < self.batch.lens.len() && self.off == self.batch.lens[self.seg] {
            self.seg += 1;
            self.off = 0;
        }
        if self.seg < self.batch.lens.len() {
            return Ok(true);
        }
        if self.batch.eof {
            return Ok(false);
        }
        let b = &mut self.batch;
        b.first += b.lens.len() as u64;
        (self.seg, self.off) = (0, 0);
        fill_batch(&mut self.reader, b, self.slot, self.slot)?;
        if b.lens.is_empty() {
            // Only possible for the first batch: there is no segment at all
            // (`fill_batch` looks ahead one byte before a full batch ends).
            return Err(StreamError::Truncated);
        }
        let aead = &self.aead;
        let opened = for_each_segment(self.pool, b, self.slot, |i, last, chunk, len| {
            open_segment(aead, i, last, &mut chunk[..len]).map(|_| ())
        });
        if let Err(e) = opened {
            b.lens.clear();
            b.eof = true;
            return Err(e);
        }
        for l in b.lens.iter_mut() {
            *l -= AEAD_TAG_LEN;
        }
        self.started = true;
        // An empty stream's one segment has no plaintext: go round again.
        self.load()
    }

    /// Whether the loaded batch is the final one (the input has ended).
    pub(crate) fn at_final_batch(&self) -> bool {
        self.started && self.batch.eof
    }

    /// Copies available plaintext into `out`; call [`Opener::load`] first.
    pub(crate) fn take(&mut self, out: &mut [u8]) -> usize {
        let Some(&len) = self.batch.lens.get(self.seg) else {
            return 0;
        };
        let n = (len - self.off).min(out.len());
        let at = self.seg * self.slot + self.off;
        out[..n].copy_from_slice(&self.batch.buf[at..at + n]);
        self.off += n;
        n
    }

    /// The input (positioned after everything read so far).
    pub(crate) fn input_mut(&mut self) -> &mut R {
        &mut self.reader.inner
    }
}

#[cfg(test)]
mod tests;
