//! Profiles: which observations pass, warn or fail.
//!
//! `nist-800-52r2` follows NIST SP 800-52 Rev. 2 (§3.1 versions, §3.3.1
//! suites, §3.3.1.3 groups, §3.2 certificates, §3.4 extensions); `hipaa`
//! adds what an ePHI deployment is held to (certificates of at most 398
//! days, mutual TLS, HSTS); `mozilla-intermediate` and `modern` follow
//! Mozilla's server-side TLS guidance (v5.7), which allows ChaCha20 and
//! X25519 that NIST does not.

use super::{Observed, Profile, suites, version_name, wire};
use crate::finding::{Finding, Status};

fn code(s: &str) -> u16 {
    u16::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0)
}

/// Whether `profile` allows suite `c` (already accepted under a version
/// the profile allows).
pub fn suite_allowed(profile: Profile, c: u16) -> bool {
    let t = suites::traits(c);
    match profile {
        Profile::Nist80052r2 | Profile::Hipaa => {
            // §3.3.1.1/3.3.1.2: AES (GCM, CCM, CBC) with ECDHE or DHE,
            // ECDSA or RSA certificates; TLS 1.3: AES-GCM and AES-CCM.
            if suites::TLS13.contains(&c) {
                return c != 0x1303;
            }
            !t.broken && t.forward_secret && t.aes && matches!(t.auth, "ECDSA" | "RSA")
        }
        Profile::MozillaIntermediate => {
            if suites::TLS13.contains(&c) {
                return matches!(c, 0x1301..=0x1303);
            }
            matches!(
                c,
                0xc02b | 0xc02f | 0xc02c | 0xc030 | 0xcca9 | 0xcca8 | 0x009e | 0x009f | 0xccaa
            )
        }
        Profile::Modern => matches!(c, 0x1301..=0x1303),
    }
}

fn group_verdict(profile: Profile, g: &str) -> Status {
    let nist = matches!(profile, Profile::Nist80052r2 | Profile::Hipaa);
    match g {
        "secp256r1" | "secp384r1" => Status::Pass,
        "secp521r1" => {
            if nist {
                Status::Pass
            } else {
                Status::Warn
            }
        }
        "SecP256r1MLKEM768" | "SecP384r1MLKEM1024" => Status::Pass,
        "ffdhe2048" | "ffdhe3072" | "ffdhe4096" | "ffdhe6144" | "ffdhe8192" => {
            if nist || profile == Profile::MozillaIntermediate {
                Status::Pass
            } else {
                Status::Warn
            }
        }
        // Hybrids whose classical half is X25519: the ML-KEM half is FIPS
        // 203, the X25519 half is not SP 800-56A; acceptable to Mozilla.
        "X25519MLKEM768" => {
            if nist {
                Status::Warn
            } else {
                Status::Pass
            }
        }
        "x25519" => {
            if nist {
                Status::Fail
            } else {
                Status::Pass
            }
        }
        _ => Status::Fail,
    }
}

fn supported(o: &Observed, v: u16) -> bool {
    o.versions
        .iter()
        .any(|x| x.version == version_name(v) && x.supported)
}

