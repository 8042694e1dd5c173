//! Key custody end to end on a real filesystem: init with each method,
//! unseal, lifecycle, tamper detection, escrow, and the agent over a real
//! Unix socket.

use phivault_core::envelope;
use phivault_core::keys::{KeyError, KeyRingName};
use phivault_core::secret::SecretBytes;
use phivault_keystore::service::{AgentKeysExt, KeyService, Request, Response};
use phivault_keystore::{InitMethod, Keystore, KeystoreError, agent, escrow, seal, store};

fn ring(s: &str) -> KeyRingName {
    KeyRingName::parse(s).unwrap()
}

fn pw(s: &str) -> SecretBytes {
    SecretBytes::new(s.as_bytes().to_vec())
}

fn shares_text(out: &phivault_keystore::InitOutcome) -> Vec<String> {
    out.shares
        .iter()
        .map(|s| String::from_utf8(s.expose_secret().to_vec()).unwrap())
        .collect()
}

#[test]
fn shamir_three_of_five() {
    let d = tempfile::tempdir().unwrap();
    let out = store::init(
        d.path(),
        InitMethod::Shamir {
            threshold: 3,
            shares: 5,
        },
    )
    .unwrap();
    let shares = shares_text(&out);
    assert_eq!(shares.len(), 5);
    assert!(matches!(
        store::init(d.path(), InitMethod::Dev),
        Err(KeystoreError::AlreadyInitialized(_))
    ));

    let mut u = seal::Unsealer::new(d.path()).unwrap();
    assert!(u.submit(&shares[4]).unwrap().is_none());
    assert!(
        matches!(u.submit(&shares[4]), Err(KeystoreError::Shamir(_))),
        "duplicate share accepted"
    );
    assert!(u.submit(&shares[1]).unwrap().is_none());
    assert_eq!(u.progress().have, 2);
    let ks = u
        .submit(&shares[2])
        .unwrap()
        .expect("unsealed with 3 shares");
    ks.create_ring(&ring("prod/billing"), 90).unwrap();

    // A share from another keystore is refused by name.
    let other = tempfile::tempdir().unwrap();
    let o = shares_text(
        &store::init(
            other.path(),
            InitMethod::Shamir {
                threshold: 2,
                shares: 3,
            },
        )
        .unwrap(),
    );
    let mut u = seal::Unsealer::new(d.path()).unwrap();
    assert!(matches!(
        u.submit(&o[0]),
        Err(KeystoreError::Shamir(
            phivault_core::shamir::ShamirError::WrongSet
        ))
    ));

    // Dev key file refused for a Shamir keystore.
    assert!(matches!(
        Keystore::open_dev(d.path()),
        Err(KeystoreError::NotDevKeystore("shamir"))
    ));
    // Passphrase refused for a Shamir keystore.
    assert!(matches!(
        seal::open_with_passphrase(d.path(), &pw("x")),
        Err(KeystoreError::WrongMethod { .. })
    ));
}

#[test]
fn passphrase_unseal_and_wrong_passphrase() {
    let d = tempfile::tempdir().unwrap();
    store::init(
        d.path(),
        InitMethod::Passphrase {
            passphrase: pw("correct horse battery"),
            iterations: 600_000,
        },
    )
    .unwrap();
    assert!(matches!(
        seal::open_with_passphrase(d.path(), &pw("wrong horse")),
        Err(KeystoreError::WrongPassphrase)
    ));
    seal::open_with_passphrase(d.path(), &pw("correct horse battery")).unwrap();
    let d2 = tempfile::tempdir().unwrap();
    assert!(
        store::init(
            d2.path(),
            InitMethod::Passphrase {
                passphrase: pw("p"),
                iterations: 1000
            }
        )
        .is_err()
    );
}

#[test]
fn lifecycle_rotate_min_version_disable_destroy() {
    let d = tempfile::tempdir().unwrap();
    store::init(d.path(), InitMethod::Dev).unwrap();
    let ks = Keystore::open_dev(d.path()).unwrap();
    let r = ring("test/pii");
    ks.create_ring(&r, 30).unwrap();
    assert!(matches!(
        ks.create_ring(&r, 30),
        Err(KeystoreError::RingExists(_))
    ));
    let v1 = envelope::encrypt(&ks, &r, b"ctx", b"Jane Doe").unwrap();
    assert_eq!(ks.rotate(&r).unwrap(), 2);
    let v2 = envelope::encrypt(&ks, &r, b"ctx", b"John Roe").unwrap();
    assert_eq!(envelope::parse_header(&v2).unwrap().version.get(), 2);
    // Old versions still decrypt after rotation.
    assert_eq!(envelope::decrypt(&ks, &v1, b"ctx").unwrap(), b"Jane Doe");

    ks.set_min_decryption_version(&r, 2).unwrap();
    assert!(matches!(
        envelope::decrypt(&ks, &v1, b"ctx"),
        Err(envelope::EnvelopeError::Key(KeyError::BelowMinimum(..)))
    ));
    ks.set_min_decryption_version(&r, 1).unwrap();

    ks.set_disabled(&r, true).unwrap();
    assert!(matches!(
        envelope::decrypt(&ks, &v2, b"ctx"),
        Err(envelope::EnvelopeError::Key(KeyError::Disabled(_)))
    ));
    ks.set_disabled(&r, false).unwrap();

    assert!(
        ks.destroy(&r, 2).is_err(),
        "primary must not be destroyable"
    );
    ks.destroy(&r, 1).unwrap();
    assert!(matches!(
        envelope::decrypt(&ks, &v1, b"ctx"),
        Err(envelope::EnvelopeError::Key(KeyError::Destroyed(..)))
    ));
    // Destroyed for good: the wrapped key is gone from the file, and a
    // fresh open can't bring it back.
    let text = std::fs::read_to_string(d.path().join(store::KEYSTORE_FILE)).unwrap();
    assert!(text.contains("\"destroyed\""));
    let ks2 = Keystore::open_dev(d.path()).unwrap();
    assert!(envelope::decrypt(&ks2, &v1, b"ctx").is_err());
    assert_eq!(envelope::decrypt(&ks2, &v2, b"ctx").unwrap(), b"John Roe");

    let list = ks2.list(Some("test")).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].primary_version, Some(2));
    assert!(!list[0].rotation_overdue);
    assert!(ks2.list(Some("prod")).unwrap().is_empty());
}

