//! The segment file format (docs/FORMAT.md §12): a header, then frames.
//!
//! ```text
//! header  = "PVAUDIT1" | first_seq u64 BE | n u8 | n × 32-byte hashes
//! frame   = len u32 BE | crc32 u32 BE | body            (len = |body|)
//! body    = seq u64 BE | event JSON                     (the Merkle leaf)
//! ```
//!
//! The header's hashes are the Merkle frontier of the tree before
//! `first_seq`, so a writer resumes the tree from the newest segment
//! alone. The CRC only finds torn writes; tamper evidence comes from the
//! Merkle tree and the signed checkpoints, which cover the bodies.

use crate::LogError;
use phivault_core::audit::merkle::Hash;

/// Segment magic and version.
pub const MAGIC: &[u8; 8] = b"PVAUDIT1";
/// Largest event body (seq and JSON), bytes: a bulk request of 10 000
/// records names 20 000 id hashes (about 1.4 MB).
pub const MAX_BODY: usize = 4 << 20;
/// Bytes before a body: length and CRC.
pub const FRAME_OVERHEAD: usize = 8;
/// The largest segment header: magic, first seq, count, 64 frontier hashes.
pub const MAX_HEADER: usize = 17 + 32 * 64;

/// A parsed segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The seq of the segment's first entry.
    pub first_seq: u64,
    /// The Merkle frontier of the first `first_seq` leaves.
    pub frontier: Vec<Hash>,
    /// Header length in bytes.
    pub len: usize,
}

/// Encodes a header.
pub fn encode_header(first_seq: u64, frontier: &[Hash]) -> Vec<u8> {
    let mut v = Vec::with_capacity(17 + 32 * frontier.len());
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&first_seq.to_be_bytes());
    v.push(u8::try_from(frontier.len()).expect("a frontier has at most 64 hashes"));
    for h in frontier {
        v.extend_from_slice(h);
    }
    v
}

/// Parses a header.
pub fn parse_header(b: &[u8]) -> Result<Header, LogError> {
    let bad = |why: &'static str| LogError::Format(why.into());
    if b.len() < 17 || &b[..8] != MAGIC {
        return Err(bad("not a phivault audit segment (bad magic)"));
    }
    let first_seq = u64::from_be_bytes(b[8..16].try_into().expect("8 bytes"));
    let n = b[16] as usize;
    if n > 64 {
        return Err(bad("segment header: frontier longer than 64 hashes"));
    }
    let len = 17 + 32 * n;
    if b.len() < len {
        return Err(bad("segment header truncated"));
    }
    let frontier = b[17..len]
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect();
    Ok(Header {
        first_seq,
        frontier,
        len,
    })
}

/// Appends a frame for `seq` and `json` to `out`; returns the body's range.
pub fn encode_frame(seq: u64, json: &[u8], out: &mut Vec<u8>) -> std::ops::Range<usize> {
    let body_len = 8 + json.len();
    out.reserve(FRAME_OVERHEAD + body_len);
    let len_at = out.len();
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    let start = out.len();
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(json);
    let crc = crc32fast::hash(&out[start..]);
    out[len_at + 4..start].copy_from_slice(&crc.to_be_bytes());
    start..out.len()
}

/// One frame read from a segment.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Offset of the frame in the file.
    pub offset: usize,
    /// The seq the body carries.
    pub seq: u64,
    /// The body: seq and JSON (the Merkle leaf's data).
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The event JSON.
    pub fn json(&self) -> &'a [u8] {
        &self.body[8..]
    }
}

/// Why reading a segment stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    /// Offset of the first byte that is not a whole, valid frame.
    pub offset: usize,
    /// Bytes from there to the end of the file.
    pub bytes: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

/// The frames of a segment's bytes after its header.
pub struct Frames<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Set when iteration stopped at bytes that are not a valid frame.
    pub torn: Option<Torn>,
}

impl<'a> Frames<'a> {
    /// Frames of `buf` (a whole segment file) from `start` (its header length).
    pub fn new(buf: &'a [u8], start: usize) -> Self {
        Self {
            buf,
            pos: start,
            torn: None,
        }
    }

    /// Offset just after the last whole frame returned.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        if self.torn.is_some() || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let stop = |reason| Torn {
            offset: self.pos,
            bytes: rest.len(),
            reason,
        };
        if rest.len() < FRAME_OVERHEAD {
            self.torn = Some(stop("partial frame header"));
            return None;
        }
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4")) as usize;
        let crc = u32::from_be_bytes(rest[4..8].try_into().expect("4"));
        if !(9..=MAX_BODY).contains(&len) {
            self.torn = Some(stop("frame length out of range"));
            return None;
        }
        if rest.len() < FRAME_OVERHEAD + len {
            self.torn = Some(stop("partial frame body"));
            return None;
        }
        let body = &rest[FRAME_OVERHEAD..FRAME_OVERHEAD + len];
        if crc32fast::hash(body) != crc {
            self.torn = Some(stop("frame checksum mismatch"));
            return None;
        }
        let f = Frame {
            offset: self.pos,
            seq: u64::from_be_bytes(body[..8].try_into().expect("8")),
            body,
        };
        self.pos += FRAME_OVERHEAD + len;
        Some(f)
    }
}

/// The file name of the segment starting at `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The first seq in a segment file name.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip_and_torn_tails_are_found() {
        let mut b = encode_header(5, &[[1; 32], [2; 32]]);
        let h = parse_header(&b).unwrap();
        assert_eq!((h.first_seq, h.frontier.len(), h.len), (5, 2, 81));
        for i in 0..3u64 {
            encode_frame(5 + i, format!("{{\"n\":{i}}}").as_bytes(), &mut b);
        }
        let whole = b.len();
        let mut f = Frames::new(&b, h.len);
        let seqs: Vec<u64> = f.by_ref().map(|f| f.seq).collect();
        assert_eq!(seqs, [5, 6, 7]);
        assert!(f.torn.is_none());
        // Every cut inside the last frame is a torn tail at its start.
        let last = Frames::new(&b, h.len).last().unwrap().offset;
        for cut in last + 1..whole {
            let mut f = Frames::new(&b[..cut], h.len);
            assert_eq!(f.by_ref().count(), 2);
            assert_eq!(f.torn.as_ref().unwrap().offset, last);
        }
        // A flipped bit in a body is a checksum mismatch.
        let mut c = b.clone();
        c[whole - 2] ^= 1;
        let mut f = Frames::new(&c, h.len);
        assert_eq!(f.by_ref().count(), 2);
        assert_eq!(f.torn.unwrap().reason, "frame checksum mismatch");
    }

    #[test]
    fn names() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_file_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("0000000000000000004x.seg"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(h) = parse_header(&b) {
                let _ = Frames::new(&b, h.len).count();
            }
            let _ = Frames::new(&b, 0).count();
        }
    }
}
