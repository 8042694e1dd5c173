//! TLS bytes on the wire: building ClientHellos and parsing what a server
//! answers, up to the point where the handshake turns encrypted.
//!
//! Written by hand on purpose: a scanner must offer what no maintained TLS
//! library will send (SSL 2.0/3.0, EXPORT, RC4, compression) and must parse
//! whatever comes back without trusting it. No I/O here; `probe` feeds the
//! bytes in. Every length is checked; parsing never panics (fuzzed by
//! `fuzz/fuzz_targets/tls_server.rs`).

use serde::Serialize;

/// Protocol versions as on the wire.
pub const SSL2: u16 = 0x0002;
/// SSL 3.0.
pub const SSL3: u16 = 0x0300;
/// TLS 1.0.
pub const TLS10: u16 = 0x0301;
/// TLS 1.1.
pub const TLS11: u16 = 0x0302;
/// TLS 1.2.
pub const TLS12: u16 = 0x0303;
/// TLS 1.3.
pub const TLS13: u16 = 0x0304;

/// Named groups (RFC 8446 §4.2.7, RFC 7919, draft-ietf-tls-ecdhe-mlkem).
pub mod group {
    /// secp256r1.
    pub const P256: u16 = 23;
    /// secp384r1.
    pub const P384: u16 = 24;
    /// secp521r1.
    pub const P521: u16 = 25;
    /// x25519.
    pub const X25519: u16 = 29;
    /// x448.
    pub const X448: u16 = 30;
    /// ffdhe2048.
    pub const FFDHE2048: u16 = 256;
    /// ffdhe3072.
    pub const FFDHE3072: u16 = 257;
    /// ffdhe4096.
    pub const FFDHE4096: u16 = 258;
    /// ffdhe6144.
    pub const FFDHE6144: u16 = 259;
    /// ffdhe8192.
    pub const FFDHE8192: u16 = 260;
    /// SecP256r1MLKEM768 (hybrid).
    pub const P256_MLKEM768: u16 = 0x11eb;
    /// X25519MLKEM768 (hybrid).
    pub const X25519_MLKEM768: u16 = 0x11ec;
    /// SecP384r1MLKEM1024 (hybrid).
    pub const P384_MLKEM1024: u16 = 0x11ed;

    /// Every group the scanner probes.
    pub const ALL: [u16; 13] = [
        P256,
        P384,
        P521,
        X25519,
        X448,
        FFDHE2048,
        FFDHE3072,
        FFDHE4096,
        FFDHE6144,
        FFDHE8192,
        P256_MLKEM768,
        X25519_MLKEM768,
        P384_MLKEM1024,
    ];

    /// Older elliptic curves from RFC 4492 (sect*, secp*k1, brainpool),
    /// offered in TLS 1.2 probes so a server that picks one is seen.
    pub const LEGACY_EC: [u16; 19] = [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 22,
    ];

    /// Display name.
    pub fn name(g: u16) -> String {
        match g {
            P256 => "secp256r1".into(),
            P384 => "secp384r1".into(),
            P521 => "secp521r1".into(),
            X25519 => "x25519".into(),
            X448 => "x448".into(),
            FFDHE2048 => "ffdhe2048".into(),
            FFDHE3072 => "ffdhe3072".into(),
            FFDHE4096 => "ffdhe4096".into(),
            FFDHE6144 => "ffdhe6144".into(),
            FFDHE8192 => "ffdhe8192".into(),
            P256_MLKEM768 => "SecP256r1MLKEM768".into(),
            X25519_MLKEM768 => "X25519MLKEM768".into(),
            P384_MLKEM1024 => "SecP384r1MLKEM1024".into(),
            22 => "secp256k1".into(),
            26..=28 => format!(
                "brainpool{}",
                ["P256r1", "P384r1", "P512r1"][(g - 26) as usize]
            ),
            other => format!("group 0x{other:04X}"),
        }
    }
}

