//! The audit log on real files: checkpoints, recovery of torn tails,
//! rotation and retention, every kind of tampering `verify` must catch
//! (with the first bad index), witnesses, and SIGKILL during heavy
//! writes, repeated, with no acknowledged event lost.

use phivault_audit::log::list_segments;
use phivault_audit::segment::{self, Frames};
use phivault_audit::verify::{FindingKind, Report, VerifyOptions, verify};
use phivault_audit::{AuditLog, Event, Kind, LogConfig};
use phivault_core::audit::merkle;
use phivault_core::audit::note::{Checkpoint, NoteSigner, NoteVerifier};
use phivault_core::crypto::SigningKey;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn signer(seed: u8) -> NoteSigner {
    let sk =
        SigningKey::ed25519_from_seed(&phivault_core::secret::SecretKey::from_bytes([seed; 32]))
            .unwrap();
    NoteSigner::new("test-log", sk).unwrap()
}

fn verifier(seed: u8) -> NoteVerifier {
    NoteVerifier::parse(&signer(seed).verifier_key()).unwrap()
}

fn cfg(dir: &Path) -> LogConfig {
    let mut c = LogConfig::new(dir);
    c.origin = "test/audit".into();
    c.checkpoint_every = 10;
    c.checkpoint_interval = Duration::from_secs(3600);
    c
}

/// `cfg` with 4 KiB segments (a few dozen entries each) and no
/// checkpoint by count.
fn small_segments(dir: &Path) -> LogConfig {
    let mut c = cfg(dir);
    c.segment_bytes = 4096;
    c.checkpoint_every = u64::MAX;
    c
}

fn ev(i: u64) -> Event {
    let mut e = Event::new(Kind::Request, "transit.encrypt");
    e.principal = Some(format!("spiffe://t/app{}", i % 7));
    e.status = Some(200);
    e.detail = Some(serde_json::json!({ "i": i }));
    e
}

/// A log of `n` entries, checkpointed every 10, closed.
fn build(dir: &Path, n: u64) {
    let (log, _) = AuditLog::open(cfg(dir)).unwrap();
    log.set_signer(Some(signer(1))).unwrap();
    for i in 0..n {
        log.append_blocking(&ev(i)).unwrap();
    }
    log.close().unwrap();
}

fn check(dir: &Path) -> Report {
    verify(&VerifyOptions {
        dir: dir.to_path_buf(),
        keys: vec![verifier(1)],
        witnesses: vec![],
    })
    .unwrap()
}

fn segment_path(dir: &Path) -> PathBuf {
    list_segments(dir).unwrap().pop().unwrap().1
}

/// Frames of the one segment: (offset, whole frame bytes).
fn frames(b: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let h = segment::parse_header(b).unwrap();
    Frames::new(b, h.len)
        .map(|f| {
            (
                f.offset,
                b[f.offset..f.offset + segment::FRAME_OVERHEAD + f.body.len()].to_vec(),
            )
        })
        .collect()
}

/// Rewrites the segment from the header and the given frames.
fn rewrite(dir: &Path, fr: &[Vec<u8>]) {
    let p = segment_path(dir);
    let b = std::fs::read(&p).unwrap();
    let h = segment::parse_header(&b).unwrap();
    let mut out = b[..h.len].to_vec();
    for f in fr {
        out.extend_from_slice(f);
    }
    std::fs::write(&p, out).unwrap();
}

/// A frame for `seq` with `json`, CRC correct (an attacker can do that).
fn forged(seq: u64, json: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    segment::encode_frame(seq, json, &mut v);
    v
}

fn finding(r: &Report, k: FindingKind) -> bool {
    r.findings.iter().any(|f| f.kind == k)
}

