//! SPEC §2 `[geoip]` and the `countries` / `asns` selectors over real sockets, with
//! MaxMind DB files written by Python's `mmdb-writer` (tests/fixtures/geoip/make.py):
//! IPv4, IPv6, IPv4-mapped IPv6 and unplaced clients; the client address from
//! X-Forwarded-For and from a PROXY header; spoofing from an untrusted peer; a database
//! replaced under the running binary; the access log and `explain`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::binary::{BIN, Running, free_port, request_stream};
use common::{Proxy, RawResponse, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/geoip");

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// Countries and ASNs in the fixtures (make.py): 198.51.100.0/24 DE (v1) or FR (v2),
/// AS64496; 203.0.113.0/24 KP, AS64511; 192.0.2.0/25 only a registered country (FR);
/// 192.0.2.128/25 a record with neither; 2001:db8:de::/48 DE, AS64496; 2001:db8:5::/48
/// US; everything else unplaced.
const RULES: &str = "\
[[rule]]\nname = \"embargo\"\ncountries = [\"KP\", \"ir\"]\naction = \"deny\"\n\
[[rule]]\nname = \"unplaced-admin\"\ncountries = [\"--\"]\npaths = [\"/admin/**\"]\naction = \"deny\"\nhide = true\n\
[[rule]]\nname = \"hosting-login\"\nasns = [64496]\npaths = [\"/login\"]\naction = \"deny\"\n\
[[rule]]\nname = \"rest\"\naction = \"allow\"\n";

fn geoip_table() -> String {
    format!("[geoip]\ncountry_database = \"{FIXTURES}/country-v1.mmdb\"\nasn_database = \"{FIXTURES}/asn.mmdb\"\n")
}

/// The proxy trusting loopback's X-Forwarded-For, plus a PROXY-protocol listener.
async fn geo_proxy(upstream: &Upstream) -> Proxy {
    Proxy::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         [[server.listener]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n{}{RULES}",
        upstream.url(),
        geoip_table()
    ))
    .await
}

async fn from(proxy: &Proxy, client: &str, path: &str) -> RawResponse {
    proxy
        .raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
        ))
        .await
}

