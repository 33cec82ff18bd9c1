//! Loading: defaults, every key, and an error with `FILE:LINE:COL` for each kind of
//! mistake.

use std::fs;
use std::path::PathBuf;

use super::super::{Config, ConfigErrors, load, load_text};
use crate::rules::{Action, Mode};

const MINIMAL: &str = "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\n";

fn load_in(dir: &tempfile::TempDir, text: &str) -> Result<Config, ConfigErrors> {
    let path = dir.path().join("portcullis.toml");
    fs::write(&path, text).unwrap();
    load(&path)
}

fn errors_of(text: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let errors = load_in(&dir, text).unwrap_err();
    let prefix = format!("{}/", dir.path().display());
    errors.0.iter().map(|e| e.to_string().replace(&prefix, "")).collect()
}

fn one_error(text: &str) -> String {
    let errors = errors_of(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let config = load_text(&PathBuf::from("p.toml"), MINIMAL.to_string()).unwrap();
    let server = &config.server;
    assert_eq!(server.listeners[0].address.to_string(), "127.0.0.1:8080");
    assert_eq!(server.upstream.authority.as_str(), "127.0.0.1:3000");
    assert_eq!(server.upstream.base_path, "");
    assert_eq!(server.max_connections, 10_000);
    assert_eq!(server.workers, 0);
    assert_eq!(server.max_request_body_bytes, None);
    assert_eq!(server.max_request_header_bytes, 32_768);
    assert_eq!(server.shutdown_grace.as_secs(), 30);
    assert_eq!(server.timeouts.request_header.as_secs(), 10);
    assert_eq!(server.timeouts.request_body.as_secs(), 30);
    assert_eq!(server.timeouts.upstream_connect.as_secs(), 5);
    assert_eq!(server.timeouts.upstream_response.as_secs(), 60);
    assert_eq!(server.timeouts.idle.as_secs(), 60);
    assert_eq!(config.policy.default_action, Action::Deny);
    assert_eq!(config.policy.mode, Mode::Enforce);
    assert!(config.policy.path_options.merge_slashes);
    assert!(config.log.access_log);
}

#[test]
fn every_server_key_is_read() {
    let text = r#"
[server]
listen = ["127.0.0.1:8080", "[::1]:8080"]
upstream = "http://app.internal:3000/base/"
admin_listen = "127.0.0.1:9901"
trusted_proxies = ["10.0.0.0/8", "192.0.2.1"]
max_connections = 5
workers = 2
max_request_body_bytes = 1048576
max_request_header_bytes = 4096
shutdown_grace = "2s"

[[server.listener]]
address = "127.0.0.1:8081"

[server.timeouts]
request_header = "750ms"
request_body = "1s"
upstream_connect = "2s"
upstream_response = "3s"
idle = "4s"
"#;
    let config = load_text(&PathBuf::from("p.toml"), text.to_string()).unwrap();
    let server = &config.server;
    let addresses: Vec<String> = server.listeners.iter().map(|l| l.address.to_string()).collect();
    assert_eq!(addresses, ["127.0.0.1:8080", "[::1]:8080", "127.0.0.1:8081"]);
    assert_eq!(server.upstream.base_path, "/base");
    assert_eq!(server.admin_listen.unwrap().to_string(), "127.0.0.1:9901");
    assert!(server.trusted_proxies.contains("10.9.9.9".parse().unwrap()));
    assert!(server.trusted_proxies.contains("192.0.2.1".parse().unwrap()));
    assert!(!server.trusted_proxies.contains("192.0.2.2".parse().unwrap()));
    assert_eq!((server.max_connections, server.workers), (5, 2));
    assert_eq!(server.max_request_body_bytes, Some(1_048_576));
    assert_eq!(server.max_request_header_bytes, 4096);
    assert_eq!(server.shutdown_grace.as_secs(), 2);
    assert_eq!(server.timeouts.request_header.as_millis(), 750);
    assert_eq!(server.timeouts.idle.as_secs(), 4);
}

#[test]
fn unknown_keys_are_errors_at_their_position() {
    let text = format!("{MINIMAL}\n[[rule]]\nname = \"a\"\nalow = true\naction = \"allow\"\n");
    let error = one_error(&text);
    assert!(
        error.starts_with("portcullis.toml:7:1: rule.alow: unknown field `alow`"),
        "{error}"
    );
}

#[test]
fn unknown_keys_in_server_are_errors() {
    let error = one_error("[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://a:1\"\nmax_conections = 3\n");
    assert!(
        error.starts_with("portcullis.toml:4:1: server.max_conections: unknown field"),
        "{error}"
    );
}

#[test]
fn wrong_types_are_errors_naming_the_key() {
    let error =
        one_error("[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://a:1\"\nmax_connections = \"many\"\n");
    assert!(
        error.starts_with("portcullis.toml:4:19: server.max_connections:"),
        "{error}"
    );
}

#[test]
fn bad_cidr_is_an_error_at_the_value() {
    let text =
        format!("{MINIMAL}[[rule]]\nname = \"block\"\nip = [\"10.0.0.0/8\", \"10.0.0.300\"]\naction = \"deny\"\n");
    let error = one_error(&text);
    assert!(
        error.starts_with("portcullis.toml:6:21: rule \"block\".ip: `10.0.0.300` is not an IP address"),
        "{error}"
    );
}

#[test]
fn duplicate_rule_names_are_errors() {
    let text =
        format!("{MINIMAL}[[rule]]\nname = \"a\"\naction = \"allow\"\n[[rule]]\nname = \"a\"\naction = \"deny\"\n");
    let error = one_error(&text);
    assert!(
        error.starts_with("portcullis.toml:8:8: rule.name: rule name `a` is already used by the rule at line 4"),
        "{error}"
    );
}

#[test]
fn bad_path_pattern_is_an_error() {
    let text = format!("{MINIMAL}[[rule]]\nname = \"a\"\npaths = [\"/admin**\"]\naction = \"deny\"\n");
    let error = one_error(&text);
    assert!(error.starts_with("portcullis.toml:6:10: rule \"a\".paths:"), "{error}");
    assert!(error.contains("whole segment"), "{error}");
}

#[test]
fn misspelled_action_is_an_error_listing_valid_values() {
    let text = format!("{MINIMAL}[[rule]]\nname = \"a\"\naction = \"alow\"\n");
    let error = one_error(&text);
    assert!(error.contains("rule.action"), "{error}");
    assert!(error.contains("allow") && error.contains("deny"), "{error}");
}

#[test]
fn missing_ip_file_is_an_error_at_the_key() {
    let text = format!("{MINIMAL}[[rule]]\nname = \"a\"\nip_file = \"nope.txt\"\naction = \"deny\"\n");
    let error = one_error(&text);
    assert!(
        error.starts_with("portcullis.toml:6:11: rule \"a\".ip_file: cannot read"),
        "{error}"
    );
}

#[test]
fn bad_ip_file_line_is_reported_at_that_files_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("block.txt"),
        "# blocklist\n10.0.0.0/8\n\n  192.0.2.0/33 # bad\n203.0.113.7\n",
    )
    .unwrap();
    let text = format!("{MINIMAL}[[rule]]\nname = \"a\"\nip_file = \"block.txt\"\naction = \"deny\"\n");
    let error = load_in(&dir, &text).unwrap_err().0.remove(0);
    assert_eq!(error.location.file, dir.path().join("block.txt"));
    assert_eq!((error.location.line, error.location.column), (4, 3));
}

