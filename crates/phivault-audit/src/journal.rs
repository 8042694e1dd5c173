//! The group-commit journal (docs/FORMAT.md §12.4): where a batch is made
//! durable.
//!
//! Appending to the segment and `fdatasync`ing it costs, on ext4, a
//! journal commit for the new file size at every group commit: three
//! writes and a flush, the `jbd2` thread woken, 0.21–0.28 ms and about
//! 120 µs of CPU here (`scripts/fsync-cost.py`). So a batch is written
//! twice instead: into the segment through the page cache (not synced:
//! readers see it at once), and into this file, whose blocks are written
//! once when it is made and then only overwritten, with `O_DIRECT |
//! O_DSYNC` — one data write and one flush, no metadata, about 0.1 ms and
//! 35 µs of CPU. When the journal is full (and when a segment is sealed)
//! the segment is synced and the journal starts again at offset 0.
//!
//! ```text
//! journal = batch* (stale bytes after the chain)
//! batch   = "PVJ2" | trail id (16) | first_seq u64 BE | n u32 BE | len u32 BE
//!           | crc32 u32 BE | frames (len bytes, encoded as in segments)
//!           | zeros to 4 KiB
//!         | "PVJB" | first_seq u64 BE | n u32 BE | len u32 BE | crc32 u32 BE
//!           | frames | zeros to 4 KiB     (read only: written before 2026-12-06)
//! crc32   = CRC-32 of the header bytes before it and the frames
//! ```
//!
//! At open, the chain is read from offset 0 while each batch is whole,
//! belongs to this trail (its trail id is `audit/trail-id`'s) and follows
//! the previous one (`first_seq` = its `first_seq + n`); its entries past
//! the end of the newest segment (a power loss took the segment's unsynced
//! pages) are appended to the segment again. Batches from before a restart
//! have lower seqs and add nothing; a batch of another trail (a journal
//! copied from elsewhere) ends the chain and is reported, never replayed.

use crate::segment::{self, Frames};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The journal's file name in the audit folder. It is node-local scratch:
/// backups and the PostgreSQL mirror skip it (the segments hold
/// everything it does once they are synced).
pub const FILE: &str = "journal";
/// Magic of a batch (written): its header names the trail.
pub const MAGIC: &[u8; 4] = b"PVJ2";
/// Bytes of a batch header.
pub const HEADER: usize = 40;
/// Magic of a batch written before batches named their trail (read only).
pub const MAGIC_V1: &[u8; 4] = b"PVJB";
/// Bytes of a `PVJB` batch header.
pub const HEADER_V1: usize = 24;

/// A trail's id (`audit/trail-id`, 128 bits) as a batch header holds it.
pub type TrailId = [u8; 16];

/// The trail id in `dir/trail-id`, without making one: `None` when the
/// file is missing or is not 32 hex digits (then only `PVJB` batches,
/// which name no trail, can be read).
pub fn read_trail_id(dir: &Path) -> Option<TrailId> {
    parse_trail_id(&std::fs::read_to_string(dir.join("trail-id")).ok()?)
}

/// A trail id's 32 hex digits (surrounding whitespace ignored) as bytes.
pub fn parse_trail_id(s: &str) -> Option<TrailId> {
    hex::decode(s.trim()).ok()?.try_into().ok()
}
/// Alignment and size granularity of writes (`O_DIRECT`).
pub const BLOCK: usize = 4096;

/// One batch found in a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<'a> {
    /// Offset of the batch in the journal.
    pub offset: usize,
    /// Seq of its first entry.
    pub first_seq: u64,
    /// Entries in it.
    pub n: u32,
    /// Its frames.
    pub frames: &'a [u8],
}

fn round_up(n: usize) -> usize {
    n.div_ceil(BLOCK) * BLOCK
}

/// The chain of batches from the journal's start: each whole (magic,
/// length, CRC, its frames valid and numbered `first_seq..first_seq+n`),
/// of trail `trail` (a `PVJB` batch names none and is taken as this
/// trail's) and following the one before it. Stops at the first that
/// isn't.
pub fn chain<'a>(b: &'a [u8], trail: Option<&TrailId>) -> Vec<Batch<'a>> {
    Chain::read(b, trail).batches
}

