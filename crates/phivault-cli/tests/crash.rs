//! Crash tests: SIGKILL the real binary at random moments of every durable
//! write (`init`, `keys rotate`, `keys destroy`, `encrypt -o`) and check
//! that what is left is always usable: the keystore opens, and an output
//! file is either absent or complete.
//!
//! Kill times are spread uniformly over 0 … 1.5× the operation's own
//! measured duration, so every phase of the write is hit. The seed is
//! printed; set PHIVAULT_CRASH_SEED to replay a run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 40;

mod common;
use common::Rng;

fn rng() -> Rng {
    Rng(common::seed("PHIVAULT_CRASH_SEED", "crash test"))
}

fn pv(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phivault"));
    c.env_clear()
        .arg("--quiet")
        .arg("--insecure-dev")
        .arg("--data-dir")
        .arg(dir);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn ok(c: &mut Command) -> String {
    let o = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs `c`, killing it after `delay`. Returns whether it was killed
/// before it finished.
fn run_and_kill(c: &mut Command, delay: Duration) -> bool {
    let mut child = c.spawn().unwrap();
    std::thread::sleep(delay);
    let killed = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    killed
}

fn duration_of(c: &mut Command) -> Duration {
    let t = Instant::now();
    assert!(c.status().unwrap().success());
    t.elapsed()
}

fn pick(r: &mut Rng, d: Duration) -> Duration {
    let max = (d.as_micros() as u64 * 3 / 2).max(200);
    Duration::from_micros(r.next() % max)
}

fn versions(dir: &Path, ring: &str) -> Vec<(u64, String)> {
    let out = ok(pv(dir).args(["--json", "keys", "list", "--all"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == ring)
        .expect("ring present");
    r["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A dev keystore in `<base>/data` with one ring.
fn dev_store_with_ring(base: &Path, ring: &str) -> std::path::PathBuf {
    let dir = base.join("data");
    ok(pv(&dir).arg("init"));
    ok(pv(&dir).args(["keys", "create", ring]));
    dir
}

#[test]
fn sigkill_during_init_never_leaves_an_unreadable_keystore() {
    let mut r = rng();
    let base = tempfile::tempdir().unwrap();
    let typical = duration_of(pv(&base.path().join("probe")).arg("init"));
    let mut killed = 0;
    for i in 0..ROUNDS {
        let dir = base.path().join(format!("d{i}"));
        killed += run_and_kill(pv(&dir).arg("init"), pick(&mut r, typical)) as usize;
        if dir.join("keystore.json").exists() {
            ok(pv(&dir).args(["keys", "list"]));
        } else {
            // Nothing usable was left, so init must simply work again.
            ok(pv(&dir).arg("init"));
            ok(pv(&dir).args(["keys", "list"]));
        }
    }
    eprintln!("init: killed mid-run {killed}/{ROUNDS}");
}

#[test]
fn sigkill_during_rotate_and_destroy_keeps_the_keystore_consistent() {
    let mut r = rng();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ok(pv(dir).arg("init"));
    ok(pv(dir).args(["keys", "create", "test/crash"]));
    let src = d.path().join("p");
    std::fs::write(&src, b"PHI that must survive").unwrap();
    let enc = d.path().join("p.pv");
    ok(pv(dir)
        .args(["encrypt", "-k", "test/crash"])
        .arg(&src)
        .arg("-o")
        .arg(&enc));
    let typical = duration_of(pv(dir).args(["keys", "rotate", "test/crash"]));
    let mut killed = 0;
    for _ in 0..ROUNDS {
        let before = versions(dir, "test/crash").len();
        killed += run_and_kill(
            pv(dir).args(["keys", "rotate", "test/crash"]),
            pick(&mut r, typical),
        ) as usize;
        let after = versions(dir, "test/crash").len();
        assert!(
            after == before || after == before + 1,
            "rotate left {after} versions from {before}"
        );
        // Version 1 data still decrypts after every crash.
        assert_eq!(
            ok(pv(dir).arg("decrypt").arg(&enc)),
            "PHI that must survive"
        );
    }
    eprintln!("rotate: killed mid-run {killed}/{ROUNDS}");

    // Destroy versions 2, 3, … one per round, killing each at random.
    while versions(dir, "test/crash").len() < 3 + ROUNDS / 2 {
        ok(pv(dir).args(["keys", "rotate", "test/crash"]));
    }
    let mut killed = 0;
    for target in 2..(2 + ROUNDS as u64 / 2) {
        run_and_kill(
            pv(dir).args([
                "keys",
                "destroy",
                "test/crash",
                "--yes",
                "--version",
                &target.to_string(),
            ]),
            pick(&mut r, typical),
        )
        .then(|| killed += 1);
        let vs = versions(dir, "test/crash");
        let state = &vs.iter().find(|(v, _)| *v == target).unwrap().1;
        assert!(state == "active" || state == "destroyed", "{state}");
        assert_eq!(
            ok(pv(dir).arg("decrypt").arg(&enc)),
            "PHI that must survive"
        );
    }
    eprintln!("destroy: killed mid-run {killed}/{}", ROUNDS / 2);
}

#[test]
fn sigkill_during_encrypt_never_leaves_a_partial_output() {
    let mut r = rng();
    let d = tempfile::tempdir().unwrap();
    let dir = dev_store_with_ring(d.path(), "test/files");
    let src = d.path().join("big");
    let pt: Vec<u8> = (0..24u32 << 20).map(|i| (i ^ (i >> 9)) as u8).collect();
    std::fs::write(&src, &pt).unwrap();
    let out = d.path().join("big.pv");
    let typical = duration_of(
        pv(&dir)
            .args(["encrypt", "-k", "test/files"])
            .arg(&src)
            .arg("-o")
            .arg(&out),
    );
    std::fs::remove_file(&out).unwrap();
    let mut killed = 0;
    for _ in 0..ROUNDS {
        let k = run_and_kill(
            pv(&dir)
                .args(["encrypt", "-k", "test/files"])
                .arg(&src)
                .arg("-o")
                .arg(&out),
            pick(&mut r, typical),
        );
        killed += k as usize;
        if out.exists() {
            let back = d.path().join("back");
            ok(pv(&dir).arg("decrypt").arg(&out).arg("-o").arg(&back));
            assert!(
                std::fs::read(&back).unwrap() == pt,
                "output present but not complete"
            );
            std::fs::remove_file(&out).unwrap();
        } else {
            assert!(k, "encrypt finished but left no output");
        }
    }
    eprintln!("encrypt: killed mid-run {killed}/{ROUNDS}");
}

/// Whether `dir`'s filesystem supports Linux O_TMPFILE (then phivault's
/// temporary files have no name until they are complete).
fn supports_o_tmpfile(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    const O_TMPFILE: i32 = 0o20_200_000; // __O_TMPFILE | O_DIRECTORY on Linux
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(O_TMPFILE)
        .open(dir)
        .is_ok()
}

/// Regression (review M5): a signal during `decrypt -o` must not leave
/// partial plaintext on disk. SIGTERM (like Ctrl-C) is caught and the
/// temporary file removed; SIGKILL can't be caught, but with O_TMPFILE the
/// partial data never had a name.
#[test]
fn signals_during_decrypt_leave_no_partial_plaintext() {
    let mut r = rng();
    let d = tempfile::tempdir().unwrap();
    let dir = dev_store_with_ring(d.path(), "test/files");
    let src = d.path().join("big");
    std::fs::write(&src, vec![7u8; 48 << 20]).unwrap();
    let enc = d.path().join("big.pv");
    ok(pv(&dir)
        .args(["encrypt", "-k", "test/files"])
        .arg(&src)
        .arg("-o")
        .arg(&enc));
    let out = d.path().join("out");
    let typical = duration_of(pv(&dir).arg("decrypt").arg(&enc).arg("-o").arg(&out));
    std::fs::remove_file(&out).unwrap();
    let mut signals = vec!["-TERM"];
    if supports_o_tmpfile(d.path()) {
        signals.push("-KILL");
    } else {
        eprintln!(
            "no O_TMPFILE here: SIGKILL leaves a named temporary file (SECURITY.md §4a); not tested"
        );
    }
    for sig in signals {
        for _ in 0..10 {
            let mut child = pv(&dir)
                .arg("decrypt")
                .arg(&enc)
                .arg("-o")
                .arg(&out)
                .spawn()
                .unwrap();
            std::thread::sleep(pick(&mut r, typical));
            let _ = Command::new("kill")
                .arg(sig)
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
            let temps = std::fs::read_dir(d.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".tmp")
                })
                .count();
            assert_eq!(
                temps, 0,
                "{sig}: a partial plaintext temp file was left behind"
            );
            if out.exists() {
                assert_eq!(std::fs::metadata(&out).unwrap().len(), 48 << 20);
                std::fs::remove_file(&out).unwrap();
            }
        }
    }
}
