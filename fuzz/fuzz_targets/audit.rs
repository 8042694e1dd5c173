//! The audit trail's parsers: segment headers and frames (what recovery
//! and verification read from disk), the group-commit journal's batch
//! chain (what a start replays), event JSON, signed notes and
//! checkpoint bodies, tlog-witness add-checkpoint requests and the
//! witness's decision on them, cosignatures, verifier keys, proof
//! verification with arbitrary
//! hashes, and time expressions. None may panic.
#![no_main]
#![forbid(unsafe_code)]
use libfuzzer_sys::fuzz_target;
use phivault_audit::segment::{Frames, parse_header};
use phivault_audit::{Event, journal, query};
use phivault_core::audit::merkle;
use phivault_core::audit::note::{Checkpoint, NoteVerifier};
use phivault_core::audit::witness::{self, AddCheckpoint, TrustedLog};

const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

fn hashes(b: &[u8]) -> Vec<merkle::Hash> {
    b.chunks_exact(32).map(|c| c.try_into().unwrap()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => {
            let start = parse_header(rest).map(|h| h.len).unwrap_or(0);
            for f in Frames::new(rest, start) {
                if let Ok(e) = serde_json::from_slice::<Event>(f.json()) {
                    let _ = e.unix_ms();
                    let _ = query::syslog_line(&query::Entry { seq: f.seq, event: e }, "h");
                }
            }
        }
        1 => {
            if let Ok(s) = std::str::from_utf8(rest) {
                let v = NoteVerifier::parse(VKEY).unwrap();
                let _ = v.verify(s);
                let _ = v.open_checkpoint(s);
                let _ = Checkpoint::parse_body(s);
                let _ = NoteVerifier::parse(s);
                if let Ok(req) = AddCheckpoint::parse(s) {
                    assert_eq!(AddCheckpoint::parse(&req.encode()).unwrap(), req);
                    let logs = [TrustedLog {
                        origin: "example.com/audit".into(),
                        keys: vec![v.clone()],
                    }];
                    let _ = witness::check(&req, &logs, |_| None);
                }
                let _ = witness::parse_size_answer(s);
            }
        }
        2 => {
            if rest.len() < 16 {
                return;
            }
            let a = u64::from_le_bytes(rest[..8].try_into().unwrap()) % 4096;
            let b = u64::from_le_bytes(rest[8..16].try_into().unwrap()) % 4096;
            let h = hashes(&rest[16..]);
            if h.len() >= 2 {
                let _ = merkle::verify_inclusion(&h[0], a, b, &h[2..], &h[1]);
                let _ = merkle::verify_consistency(a, b, &h[0], &h[1], &h[2..]);
            }
            if (a as usize) <= h.len() && (b as usize) <= h.len() {
                let _ = merkle::inclusion_proof(&h, a, b);
                let _ = merkle::consistency_proof(&h, a, b);
            }
        }
        3 => {
            if let Ok(s) = std::str::from_utf8(rest) {
                let _ = query::parse_when(s, 1_700_000_000_000);
                let _ = serde_json::from_str::<Event>(s);
            }
        }
        _ => {
            // Every batch the chain accepts is whole: its frames parse to
            // the end and carry its seqs. The trail is the one the first
            // batch names, so this trail's `PVJ2` batches are reachable.
            let trail: Option<journal::TrailId> = rest.get(4..20).and_then(|t| t.try_into().ok());
            for b in journal::chain(rest, trail.as_ref()) {
                let seqs: Vec<u64> = Frames::new(b.frames, 0).map(|f| f.seq).collect();
                assert_eq!(seqs.len(), b.n as usize);
                assert!(seqs.iter().enumerate().all(|(i, s)| *s == b.first_seq + i as u64));
            }
        }
    }
});