/// A journal's chain, and whether it ended at a whole batch of another
/// trail.
struct Chain<'a> {
    batches: Vec<Batch<'a>>,
    foreign: bool,
}

impl<'a> Chain<'a> {
    fn read(b: &'a [u8], trail: Option<&TrailId>) -> Self {
        let mut out = Self {
            batches: Vec::new(),
            foreign: false,
        };
        let mut pos = 0usize;
        while let Some(p) = out.next_at(b, pos, trail) {
            pos += round_up(p.header + p.batch.frames.len());
            out.batches.push(p.batch);
        }
        out
    }

    /// The batch at `pos` if it is whole, this trail's and follows the
    /// chain so far; marks `foreign` when it is whole but another trail's.
    fn next_at(&mut self, b: &'a [u8], pos: usize, trail: Option<&TrailId>) -> Option<Parsed<'a>> {
        let magic = b.get(pos..pos + 4)?;
        let (header, named) = match magic {
            m if m == MAGIC => (HEADER, true),
            m if m == MAGIC_V1 => (HEADER_V1, false),
            _ => return None,
        };
        let h = b.get(pos..pos + header)?;
        let (fields, ours) = if named {
            let id: &TrailId = h[4..20].try_into().expect("16");
            (&h[20..], trail == Some(id))
        } else {
            (&h[4..], true)
        };
        let first_seq = u64::from_be_bytes(fields[..8].try_into().expect("8"));
        let n = u32::from_be_bytes(fields[8..12].try_into().expect("4"));
        let len = u32::from_be_bytes(fields[12..16].try_into().expect("4")) as usize;
        let crc = u32::from_be_bytes(fields[16..20].try_into().expect("4"));
        let frames = b.get(pos + header..(pos + header).checked_add(len)?)?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&h[..header - 4]);
        hasher.update(frames);
        if hasher.finalize() != crc {
            return None;
        }
        let follows = self
            .batches
            .last()
            .is_none_or(|p| p.first_seq.checked_add(u64::from(p.n)) == Some(first_seq));
        if !follows {
            return None;
        }
        if !ours {
            // Where the chain would go on: stale batches of another trail
            // further in (a copied journal this trail has since partly
            // overwritten) are not reported again at every start.
            self.foreign = true;
            return None;
        }
        let mut fr = Frames::new(frames, 0);
        let mut count = 0u64;
        let in_order = fr.by_ref().all(|f| {
            let ok = Some(f.seq) == first_seq.checked_add(count);
            count += 1;
            ok
        });
        let whole =
            in_order && fr.torn.is_none() && fr.position() == frames.len() && count == u64::from(n);
        whole.then_some(Parsed {
            batch: Batch {
                offset: pos,
                first_seq,
                n,
                frames,
            },
            header,
        })
    }
}

/// A batch read by [`Chain::next_at`] and the size of its header.
struct Parsed<'a> {
    batch: Batch<'a>,
    header: usize,
}

/// The journal file, pre-written and overwritten in place.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// The trail every batch is written for.
    trail: TrailId,
    /// Next write offset (block aligned).
    pos: u64,
    size: u64,
    /// Staging, grown to the largest batch plus one block: O_DIRECT needs
    /// aligned memory, and `align_offset` finds a block-aligned window in
    /// it without `unsafe`.
    mem: Vec<u8>,
    direct: bool,
}