#[test]
fn intact_log_verifies_and_reopens() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 95);
    let r = check(d.path());
    assert!(r.ok, "{r:?}");
    assert_eq!(r.entries, 95);
    assert_eq!(r.latest.as_ref().unwrap().size, 95, "a checkpoint at close");
    // Reopen and continue: the tree continues.
    build(d.path(), 7);
    let r = check(d.path());
    assert!(r.ok, "{r:?}");
    assert_eq!(r.entries, 102);
    // A key that did not sign finds nothing to trust.
    let r = verify(&VerifyOptions {
        dir: d.path().into(),
        keys: vec![verifier(9)],
        witnesses: vec![],
    })
    .unwrap();
    assert!(!r.ok);
}

#[test]
fn modified_entry_is_named_exactly() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 60);
    let b = std::fs::read(segment_path(d.path())).unwrap();
    let mut fr: Vec<Vec<u8>> = frames(&b).into_iter().map(|f| f.1).collect();
    // Change entry 37's principal and fix its CRC.
    let body = &fr[37][segment::FRAME_OVERHEAD + 8..];
    let json = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("app2", "appX");
    fr[37] = forged(37, json.as_bytes());
    rewrite(d.path(), &fr);
    let r = check(d.path());
    assert!(!r.ok);
    assert!(finding(&r, FindingKind::Modified), "{r:?}");
    assert_eq!(r.first_bad_index, Some(37), "{r:?}");
    // Without a valid CRC it is caught at the frame.
    let mut fr2 = fr.clone();
    let n = fr2[37].len();
    fr2[37][n - 3] ^= 0x20;
    rewrite(d.path(), &fr2);
    assert_eq!(check(d.path()).first_bad_index, Some(37));
}

#[test]
fn modified_entry_and_leaf_file_is_bounded_by_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 60);
    let b = std::fs::read(segment_path(d.path())).unwrap();
    let mut fr: Vec<Vec<u8>> = frames(&b).into_iter().map(|f| f.1).collect();
    let body = fr[37][segment::FRAME_OVERHEAD + 8..].to_vec();
    let json = String::from_utf8(body).unwrap().replace("app2", "appX");
    fr[37] = forged(37, json.as_bytes());
    rewrite(d.path(), &fr);
    // The attacker also rewrites the leaf hash.
    let mut leaves = std::fs::read(d.path().join("leaves")).unwrap();
    let h = merkle::leaf_hash(&fr[37][segment::FRAME_OVERHEAD..]);
    leaves[37 * 32..38 * 32].copy_from_slice(&h);
    std::fs::write(d.path().join("leaves"), leaves).unwrap();
    let r = check(d.path());
    assert!(!r.ok);
    assert!(finding(&r, FindingKind::Modified), "{r:?}");
    // Checkpoints every 10: the bad entry is in 30..39.
    assert_eq!(r.first_bad_index, Some(30), "{r:?}");
}

#[test]
fn deleted_inserted_reordered_truncated() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 60);
    let b = std::fs::read(segment_path(d.path())).unwrap();
    let orig: Vec<Vec<u8>> = frames(&b).into_iter().map(|f| f.1).collect();

    let mut del = orig.clone();
    del.remove(37);
    rewrite(d.path(), &del);
    let r = check(d.path());
    assert!(finding(&r, FindingKind::Deleted), "{r:?}");
    assert_eq!(r.first_bad_index, Some(37));

    let mut ins = orig.clone();
    ins.insert(37, forged(37, &ev(999).to_json()));
    rewrite(d.path(), &ins);
    let r = check(d.path());
    assert!(!r.ok);
    assert_eq!(r.first_bad_index, Some(37), "{r:?}");

    let mut re = orig.clone();
    re.swap(37, 38);
    rewrite(d.path(), &re);
    let r = check(d.path());
    assert!(finding(&r, FindingKind::Reordered), "{r:?}");
    assert_eq!(r.first_bad_index, Some(37));

    // Cut from the segment only, the last entries still stand in the
    // group-commit journal (as after a power loss), and are read from it.
    rewrite(d.path(), &orig[..50]);
    let r = check(d.path());
    assert!(r.ok && r.entries == 60 && r.journal == 10, "{r:?}");
    // Cut from both: a truncation.
    let journal = d.path().join(phivault_audit::journal::FILE);
    let saved = std::fs::read(&journal).unwrap();
    std::fs::remove_file(&journal).unwrap();
    let r = check(d.path());
    assert!(finding(&r, FindingKind::Truncated), "{r:?}");
    assert_eq!(r.first_bad_index, Some(50));
    std::fs::write(&journal, saved).unwrap();

    rewrite(d.path(), &orig);
    assert!(check(d.path()).ok);
}

