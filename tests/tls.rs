//! TLS in front and behind (SPEC §6, `[server.tls]`, `[upstream_tls]`): handshakes at
//! TLS 1.2 and 1.3, ALPN, the same rules and normalization over HTTP/2 + TLS as over
//! h2c, HTTPS upstreams (HTTP/2 by ALPN, pooled, verified), certificate reload under
//! traffic, and curl. Certificates come from OpenSSL-made fixtures
//! (tests/fixtures/tls/make.sh) and from rcgen in the tests.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::attacks::{PROTECTED, judge, path_attacks, rules};
use common::{H2Client, Proxy, Upstream, tls};
use futures_util::{SinkExt, StreamExt};
use http::Request;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
const ALLOW_ALL: &str = "[[rule]]\nname = \"all\"\naction = \"allow\"\n";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

/// `[server]` with one plain and one TLS listener serving the OpenSSL fixture `pair`
/// (`server-ec` or `server-rsa`).
fn tls_server(upstream: &str, pair: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n[[server.listener]]\naddress = \"127.0.0.1:0\"\ntls = true\n\
         [server.tls]\ncert_file = \"{FIXTURES}/{pair}-chain.pem\"\nkey_file = \"{FIXTURES}/{pair}-key.pem\"\n"
    )
}

struct TlsProxy {
    _proxy: Proxy,
    tls_address: std::net::SocketAddr,
}

async fn tls_proxy(upstream: &Upstream, rest: &str) -> TlsProxy {
    let proxy = Proxy::start(&format!("{}{rest}", tls_server(&upstream.url(), "server-ec"))).await;
    let tls_address = proxy.server.addresses()[1];
    TlsProxy {
        _proxy: proxy,
        tls_address,
    }
}

/// The DER of the first certificate in a PEM fixture.
fn leaf(name: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let pem = fixture(name);
    let first = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap();
    first.as_ref().to_vec()
}

fn ca() -> Vec<u8> {
    fixture("ca.pem")
}

async fn get_over_tls(
    address: std::net::SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    request: &str,
) -> common::RawResponse {
    let mut stream = tls::connect(address, connector).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    common::read_response(&mut stream).await
}

#[tokio::test]
async fn tls13_and_tls12_handshakes_serve_requests() {
    let upstream = Upstream::start().await;
    let proxy = tls_proxy(&upstream, ALLOW_ALL).await;
    for (version, expected) in [
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        let connector = tls::client(&ca(), &[b"http/1.1"], &[version]);
        let mut stream = tls::connect(proxy.tls_address, &connector).await;
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(common::read_response(&mut stream).await.status, 200);
    }
    assert_eq!(upstream.last().header("x-forwarded-proto").as_deref(), Some("https"));
}

#[tokio::test]
async fn alpn_picks_h2_when_offered_and_http11_otherwise() {
    let upstream = Upstream::start().await;
    let proxy = tls_proxy(&upstream, ALLOW_ALL).await;
    for (offered, chosen) in [
        (vec![b"h2".as_slice(), b"http/1.1".as_slice()], Some(b"h2".as_slice())),
        (vec![b"http/1.1".as_slice()], Some(b"http/1.1".as_slice())),
        (vec![b"h2".as_slice()], Some(b"h2".as_slice())),
        (vec![], None),
    ] {
        let connector = tls::client(&ca(), &offered, tls::BOTH);
        let stream = tls::connect(proxy.tls_address, &connector).await;
        assert_eq!(stream.get_ref().1.alpn_protocol(), chosen);
    }
}