impl Journal {
    /// Opens the journal at `path` for trail `trail`, making it `size`
    /// bytes of written zeros first if it is missing or shorter. Writes
    /// start at offset 0.
    pub fn open(path: &Path, size: u64, trail: TrailId) -> io::Result<Self> {
        let size = (size as usize).max(BLOCK).next_multiple_of(BLOCK) as u64;
        let have = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if have < size {
            // Real zero blocks, not `fallocate`'s unwritten extents: an
            // overwrite of those would still need a metadata commit.
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)?;
            let zeros = vec![0u8; 1 << 20];
            let mut at = have;
            while at < size {
                let n = (size - at).min(zeros.len() as u64) as usize;
                f.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            f.sync_all()?;
            if let Some(d) = path.parent() {
                phivault_keystore::atomic::sync_dir(d)?;
            }
        }
        let dsync = rustix::fs::OFlags::DSYNC.bits() as i32;
        let direct = rustix::fs::OFlags::DIRECT.bits() as i32;
        let (file, direct) = match OpenOptions::new()
            .write(true)
            .custom_flags(dsync | direct)
            .open(path)
        {
            Ok(f) => (f, true),
            // A file system without O_DIRECT: O_DSYNC alone still writes
            // each batch durably before the call returns.
            Err(_) => (
                OpenOptions::new()
                    .write(true)
                    .custom_flags(dsync)
                    .open(path)?,
                false,
            ),
        };
        Ok(Self {
            file,
            path: path.to_owned(),
            trail,
            pos: 0,
            size,
            mem: Vec::new(),
            direct,
        })
    }

    /// Whether `frames` fit in the journal at all.
    pub fn fits(&self, frames: usize) -> bool {
        (round_up(HEADER + frames) as u64) <= self.size
    }

    /// Whether `frames` fit after what the journal holds since its start.
    pub fn has_room(&self, frames: usize) -> bool {
        self.pos + round_up(HEADER + frames) as u64 <= self.size
    }

    /// Starts again at offset 0: call only once the segment holding every
    /// entry written so far is synced.
    pub fn restart(&mut self) {
        self.pos = 0;
    }

    /// Writes one batch durably. The caller checked `has_room`.
    pub fn write(&mut self, first_seq: u64, n: u32, frames: &[u8]) -> io::Result<()> {
        let total = round_up(HEADER + frames.len());
        let len = u32::try_from(frames.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "batch too large"))?;
        if self.mem.len() < total + BLOCK {
            self.mem = vec![0u8; total + BLOCK];
        }
        let at = self.mem.as_ptr().align_offset(BLOCK).min(BLOCK);
        let w = &mut self.mem[at..at + total];
        w[..4].copy_from_slice(MAGIC);
        w[4..20].copy_from_slice(&self.trail);
        w[20..28].copy_from_slice(&first_seq.to_be_bytes());
        w[28..32].copy_from_slice(&n.to_be_bytes());
        w[32..36].copy_from_slice(&len.to_be_bytes());
        w[HEADER..HEADER + frames.len()].copy_from_slice(frames);
        w[HEADER + frames.len()..].fill(0);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&w[..HEADER - 4]);
        hasher.update(frames);
        w[HEADER - 4..HEADER].copy_from_slice(&hasher.finalize().to_be_bytes());
        match self.file.write_all_at(w, self.pos) {
            Err(e)
                if self.direct
                    && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
            {
                // O_DIRECT refused at write time (some file systems accept
                // the flag at open): carry on without it.
                self.direct = false;
                let dsync = rustix::fs::OFlags::DSYNC.bits() as i32;
                self.file = OpenOptions::new()
                    .write(true)
                    .custom_flags(dsync)
                    .open(&self.path)?;
                self.file.write_all_at(w, self.pos)?;
            }
            r => r?,
        }
        self.pos += total as u64;
        Ok(())
    }
}

/// What the journal holds past a segment's end.
#[derive(Debug, Default)]
pub struct Tail {
    /// The frames after `next`, contiguous from it.
    pub frames: Vec<u8>,
    /// How many.
    pub count: u64,
    /// The seq of the first entry the journal holds past a gap, when its
    /// chain skips entries after `next` (only a disk that lost synced
    /// writes, or a journal of the same size from another trail, does
    /// that): nothing from there on can be joined to the segment.
    pub gap: Option<u64>,
    /// The chain ended at a whole batch another trail wrote (a journal
    /// copied from another node or folder): nothing of it was taken.
    pub foreign: bool,
}