#[test]
fn ip_file_entries_join_inline_ips() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("block.txt"), "10.0.0.0/8\n2001:db8::/32 # docs\n").unwrap();
    let text =
        format!("{MINIMAL}[[rule]]\nname = \"a\"\nip = [\"192.0.2.1\"]\nip_file = \"block.txt\"\naction = \"deny\"\n");
    let config = load_in(&dir, &text).unwrap();
    let nets = config.policy.rules.rules()[0].selectors.ips.as_ref().unwrap();
    assert_eq!(nets.len(), 3);
    assert!(config.files.contains(&dir.path().join("block.txt")));
}

#[test]
fn empty_selector_lists_are_errors() {
    let text = format!("{MINIMAL}[[rule]]\nname = \"a\"\nmethods = []\naction = \"deny\"\n");
    assert!(one_error(&text).contains("an empty `methods` list matches nothing"));
}

#[test]
fn lower_case_rule_methods_are_errors() {
    let text = format!("{MINIMAL}[[rule]]\nname = \"a\"\nmethods = [\"get\"]\naction = \"deny\"\n");
    assert!(one_error(&text).contains("upper-case"));
}

#[test]
fn missing_listener_is_an_error() {
    let error = one_error("[server]\nupstream = \"http://a:1\"\n");
    assert!(error.contains("no listener"), "{error}");
}

