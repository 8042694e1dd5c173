//! `phivault scan tls` against phivault's own server: the strict default
//! passes NIST SP 800-52r2 and the hipaa profile, seen from outside.

mod common;
use common::{Server, pv, spawn_dev_server};
use serde_json::Value;

fn status<'a>(r: &'a Value, id: &str) -> &'a str {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {r:#}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn phivault_serve_passes_its_own_scan() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let (child, url) = spawn_dev_server(&d, &[], "warn", std::process::Stdio::null());
    let _child = Server(child);
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    let target = format!("127.0.0.1:{port},sni=localhost");
    let ca = d.join("ca/ca.pem");
    let junit = dir.path().join("scan.xml");
    let out = pv(&d)
        .args(["--json", "scan", "tls", &target, "--ca-file"])
        .arg(&ca)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let reports: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let r = &reports[0];
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let o = &r["observed"];
    let on: Vec<&str> = o["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["supported"] == true)
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(on, ["TLSv1.2", "TLSv1.3"]);
    assert_eq!(o["groups"], serde_json::json!(["secp256r1", "secp384r1"]));
    for id in [
        "TLS-VERSION-SSL",
        "TLS-VERSION-LEGACY",
        "TLS-SUITES",
        "TLS-SUITES-AEAD",
        "TLS-GROUPS",
        "TLS-CERT-TRUST",
        "TLS-EMS",
        "TLS-DOWNGRADE",
        "TLS-RENEGOTIATION",
        "TLS-COMPRESSION",
        "TLS-CERT-HOSTNAME",
        "TLS-CERT-KEYUSAGE",
    ] {
        assert_eq!(status(r, id), "pass", "{id}: {r:#}");
    }
    // The TLS layer asks for a client certificate but lets the HTTP layer
    // refuse (so /v1/sys/health works without one): HSTS is on that answer too.
    assert_eq!(status(r, "TLS-HSTS"), "pass");
    assert_eq!(r["observed"]["http_status"], 404);
    assert_eq!(status(r, "TLS-MTLS"), "warn", "optional at the TLS layer");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(
        x.contains("<testsuite name=\"127.0.0.1:") && x.contains("failures=\"0\""),
        "{x}"
    );

    // With the admin's certificate: HSTS and resumption, and the hipaa
    // profile (398-day certificates, mTLS, HSTS) passes too.
    let out = pv(&d)
        .args([
            "--json",
            "scan",
            "tls",
            &target,
            "--profile",
            "hipaa",
            "--ca-file",
        ])
        .arg(&ca)
        .arg("--cert")
        .arg(d.join("clients/admin.pem"))
        .arg("--key")
        .arg(d.join("clients/admin.key"))
        .output()
        .unwrap();
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &reports[0];
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(status(r, "TLS-HSTS"), "pass");
    assert_eq!(status(r, "TLS-CERT-LIFETIME"), "pass");
    assert_eq!(status(r, "TLS-MTLS"), "pass");
    assert_eq!(r["observed"]["session_resumption"], true);

    // The text report, and a failing target next to it: exit 10.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let list = dir.path().join("targets.txt");
    std::fs::write(&list, format!("# two targets\n127.0.0.1:{closed}\n\n")).unwrap();
    let out = pv(&d)
        .args(["scan", "tls", &target, "--targets-file"])
        .arg(&list)
        .arg("--ca-file")
        .arg(&ca)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(10), "{text}");
    assert!(
        text.contains("TLSv1.3  yes") && text.contains("FAIL TLS-REACHABLE"),
        "{text}"
    );
    let bad = pv(&d).args(["scan", "tls", "nonsense"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected host:port"));
}
