//! Limits and timeouts under hostile peers: an upstream that hangs, resets or answers
//! garbage never wedges the proxy; a stalled request body is cut; HTTP/2 stream limits
//! and rapid-reset protection are in force.

mod common;

use std::time::{Duration, Instant};

use common::{Behaviour, Proxy, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ALLOW_ALL: &str = "[[rule]]\nname = \"all\"\naction = \"allow\"\n";

/// What a hostile upstream does with each connection.
#[derive(Clone, Copy)]
enum Hostile {
    /// Reads the request and never answers.
    Hang,
    /// Closes the connection without a word.
    Close,
    /// Answers bytes that are not HTTP.
    Garbage,
    /// Sends half a response head, then nothing.
    HalfHead,
    /// Sends a head promising 1000 bytes, 10 of them, then closes.
    CloseMidBody,
}

async fn hostile_upstream(behaviour: Hostile) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                match behaviour {
                    Hostile::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
                    Hostile::Close => {}
                    Hostile::Garbage => {
                        let _ = stream.write_all(b"HELLO THERE\r\n\r\n").await;
                    }
                    Hostile::HalfHead => {
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await;
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Hostile::CloseMidBody => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                            .await;
                    }
                }
            });
        }
    });
    format!("http://{address}")
}

async fn proxy_for(upstream: &str) -> Proxy {
    Proxy::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n[server.timeouts]\nupstream_response = \"500ms\"\nrequest_body = \"300ms\"\n[[rule]]\nname = \"closed\"\npaths = [\"/closed\"]\naction = \"deny\"\n{ALLOW_ALL}"
    ))
    .await
}

async fn still_responsive(proxy: &Proxy) {
    let started = Instant::now();
    assert_eq!(proxy.get("/closed").await.status, 403);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the proxy answered slowly: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_hanging_upstream_is_504_and_wedges_nothing() {
    let proxy = proxy_for(&hostile_upstream(Hostile::Hang).await).await;
    let hung: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(common::raw_exchange(
                proxy.address,
                b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    still_responsive(&proxy).await;
    for request in hung {
        assert_eq!(request.await.unwrap().status, 504);
    }
    still_responsive(&proxy).await;
}

#[tokio::test]
async fn an_upstream_that_closes_is_502() {
    let proxy = proxy_for(&hostile_upstream(Hostile::Close).await).await;
    assert_eq!(proxy.get("/x").await.status, 502);
    still_responsive(&proxy).await;
}

#[tokio::test]
async fn an_upstream_answering_garbage_is_502() {
    let proxy = proxy_for(&hostile_upstream(Hostile::Garbage).await).await;
    assert_eq!(proxy.get("/x").await.status, 502);
    assert!(
        proxy
            .metrics()
            .await
            .contains("portcullis_upstream_errors_total{kind=\"other\"} 1")
    );
    still_responsive(&proxy).await;
}

#[tokio::test]
async fn an_upstream_stalling_in_its_head_is_504() {
    let proxy = proxy_for(&hostile_upstream(Hostile::HalfHead).await).await;
    assert_eq!(proxy.get("/x").await.status, 504);
    still_responsive(&proxy).await;
}

#[tokio::test]
async fn an_upstream_closing_mid_body_cuts_the_client_response_without_a_fake_success() {
    let proxy = proxy_for(&hostile_upstream(Hostile::CloseMidBody).await).await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.len() < 1000, "a truncated body must not look complete");
    still_responsive(&proxy).await;
}

#[tokio::test]
async fn a_stalled_request_body_resets_the_connection() {
    let upstream = Upstream::start().await;
    let proxy = proxy_for(&upstream.url()).await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the connection stayed open");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(
        upstream.received().iter().all(|r| !r.complete),
        "a stalled body must not complete upstream"
    );
}

#[tokio::test]
async fn a_stalled_http2_request_body_resets_only_its_stream() {
    let upstream = Upstream::start().await;
    let proxy = proxy_for(&upstream.url()).await;
    let stream = TcpStream::connect(proxy.address).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post("http://a.test/upload").body(()).unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from_static(b"0123456789"), false).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("an answer within 5 s");
    match outcome {
        Err(error) => assert!(error.is_reset() || error.is_remote(), "{error}"),
        Ok(response) => assert_ne!(response.status(), 200),
    }
    // The connection itself still serves other streams.
    let mut client = client.ready().await.unwrap();
    let (response, _) = client
        .send_request(http::Request::get("http://a.test/x").body(()).unwrap(), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
}

/// Reads raw HTTP/2 frames: (type, flags, stream, payload).
async fn read_frame(stream: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).await.ok()?;
    let length = (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.ok()?;
    let stream_id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
    Some((header[3], header[4], stream_id, payload))
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len();
    let mut bytes = vec![(length >> 16) as u8, (length >> 8) as u8, length as u8, kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[tokio::test]
async fn http2_advertises_a_concurrent_stream_limit() {
    let upstream = Upstream::start().await;
    let proxy = proxy_for(&upstream.url()).await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
    let (kind, _, _, payload) = read_frame(&mut stream).await.unwrap();
    assert_eq!(kind, 0x4, "the server's first frame is SETTINGS");
    let max_streams = payload
        .chunks(6)
        .find(|setting| u16::from_be_bytes([setting[0], setting[1]]) == 0x3)
        .map(|setting| u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]));
    assert_eq!(max_streams, Some(256));
}

#[tokio::test]
async fn http2_rapid_reset_closes_the_connection() {
    let upstream = Upstream::start_with(Behaviour::Delay(Duration::from_millis(200))).await;
    let proxy = proxy_for(&upstream.url()).await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
    // HPACK: :method GET, :scheme http, :path /, :authority "a".
    let headers = [0x82, 0x86, 0x84, 0x41, 0x01, b'a'];
    let mut burst = Vec::new();
    for id in (1..2000u32).step_by(2) {
        burst.extend(frame(0x1, 0x5, id, &headers));
        burst.extend(frame(0x3, 0, id, &8u32.to_be_bytes()));
    }
    let _ = stream.write_all(&burst).await;
    let mut goaway = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream)).await {
            Ok(Some((0x7, _, _, payload))) => {
                goaway = Some(u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]));
                break;
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break,
        }
    }
    assert_eq!(goaway, Some(0xb), "GOAWAY with ENHANCE_YOUR_CALM");
    assert!(
        upstream.hits() < 100,
        "{} requests reached the upstream",
        upstream.hits()
    );
}
