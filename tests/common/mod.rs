//! Test harness: a recording upstream on loopback, the proxy started in-process from
//! a TOML string on port 0, and raw HTTP/1.1 and HTTP/2 clients that send exactly
//! what a test says (no client library "fixing" the request).

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub mod attacks;
pub mod binary;
pub mod oracle;
pub mod tls;

use portcullis::config;
use portcullis::server::Server;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    /// `:authority` (HTTP/2) or an absolute-form authority.
    pub authority: Option<String>,
    pub headers: HeaderMap,
    pub body_len: usize,
    /// Whether the body ended cleanly (false when the proxy aborted it).
    pub complete: bool,
    /// The HTTP version the request arrived with.
    pub version: http::Version,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers.get_all(name).iter().count()
    }
}

/// How the recording upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with body "upstream ok".
    Ok,
    /// Waits this long before answering.
    Delay(Duration),
    /// Answers with hop-by-hop headers that must not reach the client.
    HopByHop,
}

/// An upstream on 127.0.0.1:0 that records every request it receives.
#[derive(Clone)]
pub struct Upstream {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    /// Body bytes received so far, across requests, as they arrive.
    pub body_bytes: Arc<std::sync::atomic::AtomicUsize>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        Upstream::start_with(Behaviour::Ok).await
    }

    pub async fn start_with(behaviour: Behaviour) -> Upstream {
        Upstream::start_serving(behaviour, None).await
    }

    /// An upstream behind TLS (ALPN `h2` and `http/1.1`), counting TLS connections.
    pub async fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> Upstream {
        Upstream::start_serving(Behaviour::Ok, Some(acceptor)).await
    }

    async fn start_serving(behaviour: Behaviour, tls: Option<tokio_rustls::TlsAcceptor>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let body_bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let log = Arc::clone(&received);
        let counter = Arc::clone(&body_bytes);
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let log = Arc::clone(&log);
                let counter = Arc::clone(&counter);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let log = Arc::clone(&log);
                        let counter = Arc::clone(&counter);
                        async move { Ok::<_, Infallible>(record(request, &log, &counter, behaviour).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Upstream {
            address,
            received,
            body_bytes,
            connections,
        }
    }

    /// TCP connections the upstream has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn hits(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn last(&self) -> Received {
        self.received().pop().expect("the upstream received a request")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

async fn record(
    request: Request<Incoming>,
    log: &Mutex<Vec<Received>>,
    counter: &std::sync::atomic::AtomicUsize,
    behaviour: Behaviour,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let mut body_len = 0;
    let mut body = body;
    let mut complete = true;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                let length = frame.data_ref().map_or(0, |d| d.len());
                body_len += length;
                counter.fetch_add(length, std::sync::atomic::Ordering::SeqCst);
            }
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    log.lock().unwrap().push(Received {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.to_string(), ToString::to_string),
        authority: parts.uri.authority().map(ToString::to_string),
        headers: parts.headers,
        body_len,
        complete,
        version: parts.version,
    });
    if let Behaviour::Delay(delay) = behaviour {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Full::new(Bytes::from(format!("upstream ok {body_len}"))));
    response.headers_mut().insert("x-upstream", "yes".parse().unwrap());
    if behaviour == Behaviour::HopByHop {
        let headers = response.headers_mut();
        headers.insert("connection", "x-upstream-secret".parse().unwrap());
        headers.insert("x-upstream-secret", "internal".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("proxy-connection", "keep-alive".parse().unwrap());
        headers.insert("x-request-id", "upstream-made-this".parse().unwrap());
    }
    response
}

/// The `[server]` table most tests need, in front of `upstream`.
pub fn server_table(upstream: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n")
}

/// A running proxy.
pub struct Proxy {
    pub server: Server,
    pub address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts the proxy from a full config text (files may be written to `dir` first).
    pub async fn start_in(dir: tempfile::TempDir, toml: &str) -> Proxy {
        let path = dir.path().join("portcullis.toml");
        std::fs::write(&path, toml).unwrap();
        let config = config::load(&path).unwrap_or_else(|errors| panic!("config invalid:\n{errors}"));
        let server = Server::start(config).await.unwrap();
        let address = server.addresses()[0];
        Proxy {
            server,
            address,
            _dir: dir,
        }
    }

    pub async fn start(toml: &str) -> Proxy {
        Proxy::start_in(tempfile::tempdir().unwrap(), toml).await
    }

    /// Starts the proxy in front of `upstream` with `[server]` plus `rest`.
    pub async fn with_rules(upstream: &Upstream, rest: &str) -> Proxy {
        Proxy::start(&format!("{}{rest}", server_table(&upstream.url()))).await
    }

    /// Sends raw bytes on a fresh connection and reads the response.
    pub async fn raw(&self, request: &str) -> RawResponse {
        raw_exchange(self.address, request.as_bytes()).await
    }

    /// `GET path` with a Host header over HTTP/1.1.
    pub async fn get(&self, path: &str) -> RawResponse {
        self.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
        ))
        .await
    }

    pub async fn metrics(&self) -> String {
        self.server.shared().metrics.encode()
    }
}

