//! Why this bench exists: the decision runs on every request, and SPEC §5 promises its
//! cost does not grow with the number of rules or CIDRs. Each group compares a small
//! config with a large one, so a regression to a linear scan shows up as a ratio, not
//! as an absolute number on a noisy machine.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::request::Parts;
use portcullis::config::{self, Config};
use portcullis::path::{self, PathOptions};
use portcullis::request;
use portcullis::rules::{Caller, NoTrace};

/// A config with `cidrs` blocklisted /24s (in an ip_file) and `path_rules` deny rules,
/// then an allow-all rule: the shape of the load benchmark.
fn config_with(dir: &std::path::Path, cidrs: u32, path_rules: usize) -> Config {
    let mut list = String::with_capacity(cidrs as usize * 16);
    for i in 0..cidrs {
        let [a, b, c, _] = (0x2000_0000 + i * 256).to_be_bytes();
        list.push_str(&format!("{a}.{b}.{c}.0/24\n"));
    }
    std::fs::write(dir.join("block.txt"), list).unwrap();
    let mut text = String::from(
        "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    text.push_str("[[rule]]\nname = \"blocklist\"\nip_file = \"block.txt\"\naction = \"deny\"\n");
    for i in 0..path_rules {
        text.push_str(&format!(
            "[[rule]]\nname = \"deny-{i}\"\npaths = [\"/blocked-{i}/**\"]\naction = \"deny\"\n"
        ));
    }
    text.push_str("[[rule]]\nname = \"all\"\naction = \"allow\"\n");
    let path = dir.join("bench.toml");
    std::fs::write(&path, text).unwrap();
    config::load(&path).unwrap()
}

fn request_parts(path: &str) -> Parts {
    http::Request::get(path)
        .header("host", "app.example.com")
        .header("x-forwarded-for", "198.51.100.23")
        .header("user-agent", "bench")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn full_decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    let peer: IpAddr = "10.1.2.3".parse().unwrap();
    let parts = request_parts("/api/v1/items/42?expand=owner");
    for (cidrs, path_rules) in [(10, 10), (100_000, 200), (100_000, 2_000)] {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with(dir.path(), cidrs, path_rules);
        let policy = &config.policy;
        let trusted = &config.server.trusted_proxies;
        group.bench_with_input(
            BenchmarkId::new("normalize+client_ip+rules", format!("{cidrs}cidrs-{path_rules}paths")),
            &parts,
            |b, parts| {
                b.iter(|| {
                    let inspected = request::inspect(black_box(parts), peer, &policy.path_options, trusted).unwrap();
                    black_box(policy.decide(&inspected.facts, &Caller::Unresolved, &mut NoTrace))
                })
            },
        );
    }
    group.finish();
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

fn config_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    config_with(dir.path(), 100_000, 10);
    let path: PathBuf = dir.path().join("bench.toml");
    let mut group = c.benchmark_group("config_load");
    group.sample_size(10);
    group.bench_function("100k-line ip_file", |b| {
        b.iter(|| config::load(black_box(&path)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, full_decision, normalization, config_load);
criterion_main!(benches);
