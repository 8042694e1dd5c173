//! The TLS scanner against servers this project doesn't control: openssl
//! `s_server` and nginx configured with legacy protocols and weak suites,
//! PostgreSQL behind STARTTLS, and hostile fakes (silent, garbage, floods).
//! The versions and suites found must equal what each server offers.

use phivault_scan::finding::Status;
use phivault_scan::tls::{self, Profile, ScanOptions, Target, TlsReport};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn require(tool: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("PHIVAULT_REQUIRE_ALL_TESTS").is_none(),
            "{tool} is missing (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {tool} not installed");
    }
    ok
}

fn sh(dir: &Path, cmd: &str) {
    let out = Command::new("sh")
        .current_dir(dir)
        .args(["-c", cmd])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and an RSA server certificate for localhost, made with openssl.
fn pki(dir: &Path) {
    sh(
        dir,
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 -subj '/CN=scan-test-ca' 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj '/CN=localhost' 2>/dev/null && \
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\nbasicConstraints=CA:FALSE\\n' > ext && \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 20 -extfile ext 2>/dev/null",
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "server on {port} never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn s_server(dir: &Path, args: &[&str]) -> (Server, u16) {
    let port = free_port();
    let child = Command::new("openssl")
        .current_dir(dir)
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "srv.pem",
            "-key",
            "srv.key",
            "-www",
            "-quiet",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    (Server(child), port)
}

fn opts(dir: &Path) -> ScanOptions {
    ScanOptions {
        ca_bundle: Some(dir.join("ca.pem")),
        ..Default::default()
    }
}

fn target(port: u16) -> Target {
    format!("127.0.0.1:{port},sni=localhost").parse().unwrap()
}

fn suites(r: &TlsReport, v: &str) -> Vec<String> {
    let o = r
        .observed
        .as_ref()
        .unwrap_or_else(|| panic!("scan failed: {:?}", r.error));
    o.versions
        .iter()
        .find(|x| x.version == v)
        .unwrap()
        .suites
        .iter()
        .map(|s| s.code.clone())
        .collect()
}

fn status(r: &TlsReport, id: &str) -> Status {
    r.findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no finding {id}: {:#?}", r.findings))
        .status
}

#[test]
fn finds_exactly_what_s_server_offers_in_its_order() {
    if !require("openssl") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    pki(d.path());
    let (_s, port) = s_server(
        d.path(),
        &[
            "-cipher",
            "ECDHE-RSA-AES128-SHA:AES256-SHA:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
            "-ciphersuites",
            "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
            "-serverpref",
            "-groups",
            "P-384:P-256",
            "-verify",
            "1",
            "-CAfile",
            "ca.pem",
        ],
    );
    let r = tls::scan(&target(port), &opts(d.path()));
    let o = r.observed.as_ref().expect("scanned");
    // TLS 1.0/1.1 can't use GCM; the order is the server's.
    assert_eq!(suites(&r, "TLSv1.0"), ["0xC013", "0x0035"]);
    assert_eq!(suites(&r, "TLSv1.1"), ["0xC013", "0x0035"]);
    assert_eq!(
        suites(&r, "TLSv1.2"),
        ["0xC013", "0x0035", "0xC030", "0xC02F"]
    );
    assert_eq!(suites(&r, "TLSv1.3"), ["0x1302", "0x1301"]);
    assert!(suites(&r, "SSLv3").is_empty() && suites(&r, "SSLv2").is_empty());
    assert_eq!(o.versions[4].server_order, Some(true));
    assert_eq!(o.groups, ["secp256r1", "secp384r1"]);
    assert_eq!(o.client_cert_requested, Some(true));
    assert_eq!(o.client_cas, ["CN=scan-test-ca"]);
    // -CAfile makes s_server append the CA to the chain.
    assert_eq!(o.chain.len(), 2);
    assert_eq!(o.chain[1].subject, "CN=scan-test-ca");
    assert_eq!(o.chain[0].key, "RSA 2048");
    assert!(o.chain[0].san.contains(&"DNS:localhost".to_owned()));
    assert_eq!(o.trust, Some(Ok(())));
    assert_eq!(status(&r, "TLS-VERSION-LEGACY"), Status::Fail);
    assert_eq!(status(&r, "TLS-SUITES"), Status::Fail); // static RSA 0x0035
    assert_eq!(status(&r, "TLS-SUITE-ORDER"), Status::Pass);
    assert_eq!(status(&r, "TLS-GROUPS"), Status::Pass);
    assert_eq!(status(&r, "TLS-CERT-TRUST"), Status::Pass);
    assert_eq!(status(&r, "TLS-CERT-EXPIRY"), Status::Warn); // 20 days left
    assert_eq!(status(&r, "TLS-EMS"), Status::Pass);
    assert_eq!(status(&r, "TLS-RENEGOTIATION"), Status::Pass);
    assert_eq!(status(&r, "TLS-DOWNGRADE"), Status::Pass);
    assert_eq!(status(&r, "TLS-COMPRESSION"), Status::Pass);
    // `-verify 1` asks for a client certificate but goes on without one.
    assert_eq!(o.client_cert_required, Some(false));
    assert_eq!(status(&r, "TLS-MTLS"), Status::Warn);
    assert_eq!(status(&r, "TLS-CERT-HOSTNAME"), Status::Pass);

    // A CA bundle that doesn't hold the issuer: untrusted. A wrong name too.
    let other = tempfile::tempdir().unwrap();
    pki(other.path());
    let mut o2 = opts(other.path());
    o2.profile = Profile::Hipaa;
    let r2 = tls::scan(&target(port), &o2);
    assert_eq!(status(&r2, "TLS-CERT-TRUST"), Status::Fail);
    let r3 = tls::scan(
        &format!("127.0.0.1:{port},sni=other.test").parse().unwrap(),
        &opts(d.path()),
    );
    assert_eq!(status(&r3, "TLS-CERT-TRUST"), Status::Fail);
    assert_eq!(status(&r3, "TLS-CERT-HOSTNAME"), Status::Fail);
    assert!(
        r3.findings
            .iter()
            .any(|f| f.evidence.contains("not valid for name")
                || f.evidence.contains("NotValidForName")),
        "{:#?}",
        r3.findings
    );
}

#[test]
fn every_suite_of_a_seclevel_0_server_matches_openssl_ciphers() {
    if !require("openssl") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    pki(d.path());
    let (_s, port) = s_server(d.path(), &["-cipher", "ALL:@SECLEVEL=0"]);
    let mut o = opts(d.path());
    o.http = Some(false);
    let r = tls::scan(&target(port), &o);
    for (v, flag) in [
        ("TLSv1.0", "-tls1"),
        ("TLSv1.1", "-tls1_1"),
        ("TLSv1.2", "-tls1_2"),
        ("TLSv1.3", "-tls1_3"),
    ] {
        let out = Command::new("openssl")
            .args(["ciphers", "-s", "-V", flag, "ALL:@SECLEVEL=0"])
            .output()
            .unwrap();
        // What an RSA-certificate server without PSK or SRP callbacks can use.
        let mut want: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                ![
                    "Au=ECDSA",
                    "Au=DSS",
                    "Au=PSK",
                    "Au=SRP",
                    "Kx=PSK",
                    "Kx=SRP",
                    "Kx=ECDHEPSK",
                    "Kx=DHEPSK",
                    "Kx=RSAPSK",
                ]
                .iter()
                .any(|x| l.contains(&format!(" {x} ")))
            })
            .map(|l| {
                let c = l
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .replace("0x", "")
                    .replace(',', "");
                format!("0x{c}")
            })
            .collect();
        let mut got = suites(&r, v);
        want.sort();
        got.sort();
        assert_eq!(got, want, "{v}");
    }
    assert_eq!(status(&r, "TLS-SUITES"), Status::Fail);
}

#[test]
fn tls13_only_server_shows_its_chain_through_the_encrypted_handshake() {
    if !require("openssl") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    pki(d.path());
    // `-Verify 1`: a client certificate is required.
    let (_s, port) = s_server(d.path(), &["-tls1_3", "-Verify", "1", "-CAfile", "ca.pem"]);
    let r = tls::scan(&target(port), &opts(d.path()));
    let o = r.observed.as_ref().unwrap();
    let on: Vec<&str> = o
        .versions
        .iter()
        .filter(|v| v.supported)
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(on, ["TLSv1.3"]);
    assert_eq!(
        o.chain.len(),
        2,
        "chain (leaf and CA) from the rustls handshake"
    );
    assert_eq!(status(&r, "TLS-CERT-TRUST"), Status::Pass);
    assert_eq!(status(&r, "TLS-VERSION-1.2"), Status::Fail);
    assert!(r.findings.iter().all(|f| f.id != "TLS-EMS"));
    assert_eq!(o.client_cert_required, Some(true));
    assert_eq!(
        o.client_cas,
        ["CN=scan-test-ca"],
        "CA names from the encrypted CertificateRequest"
    );
    assert_eq!(status(&r, "TLS-MTLS"), Status::Pass);
    let mut m = opts(d.path());
    m.profile = Profile::Modern;
    let r = tls::scan(&target(port), &m);
    assert_eq!(status(&r, "TLS-VERSION-1.2"), Status::Pass);
}

#[test]
fn nginx_with_legacy_protocols_and_hsts() {
    if !require("nginx") || !require("openssl") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    pki(w);
    std::fs::create_dir_all(w.join("tmp")).unwrap();
    let port = free_port();
    let uid = Command::new("id").arg("-u").output().unwrap();
    let root = if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        "user root;"
    } else {
        ""
    };
    std::fs::write(
        w.join("nginx.conf"),
        format!(
            "{root}\nmaster_process off;\ndaemon off;\npid {w}/nginx.pid;\nerror_log {w}/error.log warn;\nevents {{}}\n\
             http {{ access_log off; client_body_temp_path {w}/tmp;\n\
             server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {w}/srv.pem; ssl_certificate_key {w}/srv.key;\n\
             ssl_protocols TLSv1 TLSv1.1 TLSv1.2; ssl_prefer_server_ciphers on;\n\
             ssl_ciphers 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA:AES128-SHA:@SECLEVEL=0';\n\
             ssl_ecdh_curve secp384r1;\n\
             add_header Strict-Transport-Security \"max-age=63072000\" always;\n\
             location / {{ return 200 ok; }} }} }}\n",
            w = w.display()
        ),
    )
    .unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(w.join("nginx.conf"))
        .arg("-e")
        .arg(w.join("error.log"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _g = Server(child);
    wait_port(port);
    let r = tls::scan(&target(port), &opts(w));
    assert_eq!(suites(&r, "TLSv1.0"), ["0xC013", "0x002F"]);
    assert_eq!(suites(&r, "TLSv1.1"), ["0xC013", "0x002F"]);
    assert_eq!(suites(&r, "TLSv1.2"), ["0xC030", "0xC013", "0x002F"]);
    assert!(suites(&r, "TLSv1.3").is_empty());
    let o = r.observed.as_ref().unwrap();
    assert_eq!(o.groups, ["secp384r1"]);
    assert_eq!(o.http_status, Some(200));
    assert_eq!(status(&r, "TLS-HSTS"), Status::Pass);
    assert_eq!(status(&r, "TLS-VERSION-1.3"), Status::Fail);
    assert_eq!(status(&r, "TLS-DOWNGRADE"), Status::Pass);
    assert_eq!(status(&r, "TLS-MTLS"), Status::Info);
    let mut h = opts(w);
    h.profile = Profile::Hipaa;
    assert_eq!(
        status(&tls::scan(&target(port), &h), "TLS-MTLS"),
        Status::Fail
    );
}

/// Runs a fake server that answers each connection with `f`.
fn fake(f: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let f = std::sync::Arc::new(f);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let f = f.clone();
            std::thread::spawn(move || f(s));
        }
    });
    port
}

