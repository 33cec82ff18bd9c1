//! Which credential a request presents, in SPEC order, and what the upstream keeps.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use http::HeaderMap;

use super::*;
use crate::identity::{ApiKey, ApiKeys, BasicConfig, Htpasswd, JwtConfig, KeySource, TrustedHeadersConfig};
use crate::rules::{IpRangeSet, parse_cidr};

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";

fn config(basic: bool, api_keys: bool, jwt: bool, trusted: bool) -> IdentityConfig {
    IdentityConfig {
        api_keys: if api_keys {
            ApiKeys::new(vec![ApiKey {
                name: "k".into(),
                digest: [0; 32],
                roles: vec![],
            }])
        } else {
            ApiKeys::default()
        },
        basic: basic.then(|| BasicConfig {
            htpasswd: Htpasswd::default(),
            file: "users.htpasswd".into(),
            roles: HashMap::new(),
        }),
        jwt: jwt.then(|| JwtConfig {
            keys: KeySource::File(Default::default()),
            algorithms: vec![jsonwebtoken::Algorithm::RS256],
            issuer: None,
            audience: vec![],
            roles_claim: vec!["roles".into()],
            user_claim: vec!["sub".into()],
            leeway: Duration::from_secs(60),
            cookie: Some("access_token".into()),
            origin: "p.toml:1:1".into(),
        }),
        trusted_headers: trusted.then(|| TrustedHeadersConfig {
            peers: IpRangeSet::new([parse_cidr("10.0.0.0/8").unwrap()]),
            user: "x-forwarded-user".parse().unwrap(),
            roles: Some("x-forwarded-groups".parse().unwrap()),
        }),
        ..IdentityConfig::default()
    }
}

fn all() -> IdentityConfig {
    config(true, true, true, true)
}

fn headers(list: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in list {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn outside() -> IpAddr {
    "192.0.2.1".parse().unwrap()
}

#[test]
fn basic_comes_first() {
    let map = headers(&[("authorization", &basic("alice", "pw")), ("x-api-key", "key")]);
    assert_eq!(
        read_credential(&map, outside(), &all()),
        Some(Credential::Basic {
            user: "alice".into(),
            password: "pw".into()
        })
    );
}

#[test]
fn a_bearer_jws_is_a_jwt_when_jwt_is_configured() {
    let map = headers(&[("authorization", &format!("Bearer {JWT}"))]);
    assert_eq!(
        read_credential(&map, outside(), &all()),
        Some(Credential::Jwt { token: JWT })
    );
}

#[test]
fn a_bearer_jws_is_an_api_key_without_jwt() {
    let map = headers(&[("authorization", &format!("Bearer {JWT}"))]);
    let config = config(false, true, false, false);
    assert_eq!(
        read_credential(&map, outside(), &config),
        Some(Credential::ApiKey { key: JWT })
    );
}

#[test]
fn a_bearer_non_jws_is_an_api_key() {
    let map = headers(&[("authorization", "Bearer pc_live_abc")]);
    assert_eq!(
        read_credential(&map, outside(), &all()),
        Some(Credential::ApiKey { key: "pc_live_abc" })
    );
}

#[test]
fn the_api_key_header_is_read_when_no_authorization() {
    let map = headers(&[("x-api-key", "pc_live_abc"), ("cookie", &format!("access_token={JWT}"))]);
    assert_eq!(
        read_credential(&map, outside(), &all()),
        Some(Credential::ApiKey { key: "pc_live_abc" })
    );
}

#[test]
fn the_jwt_cookie_is_read_after_headers() {
    let map = headers(&[("cookie", &format!("theme=dark; access_token={JWT}"))]);
    assert_eq!(
        read_credential(&map, outside(), &all()),
        Some(Credential::Jwt { token: JWT })
    );
}

#[test]
fn trusted_headers_only_from_trusted_peers() {
    let map = headers(&[("x-forwarded-user", "alice"), ("x-forwarded-groups", "admin, ops")]);
    let peer: IpAddr = "10.1.1.1".parse().unwrap();
    assert_eq!(
        read_credential(&map, peer, &all()),
        Some(Credential::Trusted {
            user: "alice".into(),
            roles: vec!["admin".into(), "ops".into()]
        })
    );
    assert_eq!(read_credential(&map, outside(), &all()), None);
}

#[test]
fn unconfigured_schemes_are_not_credentials() {
    let map = headers(&[("authorization", &basic("alice", "pw"))]);
    assert_eq!(
        read_credential(&map, outside(), &config(false, false, true, false)),
        None
    );
}

#[test]
fn malformed_basic_is_no_credential() {
    for value in ["Basic !!!", "Basic", "Basic Og==", "Basic bm9jb2xvbg=="] {
        let map = headers(&[("authorization", value)]);
        assert_eq!(
            read_credential(&map, outside(), &config(true, false, false, false)),
            None,
            "{value}"
        );
    }
}

#[test]
fn scheme_names_are_case_insensitive() {
    let map = headers(&[("authorization", "bEaReR pc_live_abc")]);
    assert_eq!(
        read_credential(&map, outside(), &all()),
        Some(Credential::ApiKey { key: "pc_live_abc" })
    );
}

#[test]
fn tokens_policy_strips_basic_and_api_keys_but_keeps_jwts() {
    let mut map = headers(&[("authorization", &basic("a", "b")), ("x-api-key", "k")]);
    strip_credentials(&mut map, &all(), ForwardCredentials::Tokens);
    assert!(map.is_empty());
    let mut jwt = headers(&[
        ("authorization", &format!("Bearer {JWT}")),
        ("cookie", &format!("access_token={JWT}")),
    ]);
    strip_credentials(&mut jwt, &all(), ForwardCredentials::Tokens);
    assert_eq!(jwt.len(), 2);
    let mut api_key = headers(&[("authorization", "Bearer pc_live_abc")]);
    strip_credentials(&mut api_key, &all(), ForwardCredentials::Tokens);
    assert!(api_key.is_empty());
}

#[test]
fn none_policy_strips_jwts_and_the_jwt_cookie_only() {
    let mut map = headers(&[
        ("authorization", &format!("Bearer {JWT}")),
        ("cookie", &format!("a=1; access_token={JWT}; b=2")),
    ]);
    strip_credentials(&mut map, &all(), ForwardCredentials::None);
    assert!(map.get("authorization").is_none());
    assert_eq!(map["cookie"], "a=1; b=2");
}

#[test]
fn all_policy_keeps_everything() {
    let mut map = headers(&[("authorization", &basic("a", "b")), ("x-api-key", "k")]);
    strip_credentials(&mut map, &all(), ForwardCredentials::All);
    assert_eq!(map.len(), 2);
}

#[test]
fn an_apps_own_authorization_passes_when_portcullis_does_not_read_it() {
    let mut map = headers(&[("authorization", &basic("a", "b"))]);
    strip_credentials(&mut map, &config(false, false, true, false), ForwardCredentials::Tokens);
    assert_eq!(map.len(), 1);
}
