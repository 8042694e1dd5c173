//! The real `phivault` binary, end to end: every command, every named
//! failure with its exit code and one-line message, and the agent.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::pv;

fn run(c: &mut Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap()
}

fn ok(c: &mut Command) -> String {
    let o = run(c);
    assert!(
        o.status.success(),
        "failed: {:?}\nstderr: {}",
        c,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(c: &mut Command, code: i32, needle: &str) -> String {
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(code),
        "{c:?}: wrong exit code; stderr: {err}"
    );
    assert!(
        err.contains(needle),
        "{c:?}: stderr lacks '{needle}': {err}"
    );
    err
}

fn with_stdin(c: &mut Command, input: &[u8]) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn dev(dir: &Path) -> Command {
    let mut c = pv(dir);
    c.arg("--insecure-dev");
    c
}

#[test]
fn dev_mode_files_and_stdin_roundtrip() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let o = run(dev(&data).arg("init"));
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("DEV MODE"));
    ok(dev(&data).args(["keys", "create", "test/files"]));
    let pt: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    let src = d.path().join("in.bin");
    std::fs::write(&src, &pt).unwrap();
    let enc = d.path().join("in.bin.pv");
    ok(dev(&data)
        .args(["encrypt", "-k", "test/files"])
        .arg(&src)
        .arg("-o")
        .arg(&enc));
    let out = d.path().join("out.bin");
    ok(dev(&data).arg("decrypt").arg(&enc).arg("-o").arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), pt);

    // stdin → stdout, both directions.
    let o = with_stdin(dev(&data).args(["encrypt", "-k", "test/files"]), &pt);
    assert!(o.status.success());
    let o2 = with_stdin(dev(&data).arg("decrypt"), &o.stdout);
    assert!(o2.status.success());
    assert_eq!(o2.stdout, pt);

    // Range decryption.
    let r = ok(dev(&data).args(["decrypt", "--range", "70000:5"]).arg(&enc));
    assert_eq!(r.as_bytes(), &pt[70000..70005]);

    // Envelope with context and the text form.
    let o = with_stdin(
        dev(&data).args([
            "encrypt",
            "-k",
            "test/files",
            "--envelope",
            "--text",
            "--context",
            "rec1/ssn",
        ]),
        b"123-45-6789",
    );
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("pve:"), "{text}");
    let o = with_stdin(
        dev(&data).args(["decrypt", "--context", "rec1/ssn"]),
        text.as_bytes(),
    );
    assert_eq!(o.stdout, b"123-45-6789");
    let o = with_stdin(
        dev(&data).args(["decrypt", "--context", "rec2/ssn"]),
        text.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(5));
    // Surrounding whitespace is trimmed (FORMAT.md §3.1).
    let padded = format!("  \n\t{}", text.trim_end());
    let o = with_stdin(
        dev(&data).args(["decrypt", "--context", "rec1/ssn"]),
        padded.as_bytes(),
    );
    assert_eq!(
        o.stdout,
        b"123-45-6789",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // inspect, without any key.
    let j: serde_json::Value =
        serde_json::from_str(&ok(pv(&data).args(["--json", "inspect"]).arg(&enc))).unwrap();
    assert_eq!(j["key_ring"], "test/files");
    assert_eq!(j["plaintext_len"], 300_000);
    assert_eq!(j["segments"], 5);

    // A dev keystore is refused without --insecure-dev.
    fails(pv(&data).args(["keys", "list"]), 1, "dev keystore");
}

