//! One target's scan: which probes run, in what order and in parallel, and
//! how their flights become [`Observed`] facts.

use super::probe::{self, ProbeError};
use super::wire::{self, Hello, ServerFlight, group};
use super::{Observed, ScanOptions, SuiteSeen, Target, VersionSeen, cert, session, suites};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Versions probed, lowest first.
pub const VERSIONS: [u16; 6] = [
    wire::SSL2,
    wire::SSL3,
    wire::TLS10,
    wire::TLS11,
    wire::TLS12,
    wire::TLS13,
];

/// Display name of a wire version.
pub fn version_name(v: u16) -> &'static str {
    match v {
        wire::SSL2 => "SSLv2",
        wire::SSL3 => "SSLv3",
        wire::TLS10 => "TLSv1.0",
        wire::TLS11 => "TLSv1.1",
        wire::TLS12 => "TLSv1.2",
        wire::TLS13 => "TLSv1.3",
        _ => "unknown",
    }
}

/// Runs `f` over `items` on up to `threads` threads, keeping order.
pub(super) fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len()).max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    out.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

struct Ctx<'a> {
    t: &'a Target,
    addr: SocketAddr,
    opts: &'a ScanOptions,
    probes: AtomicU32,
}

impl Ctx<'_> {
    fn probe(&self, h: &Hello, full: bool) -> Result<ServerFlight, ProbeError> {
        self.probes.fetch_add(1, Ordering::Relaxed);
        probe::probe(self.t, self.addr, h, full, self.opts.timeout)
    }

    fn sni(&self) -> Option<&str> {
        match &self.t.sni {
            Some(s) => Some(s.as_str()),
            None if self.t.host.parse::<std::net::IpAddr>().is_err() => Some(self.t.host.as_str()),
            None => None,
        }
    }
}

/// The chosen suite, when the server accepted `v` (a HelloRetryRequest
/// counts for TLS 1.3: it names the suite too).
fn accepted(f: &ServerFlight, v: u16) -> Option<u16> {
    let h = f.hello.as_ref()?;
    (h.version == v).then_some(h.suite)
}

struct VersionRun {
    seen: VersionSeen,
    detail: Option<ServerFlight>,
}

fn enumerate(c: &Ctx, v: u16) -> VersionRun {
    let mut seen = VersionSeen {
        version: version_name(v).into(),
        supported: false,
        suites: Vec::new(),
        server_order: None,
        error: None,
    };
    if v == wire::SSL2 {
        match c.probe(&Hello::new(v, c.sni()), true) {
            Ok(f) => {
                if let Some(specs) = f.ssl2_specs.filter(|s| !s.is_empty()) {
                    seen.supported = true;
                    for s in specs {
                        let name = suites::SSL2_SPECS
                            .iter()
                            .find(|(c, _)| *c == s)
                            .map_or_else(|| hex::encode(s), |(_, n)| (*n).to_owned());
                        seen.suites.push(SuiteSeen {
                            code: format!("0x{}", hex::encode(s).to_uppercase()),
                            name,
                        });
                    }
                }
            }
            Err(e) => seen.error = Some(e.to_string()),
        }
        return VersionRun { seen, detail: None };
    }
    let mut hello = Hello::new(v, c.sni());
    let mut found: Vec<u16> = Vec::new();
    let mut detail = None;
    while !hello.suites.is_empty() {
        let f = match c.probe(&hello, detail.is_none()) {
            Ok(f) => f,
            Err(e) => {
                seen.error = Some(e.to_string());
                break;
            }
        };
        let Some(s) = accepted(&f, v) else { break };
        if !hello.suites.contains(&s) {
            seen.error = Some(format!(
                "the server chose {}, which was not offered",
                suites::name(s)
            ));
            break;
        }
        found.push(s);
        hello.suites.retain(|x| *x != s);
        if detail.is_none() {
            detail = Some(f);
        }
    }
    if found.len() >= 2 {
        hello.suites = found.iter().rev().copied().collect();
        if let Ok(f) = c.probe(&hello, false) {
            seen.server_order = accepted(&f, v).map(|s| s == found[0]);
        }
    }
    seen.supported = !found.is_empty();
    seen.suites = found
        .iter()
        .map(|s| SuiteSeen {
            code: format!("0x{s:04X}"),
            name: suites::name(*s),
        })
        .collect();
    VersionRun { seen, detail }
}

/// One of the probes that run after the versions are known.
enum Extra {
    Group13(u16),
    Group12(u16, Vec<u16>),
    Dhe(u16, Vec<u16>),
    Fallback(u16),
    Compression(u16),
    Session(bool),
}

enum ExtraResult {
    Group(u16, bool),
    Dhe(Option<u32>),
    Fallback(String, bool),
    Compression(bool),
    Session(Box<session::Session>),
}