#[tokio::test]
async fn a_client_offering_only_h2_is_served_over_http2() {
    let upstream = Upstream::start().await;
    let proxy = tls_proxy(&upstream, ALLOW_ALL).await;
    let connector = tls::client(&ca(), &[b"h2"], tls::BOTH);
    let mut client = H2Client::over(tls::connect(proxy.tls_address, &connector).await).await;
    let (status, body) = client.send(Request::get("https://app.test/x").body(()).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body, "upstream ok 0");
    let received = upstream.last();
    assert_eq!(received.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(received.header("host").as_deref(), Some("app.test"));
}

#[tokio::test]
async fn the_rsa_fixture_serves_too_and_plain_listeners_stay_plain() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&format!("{}{ALLOW_ALL}", tls_server(&upstream.url(), "server-rsa"))).await;
    let connector = tls::client(&ca(), &[b"http/1.1"], tls::BOTH);
    let response = get_over_tls(
        proxy.server.addresses()[1],
        &connector,
        "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        proxy.get("/x").await.status,
        200,
        "the plain listener speaks plain HTTP"
    );
    assert_eq!(upstream.last().header("x-forwarded-proto").as_deref(), Some("http"));
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_request_header() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&format!(
        "{}[server.timeouts]\nrequest_header = \"300ms\"\n{ALLOW_ALL}",
        tls_server(&upstream.url(), "server-ec")
    ))
    .await;
    let mut stream = TcpStream::connect(proxy.server.addresses()[1]).await.unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut stream, &mut buffer),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the handshake-less connection was closed"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn path_attacks_over_tls_with_http11_and_http2() {
    let upstream = Upstream::start().await;
    let proxy = tls_proxy(&upstream, &rules("")).await;
    let h1 = tls::client(&ca(), &[b"http/1.1"], tls::BOTH);
    let h2 = tls::client(&ca(), &[b"h2"], tls::BOTH);
    let mut client = H2Client::over(tls::connect(proxy.tls_address, &h2).await).await;
    let mut sent = 0;
    for (class, target, expect) in path_attacks() {
        let before = upstream.hits();
        let response = get_over_tls(
            proxy.tls_address,
            &h1,
            &format!("GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let received: Vec<String> = upstream.received()[before..].iter().map(|r| r.target.clone()).collect();
        judge(class, &target, expect, response.status, &received, false);
        sent += 1;
        if let Ok(request) = Request::get(format!("https://app.test{target}")).body(()) {
            let before = upstream.hits();
            let (status, _) = client.send(request).await;
            let received: Vec<String> = upstream.received()[before..].iter().map(|r| r.target.clone()).collect();
            judge(class, &target, expect, status.as_u16(), &received, false);
            sent += 1;
        }
    }
    assert!(sent >= 200, "{sent}");
    assert!(
        upstream
            .received()
            .iter()
            .all(|r| !common::oracle::is_protected(&r.target, PROTECTED))
    );
}

#[tokio::test]
async fn rules_identity_and_host_checks_hold_over_http2_and_tls() {
    let upstream = Upstream::start().await;
    let rules = format!(
        "[[identity.api_keys]]\nname = \"ci\"\nsha256 = \"c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c\"\nroles = [\"admin\"]\n\
         [[rule]]\nname = \"admin-host\"\nhosts = [\"admin.example.com\"]\nmethods = [\"DELETE\"]\naction = \"deny\"\n\
         [[rule]]\nname = \"api\"\npaths = [\"/api/**\"]\naction = \"allow\"\nroles = [\"admin\"]\n\
         [[rule]]\nname = \"secret\"\npaths = [\"/secret/**\"]\naction = \"deny\"\nhide = true\n{ALLOW_ALL}"
    );
    let proxy = tls_proxy(&upstream, &rules).await;
    let connector = tls::client(&ca(), &[b"h2"], tls::BOTH);
    let mut client = H2Client::over(tls::connect(proxy.tls_address, &connector).await).await;
    let cases: Vec<(Request<()>, u16)> = vec![
        (Request::delete("https://admin.example.com/x").body(()).unwrap(), 403),
        (Request::delete("https://ADMIN.example.com./x").body(()).unwrap(), 403),
        (
            Request::delete("https://www.example.com/x")
                .header("host", "admin.example.com")
                .body(())
                .unwrap(),
            400,
        ),
        (Request::get("https://www.example.com/api/x").body(()).unwrap(), 401),
        (
            Request::get("https://www.example.com/api/x")
                .header("x-api-key", "wrong")
                .body(())
                .unwrap(),
            401,
        ),
        (Request::get("https://www.example.com/secret/x").body(()).unwrap(), 404),
        (
            Request::get("https://www.example.com/%73ecret/x").body(()).unwrap(),
            404,
        ),
        (
            Request::builder()
                .method("get")
                .uri("https://www.example.com/x")
                .body(())
                .unwrap(),
            400,
        ),
    ];
    for (request, expected) in cases {
        let described = format!("{} {}", request.method(), request.uri());
        assert_eq!(client.send(request).await.0.as_u16(), expected, "{described}");
    }
    assert_eq!(upstream.hits(), 0);
    let allowed = Request::get("https://www.example.com/api/x")
        .header("x-api-key", "demo-key")
        .body(())
        .unwrap();
    assert_eq!(client.send(allowed).await.0, 200);
    let received = upstream.last();
    assert_eq!(received.header("x-portcullis-user").as_deref(), Some("ci"));
    assert!(received.header("x-api-key").is_none());
}

// ---- HTTPS upstreams -------------------------------------------------------------

fn https_upstream_config(upstream: &Upstream, ca_pem: &str, dir: &Path) -> String {
    std::fs::write(dir.join("upstream-ca.pem"), ca_pem).unwrap();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"https://localhost:{}\"\n[upstream_tls]\nca_file = \"upstream-ca.pem\"\n{ALLOW_ALL}",
        upstream.address.port()
    )
}

