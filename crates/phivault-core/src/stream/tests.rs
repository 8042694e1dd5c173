use super::*;
use crate::keys::StaticKeys;
use crate::secret::SecretKey;
use proptest::prelude::*;
use std::io::Cursor;

fn keys() -> (StaticKeys, KeyRingName) {
    let ring = KeyRingName::parse("test/files").unwrap();
    let mut k = StaticKeys::new();
    k.insert(
        ring.clone(),
        KeyVersion::MIN,
        SecretKey::from_bytes([3; 32]),
    );
    (k, ring)
}

fn opts(exp: u8, pool: Option<&rayon::ThreadPool>) -> Options<'_> {
    Options {
        segment_exp: exp,
        pool,
    }
}

fn enc(pt: &[u8], exp: u8) -> Vec<u8> {
    let (k, ring) = keys();
    let mut out = Vec::new();
    encrypt(&k, &ring, pt, &mut out, opts(exp, None), &mut |_| {}).unwrap();
    out
}

fn dec(ct: &[u8]) -> Result<Vec<u8>, StreamError> {
    let (k, _) = keys();
    let mut out = Vec::new();
    decrypt(&k, ct, &mut out, Options::default(), &mut |_| {})?;
    Ok(out)
}

#[test]
fn roundtrip_sizes_around_segment_boundaries() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let (k, ring) = keys();
    let s = 1 << 12;
    for len in [
        0,
        1,
        s - 1,
        s,
        s + 1,
        2 * s,
        BATCH * s,
        BATCH * s + 1,
        (BATCH + 1) * s,
        3 * BATCH * s + 7,
    ] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        for p in [None, Some(&pool)] {
            let mut ct = Vec::new();
            encrypt(&k, &ring, &pt[..], &mut ct, opts(12, p), &mut |_| {}).unwrap();
            let segs = if len == 0 { 1 } else { len.div_ceil(s) };
            let h = read_header(&mut &ct[..]).unwrap();
            assert_eq!(ct.len(), h.len() + len + 16 * segs, "len {len}");
            assert_eq!(
                layout(&h, ct.len() as u64).unwrap(),
                Layout {
                    segments: segs as u64,
                    plaintext_len: len as u64
                }
            );
            let mut out = Vec::new();
            decrypt(&k, &ct[..], &mut out, opts(12, p), &mut |_| {}).unwrap();
            assert_eq!(out, pt, "len {len}");
        }
    }
}

#[test]
fn truncation_at_segment_boundary_is_named() {
    let ct = enc(&vec![7u8; 3 * 4096], 12);
    let h = read_header(&mut &ct[..]).unwrap();
    let cut = h.len() + 2 * (4096 + 16);
    assert!(matches!(dec(&ct[..cut]), Err(StreamError::Truncated)));
    // Cut mid-segment, and after the header only.
    assert!(dec(&ct[..cut - 5]).is_err());
    assert!(matches!(dec(&ct[..h.len()]), Err(StreamError::Truncated)));
}

#[test]
fn reordered_and_appended_segments_fail() {
    let ct = enc(&vec![1u8; 3 * 4096], 12);
    let h = read_header(&mut &ct[..]).unwrap();
    let slot = 4096 + 16;
    let mut swapped = ct.clone();
    let (a, b) = (h.len(), h.len() + slot);
    let seg0 = ct[a..a + slot].to_vec();
    swapped.copy_within(b..b + slot, a);
    swapped[b..b + slot].copy_from_slice(&seg0);
    assert!(matches!(dec(&swapped), Err(StreamError::DecryptionFailed)));
    let mut appended = ct.clone();
    appended.extend_from_slice(&ct[a..a + slot]);
    assert!(dec(&appended).is_err());
    let mut one_byte = ct.clone();
    one_byte.push(0);
    assert!(dec(&one_byte).is_err());
}

