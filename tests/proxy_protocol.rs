//! SPEC §2 `proxy_protocol`: a PROXY v1/v2 header from a trusted proxy names the client;
//! everyone else, and every bad header, gets the connection closed with nothing forwarded.

mod common;

use std::time::Duration;

use common::binary::{Running, free_port};
use common::{Proxy, RawResponse, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST: &[u8] = b"GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";

/// A proxy whose only listener expects PROXY headers from `trusted`, denying
/// 198.51.100.0/24 and allowing everyone else.
async fn proxy_trusting(upstream: &Upstream, trusted: &str) -> Proxy {
    Proxy::start(&format!(
        "[server]\nupstream = \"{}\"\ntrusted_proxies = [\"{trusted}\"]\n\
         [[server.listener]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n\
         [[rule]]\nname = \"blocked\"\nip = [\"198.51.100.0/24\"]\naction = \"deny\"\n\
         [[rule]]\nname = \"all\"\naction = \"allow\"\n",
        upstream.url()
    ))
    .await
}

fn v2_tcp4(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&client);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&8080u16.to_be_bytes());
    header
}

/// Sends `chunks` with a pause between them and reads what comes back until close.
async fn send_in_pieces(proxy: &Proxy, chunks: &[&[u8]]) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    for chunk in chunks {
        stream.write_all(chunk).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    answer
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

async fn exchange(proxy: &Proxy, bytes: &[u8]) -> RawResponse {
    common::raw_exchange(proxy.address, bytes).await
}

#[tokio::test]
async fn a_v1_header_from_a_trusted_proxy_names_the_client() {
    let upstream = Upstream::start().await;
    let proxy = proxy_trusting(&upstream, "127.0.0.1/32").await;
    let bytes = [b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 8080\r\n".as_slice(), REQUEST].concat();
    let response = exchange(&proxy, &bytes).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        upstream.last().header("x-forwarded-for").as_deref(),
        Some("203.0.113.7")
    );
    assert_eq!(
        upstream.last().target,
        "/x",
        "the request after the header arrived whole"
    );
}

#[tokio::test]
async fn the_proxied_address_is_what_ip_rules_see() {
    let upstream = Upstream::start().await;
    let proxy = proxy_trusting(&upstream, "127.0.0.1/32").await;
    let bytes = [b"PROXY TCP4 198.51.100.9 127.0.0.1 51000 8080\r\n".as_slice(), REQUEST].concat();
    assert_eq!(exchange(&proxy, &bytes).await.status, 403);
    let bytes = [v2_tcp4([198, 51, 100, 9], 51000), REQUEST.to_vec()].concat();
    assert_eq!(exchange(&proxy, &bytes).await.status, 403);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_v1_tcp6_header_names_an_ipv6_client() {
    let upstream = Upstream::start().await;
    let proxy = proxy_trusting(&upstream, "127.0.0.1/32").await;
    let bytes = [b"PROXY TCP6 2001:db8::7 ::1 51000 8080\r\n".as_slice(), REQUEST].concat();
    assert_eq!(exchange(&proxy, &bytes).await.status, 200);
    assert_eq!(
        upstream.last().header("x-forwarded-for").as_deref(),
        Some("2001:db8::7")
    );
}

#[tokio::test]
async fn a_v2_header_split_across_packets_names_the_client() {
    let upstream = Upstream::start().await;
    let proxy = proxy_trusting(&upstream, "127.0.0.1/32").await;
    let header = v2_tcp4([203, 0, 113, 8], 40000);
    let answer = send_in_pieces(
        &proxy,
        &[&header[..7], &header[7..14], &header[14..20], &header[20..], REQUEST],
    )
    .await;
    assert_eq!(status_of(&answer), Some(200));
    assert_eq!(
        upstream.last().header("x-forwarded-for").as_deref(),
        Some("203.0.113.8")
    );
}

#[tokio::test]
async fn unknown_and_local_keep_the_socket_peer() {
    let upstream = Upstream::start().await;
    let proxy = proxy_trusting(&upstream, "127.0.0.1/32").await;
    let unknown = [b"PROXY UNKNOWN\r\n".as_slice(), REQUEST].concat();
    assert_eq!(exchange(&proxy, &unknown).await.status, 200);
    assert_eq!(upstream.last().header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    let local = [b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".as_slice(), REQUEST].concat();
    assert_eq!(exchange(&proxy, &local).await.status, 200);
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn an_untrusted_peer_is_closed_even_with_a_valid_header() {
    let upstream = Upstream::start().await;
    let proxy = proxy_trusting(&upstream, "10.0.0.0/8").await;
    let bytes = [b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 8080\r\n".as_slice(), REQUEST].concat();
    let answer = send_in_pieces(&proxy, &[&bytes]).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(upstream.hits(), 0);
    assert!(
        proxy
            .metrics()
            .await
            .contains("portcullis_proxy_protocol_rejected_total{reason=\"untrusted\"} 1"),
        "{}",
        proxy.metrics().await
    );
}

#[tokio::test]
async fn a_request_without_a_header_is_closed_unforwarded() {
    let upstream = Upstream::start().await;
    let proxy = proxy_trusting(&upstream, "127.0.0.1/32").await;
    assert!(send_in_pieces(&proxy, &[REQUEST]).await.is_empty());
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn truncated_and_malformed_headers_are_closed_and_counted() {
    let upstream = Upstream::start().await;
    let proxy = proxy_trusting(&upstream, "127.0.0.1/32").await;
    let truncated_v2 = v2_tcp4([203, 0, 113, 7], 1);
    let attempts: [&[u8]; 3] = [
        b"PROXY TCP4 203.0.113.7 127.0.0.1 51000",
        &truncated_v2[..20],
        b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 8080\r\nGET /x HTTP/1.1\r\n\r\n",
    ];
    for attempt in attempts {
        let mut stream = TcpStream::connect(proxy.address).await.unwrap();
        stream.write_all(attempt).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
    assert_eq!(upstream.hits(), 0);
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("portcullis_proxy_protocol_rejected_total{reason=\"truncated\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_proxy_protocol_rejected_total{reason=\"malformed\"} 1"),
        "{metrics}"
    );
}

/// The binary with a plain listener and a `proxy_protocol` one, trusting loopback,
/// denying 198.51.100.0/24 and the country of 203.0.113.0/24 (KP in the fixture).
async fn binary_behind_a_balancer(dir: &std::path::Path, upstream: &Upstream) -> (Running, std::net::SocketAddr) {
    let balanced: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let geoip = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/geoip/country-v1.mmdb");
    let config = dir.join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\nupstream = \"{}\"\n\
             trusted_proxies = [\"127.0.0.1/32\"]\n\
             [[server.listener]]\naddress = \"{balanced}\"\nproxy_protocol = true\n\
             [log]\nformat = \"json\"\n[geoip]\ncountry_database = \"{geoip}\"\n\
             [[rule]]\nname = \"blocked\"\nip = [\"198.51.100.0/24\"]\naction = \"deny\"\n\
             [[rule]]\nname = \"embargo\"\ncountries = [\"KP\"]\naction = \"deny\"\n\
             [[rule]]\nname = \"all\"\naction = \"allow\"\n",
            free_port(),
            free_port(),
            upstream.url()
        ),
    )
    .unwrap();
    (Running::start(dir, &config).await, balanced)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_the_client_from_the_proxy_header_for_rules_geoip_and_logs() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (running, balanced) = binary_behind_a_balancer(dir.path(), &upstream).await;
    let via_balancer = |client: &str| {
        [
            format!("PROXY TCP4 {client} 127.0.0.1 51000 8080\r\n").as_bytes(),
            REQUEST,
        ]
        .concat()
    };
    assert_eq!(
        common::raw_exchange(balanced, &via_balancer("198.51.100.7"))
            .await
            .status,
        403
    );
    assert_eq!(
        common::raw_exchange(balanced, &via_balancer("203.0.113.7"))
            .await
            .status,
        403
    );
    assert_eq!(upstream.hits(), 0);
    let mut v2 = v2_tcp4([192, 0, 2, 44], 40000);
    v2.extend_from_slice(REQUEST);
    assert_eq!(common::raw_exchange(balanced, &v2).await.status, 200);
    assert_eq!(upstream.last().header("x-forwarded-for").as_deref(), Some("192.0.2.44"));
    running
        .wait_for("the access log lines", async || running.logs().contains("192.0.2.44"))
        .await;
    let logged = running
        .logs()
        .lines()
        .filter(|line| line.contains("\"access\""))
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .collect::<Vec<_>>();
    let korea = logged.iter().find(|e| e["client_ip"] == "203.0.113.7").unwrap();
    assert_eq!(
        (korea["peer"].as_str(), korea["country"].as_str()),
        (Some("203.0.113.7"), Some("KP"))
    );
    assert_eq!(korea["rule"], "embargo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_header_sent_to_a_plain_listener_names_nobody_and_is_not_forwarded() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = binary_behind_a_balancer(dir.path(), &upstream).await;
    let spoof = [b"PROXY TCP4 192.0.2.44 127.0.0.1 51000 8080\r\n".as_slice(), REQUEST].concat();
    let mut stream = TcpStream::connect(running.proxy).await.unwrap();
    stream.write_all(&spoof).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert_eq!(status_of(&answer), Some(400), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(upstream.hits(), 0);
}
