//! Why this bench exists: the decision runs on every request, and SPEC §5 promises its
//! cost does not grow with the number of rules or CIDRs. The matrix compares 10, 1,000
//! and 100,000 blocklisted CIDRs against 10, 200 and 2,000 path rules, so a regression
//! to a linear scan shows up as a ratio, not as an absolute number on a noisy machine.
//! The identity group adds what a credential costs on top (API key, cached Basic, JWT
//! RS256), the GeoIP group what a country rule costs (database lookup included), and
//! the rest covers normalization and config loading.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::request::Parts;
use portcullis::config::{self, Config};
use portcullis::identity::{Credential, Identity, KeySource, VerifiedCache, read_credential};
use portcullis::path::{self, PathOptions};
use portcullis::request;
use portcullis::rules::{Caller, NoTrace};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/identity");
const GEOIP_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/geoip");

/// What a bench config holds besides the blocklist and path rules.
#[derive(Clone, Copy, Default)]
struct Extras {
    /// An authenticated `/api/**` rule and every identity source.
    identity: bool,
    /// `[geoip]` with the bench country database and an embargo rule first.
    country_rule: bool,
}

/// A config with `cidrs` blocklisted /24s (in an ip_file), `path_rules` deny rules, an
/// authenticated `/api/**` rule and a country rule when `extras` ask, then allow-all:
/// the shape of the load benchmark.
fn config_with(dir: &Path, cidrs: u32, path_rules: usize, extras: Extras) -> Config {
    let identity = extras.identity;
    let mut list = String::with_capacity(cidrs as usize * 16);
    for i in 0..cidrs {
        let [a, b, c, _] = (0x2000_0000 + i * 256).to_be_bytes();
        list.push_str(&format!("{a}.{b}.{c}.0/24\n"));
    }
    std::fs::write(dir.join("block.txt"), list).unwrap();
    let mut text = String::from(
        "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    if identity {
        text.push_str(&format!(
            "[[identity.api_keys]]\nname = \"ci\"\nsha256 = \"59c4923eec793b8ac7e789cdf38dbba1a6464ab45daeaca352d606bf435a138c\"\n\
             [identity.basic]\nhtpasswd_file = \"{FIXTURES}/users-cost10.htpasswd\"\n\
             [identity.jwt]\njwks_file = \"{FIXTURES}/jwks.json\"\nalgorithms = [\"RS256\"]\nissuer = \"https://idp.test/\"\n\
             audience = [\"portcullis-tests\"]\nroles_claim = \"realm_access.roles\"\n"
        ));
    }
    if extras.country_rule {
        text.push_str(&format!(
            "[geoip]\ncountry_database = \"{GEOIP_FIXTURES}/bench-country.mmdb\"\n\
             [[rule]]\nname = \"embargo\"\ncountries = [\"KP\", \"IR\", \"--\"]\naction = \"deny\"\n"
        ));
    }
    text.push_str("[[rule]]\nname = \"blocklist\"\nip_file = \"block.txt\"\naction = \"deny\"\n");
    for i in 0..path_rules {
        text.push_str(&format!(
            "[[rule]]\nname = \"deny-{i}\"\npaths = [\"/blocked-{i}/**\"]\naction = \"deny\"\n"
        ));
    }
    if identity {
        text.push_str("[[rule]]\nname = \"api\"\npaths = [\"/api/**\"]\naction = \"allow\"\nauthenticated = true\n");
    }
    text.push_str("[[rule]]\nname = \"all\"\naction = \"allow\"\n");
    let path = dir.join("bench.toml");
    std::fs::write(&path, text).unwrap();
    config::load(&path).unwrap()
}

fn request_parts(path: &str, credential: Option<(&str, &str)>) -> Parts {
    let mut builder = http::Request::get(path)
        .header("host", "app.example.com")
        .header("x-forwarded-for", "198.51.100.23")
        .header("user-agent", "bench");
    if let Some((name, value)) = credential {
        builder = builder.header(name, value);
    }
    builder.body(()).unwrap().into_parts().0
}

const PEER: &str = "10.1.2.3";

/// Normalize, client IP from X-Forwarded-For, rules: what every request costs.
fn decision_matrix(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    let peer: IpAddr = PEER.parse().unwrap();
    let parts = request_parts("/api/v1/items/42?expand=owner", None);
    for cidrs in [10, 1_000, 100_000] {
        for path_rules in [10, 200, 2_000] {
            let dir = tempfile::tempdir().unwrap();
            let config = config_with(dir.path(), cidrs, path_rules, Extras::default());
            let policy = &config.policy;
            let trusted = &config.server.trusted_proxies;
            group.bench_with_input(
                BenchmarkId::new("normalize+client_ip+rules", format!("{cidrs}cidrs-{path_rules}paths")),
                &parts,
                |b, parts| {
                    b.iter(|| {
                        let inspected =
                            request::inspect(black_box(parts), peer, &policy.path_options, trusted).unwrap();
                        black_box(policy.decide(&inspected.facts, &Caller::Unresolved, &mut NoTrace))
                    })
                },
            );
        }
    }
    group.finish();
}