/// A valid public value for `g`, used as our key share: the curve's
/// generator (private key 1), the X25519/X448 base point, 2 for FFDHE, an
/// all-zero ML-KEM encapsulation key (a valid encoding). The scanner never
/// completes a TLS 1.3 handshake with these, so weak "keys" cost nothing;
/// they only have to pass the server's public-value checks.
pub fn key_share(g: u16) -> Vec<u8> {
    const P256_G: &str = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
    const P384_G: &str = "04aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab73617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f";
    const P521_G: &str = "0400c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650";
    let hexd = |s: &str| hex::decode(s).unwrap_or_default();
    let ffdhe = |bytes: usize| {
        let mut v = vec![0u8; bytes];
        v[bytes - 1] = 2;
        v
    };
    let x25519 = || {
        let mut v = vec![0u8; 32];
        v[0] = 9;
        v
    };
    match g {
        group::P256 => hexd(P256_G),
        group::P384 => hexd(P384_G),
        group::P521 => hexd(P521_G),
        group::X25519 => x25519(),
        group::X448 => {
            let mut v = vec![0u8; 56];
            v[0] = 5;
            v
        }
        group::FFDHE2048 => ffdhe(256),
        group::FFDHE3072 => ffdhe(384),
        group::FFDHE4096 => ffdhe(512),
        group::FFDHE6144 => ffdhe(768),
        group::FFDHE8192 => ffdhe(1024),
        group::P256_MLKEM768 => [hexd(P256_G), vec![0u8; 1184]].concat(),
        group::X25519_MLKEM768 => [vec![0u8; 1184], x25519()].concat(),
        group::P384_MLKEM1024 => [hexd(P384_G), vec![0u8; 1568]].concat(),
        _ => Vec::new(),
    }
}

/// Every signature scheme we claim to accept, weakest included, so the
/// server's choice of certificate isn't limited by our offer.
const SIG_SCHEMES: [u16; 17] = [
    0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0807, 0x0808, 0x0809, 0x080a, 0x080b, 0x0401,
    0x0501, 0x0601, 0x0201, 0x0203, 0x0202,
];

/// What to put in a ClientHello.
#[derive(Debug, Clone)]
pub struct Hello {
    /// `client_version` (for TLS 1.3: 0x0303 plus `supported_versions`).
    pub version: u16,
    /// Suites, in preference order.
    pub suites: Vec<u16>,
    /// Named groups (TLS 1.3: one key share for each).
    pub groups: Vec<u16>,
    /// SNI host name.
    pub sni: Option<String>,
    /// Offer DEFLATE compression as well as null.
    pub compression: bool,
    /// Append TLS_FALLBACK_SCSV.
    pub fallback_scsv: bool,
    /// Offer the status_request extension (OCSP stapling).
    pub status_request: bool,
}

impl Hello {
    /// A hello for `version` with every suite and group.
    pub fn new(version: u16, sni: Option<&str>) -> Self {
        let (suites, groups) = if version == TLS13 {
            (
                super::suites::TLS13.to_vec(),
                vec![group::P256, group::P384, group::X25519],
            )
        } else {
            let mut g = group::ALL[..10].to_vec();
            g.extend_from_slice(&group::LEGACY_EC);
            (super::suites::legacy(), g)
        };
        Hello {
            version,
            suites,
            groups,
            sni: sni.map(str::to_owned),
            compression: false,
            fallback_scsv: false,
            status_request: true,
        }
    }

    /// The ClientHello as one or more TLS records (or an SSL 2.0 message).
    pub fn to_bytes(&self, random: [u8; 32]) -> Vec<u8> {
        if self.version == SSL2 {
            return ssl2_client_hello(&random[..16]);
        }
        let tls13 = self.version == TLS13;
        let mut body = Vec::with_capacity(1024);
        put_u16(&mut body, if tls13 { TLS12 } else { self.version });
        body.extend_from_slice(&random);
        if tls13 {
            // A legacy session id, as browsers send (middlebox compatibility).
            body.push(32);
            body.extend_from_slice(&random);
        } else {
            body.push(0);
        }
        let mut suites = self.suites.clone();
        if self.fallback_scsv {
            suites.push(0x5600);
        }
        put_u16(&mut body, (suites.len() * 2) as u16);
        for s in &suites {
            put_u16(&mut body, *s);
        }
        if self.compression {
            body.extend_from_slice(&[2, 1, 0]);
        } else {
            body.extend_from_slice(&[1, 0]);
        }
        // SSL 3.0 had no extensions; some servers reject them there.
        if self.version != SSL3 {
            let ext = self.extensions(tls13);
            put_u16(&mut body, ext.len() as u16);
            body.extend_from_slice(&ext);
        }
        let mut hs = vec![1u8];
        put_u24(&mut hs, body.len());
        hs.extend_from_slice(&body);
        let rec_version = if self.version == SSL3 { SSL3 } else { TLS10 };
        let mut out = Vec::with_capacity(hs.len() + 10);
        for chunk in hs.chunks(16384) {
            out.push(22);
            put_u16(&mut out, rec_version);
            put_u16(&mut out, chunk.len() as u16);
            out.extend_from_slice(chunk);
        }
        out
    }