/// The frames of the journal at `path` that come after `next` (the seq
/// after the newest segment's last entry), contiguous from `next`; empty
/// when the journal has none (or is missing). Only batches of trail
/// `trail` (and `PVJB` batches, which name none) count.
pub fn frames_after(path: &Path, next: u64, trail: Option<&TrailId>) -> io::Result<Tail> {
    let b = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Tail::default()),
        Err(e) => return Err(e),
    };
    let c = Chain::read(&b, trail);
    let mut t = Tail {
        foreign: c.foreign,
        ..Tail::default()
    };
    let mut want = next;
    for batch in c.batches {
        for f in Frames::new(batch.frames, 0) {
            if f.seq < want {
                continue;
            }
            if f.seq != want {
                t.gap = Some(f.seq);
                t.count = want - next;
                return Ok(t);
            }
            let end = f.offset + segment::FRAME_OVERHEAD + f.body.len();
            t.frames.extend_from_slice(&batch.frames[f.offset..end]);
            want += 1;
        }
    }
    t.count = want - next;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The trail the tests' journals are written for.
    const T: TrailId = [7; 16];

    fn frames(first: u64, n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for s in first..first + n {
            segment::encode_frame(s, format!("{{\"n\":{s}}}").as_bytes(), &mut v);
        }
        v
    }

    #[test]
    fn batches_chain_and_replay_from_the_segment_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE);
        let mut j = Journal::open(&p, 64 << 10, T).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 64 << 10);
        j.write(10, 3, &frames(10, 3)).unwrap();
        j.write(13, 2, &frames(13, 2)).unwrap();
        let b = std::fs::read(&p).unwrap();
        let c = chain(&b, Some(&T));
        assert_eq!(
            c.iter()
                .map(|b| (b.offset, b.first_seq, b.n))
                .collect::<Vec<_>>(),
            [(0, 10, 3), (4096, 13, 2)]
        );
        // The segment ends at 12: entries 12, 13, 14 come back, in order.
        let t = frames_after(&p, 12, Some(&T)).unwrap();
        assert_eq!((t.count, t.gap), (3, None));
        let seqs: Vec<u64> = Frames::new(&t.frames, 0).map(|f| f.seq).collect();
        assert_eq!(seqs, [12, 13, 14]);
        // A segment already past the journal: nothing.
        assert_eq!(frames_after(&p, 15, Some(&T)).unwrap().count, 0);
        // A segment that ends before the journal starts: a gap, nothing.
        let t = frames_after(&p, 5, Some(&T)).unwrap();
        assert_eq!((t.count, t.gap), (0, Some(10)));
        // After a restart the new chain replaces the old from offset 0;
        // the stale second batch (13..15) does not follow 20..22.
        j.restart();
        j.write(20, 2, &frames(20, 2)).unwrap();
        let b = std::fs::read(&p).unwrap();
        assert_eq!(chain(&b, Some(&T)).len(), 1);
        assert_eq!(frames_after(&p, 20, Some(&T)).unwrap().count, 2);
        // A missing journal holds nothing.
        assert_eq!(
            frames_after(&d.path().join("nope"), 0, Some(&T))
                .unwrap()
                .count,
            0
        );
    }

    #[test]
    fn a_write_that_o_direct_refuses_is_made_without_it() {
        // The kernel refuses an O_DIRECT write at an offset that is not
        // block aligned with EINVAL, as some file systems refuse every
        // O_DIRECT write though they accepted the flag at open. The
        // journal never writes there itself; here it is put there to get
        // that real refusal.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE);
        let mut j = Journal::open(&p, 64 << 10, T).unwrap();
        assert!(j.direct, "O_DIRECT is available on this file system");
        j.pos = 100;
        j.write(7, 2, &frames(7, 2)).unwrap();
        assert!(!j.direct, "the write fell back to O_DSYNC alone");
        let b = std::fs::read(&p).unwrap();
        assert_eq!(&b[100..104], MAGIC);
        // Later writes go through the reopened file.
        j.pos = 8192;
        j.write(9, 1, &frames(9, 1)).unwrap();
        let b = std::fs::read(&p).unwrap();
        assert_eq!(
            chain(&b[8192..], Some(&T))
                .first()
                .map(|b| (b.first_seq, b.n)),
            Some((9, 1))
        );
    }

    #[test]
    fn a_damaged_batch_ends_the_chain() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE);
        let mut j = Journal::open(&p, 64 << 10, T).unwrap();
        j.write(0, 2, &frames(0, 2)).unwrap();
        j.write(2, 2, &frames(2, 2)).unwrap();
        let good = std::fs::read(&p).unwrap();
        // Every single-byte change inside the second batch's header or
        // frames cuts the chain to the first batch.
        let second = chain(&good, Some(&T))[1].clone();
        for i in second.offset..second.offset + HEADER + second.frames.len() {
            let mut b = good.clone();
            b[i] ^= 0x40;
            assert_eq!(chain(&b, Some(&T)).len(), 1, "byte {i}");
        }
        // A batch whose count disagrees with its frames is not whole.
        let mut b = good.clone();
        b[28..32].copy_from_slice(&3u32.to_be_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..36]);
        h.update(chain(&good, Some(&T))[0].frames);
        b[36..40].copy_from_slice(&h.finalize().to_be_bytes());
        assert!(chain(&b, Some(&T)).is_empty());
    }

    #[test]
    fn another_trails_batches_are_reported_and_never_replayed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE);
        let mut j = Journal::open(&p, 64 << 10, [9; 16]).unwrap();
        j.write(10, 3, &frames(10, 3)).unwrap();
        // The same seqs this trail's segment would want next: only the
        // trail id tells them apart.
        let t = frames_after(&p, 10, Some(&T)).unwrap();
        assert_eq!((t.count, t.gap, t.foreign), (0, None, true));
        assert!(t.frames.is_empty());
        // A trail without an id can read no named batch, and the writer's
        // own trail reads its batches.
        assert!(frames_after(&p, 10, None).unwrap().foreign);
        let t = frames_after(&p, 10, Some(&[9; 16])).unwrap();
        assert_eq!((t.count, t.foreign), (3, false));
        // A batch of another trail after this trail's ends the chain there.
        j.trail = T;
        j.restart();
        j.write(10, 1, &frames(10, 1)).unwrap();
        j.trail = [9; 16];
        j.write(11, 2, &frames(11, 2)).unwrap();
        let t = frames_after(&p, 10, Some(&T)).unwrap();
        assert_eq!((t.count, t.foreign), (1, true));
        // This trail overwrites the copied journal from its start: the
        // other trail's stale batches further in, which do not follow its
        // chain, are not reported again.
        let mut j = Journal::open(&d.path().join("j3"), 64 << 10, [9; 16]).unwrap();
        for s in 0..6 {
            j.write(100 + s, 1, &frames(100 + s, 1)).unwrap();
        }
        let mut j = Journal::open(&d.path().join("j3"), 64 << 10, T).unwrap();
        j.write(0, 2, &frames(0, 2)).unwrap();
        j.write(2, 1, &frames(2, 1)).unwrap();
        let t = frames_after(&d.path().join("j3"), 0, Some(&T)).unwrap();
        assert_eq!((t.count, t.foreign), (3, false));
        // Stale zeros after a chain are not a foreign batch.
        let mut j = Journal::open(&d.path().join("j2"), 64 << 10, T).unwrap();
        j.write(0, 2, &frames(0, 2)).unwrap();
        let t = frames_after(&d.path().join("j2"), 0, Some(&T)).unwrap();
        assert_eq!((t.count, t.foreign), (2, false));
    }

    /// A `PVJB` batch as builds before trail ids wrote it.
    fn v1_batch(first: u64, n: u32, f: &[u8]) -> Vec<u8> {
        let mut w = Vec::new();
        w.extend_from_slice(MAGIC_V1);
        w.extend_from_slice(&first.to_be_bytes());
        w.extend_from_slice(&n.to_be_bytes());
        w.extend_from_slice(&(f.len() as u32).to_be_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&w);
        h.update(f);
        w.extend_from_slice(&h.finalize().to_be_bytes());
        w.extend_from_slice(f);
        w.resize(round_up(w.len()), 0);
        w
    }

    #[test]
    fn batches_written_before_trail_ids_still_replay() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE);
        let mut b = v1_batch(4, 2, &frames(4, 2));
        b.extend(v1_batch(6, 3, &frames(6, 3)));
        b.resize(64 << 10, 0);
        std::fs::write(&p, &b).unwrap();
        for trail in [Some(&T), None] {
            let t = frames_after(&p, 5, trail).unwrap();
            assert_eq!((t.count, t.gap, t.foreign), (4, None, false));
            let seqs: Vec<u64> = Frames::new(&t.frames, 0).map(|f| f.seq).collect();
            assert_eq!(seqs, [5, 6, 7, 8]);
        }
        // A damaged legacy batch ends the chain like any other.
        let mut bad = b.clone();
        bad[4096 + HEADER_V1] ^= 1;
        assert_eq!(chain(&bad, Some(&T)).len(), 1);
    }

    #[test]
    fn the_trail_id_is_read_from_the_audit_folder_without_making_one() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_trail_id(d.path()), None);
        assert!(!d.path().join("trail-id").exists());
        std::fs::write(
            d.path().join("trail-id"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        assert_eq!(
            read_trail_id(d.path()),
            Some(
                hex::decode("0123456789abcdef0123456789abcdef")
                    .unwrap()
                    .try_into()
                    .unwrap()
            )
        );
        std::fs::write(d.path().join("trail-id"), "not hex").unwrap();
        assert_eq!(read_trail_id(d.path()), None);
    }

    #[test]
    fn room_and_fit() {
        let d = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&d.path().join(FILE), 3 * 4096, T).unwrap();
        assert!(j.fits(3 * 4096 - HEADER));
        assert!(!j.fits(3 * 4096 - HEADER + 1));
        j.write(0, 1, &frames(0, 1)).unwrap();
        assert!(j.has_room(2 * 4096 - HEADER));
        assert!(!j.has_room(2 * 4096 - HEADER + 1));
        j.restart();
        assert!(j.has_room(3 * 4096 - HEADER));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Whatever batches are written (with restarts between some), the
        /// chain is exactly those since the last restart, and a start that
        /// finds the segment ending anywhere inside them gets back every
        /// later entry, in order.
        #[test]
        fn the_chain_is_what_was_written_since_the_last_restart(
            sizes in proptest::collection::vec((1u64..40, any::<bool>()), 1..12),
            cut in 0u64..1000,
        ) {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join(FILE);
            let mut j = Journal::open(&p, 256 << 10, T).unwrap();
            let mut next = 0u64;
            let mut since = Vec::new();
            for (n, restart) in sizes {
                let f = frames(next, n);
                if restart || !j.has_room(f.len()) {
                    j.restart();
                    since.clear();
                }
                j.write(next, n as u32, &f).unwrap();
                since.push((next, n as u32));
                next += n;
            }
            let b = std::fs::read(&p).unwrap();
            let got: Vec<(u64, u32)> = chain(&b, Some(&T)).iter().map(|b| (b.first_seq, b.n)).collect();
            prop_assert_eq!(&got, &since);
            let first = since[0].0;
            let from = first + cut % (next - first + 1);
            let t = frames_after(&p, from, Some(&T)).unwrap();
            prop_assert_eq!(t.count, next - from);
            prop_assert_eq!(t.gap, None);
            let seqs: Vec<u64> = Frames::new(&t.frames, 0).map(|f| f.seq).collect();
            prop_assert_eq!(seqs, (from..next).collect::<Vec<_>>());
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..9000)) {
            let _ = chain(&b, Some(&T));
            let _ = chain(&b, None);
        }
    }
}