/// Scans one target; see [`super::scan`].
pub fn run(t: &Target, opts: &ScanOptions, now: i64) -> Result<Observed, String> {
    let addr = probe::resolve(t).map_err(|e| e.to_string())?;
    // Reachability first, so an unreachable target costs one timeout, not
    // one per probe.
    probe::connect(t, addr, opts.timeout).map_err(|e| e.to_string())?;
    let client_key = match &opts.client_cert {
        Some((c, k)) => Some(session::load_client_cert(c, k)?),
        None => None,
    };
    let c = Ctx {
        t,
        addr,
        opts,
        probes: AtomicU32::new(1),
    };
    let runs = par_map(&VERSIONS, VERSIONS.len(), |v| enumerate(&c, *v));
    let mut obs = Observed {
        versions: runs.iter().map(|r| r.seen.clone()).collect(),
        ..Default::default()
    };
    let supports = |v: u16| {
        runs.iter()
            .any(|r| r.seen.version == version_name(v) && r.seen.supported)
    };
    if !obs.versions.iter().any(|v| v.supported) {
        let why = runs.iter().find_map(|r| r.seen.error.clone());
        return Err(match why {
            Some(e) => format!("no TLS or SSL version was accepted ({e})"),
            None => "the server accepted no TLS or SSL version".into(),
        });
    }
    let suites_of = |v: u16, pred: &dyn Fn(suites::Traits) -> bool| -> Vec<u16> {
        runs.iter()
            .filter(|r| r.seen.version == version_name(v))
            .flat_map(|r| r.seen.suites.iter())
            .filter_map(|s| u16::from_str_radix(s.code.trim_start_matches("0x"), 16).ok())
            .filter(|s| pred(suites::traits(*s)))
            .collect()
    };
    let best_legacy = [wire::TLS12, wire::TLS11, wire::TLS10, wire::SSL3]
        .into_iter()
        .find(|v| supports(*v));

    let mut extras = Vec::new();
    if supports(wire::TLS13) {
        extras.extend(group::ALL.iter().map(|g| Extra::Group13(*g)));
    }
    if let Some(v) = best_legacy {
        let ecdhe = suites_of(v, &|t| t.kex == "ECDHE");
        if !ecdhe.is_empty() {
            let mut gs: Vec<u16> = group::ALL[..5].to_vec();
            gs.extend_from_slice(&group::LEGACY_EC);
            extras.extend(gs.into_iter().map(|g| Extra::Group12(g, ecdhe.clone())));
        }
        let dhe = suites_of(v, &|t| t.kex == "DHE");
        if !dhe.is_empty() {
            extras.push(Extra::Dhe(v, dhe));
        }
        extras.push(Extra::Compression(v));
    }
    // Downgrade protection: ask for the second-highest version with the
    // fallback SCSV, as a client retrying after a failed handshake would.
    let supported: Vec<u16> = VERSIONS.iter().copied().filter(|v| supports(*v)).collect();
    if supported.len() >= 2 {
        extras.push(Extra::Fallback(supported[supported.len() - 2]));
    }
    if supports(wire::TLS12) || supports(wire::TLS13) {
        extras.push(Extra::Session(opts.http.unwrap_or(t.starttls.is_none())));
    }
    let results = par_map(&extras, 8, |x| match x {
        Extra::Group13(g) => {
            let mut h = Hello::new(wire::TLS13, c.sni());
            h.groups = vec![*g];
            let ok = c
                .probe(&h, false)
                .ok()
                .and_then(|f| f.hello)
                .is_some_and(|h| {
                    !h.hello_retry && h.version == wire::TLS13 && h.key_share_group == Some(*g)
                });
            ExtraResult::Group(*g, ok)
        }
        Extra::Group12(g, ecdhe) => {
            let mut h = Hello::new(wire::TLS12, c.sni());
            h.suites = ecdhe.clone();
            h.groups = vec![*g];
            let ok = c.probe(&h, true).is_ok_and(|f| f.ecdh_group == Some(*g));
            ExtraResult::Group(*g, ok)
        }
        Extra::Dhe(v, dhe) => {
            let mut h = Hello::new(*v, c.sni());
            h.suites = dhe.clone();
            h.groups.retain(|g| !(256..=260).contains(g));
            ExtraResult::Dhe(c.probe(&h, true).ok().and_then(|f| f.dh_bits))
        }
        Extra::Compression(v) => {
            let mut h = Hello::new(*v, c.sni());
            h.compression = true;
            ExtraResult::Compression(
                c.probe(&h, false)
                    .ok()
                    .and_then(|f| f.hello)
                    .is_some_and(|h| h.compression != 0),
            )
        }
        Extra::Fallback(v) => {
            let mut h = Hello::new(*v, c.sni());
            h.fallback_scsv = true;
            match c.probe(&h, false) {
                Ok(f) => match (&f.alert, &f.hello) {
                    (Some((_, 86)), _) => ExtraResult::Fallback(
                        format!(
                            "{} with TLS_FALLBACK_SCSV refused (inappropriate_fallback)",
                            version_name(*v)
                        ),
                        true,
                    ),
                    (_, Some(sh))
                        if sh.random[24..] == wire::DOWNGRADE_TLS12
                            || sh.random[24..] == wire::DOWNGRADE_TLS11 =>
                    {
                        ExtraResult::Fallback(
                            format!(
                                "{} accepted, but the ServerHello carries the RFC 8446 downgrade sentinel, which TLS 1.3 clients check",
                                version_name(*v)
                            ),
                            true,
                        )
                    }
                    (_, Some(_)) => ExtraResult::Fallback(
                        format!(
                            "{} with TLS_FALLBACK_SCSV accepted: no downgrade protection",
                            version_name(*v)
                        ),
                        false,
                    ),
                    (Some((_, d)), None) => ExtraResult::Fallback(
                        format!(
                            "{} with TLS_FALLBACK_SCSV refused ({})",
                            version_name(*v),
                            wire::alert_name(*d)
                        ),
                        true,
                    ),
                    (None, None) => ExtraResult::Fallback(
                        format!(
                            "{} with TLS_FALLBACK_SCSV: connection closed",
                            version_name(*v)
                        ),
                        true,
                    ),
                },
                Err(e) => ExtraResult::Fallback(format!("probe failed: {e}"), false),
            }
        }
        Extra::Session(http) => {
            c.probes.fetch_add(2, Ordering::Relaxed);
            ExtraResult::Session(Box::new(session::run(
                t,
                addr,
                opts.timeout,
                *http,
                client_key.clone(),
            )))
        }
    });

    let mut sess = None;
    for r in results {
        match r {
            ExtraResult::Group(g, true) => {
                let n = group::name(g);
                if !obs.groups.contains(&n) {
                    obs.groups.push(n);
                }
            }
            ExtraResult::Dhe(b) => obs.dh_bits = b,
            ExtraResult::Fallback(text, ok) => obs.fallback_protection = Some((ok, text)),
            ExtraResult::Compression(b) => obs.compression = Some(b),
            ExtraResult::Session(s) => sess = Some(*s),
            _ => {}
        }
    }
    if supported.len() == 1 {
        obs.fallback_protection = Some((
            true,
            format!(
                "only {} is accepted: nothing to fall back to",
                version_name(supported[0])
            ),
        ));
    }

    // Extensions, from the best legacy version's first full flight.
    let detail = best_legacy.and_then(|v| {
        runs.iter()
            .find(|r| r.seen.version == version_name(v))
            .and_then(|r| r.detail.clone())
    });
    if let Some(f) = &detail {
        if let Some(h) = &f.hello {
            obs.secure_renegotiation = Some(h.secure_renegotiation);
            obs.extended_master_secret = Some(h.extensions.contains(&0x17));
        }
        obs.ocsp_stapling = Some(f.ocsp_stapled);
        if let Some(cas) = &f.cert_request {
            obs.client_cert_requested = Some(true);
            obs.client_cas = cas.iter().map(|d| cert::dn_text(d)).collect();
        } else if f.done {
            obs.client_cert_requested = Some(false);
        }
    }
    let mut chain: Vec<Vec<u8>> = detail.map(|f| f.certificates).unwrap_or_default();
    if let Some(s) = sess {
        if chain.is_empty() {
            chain = s.chain.clone();
        }
        if obs.ocsp_stapling.is_none() || s.ocsp_stapled {
            obs.ocsp_stapling = Some(s.ocsp_stapled || obs.ocsp_stapling == Some(true));
        }
        if s.client_cert_requested {
            obs.client_cert_requested = Some(true);
            obs.client_cert_required = match (s.client_cert_optional, &s.error, &opts.client_cert) {
                (true, _, _) => Some(false),
                (false, Some(_), None) => Some(true),
                _ => None,
            };
            if obs.client_cas.is_empty() {
                obs.client_cas = s.client_ca_hints.iter().map(|d| cert::dn_text(d)).collect();
            }
        } else if s.error.is_none() {
            obs.client_cert_requested.get_or_insert(false);
        }
        // Only a resumed handshake proves resumption; a session id or a
        // ticket extension in a ServerHello is a promise, not evidence.
        obs.session_resumption = s.resumed;
        obs.http_status = s.http_status;
        obs.hsts = s.hsts.clone();
        obs.handshake_error = s.error.clone();
    }
    let name = t.sni.clone().unwrap_or_else(|| t.host.clone());
    obs.chain = chain
        .iter()
        .map(|d| cert::summarize(d, now))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| {
            obs.chain_error = Some(e);
            Vec::new()
        });
    if !chain.is_empty() && obs.chain_error.is_none() {
        obs.trust = Some(
            cert::roots(opts.ca_bundle.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|roots| session::verify_chain(&chain, roots, &name)),
        );
    }
    obs.probes = c.probes.load(Ordering::Relaxed);
    obs.server_name = name;
    Ok(obs)
}
