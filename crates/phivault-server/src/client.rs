//! A small HTTPS client for phivault's own API, with mTLS: what the CLI's
//! `records` commands and the benchmarks use. It speaks the server's own
//! TLS policy (the NIST profile's suites and groups) over hyper's HTTP/1.1
//! client connection; one connection is kept and reused.

use crate::tls::{Profile, TlsSettings};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A certificate or key file could not be read.
    #[error("{0}: {1}")]
    Files(String, String),
    /// The connection failed.
    #[error("cannot reach the phivault server at {0}: {1}; is `phivault serve` running there?")]
    Connect(String, String),
    /// The server's answer was not HTTP or not JSON.
    #[error("bad response from the server: {0}")]
    Response(String),
}

/// A connection to a phivault server.
pub struct ApiClient {
    addr: String,
    host: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl ApiClient {
    /// A client for `addr` (`host:port`), trusting `ca` and presenting
    /// `cert`/`key`.
    pub fn new(addr: &str, ca: &Path, cert: &Path, key: &Path) -> Result<Self, ClientError> {
        let files = |p: &Path, e: &dyn std::fmt::Display| {
            ClientError::Files(p.display().to_string(), e.to_string())
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| files(ca, &e))? {
            roots
                .add(c.map_err(|e| files(ca, &e))?)
                .map_err(|e| files(ca, &e))?;
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| files(cert, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| files(cert, &e))?;
        let k = PrivateKeyDer::from_pem_file(key).map_err(|e| files(key, &e))?;
        let provider = crate::tls::provider(&TlsSettings {
            profile: Profile::Nist,
            cert: Default::default(),
            key: Default::default(),
            client_ca: Default::default(),
            crl: Vec::new(),
            insecure_allow_x25519: false,
            insecure_allow_long_validity: false,
            insecure_allow_unknown_revocation: false,
            require_client_cert: false,
        });
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Connect(addr.into(), e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, k)
            .map_err(|e| files(cert, &e))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = ServerName::try_from(host.to_owned())
            .map_err(|e| ClientError::Connect(addr.into(), e.to_string()))?;
        Ok(Self {
            addr: addr.into(),
            host,
            tls: Arc::new(cfg),
            sender: None,
        })
    }

    async fn connect(&mut self) -> Result<(), ClientError> {
        let err =
            |e: &dyn std::fmt::Display| ClientError::Connect(self.addr.clone(), e.to_string());
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| err(&e))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(self.host.clone(), tcp)
            .await
            .map_err(|e| err(&e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| err(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// One request; returns the status and the JSON body (`Null` if empty).
    /// Reconnects once if the kept connection was closed.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        let bytes = Bytes::from(body.map(|b| b.to_string()).unwrap_or_default());
        let mut hs = vec![("content-type", "application/json")];
        hs.extend_from_slice(headers);
        let (status, body) = self.send(method, path, &hs, bytes).await?;
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).map_err(|e| ClientError::Response(e.to_string()))?
        };
        Ok((status, v))
    }

    /// One request with a raw body; returns the status and the raw body.
    /// Reconnects once if the kept connection was closed.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        bytes: Bytes,
    ) -> Result<(u16, Bytes), ClientError> {
        for attempt in 0..2 {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.connect().await?;
            }
            let mut req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", self.host.to_str().as_ref());
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req
                .body(Full::new(bytes.clone()))
                .map_err(|e| ClientError::Response(e.to_string()))?;
            let sender = self.sender.as_mut().expect("connected");
            if sender.ready().await.is_err() {
                self.sender = None;
                continue;
            }
            match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| ClientError::Response(e.to_string()))?
                        .to_bytes();
                    return Ok((status, body));
                }
                Err(e) if attempt == 0 => {
                    tracing::debug!(error = %e, "request failed on a kept connection; reconnecting");
                    self.sender = None;
                }
                Err(e) => return Err(ClientError::Connect(self.addr.clone(), e.to_string())),
            }
        }
        Err(ClientError::Connect(
            self.addr.clone(),
            "connection closed".into(),
        ))
    }
}