#[test]
fn edits_outside_phivault_are_caught() {
    let d = tempfile::tempdir().unwrap();
    store::init(d.path(), InitMethod::Dev).unwrap();
    let ks = Keystore::open_dev(d.path()).unwrap();
    ks.create_ring(&ring("test/a"), 30).unwrap();
    ks.rotate(&ring("test/a")).unwrap();
    let p = d.path().join(store::KEYSTORE_FILE);
    let orig = std::fs::read_to_string(&p).unwrap();
    for (from, to) in [
        (
            "\"min_decryption_version\": 1",
            "\"min_decryption_version\": 2",
        ),
        ("\"max_age_days\": 30", "\"max_age_days\": 31"),
    ] {
        std::fs::write(&p, orig.replace(from, to)).unwrap();
        assert!(
            matches!(Keystore::open_dev(d.path()), Err(KeystoreError::Tampered)),
            "edit {from} not caught"
        );
    }
    std::fs::write(&p, &orig[..orig.len() / 2]).unwrap();
    assert!(matches!(
        Keystore::open_dev(d.path()),
        Err(KeystoreError::Corrupt(_))
    ));
}

#[test]
fn escrow_moves_keys_to_another_keystore() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    store::init(a.path(), InitMethod::Dev).unwrap();
    store::init(b.path(), InitMethod::Dev).unwrap();
    let ka = Keystore::open_dev(a.path()).unwrap();
    let kb = Keystore::open_dev(b.path()).unwrap();
    let r = ring("prod/claims");
    ka.create_ring(&r, 90).unwrap();
    let ct = envelope::encrypt(&ka, &r, b"", b"MRN 1234").unwrap();
    let file = escrow::export(&ka, &pw("backup secret 123"), None).unwrap();
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(!text.contains("MRN"));
    assert_eq!(
        escrow::inspect(&file).unwrap().rings,
        vec!["prod/claims".to_string()]
    );
    assert!(matches!(
        escrow::import(&kb, &file, &pw("wrong secret 123")),
        Err(KeystoreError::WrongBackupSecret)
    ));
    assert!(escrow::export(&ka, &pw("short"), None).is_err());
    escrow::import(&kb, &file, &pw("backup secret 123")).unwrap();
    assert_eq!(envelope::decrypt(&kb, &ct, b"").unwrap(), b"MRN 1234");
    assert!(matches!(
        escrow::import(&kb, &file, &pw("backup secret 123")),
        Err(KeystoreError::RingExists(_))
    ));
}

#[test]
fn agent_over_unix_socket() {
    let d = tempfile::tempdir().unwrap();
    let shares = shares_text(
        &store::init(
            d.path(),
            InitMethod::Shamir {
                threshold: 2,
                shares: 3,
            },
        )
        .unwrap(),
    );
    let dir = d.path().to_path_buf();
    let server = std::thread::spawn(move || agent::serve(&dir));
    let client = loop {
        if let Some(c) = agent::AgentClient::connect(d.path()) {
            break c;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let err = client.call(Request::List { namespace: None }).unwrap();
    assert!(matches!(err, Response::Error { ref code, .. } if code == "sealed"));
    let r = client
        .call(Request::Unseal {
            share: shares[0].clone().into(),
        })
        .unwrap();
    assert!(matches!(r, Response::Status(ref s) if s.sealed && s.progress.unwrap().have == 1));
    let r = client
        .call(Request::Unseal {
            share: shares[2].clone().into(),
        })
        .unwrap();
    assert!(matches!(r, Response::Status(ref s) if !s.sealed));
    client
        .call(Request::CreateRing {
            ring: "prod/x".into(),
            max_age_days: 10,
        })
        .unwrap();
    let keys = client.keys();
    let ct = envelope::encrypt(&keys, &ring("prod/x"), b"", b"secret").unwrap();
    assert_eq!(envelope::decrypt(&keys, &ct, b"").unwrap(), b"secret");

    // A second agent for the same data dir is refused while this one lives.
    let e = agent::serve(d.path()).unwrap_err();
    assert!(e.to_string().contains("already running"), "{e}");

    // Hostile clients: an oversized request, garbage, and one that sends
    // nothing. Each gets an error or a close, and the agent keeps serving.
    use std::io::{Read, Write};
    let sock = agent::socket_path(d.path());
    let mut big = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let _ = big.write_all(&vec![b'x'; 2 << 20]);
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(answer.is_empty() || answer.contains("too long"), "{answer}");
    let mut junk = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    junk.write_all(b"{not json}\n").unwrap();
    let mut answer = String::new();
    junk.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("malformed request"), "{answer}");
    let silent = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let started = std::time::Instant::now();
    let r = client.call(Request::List { namespace: None }).unwrap();
    assert!(matches!(r, Response::Rings { .. }), "agent stopped serving");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "a silent client held the agent too long"
    );
    drop(silent);

    client.call(Request::Seal).unwrap();
    server.join().unwrap().unwrap();
    assert!(agent::AgentClient::connect(d.path()).is_none());
}