#[test]
fn forked_and_forged_checkpoints_are_caught() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 40);
    // A checkpoint signed by the right key for another tree of size 20.
    let fake = Checkpoint {
        origin: "test/audit".into(),
        size: 20,
        root: [7; 32],
        extensions: vec![],
    };
    let note = signer(1).sign(&fake.body()).unwrap();
    let mut b = Vec::new();
    segment::encode_frame(0, note.as_bytes(), &mut b);
    let cp = d.path().join("checkpoints.log");
    let saved = std::fs::read(&cp).unwrap();
    let mut all = saved.clone();
    all.extend_from_slice(&b);
    std::fs::write(&cp, &all).unwrap();
    let r = check(d.path());
    assert!(finding(&r, FindingKind::Fork), "{r:?}");
    // One signed by another key.
    let note = signer(2).sign(&fake.body()).unwrap();
    let mut b = Vec::new();
    segment::encode_frame(0, note.as_bytes(), &mut b);
    let mut all = saved.clone();
    all.extend_from_slice(&b);
    std::fs::write(&cp, &all).unwrap();
    let r = check(d.path());
    assert!(finding(&r, FindingKind::BadCheckpoint), "{r:?}");
}

#[test]
fn a_witness_catches_a_deleted_log() {
    let d = tempfile::tempdir().unwrap();
    let w = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.witness_dirs = vec![w.path().to_path_buf()];
    let (log, _) = AuditLog::open(c).unwrap();
    log.set_signer(Some(signer(1))).unwrap();
    for i in 0..30 {
        log.append_blocking(&ev(i)).unwrap();
    }
    log.close().unwrap();
    let opts = |dir: &Path| VerifyOptions {
        dir: dir.to_path_buf(),
        keys: vec![verifier(1)],
        witnesses: vec![w.path().to_path_buf()],
    };
    let r = verify(&opts(d.path())).unwrap();
    assert!(r.ok && r.witness_checkpoints == 1, "{r:?}");
    // The whole log, checkpoints and all, deleted and started afresh.
    std::fs::remove_dir_all(d.path()).unwrap();
    build(d.path(), 5);
    let r = verify(&opts(d.path())).unwrap();
    assert!(!r.ok);
    assert!(finding(&r, FindingKind::Truncated), "{r:?}");
    // And a witness refuses to go back to a smaller tree.
    let bad = phivault_audit::witness::store(w.path(), "test/audit", "x", 3);
    assert!(bad.is_err());
}

#[test]
fn torn_tail_is_cut_kept_and_recorded() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 20);
    let p = segment_path(d.path());
    let mut b = std::fs::read(&p).unwrap();
    let whole = forged(20, &ev(20).to_json());
    b.extend_from_slice(&whole[..whole.len() / 2]);
    std::fs::write(&p, &b).unwrap();
    // Before the restart, verify sees a torn tail but no tampering.
    let r = check(d.path());
    assert!(r.ok && finding(&r, FindingKind::TornTail), "{r:?}");
    let (log, rec) = AuditLog::open(cfg(d.path())).unwrap();
    let (_, t) = rec.torn.clone().expect("torn tail found");
    assert_eq!(t.bytes, whole.len() / 2);
    assert_eq!(rec.entries, 21, "the recovery is itself recorded");
    log.set_signer(Some(signer(1))).unwrap();
    log.close().unwrap();
    let kept = std::fs::read_dir(d.path().join("torn")).unwrap().count();
    assert_eq!(kept, 1);
    let r = check(d.path());
    assert!(r.ok && r.findings.is_empty(), "{r:?}");
    let mut ops = Vec::new();
    phivault_audit::query::for_each(d.path(), 0, |e| {
        ops.push(e.event.op);
        true
    })
    .unwrap();
    assert_eq!(ops.last().unwrap(), "audit.tail_recovered");
}

