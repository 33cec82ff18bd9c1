//! SPEC §6 through the running proxy: header hygiene, forwarding headers, request ids,
//! streaming, WebSocket tunnels, and the errors the proxy answers itself.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Behaviour, H2Client, Proxy, Upstream};
use futures_util::{SinkExt, StreamExt};
use http::Request;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const ALLOW_ALL: &str = "[[rule]]\nname = \"all\"\naction = \"allow\"\n";

fn request_with(headers: &str) -> String {
    format!("GET /x HTTP/1.1\r\nHost: app.test:8080\r\n{headers}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn hop_by_hop_and_connection_named_headers_are_removed() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    let response = proxy
        .raw("GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-secret\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\nTE: gzip\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nTrailer: x-t\r\nX-Kept: 1\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    let received = upstream.last();
    for removed in ["x-secret", "keep-alive", "te", "upgrade", "proxy-connection", "trailer"] {
        assert!(received.header(removed).is_none(), "{removed} reached the upstream");
    }
    assert_eq!(received.header("x-kept").as_deref(), Some("1"));
}

#[tokio::test]
async fn connection_header_cannot_strip_forwarding_headers() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    proxy
        .raw(&request_with(
            "Connection: x-forwarded-for, x-forwarded-proto, x-request-id\r\n",
        ))
        .await;
    let received = upstream.last();
    assert_eq!(received.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(received.header("x-forwarded-proto").as_deref(), Some("http"));
    assert!(received.header("x-request-id").is_some());
}

#[tokio::test]
async fn te_trailers_is_kept() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    proxy.raw(&request_with("TE: trailers\r\n")).await;
    assert_eq!(upstream.last().header("te").as_deref(), Some("trailers"));
}

#[tokio::test]
async fn untrusted_client_forwarding_headers_are_replaced() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    proxy
        .raw(&request_with("X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n"))
        .await;
    let received = upstream.last();
    assert_eq!(received.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(received.header_count("x-forwarded-for"), 1);
    assert_eq!(received.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(received.header("x-forwarded-host").as_deref(), Some("app.test:8080"));
    assert!(received.header("forwarded").is_none());
    assert!(received.header("x-real-ip").is_none());
}

#[tokio::test]
async fn trusted_proxy_forwarding_headers_are_kept_and_extended() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, &format!("trusted_proxies = [\"127.0.0.1\"]\n{ALLOW_ALL}")).await;
    proxy
        .raw(&request_with("X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: public.test\r\nForwarded: for=198.51.100.1\r\nX-Real-IP: 198.51.100.1\r\n"))
        .await;
    let received = upstream.last();
    assert_eq!(
        received.header("x-forwarded-for").as_deref(),
        Some("198.51.100.1, 127.0.0.1")
    );
    assert_eq!(received.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(received.header("x-forwarded-host").as_deref(), Some("public.test"));
    assert!(received.header("forwarded").is_some() && received.header("x-real-ip").is_some());
}

#[tokio::test]
async fn method_override_headers_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    proxy
        .raw(&request_with(
            "X-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\nX-Method-Override: DELETE\r\n",
        ))
        .await;
    let received = upstream.last();
    for name in ["x-http-method-override", "x-http-method", "x-method-override"] {
        assert!(received.header(name).is_none(), "{name}");
    }
}

#[tokio::test]
async fn host_is_forwarded_as_sent_with_port() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    proxy.raw(&request_with("")).await;
    assert_eq!(upstream.last().header("host").as_deref(), Some("app.test:8080"));
}

#[tokio::test]
async fn valid_request_id_is_kept_and_returned() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    let response = proxy.raw(&request_with("X-Request-Id: trace-42.a_b\r\n")).await;
    assert_eq!(response.header("x-request-id").as_deref(), Some("trace-42.a_b"));
    assert_eq!(upstream.last().header("x-request-id").as_deref(), Some("trace-42.a_b"));
}

#[tokio::test]
async fn invalid_request_id_is_replaced_everywhere() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    let response = proxy.raw(&request_with("X-Request-Id: <script>\r\n")).await;
    let returned = response.header("x-request-id").unwrap();
    assert_ne!(returned, "<script>");
    assert_eq!(upstream.last().header("x-request-id"), Some(returned));
}