/// Grades observations against a profile.
pub fn grade(o: &Observed, profile: Profile) -> Vec<Finding> {
    let nist = matches!(profile, Profile::Nist80052r2 | Profile::Hipaa);
    let mut f = Vec::new();
    let on = |v| supported(o, v);

    // Versions.
    let ssl: Vec<&str> = [wire::SSL2, wire::SSL3]
        .into_iter()
        .filter(|v| on(*v))
        .map(version_name)
        .collect();
    f.push(
        Finding::new(
            "TLS-VERSION-SSL",
            "SSL 2.0 and SSL 3.0 are not accepted",
            if ssl.is_empty() {
                Status::Pass
            } else {
                Status::Fail
            },
            if ssl.is_empty() {
                "neither SSLv2 nor SSLv3 accepted".to_owned()
            } else {
                format!("accepted: {}", ssl.join(", "))
            },
        )
        .fix("Disable SSL 2.0 and 3.0 (broken: DROWN, POODLE)."),
    );
    let old: Vec<&str> = [wire::TLS10, wire::TLS11]
        .into_iter()
        .filter(|v| on(*v))
        .map(version_name)
        .collect();
    f.push(
        Finding::new(
            "TLS-VERSION-LEGACY",
            "TLS 1.0 and TLS 1.1 are not accepted (SP 800-52r2 §3.1)",
            if old.is_empty() {
                Status::Pass
            } else {
                Status::Fail
            },
            if old.is_empty() {
                "neither TLS 1.0 nor TLS 1.1 accepted".to_owned()
            } else {
                format!("accepted: {}", old.join(", "))
            },
        )
        .fix("Offer only TLS 1.2 and TLS 1.3 (nginx: ssl_protocols TLSv1.2 TLSv1.3;)."),
    );
    let (st12, why12) = match (profile, on(wire::TLS12)) {
        (Profile::Modern, true) => (
            Status::Fail,
            "TLS 1.2 accepted; the modern profile is TLS 1.3 only",
        ),
        (Profile::Modern, false) => (Status::Pass, "TLS 1.2 not accepted"),
        (_, true) => (Status::Pass, "TLS 1.2 accepted"),
        (Profile::MozillaIntermediate, false) => (
            Status::Warn,
            "TLS 1.2 not accepted: older clients cannot connect",
        ),
        (_, false) => (Status::Fail, "TLS 1.2 not accepted"),
    };
    f.push(
        Finding::new(
            "TLS-VERSION-1.2",
            if profile == Profile::Modern {
                "Only TLS 1.3 is accepted"
            } else {
                "TLS 1.2 is supported (SP 800-52r2 §3.1)"
            },
            st12,
            why12,
        )
        .fix(if profile == Profile::Modern {
            "Disable TLS 1.2."
        } else {
            "Enable TLS 1.2 with approved suites."
        }),
    );
    f.push(
        Finding::new(
            "TLS-VERSION-1.3",
            "TLS 1.3 is supported (SP 800-52r2 §3.1: required since 1 January 2024)",
            match (on(wire::TLS13), profile) {
                (true, _) => Status::Pass,
                (false, Profile::MozillaIntermediate) => Status::Warn,
                (false, _) => Status::Fail,
            },
            if on(wire::TLS13) {
                "TLS 1.3 accepted"
            } else {
                "TLS 1.3 not accepted"
            },
        )
        .fix("Enable TLS 1.3 (OpenSSL 1.1.1 or later, nginx: ssl_protocols TLSv1.2 TLSv1.3;)."),
    );

    // Suites, under the versions the profile allows and the ones it doesn't.
    let mut bad = Vec::new();
    let mut cbc = Vec::new();
    for v in &o.versions {
        for s in &v.suites {
            if v.version == "SSLv2" {
                bad.push(format!("{} ({})", s.name, v.version));
                continue;
            }
            let c = code(&s.code);
            if !suite_allowed(profile, c) {
                bad.push(format!("{} ({})", s.name, v.version));
            } else if suites::traits(c).cbc {
                cbc.push(format!("{} ({})", s.name, v.version));
            }
        }
    }
    bad.dedup();
    f.push(
        Finding::new(
            "TLS-SUITES",
            match profile {
                Profile::Nist80052r2 | Profile::Hipaa => {
                    "Only approved cipher suites: AES with ECDHE/DHE, ECDSA/RSA certificates; TLS 1.3 AES-GCM/CCM (SP 800-52r2 §3.3.1)"
                }
                Profile::MozillaIntermediate => "Only Mozilla intermediate cipher suites",
                Profile::Modern => "Only TLS 1.3 cipher suites",
            },
            if bad.is_empty() { Status::Pass } else { Status::Fail },
            if bad.is_empty() {
                let n: usize = o.versions.iter().map(|v| v.suites.len()).sum();
                format!("all {n} accepted suites are allowed")
            } else {
                format!("{} not allowed: {}", bad.len(), bad.join(", "))
            },
        )
        .fix("Remove the listed suites (NULL, EXPORT, RC4, DES, 3DES, static RSA, anonymous, ChaCha20 under NIST). nginx: ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384;"),
    );
    if nist {
        f.push(
            Finding::new(
                "TLS-SUITES-AEAD",
                "Approved suites are AEAD (GCM/CCM); CBC is allowed by SP 800-52r2 but not preferred",
                if cbc.is_empty() { Status::Pass } else { Status::Warn },
                if cbc.is_empty() {
                    "no CBC suites accepted".to_owned()
                } else {
                    format!("CBC suites: {}", cbc.join(", "))
                },
            )
            .fix("Prefer removing CBC suites: AES-GCM is faster and immune to padding oracles."),
        );
    }
    let client_order: Vec<&str> = o
        .versions
        .iter()
        .filter(|v| v.server_order == Some(false) && v.version != "TLSv1.3")
        .map(|v| v.version.as_str())
        .collect();
    f.push(
        Finding::new(
            "TLS-SUITE-ORDER",
            "The server chooses the suite by its own preference (TLS 1.2 and below)",
            if client_order.is_empty() {
                Status::Pass
            } else {
                Status::Warn
            },
            if client_order.is_empty() {
                "server preference enforced (or a single suite)".to_owned()
            } else {
                format!("client's order followed under {}", client_order.join(", "))
            },
        )
        .fix("Enable server cipher preference (nginx: ssl_prefer_server_ciphers on;)."),
    );

    // Groups and DH.
    let mut worst = Status::Pass;
    let mut notes = Vec::new();
    for g in &o.groups {
        let s = group_verdict(profile, g);
        worst = worst.max(s);
        if s != Status::Pass {
            notes.push(format!("{g} ({})", s.as_str()));
        }
    }
    f.push(
        Finding::new(
            "TLS-GROUPS",
            if nist {
                "Key exchange uses approved groups: P-256, P-384, P-521, ffdhe ≥ 2048 (SP 800-52r2 §3.3.1.3, SP 800-56A)"
            } else {
                "Key exchange groups are allowed by the profile"
            },
            worst,
            if o.groups.is_empty() {
                "no group observed".to_owned()
            } else if notes.is_empty() {
                format!("supported: {}", o.groups.join(", "))
            } else {
                format!("supported: {}; outside the profile: {}", o.groups.join(", "), notes.join(", "))
            },
        )
        .fix("Restrict groups (nginx: ssl_ecdh_curve secp256r1:secp384r1;). X25519 is not approved for FIPS key agreement."),
    );
    if let Some(b) = o.dh_bits {
        f.push(
            Finding::new(
                "TLS-DH-SIZE",
                "Finite-field DH groups are at least 2048 bits",
                if b >= 2048 {
                    Status::Pass
                } else {
                    Status::Fail
                },
                format!("DHE prime: {b} bits"),
            )
            .fix("Use ffdhe2048 or larger (RFC 7919), or drop DHE suites."),
        );
    }

    // Certificate.
    grade_chain(o, profile, &mut f);

    // Extensions and features.
    let legacy = [wire::SSL3, wire::TLS10, wire::TLS11, wire::TLS12]
        .iter()
        .any(|v| on(*v));
    if let Some((ok, how)) = &o.fallback_protection {
        f.push(
            Finding::new(
                "TLS-DOWNGRADE",
                "Protocol downgrade is detected (TLS_FALLBACK_SCSV, RFC 7507, or the RFC 8446 sentinel)",
                if *ok { Status::Pass } else { Status::Fail },
                how.clone(),
            )
            .fix("Upgrade the TLS library to one that honours TLS_FALLBACK_SCSV, or offer one version only."),
        );
    }
    if legacy {
        let r = o.secure_renegotiation.unwrap_or(false);
        f.push(
            Finding::new(
                "TLS-RENEGOTIATION",
                "Secure renegotiation (RFC 5746) is supported (SP 800-52r2 §3.4.1.4)",
                if r { Status::Pass } else { Status::Fail },
                if r {
                    "renegotiation_info answered"
                } else {
                    "no renegotiation_info in the ServerHello"
                },
            )
            .fix("Upgrade the TLS library; RFC 5746 has been standard since 2010."),
        );
        if on(wire::TLS12) {
            let e = o.extended_master_secret.unwrap_or(false);
            f.push(
                Finding::new(
                    "TLS-EMS",
                    "Extended master secret (RFC 7627) under TLS 1.2 (FIPS 140-3 IG D.Q)",
                    if e { Status::Pass } else { Status::Fail },
                    if e {
                        "extended_master_secret answered"
                    } else {
                        "no extended_master_secret in the ServerHello"
                    },
                )
                .fix("Upgrade the TLS library (OpenSSL ≥ 1.1.0 supports EMS)."),
            );
        }
    }
    if let Some(c) = o.compression {
        f.push(
            Finding::new(
                "TLS-COMPRESSION",
                "TLS compression is off (CRIME)",
                if c { Status::Fail } else { Status::Pass },
                if c {
                    "DEFLATE accepted"
                } else {
                    "only null compression accepted"
                },
            )
            .fix("Disable TLS compression."),
        );
    }
    let ocsp = o.ocsp_stapling.unwrap_or(false);
    f.push(
        Finding::new(
            "TLS-OCSP-STAPLING",
            "OCSP stapling (certificate status request) is supported (SP 800-52r2 §3.4.1.2)",
            if ocsp { Status::Pass } else { Status::Warn },
            if ocsp { "a stapled OCSP response was sent" } else { "no stapled OCSP response" },
        )
        .fix("Enable stapling where the CA runs OCSP (nginx: ssl_stapling on;). A private CA with short-lived certificates and CRLs may accept this warning."),
    );
    f.push(Finding::new(
        "TLS-RESUMPTION",
        "Session resumption",
        Status::Info,
        match o.session_resumption {
            Some(true) => "supported",
            Some(false) => "not supported",
            None => "not checked",
        },
    ));
    let hsts_ok = o
        .hsts
        .as_deref()
        .and_then(hsts_max_age)
        .is_some_and(|a| a >= 31_536_000);
    let (st, ev) = match (o.http_status, &o.hsts) {
        (None, _) => (
            Status::Info,
            match &o.handshake_error {
                Some(e) => format!("not checked: the full handshake failed ({e})"),
                None => "not checked: no HTTP response".to_owned(),
            },
        ),
        (Some(code), Some(h)) if hsts_ok => (
            Status::Pass,
            format!("HTTP {code}, Strict-Transport-Security: {h}"),
        ),
        (Some(code), Some(h)) => (
            if nist && profile != Profile::Hipaa {
                Status::Warn
            } else {
                Status::Fail
            },
            format!("HTTP {code}, Strict-Transport-Security: {h} (max-age below one year)"),
        ),
        (Some(code), None) => (
            if profile == Profile::Nist80052r2 {
                Status::Warn
            } else {
                Status::Fail
            },
            format!("HTTP {code} without Strict-Transport-Security"),
        ),
    };
    f.push(
        Finding::new(
            "TLS-HSTS",
            "HTTPS responses carry HSTS with max-age ≥ 1 year",
            st,
            ev,
        )
        .fix("Send Strict-Transport-Security: max-age=63072000 on every response."),
    );
    let cas = if o.client_cas.is_empty() {
        String::new()
    } else {
        format!("; accepted CAs: {}", o.client_cas.join(" | "))
    };
    let (st, ev) = match (o.client_cert_requested, o.client_cert_required) {
        (Some(true), Some(true)) => (
            Status::Pass,
            format!("client certificate required: the handshake fails without one{cas}"),
        ),
        (Some(true), Some(false)) => (
            Status::Warn,
            format!(
                "client certificate requested but optional: the handshake completed without one, so only the application can refuse{cas}"
            ),
        ),
        (Some(true), None) => (
            Status::Pass,
            format!(
                "client certificate requested (whether it is required was not tested: one was presented){cas}"
            ),
        ),
        (Some(false), _) => (
            if profile == Profile::Hipaa {
                Status::Fail
            } else {
                Status::Info
            },
            "no client certificate requested".to_owned(),
        ),
        (None, _) => (
            if profile == Profile::Hipaa {
                Status::Fail
            } else {
                Status::Info
            },
            "not determined".to_owned(),
        ),
    };
    f.push(
        Finding::new(
            "TLS-MTLS",
            "Clients authenticate with certificates (mutual TLS)",
            st,
            ev,
        )
        .fix("Require client certificates at the TLS layer for services that carry ePHI (phivault requires them at the HTTP layer on every endpoint but /v1/sys/health)."),
    );
    f
}