    fn extensions(&self, tls13: bool) -> Vec<u8> {
        let mut e = Vec::new();
        if let Some(sni) = &self.sni {
            let mut d = Vec::new();
            put_u16(&mut d, (sni.len() + 3) as u16);
            d.push(0);
            put_u16(&mut d, sni.len() as u16);
            d.extend_from_slice(sni.as_bytes());
            ext(&mut e, 0, &d);
        }
        let mut g = Vec::new();
        put_u16(&mut g, (self.groups.len() * 2) as u16);
        for x in &self.groups {
            put_u16(&mut g, *x);
        }
        ext(&mut e, 10, &g);
        ext(&mut e, 11, &[1, 0]);
        let mut s = Vec::new();
        put_u16(&mut s, (SIG_SCHEMES.len() * 2) as u16);
        for x in SIG_SCHEMES {
            put_u16(&mut s, x);
        }
        ext(&mut e, 13, &s);
        if self.status_request {
            ext(&mut e, 5, &[1, 0, 0, 0, 0]);
        }
        ext(&mut e, 0x17, &[]); // extended_master_secret
        ext(&mut e, 0x23, &[]); // session_ticket
        ext(&mut e, 0xff01, &[0]); // renegotiation_info, initial
        if tls13 {
            ext(&mut e, 43, &[2, 0x03, 0x04]);
            ext(&mut e, 45, &[1, 1]); // psk_dhe_ke
            let mut ks = Vec::new();
            for x in &self.groups {
                let k = key_share(*x);
                put_u16(&mut ks, *x);
                put_u16(&mut ks, k.len() as u16);
                ks.extend_from_slice(&k);
            }
            let mut d = Vec::new();
            put_u16(&mut d, ks.len() as u16);
            d.extend_from_slice(&ks);
            ext(&mut e, 51, &d);
        }
        e
    }
}

fn ssl2_client_hello(challenge: &[u8]) -> Vec<u8> {
    let specs: Vec<u8> = super::suites::SSL2_SPECS
        .iter()
        .flat_map(|(s, _)| s.iter().copied())
        .collect();
    let mut m = vec![1u8];
    put_u16(&mut m, SSL2);
    put_u16(&mut m, specs.len() as u16);
    put_u16(&mut m, 0);
    put_u16(&mut m, challenge.len() as u16);
    m.extend_from_slice(&specs);
    m.extend_from_slice(challenge);
    let mut out = Vec::new();
    put_u16(&mut out, 0x8000 | m.len() as u16);
    out.extend_from_slice(&m);
    out
}

fn ext(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    put_u16(out, ty);
    put_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

fn put_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn put_u24(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&(x as u32).to_be_bytes()[1..]);
}

/// The bytes of a TLS 1.2 server random that announce a downgrade from
/// TLS 1.3 (RFC 8446 §4.1.3): `DOWNGRD` then 0x01 (from 1.3 to 1.2).
pub const DOWNGRADE_TLS12: [u8; 8] = *b"DOWNGRD\x01";
/// The same, for a downgrade to TLS 1.1 or below.
pub const DOWNGRADE_TLS11: [u8; 8] = *b"DOWNGRD\x00";

