//! The hostile suite: attempts to reach a protected resource (`/admin/**`, or a
//! protected host, or an IP allow-list) through every reading a parser difference
//! allows. Each blocking attempt must get 400 or the deny status AND leave the
//! upstream untouched; every request that is forwarded is judged by a differential
//! oracle (`common::oracle`): no common backend reading of the target it received may
//! land on the protected path.
//!
//! The classes come from how access proxies have been bypassed before: Envoy
//! CVE-2019-9901 (paths matched without normalizing `..`) and CVE-2021-29492 (`%2F`
//! decoded by the backend after matching), Apache CVE-2021-41773 (`.%2e/` traversal),
//! Traefik CVE-2024-45410 (`Connection` naming `X-Forwarded-*` headers to strip them),
//! Spring Security's path-matching CVEs (CVE-2016-5007 trailing `/`, CVE-2022-22978
//! regex `.` and newlines, CVE-2023-34034 `**` mismatches), Tomcat's `..;/` (the
//! `;jsessionid` path parameter), and IIS/Windows trailing dots and case. The shape of
//! the suite follows Envoy's `test/common/http/path_utility_test.cc` and header-validator
//! `path_normalizer_test`, nginx-tests' `http_uri.t` (URI normalization) and HAProxy's
//! `reg-tests/http-rules/normalize_uri.vtc`: tables of raw targets with the expected
//! canonical form, plus end-to-end checks that the backend never sees the original.

mod common;

use std::collections::BTreeMap;

use Expect::{Blocked, Forwarded};
use common::attacks::{Expect, PROTECTED, judge, path_attacks, rules};
use common::{H2Client, Proxy, Upstream, oracle};
use http::Request;

/// Attacks against `case_insensitive_paths = true` (for IIS-like upstreams).
fn case_insensitive_attacks() -> Vec<(&'static str, String, Expect)> {
    [
        ("case", "/ADMIN"),
        ("case", "/Admin/x"),
        ("case", "/aDmIn/"),
        ("case", "/%41DMIN"),
        ("case", "/%41%44%4D%49%4E/x"),
        ("trailing dots and spaces", "/admin."),
        ("trailing dots and spaces", "/admin.."),
        ("trailing dots and spaces", "/admin%20"),
        ("trailing dots and spaces", "/admin.%20/x"),
        ("trailing dots and spaces", "/admin%20./x"),
        ("trailing dots and spaces", "/ADMIN.../x"),
        ("trailing dots and spaces", "/admin%20%20/x"),
    ]
    .into_iter()
    .map(|(class, target)| (class, target.to_string(), Blocked))
    .collect()
}

/// Attacks against `escaped_slashes = "keep"`, where `%2F` may reach the upstream.
fn kept_escape_attacks() -> Vec<(&'static str, String, Expect)> {
    [
        ("encoded separators kept", "/public%2F..%2Fadmin", Blocked),
        ("encoded separators kept", "/public%5C..%5Cadmin", Blocked),
        ("encoded separators kept", "/admin%2Fx", Blocked),
        ("encoded separators kept", "/%2Fadmin", Blocked),
        ("encoded separators kept", "/admin%3Bx=1/y", Blocked),
        ("encoded separators kept", "/..%3B/admin", Blocked),
        ("encoded separators kept", "/files%2Freport.pdf", Forwarded),
    ]
    .into_iter()
    .map(|(class, target, expect)| (class, target.to_string(), expect))
    .collect()
}

#[derive(Default)]
struct Tally {
    per_class: BTreeMap<&'static str, usize>,
    blocked_by_hyper: usize,
    not_expressible_in_http2: usize,
}

