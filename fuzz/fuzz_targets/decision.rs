//! Fuzzes the decision path of a live request: `request::inspect` on an
//! arbitrary request head, then `Policy::decide` on a fixed policy.
//!
//! The request is built with `http::Request::builder()` from a structure that
//! `arbitrary` derives from the input bytes (method, target, Host headers, other
//! headers, HTTP version, peer address); heads the builder rejects are skipped.
//! Neither `inspect` nor `decide` may panic, and a decision must be consistent:
//!
//! * a request whose match key is `/admin` or under `/admin/` is never allowed
//!   by the final allow-all rule (the `/admin/**` deny rule comes first). The
//!   policy has no ungated allow rule for `/admin` at all, so such a request is
//!   never `Outcome::Allow`, and an anonymous caller is not allowed either;
//! * a client address in the blocklist is always denied by the blocklist rule;
//! * the indexed engine picks the same rule as the reference matcher
//!   (`Rule::matches`, first match in file order);
//! * the facts hold a canonical client address (no IPv4-mapped IPv6).
//!
//! The policy exists twice, loaded once each: with the default path options
//! (escaped slashes rejected, slashes merged, case kept) and with the lenient
//! ones (`escaped_slashes = "keep"`, `merge_slashes = false`,
//! `case_insensitive_paths = true`); the input picks one.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portcullis::config::Config;
use portcullis::rules::{Caller, NoTrace, Outcome};

/// The policy under test. Rule order matters: see the module docs.
const POLICY: &str = r#"
[server]
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:3000"
trusted_proxies = ["10.0.0.0/8", "fd00::/8"]

[policy]
default = "deny"
# PATH_OPTIONS

# Gated rules need an identity source; this key is "fuzz-key".
[[identity.api_keys]]
name = "fuzz"
sha256 = "231e9b2f757db8d48ecd0711b60135e1cc57a3a807be9dc12638856f17a7872c"
roles = ["admin"]

[[rule]]
name = "blocklist"
ip = ["100.64.0.0/10", "203.0.113.0/24", "2001:db8:bad::/48"]
action = "deny"

[[rule]]
name = "staging-hosts"
hosts = ["*.staging.example.com"]
action = "deny"
hide = true

[[rule]]
name = "admin-office"
hosts = ["admin.example.com", "*.internal.example.com"]
paths = ["/admin/**"]
ip = ["10.20.0.0/16", "192.0.2.0/24"]
action = "allow"
roles = ["admin"]

[[rule]]
name = "admin-closed"
paths = ["/admin/**"]
action = "deny"
hide = true

[[rule]]
name = "public-read"
methods = ["GET", "HEAD"]
paths = ["/", "/api/*/items", "/files/*.pdf"]
action = "allow"

[[rule]]
name = "no-trace"
methods = ["TRACE", "CONNECT"]
action = "deny"

[[rule]]
name = "allow-all"
action = "allow"
"#;

const LENIENT_PATHS: &str = r#"escaped_slashes = "keep"
merge_slashes = false
case_insensitive_paths = true"#;

const BLOCKLIST_RULE: usize = 0;

fn policy(lenient: bool) -> &'static Config {
    static STRICT: OnceLock<Config> = OnceLock::new();
    static LENIENT: OnceLock<Config> = OnceLock::new();
    let (cell, options) = if lenient {
        (&LENIENT, LENIENT_PATHS)
    } else {
        (&STRICT, "")
    };
    cell.get_or_init(|| {
        let text = POLICY.replace("# PATH_OPTIONS", options);
        let config = portcullis::config::load_text(Path::new("fuzz-policy.toml"), text)
            .unwrap_or_else(|errors| panic!("the embedded fuzz policy does not load:\n{errors}"));
        let names: Vec<&str> = config
            .policy
            .rules
            .rules()
            .iter()
            .map(|rule| rule.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "blocklist",
                "staging-hosts",
                "admin-office",
                "admin-closed",
                "public-read",
                "no-trace",
                "allow-all"
            ]
        );
        config
    })
}

#[derive(Debug, Arbitrary)]
enum HttpVersion {
    Http10,
    Http11,
    Http2,
}

#[derive(Debug, Arbitrary)]
enum Peer {
    V4([u8; 4]),
    V6([u8; 16]),
    /// An address in `trusted_proxies`, so `X-Forwarded-For` is walked.
    TrustedV4([u8; 3]),
    /// `::ffff:a.b.c.d`, which must be treated as the IPv4 address.
    MappedV4([u8; 4]),
}