/// RFC 6125 matching of `name` against `DNS:`/`IP:` SAN entries: exact
/// (case-insensitive) or a wildcard for one leftmost label.
pub fn hostname_matches(san: &[String], name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Ok(ip) = name
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        return san
            .iter()
            .filter_map(|s| s.strip_prefix("IP:"))
            .any(|s| s.parse::<std::net::IpAddr>().is_ok_and(|x| x == ip));
    }
    san.iter().filter_map(|s| s.strip_prefix("DNS:")).any(|d| {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        match d.strip_prefix("*.") {
            Some(rest) => name
                .split_once('.')
                .is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
            None => d == name,
        }
    })
}

fn hsts_max_age(h: &str) -> Option<u64> {
    h.split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("max-age"))
        .and_then(|(_, v)| v.trim().trim_matches('"').parse().ok())
}

fn grade_chain(o: &Observed, profile: Profile, f: &mut Vec<Finding>) {
    let nist = matches!(profile, Profile::Nist80052r2 | Profile::Hipaa);
    let Some(leaf) = o.chain.first() else {
        f.push(
            Finding::new(
                "TLS-CERT",
                "The server presents a certificate chain",
                if o.chain_error.is_some() {
                    Status::Fail
                } else {
                    Status::Warn
                },
                o.chain_error
                    .clone()
                    .unwrap_or_else(|| "no certificate seen".into()),
            )
            .fix("Serve a valid X.509 chain."),
        );
        return;
    };
    f.push(
        Finding::new(
            "TLS-CERT-TRUST",
            "The chain verifies to a trusted CA and matches the host name",
            match &o.trust {
                Some(Ok(())) => Status::Pass,
                _ => Status::Fail,
            },
            match &o.trust {
                Some(Ok(())) => format!("trusted; subject {}", leaf.subject),
                Some(Err(e)) => format!("not trusted: {e}"),
                None => "not checked".to_owned(),
            },
        )
        .fix("Serve the full chain from a CA in the bundle (`--ca-file`), with the host name in subjectAltName."),
    );
    // Every certificate served, intermediates included: expired, not yet
    // valid, or expiring within 30 days.
    let now = leaf.not_after_unix - leaf.days_to_expiry * 86_400;
    let mut worst = Status::Pass;
    let mut notes = Vec::new();
    for (i, c) in o.chain.iter().enumerate() {
        let what = if i == 0 {
            "leaf".to_owned()
        } else {
            format!("cert[{i}] {}", c.subject)
        };
        let (st, note) = if c.not_before_unix > now + 300 {
            (Status::Fail, format!("{what} not valid yet"))
        } else if c.days_to_expiry < 0 {
            (
                Status::Fail,
                format!("{what} expired {} days ago", -c.days_to_expiry),
            )
        } else if c.days_to_expiry < 30 {
            (
                Status::Warn,
                format!("{what} expires in {} days", c.days_to_expiry),
            )
        } else {
            (
                Status::Pass,
                format!("{what} expires in {} days", c.days_to_expiry),
            )
        };
        worst = worst.max(st);
        if st != Status::Pass || i == 0 {
            notes.push(note);
        }
    }
    f.push(
        Finding::new(
            "TLS-CERT-EXPIRY",
            "Every certificate of the chain is valid now and not about to expire (30 days)",
            worst,
            notes.join("; "),
        )
        .fix("Renew the certificate (`phivault ca issue server`) and automate renewal."),
    );
    let life = (leaf.not_after_unix - leaf.not_before_unix) / 86_400;
    let max = match profile {
        Profile::Nist80052r2 => 1096,
        Profile::Hipaa => 398,
        Profile::MozillaIntermediate | Profile::Modern => 366,
    };
    f.push(
        Finding::new(
            "TLS-CERT-LIFETIME",
            &format!("The certificate's lifetime is at most {max} days"),
            if life <= max {
                Status::Pass
            } else {
                Status::Fail
            },
            format!("issued for {life} days"),
        )
        .fix("Issue shorter-lived certificates."),
    );
    let key_ok = |k: &str| match k.split_once(' ') {
        Some(("RSA", b)) => b.parse::<u32>().is_ok_and(|b| b >= 2048),
        Some(("ECDSA", c)) => matches!(c, "P-256" | "P-384") || (nist && c == "P-521"),
        _ => false,
    };
    // The trust anchor's own signature doesn't matter (it is trusted by
    // being in the store); every other certificate's does, a self-signed
    // leaf included.
    let anchor = o.chain.len() > 1 && o.chain.last().is_some_and(|c| c.subject == c.issuer);
    let signed = if anchor {
        &o.chain[..o.chain.len() - 1]
    } else {
        &o.chain[..]
    };
    let weak_sig: Vec<String> = signed
        .iter()
        .filter(|c| {
            let s = c.signature_algorithm.to_ascii_lowercase();
            s.contains("sha1") || s.contains("md5") || s.contains("md2") || s.contains("sha224")
        })
        .map(|c| format!("{} ({})", c.subject, c.signature_algorithm))
        .collect();
    f.push(
        Finding::new(
            "TLS-CERT-KEY",
            "The server key is RSA ≥ 2048 bits or ECDSA P-256/P-384 (SP 800-52r2 §3.2)",
            if key_ok(&leaf.key) {
                Status::Pass
            } else {
                Status::Fail
            },
            format!("key: {}", leaf.key),
        )
        .fix("Reissue with an ECDSA P-256 or RSA 2048+ key."),
    );
    f.push(
        Finding::new(
            "TLS-CERT-SIGNATURE",
            "Certificates are signed with SHA-256 or stronger",
            if weak_sig.is_empty() {
                Status::Pass
            } else {
                Status::Fail
            },
            if weak_sig.is_empty() {
                format!("leaf: {}", leaf.signature_algorithm)
            } else {
                format!("weak: {}", weak_sig.join(", "))
            },
        )
        .fix("Reissue the listed certificates with SHA-256 or stronger."),
    );
    let server_auth = leaf.eku.iter().any(|e| e == "serverAuth");
    let any = leaf.eku.iter().any(|e| e == "anyExtendedKeyUsage");
    f.push(
        Finding::new(
            "TLS-CERT-EKU",
            "The certificate has extendedKeyUsage serverAuth and not anyExtendedKeyUsage (SP 800-52r2 §3.2.1)",
            if server_auth && !any { Status::Pass } else { Status::Fail },
            if leaf.eku.is_empty() {
                "no extendedKeyUsage".to_owned()
            } else {
                format!("EKU: {}", leaf.eku.join(", "))
            },
        )
        .fix("Reissue with EKU id-kp-serverAuth only."),
    );
    let name_ok = hostname_matches(&leaf.san, &o.server_name);
    f.push(
        Finding::new(
            "TLS-CERT-HOSTNAME",
            "The certificate's subjectAltName covers the name clients use",
            if name_ok { Status::Pass } else { Status::Fail },
            if name_ok {
                format!("{} matches", o.server_name)
            } else {
                format!("{} is not in {}", o.server_name, leaf.san.join(", "))
            },
        )
        .fix("Reissue with the DNS names and IP addresses clients use in subjectAltName."),
    );
    let ku = leaf.key_usage.iter().any(|k| k == "digitalSignature");
    f.push(
        Finding::new(
            "TLS-CERT-KEYUSAGE",
            "keyUsage includes digitalSignature (SP 800-52r2 §3.2.1)",
            if ku { Status::Pass } else { Status::Warn },
            if leaf.key_usage.is_empty() {
                "no keyUsage extension".to_owned()
            } else {
                format!("keyUsage: {}", leaf.key_usage.join(", "))
            },
        )
        .fix("Reissue with keyUsage digitalSignature."),
    );
    f.push(
        Finding::new(
            "TLS-CERT-AIA-OCSP",
            "The certificate names an OCSP responder (AIA), as SP 800-52r2 §3.2.1 asks",
            if leaf.ocsp_urls.is_empty() { Status::Warn } else { Status::Pass },
            if leaf.ocsp_urls.is_empty() {
                "no OCSP URL in Authority Information Access".to_owned()
            } else {
                format!("OCSP: {}", leaf.ocsp_urls.join(", "))
            },
        )
        .fix("Issue from a CA that runs OCSP; a private CA with short-lived certificates and CRLs may accept this warning."),
    );
    f.push(
        Finding::new(
            "TLS-CERT-SAN",
            "The certificate names the server in subjectAltName",
            if leaf.san.is_empty() {
                Status::Fail
            } else {
                Status::Pass
            },
            if leaf.san.is_empty() {
                "no subjectAltName".to_owned()
            } else {
                format!("SAN: {}", leaf.san.join(", "))
            },
        )
        .fix("Reissue with the DNS names and IP addresses clients use in subjectAltName."),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        let san = vec![
            "DNS:*.example.org".to_owned(),
            "DNS:Api.Test".to_owned(),
            "IP:127.0.0.1".to_owned(),
        ];
        assert!(hostname_matches(&san, "a.example.org"));
        assert!(!hostname_matches(&san, "a.b.example.org"));
        assert!(!hostname_matches(&san, "example.org"));
        assert!(hostname_matches(&san, "api.test."));
        assert!(hostname_matches(&san, "127.0.0.1"));
        assert!(!hostname_matches(&san, "127.0.0.2"));
        assert!(!hostname_matches(&[], "x"));
    }

    #[test]
    fn nist_suite_rules() {
        for ok in [
            0xc02b, 0xc02f, 0xc030, 0xc0ac, 0x009e, 0xc013, 0x1301, 0x1302, 0x1304, 0x1305,
        ] {
            assert!(suite_allowed(Profile::Nist80052r2, ok), "{ok:04x}");
        }
        for bad in [
            0x002f, 0x0035, 0x000a, 0xcca8, 0x1303, 0x0004, 0xc051, 0x0041, 0x0018,
        ] {
            assert!(!suite_allowed(Profile::Nist80052r2, bad), "{bad:04x}");
        }
        assert!(suite_allowed(Profile::MozillaIntermediate, 0xcca8));
        assert!(!suite_allowed(Profile::Modern, 0xc02f));
    }
}