/// A gated request with each kind of credential: the decision, the credential read and
/// verified (Basic from the verification cache), and the second decision.
fn decision_with_identity(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        100_000,
        200,
        Extras {
            identity: true,
            ..Extras::default()
        },
    );
    let policy = &config.policy;
    let identity = &config.identity;
    let trusted = &config.server.trusted_proxies;
    let peer: IpAddr = PEER.parse().unwrap();
    let tokens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/tokens.json")).unwrap()).unwrap();
    let jwt = format!("Bearer {}", tokens["rs256_admin"].as_str().unwrap());
    let basic = format!("Basic {}", base64_encode(b"alice:alice-password"));
    let cache = VerifiedCache::new(10_000, Duration::from_secs(300));
    let alice = identity.basic.as_ref().unwrap().htpasswd.get("alice").unwrap();
    cache.insert(cache.key("alice", alice, "alice-password"), Instant::now());

    let mut group = c.benchmark_group("decision_with_identity");
    for (name, header, value) in [
        ("api key", "x-api-key", "pc_live_213ee1bdb6ad9b698f27d44aafb4d3ee"),
        ("cached basic", "authorization", basic.as_str()),
        ("jwt rs256", "authorization", jwt.as_str()),
    ] {
        let parts = request_parts("/api/v1/items/42", Some((header, value)));
        group.bench_function(BenchmarkId::new("100000cidrs-200paths", name), |b| {
            b.iter(|| {
                let inspected = request::inspect(black_box(&parts), peer, &policy.path_options, trusted).unwrap();
                let first = policy.decide(&inspected.facts, &Caller::Unresolved, &mut NoTrace);
                let credential = read_credential(&parts.headers, inspected.facts.peer, identity).unwrap();
                let verified: Identity = match &credential {
                    Credential::ApiKey { key } => identity.api_keys.verify(key).unwrap(),
                    Credential::Basic { user, password } => {
                        let entry = identity.basic.as_ref().unwrap().htpasswd.get(user).unwrap();
                        assert!(cache.contains(&cache.key(user, entry, password), Instant::now()));
                        Identity {
                            user: user.clone(),
                            roles: Vec::new(),
                            scheme: portcullis::identity::Scheme::Basic,
                        }
                    }
                    Credential::Jwt { token } => {
                        let jwt = identity.jwt.as_ref().unwrap();
                        let header = jwt.header(token).unwrap();
                        let KeySource::File(keys) = &jwt.keys else {
                            unreachable!()
                        };
                        let key = keys.select(header.kid.as_deref(), header.alg).unwrap().unwrap();
                        jwt.verify_with(token, header.alg, key).unwrap()
                    }
                    Credential::Trusted { .. } => unreachable!(),
                };
                black_box(first);
                black_box(policy.decide(&inspected.facts, &Caller::Known(&verified), &mut NoTrace))
            })
        });
    }
    group.finish();
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn normalization(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    let options = PathOptions::default();
    for (name, input) in [
        ("typical", "/api/v1/items/42"),
        ("encoded", "/api/v1/it%65ms/%C3%A9t%C3%A9"),
        (
            "hostile",
            "/a/./b/../../%2e%2e/c//d;x=1/%61dmin/./././../admin/users/../../x",
        ),
    ] {
        group.bench_function(name, |b| b.iter(|| path::normalize(black_box(input), &options)));
    }
    group.finish();
}

/// The same request with and without a country rule in front (one run, so the ratio
/// is the figure): the lookup in the in-memory database plus the country index. And
/// the lookup alone, for an IPv4 and an IPv6 client.
fn decision_with_country_rule(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision_with_geoip");
    let peer: IpAddr = PEER.parse().unwrap();
    let parts = request_parts("/api/v1/items/42?expand=owner", None);
    for (name, country_rule) in [("without-country-rule", false), ("country-rule", true)] {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with(
            dir.path(),
            100_000,
            200,
            Extras {
                country_rule,
                ..Extras::default()
            },
        );
        let policy = &config.policy;
        let trusted = &config.server.trusted_proxies;
        // The client must really be looked up (and placed), or this measures nothing.
        let placed = config.geoip.locate("198.51.100.23".parse().unwrap()).country;
        assert_eq!(placed.as_str(), if country_rule { "DE" } else { "--" });
        if country_rule {
            let v6 = config.geoip.locate("2a00:1450:4001::1".parse().unwrap()).country;
            assert_eq!(v6.as_str(), "DE");
        }
        group.bench_function(BenchmarkId::new("100000cidrs-200paths", name), |b| {
            b.iter(|| {
                let mut inspected = request::inspect(black_box(&parts), peer, &policy.path_options, trusted).unwrap();
                inspected.facts.location = config.geoip.locate(inspected.facts.client_ip);
                black_box(policy.decide(&inspected.facts, &Caller::Unresolved, &mut NoTrace))
            })
        });
        if country_rule {
            for client in ["198.51.100.23", "2a00:1450:4001::1"] {
                let ip: IpAddr = client.parse().unwrap();
                group.bench_function(BenchmarkId::new("locate", client), |b| {
                    b.iter(|| black_box(config.geoip.locate(black_box(ip))))
                });
            }
        }
    }
    group.finish();
}

fn config_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    config_with(dir.path(), 100_000, 10, Extras::default());
    let path: PathBuf = dir.path().join("bench.toml");
    let mut group = c.benchmark_group("config_load");
    group.sample_size(10);
    group.bench_function("100k-line ip_file", |b| {
        b.iter(|| config::load(black_box(&path)).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    decision_matrix,
    decision_with_identity,
    decision_with_country_rule,
    normalization,
    config_load
);
criterion_main!(benches);