/// A parsed ServerHello.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerHello {
    /// The negotiated version (`supported_versions` wins over the legacy field).
    pub version: u16,
    /// Server random.
    pub random: [u8; 32],
    /// Session id length (non-zero: the server offers session-id resumption).
    pub session_id_len: u8,
    /// The chosen suite.
    pub suite: u16,
    /// The chosen compression method (0 = null).
    pub compression: u8,
    /// A HelloRetryRequest (TLS 1.3), not a real ServerHello.
    pub hello_retry: bool,
    /// Extension types present, in order.
    pub extensions: Vec<u16>,
    /// Key share group (TLS 1.3) or the HRR's requested group.
    pub key_share_group: Option<u16>,
    /// renegotiation_info present with an empty body.
    pub secure_renegotiation: bool,
}

/// What a server sent before its flight ended (or before encryption began).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerFlight {
    /// The ServerHello, if one arrived.
    pub hello: Option<ServerHello>,
    /// SSL 2.0 SERVER-HELLO: the cipher specs the server listed.
    pub ssl2_specs: Option<Vec<[u8; 3]>>,
    /// The Certificate message's chain (TLS 1.2 and below), DER, leaf first.
    pub certificates: Vec<Vec<u8>>,
    /// A CertificateStatus (stapled OCSP response) arrived.
    pub ocsp_stapled: bool,
    /// ServerKeyExchange: the finite-field DH prime's size in bits.
    pub dh_bits: Option<u32>,
    /// ServerKeyExchange: the named curve for ECDHE.
    pub ecdh_group: Option<u16>,
    /// A CertificateRequest arrived (mTLS), with the CA names it listed (DER).
    pub cert_request: Option<Vec<Vec<u8>>>,
    /// ServerHelloDone arrived (the plaintext flight is complete).
    pub done: bool,
    /// The first alert received: (level, description).
    pub alert: Option<(u8, u8)>,
}

/// Why a server's bytes could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Not a TLS record (e.g. an HTTP or SSH banner).
    #[error(
        "not TLS: the server answered with bytes that are not a TLS record (first byte 0x{0:02X})"
    )]
    NotTls(u8),
    /// A record or message whose lengths don't add up.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// More handshake data than any sane server sends.
    #[error("the server sent more than {0} bytes of handshake data")]
    TooLarge(usize),
}

/// The most plaintext handshake data accepted from one server (a chain of
/// ten 16 KiB certificates fits with room to spare).
pub const MAX_FLIGHT: usize = 256 * 1024;

/// Incremental parser of a server's first flight. Feed it bytes as they
/// arrive; it says when it has seen enough.
#[derive(Debug, Default)]
pub struct FlightParser {
    buf: Vec<u8>,
    hs: Vec<u8>,
    total: usize,
    /// The result so far.
    pub flight: ServerFlight,
    ssl2: bool,
    /// Handshake messages after ServerHello are encrypted (TLS 1.3).
    encrypted: bool,
}

impl FlightParser {
    /// Consumes bytes. Returns `Ok(true)` once nothing more useful can come
    /// (ServerHelloDone, an alert, a TLS 1.3 ServerHello, an SSL 2.0
    /// SERVER-HELLO), `Ok(false)` when more bytes are needed.
    pub fn feed(&mut self, data: &[u8]) -> Result<bool, WireError> {
        self.total += data.len();
        if self.total > MAX_FLIGHT {
            return Err(WireError::TooLarge(MAX_FLIGHT));
        }
        self.buf.extend_from_slice(data);
        if self.buf.is_empty() {
            return Ok(false);
        }
        if self.flight.hello.is_none()
            && !self.ssl2
            && self.buf[0] & 0x80 != 0
            && self.buf.len() >= 3
        {
            if self.buf[2] == 4 {
                self.ssl2 = true;
            } else {
                return Err(WireError::NotTls(self.buf[0]));
            }
        }
        if self.ssl2 {
            return self.ssl2_server_hello();
        }
        loop {
            if self.buf.len() < 5 {
                return Ok(false);
            }
            let ty = self.buf[0];
            if !(20..=24).contains(&ty) || self.buf[1] > 3 {
                return Err(WireError::NotTls(ty));
            }
            let len = u16::from_be_bytes([self.buf[3], self.buf[4]]) as usize;
            if len > 16384 + 2048 {
                return Err(WireError::Malformed("record length"));
            }
            if self.buf.len() < 5 + len {
                return Ok(false);
            }
            let body: Vec<u8> = self.buf[5..5 + len].to_vec();
            self.buf.drain(..5 + len);
            match ty {
                21 => {
                    if body.len() < 2 {
                        return Err(WireError::Malformed("alert"));
                    }
                    self.flight.alert.get_or_insert((body[0], body[1]));
                    return Ok(true);
                }
                22 if !self.encrypted => {
                    self.hs.extend_from_slice(&body);
                    if self.handshake_messages()? {
                        return Ok(true);
                    }
                }
                // ChangeCipherSpec (TLS 1.3 compatibility) and anything
                // after encryption starts: nothing more to read.
                20 => {}
                _ => return Ok(true),
            }
        }
    }