/// A copy of the folder `from` (files and subfolders) in `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// A power loss between group commits: the segment is written through the
/// page cache and synced only when the journal fills, so it can lose its
/// tail (whole entries, or part of one) while the journal holds every
/// batch. The next start appends them again, and the log verifies.
#[test]
fn a_segment_tail_lost_to_power_loss_comes_back_from_the_journal() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 300);
    let orig = std::fs::read(segment_path(d.path())).unwrap();
    let fr = frames(&orig);
    let header = segment::parse_header(&orig).unwrap().len;
    // (cut at, entries the segment keeps, bytes of a torn entry)
    let mid = fr[150].0 + fr[150].1.len() / 2;
    for (cut, kept, torn) in [
        (fr[100].0, 100, 0),
        (mid, 150, mid - fr[150].0),
        (header, 0, 0),
    ] {
        let c = tempfile::tempdir().unwrap();
        copy_dir(d.path(), c.path());
        let p = segment_path(c.path());
        std::fs::write(&p, &orig[..cut]).unwrap();
        // Before any start, verify reads the lost entries from the
        // journal: no false truncation (a torn entry is only noted).
        let r = check(c.path());
        assert!(r.ok, "cut at {cut}: {r:?}");
        assert_eq!((r.entries, r.journal), (300, 300 - kept), "cut at {cut}");
        let (log, rec) = AuditLog::open(cfg(c.path())).unwrap();
        assert_eq!(rec.journal_replayed, 300 - kept, "cut at {cut}");
        assert_eq!(rec.journal_gap, None);
        assert_eq!(
            rec.torn.as_ref().map(|t| t.1.bytes),
            (torn > 0).then_some(torn)
        );
        let recorded = u64::from(torn > 0);
        assert_eq!(rec.entries, 300 + recorded);
        log.set_signer(Some(signer(1))).unwrap();
        log.close().unwrap();
        let r = check(c.path());
        assert!(r.ok && r.findings.is_empty(), "cut at {cut}: {r:?}");
        assert_eq!(r.entries, 300 + recorded);
        let b = std::fs::read(&p).unwrap();
        assert_eq!(
            &b[..orig.len()],
            &orig[..],
            "the same entries, byte for byte"
        );
    }
}