#[test]
fn every_bit_flip_is_detected() {
    for len in [0usize, 5, 4096, 4097] {
        let ct = enc(&vec![0x55u8; len], 12);
        for i in 0..ct.len() * 8 {
            let mut bad = ct.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                dec(&bad).is_err(),
                "len {len}: flip of bit {i} not detected"
            );
        }
    }
}

#[test]
fn range_decrypt_reads_only_what_it_needs() {
    let (k, _) = keys();
    let pt: Vec<u8> = (0..5 * 4096 + 100).map(|i| (i % 256) as u8).collect();
    let ct = enc(&pt, 12);
    for (off, len) in [
        (0u64, 10u64),
        (4090, 20),
        (4096, 4096),
        (5 * 4096, 100),
        (5 * 4096 + 99, 50),
        (0, u64::MAX),
        (1 << 40, 5),
    ] {
        let mut out = Vec::new();
        let n = decrypt_range(&k, Cursor::new(&ct), off, len, &mut out).unwrap();
        let end = (off.saturating_add(len)).min(pt.len() as u64);
        let want = if off >= end {
            &[][..]
        } else {
            &pt[off as usize..end as usize]
        };
        assert_eq!(out, want, "range {off}+{len}");
        assert_eq!(n as usize, want.len());
    }
    // The stream is read from offset 0 whatever the cursor's position.
    let mut moved = Cursor::new(&ct);
    moved.set_position(10);
    let mut out = Vec::new();
    decrypt_range(&k, moved, 5, 3, &mut out).unwrap();
    assert_eq!(out, &pt[5..8]);
    // A range that touches a truncated end reports truncation.
    let h = read_header(&mut &ct[..]).unwrap();
    let cut = &ct[..h.len() + 5 * (4096 + 16)];
    let r = decrypt_range(&k, Cursor::new(cut), 4 * 4096, 10, &mut Vec::new());
    assert!(matches!(r, Err(StreamError::Truncated)), "{r:?}");
}

#[test]
fn wrong_key_and_header_errors() {
    let ct = enc(b"hello", 12);
    let mut other = StaticKeys::new();
    other.insert(
        KeyRingName::parse("test/files").unwrap(),
        KeyVersion::MIN,
        SecretKey::from_bytes([4; 32]),
    );
    assert!(matches!(
        decrypt(&other, &ct[..], Vec::new(), Options::default(), &mut |_| {}),
        Err(StreamError::DecryptionFailed)
    ));
    let mut v = ct.clone();
    v[3] = 9;
    assert!(matches!(dec(&v), Err(StreamError::UnsupportedVersion(9))));
    let mut a = ct.clone();
    a[4] = 7;
    assert!(matches!(dec(&a), Err(StreamError::UnknownAlgorithm(7))));
    assert!(matches!(dec(b"PV"), Err(StreamError::Malformed(_))));
}

/// A writer that records how much has been written, to show nothing is
/// released before authentication.
struct Counting(usize);
impl Write for Counting {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn tampered_first_batch_releases_nothing() {
    let pt = vec![9u8; 2 * 4096];
    let mut ct = enc(&pt, 12);
    let h = read_header(&mut &ct[..]).unwrap();
    let last = ct.len() - 1;
    ct[last] ^= 1; // tamper with the last segment of the only batch
    let (k, _) = keys();
    let mut w = Counting(0);
    assert!(decrypt(&k, &ct[..], &mut w, Options::default(), &mut |_| {}).is_err());
    assert_eq!(w.0, 0);
    let _ = h;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn prop_roundtrip(pt in proptest::collection::vec(any::<u8>(), 0..20000), exp in 12u8..14) {
        let ct = enc(&pt, exp);
        prop_assert_eq!(dec(&ct).unwrap(), pt);
    }

    #[test]
    fn prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = dec(&data);
        let (k, _) = keys();
        let _ = decrypt_range(&k, Cursor::new(&data), 0, 100, Vec::new());
    }
}

