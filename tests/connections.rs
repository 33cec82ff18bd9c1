//! Connection-level limits: the request-header timeout before the first request (which
//! hyper's protocol sniffing and HTTP/2 do not enforce themselves), the idle timeout,
//! and `max_connections`.

mod common;

use std::time::{Duration, Instant};

use common::{Proxy, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALLOW_ALL: &str = "[[rule]]\nname = \"all\"\naction = \"allow\"\n";

async fn proxy_with(upstream: &Upstream, server_extra: &str, timeouts: &str) -> Proxy {
    Proxy::start(&format!(
        "{}{server_extra}[server.timeouts]\n{timeouts}{ALLOW_ALL}",
        common::server_table(&upstream.url())
    ))
    .await
}

/// Reads until the server closes the connection; returns how long that took.
async fn time_until_closed(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the proxy kept the connection open for 10 s"),
        }
    }
}

#[tokio::test]
async fn silent_connection_is_closed_after_request_header() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "", "request_header = \"300ms\"\n").await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    let waited = time_until_closed(&mut stream).await;
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn slowloris_head_is_cut_after_request_header() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "", "request_header = \"300ms\"\n").await;
    let stream = TcpStream::connect(proxy.address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    // One more header line every 100 ms: the head never completes.
    tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("a trickling head kept the connection open for 5 s"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn http2_preface_without_request_is_closed_after_request_header() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "", "request_header = \"300ms\"\n").await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let waited = time_until_closed(&mut stream).await;
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[tokio::test]
async fn idle_http2_connection_is_closed_after_idle() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "", "idle = \"300ms\"\n").await;
    let stream = TcpStream::connect(proxy.address).await.unwrap();
    let (mut client, connection) = h2::client::handshake(stream).await.unwrap();
    let connection = tokio::spawn(connection);
    // Arrive after the watchdog has started waiting for a first request.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let request = http::Request::get("http://a.test/x").body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection was not closed");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_then_close_while_existing_ones_work() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "max_connections = 1\n", "").await;
    let mut first = TcpStream::connect(proxy.address).await.unwrap();
    first.write_all(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    assert_eq!(common::read_response(&mut first).await.status, 200);

    let mut second = TcpStream::connect(proxy.address).await.unwrap();
    second
        .write_all(b"GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let waited = time_until_closed(&mut second).await;
    assert!(
        waited >= Duration::from_millis(800),
        "closed before waiting: {waited:?}"
    );
    assert_eq!(upstream.hits(), 1, "the refused connection's request was not served");

    first.write_all(b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    assert_eq!(
        common::read_response(&mut first).await.status,
        200,
        "the open connection is unaffected"
    );
}

#[tokio::test]
async fn waiting_connection_is_served_when_a_slot_frees() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "max_connections = 1\n", "").await;
    let mut first = TcpStream::connect(proxy.address).await.unwrap();
    first
        .write_all(b"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let second = tokio::spawn(common::raw_exchange(
        proxy.address,
        b"GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(common::read_response(&mut first).await.status, 200);
    drop(first);
    assert_eq!(second.await.unwrap().status, 200);
}

#[tokio::test]
async fn active_connections_gauge_tracks_open_connections() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "", "").await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    common::read_response(&mut stream).await;
    assert!(proxy.metrics().await.contains("portcullis_active_connections 1"));
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proxy.metrics().await.contains("portcullis_active_connections 0") {
        assert!(Instant::now() < deadline, "the gauge did not return to 0");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