    fn handshake_messages(&mut self) -> Result<bool, WireError> {
        loop {
            if self.hs.len() < 4 {
                return Ok(false);
            }
            let ty = self.hs[0];
            let len = u32::from_be_bytes([0, self.hs[1], self.hs[2], self.hs[3]]) as usize;
            if len > MAX_FLIGHT {
                return Err(WireError::TooLarge(MAX_FLIGHT));
            }
            if self.hs.len() < 4 + len {
                return Ok(false);
            }
            let msg: Vec<u8> = self.hs[4..4 + len].to_vec();
            self.hs.drain(..4 + len);
            match ty {
                2 => {
                    if self.flight.hello.is_some() {
                        return Err(WireError::Malformed("second ServerHello"));
                    }
                    let h = parse_server_hello(&msg)?;
                    let tls13 = h.version == TLS13;
                    self.flight.hello = Some(h);
                    if tls13 {
                        self.encrypted = true;
                        return Ok(true);
                    }
                }
                _ if self.flight.hello.is_none() => {
                    return Err(WireError::Malformed("handshake message before ServerHello"));
                }
                11 => self.flight.certificates = parse_certificates(&msg)?,
                22 => self.flight.ocsp_stapled = !msg.is_empty(),
                12 => self.server_key_exchange(&msg),
                13 => self.flight.cert_request = Some(parse_cert_request(&msg)?),
                14 => {
                    self.flight.done = true;
                    return Ok(true);
                }
                _ => {}
            }
        }
    }

    fn server_key_exchange(&mut self, msg: &[u8]) {
        let kex = self
            .flight
            .hello
            .as_ref()
            .map(|h| super::suites::traits(h.suite).kex)
            .unwrap_or("");
        let mut r = Reader(msg);
        match kex {
            // named_curve (3), then the curve.
            "ECDHE" if r.u8() == Some(3) => self.flight.ecdh_group = r.u16(),
            "DHE" => {
                if let Some(p) = r.vec16() {
                    let lead = p.iter().take_while(|b| **b == 0).count();
                    let p = &p[lead..];
                    let bits = p.len() as u32 * 8 - p.first().map_or(0, |b| b.leading_zeros());
                    self.flight.dh_bits = Some(bits);
                }
            }
            _ => {}
        }
    }

    fn ssl2_server_hello(&mut self) -> Result<bool, WireError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(false);
        }
        let len = (u16::from_be_bytes([b[0], b[1]]) & 0x7fff) as usize;
        if b.len() < 2 + len {
            return Ok(false);
        }
        let m = &b[2..2 + len];
        let mut r = Reader(m);
        let ok = (|| {
            let _ty = r.u8()?;
            let _hit = r.u8()?;
            let _cert_type = r.u8()?;
            let _version = r.u16()?;
            let cert_len = r.u16()? as usize;
            let specs_len = r.u16()? as usize;
            let _conn_id = r.u16()?;
            let _cert = r.take(cert_len)?;
            let specs = r.take(specs_len)?;
            Some(
                specs
                    .chunks_exact(3)
                    .map(|c| [c[0], c[1], c[2]])
                    .collect::<Vec<_>>(),
            )
        })();
        match ok {
            Some(specs) => {
                self.flight.ssl2_specs = Some(specs);
                Ok(true)
            }
            None => Err(WireError::Malformed("SSL 2.0 SERVER-HELLO")),
        }
    }
}