impl Peer {
    fn address(&self) -> IpAddr {
        match *self {
            Peer::V4(octets) => IpAddr::V4(Ipv4Addr::from(octets)),
            Peer::V6(octets) => IpAddr::V6(Ipv6Addr::from(octets)),
            Peer::TrustedV4([a, b, c]) => IpAddr::V4(Ipv4Addr::new(10, a, b, c)),
            Peer::MappedV4(octets) => IpAddr::V6(Ipv4Addr::from(octets).to_ipv6_mapped()),
        }
    }
}

/// The request head, borrowed from the fuzzer's bytes (so strings and byte
/// strings cost one length byte each, not one byte per element).
#[derive(Debug, Arbitrary)]
struct Input<'a> {
    method: &'a str,
    target: &'a str,
    /// The `Host` header; `None` sends none (HTTP/1.0, HTTP/2 with an authority).
    host: Option<&'a str>,
    /// A second `Host` header (must be refused).
    second_host: Option<&'a str>,
    /// Other headers; values as bytes (not all are UTF-8).
    headers: Vec<(&'a str, &'a [u8])>,
    version: HttpVersion,
    peer: Peer,
    /// Use the policy with the lenient path options.
    lenient: bool,
}

fuzz_target!(|input: Input<'_>| {
    let config = policy(input.lenient);
    let policy = &config.policy;

    let version = match input.version {
        HttpVersion::Http10 => http::Version::HTTP_10,
        HttpVersion::Http11 => http::Version::HTTP_11,
        HttpVersion::Http2 => http::Version::HTTP_2,
    };
    let mut builder = http::Request::builder()
        .method(input.method)
        .uri(input.target)
        .version(version);
    for host in [input.host, input.second_host].into_iter().flatten() {
        builder = builder.header(http::header::HOST, host);
    }
    for &(name, value) in &input.headers {
        builder = builder.header(name, value);
    }
    let Ok(request) = builder.body(()) else {
        return; // not a request head http can represent
    };
    let (parts, ()) = request.into_parts();

    let peer = input.peer.address();
    let Ok(inspected) =
        portcullis::request::inspect(&parts, peer, &policy.path_options, &config.server.trusted_proxies)
    else {
        return; // a 400
    };
    let facts = &inspected.facts;
    let decision = policy.decide(facts, &Caller::Unresolved, &mut NoTrace);

    let context = || format!("input {input:?}\nfacts {facts:?}\ndecision {decision:?}");
    let rule_name = decision.rule.map(|id| policy.rule_name(id));

    // Canonical addresses only.
    for address in [facts.client_ip, facts.peer] {
        assert!(
            !matches!(address, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()),
            "an IPv4-mapped address reached the rules: {}",
            context()
        );
    }

    // The indexed engine agrees with the reference matcher (no rule here is
    // `audit = true`, so the first match decides).
    let reference = policy.rules.rules().iter().position(|rule| rule.matches(facts));
    assert_eq!(
        decision.rule,
        reference,
        "index and reference matcher disagree: {}",
        context()
    );

    // The property the proxy exists for.
    let key = facts.path.key.as_str();
    if key == "/admin" || key.starts_with("/admin/") {
        assert!(
            !(decision.outcome == Outcome::Allow && rule_name == Some("allow-all")),
            "an /admin request was allowed by the allow-all rule: {}",
            context()
        );
        assert_ne!(
            decision.outcome,
            Outcome::Allow,
            "an /admin request was allowed: {}",
            context()
        );
        let anonymous = policy.decide(facts, &Caller::Anonymous, &mut NoTrace);
        assert_ne!(
            anonymous.outcome,
            Outcome::Allow,
            "an anonymous /admin request was allowed: {}\nanonymous decision {anonymous:?}",
            context()
        );
    }

    // Blocklisted clients are denied by the blocklist, whatever they ask for.
    if is_blocklisted(facts.client_ip) {
        assert_eq!(
            decision.rule,
            Some(BLOCKLIST_RULE),
            "a blocklisted client got past: {}",
            context()
        );
        assert!(
            matches!(decision.outcome, Outcome::Deny { .. }),
            "a blocklisted client was not denied: {}",
            context()
        );
    }
});

/// Mirrors the blocklist rule's CIDRs, independently of the rule engine.
fn is_blocklisted(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            (a == 100 && (64..128).contains(&b)) || (a == 203 && b == 0 && c == 113)
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            segments[..3] == [0x2001, 0x0db8, 0x0bad]
        }
    }
}