/// Sends each attack raw over HTTP/1.1 and checks it; returns the tally.
async fn run_http1(
    proxy: &Proxy,
    upstream: &Upstream,
    attacks: &[(&'static str, String, Expect)],
    case_insensitive: bool,
    tally: &mut Tally,
) {
    for (class, target, expect) in attacks {
        *tally.per_class.entry(class).or_default() += 1;
        let before = upstream.hits();
        let response = proxy
            .raw(&format!(
                "GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
            ))
            .await;
        let received: Vec<String> = upstream.received()[before..].iter().map(|r| r.target.clone()).collect();
        judge(class, target, *expect, response.status, &received, case_insensitive);
        if response.status == 400 && response.header("x-request-id").is_none() {
            tally.blocked_by_hyper += 1;
        }
    }
}

/// The same attacks as `:path` over h2c; targets that are not valid URIs cannot be
/// sent over HTTP/2 at all and are counted.
async fn run_http2(
    proxy: &Proxy,
    upstream: &Upstream,
    attacks: &[(&'static str, String, Expect)],
    case_insensitive: bool,
    tally: &mut Tally,
) {
    let mut client = H2Client::connect(proxy.address).await;
    for (class, target, expect) in attacks {
        let Ok(request) = Request::get(format!("http://app.test{target}")).body(()) else {
            tally.not_expressible_in_http2 += 1;
            continue;
        };
        *tally.per_class.entry(class).or_default() += 1;
        let before = upstream.hits();
        let (status, _) = client.send(request).await;
        let received: Vec<String> = upstream.received()[before..].iter().map(|r| r.target.clone()).collect();
        judge(class, target, *expect, status.as_u16(), &received, case_insensitive);
    }
}

async fn proxy_with(upstream: &Upstream, policy: &str) -> Proxy {
    Proxy::with_rules(upstream, &rules(policy)).await
}

#[tokio::test]
async fn path_attacks_over_http1() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "").await;
    let mut tally = Tally::default();
    run_http1(&proxy, &upstream, &path_attacks(), false, &mut tally).await;
    let total: usize = tally.per_class.values().sum();
    assert!(total >= 100, "{total} attempts");
    eprintln!(
        "HTTP/1.1 path attacks: {total} ({} refused by hyper itself) {:#?}",
        tally.blocked_by_hyper, tally.per_class
    );
}

#[tokio::test]
async fn path_attacks_over_h2c() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "").await;
    let mut tally = Tally::default();
    run_http2(&proxy, &upstream, &path_attacks(), false, &mut tally).await;
    let total: usize = tally.per_class.values().sum();
    eprintln!(
        "h2c path attacks: {total} sent, {} not expressible as :path {:#?}",
        tally.not_expressible_in_http2, tally.per_class
    );
    assert!(total >= 90, "{total} attempts");
}

#[tokio::test]
async fn case_and_trailing_dot_attacks_on_a_case_insensitive_policy() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "case_insensitive_paths = true").await;
    let mut tally = Tally::default();
    run_http1(&proxy, &upstream, &case_insensitive_attacks(), true, &mut tally).await;
    run_http2(&proxy, &upstream, &case_insensitive_attacks(), true, &mut tally).await;
    // The default attacks must hold here too, judged with case folding.
    let folded: Vec<_> = path_attacks()
        .into_iter()
        .map(|(class, target, expect)| {
            let now_protected = [
                "/ADMIN",
                "/Admin/x",
                "/admin.",
                "/admin%20",
                "/%41dmin",
                "/admin../x",
                "/%6D%61/../%61%44%6d%69%6E",
            ]
            .contains(&target.as_str());
            (class, target, if now_protected { Blocked } else { expect })
        })
        .collect();
    run_http1(&proxy, &upstream, &folded, true, &mut tally).await;
}

#[tokio::test]
async fn encoded_separator_attacks_when_they_are_kept() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "escaped_slashes = \"keep\"").await;
    let mut tally = Tally::default();
    run_http1(&proxy, &upstream, &kept_escape_attacks(), false, &mut tally).await;
    run_http2(&proxy, &upstream, &kept_escape_attacks(), false, &mut tally).await;
}

#[tokio::test]
async fn merge_slashes_off_still_matches_merged() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, "merge_slashes = false").await;
    let mut attacks: Vec<_> = ["//admin", "///admin/x", "/admin//x", "//admin//x//"]
        .into_iter()
        .map(|target| ("slashes (merge off)", target.to_string(), Blocked))
        .collect();
    // Without merging, `..` climbs out of the empty segment: the upstream receives
    // `/public/admin`, which no reading turns into `/admin`.
    attacks.push(("slashes (merge off)", "/public//../admin".to_string(), Forwarded));
    run_http1(&proxy, &upstream, &attacks, false, &mut Tally::default()).await;
}