#[tokio::test]
async fn an_ipv4_client_from_an_embargoed_country_is_denied() {
    let upstream = Upstream::start().await;
    let proxy = geo_proxy(&upstream).await;
    assert_eq!(from(&proxy, "203.0.113.9", "/").await.status, 403);
    assert_eq!(upstream.hits(), 0);
    assert_eq!(from(&proxy, "198.51.100.7", "/").await.status, 200);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn an_ipv6_client_is_placed_and_matched_by_asn() {
    let upstream = Upstream::start().await;
    let proxy = geo_proxy(&upstream).await;
    assert_eq!(from(&proxy, "2001:db8:de::1", "/login").await.status, 403);
    assert_eq!(from(&proxy, "[2001:db8:de::1]:4711", "/login").await.status, 403);
    assert_eq!(upstream.hits(), 0);
    assert_eq!(from(&proxy, "2001:db8:de::1", "/").await.status, 200);
    assert_eq!(from(&proxy, "2001:db8:5::1", "/login").await.status, 200, "US, no ASN");
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn an_ipv4_mapped_ipv6_client_is_looked_up_as_its_ipv4_address() {
    let upstream = Upstream::start().await;
    let proxy = geo_proxy(&upstream).await;
    assert_eq!(from(&proxy, "::ffff:203.0.113.9", "/").await.status, 403);
    assert_eq!(from(&proxy, "[::ffff:cb00:7109]:80", "/").await.status, 403);
    assert_eq!(
        from(&proxy, "::ffff:198.51.100.7", "/login").await.status,
        403,
        "AS64496"
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn unplaced_clients_match_the_unknown_country() {
    let upstream = Upstream::start().await;
    let proxy = geo_proxy(&upstream).await;
    for unplaced in ["192.0.2.200", "10.1.2.3", "2001:db8:ffff::1"] {
        assert_eq!(from(&proxy, unplaced, "/admin/x").await.status, 404, "{unplaced}");
    }
    let direct = proxy.get("/admin/x").await;
    assert_eq!(direct.status, 404, "127.0.0.1 itself is not in the database");
    assert_eq!(upstream.hits(), 0);
    assert_eq!(from(&proxy, "198.51.100.7", "/admin/x").await.status, 200);
}

#[tokio::test]
async fn a_record_with_only_a_registered_country_is_placed_there() {
    let upstream = Upstream::start().await;
    let proxy = geo_proxy(&upstream).await;
    assert_eq!(from(&proxy, "192.0.2.1", "/admin/x").await.status, 200, "FR, not --");
}

#[tokio::test]
async fn an_untrusted_peer_cannot_choose_its_country_with_x_forwarded_for() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&format!(
        "{}{}{RULES}",
        common::server_table(&upstream.url()),
        geoip_table()
    ))
    .await;
    for spoof in [
        "X-Forwarded-For: 198.51.100.7",
        "Forwarded: for=198.51.100.7",
        "X-Real-IP: 198.51.100.7",
        "CF-IPCountry: DE",
    ] {
        let response = proxy
            .raw(&format!(
                "GET /admin/x HTTP/1.1\r\nHost: app.test\r\n{spoof}\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(response.status, 404, "{spoof}");
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn the_address_in_a_proxy_header_is_the_one_looked_up() {
    let upstream = Upstream::start().await;
    let proxy = geo_proxy(&upstream).await;
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12, 203, 0, 113, 9, 127, 0, 0, 1, 0x9c, 0x40, 0x1f, 0x90]);
    let mut stream = tokio::net::TcpStream::connect(proxy.server.addresses()[1])
        .await
        .unwrap();
    stream.write_all(&header).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 403"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(upstream.hits(), 0);
}

/// The binary with a `countries = ["DE"]` allow rule and a copy of the v1 database.
async fn germany_only(dir: &Path, upstream: &Upstream) -> Running {
    std::fs::copy(fixture("country-v1.mmdb"), dir.join("country.mmdb")).unwrap();
    std::fs::copy(fixture("asn.mmdb"), dir.join("asn.mmdb")).unwrap();
    let config = dir.join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\nupstream = \"{}\"\n\
             trusted_proxies = [\"127.0.0.1/32\"]\n[log]\nformat = \"json\"\n\
             [geoip]\ncountry_database = \"country.mmdb\"\nasn_database = \"asn.mmdb\"\n\
             [[rule]]\nname = \"germany\"\ncountries = [\"DE\"]\naction = \"allow\"\n\
             [[rule]]\nname = \"not-hosting\"\nasns = [64511]\naction = \"deny\"\n",
            free_port(),
            free_port(),
            upstream.url()
        ),
    )
    .unwrap();
    Running::start(dir, &config).await
}

async fn status_from(running: &Running, client: &str) -> u16 {
    common::raw_exchange(
        running.proxy,
        format!("GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_database_is_swapped_in_without_a_failed_request() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let running = germany_only(dir.path(), &upstream).await;
    assert_eq!(status_from(&running, "198.51.100.7").await, 200);

    // A client keeps requesting over one keep-alive connection throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let (stream_task, failures, total) = request_stream(
        running.proxy,
        b"GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n",
        Arc::clone(&stop),
    );

    // What geoipupdate does: write the new file beside the old one, rename it over.
    let staged = dir.path().join("country.mmdb.tmp");
    std::fs::copy(fixture("country-v2.mmdb"), &staged).unwrap();
    std::fs::rename(&staged, dir.path().join("country.mmdb")).unwrap();
    running
        .wait_for("the new database (198.51.100.0/24 now FR)", async || {
            status_from(&running, "198.51.100.7").await == 403
        })
        .await;

    // A database rewritten in place is read again too, and nothing crashes.
    std::fs::write(
        dir.path().join("country.mmdb"),
        std::fs::read(fixture("country-v1.mmdb")).unwrap(),
    )
    .unwrap();
    running
        .wait_for("the rewritten database (DE again)", async || {
            status_from(&running, "198.51.100.7").await == 200
        })
        .await;

    stop.store(true, Ordering::SeqCst);
    stream_task.await.unwrap();
    let answered = total.load(Ordering::SeqCst) - failures.load(Ordering::SeqCst);
    assert!(answered > 10, "only {answered} requests were answered");
    assert_eq!(failures.load(Ordering::SeqCst), 0, "{}", running.logs());
    let metrics = running.metrics().await;
    let built = metrics
        .lines()
        .find_map(|line| line.strip_prefix("portcullis_geoip_database_build_timestamp_seconds{database=\"country\"} "))
        .unwrap_or_else(|| panic!("no build time metric:\n{metrics}"));
    assert!(built.parse::<i64>().unwrap() > 1_700_000_000, "{built}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_replacement_database_is_refused_and_the_old_one_keeps_serving() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let running = germany_only(dir.path(), &upstream).await;
    let bytes = std::fs::read(fixture("country-v2.mmdb")).unwrap();
    std::fs::write(dir.path().join("country.mmdb"), &bytes[..bytes.len() - 40]).unwrap();
    running
        .wait_for("the refused reload", async || {
            running
                .metrics()
                .await
                .contains("portcullis_config_reloads_total{result=\"failure\"} 1")
        })
        .await;
    assert_eq!(status_from(&running, "198.51.100.7").await, 200, "still the v1 answer");
    assert!(running.logs().contains("geoip.country_database"), "{}", running.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_shows_the_country_and_asn() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let running = germany_only(dir.path(), &upstream).await;
    assert_eq!(status_from(&running, "203.0.113.9").await, 403);
    assert_eq!(status_from(&running, "10.9.9.9").await, 403);
    running
        .wait_for("the access log lines", async || running.logs().contains("10.9.9.9"))
        .await;
    let events: Vec<serde_json::Value> = running
        .logs()
        .lines()
        .filter(|line| line.contains("\"access\""))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let korea = events.iter().find(|e| e["client_ip"] == "203.0.113.9").unwrap();
    assert_eq!(korea["country"], "KP");
    assert_eq!(korea["asn"], 64511);
    assert_eq!(korea["rule"], "not-hosting");
    let unplaced = events.iter().find(|e| e["client_ip"] == "10.9.9.9").unwrap();
    assert_eq!(unplaced["country"], "--");
    assert!(
        unplaced.get("asn").is_none(),
        "no ASN is logged when there is none: {unplaced}"
    );
}

fn explain(config: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(BIN)
        .arg("explain")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn explain_config(dir: &Path) -> PathBuf {
    let config = dir.join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\n{}{RULES}",
            geoip_table()
        ),
    )
    .unwrap();
    config
}

#[test]
fn explain_shows_the_country_and_asn_from_the_databases() {
    let dir = tempfile::tempdir().unwrap();
    let config = explain_config(dir.path());
    let text = explain(&config, &["--ip", "203.0.113.9", "/login"]);
    assert!(
        text.contains("location   country KP (GeoLite2-Country), AS64511 (GeoLite2-ASN)"),
        "{text}"
    );
    assert!(
        text.contains("decision   deny (answered 403): denied by rule \"embargo\""),
        "{text}"
    );
    let text = explain(&config, &["--ip", "2001:db8:de::1", "/login"]);
    assert!(
        text.contains("location   country DE (GeoLite2-Country), AS64496"),
        "{text}"
    );
    assert!(
        text.contains("embargo         no match       country not in its countries"),
        "{text}"
    );
    assert!(text.contains("hosting-login   matched"), "{text}");
}

#[test]
fn explain_accepts_a_stated_country_and_asn() {
    let dir = tempfile::tempdir().unwrap();
    let config = explain_config(dir.path());
    let text = explain(&config, &["--ip", "198.51.100.7", "--country", "ir", "/"]);
    assert!(
        text.contains("location   country IR (stated), AS64496 (GeoLite2-ASN)"),
        "{text}"
    );
    assert!(text.contains("denied by rule \"embargo\""), "{text}");
    let json: serde_json::Value = serde_json::from_str(&explain(
        &config,
        &["--ip", "10.0.0.1", "--asn", "64496", "--json", "/login"],
    ))
    .unwrap();
    assert_eq!(json["location"]["country"], "--");
    assert_eq!(json["location"]["asn"], 64496);
    assert_eq!(json["location"]["asn_source"], "stated");
    assert_eq!(json["decision"]["rule"], "hosting-login");
}

fn check(config: &Path) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("check")
        .arg("-c")
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn check_summarizes_the_databases_and_warns_about_a_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = explain_config(dir.path());
    let output = check(&config);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("GeoIP GeoLite2-Country (2 kB, built"), "{stdout}");
    assert!(stdout.contains("GeoLite2-ASN (2 kB, built"), "{stdout}");

    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("country-v1.mmdb", "country-stale.mmdb");
    std::fs::write(&config, text).unwrap();
    let output = check(&config);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "a stale database is a warning, not an error: {all}"
    );
    assert!(
        all.contains("country-stale.mmdb: warning: GeoIP database `GeoLite2-Country` was built"),
        "{all}"
    );
}

#[test]
fn check_refuses_an_unknown_country_code_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let config = explain_config(dir.path());
    let text = std::fs::read_to_string(&config).unwrap().replace("\"ir\"", "\"UK\"");
    std::fs::write(&config, text).unwrap();
    let output = check(&config);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|line| line.contains("\"UK\""))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(
            "portcullis.toml:{line}:20: rule \"embargo\".countries: `UK` is not an ISO 3166-1 alpha-2 country code (the United Kingdom is GB)"
        )),
        "{stderr}"
    );
}
