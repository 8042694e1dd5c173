//! Precision and recall of the PHI detectors on the labelled synthetic
//! corpus (`phivault_scan::phi::corpus`).
//!
//! The default test asserts floors on a small corpus. The ignored one
//! prints the full table for BENCHMARKS.md and can leave a large corpus
//! behind for a throughput run (`scripts/phi-precision.sh` does both):
//!
//! ```text
//! PHI_CORPUS_SCALE=10 cargo test --release -p phivault-scan --test phi_corpus -- --ignored --nocapture
//! ```

use phivault_scan::phi::{self, PhiType, corpus};
use std::path::PathBuf;

fn run(scale: usize, dir: &std::path::Path) -> (corpus::Corpus, phi::Report) {
    let c = corpus::generate(dir, 20240229, scale).unwrap();
    let opts = phi::Options {
        max_hits_per_file: usize::MAX,
        ..phi::Options::default()
    };
    let t = std::time::Instant::now();
    let r = phi::scan(&[dir.to_path_buf()], &opts, &|_| {});
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "scanned {} files, {:.1} MB in {secs:.2} s ({:.1} MB/s)",
        c.files.len(),
        c.bytes as f64 / 1e6,
        c.bytes as f64 / 1e6 / secs
    );
    (c, r)
}

#[test]
fn precision_and_recall_floors() {
    let d = tempfile::tempdir().unwrap();
    let (c, r) = run(1, d.path());
    let scores = corpus::measure(&c, d.path(), &r);
    let table = corpus::table(&scores);
    println!("{table}");
    for t in PhiType::ALL {
        let s = &scores[&t];
        assert!(s.labels >= 50, "{t}: only {} labels", s.labels);
        assert!(
            s.precision() >= 0.95,
            "{t}: precision {:.3}\n{table}",
            s.precision()
        );
        assert!(s.recall() >= 0.9, "{t}: recall {:.3}\n{table}", s.recall());
    }
    // Nothing in the files the corpus did not label as PHI-free… and no
    // warnings: every file was read.
    for f in &r.files {
        assert!(f.warning.is_none() && f.skipped.is_none(), "{f:?}");
    }
    assert!(
        r.files
            .iter()
            .filter(|f| f.path.contains("orders_"))
            .all(|f| f.hits.is_empty()),
        "order exports hold no PHI"
    );
}

#[test]
fn the_corpus_is_deterministic() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = corpus::generate(a.path(), 7, 1).unwrap();
    let cb = corpus::generate(b.path(), 7, 1).unwrap();
    assert_eq!(ca.labels, cb.labels);
    for f in ca.files.iter().filter(|f| !f.ends_with(".db")) {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f}"
        );
    }
}

/// The full table, on a larger corpus. `PHI_CORPUS_DIR` keeps the corpus
/// (for timing the CLI on it); `PHI_CORPUS_SCALE` sizes it (1 ≈ 1 MB).
#[test]
#[ignore]
fn full_table() {
    let scale = std::env::var("PHI_CORPUS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let tmp = tempfile::tempdir().unwrap();
    let dir =
        std::env::var_os("PHI_CORPUS_DIR").map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    let (c, r) = run(scale, &dir);
    let scores = corpus::measure(&c, &dir, &r);
    println!(
        "corpus: seed 20240229, scale {scale}, {} files, {:.1} MB, {} labels\n",
        c.files.len(),
        c.bytes as f64 / 1e6,
        c.labels.len()
    );
    println!("{}", corpus::table(&scores));
}
