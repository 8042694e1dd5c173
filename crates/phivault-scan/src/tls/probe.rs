//! One probe: connect (with STARTTLS if asked), send a hand-built
//! ClientHello, read the server's first flight. All network I/O of the raw
//! probes is here; every step has a timeout and the whole probe a deadline,
//! so a server that stalls, trickles or floods can't hang a scan.

use super::wire::{FlightParser, Hello, ServerFlight, WireError};
use super::{StartTls, Target};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Why a probe produced no flight.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// DNS or TCP connect failed.
    #[error("cannot connect to {0}: {1}")]
    Connect(String, io::Error),
    /// The server stalled past the timeout.
    #[error("timed out waiting for the server")]
    Timeout,
    /// The STARTTLS exchange failed.
    #[error("STARTTLS failed: {0}")]
    StartTls(String),
    /// The server's bytes were not a TLS handshake.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Another I/O error.
    #[error("I/O error: {0}")]
    Io(io::Error),
}

/// Resolves a target to its first address.
pub fn resolve(t: &Target) -> Result<SocketAddr, ProbeError> {
    let name = format!("{}:{}", t.host, t.port);
    (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| ProbeError::Connect(name.clone(), e))?
        .next()
        .ok_or_else(|| ProbeError::Connect(name, io::Error::other("no address")))
}

/// Opens a TCP connection, speaking STARTTLS if the target asks for it.
pub fn connect(t: &Target, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProbeError> {
    let s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| ProbeError::Connect(format!("{}:{}", t.host, t.port), e))?;
    s.set_read_timeout(Some(timeout)).map_err(ProbeError::Io)?;
    s.set_write_timeout(Some(timeout)).map_err(ProbeError::Io)?;
    let _ = s.set_nodelay(true);
    // The whole STARTTLS exchange has one deadline: a server that trickles
    // a byte per second must not keep the scan waiting line after line.
    let deadline = Instant::now() + timeout * 2;
    match t.starttls {
        None => {}
        Some(StartTls::Postgres) => postgres(&s)?,
        Some(StartTls::Smtp) => smtp(&s, deadline)?,
    }
    s.set_read_timeout(Some(timeout)).map_err(ProbeError::Io)?;
    Ok(s)
}

fn io_err(e: io::Error) -> ProbeError {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        ProbeError::Timeout
    } else {
        ProbeError::Io(e)
    }
}

/// PostgreSQL: SSLRequest (length 8, code 80877103); `S` means go ahead.
fn postgres(mut s: &TcpStream) -> Result<(), ProbeError> {
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .map_err(io_err)?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).map_err(io_err)?;
    match b[0] {
        b'S' => Ok(()),
        b'N' => Err(ProbeError::StartTls(
            "PostgreSQL refused SSL (answered N to SSLRequest)".into(),
        )),
        other => Err(ProbeError::StartTls(format!(
            "unexpected answer 0x{other:02X} to SSLRequest"
        ))),
    }
}

/// Reads one line (at most `max` bytes) before `deadline`.
fn line_before(
    r: &mut BufReader<&TcpStream>,
    deadline: Instant,
    max: usize,
) -> Result<String, ProbeError> {
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ProbeError::Timeout);
        }
        r.get_ref()
            .set_read_timeout(Some(left))
            .map_err(ProbeError::Io)?;
        let buf = r.fill_buf().map_err(io_err)?;
        if buf.is_empty() {
            return Err(ProbeError::StartTls(
                "SMTP server closed the connection".into(),
            ));
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        if line.len() > max {
            return Err(ProbeError::StartTls("SMTP reply line too long".into()));
        }
    }
}

/// SMTP: greeting, EHLO, STARTTLS, `220`, all before `deadline`.
fn smtp(s: &TcpStream, deadline: Instant) -> Result<(), ProbeError> {
    let mut r = BufReader::new(s);
    let mut w = s;
    let reply = |r: &mut BufReader<&TcpStream>| -> Result<String, ProbeError> {
        for _ in 0..100 {
            let line = line_before(r, deadline, 1024)?;
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line);
            }
        }
        Err(ProbeError::StartTls(
            "SMTP reply longer than 100 lines".into(),
        ))
    };
    let code = |l: &str| l.get(..3).unwrap_or("").to_owned();
    if code(&reply(&mut r)?) != "220" {
        return Err(ProbeError::StartTls("no SMTP 220 greeting".into()));
    }
    w.write_all(b"EHLO phivault-scan\r\n").map_err(io_err)?;
    if code(&reply(&mut r)?) != "250" {
        return Err(ProbeError::StartTls("EHLO refused".into()));
    }
    w.write_all(b"STARTTLS\r\n").map_err(io_err)?;
    let l = reply(&mut r)?;
    if code(&l) != "220" {
        return Err(ProbeError::StartTls(format!(
            "STARTTLS refused: {}",
            l.trim_end().chars().take(200).collect::<String>()
        )));
    }
    if !r.buffer().is_empty() {
        return Err(ProbeError::StartTls(
            "server sent data before the TLS handshake".into(),
        ));
    }
    Ok(())
}

/// Sends `hello` and reads the answer. With `full`, reads the whole
/// plaintext flight (certificates, key exchange, CertificateRequest);
/// otherwise stops after the ServerHello. A server that closes the
/// connection without a ServerHello yields an empty flight: that is how
/// many servers say no.
pub fn probe(
    t: &Target,
    addr: SocketAddr,
    hello: &Hello,
    full: bool,
    timeout: Duration,
) -> Result<ServerFlight, ProbeError> {
    let mut s = connect(t, addr, timeout)?;
    s.write_all(&hello.to_bytes(random())).map_err(io_err)?;
    let deadline = Instant::now() + timeout * 2;
    let mut p = FlightParser::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ProbeError::Timeout);
        }
        s.set_read_timeout(Some(left.min(timeout)))
            .map_err(ProbeError::Io)?;
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            // A reset after an alert or mid-flight: keep what we have.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(io_err(e)),
        };
        if n == 0 {
            return Ok(p.flight);
        }
        if p.feed(&buf[..n])? || (!full && p.flight.hello.is_some()) {
            return Ok(p.flight);
        }
    }
}

/// 32 bytes that differ per probe. Not secret: a ClientHello random only
/// needs to be unique, and these handshakes never complete.
fn random() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 32];
    for (i, c) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(Instant::now().elapsed().as_nanos());
        c.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}