#[tokio::test]
async fn an_https_upstream_gets_http2_pooled_with_the_rules_host_as_authority() {
    let pki = tls::pki(&["localhost"]);
    let upstream = Upstream::start_tls(tls::acceptor(&pki.cert_pem, &pki.key_pem)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = https_upstream_config(&upstream, &pki.ca_pem, dir.path());
    let proxy = Proxy::start_in(dir, &config).await;
    for _ in 0..5 {
        let response = proxy
            .raw("GET /x?y=1 HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n")
            .await;
        assert_eq!(response.status, 200);
    }
    let received = upstream.last();
    assert_eq!(received.version, http::Version::HTTP_2);
    assert_eq!(received.authority.as_deref(), Some("app.example.com"));
    assert_eq!(received.target, "/x?y=1");
    assert_eq!(
        upstream.connections(),
        1,
        "the five requests shared one pooled connection"
    );
}

#[tokio::test]
async fn an_http11_only_https_upstream_is_spoken_to_in_http11() {
    let pki = tls::pki(&["localhost"]);
    let acceptor = {
        let base = tls::acceptor(&pki.cert_pem, &pki.key_pem);
        let mut config = base.config().as_ref().clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    };
    let upstream = Upstream::start_tls(acceptor).await;
    let dir = tempfile::tempdir().unwrap();
    let config = https_upstream_config(&upstream, &pki.ca_pem, dir.path());
    let proxy = Proxy::start_in(dir, &config).await;
    assert_eq!(proxy.get("/x").await.status, 200);
    let received = upstream.last();
    assert_eq!(received.version, http::Version::HTTP_11);
    assert_eq!(received.header("host").as_deref(), Some("app.test"));
}

#[tokio::test]
async fn websocket_upgrades_reach_an_https_upstream_over_http11() {
    let pki = tls::pki(&["localhost"]);
    let acceptor = tls::acceptor(&pki.cert_pem, &pki.key_pem);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() {
                        socket.send(message).await.unwrap();
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"https://localhost:{port}\"\n[upstream_tls]\nca_file = \"ca.pem\"\n{ALLOW_ALL}"
    );
    let proxy = Proxy::start_in(dir, &config).await;
    let stream = TcpStream::connect(proxy.address).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(format!("ws://{}/chat", proxy.address), stream)
        .await
        .unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::text("over tls"))
        .await
        .unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap().into_text().unwrap(), "over tls");
}

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_with_an_unknown_ca_is_502_with_a_clear_log_line() {
    let pki = tls::pki(&["localhost"]);
    let other = tls::pki(&["localhost"]);
    let upstream = Upstream::start_tls(tls::acceptor(&pki.cert_pem, &pki.key_pem)).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = https_upstream_config(&upstream, &other.ca_pem, dir.path())
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(dir.path().join("p.toml"), config).unwrap();
    let log = dir.path().join("log");
    let mut child = tokio::process::Command::new(BIN)
        .args(["-c"])
        .arg(dir.path().join("p.toml"))
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    let address = format!("127.0.0.1:{port}").parse().unwrap();
    let response = common::raw_exchange(address, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert_eq!(response.status, 502);
    assert_eq!(upstream.hits(), 0);
    let _ = child.kill().await;
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("upstream request failed") && logs.contains("invalid peer certificate"),
        "{logs}"
    );
}