fn parse_server_hello(msg: &[u8]) -> Result<ServerHello, WireError> {
    const HRR: [u8; 32] = [
        0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8,
        0x91, 0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8,
        0x33, 0x9C,
    ];
    let bad = WireError::Malformed("ServerHello");
    let mut r = Reader(msg);
    let mut h = ServerHello {
        version: r.u16().ok_or(bad.clone())?,
        ..Default::default()
    };
    h.random.copy_from_slice(r.take(32).ok_or(bad.clone())?);
    h.hello_retry = h.random == HRR;
    let sid = r.vec8().ok_or(bad.clone())?;
    h.session_id_len = sid.len() as u8;
    h.suite = r.u16().ok_or(bad.clone())?;
    h.compression = r.u8().ok_or(bad.clone())?;
    if r.0.is_empty() {
        return Ok(h);
    }
    let mut exts = Reader(r.vec16().ok_or(bad.clone())?);
    while !exts.0.is_empty() {
        let ty = exts.u16().ok_or(bad.clone())?;
        let data = exts.vec16().ok_or(bad.clone())?;
        h.extensions.push(ty);
        match ty {
            43 if data.len() == 2 => h.version = u16::from_be_bytes([data[0], data[1]]),
            51 if data.len() >= 2 => {
                h.key_share_group = Some(u16::from_be_bytes([data[0], data[1]]))
            }
            0xff01 => h.secure_renegotiation = data == [0],
            _ => {}
        }
    }
    Ok(h)
}

fn parse_certificates(msg: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let bad = WireError::Malformed("Certificate message");
    let mut r = Reader(msg);
    let mut list = Reader(r.vec24().ok_or(bad.clone())?);
    let mut out = Vec::new();
    while !list.0.is_empty() {
        out.push(list.vec24().ok_or(bad.clone())?.to_vec());
    }
    Ok(out)
}

fn parse_cert_request(msg: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let bad = WireError::Malformed("CertificateRequest");
    let mut r = Reader(msg);
    let _types = r.vec8().ok_or(bad.clone())?;
    // TLS 1.2 has signature_algorithms here; TLS 1.0/1.1 don't. Try 1.2's
    // layout first and fall back.
    let rest = r.0;
    let parse_cas = |mut r: Reader| -> Option<Vec<Vec<u8>>> {
        let mut cas = Reader(r.vec16()?);
        if !r.0.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        while !cas.0.is_empty() {
            out.push(cas.vec16()?.to_vec());
        }
        Some(out)
    };
    let mut r12 = Reader(rest);
    if r12.vec16().is_some()
        && let Some(c) = parse_cas(r12)
    {
        return Ok(c);
    }
    parse_cas(Reader(rest)).ok_or(bad)
}

/// A bounds-checked cursor.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    fn vec24(&mut self) -> Option<&'a [u8]> {
        let b = self.take(3)?;
        self.take(u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize)
    }
}