#[tokio::test]
async fn denials_carry_the_request_id_too() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, "").await;
    let response = proxy.raw(&request_with("X-Request-Id: deny-1\r\n")).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.header("x-request-id").as_deref(), Some("deny-1"));
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["request_id"], "deny-1");
}

#[tokio::test]
async fn upstream_hop_by_hop_response_headers_are_removed() {
    let upstream = Upstream::start_with(Behaviour::HopByHop).await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    let response = proxy.raw(&request_with("X-Request-Id: client-1\r\n")).await;
    assert_eq!(response.status, 200);
    assert!(response.header("x-upstream-secret").is_none());
    assert!(response.header("keep-alive").is_none());
    assert!(response.header("proxy-connection").is_none());
    assert_eq!(response.header("x-request-id").as_deref(), Some("client-1"));
    assert_eq!(response.header("x-upstream").as_deref(), Some("yes"));
}

#[tokio::test]
async fn upstream_base_path_is_prefixed() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"{}/base/\"\n{ALLOW_ALL}",
        upstream.url()
    ))
    .await;
    proxy.get("/a/b?c=d").await;
    assert_eq!(upstream.last().target, "/base/a/b?c=d");
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let proxy = Proxy::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"http://{address}\"\n{ALLOW_ALL}"
    ))
    .await;
    let response = proxy.get("/x").await;
    assert_eq!(response.status, 502);
    assert!(
        !response.body_text().contains(&address.to_string()),
        "the body must not reveal the upstream"
    );
    assert!(
        proxy
            .metrics()
            .await
            .contains("portcullis_upstream_errors_total{kind=\"connect\"} 1")
    );
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let upstream = Upstream::start_with(Behaviour::Delay(Duration::from_secs(5))).await;
    let proxy = Proxy::start(&format!(
        "{}[server.timeouts]\nupstream_response = \"300ms\"\n{ALLOW_ALL}",
        common::server_table(&upstream.url())
    ))
    .await;
    let response = proxy.get("/x").await;
    assert_eq!(response.status, 504);
    assert!(
        proxy
            .metrics()
            .await
            .contains("portcullis_upstream_errors_total{kind=\"timeout\"} 1")
    );
}

fn limited(upstream: &Upstream, limit: u64) -> String {
    format!(
        "{}max_request_body_bytes = {limit}\n{ALLOW_ALL}",
        common::server_table(&upstream.url())
    )
}

#[tokio::test]
async fn content_length_over_the_limit_is_413_before_forwarding() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&limited(&upstream, 1000)).await;
    let body = "x".repeat(2000);
    let response = proxy
        .raw(&format!(
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n{body}"
        ))
        .await;
    assert_eq!(response.status, 413);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_cut_mid_stream() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&limited(&upstream, 1000)).await;
    let chunk = "x".repeat(600);
    let request = format!(
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let response = proxy.raw(&request).await;
    assert_eq!(response.status, 413);
    assert!(
        upstream.received().iter().all(|r| !r.complete),
        "a complete over-limit body reached the upstream"
    );
}

#[tokio::test]
async fn body_within_the_limit_is_forwarded() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&limited(&upstream, 1000)).await;
    let response = proxy
        .raw(&format!(
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{}",
            "y".repeat(1000)
        ))
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(upstream.last().body_len, 1000);
}

fn header_limited(upstream: &Upstream) -> String {
    format!(
        "{}max_request_header_bytes = 2048\n{ALLOW_ALL}",
        common::server_table(&upstream.url())
    )
}

#[tokio::test]
async fn headers_over_the_limit_are_431_on_http1() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&header_limited(&upstream)).await;
    let response = proxy
        .raw(&request_with(&format!("X-Big: {}\r\n", "b".repeat(3000))))
        .await;
    assert_eq!(response.status, 431);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn headers_over_the_limit_are_431_on_http2() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&header_limited(&upstream)).await;
    let mut client = H2Client::connect(proxy.address).await;
    let request = Request::get("http://a.test/x")
        .header("x-big", "b".repeat(3000))
        .body(())
        .unwrap();
    let (status, body) = client.send(request).await;
    assert_eq!(status, 431);
    assert_eq!(problem_status(&body), 431, "the proxy itself must answer");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn too_many_headers_are_431_on_both_protocols() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(proxy.raw(&request_with(&many)).await.status, 431);
    let mut client = H2Client::connect(proxy.address).await;
    let mut builder = Request::get("http://a.test/x");
    for i in 0..150 {
        builder = builder.header(format!("x-h{i}"), "v");
    }
    let (status, body) = client.send(builder.body(()).unwrap()).await;
    assert_eq!(status, 431);
    assert_eq!(problem_status(&body), 431, "the proxy itself must answer");
    assert_eq!(upstream.hits(), 0);
}

