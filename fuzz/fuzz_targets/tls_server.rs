//! The TLS scanner's parsers: server flights (records, ServerHello,
//! Certificate, ServerKeyExchange, CertificateRequest, SSL 2.0
//! SERVER-HELLO) fed in arbitrary fragments, and X.509 certificate
//! summaries. Must never panic, whatever a server sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phivault_scan::tls::{summarize_certificate, wire::FlightParser};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize) % (data.len().max(1));
    let mut p = FlightParser::default();
    if let Ok(false) = p.feed(&data[..split]) {
        let _ = p.feed(&data[split..]);
    }
    for c in &p.flight.certificates {
        let _ = summarize_certificate(c, 0);
    }
    let _ = summarize_certificate(data, 0);
});
