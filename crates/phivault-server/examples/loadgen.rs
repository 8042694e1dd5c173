//! A small HTTPS load generator with mTLS, for BENCHMARKS.md.
//!
//! wrk and h2load cannot present client certificates, and phivault needs
//! one on every request, so this drives phivault and nginx alike: N
//! keep-alive HTTP/1.1 connections (or a new full handshake per request
//! with `--handshakes`), optionally paced to a fixed total rate, and
//! prints one JSON line: requests/s and latency percentiles.
//!
//! ```text
//! cargo run --release -p phivault-server --example loadgen -- \
//!   --addr 127.0.0.1:8200 --ca ca.pem --cert c.pem --key c.key \
//!   --path /v1/transit/encrypt/billing --body-file req.json -c 64 -d 10
//! ```
//!
//! `--http2 --streams S` speaks HTTP/2 instead: S concurrent streams on
//! each of the N connections (so N × S requests in flight), the way an
//! HTTP/2 client library multiplexes one connection.
//!
//! Varying requests: `--header 'K: V'` (repeatable); in the path and body,
//! `__N__` becomes a number unique to each request and `__R__` a uniform
//! random number below `--rand-max`; `--paths-file F` picks a random line
//! of F as each request's path (e.g. record ids to GET), `--bodies-file F`
//! a random line of F as its body (e.g. id lists for a bulk get).
#![forbid(unsafe_code)]

use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    addr: String,
    ca: String,
    cert: Option<String>,
    key: Option<String>,
    method: String,
    path: String,
    body: Vec<u8>,
    conns: usize,
    secs: u64,
    rate: Option<f64>,
    handshakes: bool,
    threads: usize,
    headers: Vec<String>,
    rand_max: u64,
    paths: Vec<String>,
    bodies: Vec<String>,
    http2: bool,
    streams: usize,
}

/// The non-empty lines of a file.
fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn parse() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:8200".into(),
        ca: String::new(),
        cert: None,
        key: None,
        method: "GET".into(),
        path: "/v1/sys/health".into(),
        body: Vec::new(),
        conns: 32,
        secs: 10,
        rate: None,
        handshakes: false,
        threads: 1,
        headers: Vec::new(),
        rand_max: 1_000_000,
        paths: Vec::new(),
        bodies: Vec::new(),
        http2: false,
        streams: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{f} needs a value"));
        match f.as_str() {
            "--addr" => a.addr = v(),
            "--ca" => a.ca = v(),
            "--cert" => a.cert = Some(v()),
            "--key" => a.key = Some(v()),
            "--method" => a.method = v(),
            "--path" => a.path = v(),
            "--body" => a.body = v().into_bytes(),
            "--body-file" => a.body = std::fs::read(v()).expect("body file"),
            "-c" | "--connections" => a.conns = v().parse().expect("number"),
            "-d" | "--duration" => a.secs = v().parse().expect("seconds"),
            "--rate" => a.rate = Some(v().parse().expect("requests/s")),
            "--threads" => a.threads = v().parse().expect("number"),
            "--handshakes" => a.handshakes = true,
            "--header" => a.headers.push(v()),
            "--rand-max" => a.rand_max = v().parse().expect("number"),
            "--paths-file" => a.paths = lines(&v()),
            "--bodies-file" => a.bodies = lines(&v()),
            "--http2" => a.http2 = true,
            "--streams" => a.streams = v().parse().expect("number"),
            "-h" | "--help" => {
                println!("see the doc comment in examples/loadgen.rs");
                std::process::exit(0)
            }
            other => panic!("unknown flag {other}"),
        }
    }
    if a.http2 && (a.handshakes || a.rate.is_some()) {
        eprintln!(
            "loadgen: --http2 runs closed-loop streams on kept connections; it does not combine with --handshakes or --rate"
        );
        std::process::exit(2)
    }
    if a.method == "GET" && !(a.body.is_empty() && a.bodies.is_empty()) {
        a.method = "POST".into();
    }
    a
}