// ---- hosts and absolute-form targets ------------------------------------------------

async fn host_proxy(upstream: &Upstream) -> Proxy {
    let rules = "[[rule]]\nname = \"admin-host\"\nhosts = [\"admin.example.com\"]\naction = \"deny\"\n[[rule]]\nname = \"rest\"\naction = \"allow\"\n";
    Proxy::with_rules(upstream, rules).await
}

#[tokio::test]
async fn host_and_absolute_form_attacks() {
    let upstream = Upstream::start().await;
    let proxy = host_proxy(&upstream).await;
    let attempts = [
        "GET http://admin.example.com/x HTTP/1.1\r\nHost: www.example.com\r\n",
        "GET https://admin.example.com/x HTTP/1.1\r\nHost: www.example.com\r\n",
        "GET /x HTTP/1.1\r\nHost: ADMIN.EXAMPLE.COM\r\n",
        "GET /x HTTP/1.1\r\nHost: admin.example.com.\r\n",
        "GET /x HTTP/1.1\r\nHost: admin.example.com:8080\r\n",
        "GET /x HTTP/1.1\r\nHost: admin.example.com.:80\r\n",
        "GET /x HTTP/1.1\r\nHost: www.example.com\r\nHost: admin.example.com\r\n",
        "GET /x HTTP/1.1\r\nHost: admin.example.com\r\nHost: www.example.com\r\n",
        "GET /x HTTP/1.1\r\nHost: www.example.com@admin.example.com\r\n",
        "GET /x HTTP/1.1\r\nHost: admin.example.com%2Fwww.example.com\r\n",
        "GET /x HTTP/1.1\r\nHost: admin.example.com \r\n",
        "GET /x HTTP/1.1\r\nHost: admin%2eexample.com\r\n",
        "GET http://admin.example.com@www.example.com/x HTTP/1.1\r\nHost: www.example.com\r\n",
        "GET /x HTTP/1.1\r\nhOsT: admin.example.com\r\n",
    ];
    for attempt in attempts {
        let before = upstream.hits();
        let response = proxy.raw(&format!("{attempt}Connection: close\r\n\r\n")).await;
        assert!(
            matches!(response.status, 400 | 403),
            "{attempt:?} got {}",
            response.status
        );
        assert_eq!(upstream.hits(), before, "{attempt:?} reached the upstream");
    }
    let mut client = H2Client::connect(proxy.address).await;
    for request in [
        Request::get("http://admin.example.com/x")
            .header("host", "www.example.com")
            .body(())
            .unwrap(),
        Request::get("http://www.example.com/x")
            .header("host", "admin.example.com")
            .body(())
            .unwrap(),
        Request::get("http://ADMIN.example.com./x").body(()).unwrap(),
        Request::get("/x")
            .header("host", "admin.example.com:443")
            .body(())
            .unwrap(),
    ] {
        let (status, _) = client.send(request).await;
        assert!(matches!(status.as_u16(), 400 | 403), "h2 got {status}");
    }
    assert_eq!(upstream.hits(), 0);
    // A near miss passes, with the Host the rules saw.
    let response = proxy
        .raw("GET /x HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(upstream.last().header("host").as_deref(), Some("www.example.com"));
}

// ---- client IP spoofing -------------------------------------------------------------

#[tokio::test]
async fn forwarding_headers_from_untrusted_peers_cannot_pick_the_client_ip() {
    let upstream = Upstream::start().await;
    let rules = "[[rule]]\nname = \"partners\"\nip = [\"203.0.113.0/24\"]\naction = \"allow\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    let spoofs = [
        "X-Forwarded-For: 203.0.113.5\r\n",
        "X-Forwarded-For: 203.0.113.5, 203.0.113.6\r\n",
        "X-Forwarded-For: 203.0.113.5\r\nX-Forwarded-For: 203.0.113.6\r\n",
        "Forwarded: for=203.0.113.5\r\n",
        "Forwarded: for=\"[2001:db8::1]\";proto=https, for=203.0.113.5\r\n",
        "X-Real-IP: 203.0.113.5\r\n",
        "True-Client-IP: 203.0.113.5\r\n",
        "CF-Connecting-IP: 203.0.113.5\r\n",
        "X-Client-IP: 203.0.113.5\r\n",
        "X-Forwarded-For: ::ffff:203.0.113.5\r\n",
        "Connection: x-forwarded-for\r\nX-Forwarded-For: 203.0.113.5\r\n",
    ];
    for spoof in spoofs {
        let response = proxy
            .raw(&format!(
                "GET /x HTTP/1.1\r\nHost: a\r\n{spoof}Connection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(response.status, 403, "{spoof:?}");
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_trusted_proxy_chain_cannot_be_extended_from_the_left() {
    let upstream = Upstream::start().await;
    let rules = "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n[[rule]]\nname = \"partners\"\nip = [\"203.0.113.0/24\"]\naction = \"allow\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    // The attacker (198.51.100.9) prepends a partner address; the walk from the right
    // stops at the first untrusted hop, which is the attacker.
    for chain in [
        "203.0.113.5, 198.51.100.9",
        "203.0.113.5, 198.51.100.9, 10.0.0.2",
        "203.0.113.5,198.51.100.9:4000",
    ] {
        let response = proxy
            .raw(&format!(
                "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: {chain}\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(response.status, 403, "{chain}");
    }
    assert_eq!(upstream.hits(), 0);
    // A garbage entry stops the walk at the last trusted hop, never at the attacker's pick.
    let response = proxy
        .raw("GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.5, not-an-ip\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(response.status, 403);
}

// ---- identity and hop-by-hop abuse ------------------------------------------------

#[tokio::test]
async fn identity_and_hop_by_hop_tricks_do_not_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, "[[rule]]\nname = \"all\"\naction = \"allow\"\n").await;
    proxy
        .raw("GET /x HTTP/1.1\r\nHost: a\r\nX-Portcullis-User: root\r\nx_portcullis_roles: admin\r\nX.Portcullis.User: root\r\nConnection: close, x-forwarded-proto, x-request-id\r\nX-Forwarded-Proto: https\r\nX-HTTP-Method-Override: DELETE\r\n\r\n")
        .await;
    let received = upstream.last();
    for name in [
        "x-portcullis-user",
        "x_portcullis_roles",
        "x.portcullis.user",
        "x-http-method-override",
    ] {
        assert!(received.header(name).is_none(), "{name}");
    }
    assert_eq!(received.header("x-forwarded-proto").as_deref(), Some("http"));
    assert!(received.header("x-request-id").is_some());
}

#[tokio::test]
async fn request_smuggling_shapes_are_refused() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, &rules("")).await;
    let attempts = [
        // Two different Content-Lengths.
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        // An obfuscated Transfer-Encoding.
        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        // Whitespace before the colon (HAProxy CVE-2019-18277 style).
        "GET /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        // An empty header name (HAProxy CVE-2023-25725).
        "GET /x HTTP/1.1\r\nHost: a\r\n: admin\r\n\r\n",
        // Transfer-Encoding on HTTP/1.0.
        "POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    for attempt in attempts {
        let response = proxy.raw(attempt).await;
        assert_eq!(response.status, 400, "{attempt:?}");
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn content_length_beside_chunked_is_dropped_and_the_connection_closed() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, &rules("")).await;
    // RFC 9112 6.3: chunked wins, Content-Length is removed, and the connection is not
    // reused, so the "GET /admin" hidden in the body is never read as a request.
    let response = proxy
        .raw("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    let received = upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].target, "/x");
    assert!(received[0].header("content-length").is_none_or(|length| length == "0"));
    assert!(received.iter().all(|r| !oracle::is_protected(&r.target, PROTECTED)));
}