#[test]
fn missing_upstream_is_an_error() {
    let error = one_error("[server]\nlisten = \"127.0.0.1:8080\"\n");
    assert!(error.contains("upstream"), "{error}");
}

#[test]
fn bad_upstreams_are_errors() {
    for upstream in ["ftp://a", "http://a:1/x?y=1", "127.0.0.1:3000", "http://u:p@a:1"] {
        let text = format!("[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"{upstream}\"\n");
        let error = one_error(&text);
        assert!(
            error.starts_with("portcullis.toml:3:12: server.upstream:"),
            "{upstream}: {error}"
        );
    }
}

#[test]
fn bad_durations_are_errors() {
    let error = one_error(
        "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://a:1\"\n[server.timeouts]\nidle = \"60\"\n",
    );
    assert!(
        error.starts_with("portcullis.toml:5:8: server.timeouts.idle:"),
        "{error}"
    );
    let zero = one_error(
        "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://a:1\"\n[server.timeouts]\nidle = \"0s\"\n",
    );
    assert!(zero.contains("longer than zero"), "{zero}");
}

#[test]
fn duplicate_listen_addresses_are_errors() {
    let error = one_error("[server]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:8080\"]\nupstream = \"http://a:1\"\n");
    assert!(error.contains("listed twice"), "{error}");
}

#[test]
fn proxy_protocol_without_trusted_proxies_is_an_error_at_the_flag() {
    let error = one_error(
        "[server]\nupstream = \"http://a:1\"\n[[server.listener]]\naddress = \"127.0.0.1:8080\"\nproxy_protocol = true\n",
    );
    assert!(
        error.starts_with("portcullis.toml:5:18: server.listener.proxy_protocol:"),
        "{error}"
    );
    assert!(error.contains("trusted_proxies"), "{error}");
}

#[test]
fn several_errors_are_all_reported() {
    let text = format!("{MINIMAL}[[rule]]\nname = \"a\"\nip = [\"nope\"]\npaths = [\"x\"]\naction = \"deny\"\n");
    assert_eq!(errors_of(&text).len(), 2);
}

#[test]
fn custom_responses_are_read_with_their_content_type() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("404.html"), "<h1>not here</h1>").unwrap();
    let text = format!("{MINIMAL}[responses]\n\"404\" = \"404.html\"\n");
    assert!(load_in(&dir, &text).is_ok());
    let error = errors_of(&format!("{MINIMAL}[responses]\n\"200\" = \"404.html\"\n")).remove(0);
    assert!(error.contains("not a status portcullis writes"), "{error}");
}

#[test]
fn policy_keys_are_read() {
    let text = format!(
        "{MINIMAL}[policy]\ndefault = \"allow\"\nhide = true\nmode = \"audit\"\ncase_insensitive_paths = true\nescaped_slashes = \"keep\"\nmerge_slashes = false\nexplain_denials = true\n"
    );
    let config = load_text(&PathBuf::from("p.toml"), text).unwrap();
    let policy = &config.policy;
    assert_eq!(policy.default_action, Action::Allow);
    assert!(policy.default_hide && policy.explain_denials);
    assert_eq!(policy.mode, Mode::Audit);
    assert!(policy.path_options.case_insensitive && !policy.path_options.merge_slashes);
}

#[test]
fn rules_inherit_policy_hide() {
    let text = format!(
        "{MINIMAL}[policy]\nhide = true\n[[rule]]\nname = \"a\"\naction = \"deny\"\n[[rule]]\nname = \"b\"\nhide = false\naction = \"deny\"\n"
    );
    let config = load_text(&PathBuf::from("p.toml"), text).unwrap();
    let rules = config.policy.rules.rules();
    assert!(rules[0].hide && !rules[1].hide);
}