#[test]
fn positional_encryption_matches_the_stream_layout() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let (k, ring) = keys();
    let s = 1 << 12;
    for len in [0usize, 1, s, s + 1, BATCH * s, BATCH * s + 3, 2 * BATCH * s] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 13 % 253) as u8).collect();
        for p in [None, Some(&pool)] {
            let mut ct = Vec::new();
            let n = encrypt_at(
                &k,
                &ring,
                &pt[..],
                len as u64,
                &mut ct,
                opts(12, p),
                &mut |_| {},
            )
            .unwrap();
            assert_eq!(n as usize, len);
            let h = read_header(&mut &ct[..]).unwrap();
            assert_eq!(
                layout(&h, ct.len() as u64).unwrap().plaintext_len,
                len as u64
            );
            assert_eq!(dec(&ct).unwrap(), pt, "len {len}");
        }
    }
}

#[test]
fn positional_encryption_refuses_a_changing_input() {
    let (k, ring) = keys();
    let data = vec![1u8; 10_000];
    // Told 20 000 bytes, finds 10 000: shrank.
    let r = encrypt_at(
        &k,
        &ring,
        &data[..],
        20_000,
        Vec::new(),
        opts(12, None),
        &mut |_| {},
    );
    assert!(
        matches!(r, Err(StreamError::Io(ref e)) if e.to_string().contains("shrank")),
        "{r:?}"
    );
    // Told 5 000 bytes, finds more: grew.
    let r = encrypt_at(
        &k,
        &ring,
        &data[..],
        5_000,
        Vec::new(),
        opts(12, None),
        &mut |_| {},
    );
    assert!(
        matches!(r, Err(StreamError::Io(ref e)) if e.to_string().contains("grew")),
        "{r:?}"
    );
}

/// `WriteAt` over a shared in-memory buffer, for the positional tests.
struct MemAt(std::sync::Mutex<Vec<u8>>);
impl WriteAt for MemAt {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut v = self.0.lock().unwrap();
        let end = offset as usize + buf.len();
        if v.len() < end {
            v.resize(end, 0);
        }
        v[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }
}

#[test]
fn positional_file_to_file_roundtrip_and_failures() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let (k, ring) = keys();
    let s = 1 << 12;
    for len in [0usize, 1, s, s + 1, BATCH * s + 5, 3 * BATCH * s] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let ct = MemAt(Default::default());
        encrypt_file(
            &k,
            &ring,
            &pt[..],
            len as u64,
            &ct,
            opts(12, Some(&pool)),
            &mut |_| {},
        )
        .unwrap();
        let ct = ct.0.into_inner().unwrap();
        // Same format as the streaming encoder: the streaming decoder reads it.
        assert_eq!(dec(&ct).unwrap(), pt, "len {len}");
        let out = MemAt(Default::default());
        let n = decrypt_file(
            &k,
            &ct[..],
            ct.len() as u64,
            &out,
            opts(12, Some(&pool)),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(n as usize, len);
        assert_eq!(out.0.into_inner().unwrap(), pt);
    }
    let pt = vec![3u8; 3 * s];
    let ct = enc(&pt, 12);
    let h = read_header(&mut &ct[..]).unwrap();
    let cut = &ct[..h.len() + 2 * (s + 16)];
    let r = decrypt_file(
        &k,
        cut,
        cut.len() as u64,
        &MemAt(Default::default()),
        opts(12, None),
        &mut |_| {},
    );
    assert!(matches!(r, Err(StreamError::Truncated)), "{r:?}");
    let mut bad = ct.clone();
    bad[h.len() + 5] ^= 1;
    let r = decrypt_file(
        &k,
        &bad[..],
        bad.len() as u64,
        &MemAt(Default::default()),
        opts(12, None),
        &mut |_| {},
    );
    assert!(matches!(r, Err(StreamError::DecryptionFailed)), "{r:?}");
}
