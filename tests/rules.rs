//! Rules through the running proxy: every selector, the SPEC §5 pattern table, first
//! match, defaults and hiding. Every denial asserts the upstream saw nothing.

mod common;

use common::{H2Client, Proxy, Upstream};
use http::Request;

/// Asserts a denial with `status` and that the upstream's hit count did not move.
async fn assert_denied(proxy: &Proxy, upstream: &Upstream, request: &str, status: u16) {
    let before = upstream.hits();
    let response = proxy.raw(request).await;
    assert_eq!(response.status, status, "{request:?} → {}", response.head);
    assert_eq!(upstream.hits(), before, "{request:?} reached the upstream");
}

async fn assert_forwarded(proxy: &Proxy, upstream: &Upstream, request: &str) {
    let before = upstream.hits();
    let response = proxy.raw(request).await;
    assert_eq!(response.status, 200, "{request:?} → {}", response.head);
    assert_eq!(upstream.hits(), before + 1, "{request:?} did not reach the upstream");
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
}

fn request(method: &str, path: &str, host: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n")
}

#[tokio::test]
async fn default_deny_answers_403_and_forwards_nothing() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, "").await;
    assert_denied(&proxy, &upstream, &get("/anything"), 403).await;
}

#[tokio::test]
async fn default_allow_forwards_unmatched_requests() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, "[policy]\ndefault = \"allow\"\n").await;
    assert_forwarded(&proxy, &upstream, &get("/anything")).await;
}

#[tokio::test]
async fn hidden_default_deny_answers_404() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::with_rules(&upstream, "[policy]\nhide = true\n").await;
    assert_denied(&proxy, &upstream, &get("/anything"), 404).await;
}

#[tokio::test]
async fn first_matching_rule_wins() {
    let upstream = Upstream::start().await;
    let rules = r#"
[[rule]]
name = "deny-admin"
paths = ["/admin/**"]
action = "deny"
[[rule]]
name = "allow-all"
action = "allow"
"#;
    let proxy = Proxy::with_rules(&upstream, rules).await;
    assert_denied(&proxy, &upstream, &get("/admin/users"), 403).await;
    assert_forwarded(&proxy, &upstream, &get("/public")).await;
}

#[tokio::test]
async fn ip_selector_uses_the_peer_address() {
    let upstream = Upstream::start().await;
    let rules = "[[rule]]\nname = \"loopback-only\"\nip = [\"127.0.0.0/8\"]\naction = \"allow\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    assert_forwarded(&proxy, &upstream, &get("/x")).await;

    let elsewhere = "[[rule]]\nname = \"office\"\nip = [\"10.0.0.0/8\"]\naction = \"allow\"\n";
    let proxy = Proxy::with_rules(&upstream, elsewhere).await;
    assert_denied(&proxy, &upstream, &get("/x"), 403).await;
}

#[tokio::test]
async fn ip_file_blocklist_denies_listed_clients() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    common::write_file(dir.path(), "block.txt", "# the blocklist\n192.0.2.0/24\n127.0.0.1\n");
    let toml = format!(
        "{}[[rule]]\nname = \"blocklist\"\nip_file = \"block.txt\"\naction = \"deny\"\n[[rule]]\nname = \"all\"\naction = \"allow\"\n",
        common::server_table(&upstream.url())
    );
    let proxy = Proxy::start_in(dir, &toml).await;
    assert_denied(&proxy, &upstream, &get("/x"), 403).await;
}

#[tokio::test]
async fn ip_selector_sees_client_ip_from_trusted_proxy() {
    let upstream = Upstream::start().await;
    let toml = format!(
        "{}trusted_proxies = [\"127.0.0.1\"]\n[[rule]]\nname = \"blocklist\"\nip = [\"203.0.113.0/24\"]\naction = \"deny\"\n[[rule]]\nname = \"all\"\naction = \"allow\"\n",
        common::server_table(&upstream.url())
    );
    let proxy = Proxy::start(&toml).await;
    assert_denied(
        &proxy,
        &upstream,
        &request("GET", "/x", "app.test", "X-Forwarded-For: 203.0.113.7\r\n"),
        403,
    )
    .await;
    assert_forwarded(
        &proxy,
        &upstream,
        &request("GET", "/x", "app.test", "X-Forwarded-For: 198.51.100.7\r\n"),
    )
    .await;
}