/// A journal whose chain starts past the segment's end (the segment lost
/// entries the journal no longer holds: a disk that dropped a synced
/// write) is not joined on: the start reports the gap, verify the
/// truncation.
#[test]
fn a_journal_that_skips_entries_is_reported_not_joined() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.journal_bytes = 64 << 10;
    let (log, _) = AuditLog::open(c.clone()).unwrap();
    log.set_signer(Some(signer(1))).unwrap();
    for i in 0..100 {
        log.append_blocking(&ev(i)).unwrap();
    }
    log.close().unwrap();
    // 100 batches of one entry, 4 KiB each, through a 64 KiB journal: it
    // restarted several times and holds only the newest ones.
    let p = segment_path(d.path());
    let orig = std::fs::read(&p).unwrap();
    std::fs::write(&p, &orig[..frames(&orig)[20].0]).unwrap();
    let r = check(d.path());
    assert!(!r.ok && r.journal == 0 && r.entries == 20, "{r:?}");
    assert!(
        r.findings.iter().any(|f| f.kind == FindingKind::Truncated),
        "{r:?}"
    );
    let (log, rec) = AuditLog::open(c.clone()).unwrap();
    let (have, resumes) = rec.journal_gap.expect("the gap is reported");
    assert_eq!(have, 20);
    assert!(resumes > 20 && resumes < 100, "{resumes}");
    assert_eq!(rec.journal_replayed, 0);
    // Signed entries are gone: reported, recorded in the log, and the
    // writer goes on without signing a checkpoint, neither of a smaller
    // tree (a rollback under the log's own key) nor, once it is larger,
    // of one that forks from the last signed.
    assert_eq!(rec.short_of_checkpoint, Some((20, 100)));
    assert!(
        log.signing_blocked()
            .unwrap()
            .contains("fewer than the 100")
    );
    log.set_signer(Some(signer(1))).unwrap();
    for i in 0..90 {
        log.append_blocking(&ev(i)).unwrap();
    }
    assert!(log.checkpoint().unwrap().is_none());
    log.close().unwrap();
    let newest = || std::fs::read_to_string(d.path().join("checkpoint")).unwrap();
    assert_eq!(phivault_audit::witness::note_size(&newest()), Some(100));
    // At the next start the log is past the old size, and its first 100
    // entries are not the ones signed: still no checkpoint.
    let (log, rec) = AuditLog::open(c.clone()).unwrap();
    assert_eq!(rec.short_of_checkpoint, None);
    assert_eq!(rec.checkpoint_mismatch, Some(100));
    log.set_signer(Some(signer(1))).unwrap();
    log.append_blocking(&ev(0)).unwrap();
    assert!(log.checkpoint().unwrap().is_none());
    log.close().unwrap();
    assert_eq!(phivault_audit::witness::note_size(&newest()), Some(100));
    let mut ops = Vec::new();
    phivault_audit::query::for_each(d.path(), 0, |e| {
        ops.push(e.event.op);
        true
    })
    .unwrap();
    assert_eq!(ops[20], "audit.entries_lost");
    assert_eq!(ops[111], "audit.checkpoint_mismatch");
}

/// Entries replaced by others (the same count: a segment from another
/// trail) no longer hash to the last signed checkpoint: found at start,
/// recorded, and no checkpoint is signed over them. Checked both when the
/// checkpoint lies in the newest segment and in an older one; an intact
/// log is never flagged.
#[test]
fn a_log_that_no_longer_matches_its_last_checkpoint_signs_no_more() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(a.path(), 300);
    build(b.path(), 300);
    let (log, rec) = AuditLog::open(cfg(a.path())).unwrap();
    assert_eq!(
        (rec.checkpoint_mismatch, log.signing_blocked()),
        (None, None)
    );
    log.close().unwrap();
    let own = std::fs::read(segment_path(a.path())).unwrap();
    std::fs::copy(segment_path(b.path()), segment_path(a.path())).unwrap();
    let (log, rec) = AuditLog::open(cfg(a.path())).unwrap();
    assert_eq!(rec.checkpoint_mismatch, Some(300));
    assert!(log.signing_blocked().unwrap().contains("no longer hash"));
    log.set_signer(Some(signer(1))).unwrap();
    log.append_blocking(&ev(1)).unwrap();
    assert!(log.checkpoint().unwrap().is_none());
    log.close().unwrap();
    assert!(!check(a.path()).ok);
    // The block stays even when what showed it is gone (here: the log's
    // own segment back; in life, retention removing that segment).
    std::fs::write(segment_path(a.path()), own).unwrap();
    let (log, rec) = AuditLog::open(cfg(a.path())).unwrap();
    assert_eq!(rec.checkpoint_mismatch, None);
    assert!(log.signing_blocked().unwrap().contains("no longer hash"));
    log.set_signer(Some(signer(1))).unwrap();
    assert!(log.checkpoint().unwrap().is_none());
    log.close().unwrap();

    // The last checkpoint in an older segment: signed at 50, then 200
    // entries unsigned over several small segments.
    let d = tempfile::tempdir().unwrap();
    let c = small_segments(d.path());
    let (log, _) = AuditLog::open(c.clone()).unwrap();
    log.set_signer(Some(signer(1))).unwrap();
    for i in 0..50 {
        log.append_blocking(&ev(i)).unwrap();
    }
    assert_eq!(log.checkpoint().unwrap().map(|s| s.size), Some(50));
    log.set_signer(None).unwrap();
    for i in 50..250 {
        log.append_blocking(&ev(i)).unwrap();
    }
    log.close().unwrap();
    let segs = list_segments(d.path()).unwrap();
    assert!(segs.len() > 3 && segs.last().unwrap().0 > 50, "{segs:?}");
    let (log, rec) = AuditLog::open(c.clone()).unwrap();
    assert_eq!(
        (rec.checkpoint_mismatch, log.signing_blocked()),
        (None, None)
    );
    // The check leaves the leaves file's cursor at its end: what is
    // appended now verifies.
    for i in 250..260 {
        log.append_blocking(&ev(i)).unwrap();
    }
    log.close().unwrap();
    let r = check(d.path());
    assert!(r.ok && r.entries == 260, "{r:?}");
    // The leaf hash of entry 49 changed (the check hashes the leaves of
    // the checkpoint's own segment onto the frontier in its header).
    let lp = d.path().join("leaves");
    let mut l = std::fs::read(&lp).unwrap();
    l[49 * 32] ^= 1;
    std::fs::write(&lp, l).unwrap();
    let (log, rec) = AuditLog::open(c).unwrap();
    assert_eq!(rec.checkpoint_mismatch, Some(50));
    assert!(log.signing_blocked().is_some());
}

