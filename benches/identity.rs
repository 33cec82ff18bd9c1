//! Why this bench exists: the cost of one password verification is what the Basic
//! verification cache saves on every keep-alive request, and what a guessing client
//! can make the proxy spend; JWT and API-key verification run inline on the workers.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::identity::{ApiKey, ApiKeys, Htpasswd, VerifiedCache, verify_password};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/identity");

fn password_verification(c: &mut Criterion) {
    let text = std::fs::read_to_string(format!("{FIXTURES}/users-cost10.htpasswd")).unwrap();
    let htpasswd = Htpasswd::parse(&text).unwrap();
    let alice = htpasswd.get("alice").unwrap();
    let mut group = c.benchmark_group("basic");
    group.sample_size(10);
    group.bench_function("bcrypt cost 10 verify", |b| {
        b.iter(|| verify_password(Some(black_box(alice)), "alice-password"))
    });
    group.finish();

    let cache = VerifiedCache::new(10_000, std::time::Duration::from_secs(300));
    let key = cache.key("alice", alice, "alice-password");
    cache.insert(key, Instant::now());
    c.bench_function("basic/cached verification (key + lookup)", |b| {
        b.iter(|| {
            let key = cache.key("alice", black_box(alice), "alice-password");
            cache.contains(&key, Instant::now())
        })
    });
}

fn api_keys(c: &mut Criterion) {
    let keys = ApiKeys::new(
        (0..10)
            .map(|i| ApiKey {
                name: format!("key-{i}"),
                digest: [i as u8; 32],
                roles: vec![],
            })
            .collect(),
    );
    c.bench_function("api_key/verify among 10", |b| {
        b.iter(|| keys.verify(black_box("pc_live_not_a_key")))
    });
}

criterion_group!(benches, password_verification, api_keys);
criterion_main!(benches);