#[tokio::test]
async fn xff_from_untrusted_peer_cannot_unblock_or_block() {
    let upstream = Upstream::start().await;
    let rules = "[[rule]]\nname = \"block-loopback\"\nip = [\"127.0.0.0/8\"]\naction = \"deny\"\n[[rule]]\nname = \"all\"\naction = \"allow\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    assert_denied(
        &proxy,
        &upstream,
        &request("GET", "/x", "app.test", "X-Forwarded-For: 198.51.100.7\r\n"),
        403,
    )
    .await;
}

#[tokio::test]
async fn method_selector_admits_listed_methods_and_head_with_get() {
    let upstream = Upstream::start().await;
    let rules = "[[rule]]\nname = \"reads\"\nmethods = [\"GET\"]\naction = \"allow\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    assert_forwarded(&proxy, &upstream, &request("GET", "/x", "app.test", "")).await;
    assert_forwarded(&proxy, &upstream, &request("HEAD", "/x", "app.test", "")).await;
    assert_denied(
        &proxy,
        &upstream,
        &request("POST", "/x", "app.test", "Content-Length: 0\r\n"),
        403,
    )
    .await;
    assert_denied(&proxy, &upstream, &request("DELETE", "/x", "app.test", ""), 403).await;
}

#[tokio::test]
async fn host_selector_matches_exact_and_wildcard_hosts() {
    let upstream = Upstream::start().await;
    let rules =
        "[[rule]]\nname = \"sites\"\nhosts = [\"admin.example.com\", \"*.internal.example.com\"]\naction = \"allow\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    for host in [
        "admin.example.com",
        "ADMIN.Example.com",
        "admin.example.com.",
        "admin.example.com:8443",
        "a.internal.example.com",
        "a.b.internal.example.com",
    ] {
        assert_forwarded(&proxy, &upstream, &request("GET", "/", host, "")).await;
    }
    for host in [
        "www.example.com",
        "internal.example.com",
        "admin.example.com.evil.test",
        "xadmin.example.com",
    ] {
        assert_denied(&proxy, &upstream, &request("GET", "/", host, ""), 403).await;
    }
}

#[tokio::test]
async fn host_rules_hold_over_http2() {
    let upstream = Upstream::start().await;
    let rules = "[[rule]]\nname = \"admin-host\"\nhosts = [\"admin.example.com\"]\naction = \"deny\"\n[[rule]]\nname = \"all\"\naction = \"allow\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    let mut client = H2Client::connect(proxy.address).await;
    let denied = Request::get("http://admin.example.com/x").body(()).unwrap();
    assert_eq!(client.send(denied).await.0, 403);
    let via_host_header = Request::get("/x").header("host", "Admin.Example.com").body(()).unwrap();
    assert_eq!(client.send(via_host_header).await.0, 403);
    assert_eq!(upstream.hits(), 0);
    let allowed = Request::get("http://www.example.com/x").body(()).unwrap();
    assert_eq!(client.send(allowed).await.0, 200);
    assert_eq!(upstream.last().header("host").as_deref(), Some("www.example.com"));
}

#[tokio::test]
async fn spec_pattern_table_through_the_proxy() {
    let upstream = Upstream::start().await;
    let table: &[(&str, &[&str], &[&str])] = &[
        ("/admin", &["/admin"], &["/admin/", "/admin/x", "/administrator"]),
        ("/admin/", &["/admin/"], &["/admin"]),
        ("/admin/**", &["/admin", "/admin/", "/admin/x/y"], &["/administrator"]),
        ("/api/*/items", &["/api/v1/items"], &["/api/items", "/api/v1/v2/items"]),
        ("/files/*.pdf", &["/files/a.pdf"], &["/files/a/b.pdf"]),
    ];
    for (pattern, matches, misses) in table {
        let rules = format!(
            "[[rule]]\nname = \"protected\"\npaths = [\"{pattern}\"]\naction = \"deny\"\n[[rule]]\nname = \"rest\"\naction = \"allow\"\n"
        );
        let proxy = Proxy::with_rules(&upstream, &rules).await;
        for path in *matches {
            assert_denied(&proxy, &upstream, &get(path), 403).await;
        }
        for path in *misses {
            assert_forwarded(&proxy, &upstream, &get(path)).await;
        }
    }
}