/// A checkpoint exactly at a segment boundary (the newest segment's first
/// entry, then the last entry of an older one) is checked without a false
/// alarm.
#[test]
fn a_checkpoint_on_a_segment_boundary_is_no_false_alarm() {
    let d = tempfile::tempdir().unwrap();
    let c = small_segments(d.path());
    let (log, _) = AuditLog::open(c.clone()).unwrap();
    log.set_signer(Some(signer(1))).unwrap();
    let mut n = 0u64;
    // Append until a segment has just been started (it holds no entry).
    loop {
        log.append_blocking(&ev(n)).unwrap();
        n += 1;
        if n > 20 && list_segments(d.path()).unwrap().last().unwrap().0 == n {
            break;
        }
        assert!(n < 1000, "no rotation");
    }
    assert_eq!(log.checkpoint().unwrap().map(|s| s.size), Some(n));
    log.set_signer(None).unwrap();
    log.close().unwrap();
    let blocked = |log: &AuditLog, rec: &phivault_audit::log::Recovery| {
        (rec.checkpoint_mismatch, log.signing_blocked())
    };
    let (log, rec) = AuditLog::open(c.clone()).unwrap();
    assert_eq!(blocked(&log, &rec), (None, None));
    // More entries, more segments: the checkpoint now ends an older one.
    for i in n..n + 100 {
        log.append_blocking(&ev(i)).unwrap();
    }
    log.close().unwrap();
    assert!(list_segments(d.path()).unwrap().last().unwrap().0 > n);
    let (log, rec) = AuditLog::open(c).unwrap();
    assert_eq!(blocked(&log, &rec), (None, None));
    log.set_signer(Some(signer(1))).unwrap();
    log.close().unwrap();
    let r = check(d.path());
    assert!(r.ok && r.findings.is_empty(), "{r:?}");
}

