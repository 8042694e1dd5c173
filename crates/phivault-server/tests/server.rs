//! The server over real TLS sockets, with real certificates, driven by
//! curl, openssl s_client and a rustls client.

mod common;

use common::*;
use phivault_server::auth::{Scopes, TokenAuthority};
use serde_json::{Value, json};
use std::time::Duration;

const ADMIN: &[&str] = &[
    "keys:admin",
    "transit:*:*",
    "transit:random",
    "sys:metrics",
    "sys:seal",
    "sys:unseal",
];

async fn started() -> (Harness, Client) {
    let mut h = Harness::new(|_, _| {});
    let admin = h.client("admin", ADMIN);
    h.start_unsealed().await;
    let (s, _) = h.post_raw(&admin, "/v1/transit/keys/billing", "{}");
    assert_eq!(s, 200);
    (h, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transit_round_trip_and_vault_shapes() {
    let (h, admin) = started().await;
    let pt = b64(b"MRN 000123, DOB 1970-01-01");
    let (s, v) = h.post(
        &admin,
        "/v1/transit/encrypt/billing",
        json!({"plaintext": pt, "associated_data": b64(b"patients/7/ssn")}),
    );
    assert_eq!(s, 200, "{v}");
    let ct = v["data"]["ciphertext"].as_str().unwrap().to_string();
    assert!(ct.starts_with("pve:"));
    assert_eq!(v["data"]["key_version"], 1);
    assert!(v["request_id"].is_string());
    // Decrypt needs the same associated data.
    let (s, v) = h.post(
        &admin,
        "/v1/transit/decrypt/billing",
        json!({"ciphertext": ct, "associated_data": b64(b"patients/7/ssn")}),
    );
    assert_eq!(s, 200);
    assert_eq!(v["data"]["plaintext"], pt);
    let (s, v) = h.post(
        &admin,
        "/v1/transit/decrypt/billing",
        json!({"ciphertext": ct, "associated_data": b64(b"patients/8/ssn")}),
    );
    assert_eq!(s, 400);
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("decryption failed")
    );
    // Rotate, rewrap, then raise the minimum: the old ciphertext is refused.
    let (s, v) = h.json(
        Some(&admin),
        "POST",
        "/v1/transit/keys/billing/rotate",
        None,
        &[],
    );
    assert_eq!(s, 200);
    assert_eq!(v["data"]["latest_version"], 2);
    let (s, v) = h.post(
        &admin,
        "/v1/transit/rewrap/billing",
        json!({"ciphertext": ct, "associated_data": b64(b"patients/7/ssn")}),
    );
    assert_eq!(s, 200);
    assert_eq!(v["data"]["key_version"], 2);
    let ct2 = v["data"]["ciphertext"].as_str().unwrap().to_string();
    let (s, _) = h.post_raw(
        &admin,
        "/v1/transit/keys/billing/config",
        r#"{"min_decryption_version": 2}"#,
    );
    assert_eq!(s, 200);
    for (c, want) in [(&ct, 400), (&ct2, 200)] {
        let (s, _) = h.post(
            &admin,
            "/v1/transit/decrypt/billing",
            json!({"ciphertext": c, "associated_data": b64(b"patients/7/ssn")}),
        );
        assert_eq!(s, want);
    }
    // Read, LIST verb and ?list=true.
    let (s, v) = h.get(&admin, "/v1/transit/keys/billing");
    assert_eq!(s, 200);
    assert_eq!(v["data"]["type"], "aes256-gcm96");
    assert_eq!(v["data"]["exportable"], false);
    assert_eq!(v["data"]["min_decryption_version"], 2);
    let (s, v) = h.json(Some(&admin), "LIST", "/v1/transit/keys", None, &[]);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["keys"], json!(["billing"]));
    let (s, _) = h.get(&admin, "/v1/transit/keys?list=true");
    assert_eq!(s, 200);
    let (s, _) = h.json(
        Some(&admin),
        "LIST",
        "/v1/transit/keys?list=true",
        None,
        &[],
    );
    assert_eq!(s, 200);
    // Datakey, HMAC, random.
    let (s, v) = h.post_raw(
        &admin,
        "/v1/transit/datakey/plaintext/billing",
        r#"{"bits":256}"#,
    );
    assert_eq!(s, 200);
    assert_eq!(v["data"]["plaintext"].as_str().unwrap().len(), 44);
    let wrapped = v["data"]["ciphertext"].as_str().unwrap().to_string();
    let (s, v) = h.post(
        &admin,
        "/v1/transit/decrypt/billing",
        json!({"ciphertext": wrapped}),
    );
    assert_eq!(s, 200);
    assert_eq!(v["data"]["plaintext"].as_str().unwrap().len(), 44);
    let (s, v) = h.json(
        Some(&admin),
        "POST",
        "/v1/transit/datakey/wrapped/billing",
        None,
        &[],
    );
    assert_eq!(s, 200);
    assert!(v["data"].get("plaintext").is_none());
    let (s, v) = h.post(
        &admin,
        "/v1/transit/hmac/billing/sha2-384",
        json!({"input": b64(b"x")}),
    );
    assert_eq!(s, 200);
    let mac = v["data"]["hmac"].as_str().unwrap().to_string();
    assert!(mac.starts_with("vault:v2:"));
    let (_, v) = h.post(
        &admin,
        "/v1/transit/verify/billing/sha2-384",
        json!({"input": b64(b"x"), "hmac": mac}),
    );
    assert_eq!(v["data"]["valid"], true);
    let (_, v) = h.post(
        &admin,
        "/v1/transit/verify/billing/sha2-384",
        json!({"input": b64(b"y"), "hmac": mac}),
    );
    assert_eq!(v["data"]["valid"], false);
    let (s, v) = h.post_raw(&admin, "/v1/transit/random/24", r#"{"format":"hex"}"#);
    assert_eq!(s, 200);
    assert_eq!(v["data"]["random_bytes"].as_str().unwrap().len(), 48);
    // Delete needs deletion_allowed.
    let (s, _) = h.json(
        Some(&admin),
        "DELETE",
        "/v1/transit/keys/billing",
        None,
        &[],
    );
    assert_eq!(s, 400);
    h.post_raw(
        &admin,
        "/v1/transit/keys/billing/config",
        r#"{"deletion_allowed":true}"#,
    );
    let (s, _) = h.json(
        Some(&admin),
        "DELETE",
        "/v1/transit/keys/billing",
        None,
        &[],
    );
    assert_eq!(s, 204);
    let (s, _) = h.post(
        &admin,
        "/v1/transit/decrypt/billing",
        json!({"ciphertext": ct2}),
    );
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_per_item_errors() {
    let (h, admin) = started().await;
    let items: Vec<Value> = (0..200)
        .map(|i| json!({"plaintext": b64(format!("item {i}").as_bytes()), "reference": i}))
        .collect();
    let (s, v) = h.post(
        &admin,
        "/v1/transit/encrypt/billing",
        json!({"batch_input": items}),
    );
    assert_eq!(s, 200);
    let res = v["data"]["batch_results"].as_array().unwrap();
    assert_eq!(res.len(), 200);
    assert_eq!(res[7]["reference"], 7);
    let mut dec: Vec<Value> = res
        .iter()
        .map(|r| json!({"ciphertext": r["ciphertext"]}))
        .collect();
    dec[3] = json!({"ciphertext": "pve:AAAA"});
    dec[4] = json!({"plaintext": "not a ciphertext"});
    let (s, v) = h.post(
        &admin,
        "/v1/transit/decrypt/billing",
        json!({"batch_input": dec}),
    );
    assert_eq!(s, 400, "a failed item makes the batch 400");
    let res = v["data"]["batch_results"].as_array().unwrap();
    assert_eq!(res[0]["plaintext"], b64(b"item 0"));
    assert!(res[3]["error"].is_string());
    assert!(
        res[4]["error"]
            .as_str()
            .unwrap()
            .contains("missing 'ciphertext'")
    );
    assert_eq!(res[199]["plaintext"], b64(b"item 199"));
    let (s, _) = h.post(
        &admin,
        "/v1/transit/decrypt/billing",
        json!({"batch_input": dec, "partial_failure_response_code": 207}),
    );
    assert_eq!(s, 207);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_4xx_never_500() {
    let (h, admin) = started().await;
    let cases: &[(&str, &str, Option<&str>, u16)] = &[
        (
            "POST",
            "/v1/transit/encrypt/billing",
            Some("{not json"),
            400,
        ),
        (
            "POST",
            "/v1/transit/encrypt/billing",
            Some(r#"{"plaintext": 5}"#),
            400,
        ),
        (
            "POST",
            "/v1/transit/encrypt/billing",
            Some(r#"{"plaintext": "!!!"}"#),
            400,
        ),
        ("POST", "/v1/transit/encrypt/billing", Some("{}"), 400),
        (
            "POST",
            "/v1/transit/encrypt/nosuchkey",
            Some(r#"{"plaintext": ""}"#),
            404,
        ),
        (
            "POST",
            "/v1/transit/decrypt/nosuchkey",
            Some(r#"{"ciphertext": "pve:AAAA"}"#),
            400,
        ),
        (
            "POST",
            "/v1/transit/decrypt/billing",
            Some(r#"{"ciphertext": "vault:v1:abcd"}"#),
            400,
        ),
        (
            "POST",
            "/v1/transit/encrypt/BAD%20NAME",
            Some(r#"{"plaintext": ""}"#),
            400,
        ),
        (
            "POST",
            "/v1/transit/keys/x",
            Some(r#"{"type": "rsa-4096"}"#),
            400,
        ),
        (
            "POST",
            "/v1/transit/keys/x",
            Some(r#"{"exportable": true}"#),
            400,
        ),
        ("POST", "/v1/transit/datakey/raw/billing", None, 400),
        ("POST", "/v1/transit/random/99999999", None, 400),
        ("GET", "/v1/transit/keys/nosuchkey", None, 404),
        ("GET", "/v1/nosuchroute", None, 404),
        ("PATCH", "/v1/transit/encrypt/billing", None, 405),
        ("GET", "/v1/transit/keys/%FF", None, 400),
        ("GET", "/v1/transit/keys", None, 405),
    ];
    for (m, p, b, want) in cases {
        let (s, v) = h.json(Some(&admin), m, p, *b, &[]);
        assert_eq!(s, *want, "{m} {p} {b:?} -> {v}");
        assert!(
            v["errors"][0].is_string(),
            "{m} {p}: Vault-style errors body, got {v}"
        );
    }
    // A parse error names the place, never the value sent.
    let (_, v) = h.post_raw(
        &admin,
        "/v1/transit/encrypt/billing",
        r#"{"plaintext": ["SSN 078-05-1120"]}"#,
    );
    assert!(!v.to_string().contains("078-05-1120"), "{v}");
    // Over the body limit: 413.
    let big = format!(r#"{{"plaintext":"{}"}}"#, "A".repeat(33 << 20));
    let f = h.dir.path().join("big.json");
    std::fs::write(&f, big).unwrap();
    let (s, v) = h.json(
        Some(&admin),
        "POST",
        "/v1/transit/encrypt/billing",
        None,
        &[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", f.display()),
        ],
    );
    assert_eq!(s, 413, "{v}");
    let m = h.metrics();
    assert!(!m.contains("status=\"500\""), "no 500s: {m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_and_tokens_401_403() {
    let (mut h, admin) = started().await;
    let enc = h.client("encrypter", &["transit:encrypt:billing"]);
    let other = h.client(
        "other",
        &["transit:encrypt:billing", "transit:decrypt:billing"],
    );
    let pt = json!({"plaintext": b64(b"x")}).to_string();
    // No certificate: only health answers.
    let (s, v) = h.json(None, "GET", "/v1/sys/health", None, &[]);
    assert_eq!(s, 200);
    assert_eq!(v["sealed"], false);
    let (s, _) = h.json(None, "POST", "/v1/transit/encrypt/billing", Some(&pt), &[]);
    assert_eq!(s, 401);
    // Scope per operation and key.
    let (s, _) = h.json(
        Some(&enc),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(&pt),
        &[],
    );
    assert_eq!(s, 200);
    let (s, v) = h.post_raw(
        &enc,
        "/v1/transit/decrypt/billing",
        r#"{"ciphertext":"pve:AAAA"}"#,
    );
    assert_eq!(s, 403, "{v}");
    let (s, _) = h.json(Some(&enc), "POST", "/v1/transit/keys/newkey", None, &[]);
    assert_eq!(s, 403);
    // A token for a subset of the certificate's scopes.
    let (s, v) = h.post_raw(
        &other,
        "/v1/auth/token",
        r#"{"scopes":["transit:encrypt:billing"],"ttl":"5m"}"#,
    );
    assert_eq!(s, 200, "{v}");
    let token = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(v["data"]["expires_in"], 300);
    let hv = format!("X-Vault-Token: {token}");
    let hb = format!("Authorization: Bearer {token}");
    let (s, _) = h.json(
        Some(&other),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(&pt),
        &["-H", &hv],
    );
    assert_eq!(s, 200);
    // The token narrows: decrypt is not in it, though the certificate has it.
    let (s, _) = h.json(
        Some(&other),
        "POST",
        "/v1/transit/decrypt/billing",
        Some(r#"{"ciphertext":"pve:AAAA"}"#),
        &["-H", &hb],
    );
    assert_eq!(s, 403);
    // A stolen token is useless with another certificate.
    let (s, v) = h.json(
        Some(&enc),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(&pt),
        &["-H", &hv],
    );
    assert_eq!(s, 401, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("different client certificate")
    );
    // More than the certificate grants, or longer than 15 minutes: refused.
    let (s, _) = h.post_raw(&enc, "/v1/auth/token", r#"{"scopes":["keys:admin"]}"#);
    assert_eq!(s, 403);
    let (s, _) = h.post_raw(&enc, "/v1/auth/token", r#"{"ttl": 901}"#);
    assert_eq!(s, 400);
    // Expired (signed by this server, 20 minutes ago) and foreign tokens.
    let st = &h.running.as_ref().unwrap().state;
    let id = phivault_server::pki::peer_identity(&pem_der(&other.pem)).unwrap();
    let scopes = Scopes::parse(["transit:encrypt:billing"]).unwrap();
    let past = time::OffsetDateTime::now_utc().unix_timestamp() as u64 - 1200;
    let (expired, _) = st
        .tokens
        .issue_at(&id, &scopes, &scopes, Duration::from_secs(300), past)
        .unwrap();
    let (s, v) = h.json(
        Some(&other),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(&pt),
        &["-H", &format!("X-Vault-Token: {expired}")],
    );
    assert_eq!(s, 401);
    assert!(v["errors"][0].as_str().unwrap().contains("expired"), "{v}");
    let foreign = TokenAuthority::new("phivault", "phivault", Duration::from_secs(3600)).unwrap();
    let (ft, _) = foreign
        .issue(&id, &scopes, &scopes, Duration::from_secs(60))
        .unwrap();
    let (s, _) = h.json(
        Some(&other),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(&pt),
        &["-H", &format!("X-Vault-Token: {ft}")],
    );
    assert_eq!(s, 401);
    let (s, _) = h.json(
        Some(&other),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(&pt),
        &["-H", "X-Vault-Token: garbage"],
    );
    assert_eq!(s, 401);
    // JWKS lists the key that verifies our tokens; lookup-self works for Vault clients.
    let (s, v) = h.get(&other, "/v1/auth/jwks");
    assert_eq!(s, 200);
    assert_eq!(v["keys"][0]["alg"], "ES256");
    let (s, v) = h.json(
        Some(&other),
        "GET",
        "/v1/auth/token/lookup-self",
        None,
        &["-H", &hv],
    );
    assert_eq!(s, 200);
    assert_eq!(v["data"]["display_name"], "spiffe://test.local/other");
    let m = h.metrics();
    assert!(
        metric(
            &m,
            "phivault_auth_failures_total{reason=\"token_wrong_certificate\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(metric(&m, "phivault_auth_failures_total{reason=\"token_expired\"}") >= 1.0);
    assert!(
        metric(
            &m,
            "phivault_auth_failures_total{reason=\"client_cert_missing\"}"
        ) >= 1.0
    );
    assert!(metric(&m, "phivault_auth_failures_total{reason=\"scope_denied\"}") >= 1.0);
    let _ = admin;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_policy_against_openssl_clients() {
    let (mut h, admin) = started().await;
    // TLS 1.3 and 1.2 with approved suites work.
    assert!(h.s_client(Some(&admin), &["-tls1_3"]).0);
    let (ok, out) = h.s_client(
        Some(&admin),
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("Extended master secret: yes"), "{out}");
    // Refused: TLS 1.1, TLS 1.0, ChaCha20 only, X25519 only, CBC only.
    let refused: &[(&[&str], &str)] = &[
        (
            &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
            "protocol_version",
        ),
        (
            &["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
            "protocol_version",
        ),
        (
            &["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
            "no_shared_cipher",
        ),
        (
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
            "no_shared_cipher",
        ),
        (
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"],
            "no_shared_cipher",
        ),
        (&["-tls1_3", "-groups", "X25519"], "no_shared_group"),
        (&["-tls1_2", "-groups", "X25519"], "no_shared_group"),
    ];
    for (args, reason) in refused {
        let before = metric(
            &h.metrics(),
            &format!("phivault_tls_handshake_failures_total{{reason=\"{reason}\"}}"),
        );
        let (ok, out) = h.s_client(Some(&admin), args);
        assert!(!ok, "{args:?} must be refused: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = metric(
            &h.metrics(),
            &format!("phivault_tls_handshake_failures_total{{reason=\"{reason}\"}}"),
        );
        assert_eq!(after, before + 1.0, "{args:?} counted as {reason}");
    }
    // Client certificates: expired, wrong CA, revoked.
    let now = time::OffsetDateTime::now_utc();
    let exp =
        h.ca.issue_between(
            &client_req("old", &["transit:*:*"]),
            now - time::Duration::days(40),
            now - time::Duration::days(10),
        )
        .unwrap();
    let old = write_pair(h.dir.path(), "old", &exp);
    let other_dir = tempfile::tempdir().unwrap();
    let keys = phivault_core::keys::StaticKeys::random(phivault_server::pki::CA_RING);
    let mut other_ca =
        phivault_server::pki::Ca::init(other_dir.path(), "evil.local", &keys).unwrap();
    let foreign = write_pair(
        h.dir.path(),
        "foreign",
        &other_ca.issue(&client_req("admin", ADMIN)).unwrap(),
    );
    let doomed = h.client("doomed", &["transit:*:*"]);
    let (s, _) = h.get(&doomed, "/v1/transit/keys/billing");
    assert_eq!(s, 403, "before revocation it connects");
    h.ca.revoke("doomed", "key-compromise").unwrap();
    // The CRL file changed: the poller reloads it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (c, reason) in [
        (&old, "client_cert_expired"),
        (&foreign, "client_cert_unknown_ca"),
        (&doomed, "client_cert_revoked"),
    ] {
        let key = format!("phivault_tls_handshake_failures_total{{reason=\"{reason}\"}}");
        let before = metric(&h.metrics(), &key);
        let (s, _) = h.curl(Some(c), "GET", "/v1/transit/keys/billing", None, &[]);
        assert_eq!(s, 0, "{} must fail the handshake", c.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(metric(&h.metrics(), &key), before + 1.0, "{reason}");
    }
    let m = h.metrics();
    assert!(
        metric(&m, "phivault_reloads_total{result=\"ok\"}") >= 1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_http_gets_an_alert_and_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (h, _) = started().await;
    let mut tcp = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    tcp.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        buf,
        [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a],
        "a fatal alert, then close"
    );
    assert_eq!(
        metric(
            &h.metrics(),
            "phivault_tls_handshake_failures_total{reason=\"plaintext_http\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_everywhere_and_metrics() {
    let (h, admin) = started().await;
    for (c, p) in [
        (None, "/v1/sys/health"),
        (Some(&admin), "/v1/nope"),
        (None, "/v1/transit/keys/billing"),
    ] {
        let (_, out) = h.curl(c, "GET", p, None, &["-D", "-"]);
        assert!(
            out.to_ascii_lowercase()
                .contains("strict-transport-security: max-age=63072000"),
            "{p}: {out}"
        );
    }
    let (s, m) = h.curl(Some(&admin), "GET", "/v1/sys/metrics", None, &[]);
    assert_eq!(s, 200);
    for needle in [
        "phivault_http_requests_total{route=\"/v1/sys/health\",method=\"GET\",status=\"200\"}",
        "phivault_http_request_duration_seconds_bucket{le=\"0.00005\",route=\"/v1/sys/health\",status=\"200\"}",
        "phivault_tls_handshake_failures_total{reason=\"client_cert_revoked\"} 0",
        "phivault_key_age_seconds{key=\"billing\"}",
        "phivault_certificate_expiry_seconds{cert=\"server\"}",
        "phivault_tls_handshakes_total{version=\"TLSv1_3\",suite=\"TLS13_AES_256_GCM_SHA384\"}",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
    let expiry = metric(&m, "phivault_certificate_expiry_seconds{cert=\"server\"}");
    assert!(
        expiry > 29.0 * 86400.0 && expiry <= 30.0 * 86400.0,
        "{expiry}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_keeps_open_connections() {
    let (mut h, admin) = started().await;
    let cfg = rustls_client(&h.ca_pem(), Some(&admin));
    let mut c1 = connect(h.addr(), cfg.clone()).await.unwrap();
    let (s, _) = request(&mut c1, "GET", "/v1/transit/keys/billing", &[], "").await;
    assert_eq!(s, 200);
    let first = c1.get_ref().1.peer_certificates().unwrap()[0].clone();
    // New server certificate on disk; SIGHUP-equivalent reload.
    let s2 =
        h.ca.issue(&phivault_server::pki::IssueRequest {
            kind: phivault_server::pki::CertKind::Server,
            name: "localhost".into(),
            sans: vec!["127.0.0.1".into()],
            scopes: vec![],
            days: 60,
            insecure_long_validity: false,
        })
        .unwrap();
    write_pair(&h.dir.path().join("tls"), "server", &s2);
    let r = h.running.as_ref().unwrap();
    r.reloader.reload(&r.state.metrics).unwrap();
    // The open connection still works; a new one sees the new certificate.
    let (s, _) = request(&mut c1, "GET", "/v1/transit/keys/billing", &[], "").await;
    assert_eq!(s, 200);
    // A fresh client config, so that the session is not resumed.
    let mut c2 = connect(h.addr(), rustls_client(&h.ca_pem(), Some(&admin)))
        .await
        .unwrap();
    let second = c2.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_ne!(first, second);
    assert_eq!(second, pem_der(&s2.cert_pem));
    let (s, _) = request(&mut c2, "GET", "/v1/transit/keys/billing", &[], "").await;
    assert_eq!(s, 200);
    // A broken file is refused and the old config keeps serving.
    std::fs::write(h.dir.path().join("tls/server.pem"), "garbage").unwrap();
    assert!(r.reloader.reload(&r.state.metrics).is_err());
    let (s, _) = h.get(&admin, "/v1/transit/keys/billing");
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_graceful_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut h = Harness::new(|s, _| {
        s.header_timeout = Some("1s".into());
        s.shutdown_grace = Some("10s".into());
        s.max_connection_age = Some("3s".into());
    });
    let admin = h.client("admin", ADMIN);
    h.start_unsealed().await;
    h.json(Some(&admin), "POST", "/v1/transit/keys/billing", None, &[]);
    let cfg = rustls_client(&h.ca_pem(), Some(&admin));
    // Headers trickled: the connection is closed after the header timeout.
    let mut slow = connect(h.addr(), cfg.clone()).await.unwrap();
    slow.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let r = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(t0.elapsed() < Duration::from_secs(4));
    // Closed (EOF or reset), or a 408 before the close.
    if let Ok(n) = r {
        assert!(
            n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"),
            "{:?}",
            &buf[..n]
        );
    }
    // A busy keep-alive connection is closed at max_connection_age (so a
    // revoked client must reconnect and meet the CRL).
    let mut aged = connect(h.addr(), cfg.clone()).await.unwrap();
    let t0 = std::time::Instant::now();
    let closed_after = loop {
        let mut req = b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        if aged.write_all(&req).await.is_err() {
            break t0.elapsed();
        }
        let mut b = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(2), aged.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break t0.elapsed(),
            Ok(Ok(_)) => {}
        }
        req.clear();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "connection never aged out"
        );
    };
    assert!(closed_after >= Duration::from_secs(2), "{closed_after:?}");
    // An in-flight request finishes across shutdown; new connections are refused.
    let mut c = connect(h.addr(), cfg.clone()).await.unwrap();
    let body = json!({"plaintext": b64(b"in flight")}).to_string();
    let head = format!(
        "POST /v1/transit/encrypt/billing HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&body.as_bytes()[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let running = h.running.take().unwrap();
    let addr = running.addr;
    let handle = running.shutdown_handle();
    let waiter = tokio::spawn(running.wait());
    handle.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        connect(addr, cfg).await.is_err(),
        "no new connections during shutdown"
    );
    c.write_all(&body.as_bytes()[5..]).await.unwrap();
    let (s, b) = read_response(&mut c).await;
    assert_eq!(s, 200, "{b}");
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_start_serves_only_health_and_unseal() {
    let mut h = Harness::new(|_, _| {});
    let admin = h.client("admin", ADMIN);
    let viewer = h.client("viewer", &["keys:read"]);
    h.start(None).await;
    let (s, v) = h.json(None, "GET", "/v1/sys/health", None, &[]);
    assert_eq!(s, 503);
    assert_eq!(v["sealed"], true);
    let (s, v) = h.post_raw(&admin, "/v1/transit/encrypt/billing", r#"{"plaintext":""}"#);
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["errors"][0], "Vault is sealed");
    let (s, _) = h.get(&admin, "/v1/sys/seal-status");
    assert_eq!(s, 200);
    // Unseal needs the scope; this dev keystore has no shares, so a share is refused.
    let (s, _) = h.json(
        Some(&viewer),
        "PUT",
        "/v1/sys/unseal",
        Some(r#"{"key":"pvshare1-x"}"#),
        &[],
    );
    assert_eq!(s, 403);
    let (s, v) = h.json(
        Some(&admin),
        "PUT",
        "/v1/sys/unseal",
        Some(r#"{"key":"pvshare1-x"}"#),
        &[],
    );
    assert_eq!(s, 400, "{v}");
    // Seal from unsealed, through the API.
    let running = h.running.take().unwrap();
    running.state.keystore.store(Some(std::sync::Arc::new(
        phivault_keystore::Keystore::open_dev(h.dir.path()).unwrap(),
    )));
    h.running = Some(running);
    let (s, _) = h.json(Some(&admin), "POST", "/v1/transit/keys/billing", None, &[]);
    assert_eq!(s, 200);
    let (s, _) = h.json(Some(&admin), "PUT", "/v1/sys/seal", None, &[]);
    assert_eq!(s, 204);
    let (s, _) = h.get(&admin, "/v1/transit/keys/billing");
    assert_eq!(s, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_unseal_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    phivault_keystore::store::init(
        dir.path(),
        phivault_keystore::InitMethod::Passphrase {
            passphrase: phivault_core::secret::SecretBytes::new(b"correct horse battery".to_vec()),
            iterations: 600_000,
        },
    )
    .unwrap();
    // A harness whose CA lives in a separate dev keystore; the server's data dir is the passphrase one.
    let mut h = Harness::new(|_, _| {});
    let admin = h.client("admin", ADMIN);
    let mut settings = h.settings.clone();
    settings.data_dir = dir.path().to_path_buf();
    let r = phivault_server::server::start(settings, None)
        .await
        .unwrap();
    h.running = Some(r);
    let (s, v) = h.json(
        Some(&admin),
        "PUT",
        "/v1/sys/unseal",
        Some(r#"{"passphrase":"wrong passphrase!"}"#),
        &[],
    );
    assert_eq!(s, 400, "{v}");
    assert!(!v.to_string().contains("wrong passphrase!"));
    let (s, v) = h.json(
        Some(&admin),
        "PUT",
        "/v1/sys/unseal",
        Some(r#"{"passphrase":"correct horse battery"}"#),
        &[],
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sealed"], false);
    let (s, _) = h.json(Some(&admin), "POST", "/v1/transit/keys/billing", None, &[]);
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_matches_the_real_routes() {
    let (h, admin) = started().await;
    let (s, doc) = h.get(&admin, "/v1/openapi.json");
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = std::collections::BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for m in ops.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&m.as_str()) {
                documented.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    let routed: std::collections::BTreeSet<_> = phivault_server::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, routed,
        "docs/openapi.json and api::ROUTES differ"
    );
    // Every route is really served (no fallback "unsupported path").
    for (m, p) in &routed {
        let concrete = p
            .replace("{name}", "billing")
            .replace("{kind}", "wrapped")
            .replace("{algorithm}", "sha2-256")
            .replace("{bytes}", "8");
        let concrete = if concrete == "/v1/transit/keys" {
            format!("{concrete}?list=true")
        } else {
            concrete
        };
        if concrete.ends_with("/seal") {
            continue;
        }
        let (_, b) = h.json(Some(&admin), m, &concrete, Some("{}"), &[]);
        let err = b["errors"][0].as_str().unwrap_or("");
        assert!(
            err != "unsupported path" && err != "method not allowed on this path",
            "{m} {p}: {b}"
        );
    }
}

/// A client CA made by openssl, not by phivault: its certificates carry no
/// scopes extension, so the config grants the principal its scopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_client_ca_from_openssl() {
    let ext = tempfile::tempdir().unwrap();
    let e = ext.path();
    sh(
        "openssl ecparam -name prime256v1 -genkey -noout -out ca.key && \
        openssl req -x509 -new -key ca.key -subj '/CN=Corp Clients CA' -days 30 -out ca.pem \
          -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign && \
        openssl ecparam -name prime256v1 -genkey -noout -out app.key && \
        openssl req -new -key app.key -subj '/CN=app' -out app.csr && \
        printf 'subjectAltName=URI:spiffe://corp.example/app\\nextendedKeyUsage=clientAuth\\nkeyUsage=critical,digitalSignature\\n' > ext.cnf && \
                openssl x509 -req -in app.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 10 -out app.pem -extfile ext.cnf && \
        openssl ecparam -name prime256v1 -genkey -noout -out sneaky.key && \
        openssl req -new -key sneaky.key -subj '/CN=spiffe:\\/\\/corp.example\\/app' -out sneaky.csr && \
        printf 'extendedKeyUsage=clientAuth\n2.25.3285919561749612737=ASN1:UTF8String:keys:admin transit:*:*\n' > sneaky.cnf && \
        openssl x509 -req -in sneaky.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 10 -out sneaky.pem -extfile sneaky.cnf",
        e,
    );
    let ca = e.join("ca.pem");
    let mut h = Harness::new_with(|_, t, a| {
        t.client_ca = Some(ca.clone());
        a.principals.insert(
            "spiffe://corp.example/app".into(),
            vec!["transit:encrypt:billing".into()],
        );
    });
    let builtin_admin = h.client("admin", ADMIN);
    h.start_unsealed().await;
    let app = Client {
        name: "app".into(),
        cert: e.join("app.pem"),
        key: e.join("app.key"),
        pem: std::fs::read_to_string(e.join("app.pem")).unwrap(),
    };
    // The key has to exist; create it in-process (the admin cert is not trusted here).
    phivault_server::transit::Transit::new(&h.ks)
        .create("billing", &Default::default())
        .unwrap();
    let (s, v) = h.post_raw(
        &app,
        "/v1/transit/encrypt/billing",
        r#"{"plaintext":"aGk="}"#,
    );
    assert_eq!(s, 200, "{v}");
    let (s, _) = h.post_raw(
        &app,
        "/v1/transit/decrypt/billing",
        r#"{"ciphertext":"pve:AAAA"}"#,
    );
    assert_eq!(s, 403);
    // From an external CA, the phivault scopes extension is not trusted,
    // and a CN can't pose as a URI principal.
    let sneaky = Client {
        name: "sneaky".into(),
        cert: e.join("sneaky.pem"),
        key: e.join("sneaky.key"),
        pem: std::fs::read_to_string(e.join("sneaky.pem")).unwrap(),
    };
    assert_eq!(h.post_raw(&sneaky, "/v1/transit/keys/x", "{}").0, 403);
    assert_eq!(
        h.post_raw(
            &sneaky,
            "/v1/transit/encrypt/billing",
            r#"{"plaintext":"aGk="}"#
        )
        .0,
        403
    );
    // Certificates of the built-in CA are no longer trusted.
    let (s, _) = h.curl(Some(&builtin_admin), "GET", "/v1/sys/health", None, &[]);
    assert_eq!(s, 0);
}

/// Tokens from an external OIDC issuer (PS256, RSA key made by openssl),
/// bound to the client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_oidc_issuer_ps256() {
    use base64::Engine;
    let b64u = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let ext = tempfile::tempdir().unwrap();
    let e = ext.path();
    sh(
        "openssl genrsa -out idp.key 2048 2>/dev/null && openssl rsa -in idp.key -traditional -outform DER -out idp.der 2>/dev/null",
        e,
    );
    let modulus = sh("openssl rsa -in idp.key -noout -modulus", e);
    let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "idp-1", "alg": "PS256", "use": "sig", "n": b64u(&n), "e": "AQAB"}]});
    std::fs::write(e.join("jwks.json"), jwks.to_string()).unwrap();
    let jwks_file = e.join("jwks.json");
    let mut h = Harness::new_with(|_, _, a| {
        a.external.push(phivault_server::auth::ExternalIssuer {
            issuer: "https://idp.example".into(),
            audience: "phivault-api".into(),
            jwks_file: jwks_file.clone(),
            insecure_allow_unbound_tokens: false,
        });
    });
    let app = h.client("app", &["transit:*:billing"]);
    let other = h.client("other", &["transit:*:billing"]);
    h.start_unsealed().await;
    phivault_server::transit::Transit::new(&h.ks)
        .create("billing", &Default::default())
        .unwrap();
    let fp = phivault_server::pki::peer_identity(&pem_der(&app.pem))
        .unwrap()
        .x5t_s256;
    let key = jsonwebtoken::EncodingKey::from_rsa_der(&std::fs::read(e.join("idp.der")).unwrap());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let make = |claims: Value| {
        let mut hd = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        hd.kid = Some("idp-1".into());
        jsonwebtoken::encode(&hd, &claims, &key).unwrap()
    };
    let base = json!({"iss": "https://idp.example", "aud": "phivault-api", "sub": "app", "iat": now, "nbf": now,
                      "exp": now + 300, "jti": "t1", "scope": "transit:encrypt:billing", "cnf": {"x5t#S256": fp}});
    let pt = r#"{"plaintext":"aGk="}"#;
    let hdr = |t: &str| format!("Authorization: Bearer {t}");
    let good = make(base.clone());
    let (s, v) = h.json(
        Some(&app),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(pt),
        &["-H", &hdr(&good)],
    );
    assert_eq!(s, 200, "{v}");
    // Its scopes apply, not the certificate's.
    let (s, _) = h.json(
        Some(&app),
        "POST",
        "/v1/transit/decrypt/billing",
        Some(r#"{"ciphertext":"pve:AAAA"}"#),
        &["-H", &hdr(&good)],
    );
    assert_eq!(s, 403);
    // A token may not widen the certificate's scopes (transit:*:billing).
    let mut admin_claims = base.clone();
    admin_claims["scope"] = json!("keys:admin transit:encrypt:billing");
    let wide = make(admin_claims);
    let (s, _) = h.json(
        Some(&app),
        "POST",
        "/v1/transit/keys/other",
        Some("{}"),
        &["-H", &hdr(&wide)],
    );
    assert_eq!(s, 403);
    let (s, _) = h.json(
        Some(&app),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(pt),
        &["-H", &hdr(&wide)],
    );
    assert_eq!(s, 200);
    // Common IdP shapes: aud as an array, no nbf or jti.
    let mut idp = base.clone();
    idp["aud"] = json!(["other", "phivault-api"]);
    idp.as_object_mut().unwrap().remove("nbf");
    idp.as_object_mut().unwrap().remove("jti");
    let (s, v) = h.json(
        Some(&app),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(pt),
        &["-H", &hdr(&make(idp))],
    );
    assert_eq!(s, 200, "{v}");
    // Another certificate, no binding, wrong audience, too long: 401.
    let (s, _) = h.json(
        Some(&other),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(pt),
        &["-H", &hdr(&good)],
    );
    assert_eq!(s, 401);
    let mut unbound = base.clone();
    unbound.as_object_mut().unwrap().remove("cnf");
    let mut wrong_aud = base.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut too_long = base.clone();
    too_long["exp"] = json!(now + 3600);
    let mut future_iat = base.clone();
    future_iat["iat"] = json!(now + 3000);
    future_iat["exp"] = json!(now + 3300);
    for (what, c) in [
        ("unbound", unbound),
        ("audience", wrong_aud),
        ("lifetime", too_long),
        ("future iat", future_iat),
    ] {
        let (s, v) = h.json(
            Some(&app),
            "POST",
            "/v1/transit/encrypt/billing",
            Some(pt),
            &["-H", &hdr(&make(c))],
        );
        assert_eq!(s, 401, "{what}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_client_cert_refuses_at_the_handshake() {
    let mut h = Harness::new(|_, t| t.require_client_cert = true);
    let admin = h.client("admin", ADMIN);
    h.start_unsealed().await;
    let (ok, out) = h.s_client(None, &[]);
    assert!(!ok, "{out}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        metric(
            &h.metrics(),
            "phivault_tls_handshake_failures_total{reason=\"client_cert_missing\"}"
        ),
        1.0
    );
    assert!(h.s_client(Some(&admin), &[]).0);
    let m = h.metrics();
    let (_, m2) = h.curl(Some(&admin), "GET", "/v1/sys/metrics", None, &[]);
    assert!(
        m2.contains("phivault_certificate_expiry_seconds{cert=\"crl\"}"),
        "{m}"
    );
}

/// ecdsa-p256 keys: the signature and the published public key check out
/// with openssl, an independent implementation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_signatures_verify_with_openssl() {
    use base64::Engine;
    let (h, admin) = started().await;
    let (s, v) = h.post_raw(
        &admin,
        "/v1/transit/keys/signer",
        r#"{"type":"ecdsa-p256"}"#,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["supports_signing"], true);
    let pem = v["data"]["keys"]["1"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let msg = b"claim 7781: approved";
    let (s, v) = h.post(
        &admin,
        "/v1/transit/sign/signer",
        json!({"input": b64(msg)}),
    );
    assert_eq!(s, 200, "{v}");
    let sig = v["data"]["signature"].as_str().unwrap().to_string();
    let der = base64::engine::general_purpose::STANDARD
        .decode(sig.strip_prefix("vault:v1:").unwrap())
        .unwrap();
    let d = h.dir.path();
    std::fs::write(d.join("pub.pem"), &pem).unwrap();
    std::fs::write(d.join("msg"), msg).unwrap();
    std::fs::write(d.join("sig.der"), &der).unwrap();
    let out = sh(
        "openssl dgst -sha256 -verify pub.pem -signature sig.der msg",
        d,
    );
    assert!(out.contains("Verified OK"), "{out}");
    // And back through the API: valid, then invalid for another message.
    let (_, v) = h.post(
        &admin,
        "/v1/transit/verify/signer",
        json!({"input": b64(msg), "signature": sig}),
    );
    assert_eq!(v["data"]["valid"], true);
    let (_, v) = h.post(
        &admin,
        "/v1/transit/verify/signer",
        json!({"input": b64(b"claim 7781: denied"), "signature": sig}),
    );
    assert_eq!(v["data"]["valid"], false);
    // An AES key does not sign; an ecdsa key does not encrypt.
    let (s, _) = h.post(
        &admin,
        "/v1/transit/sign/billing",
        json!({"input": b64(msg)}),
    );
    assert_eq!(s, 400);
    let (s, _) = h.post(
        &admin,
        "/v1/transit/encrypt/signer",
        json!({"plaintext": b64(msg)}),
    );
    assert_eq!(s, 400);
}

/// rustls restores a resumed session's client certificate from the ticket;
/// the server checks it again, so a revoked certificate can't ride on an
/// old session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_holds_against_session_resumption() {
    let (mut h, _) = started().await;
    let doomed = h.client("doomed", &["transit:*:billing"]);
    let cfg = rustls_client(&h.ca_pem(), Some(&doomed));
    let mut c1 = connect(h.addr(), cfg.clone()).await.unwrap();
    assert_eq!(
        request(&mut c1, "GET", "/v1/sys/health", &[], "").await.0,
        200
    );
    drop(c1);
    // Resumption really happens with this client config...
    let mut c2 = connect(h.addr(), cfg.clone()).await.unwrap();
    assert_eq!(
        c2.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert_eq!(
        request(&mut c2, "GET", "/v1/transit/keys/billing", &[], "")
            .await
            .0,
        403
    );
    drop(c2);
    // ...and after revocation a resumed session is refused.
    h.ca.revoke("doomed", "key-compromise").unwrap();
    let r = h.running.as_ref().unwrap();
    r.reloader.reload(&r.state.metrics).unwrap();
    let key = "phivault_tls_handshake_failures_total{reason=\"client_cert_revoked\"}";
    let before = metric(&h.metrics(), key);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if let Ok(mut c3) = connect(h.addr(), cfg).await {
        let _ = c3
            .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut b = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), c3.read(&mut b))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(
            n, 0,
            "a resumed session of a revoked certificate got an answer"
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(metric(&h.metrics(), key), before + 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_crl_fails_closed() {
    let (mut h, admin) = started().await;
    let now = time::OffsetDateTime::now_utc();
    h.ca.write_crl_between(now - time::Duration::days(9), now - time::Duration::days(2))
        .unwrap();
    let r = h.running.as_ref().unwrap();
    r.reloader.reload(&r.state.metrics).unwrap();
    let (s, _) = h.curl(Some(&admin), "GET", "/v1/transit/keys/billing", None, &[]);
    assert_eq!(s, 0, "handshake must fail");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        metric(
            &h.metrics(),
            "phivault_tls_handshake_failures_total{reason=\"crl_expired\"}"
        ),
        1.0
    );
    // A fresh CRL heals it.
    h.ca.write_crl().unwrap();
    r.reloader.reload(&r.state.metrics).unwrap();
    assert_eq!(h.get(&admin, "/v1/transit/keys/billing").0, 200);
    // A CRL file that holds no CRL is refused, not read as "no revocation".
    std::fs::write(
        h.dir.path().join("ca/crl.pem"),
        std::fs::read(h.ca_pem()).unwrap(),
    )
    .unwrap();
    assert!(r.reloader.reload(&r.state.metrics).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_is_capped_and_datakey_scopes_split() {
    let (mut h, admin) = started().await;
    let items = vec![json!({}); phivault_server::api::MAX_BATCH + 1];
    let (s, v) = h.post(
        &admin,
        "/v1/transit/encrypt/billing",
        json!({ "batch_input": items }),
    );
    assert_eq!(s, 400, "{v}");
    let wrapped_only = h.client("wrapper", &["transit:datakey-wrapped:billing"]);
    assert_eq!(
        h.post(
            &wrapped_only,
            "/v1/transit/datakey/wrapped/billing",
            json!({})
        )
        .0,
        200
    );
    assert_eq!(
        h.post(
            &wrapped_only,
            "/v1/transit/datakey/plaintext/billing",
            json!({})
        )
        .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_per_address() {
    let mut h = Harness::new(|s, _| s.max_connections_per_ip = Some(2));
    let admin = h.client("admin", ADMIN);
    h.start_unsealed().await;
    let cfg = rustls_client(&h.ca_pem(), Some(&admin));
    let mut a = connect(h.addr(), cfg.clone()).await.unwrap();
    let mut b = connect(h.addr(), cfg.clone()).await.unwrap();
    assert_eq!(
        request(&mut a, "GET", "/v1/sys/health", &[], "").await.0,
        200
    );
    assert_eq!(
        request(&mut b, "GET", "/v1/sys/health", &[], "").await.0,
        200
    );
    // A third from the same address is refused at accept.
    assert!(connect(h.addr(), cfg.clone()).await.is_err());
    assert_eq!(
        metric(
            &h.metrics(),
            "phivault_tls_handshake_failures_total{reason=\"connection_limit\"}"
        ),
        1.0
    );
    // Closing one frees its slot.
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = connect(h.addr(), cfg).await.unwrap();
    assert_eq!(
        request(&mut c, "GET", "/v1/sys/health", &[], "").await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps256_tokens_when_configured() {
    let mut h = Harness::new_with(|_, _, a| a.token_algorithm = Some("PS256".into()));
    let admin = h.client("admin", ADMIN);
    h.start_unsealed().await;
    h.post_raw(&admin, "/v1/transit/keys/billing", "{}");
    let (s, v) = h.post(
        &admin,
        "/v1/auth/token",
        json!({"scopes": ["transit:encrypt:billing"], "ttl": 60}),
    );
    assert_eq!(s, 200, "{v}");
    let token = v["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::PS256
    );
    let (s, _) = h.json(
        Some(&admin),
        "POST",
        "/v1/transit/encrypt/billing",
        Some(r#"{"plaintext":"aGk="}"#),
        &["-H", &format!("X-Vault-Token: {token}")],
    );
    assert_eq!(s, 200);
    let (_, jwks) = h.get(&admin, "/v1/auth/jwks");
    assert_eq!(jwks["keys"][0]["alg"], "PS256");
}
