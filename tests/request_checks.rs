//! SPEC §3 step 1 and §4 through the running proxy, over HTTP/1.1 (raw bytes, so no
//! client library repairs the request) and HTTP/2 (h2c prior knowledge).

mod common;

use bytes::Bytes;
use common::{H2Client, Proxy, Upstream};
use http::Request;

const ALLOW_ALL: &str = "[[rule]]\nname = \"all\"\naction = \"allow\"\n";

async fn allow_all() -> (Upstream, Proxy) {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, ALLOW_ALL).await;
    (upstream, proxy)
}

async fn assert_bad_request(proxy: &Proxy, upstream: &Upstream, request: &str) {
    let response = proxy.raw(request).await;
    assert_eq!(response.status, 400, "{request:?} → {}", response.head);
    assert_eq!(upstream.hits(), 0, "{request:?} reached the upstream");
}

#[tokio::test]
async fn lower_case_method_is_400() {
    let (upstream, proxy) = allow_all().await;
    assert_bad_request(
        &proxy,
        &upstream,
        "delete /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn missing_host_on_http11_is_400() {
    let (upstream, proxy) = allow_all().await;
    assert_bad_request(&proxy, &upstream, "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n").await;
}

#[tokio::test]
async fn duplicate_host_is_400() {
    let (upstream, proxy) = allow_all().await;
    assert_bad_request(
        &proxy,
        &upstream,
        "GET /x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn invalid_host_is_400() {
    let (upstream, proxy) = allow_all().await;
    assert_bad_request(
        &proxy,
        &upstream,
        "GET /x HTTP/1.1\r\nHost: user@a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn http10_without_host_is_forwarded_with_upstream_host() {
    let (upstream, proxy) = allow_all().await;
    let response = proxy.raw("GET /x HTTP/1.0\r\n\r\n").await;
    assert_eq!(response.status, 200);
    assert_eq!(upstream.last().header("host"), Some(upstream.address.to_string()));
}

#[tokio::test]
async fn absolute_form_target_decides_and_forwards_by_its_authority() {
    let upstream = Upstream::start().await;
    let rules = "[[rule]]\nname = \"admin-host\"\nhosts = [\"admin.example.com\"]\naction = \"deny\"\n[[rule]]\nname = \"all\"\naction = \"allow\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    let denied = proxy
        .raw("GET http://admin.example.com/x HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(upstream.hits(), 0);
    let allowed = proxy
        .raw("GET http://www.example.com/x HTTP/1.1\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(allowed.status, 200);
    let received = upstream.last();
    assert_eq!(received.header("host").as_deref(), Some("www.example.com"));
    assert_eq!(received.target, "/x");
}

#[tokio::test]
async fn unsafe_paths_are_400_and_never_forwarded() {
    let (upstream, proxy) = allow_all().await;
    for path in [
        "/..;/admin",
        "/a%00b",
        "/%252e%252e/admin",
        "/a%2Fb",
        "/caf%C3",
        "/%C0%AE%C0%AE/admin",
        "/a%zz",
    ] {
        assert_bad_request(
            &proxy,
            &upstream,
            &format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        )
        .await;
    }
}

#[tokio::test]
async fn bad_request_bodies_say_why() {
    let (_upstream, proxy) = allow_all().await;
    let response = proxy
        .raw("GET /..;/admin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["status"], 400);
    assert!(body["detail"].as_str().unwrap().contains("'..'"), "{body}");
}

#[tokio::test]
async fn normalized_path_is_what_the_upstream_receives() {
    let (upstream, proxy) = allow_all().await;
    let response = proxy
        .raw("GET /a/./b/../%63//d?q=%2F&x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(upstream.last().target, "/a/c/d?q=%2F&x");
}

#[tokio::test]
async fn asterisk_only_with_options() {
    let (upstream, proxy) = allow_all().await;
    assert_bad_request(
        &proxy,
        &upstream,
        "GET * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn http2_host_header_must_match_authority() {
    let (upstream, proxy) = allow_all().await;
    let mut client = H2Client::connect(proxy.address).await;
    let mismatched = Request::get("http://www.example.com/x")
        .header("host", "admin.example.com")
        .body(())
        .unwrap();
    assert_eq!(client.send(mismatched).await.0, 400);
    assert_eq!(upstream.hits(), 0);
    let matching = Request::get("http://www.example.com/x")
        .header("host", "www.example.com")
        .body(())
        .unwrap();
    assert_eq!(client.send(matching).await.0, 200);
}

#[tokio::test]
async fn http2_lower_case_method_is_400() {
    let (upstream, proxy) = allow_all().await;
    let mut client = H2Client::connect(proxy.address).await;
    let request = Request::builder()
        .method("delete")
        .uri("http://a.test/x")
        .body(())
        .unwrap();
    assert_eq!(client.send(request).await.0, 400);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn http2_unsafe_path_is_400() {
    let (upstream, proxy) = allow_all().await;
    let mut client = H2Client::connect(proxy.address).await;
    let request = Request::get("http://a.test/..;/admin").body(()).unwrap();
    assert_eq!(client.send(request).await.0, 400);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn http2_requests_are_forwarded_as_http11_with_body() {
    let (upstream, proxy) = allow_all().await;
    let mut client = H2Client::connect(proxy.address).await;
    let request = Request::post("http://a.test/upload").body(()).unwrap();
    let (status, body) = client.send_with_body(request, Bytes::from_static(b"hello")).await;
    assert_eq!(status, 200);
    assert_eq!(body, "upstream ok 5");
    let received = upstream.last();
    assert_eq!(received.header("host").as_deref(), Some("a.test"));
    assert_eq!(received.body_len, 5);
}