fn problem_status(body: &[u8]) -> u64 {
    let problem: serde_json::Value = serde_json::from_slice(body).expect("a problem+json body");
    problem["status"].as_u64().unwrap()
}

#[tokio::test]
async fn ten_megabyte_upload_streams_through() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    let total = 10 * 1024 * 1024;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream
        .write_all(
            format!("PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let half = vec![b'z'; total / 2];
    stream.write_all(&half).await.unwrap();
    // The upstream must see bytes while the client still holds back the second half:
    // the proxy streams, it does not buffer the body.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while upstream.body_bytes.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no body bytes reached the upstream before the upload finished"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream.write_all(&half).await.unwrap();
    let response = common::read_response(&mut stream).await;
    assert_eq!(response.status, 200);
    assert_eq!(upstream.last().body_len, total);
    assert!(upstream.last().complete);
}

/// A WebSocket echo server as the upstream.
async fn websocket_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        socket.send(message).await.unwrap();
                    }
                }
            });
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn websocket_round_trip_through_the_proxy() {
    let upstream = websocket_upstream().await;
    let proxy = Proxy::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n{ALLOW_ALL}"
    ))
    .await;
    let stream = TcpStream::connect(proxy.address).await.unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async(format!("ws://{}/chat", proxy.address), stream)
        .await
        .expect("websocket handshake through the proxy");
    assert_eq!(response.status(), 101);
    socket.send(Message::text("hello through portcullis")).await.unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap(), "hello through portcullis");
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_upgrade_is_decided_like_any_request() {
    let upstream = websocket_upstream().await;
    let proxy = Proxy::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n[[rule]]\nname = \"no-chat\"\npaths = [\"/chat\"]\naction = \"deny\"\n{ALLOW_ALL}"
    ))
    .await;
    let stream = TcpStream::connect(proxy.address).await.unwrap();
    let refused = tokio_tungstenite::client_async(format!("ws://{}/chat", proxy.address), stream).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected a 403, got {other:?}"),
    }
}

#[tokio::test]
async fn h2c_upgrade_requests_are_served_as_http11() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    let response = proxy
        .raw("GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    let received = upstream.last();
    assert!(received.header("upgrade").is_none() && received.header("http2-settings").is_none());
}

#[tokio::test]
async fn shutdown_waits_for_an_open_websocket_tunnel_within_the_grace() {
    let upstream = websocket_upstream().await;
    let proxy = Proxy::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n{ALLOW_ALL}"
    ))
    .await;
    let stream = TcpStream::connect(proxy.address).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(format!("ws://{}/chat", proxy.address), stream)
        .await
        .unwrap();
    let shutdown = tokio::spawn(proxy.server.shutdown(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!shutdown.is_finished(), "shutdown waits for the tunnel");
    socket.send(Message::text("still open")).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap().into_text().unwrap(), "still open");
    socket.close(None).await.unwrap();
    while socket.next().await.is_some() {}
    drop(socket);
    let cut = tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cut, 0);
}

#[tokio::test]
async fn shutdown_cuts_a_tunnel_that_outlives_the_grace() {
    let upstream = websocket_upstream().await;
    let proxy = Proxy::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n{ALLOW_ALL}"
    ))
    .await;
    let stream = TcpStream::connect(proxy.address).await.unwrap();
    let (_socket, _) = tokio_tungstenite::client_async(format!("ws://{}/chat", proxy.address), stream)
        .await
        .unwrap();
    let cut = proxy.server.shutdown(Duration::from_millis(300)).await;
    assert!(cut >= 1, "the tunnel was counted as cut");
}

#[tokio::test]
async fn requests_with_many_hosts_share_one_pooled_upstream_connection() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    for index in 0..20 {
        let response = proxy
            .raw(&format!(
                "GET /x HTTP/1.1\r\nHost: random-{index}.example\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(response.status, 200);
    }
    assert_eq!(upstream.last().header("host").as_deref(), Some("random-19.example"));
    assert_eq!(
        upstream.connections(),
        1,
        "a client choosing Host values must not make the proxy open (and keep) a connection per host"
    );
}