#[tokio::test]
async fn every_selector_of_a_rule_must_match() {
    let upstream = Upstream::start().await;
    let rules = r#"
[[rule]]
name = "narrow"
ip = ["127.0.0.1"]
methods = ["POST"]
hosts = ["api.example.com"]
paths = ["/orders/**"]
action = "allow"
"#;
    let proxy = Proxy::with_rules(&upstream, rules).await;
    assert_forwarded(
        &proxy,
        &upstream,
        &request("POST", "/orders/1", "api.example.com", "Content-Length: 0\r\n"),
    )
    .await;
    assert_denied(
        &proxy,
        &upstream,
        &request("GET", "/orders/1", "api.example.com", ""),
        403,
    )
    .await;
    assert_denied(
        &proxy,
        &upstream,
        &request("POST", "/orders/1", "www.example.com", "Content-Length: 0\r\n"),
        403,
    )
    .await;
    assert_denied(
        &proxy,
        &upstream,
        &request("POST", "/invoices/1", "api.example.com", "Content-Length: 0\r\n"),
        403,
    )
    .await;
}

#[tokio::test]
async fn hidden_rule_answers_404_identical_to_hidden_default() {
    let upstream = Upstream::start().await;
    let rules = r#"
[policy]
hide = true
[[rule]]
name = "secret"
paths = ["/secret/**"]
action = "deny"
hide = true
[[rule]]
name = "public"
paths = ["/public/**"]
action = "allow"
"#;
    let proxy = Proxy::with_rules(&upstream, rules).await;
    let by_rule = proxy
        .raw(&request("GET", "/secret/x", "app.test", "X-Request-Id: same\r\n"))
        .await;
    let by_default = proxy
        .raw(&request("GET", "/nothing", "app.test", "X-Request-Id: same\r\n"))
        .await;
    assert_eq!(by_rule.status, 404);
    assert_eq!(by_rule.body, by_default.body);
    let strip_date = |head: &str| {
        head.lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip_date(&by_rule.head), strip_date(&by_default.head));
    assert!(by_rule.header("www-authenticate").is_none());
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn denial_bodies_do_not_name_the_rule_unless_asked() {
    let upstream = Upstream::start().await;
    let rules = "[[rule]]\nname = \"secret-rule-name\"\naction = \"deny\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    let response = proxy.get("/x").await;
    assert!(!response.body_text().contains("secret-rule-name"));
    let explained = Proxy::with_rules(&upstream, &format!("[policy]\nexplain_denials = true\n{rules}")).await;
    assert!(explained.get("/x").await.body_text().contains("secret-rule-name"));
}

#[tokio::test]
async fn audit_mode_forwards_what_rules_would_deny_and_counts_it() {
    let upstream = Upstream::start().await;
    let rules =
        "[policy]\nmode = \"audit\"\n[[rule]]\nname = \"would-deny\"\npaths = [\"/admin/**\"]\naction = \"deny\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    assert_forwarded(&proxy, &upstream, &get("/admin/x")).await;
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("portcullis_requests_total{decision=\"audit\",status=\"200\",rule=\"would-deny\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn audit_rule_is_logged_and_skipped() {
    let upstream = Upstream::start().await;
    let rules = "[[rule]]\nname = \"trial\"\npaths = [\"/x\"]\naction = \"deny\"\naudit = true\n[[rule]]\nname = \"all\"\naction = \"allow\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    assert_forwarded(&proxy, &upstream, &get("/x")).await;
    assert!(
        proxy
            .metrics()
            .await
            .contains("decision=\"audit\",status=\"200\",rule=\"trial\"")
    );
}

#[tokio::test]
async fn denials_are_counted_by_rule() {
    let upstream = Upstream::start().await;
    let rules = "[[rule]]\nname = \"block\"\npaths = [\"/x\"]\naction = \"deny\"\n";
    let proxy = Proxy::with_rules(&upstream, rules).await;
    proxy.get("/x").await;
    proxy.get("/y").await;
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("portcullis_requests_total{decision=\"deny\",status=\"403\",rule=\"block\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_requests_total{decision=\"deny\",status=\"403\",rule=\"\"} 1"),
        "{metrics}"
    );
}