#[test]
fn named_failures_have_exit_codes_and_one_line_errors() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    fails(pv(&data).args(["keys", "list"]), 3, "phivault init");
    ok(dev(&data).arg("init"));
    ok(dev(&data).args(["keys", "create", "test/a"]));
    let src = d.path().join("p");
    std::fs::write(&src, vec![1u8; 200_000]).unwrap();
    let enc = d.path().join("p.pv");
    ok(dev(&data)
        .args(["encrypt", "-k", "test/a", "--segment-exp", "12"])
        .arg(&src)
        .arg("-o")
        .arg(&enc));
    let ct = std::fs::read(&enc).unwrap();
    let bad = d.path().join("bad.pv");
    let out = d.path().join("out");

    // Tampered body: exit 5, and no output file appears.
    let mut t = ct.clone();
    t[ct.len() / 2] ^= 0x10;
    std::fs::write(&bad, &t).unwrap();
    let e = fails(
        dev(&data).arg("decrypt").arg(&bad).arg("-o").arg(&out),
        5,
        "decryption failed",
    );
    let errs: Vec<&str> = e
        .lines()
        .filter(|l| l.starts_with("phivault: error:"))
        .collect();
    assert_eq!(errs.len(), 1, "not one error line: {e}");
    assert_eq!(
        e.trim_end().lines().last(),
        Some(errs[0]),
        "error is not the last line: {e}"
    );
    assert!(!out.exists(), "partial plaintext left in place");
    assert_eq!(
        std::fs::read_dir(d.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
            .count(),
        0
    );

    // Truncated at a segment boundary, to a file and to stdout.
    let hlen = 8 + "test/a".len() + 4 + 64;
    std::fs::write(&bad, &ct[..hlen + 10 * (4096 + 16)]).unwrap();
    fails(
        dev(&data).arg("decrypt").arg(&bad).arg("-o").arg(&out),
        5,
        "truncated",
    );
    assert!(!out.exists());
    let o = with_stdin(dev(&data).arg("decrypt"), &ct[..hlen + 10 * (4096 + 16)]);
    assert_eq!(o.status.code(), Some(5));
    assert!(o.stdout.len() < 200_000);

    // Unknown format version: exit 7.
    let mut v = ct.clone();
    v[3] = 2;
    std::fs::write(&bad, &v).unwrap();
    fails(
        dev(&data).arg("decrypt").arg(&bad),
        7,
        "unsupported stream format version 2",
    );

    // Not a ciphertext at all.
    fails(
        dev(&data).arg("decrypt").arg(&src),
        5,
        "not a phivault ciphertext",
    );

    // Wrong key: same ring name in another keystore.
    let other = d.path().join("other");
    ok(dev(&other).arg("init"));
    ok(dev(&other).args(["keys", "create", "test/a"]));
    fails(dev(&other).arg("decrypt").arg(&enc), 5, "key is wrong");

    // Unknown ring: exit 6.
    fails(
        dev(&data)
            .args(["encrypt", "-k", "test/nope"])
            .arg(&src)
            .arg("-o")
            .arg(&out),
        6,
        "does not exist",
    );

    // Destroy: confirmation required, then the data is gone for good.
    fails(
        dev(&data).args(["keys", "destroy", "test/a", "--version", "1"]),
        1,
        "--yes",
    );
    fails(
        dev(&data).args(["keys", "destroy", "test/a", "--version", "1", "--yes"]),
        1,
        "rotate first",
    );
    ok(dev(&data).args(["keys", "rotate", "test/a"]));
    ok(dev(&data).args(["keys", "destroy", "test/a", "--version", "1", "--yes"]));
    fails(dev(&data).arg("decrypt").arg(&enc), 6, "destroyed");
}

fn shares(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["unseal_shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shamir_unseal_through_the_agent() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let sh = shares(&ok(pv(&data).args(["--json", "init"])));
    assert_eq!(sh.len(), 5);
    fails(pv(&data).args(["keys", "list"]), 3, "sealed");
    fails(pv(&data).arg("status"), 3, "");

    // Two shares in one call ask for a complete unseal: too few.
    fails(
        pv(&data).arg("unseal").arg(&sh[0]).arg(&sh[1]),
        4,
        "too few unseal shares: have 2, need 3",
    );
    // A mistyped share.
    let mut typo = sh[2].clone();
    typo.replace_range(20..21, if &typo[20..21] == "A" { "B" } else { "A" });
    fails(pv(&data).arg("unseal").arg(&typo), 4, "mistyped");

    // One share per call, as custodians do.
    assert!(ok(pv(&data).arg("unseal").arg(&sh[4])).contains("2 more needed"));
    assert!(ok(pv(&data).arg("unseal").arg(&sh[0])).contains("1 more needed"));
    assert!(ok(pv(&data).arg("unseal").arg(&sh[2])).contains("Unsealed"));
    let st: serde_json::Value =
        serde_json::from_str(&ok(pv(&data).args(["--json", "status"]))).unwrap();
    assert_eq!(st["keystore"]["sealed"], false);
    assert_eq!(st["crypto_module"]["fips_build"], cfg!(feature = "fips"));

    ok(pv(&data).args(["keys", "create", "prod/claims"]));
    let src = d.path().join("claims.csv");
    std::fs::write(&src, b"id,diagnosis\n1,J45.909\n").unwrap();
    let enc = d.path().join("claims.pv");
    ok(pv(&data)
        .args(["encrypt", "-k", "prod/claims"])
        .arg(&src)
        .arg("-o")
        .arg(&enc));

    // Escrow to a second keystore, then restore there.
    let esc = d.path().join("keys.escrow");
    ok(pv(&data)
        .args(["keys", "backup", "--all", "-o"])
        .arg(&esc)
        .env("PHIVAULT_BACKUP_PASSPHRASE", "a long backup secret"));
    ok(pv(&data).arg("seal"));
    fails(pv(&data).arg("decrypt").arg(&enc), 3, "sealed");

    let other = d.path().join("other");
    ok(dev(&other).arg("init"));
    fails(
        dev(&other)
            .args(["keys", "restore"])
            .arg(&esc)
            .env("PHIVAULT_BACKUP_PASSPHRASE", "the wrong secret!"),
        4,
        "wrong backup passphrase",
    );
    ok(dev(&other)
        .args(["keys", "restore"])
        .arg(&esc)
        .env("PHIVAULT_BACKUP_PASSPHRASE", "a long backup secret"));
    assert_eq!(
        ok(dev(&other).arg("decrypt").arg(&enc)),
        "id,diagnosis\n1,J45.909\n"
    );

    // A share from another keystore is refused.
    let third = d.path().join("third");
    let sh3 = shares(&ok(pv(&third).args(["--json", "init"])));
    fails(
        pv(&data).arg("unseal").arg(&sh3[0]),
        4,
        "different keystore",
    );
    ok(pv(&data).arg("seal"));
}

#[test]
fn passphrase_keystore() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    ok(pv(&data)
        .args(["init", "--passphrase"])
        .env("PHIVAULT_PASSPHRASE", "correct horse battery staple"));
    fails(
        pv(&data)
            .arg("unseal")
            .env("PHIVAULT_PASSPHRASE", "wrong horse battery staple"),
        4,
        "wrong passphrase",
    );
    ok(pv(&data)
        .args(["keys", "create", "test/x"])
        .env("PHIVAULT_PASSPHRASE", "correct horse battery staple"));
    ok(pv(&data).arg("seal"));
    let d2 = tempfile::tempdir().unwrap();
    fails(
        pv(d2.path())
            .args(["init", "--passphrase"])
            .env("PHIVAULT_PASSPHRASE", "short"),
        1,
        "at least 12",
    );
}