/// A journal copied from another trail holds the very seqs this trail's
/// segment lost: its batches name the other trail, so none is appended
/// here; the start reports it, and verify reads only this trail's own.
#[test]
fn another_trails_journal_is_reported_and_never_replayed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build(a.path(), 300);
    build(b.path(), 300);
    let p = segment_path(b.path());
    let orig = std::fs::read(&p).unwrap();
    std::fs::write(&p, &orig[..frames(&orig)[200].0]).unwrap();
    let own = std::fs::read(b.path().join("journal")).unwrap();
    std::fs::copy(a.path().join("journal"), b.path().join("journal")).unwrap();
    let r = check(b.path());
    assert!(!r.ok && r.journal == 0 && r.entries == 200, "{r:?}");
    assert!(r.journal_foreign, "{r:?}");
    let c = tempfile::tempdir().unwrap();
    copy_dir(b.path(), c.path());
    let (log, rec) = AuditLog::open(cfg(c.path())).unwrap();
    assert!(rec.journal_foreign, "{rec:?}");
    assert_eq!((rec.journal_replayed, rec.journal_gap), (0, None));
    log.close().unwrap();
    // Its own journal brings the lost entries back.
    std::fs::write(b.path().join("journal"), own).unwrap();
    let r = check(b.path());
    assert!(r.ok && r.journal == 100 && !r.journal_foreign, "{r:?}");
    let (_log, rec) = AuditLog::open(cfg(b.path())).unwrap();
    assert!(!rec.journal_foreign);
    assert_eq!(rec.journal_replayed, 100);
}

/// With no journal (`journal_bytes = 0`) each group commit syncs the
/// segment, and a journal left by an earlier start is still replayed.
#[test]
fn without_a_journal_the_segment_is_synced_and_an_old_journal_still_replays() {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), 40);
    let p = segment_path(d.path());
    let orig = std::fs::read(&p).unwrap();
    let fr = frames(&orig);
    std::fs::write(&p, &orig[..fr[30].0]).unwrap();
    let mut c = cfg(d.path());
    c.journal_bytes = 0;
    let (log, rec) = AuditLog::open(c.clone()).unwrap();
    assert_eq!(rec.journal_replayed, 10);
    log.set_signer(Some(signer(1))).unwrap();
    for i in 40..60 {
        log.append_blocking(&ev(i)).unwrap();
    }
    log.close().unwrap();
    let r = check(d.path());
    assert!(r.ok && r.entries == 60, "{r:?}");
    // A batch larger than the journal is made durable the same way.
    let mut c = cfg(d.path());
    c.journal_bytes = 4096;
    let (log, _) = AuditLog::open(c).unwrap();
    let mut big = ev(60);
    big.detail = Some(serde_json::json!({ "pad": "x".repeat(10_000) }));
    log.append_blocking(&big).unwrap();
    log.append_blocking(&ev(61)).unwrap();
    log.close().unwrap();
    assert_eq!(check(d.path()).entries, 62);
}

#[test]
fn rotation_and_retention_keep_the_tree_verifiable() {
    let d = tempfile::tempdir().unwrap();
    let mut c = cfg(d.path());
    c.segment_bytes = 4096;
    let (log, _) = AuditLog::open(c.clone()).unwrap();
    log.set_signer(Some(signer(1))).unwrap();
    for i in 0..200 {
        log.append_blocking(&ev(i)).unwrap();
    }
    log.close().unwrap();
    let segs = list_segments(d.path()).unwrap().len();
    assert!(segs > 5, "{segs} segments");
    assert!(check(d.path()).ok);
    // Retention of zero removes every sealed segment at the next open.
    c.retention = Duration::ZERO;
    let (log, rec) = AuditLog::open(c).unwrap();
    assert_eq!(rec.pruned_segments.len(), segs - 1);
    log.set_signer(Some(signer(1))).unwrap();
    log.close().unwrap();
    let r = check(d.path());
    assert!(r.ok, "{r:?}");
    assert!(r.pruned > 150, "{r:?}");
    assert!(r.entries > 200);
}