/// TLS alert descriptions (RFC 8446 §6, plus older ones), for evidence text.
pub fn alert_name(d: u8) -> &'static str {
    match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        47 => "illegal_parameter",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![ty, 3, 3];
        put_u16(&mut v, body.len() as u16);
        v.extend_from_slice(body);
        v
    }

    fn hs(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![ty];
        put_u24(&mut v, body.len());
        v.extend_from_slice(body);
        v
    }

    fn server_hello(version: u16, suite: u16, exts: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        put_u16(&mut b, version);
        b.extend_from_slice(&[7u8; 32]);
        b.push(0);
        put_u16(&mut b, suite);
        b.push(0);
        put_u16(&mut b, exts.len() as u16);
        b.extend_from_slice(exts);
        hs(2, &b)
    }

    #[test]
    fn client_hello_is_well_formed() {
        let h = Hello::new(TLS12, Some("example.test"));
        let b = h.to_bytes([1; 32]);
        assert_eq!(b[0], 22);
        let len = u16::from_be_bytes([b[3], b[4]]) as usize;
        assert_eq!(b.len(), 5 + len);
        assert_eq!(b[5], 1);
        assert_eq!(&b[9..11], &[3, 3]);
        let h3 = Hello::new(TLS13, None).to_bytes([1; 32]);
        assert!(h3.windows(3).any(|w| w == [2, 3, 4]));
        let s2 = Hello::new(SSL2, None).to_bytes([1; 32]);
        assert_eq!(s2[0] & 0x80, 0x80);
        assert_eq!(s2[2], 1);
    }

    #[test]
    fn parses_a_tls12_flight_across_records() {
        let mut ext = Vec::new();
        ext.extend_from_slice(&[0xff, 0x01, 0, 1, 0, 0, 0x17, 0, 0]);
        let sh = server_hello(TLS12, 0xc02f, &ext);
        let mut cert = Vec::new();
        put_u24(&mut cert, 6);
        put_u24(&mut cert, 3);
        cert.extend_from_slice(&[1, 2, 3]);
        let mut ske = vec![3];
        put_u16(&mut ske, 23);
        let mut flight = sh.clone();
        flight.extend(hs(11, &cert));
        flight.extend(hs(12, &ske));
        flight.extend(hs(14, &[]));
        let (a, b) = flight.split_at(10);
        let mut bytes = record(22, a);
        bytes.extend(record(22, b));
        let mut p = FlightParser::default();
        // Byte by byte: the parser must cope with any fragmentation.
        let mut done = false;
        for x in &bytes {
            done = p.feed(&[*x]).unwrap();
        }
        assert!(done);
        let h = p.flight.hello.as_ref().unwrap();
        assert_eq!((h.version, h.suite), (TLS12, 0xc02f));
        assert!(h.secure_renegotiation && h.extensions.contains(&0x17));
        assert_eq!(p.flight.certificates, vec![vec![1, 2, 3]]);
        assert_eq!(p.flight.ecdh_group, Some(23));
        assert!(p.flight.done);
    }

    #[test]
    fn tls13_and_alerts_and_garbage() {
        let sh = server_hello(
            TLS12,
            0x1301,
            &[0, 43, 0, 2, 3, 4, 0, 51, 0, 4, 0, 23, 0, 0],
        );
        let mut p = FlightParser::default();
        assert!(p.feed(&record(22, &sh)).unwrap());
        let h = p.flight.hello.unwrap();
        assert_eq!((h.version, h.key_share_group), (TLS13, Some(23)));

        let mut p = FlightParser::default();
        assert!(p.feed(&record(21, &[2, 70])).unwrap());
        assert_eq!(p.flight.alert, Some((2, 70)));

        let mut p = FlightParser::default();
        assert_eq!(
            p.feed(b"HTTP/1.1 400 Bad Request\r\n"),
            Err(WireError::NotTls(b'H'))
        );
        let mut p = FlightParser::default();
        assert!(p.feed(&record(22, &hs(2, &[3, 3, 1]))).is_err());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_in_any_fragments_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048), cut in 0usize..2048) {
            let cut = cut.min(data.len());
            let mut p = FlightParser::default();
            if let Ok(false) = p.feed(&data[..cut]) {
                let _ = p.feed(&data[cut..]);
            }
        }

        #[test]
        fn fragmentation_does_not_change_the_result(cuts in proptest::collection::vec(1usize..64, 1..40)) {
            let flight = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/tls_server/ecdhe_rsa")).unwrap();
            let mut whole = FlightParser::default();
            prop_assert!(whole.feed(&flight).unwrap());
            let mut p = FlightParser::default();
            let mut at = 0;
            for c in cuts.iter().cycle() {
                if at >= flight.len() { break; }
                let end = (at + c).min(flight.len());
                p.feed(&flight[at..end]).unwrap();
                at = end;
            }
            prop_assert_eq!(p.flight, whole.flight);
        }

        #[test]
        fn hellos_always_frame_correctly(n in 1usize..400, sni in "[a-z]{1,60}", v in prop::sample::select(vec![SSL3, TLS10, TLS11, TLS12, TLS13])) {
            let mut h = Hello::new(v, Some(&sni));
            h.suites.truncate(n);
            let b = h.to_bytes([3; 32]);
            let mut at = 0;
            let mut hs = Vec::new();
            while at < b.len() {
                prop_assert_eq!(b[at], 22);
                let len = u16::from_be_bytes([b[at + 3], b[at + 4]]) as usize;
                hs.extend_from_slice(&b[at + 5..at + 5 + len]);
                at += 5 + len;
            }
            prop_assert_eq!(at, b.len());
            prop_assert_eq!(hs.len(), 4 + u32::from_be_bytes([0, hs[1], hs[2], hs[3]]) as usize);
        }
    }
}