fn quick() -> ScanOptions {
    ScanOptions {
        timeout: Duration::from_millis(300),
        ..Default::default()
    }
}

fn read_some(s: &mut std::net::TcpStream) {
    let mut b = [0u8; 4096];
    let _ = s.read(&mut b);
}

#[test]
fn hostile_servers_give_findings_not_hangs() {
    let started = Instant::now();
    // Nothing listening.
    let closed = free_port();
    let r = tls::scan(&target(closed), &quick());
    assert!(
        r.error.as_deref().unwrap().contains("cannot connect"),
        "{:?}",
        r.error
    );
    assert_eq!(status(&r, "TLS-REACHABLE"), Status::Fail);

    // Accepts, reads, says nothing.
    let silent = fake(|mut s| {
        read_some(&mut s);
        std::thread::sleep(Duration::from_secs(5));
    });
    let r = tls::scan(&target(silent), &quick());
    assert!(r.error.is_some());

    // Speaks HTTP instead of TLS.
    let http = fake(|mut s| {
        read_some(&mut s);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    let r = tls::scan(&target(http), &quick());
    assert!(
        r.error.as_deref().unwrap().contains("not TLS"),
        "{:?}",
        r.error
    );

    // Half-open: accepts and closes at once.
    let closer = fake(drop);
    let r = tls::scan(&target(closer), &quick());
    assert!(
        r.error.as_deref().unwrap().contains("accepted no"),
        "{:?}",
        r.error
    );

    // A valid-looking ServerHello, then an endless Certificate message.
    let flood = fake(|mut s| {
        read_some(&mut s);
        let mut sh = vec![2, 0, 0, 38, 3, 3];
        sh.extend_from_slice(&[9; 32]);
        sh.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
        let mut rec = vec![22, 3, 3, 0, sh.len() as u8];
        rec.extend_from_slice(&sh);
        let _ = s.write_all(&rec);
        let mut cert = vec![22, 3, 3, 0x40, 0x00, 11, 0xff, 0xff, 0xff];
        cert.resize(5 + 0x4000, 0x30);
        let _ = s.write_all(&cert);
        for _ in 0..64 {
            let mut more = vec![22, 3, 3, 0x40, 0x00];
            more.resize(5 + 0x4000, 0x30);
            if s.write_all(&more).is_err() {
                break;
            }
        }
    });
    let r = tls::scan(&target(flood), &quick());
    let e = r.error.clone().unwrap_or_default();
    assert!(e.contains("more than") || e.contains("malformed"), "{e:?}");

    // Garbage bytes that look like a TLS record header.
    let garbage = fake(|mut s| {
        read_some(&mut s);
        let _ = s.write_all(&[22, 3, 3, 0, 4, 2, 0, 0, 0]);
    });
    let r = tls::scan(&target(garbage), &quick());
    assert!(r.error.is_some());
    // An SMTP server that trickles its greeting a byte at a time, forever:
    // the STARTTLS exchange has one deadline, not one per read.
    let trickle = fake(|mut s| {
        let _ = s.write_all(b"220-");
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(50));
            if s.write_all(b"x").is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    let t: Target = format!("127.0.0.1:{trickle},starttls=smtp")
        .parse()
        .unwrap();
    let r = tls::scan(&t, &quick());
    assert!(r.error.is_some());
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // A well-formed flight whose certificate is not DER: a finding.
    let bad_cert = fake(|mut s| {
        read_some(&mut s);
        let mut sh = vec![2, 0, 0, 38, 3, 3];
        sh.extend_from_slice(&[9; 32]);
        sh.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
        let cert_body = [0u8, 0, 8, 0, 0, 5, 0x30, 0x82, 0xff, 0xff, 0x01];
        let mut hs = sh;
        hs.extend_from_slice(&[11, 0, 0, cert_body.len() as u8]);
        hs.extend_from_slice(&cert_body);
        hs.extend_from_slice(&[14, 0, 0, 0]);
        let mut rec = vec![22, 3, 3, 0, hs.len() as u8];
        rec.extend_from_slice(&hs);
        let _ = s.write_all(&rec);
    });
    let r = tls::scan(&target(bad_cert), &quick());
    let o = r.observed.as_ref().expect("the version scan itself worked");
    assert!(
        o.chain_error
            .as_deref()
            .unwrap_or("")
            .contains("unparsable certificate"),
        "{o:?}"
    );
    assert_eq!(status(&r, "TLS-CERT"), Status::Fail);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn bad_targets_are_clear_errors() {
    for bad in [
        "",
        "host",
        "host:0",
        "host:99999",
        "host:443,foo=bar",
        ":443",
        "[::1]443",
    ] {
        let e = bad.parse::<Target>().unwrap_err().to_string();
        assert!(e.contains("bad target"), "{bad}: {e}");
    }
    let t: Target = "[::1]:5432,starttls=postgres,sni=db".parse().unwrap();
    assert_eq!(t.to_string(), "[::1]:5432,sni=db,starttls=postgres");
}

/// The PostgreSQL 15 binaries, if installed.
use phivault_testpg::{as_pg_user, pg_bin};

#[test]
fn postgres_behind_starttls() {
    let (Some(bin), true) = (pg_bin(), require("openssl")) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    pki(w);
    sh(
        w,
        "chmod 755 . && mkdir pg && cp srv.pem pg/server.crt && cp srv.key pg/server.key && chmod 600 pg/server.key",
    );
    let data = w.join("pg/data");
    let root = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&root.stdout).trim() == "0" {
        sh(w, "chown -R nobody pg");
    }
    let st = as_pg_user(
        &bin.join("initdb"),
        &[
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .status()
    .unwrap();
    assert!(st.success(), "initdb failed");
    let port = free_port();
    let pg = w.join("pg");
    let child = as_pg_user(
        &bin.join("postgres"),
        &[
            "-D",
            data.to_str().unwrap(),
            "-p",
            &port.to_string(),
            "-k",
            pg.to_str().unwrap(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "ssl=on",
            "-c",
            &format!("ssl_cert_file={}/server.crt", pg.display()),
            "-c",
            &format!("ssl_key_file={}/server.key", pg.display()),
            "-c",
            "fsync=off",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let _g = Server(child);
    wait_port(port);
    let t: Target = format!("127.0.0.1:{port},sni=localhost,starttls=postgres")
        .parse()
        .unwrap();
    let r = tls::scan(&t, &opts(w));
    let o = r
        .observed
        .as_ref()
        .unwrap_or_else(|| panic!("{:?}", r.error));
    let on: Vec<&str> = o
        .versions
        .iter()
        .filter(|v| v.supported)
        .map(|v| v.version.as_str())
        .collect();
    // PostgreSQL 15's default ssl_min_protocol_version is TLSv1.2.
    assert_eq!(on, ["TLSv1.2", "TLSv1.3"]);
    assert_eq!(status(&r, "TLS-CERT-TRUST"), Status::Pass);
    assert_eq!(o.http_status, None, "no HTTP after STARTTLS");
    // `postgres` runs as nobody: stop it through its pid file's owner.
    drop(_g);
    let _ = Command::new("pkill")
        .args(["-f", data.to_str().unwrap()])
        .status();
}

/// SMTP STARTTLS. No SMTP server ships in Debian's base, so the SMTP
/// dialogue here is a few lines of test code; after `220` the bytes go to
/// a real openssl s_server, which does all the TLS.
#[test]
fn smtp_starttls_reaches_the_tls_server_behind_it() {
    if !require("openssl") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    pki(d.path());
    let (_s, tls_port) = s_server(d.path(), &["-no_tls1_3"]);
    let port = fake(move |mut s| {
        use std::io::BufRead;
        let _ = s.write_all(b"220-smtp.test ESMTP\r\n220 ready\r\n");
        let mut r = std::io::BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        if !line.starts_with("EHLO") {
            return;
        }
        let _ = s.write_all(b"250-smtp.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
        line.clear();
        let _ = r.read_line(&mut line);
        if line.trim() != "STARTTLS" {
            return;
        }
        let _ = s.write_all(b"220 go ahead\r\n");
        let up = std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
        let (mut a, mut b) = (s.try_clone().unwrap(), up.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut a, &mut b);
            let _ = b.shutdown(std::net::Shutdown::Write);
        });
        let (mut up2, mut s2) = (up, s);
        let _ = std::io::copy(&mut up2, &mut s2);
        let _ = s2.shutdown(std::net::Shutdown::Both);
    });
    let t: Target = format!("127.0.0.1:{port},sni=localhost,starttls=smtp")
        .parse()
        .unwrap();
    let r = tls::scan(&t, &opts(d.path()));
    let o = r
        .observed
        .as_ref()
        .unwrap_or_else(|| panic!("{:?}", r.error));
    let on: Vec<&str> = o
        .versions
        .iter()
        .filter(|v| v.supported)
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(on, ["TLSv1.2"]);
    assert_eq!(status(&r, "TLS-CERT-TRUST"), Status::Pass);
    // Without STARTTLS the same port is not TLS.
    let plain = tls::scan(&target(port), &quick());
    assert!(
        plain.error.as_deref().unwrap_or("").contains("not TLS"),
        "{:?}",
        plain.error
    );
}