// ---- certificate reload ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_dropping_a_request() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (plain_port, tls_port, admin_port) = (free_port(), free_port(), free_port());
    std::fs::write(dir.path().join("cert.pem"), fixture("server-ec-chain.pem")).unwrap();
    std::fs::write(dir.path().join("key.pem"), fixture("server-ec-key.pem")).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{plain_port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\nupstream = \"{}\"\n\
         [[server.listener]]\naddress = \"127.0.0.1:{tls_port}\"\ntls = true\n[server.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n{ALLOW_ALL}",
        upstream.url()
    );
    std::fs::write(dir.path().join("p.toml"), config).unwrap();
    let log = dir.path().join("log");
    let _child = tokio::process::Command::new(BIN)
        .arg("-c")
        .arg(dir.path().join("p.toml"))
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(tls_port).await;
    let address: std::net::SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let served_certificate = async || {
        let connector = tls::client(&ca(), &[b"http/1.1"], tls::BOTH);
        let stream = tls::connect(address, &connector).await;
        stream.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec()
    };
    let ec_leaf = leaf("server-ec-cert.pem");
    assert_eq!(served_certificate().await, ec_leaf);

    // A client keeps requesting over TLS, on a kept-alive connection and on new ones.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let stream_task = {
        let (stop, failures, total) = (Arc::clone(&stop), Arc::clone(&failures), Arc::clone(&total));
        tokio::spawn(async move {
            let connector = tls::client(&fixture("ca.pem"), &[b"http/1.1"], tls::BOTH);
            let mut kept = tls::connect(address, &connector).await;
            while !stop.load(Ordering::SeqCst) {
                kept.write_all(b"GET /kept HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
                let kept_ok = common::try_read_response(&mut kept)
                    .await
                    .is_some_and(|r| r.status == 200);
                let fresh = get_over_tls(
                    address,
                    &connector,
                    "GET /fresh HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                )
                .await;
                total.fetch_add(2, Ordering::SeqCst);
                if !kept_ok || fresh.status != 200 {
                    failures.fetch_add(1, Ordering::SeqCst);
                    kept = tls::connect(address, &connector).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Renew: the RSA pair replaces the EC one (key first, then the certificate).
    std::fs::write(dir.path().join("key.pem"), fixture("server-rsa-key.pem")).unwrap();
    std::fs::write(dir.path().join("cert.pem"), fixture("server-rsa-chain.pem")).unwrap();
    let rsa_leaf = leaf("server-rsa-cert.pem");
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate().await != rsa_leaf {
        assert!(Instant::now() < deadline, "the renewed certificate was never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    stream_task.await.unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "of {} requests",
        total.load(Ordering::SeqCst)
    );

    // A broken pair (a key that is not the certificate's) is refused and the old one stays.
    let refusals = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("the private key does not belong to the certificate")
            .count()
    };
    let before = refusals();
    std::fs::write(dir.path().join("key.pem"), fixture("server-ec-key.pem")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while refusals() == before {
        assert!(Instant::now() < deadline, "no log line about the mismatched key");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_certificate().await, rsa_leaf);
}

// ---- curl --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_http2_and_http11_over_tls() {
    let upstream = Upstream::start().await;
    let proxy = tls_proxy(&upstream, ALLOW_ALL).await;
    let port = proxy.tls_address.port();
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let output = tokio::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
                flag,
                "--cacert",
            ])
            .arg(format!("{FIXTURES}/ca.pem"))
            .arg(format!("https://localhost:{port}/x"))
            .output()
            .await
            .expect("curl is installed");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("200 {version}"),
            "{flag}"
        );
    }
}