#[test]
fn concurrent_appends_are_all_durable_and_ordered() {
    let d = tempfile::tempdir().unwrap();
    let (log, _) = AuditLog::open(cfg(d.path())).unwrap();
    log.set_signer(Some(signer(1))).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().build().unwrap();
    let seqs = rt.block_on(async {
        let futs: Vec<_> = (0..5000).map(|i| log.append(&ev(i))).collect();
        let mut v = Vec::new();
        for f in futs {
            v.push(f.await.unwrap());
        }
        v
    });
    let mut sorted = seqs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5000);
    assert!(
        log.stats()
            .batches
            .load(std::sync::atomic::Ordering::Relaxed)
            < 5000,
        "group commit"
    );
    log.close().unwrap();
    assert!(check(d.path()).ok);
}

/// The child of the crash test: appends from many threads, printing each
/// acknowledged seq and its payload marker, until killed.
#[test]
#[ignore = "run by kill9_during_heavy_writes_loses_no_acknowledged_event"]
fn crash_child() {
    let Ok(dir) = std::env::var("AUDIT_CRASH_DIR") else {
        return;
    };
    let (log, _) = AuditLog::open(cfg(Path::new(&dir))).unwrap();
    log.set_signer(Some(signer(1))).unwrap();
    let log = std::sync::Arc::new(log);
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let mut e = ev(i);
                    e.request_id = Some(format!("{t}-{i}"));
                    let seq = log.append_blocking(&e).unwrap();
                    use std::io::Write;
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ACK {seq} {t}-{i}").unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn kill9_during_heavy_writes_loses_no_acknowledged_event() {
    use std::io::{BufRead, BufReader};
    let rounds: usize = std::env::var("AUDIT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let d = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: std::collections::BTreeMap<u64, String> = Default::default();
    for round in 0..rounds {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("AUDIT_CRASH_DIR", d.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = l.strip_prefix("ACK ") {
                    let (s, id) = rest.split_once(' ').unwrap();
                    v.push((s.parse::<u64>().unwrap(), id.to_owned()));
                }
            }
            v
        });
        // A different moment each round: 30-250 ms into the run.
        std::thread::sleep(Duration::from_millis(30 + (round as u64 * 37) % 220));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for (s, id) in reader.join().unwrap() {
            acked.insert(s, id);
        }
    }
    assert!(acked.len() > 1000, "only {} acknowledged", acked.len());
    // Every acknowledged event is there, at its seq, with its content.
    let mut found = std::collections::BTreeMap::new();
    phivault_audit::query::for_each(d.path(), 0, |e| {
        if let Some(id) = e.event.request_id {
            found.insert(e.seq, id);
        }
        true
    })
    .unwrap();
    for (s, id) in &acked {
        assert_eq!(found.get(s), Some(id), "acknowledged entry {s} lost");
    }
    // Recovery leaves a log that verifies.
    let (log, _) = AuditLog::open(cfg(d.path())).unwrap();
    log.set_signer(Some(signer(1))).unwrap();
    log.close().unwrap();
    let r = check(d.path());
    assert!(r.ok, "{r:?}");
    eprintln!(
        "{rounds} kills, {} acknowledged events, all present",
        acked.len()
    );
}

/// A trail's id is made once and then kept; a damaged id file is an
/// error that names the file, never a new id (which would let the node's
/// name be bound to a second trail).
#[test]
fn trail_id_is_made_once_and_a_damaged_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = phivault_audit::log::trail_id(dir.path()).unwrap();
    assert_eq!(a.len(), 32);
    assert_eq!(phivault_audit::log::trail_id(dir.path()).unwrap(), a);
    let other = tempfile::tempdir().unwrap();
    assert_ne!(phivault_audit::log::trail_id(other.path()).unwrap(), a);
    std::fs::write(dir.path().join("trail-id"), "not an id\n").unwrap();
    let e = phivault_audit::log::trail_id(dir.path()).unwrap_err();
    assert!(e.to_string().contains("trail-id"), "{e}");
}