#[test]
fn a_hundred_thousand_line_ip_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = String::new();
    for i in 0..100_000u32 {
        let [a, b, c, _] = (0x0a00_0000 + i * 256).to_be_bytes();
        list.push_str(&format!("{a}.{b}.{c}.0/24\n"));
    }
    fs::write(dir.path().join("big.txt"), list).unwrap();
    let text = format!("{MINIMAL}[[rule]]\nname = \"big\"\nip_file = \"big.txt\"\naction = \"deny\"\n");
    let config = load_in(&dir, &text).unwrap();
    assert_eq!(
        config.policy.rules.rules()[0].selectors.ips.as_ref().unwrap().len(),
        100_000
    );
}

#[test]
fn policy_tests_are_compiled_with_defaults() {
    let text = format!(
        "{MINIMAL}[[rule]]\nname = \"all\"\naction = \"allow\"\n[[test]]\nname = \"t\"\nrequest = \"GET /x\"\nexpect = 200\n"
    );
    let config = load_text(&PathBuf::from("p.toml"), text).unwrap();
    let test = &config.tests[0];
    assert_eq!(test.client_ip.to_string(), "192.0.2.1");
    assert_eq!(test.peer, test.client_ip);
    assert_eq!(test.origin.line, 7);
}

#[test]
fn policy_test_mistakes_are_errors() {
    let base = format!("{MINIMAL}[[rule]]\nname = \"all\"\naction = \"allow\"\n");
    for (case, expected) in [
        (
            "request = \"GET\"\nexpect = 200",
            "should be a method and a URL or path",
        ),
        (
            "request = \"GET ftp://x/\"\nexpect = 200",
            "must be an http(s) URL or a path",
        ),
        (
            "request = \"GET /\"\nexpect = 302",
            "expect 200 (forwarded), 400, 401, 403 or 404",
        ),
        (
            "request = \"GET /\"\nexpect = 200\nrule = \"nope\"",
            "there is no rule named `nope`",
        ),
        ("request = \"GET /\"\nexpect = 200\nip = \"x\"", "is not an IP address"),
        (
            "request = \"GET /\"\nexpect = 200\nsurprise = 1",
            "unknown field `surprise`",
        ),
    ] {
        let error = one_error(&format!("{base}[[test]]\nname = \"t\"\n{case}\n"));
        assert!(error.contains(expected), "{case}: {error}");
    }
}

#[test]
fn failing_policy_tests_make_the_config_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{MINIMAL}[[rule]]\nname = \"all\"\naction = \"allow\"\n[[test]]\nname = \"closed\"\nrequest = \"GET /x\"\nexpect = 403\nrule = \"all\"\n"
    );
    let path = dir.path().join("p.toml");
    fs::write(&path, text).unwrap();
    assert!(load(&path).is_ok(), "loading alone does not run the cases");
    let errors = super::super::load_and_test(&path).unwrap_err();
    let error = errors.0[0].to_string();
    assert!(
        error.ends_with("p.toml:7:1: test \"closed\": expected 403 (rule \"all\"), got 200 (rule \"all\")"),
        "{error}"
    );
}

const TLS_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

fn tls_config(listener: &str, tls: &str) -> String {
    format!("[server]\nupstream = \"http://127.0.0.1:3000\"\n{listener}{tls}")
}

#[test]
fn tls_listeners_load_the_certificate() {
    let text = tls_config(
        "[[server.listener]]\naddress = \"127.0.0.1:8443\"\ntls = true\n",
        &format!(
            "[server.tls]\ncert_file = \"{TLS_FIXTURES}/server-ec-chain.pem\"\nkey_file = \"{TLS_FIXTURES}/server-ec-key.pem\"\n"
        ),
    );
    let config = load_text(&PathBuf::from("p.toml"), text).unwrap();
    assert!(config.server.listeners[0].tls);
    assert!(config.server.tls.is_some());
}

#[test]
fn a_tls_listener_without_a_certificate_is_an_error() {
    let error = one_error(&tls_config(
        "[[server.listener]]\naddress = \"127.0.0.1:8443\"\ntls = true\n",
        "",
    ));
    assert!(error.contains("there is no [server.tls]"), "{error}");
}