#[test]
fn help_completions_and_exit_code_table() {
    let d = tempfile::tempdir().unwrap();
    let help = ok(pv(d.path()).arg("--help"));
    assert!(help.contains("EXIT CODES") && help.contains("unseal"));
    for sub in [
        "init", "unseal", "seal", "status", "keys", "encrypt", "decrypt", "inspect",
    ] {
        assert!(
            ok(pv(d.path()).args([sub, "--help"])).len() > 100,
            "{sub} --help too thin"
        );
    }
    assert!(ok(pv(d.path()).args(["completions", "bash"])).contains("phivault"));
    assert_eq!(run(pv(d.path()).arg("--bogus")).status.code(), Some(2));
}

/// Regression: `-o /dev/null` once renamed a temporary file over the
/// device. Non-regular outputs are written in place; a FIFO stands in for
/// the device here so a failure can't damage the machine.
#[test]
fn output_to_a_fifo_is_written_in_place() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    ok(dev(&data).arg("init"));
    ok(dev(&data).args(["keys", "create", "test/a"]));
    let src = d.path().join("src");
    std::fs::write(&src, b"hello fifo").unwrap();
    let fifo = d.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let f2 = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read(&f2).unwrap());
    ok(dev(&data)
        .args(["encrypt", "-k", "test/a"])
        .arg(&src)
        .arg("-o")
        .arg(&fifo));
    // Check before joining: if the FIFO was replaced, the reader would wait forever.
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced"
    );
    let ct = reader.join().unwrap();
    assert!(ct.starts_with(b"PVS"));
}

#[test]
fn config_file_then_environment_then_flags() {
    let d = tempfile::tempdir().unwrap();
    let from_file = d.path().join("from-file");
    let from_env = d.path().join("from-env");
    let from_flag = d.path().join("from-flag");
    for dir in [&from_file, &from_env, &from_flag] {
        ok(dev(dir).arg("init"));
    }
    ok(dev(&from_file).args(["keys", "create", "filens/a"]));
    ok(dev(&from_env).args(["keys", "create", "envns/a"]));
    ok(dev(&from_flag).args(["keys", "create", "flagns/a"]));
    let cfg = d.path().join("phivault.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nnamespace = \"filens\"\ncolour = \"blue\"\n",
            from_file
        ),
    )
    .unwrap();
    let base = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_phivault"));
        c.env_clear()
            .arg("--insecure-dev")
            .arg("--json")
            .env("PHIVAULT_CONFIG", &cfg);
        c
    };
    let names = |o: Output| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    // The file alone: its data dir and namespace; its unknown key is warned about.
    let o = run(base().args(["keys", "list"]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown key 'colour'"));
    assert_eq!(names(o), ["filens/a"]);
    // The environment beats the file.
    let o = run(base()
        .env("PHIVAULT_DATA_DIR", &from_env)
        .env("PHIVAULT_NAMESPACE", "envns")
        .args(["keys", "list"]));
    assert_eq!(names(o), ["envns/a"]);
    // A flag beats both, also when given after the subcommand.
    let o = run(base()
        .env("PHIVAULT_DATA_DIR", &from_env)
        .args(["keys", "list", "--namespace", "flagns", "--data-dir"])
        .arg(&from_flag));
    assert_eq!(names(o), ["flagns/a"]);
    // A broken file is a usage error that names the file.
    std::fs::write(&cfg, "data_dir = [").unwrap();
    let o = run(base().args(["keys", "list"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("phivault.toml"));
}