/// Regression (review H2): a long-lived keystore (the agent) must notice a
/// destroy, disable or new minimum made by another process.
#[test]
fn a_second_process_destroy_is_seen_by_a_running_keystore() {
    let d = tempfile::tempdir().unwrap();
    store::init(d.path(), InitMethod::Dev).unwrap();
    let agent_view = Keystore::open_dev(d.path()).unwrap();
    // As the agent runs it: every key use checks the file.
    agent_view.set_key_use_recheck(std::time::Duration::ZERO);
    let other_process = Keystore::open_dev(d.path()).unwrap();
    let r = ring("prod/shred");
    other_process.create_ring(&r, 30).unwrap();
    let ct = envelope::encrypt(&agent_view, &r, b"", b"MRN 42").unwrap();
    other_process.rotate(&r).unwrap();
    other_process.destroy(&r, 1).unwrap();
    assert!(matches!(
        envelope::decrypt(&agent_view, &ct, b""),
        Err(envelope::EnvelopeError::Key(KeyError::Destroyed(..)))
    ));
    other_process.set_disabled(&r, true).unwrap();
    assert!(matches!(
        envelope::encrypt(&agent_view, &r, b"", b"x"),
        Err(envelope::EnvelopeError::Key(KeyError::Disabled(_)))
    ));
    // And escrow made through the long-lived view has no destroyed key.
    let file = escrow::export(&agent_view, &pw("backup secret 123"), None).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    store::init(fresh.path(), InitMethod::Dev).unwrap();
    let kf = Keystore::open_dev(fresh.path()).unwrap();
    escrow::import(&kf, &file, &pw("backup secret 123")).unwrap();
    kf.set_disabled(&r, false).unwrap();
    assert!(envelope::decrypt(&kf, &ct, b"").is_err());
}

/// Regression (review H1): the agent folder must be private to its owner.
#[test]
fn agent_folder_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let d = data.as_path();
    store::init(
        d,
        InitMethod::Shamir {
            threshold: 2,
            shares: 2,
        },
    )
    .unwrap();
    let run = d.join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = agent::serve(d).unwrap_err();
    assert!(e.to_string().contains("group or others"), "{e}");
    assert!(agent::AgentClient::connect(d).is_none());
    assert!(agent::check_run_dir(d).is_err());
    assert_eq!(
        std::fs::metadata(d).unwrap().permissions().mode() & 0o777,
        0o700,
        "data dir not owner-only"
    );
}

/// Regression (review): a keystore file naming an absurd PBKDF2 count is
/// refused at once instead of making unseal spin for hours.
#[test]
fn implausible_pbkdf2_count_is_refused() {
    let d = tempfile::tempdir().unwrap();
    store::init(
        d.path(),
        InitMethod::Passphrase {
            passphrase: pw("correct horse battery"),
            iterations: 600_000,
        },
    )
    .unwrap();
    let p = d.path().join(store::KEYSTORE_FILE);
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        text.replace("\"iterations\": 600000", "\"iterations\": 4000000000"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        seal::open_with_passphrase(d.path(), &pw("correct horse battery")),
        Err(KeystoreError::Corrupt(_))
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// The default in-process setting sees another process's destroy within
/// its recheck interval (1 ms).
#[test]
fn default_recheck_sees_other_processes_within_a_millisecond() {
    let d = tempfile::tempdir().unwrap();
    store::init(d.path(), InitMethod::Dev).unwrap();
    let reader = Keystore::open_dev(d.path()).unwrap();
    let writer = Keystore::open_dev(d.path()).unwrap();
    let r = ring("prod/shred");
    writer.create_ring(&r, 30).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let ct = envelope::encrypt(&reader, &r, b"", b"MRN 42").unwrap();
    writer.rotate(&r).unwrap();
    writer.destroy(&r, 1).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(matches!(
        envelope::decrypt(&reader, &ct, b""),
        Err(envelope::EnvelopeError::Key(KeyError::Destroyed(..)))
    ));
}
