//! Shamir share text decoder and combiner.
#![no_main]
#![forbid(unsafe_code)]
use libfuzzer_sys::fuzz_target;
use phivault_core::shamir::{Share, combine};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let shares: Vec<Share> = s.lines().filter_map(|l| Share::decode(l, None).ok()).collect();
        let _ = combine(&shares);
    }
});