#[test]
fn a_certificate_without_a_tls_listener_is_an_error() {
    let text = tls_config(
        "listen = \"127.0.0.1:8080\"\n",
        &format!(
            "[server.tls]\ncert_file = \"{TLS_FIXTURES}/server-ec-chain.pem\"\nkey_file = \"{TLS_FIXTURES}/server-ec-key.pem\"\n"
        ),
    );
    assert!(one_error(&text).contains("no listener uses it"));
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_an_error_at_the_certificate() {
    let text = tls_config(
        "[[server.listener]]\naddress = \"127.0.0.1:8443\"\ntls = true\n",
        &format!(
            "[server.tls]\ncert_file = \"{TLS_FIXTURES}/server-ec-chain.pem\"\nkey_file = \"{TLS_FIXTURES}/server-rsa-key.pem\"\n"
        ),
    );
    let error = one_error(&text);
    assert!(
        error.starts_with("portcullis.toml:7:13: server.tls: the private key does not belong"),
        "{error}"
    );
}

#[test]
fn upstream_tls_needs_an_https_upstream_and_a_usable_ca() {
    let plain = format!("{MINIMAL}[upstream_tls]\nca_file = \"{TLS_FIXTURES}/ca.pem\"\n");
    assert!(one_error(&plain).contains("only applies to https://"));
    let https = MINIMAL.replace("http://127.0.0.1:3000", "https://localhost:3443");
    let good = format!("{https}[upstream_tls]\nca_file = \"{TLS_FIXTURES}/ca.pem\"\n");
    let config = load_text(&PathBuf::from("p.toml"), good).unwrap();
    assert_eq!(config.server.upstream.tls_roots.unwrap().len(), 1);
    let bad = format!("{https}[upstream_tls]\nca_file = \"{TLS_FIXTURES}/make.sh\"\n");
    assert!(one_error(&bad).contains("upstream_tls.ca_file"));
}

const GEOIP_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/geoip");

fn geoip_config(rest: &str) -> String {
    format!(
        "{MINIMAL}[geoip]\ncountry_database = \"{GEOIP_FIXTURES}/country-v1.mmdb\"\nasn_database = \"{GEOIP_FIXTURES}/asn.mmdb\"\n{rest}"
    )
}

#[test]
fn country_and_asn_rules_load_with_their_databases() {
    let config = load_text(
        &PathBuf::from("p.toml"),
        geoip_config(
            "[[rule]]\nname = \"embargo\"\ncountries = [\"kp\", \"IR\", \"--\"]\naction = \"deny\"\n\
             [[rule]]\nname = \"hosting\"\nasns = [64496]\npaths = [\"/login\"]\naction = \"deny\"\n",
        ),
    )
    .unwrap();
    let rules = config.policy.rules.rules();
    let codes: Vec<String> = rules[0]
        .selectors
        .countries
        .as_ref()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(codes, ["KP", "IR", "--"]);
    assert_eq!(rules[1].selectors.asns, Some(vec![64496]));
    assert!(config.geoip.looks_up_country() && config.geoip.looks_up_asn());
    assert!(config.files.iter().any(|file| file.ends_with("country-v1.mmdb")));
    assert!(config.files.iter().any(|file| file.ends_with("asn.mmdb")));
}

#[test]
fn databases_no_rule_uses_are_not_looked_up() {
    let config = load_text(&PathBuf::from("p.toml"), geoip_config("")).unwrap();
    assert!(!config.geoip.looks_up_country() && !config.geoip.looks_up_asn());
    assert_eq!(
        config.geoip.locate("198.51.100.7".parse().unwrap()),
        crate::rules::Location::default()
    );
}

#[test]
fn country_and_asn_mistakes_are_errors_at_their_position() {
    for (rule, expected) in [
        (
            "countries = [\"UK\"]",
            "p.toml:9:14: rule \"r\".countries: `UK` is not an ISO 3166-1 alpha-2 country code (the United Kingdom is GB)",
        ),
        (
            "countries = [\"DEU\"]",
            "p.toml:9:14: rule \"r\".countries: `DEU` is not an ISO 3166-1",
        ),
        (
            "countries = []",
            "p.toml:9:13: rule \"r\".countries: an empty `countries` list matches nothing",
        ),
        (
            "asns = [0]",
            "p.toml:9:9: rule \"r\".asns: `0` is not an autonomous system number",
        ),
        (
            "asns = [4294967296]",
            "p.toml:9:9: rule \"r\".asns: `4294967296` is not an autonomous system number",
        ),
    ] {
        let text = geoip_config(&format!("[[rule]]\nname = \"r\"\n{rule}\naction = \"deny\"\n"));
        let errors = load_text(&PathBuf::from("p.toml"), text).unwrap_err();
        let error = errors.0[0].to_string();
        assert!(error.starts_with(expected), "{rule}: {error}");
    }
}

#[test]
fn country_and_asn_rules_without_their_database_are_errors() {
    assert!(
        one_error(&format!(
            "{MINIMAL}[[rule]]\nname = \"r\"\ncountries = [\"DE\"]\naction = \"deny\"\n"
        ))
        .ends_with("portcullis.toml:6:13: rule \"r\".countries: `countries` needs `[geoip] country_database`")
    );
    let only_country = format!(
        "{MINIMAL}[geoip]\ncountry_database = \"{GEOIP_FIXTURES}/country-v1.mmdb\"\n[[rule]]\nname = \"r\"\nasns = [64496]\naction = \"deny\"\n"
    );
    assert!(
        one_error(&only_country).ends_with("portcullis.toml:8:8: rule \"r\".asns: `asns` needs `[geoip] asn_database`")
    );
}

#[test]
fn unusable_databases_are_errors_at_their_key() {
    for (key, file, expected) in [
        ("country_database", "missing.mmdb", "cannot read"),
        ("country_database", "make.py", "is not a valid MaxMind DB file"),
        (
            "country_database",
            "asn.mmdb",
            "is a `GeoLite2-ASN` database, which has no country records",
        ),
        ("asn_database", "country-v1.mmdb", "has no autonomous system records"),
    ] {
        let error = one_error(&format!("{MINIMAL}[geoip]\n{key} = \"{GEOIP_FIXTURES}/{file}\"\n"));
        assert!(error.contains("portcullis.toml:5:"), "{error}");
        assert!(error.contains(&format!("geoip.{key}: ")), "{error}");
        assert!(error.contains(expected), "{key} = {file}: {error}");
    }
}

#[test]
fn policy_tests_use_the_database_unless_they_state_a_country_or_asn() {
    let rules = "[[rule]]\nname = \"embargo\"\ncountries = [\"KP\"]\naction = \"deny\"\n\
                 [[rule]]\nname = \"hosting\"\nasns = [64496]\naction = \"deny\"\n\
                 [[rule]]\nname = \"rest\"\naction = \"allow\"\n";
    let cases = [
        ("ip = \"203.0.113.9\"", 403, "embargo"),
        ("ip = \"198.51.100.7\"", 403, "hosting"),
        ("ip = \"192.0.2.200\"", 200, "rest"),
        ("ip = \"192.0.2.200\"\ncountry = \"kp\"", 403, "embargo"),
        ("ip = \"203.0.113.9\"\ncountry = \"DE\"", 200, "rest"),
        ("ip = \"192.0.2.200\"\nasn = 64496", 403, "hosting"),
    ];
    let mut text = geoip_config(rules);
    for (index, (stated, expect, rule)) in cases.iter().enumerate() {
        text.push_str(&format!(
            "[[test]]\nname = \"case {index}\"\nrequest = \"GET /\"\n{stated}\nexpect = {expect}\nrule = \"{rule}\"\n"
        ));
    }
    let config = load_text(&PathBuf::from("p.toml"), text.clone()).unwrap();
    assert_eq!(crate::policy_tests::failures(&config), Vec::new());
    let wrong = text.replace("country = \"DE\"\nexpect = 200", "country = \"DE\"\nexpect = 403");
    let config = load_text(&PathBuf::from("p.toml"), wrong).unwrap();
    let failures = crate::policy_tests::failures(&config);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0]
            .to_string()
            .contains("expected 403 (rule \"rest\"), got 200")
    );
}

#[test]
fn policy_test_country_and_asn_mistakes_are_errors() {
    let base = geoip_config("");
    for (case, expected) in [
        ("country = \"XX\"", "test \"t\".country: `XX` is not an ISO 3166-1"),
        ("asn = -5", "test \"t\".asn: `-5` is not an autonomous system number"),
    ] {
        let error = one_error(&format!(
            "{base}[[test]]\nname = \"t\"\nrequest = \"GET /\"\n{case}\nexpect = 200\n"
        ));
        assert!(error.contains(expected), "{case}: {error}");
    }
}