/// A parsed raw response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// Writes `bytes`, then reads until the server closes or a complete response with a
/// Content-Length has arrived.
pub async fn raw_exchange(address: SocketAddr, bytes: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_response(&mut stream).await
}

pub async fn read_response(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> RawResponse {
    try_read_response(stream)
        .await
        .unwrap_or_else(|| panic!("no response before the connection closed"))
}

/// Like `read_response`, but `None` when the connection closes without a response.
pub async fn try_read_response(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<RawResponse> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(response) = parse_complete(&buffer) {
            return Some(response);
        }
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("response within 10 s");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    parse_complete(&buffer).or_else(|| parse_head_only(&buffer))
}

fn parse_head_only(buffer: &[u8]) -> Option<RawResponse> {
    let end = buffer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(RawResponse {
        status,
        head,
        body: buffer[end + 4..].to_vec(),
    })
}

fn parse_complete(buffer: &[u8]) -> Option<RawResponse> {
    let response = parse_head_only(buffer)?;
    if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().ok()?;
        if response.body.len() >= length {
            return Some(RawResponse {
                body: response.body[..length].to_vec(),
                ..response
            });
        }
        return None;
    }
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        let body = dechunk(&response.body)?;
        return Some(RawResponse { body, ..response });
    }
    None
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&data[..line_end]).ok()?.split(';').next()?.trim(),
            16,
        )
        .ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if data.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// An HTTP/2 (prior knowledge) client over a raw connection, for pseudo-header tests.
pub struct H2Client {
    send: h2::client::SendRequest<Bytes>,
}

impl H2Client {
    pub async fn connect(address: SocketAddr) -> H2Client {
        H2Client::over(TcpStream::connect(address).await.unwrap()).await
    }

    /// HTTP/2 over an established stream (TLS with ALPN `h2`, say).
    pub async fn over(stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static) -> H2Client {
        let (send, connection) = h2::client::handshake(stream).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        H2Client { send }
    }

    /// Sends a request (URI may be absolute, giving `:authority`) and returns status
    /// and body.
    pub async fn send(&mut self, request: Request<()>) -> (StatusCode, Bytes) {
        self.send_with_body(request, Bytes::new()).await
    }

    pub async fn send_with_body(&mut self, request: Request<()>, body: Bytes) -> (StatusCode, Bytes) {
        let send = self.send.clone();
        let mut send = send.ready().await.unwrap();
        let end = body.is_empty();
        let (response, mut stream) = send.send_request(request, end).unwrap();
        if !end {
            stream.send_data(body, true).unwrap();
        }
        let response = response.await.unwrap();
        let status = response.status();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        (status, Bytes::from(bytes))
    }
}

/// Writes `contents` to `name` inside `dir`.
pub fn write_file(dir: &Path, name: &str, contents: &str) {
    std::fs::write(dir.join(name), contents).unwrap();
}