fn client_config(a: &Args) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(&a.ca).expect("--ca file") {
        roots.add(c.expect("CA PEM")).expect("CA cert");
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let mut cfg = match (&a.cert, &a.key) {
        (Some(c), Some(k)) => {
            let chain = rustls_pki_types::CertificateDer::pem_file_iter(c)
                .expect("--cert")
                .map(|c| c.expect("cert PEM"))
                .collect();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(k).expect("--key");
            b.with_client_auth_cert(chain, key).expect("client cert")
        }
        _ => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![if a.http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    if a.handshakes {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(cfg)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(addr: &str, cfg: &Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    tokio_rustls::TlsConnector::from(cfg.clone())
        .connect("localhost".try_into().expect("name"), tcp)
        .await
}

/// An HTTP/2 connection (TLS with ALPN h2), driven by its own task.
async fn h2_connect(
    addr: &str,
    cfg: &Arc<rustls::ClientConfig>,
) -> std::io::Result<
    hyper::client::conn::http2::SendRequest<http_body_util::Full<hyper::body::Bytes>>,
> {
    let tls = connect(addr, cfg).await?;
    let (send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(send)
}

/// Counts one request's outcome (its latency, a non-2xx status, or an
/// error); false when it failed.
fn tally<E>(
    r: Result<u16, E>,
    t0: Instant,
    lat: &mut Vec<u32>,
    non2xx: &AtomicU64,
    errors: &AtomicU64,
) -> bool {
    match r {
        Ok(s) => {
            lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
            if !(200..300).contains(&s) {
                non2xx.fetch_add(1, Ordering::Relaxed);
            }
            true
        }
        Err(_) => {
            errors.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// Reads one response; returns its status.
async fn read_response(s: &mut Tls, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    let mut tmp = [0u8; 16384];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut tmp).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            buf.drain(..end + 4 + len);
            return Ok(status);
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// The request, with its placeholders.
struct Template {
    fixed: Option<Vec<u8>>,
    method: String,
    path: String,
    paths: Vec<String>,
    bodies: Vec<String>,
    headers: String,
    body: String,
    rand_max: u64,
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

impl Template {
    fn new(a: &Args) -> Self {
        let headers: String = a.headers.iter().map(|h| format!("{h}\r\n")).collect();
        let body = String::from_utf8(a.body.clone()).expect("UTF-8 body");
        let mut t = Self {
            fixed: None,
            method: a.method.clone(),
            path: a.path.clone(),
            paths: a.paths.clone(),
            bodies: a.bodies.clone(),
            headers,
            body,
            rand_max: a.rand_max.max(1),
        };
        let varies = |s: &str| s.contains("__N__") || s.contains("__R__");
        if a.paths.is_empty() && a.bodies.is_empty() && !varies(&t.path) && !varies(&t.body) {
            t.fixed = Some(t.build(&t.path, &t.body));
        }
        t
    }

    fn build(&self, path: &str, body: &str) -> Vec<u8> {
        format!(
            "{} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{body}",
            self.method,
            self.headers,
            body.len()
        )
        .into_bytes()
    }

    fn render(&self, counter: &AtomicU64, rng: &mut u64) -> std::borrow::Cow<'_, [u8]> {
        if let Some(f) = &self.fixed {
            return std::borrow::Cow::Borrowed(f);
        }
        let (path, body) = self.parts(counter, rng);
        std::borrow::Cow::Owned(self.build(&path, &body))
    }

    /// The path and body of the next request.
    fn parts(&self, counter: &AtomicU64, rng: &mut u64) -> (String, String) {
        let n = counter.fetch_add(1, Ordering::Relaxed).to_string();
        let r = (xorshift(rng) % self.rand_max).to_string();
        let path = if self.paths.is_empty() {
            self.path.replace("__N__", &n).replace("__R__", &r)
        } else {
            self.paths[(xorshift(rng) % self.paths.len() as u64) as usize].clone()
        };
        let body = if self.bodies.is_empty() {
            &self.body
        } else {
            &self.bodies[(xorshift(rng) % self.bodies.len() as u64) as usize]
        };
        (path, body.replace("__N__", &n).replace("__R__", &r))
    }

    /// The next request as HTTP/2 sends it.
    fn request(
        &self,
        counter: &AtomicU64,
        rng: &mut u64,
    ) -> hyper::Request<http_body_util::Full<hyper::body::Bytes>> {
        let (path, body) = self.parts(counter, rng);
        let mut r = hyper::Request::builder()
            .method(self.method.as_str())
            .uri(format!("https://localhost{path}"))
            .header("content-type", "application/json");
        for l in self.headers.split("\r\n").filter(|l| !l.is_empty()) {
            let (k, v) = l.split_once(':').expect("--header 'K: V'");
            r = r.header(k.trim(), v.trim());
        }
        r.body(http_body_util::Full::new(body.into()))
            .expect("request")
    }
}

fn main() {
    let a = parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(a));
}

async fn run(a: Args) {
    let cfg = client_config(&a);
    let template = Arc::new(Template::new(&a));
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let non2xx = Arc::new(AtomicU64::new(0));
    let per_conn_interval = a.rate.map(|r| Duration::from_secs_f64(a.conns as f64 / r));
    let mut tasks = Vec::new();
    if a.http2 {
        for i in 0..a.conns {
            let send = match h2_connect(&a.addr, &cfg).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "loadgen: HTTP/2 connection {i} to {} failed: {e} (is the server up, and does it offer h2 by ALPN?)",
                        a.addr
                    );
                    std::process::exit(1)
                }
            };
            for j in 0..a.streams {
                let (mut send, template, counter, stop, errors, non2xx) = (
                    send.clone(),
                    template.clone(),
                    counter.clone(),
                    stop.clone(),
                    errors.clone(),
                    non2xx.clone(),
                );
                let mut rng = 0x9E37_79B9_7F4A_7C15u64
                    ^ ((i * a.streams + j) as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                tasks.push(tokio::spawn(async move {
                    use http_body_util::BodyExt;
                    let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let req = template.request(&counter, &mut rng);
                        let r = async {
                            let resp = send.send_request(req).await?;
                            let status = resp.status().as_u16();
                            resp.into_body().collect().await?;
                            Ok::<_, hyper::Error>(status)
                        }
                        .await;
                        if !tally(r, t0, &mut lat, &non2xx, &errors) {
                            // The connection is gone: this stream stops.
                            break;
                        }
                    }
                    lat
                }));
            }
        }
    }
    // HTTP/1.1: one closed-loop task per connection (none with --http2).
    let h1_conns = if a.http2 { 0 } else { a.conns };
    for i in 0..h1_conns {
        let (cfg, template, counter, stop, errors, non2xx, addr) = (
            cfg.clone(),
            template.clone(),
            counter.clone(),
            stop.clone(),
            errors.clone(),
            non2xx.clone(),
            a.addr.clone(),
        );
        let handshakes = a.handshakes;
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut conn: Option<Tls> = None;
            let mut buf = Vec::new();
            let mut rng =
                0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let mut tick = per_conn_interval.map(|d| {
                let mut t = tokio::time::interval_at(
                    tokio::time::Instant::now() + d.mul_f64(i as f64 / 64.0 % 1.0),
                    d,
                );
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            while !stop.load(Ordering::Relaxed) {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let t0 = Instant::now();
                if conn.is_none() || handshakes {
                    match connect(&addr, &cfg).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                    buf.clear();
                }
                let c = conn.as_mut().expect("connected");
                let req = template.render(&counter, &mut rng);
                let ok = async {
                    c.write_all(&req).await?;
                    read_response(c, &mut buf).await
                }
                .await;
                if !tally(ok, t0, &mut lat, &non2xx, &errors) {
                    conn = None;
                }
                if handshakes {
                    conn = None;
                }
            }
            lat
        }));
    }
    // From here: HTTP/2 connections were opened above, before the clock.
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": all.len(),
            "seconds": elapsed,
            "rps": all.len() as f64 / elapsed,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
            "errors": errors.load(Ordering::Relaxed),
            "non_2xx": non2xx.load(Ordering::Relaxed),
            "connections": a.conns, "handshakes": a.handshakes, "rate": a.rate,
            "http2_streams": a.http2.then_some(a.streams),
        })
    );
}
