//! Identity through the running proxy (SPEC §3 step 5, §6): API keys, HTTP Basic from
//! htpasswd files made by Apache `htpasswd`, JWTs signed by PyJWT (verified here by the
//! `jsonwebtoken` crate), trusted headers, lockout, and what the upstream is told.
//! Fixtures and the commands that made them: tests/fixtures/identity/README.md.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use common::{Proxy, RawResponse, Upstream};
use hmac::{KeyInit, Mac};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/identity");
const API_KEY: &str = "pc_live_213ee1bdb6ad9b698f27d44aafb4d3ee";
const API_KEY_SHA256: &str = "59c4923eec793b8ac7e789cdf38dbba1a6464ab45daeaca352d606bf435a138c";

fn token(name: &str) -> String {
    let tokens: HashMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/tokens.json")).unwrap()).unwrap();
    tokens[name].clone()
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn get(path: &str, headers: &[(&str, &str)]) -> String {
    let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n{extra}\r\n")
}

fn challenges(response: &RawResponse) -> Vec<String> {
    response
        .head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, value)| value.trim().to_string())
        .collect()
}

const RULES: &str = r#"
[[rule]]
name = "admin"
paths = ["/admin/**"]
action = "allow"
roles = ["admin"]

[[rule]]
name = "api"
paths = ["/api/**"]
action = "allow"
authenticated = true

[[rule]]
name = "public"
action = "allow"
"#;

fn api_keys() -> String {
    format!(
        "[[identity.api_keys]]\nname = \"ci-deployer\"\nsha256 = \"{API_KEY_SHA256}\"\nroles = [\"deployer\", \"admin\"]\n"
    )
}

fn basic_table(file: &str) -> String {
    format!(
        "[identity.basic]\nhtpasswd_file = \"{FIXTURES}/{file}\"\n[identity.basic.roles]\nalice = [\"admin\", \"editor\"]\ncarol = [\"admin\"]\n"
    )
}

fn jwt_table(extra: &str) -> String {
    format!(
        "[identity.jwt]\njwks_file = \"{FIXTURES}/jwks.json\"\nalgorithms = [\"RS256\", \"PS256\", \"ES256\", \"EdDSA\"]\nissuer = \"https://idp.test/\"\naudience = [\"portcullis-tests\"]\nroles_claim = \"realm_access.roles\"\ncookie = \"access_token\"\n{extra}"
    )
}

async fn proxy_with(upstream: &Upstream, identity: &str) -> Proxy {
    Proxy::with_rules(upstream, &format!("{identity}{RULES}")).await
}

async fn status_of(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> u16 {
    proxy.raw(&get(path, headers)).await.status
}

// ---- outcomes -------------------------------------------------------------------

#[tokio::test]
async fn a_gate_without_credentials_is_401_with_a_challenge_per_scheme() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(
        &upstream,
        &format!("{}{}", api_keys(), basic_table("users-cost5.htpasswd")),
    )
    .await;
    let response = proxy.raw(&get("/api/x", &[])).await;
    assert_eq!(response.status, 401);
    assert_eq!(
        challenges(&response),
        [
            "Basic realm=\"portcullis\", charset=\"UTF-8\"",
            "Bearer realm=\"portcullis\""
        ]
    );
    assert_eq!(response.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn open_routes_need_no_credentials() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &api_keys()).await;
    assert_eq!(status_of(&proxy, "/public", &[]).await, 200);
    assert!(upstream.last().header("x-portcullis-user").is_none());
}

#[tokio::test]
async fn a_missing_role_is_403() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &basic_table("users-cost5.htpasswd")).await;
    assert_eq!(
        status_of(
            &proxy,
            "/admin/x",
            &[("authorization", &basic("dave", "dave-password"))]
        )
        .await,
        403
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_hidden_role_rule_is_a_plain_404_identical_to_the_default() {
    let upstream = Upstream::start().await;
    let rules = format!(
        "{}[policy]\nhide = true\n[[rule]]\nname = \"admin\"\npaths = [\"/admin/**\"]\naction = \"allow\"\nroles = [\"admin\"]\nhide = true\n",
        api_keys()
    );
    let proxy = Proxy::with_rules(&upstream, &rules).await;
    let gate = proxy.raw(&get("/admin/x", &[("x-request-id", "same")])).await;
    let default = proxy.raw(&get("/nothing", &[("x-request-id", "same")])).await;
    assert_eq!(gate.status, 404);
    assert!(challenges(&gate).is_empty());
    assert_eq!(gate.body, default.body);
    let wrong = proxy
        .raw(&get("/admin/x", &[("x-request-id", "same"), ("x-api-key", "wrong")]))
        .await;
    assert_eq!(wrong.status, 404);
    assert_eq!(wrong.body, default.body);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn role_rules_without_identity_sources_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, format!("{}{RULES}", common::server_table("http://127.0.0.1:1"))).unwrap();
    let errors = portcullis::config::load(&path).unwrap_err().to_string();
    assert!(errors.contains("no [identity] source"), "{errors}");
}

#[tokio::test]
async fn roles_on_a_deny_rule_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    let text = format!(
        "{}{}[[rule]]\nname = \"x\"\naction = \"deny\"\nroles = [\"admin\"]\n",
        common::server_table("http://127.0.0.1:1"),
        api_keys()
    );
    std::fs::write(&path, text).unwrap();
    let errors = portcullis::config::load(&path).unwrap_err().to_string();
    assert!(errors.contains("only go on allow rules"), "{errors}");
}

// ---- API keys ---------------------------------------------------------------------

#[tokio::test]
async fn api_key_header_authenticates_and_is_not_forwarded() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &api_keys()).await;
    assert_eq!(status_of(&proxy, "/admin/deploy", &[("x-api-key", API_KEY)]).await, 200);
    let received = upstream.last();
    assert_eq!(received.header("x-portcullis-user").as_deref(), Some("ci-deployer"));
    assert_eq!(received.header("x-portcullis-roles").as_deref(), Some("deployer,admin"));
    assert!(
        received.header("x-api-key").is_none(),
        "API keys never reach the app by default"
    );
}

#[tokio::test]
async fn api_key_as_bearer_authenticates() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &api_keys()).await;
    let bearer = format!("Bearer {API_KEY}");
    assert_eq!(status_of(&proxy, "/api/x", &[("authorization", &bearer)]).await, 200);
    assert!(upstream.last().header("authorization").is_none());
}

#[tokio::test]
async fn a_wrong_api_key_is_401_invalid_token() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &api_keys()).await;
    let response = proxy.raw(&get("/api/x", &[("x-api-key", "pc_live_guess")])).await;
    assert_eq!(response.status, 401);
    assert_eq!(
        challenges(&response),
        ["Bearer realm=\"portcullis\", error=\"invalid_token\""]
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn an_invalid_credential_on_an_open_route_is_forwarded_anonymously() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &api_keys()).await;
    assert_eq!(
        status_of(&proxy, "/public", &[("x-api-key", "pc_live_guess")]).await,
        200
    );
    assert!(upstream.last().header("x-portcullis-user").is_none());
}

#[tokio::test]
async fn a_valid_credential_on_an_open_route_tells_the_upstream_who_called() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &api_keys()).await;
    assert_eq!(status_of(&proxy, "/public", &[("x-api-key", API_KEY)]).await, 200);
    assert_eq!(
        upstream.last().header("x-portcullis-user").as_deref(),
        Some("ci-deployer")
    );
}

// ---- HTTP Basic -------------------------------------------------------------------

#[tokio::test]
async fn basic_users_from_htpasswd_b_authenticate_at_cost_10_and_5() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &basic_table("users-cost10.htpasswd")).await;
    assert_eq!(
        status_of(
            &proxy,
            "/admin/x",
            &[("authorization", &basic("alice", "alice-password"))]
        )
        .await,
        200
    );
    assert_eq!(
        upstream.last().header("x-portcullis-roles").as_deref(),
        Some("admin,editor")
    );
    assert!(
        upstream.last().header("authorization").is_none(),
        "passwords never reach the app by default"
    );
    let cost5 = proxy_with(&upstream, &basic_table("users-cost5.htpasswd")).await;
    assert_eq!(
        status_of(&cost5, "/api/x", &[("authorization", &basic("dave", "dave-password"))]).await,
        200
    );
}

#[tokio::test]
async fn argon2id_users_authenticate() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &basic_table("users-cost10.htpasswd")).await;
    assert_eq!(
        status_of(
            &proxy,
            "/admin/x",
            &[("authorization", &basic("carol", "carol-password"))]
        )
        .await,
        200
    );
}

#[tokio::test]
async fn every_bcrypt_prefix_authenticates() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &basic_table("bcrypt-variants.htpasswd")).await;
    for user in ["erin", "frank", "grace"] {
        let credential = basic(user, &format!("{user}-password"));
        assert_eq!(
            status_of(&proxy, "/api/x", &[("authorization", &credential)]).await,
            200,
            "{user}"
        );
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_401_with_basic_challenge() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &basic_table("users-cost5.htpasswd")).await;
    for credential in [basic("dave", "wrong"), basic("mallory", "dave-password")] {
        let response = proxy.raw(&get("/api/x", &[("authorization", &credential)])).await;
        assert_eq!(response.status, 401);
        assert_eq!(challenges(&response), ["Basic realm=\"portcullis\", charset=\"UTF-8\""]);
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn weak_htpasswd_formats_are_config_errors_at_their_line() {
    for file in [
        "weak-md5.htpasswd",
        "weak-sha.htpasswd",
        "weak-crypt.htpasswd",
        "weak-plain.htpasswd",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            format!("{}{}", common::server_table("http://127.0.0.1:1"), basic_table(file)),
        )
        .unwrap();
        let errors = portcullis::config::load(&path).unwrap_err().to_string();
        assert!(errors.starts_with(&format!("{FIXTURES}/{file}:1:")), "{errors}");
        assert!(errors.contains("htpasswd -B -C 10"), "{errors}");
    }
}

// ---- JWT --------------------------------------------------------------------------

#[tokio::test]
async fn jwts_signed_by_pyjwt_authenticate_with_every_algorithm() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &jwt_table("")).await;
    for name in ["rs256_admin", "es256_admin", "eddsa_admin"] {
        let bearer = format!("Bearer {}", token(name));
        assert_eq!(
            status_of(&proxy, "/admin/x", &[("authorization", &bearer)]).await,
            200,
            "{name}"
        );
        let received = upstream.last();
        assert_eq!(received.header("x-portcullis-user").as_deref(), Some("alice"));
        assert_eq!(
            received.header("authorization"),
            Some(bearer),
            "JWTs are forwarded by default"
        );
    }
}

#[tokio::test]
async fn a_key_declaring_its_algorithm_verifies_only_that_algorithm() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &jwt_table("")).await;
    // rsa-1 is declared `alg: RS256` in jwks.json; a PS256 token under it is refused.
    let bearer = format!("Bearer {}", token("ps256_admin"));
    assert_eq!(status_of(&proxy, "/admin/x", &[("authorization", &bearer)]).await, 401);
}

#[tokio::test]
async fn an_rsa_key_without_declared_algorithm_verifies_ps256() {
    let upstream = Upstream::start().await;
    // The fixture JWKS with every `alg` member removed.
    let mut jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/jwks.json")).unwrap()).unwrap();
    for key in jwks["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("alg");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks-no-alg.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let table = jwt_table("").replace(&format!("{FIXTURES}/jwks.json"), file.to_str().unwrap());
    let proxy = proxy_with(&upstream, &table).await;
    for name in ["ps256_admin", "rs256_admin"] {
        let bearer = format!("Bearer {}", token(name));
        assert_eq!(
            status_of(&proxy, "/admin/x", &[("authorization", &bearer)]).await,
            200,
            "{name}"
        );
        let received = upstream.last();
        assert_eq!(received.header("x-portcullis-user").as_deref(), Some("alice"));
        assert_eq!(
            received.header("authorization"),
            Some(bearer),
            "JWTs are forwarded by default"
        );
    }
}

#[tokio::test]
async fn bad_jwts_are_401_invalid_token() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &jwt_table("")).await;
    for name in [
        "rs256_expired",
        "rs256_not_yet_valid",
        "rs256_no_exp",
        "rs256_wrong_iss",
        "rs256_wrong_aud",
        "rs256_wrong_key",
        "rs256_unknown_kid",
        "rs256_no_kid",
        "rs256_tampered",
        "alg_none",
        "hs256_with_rsa_kid",
        "hs256_admin",
    ] {
        let response = proxy
            .raw(&get("/api/x", &[("authorization", &format!("Bearer {}", token(name)))]))
            .await;
        assert_eq!(response.status, 401, "{name}");
        assert_eq!(
            challenges(&response),
            ["Bearer realm=\"portcullis\", error=\"invalid_token\""],
            "{name}"
        );
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_token_without_kid_is_accepted_from_a_single_key_set() {
    let upstream = Upstream::start().await;
    let single = jwt_table("")
        .replace("jwks.json", "jwks-single.json")
        .replace(", \"PS256\", \"ES256\", \"EdDSA\"", "");
    let proxy = proxy_with(&upstream, &single).await;
    let bearer = format!("Bearer {}", token("rs256_no_kid"));
    assert_eq!(status_of(&proxy, "/api/x", &[("authorization", &bearer)]).await, 200);
}

#[tokio::test]
async fn roles_come_from_the_configured_claim_path() {
    let upstream = Upstream::start().await;
    let namespaced = jwt_table("").replace(
        "roles_claim = \"realm_access.roles\"",
        "roles_claim = [\"https://example.com/claims\", \"roles\"]",
    );
    let proxy = proxy_with(&upstream, &namespaced).await;
    let bearer = format!("Bearer {}", token("rs256_admin"));
    assert_eq!(
        status_of(&proxy, "/admin/x", &[("authorization", &bearer)]).await,
        403,
        "ops is not admin"
    );
    assert_eq!(status_of(&proxy, "/api/x", &[("authorization", &bearer)]).await, 200);
    assert_eq!(upstream.last().header("x-portcullis-roles").as_deref(), Some("ops"));
}

#[tokio::test]
async fn roles_from_space_and_comma_separated_claims() {
    let upstream = Upstream::start().await;
    let scope = jwt_table("").replace("roles_claim = \"realm_access.roles\"", "roles_claim = \"scope\"");
    let proxy = proxy_with(&upstream, &scope).await;
    let bearer = format!("Bearer {}", token("rs256_scope_string"));
    assert_eq!(status_of(&proxy, "/admin/x", &[("authorization", &bearer)]).await, 200);
    let comma = jwt_table("").replace("roles_claim = \"realm_access.roles\"", "roles_claim = \"roles\"");
    let proxy = proxy_with(&upstream, &comma).await;
    let bearer = format!("Bearer {}", token("rs256_comma_roles"));
    assert_eq!(status_of(&proxy, "/admin/x", &[("authorization", &bearer)]).await, 200);
    assert_eq!(
        upstream.last().header("x-portcullis-roles").as_deref(),
        Some("admin,editor")
    );
}

#[tokio::test]
async fn the_jwt_cookie_authenticates() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &jwt_table("")).await;
    let cookie = format!("theme=dark; access_token={}", token("rs256_admin"));
    assert_eq!(status_of(&proxy, "/admin/x", &[("cookie", &cookie)]).await, 200);
}

#[tokio::test]
async fn a_jwt_is_never_tried_as_an_api_key() {
    let upstream = Upstream::start().await;
    let lockout = "[identity.lockout]\nfailures = 2\n";
    let proxy = proxy_with(&upstream, &format!("{}{}{lockout}", api_keys(), jwt_table(""))).await;
    let expired = format!("Bearer {}", token("rs256_expired"));
    for _ in 0..3 {
        assert_eq!(status_of(&proxy, "/api/x", &[("authorization", &expired)]).await, 401);
    }
    // An expired genuine JWT is not a guess; read as an API key it would have counted.
    let valid = format!("Bearer {}", token("rs256_admin"));
    assert_eq!(status_of(&proxy, "/api/x", &[("authorization", &valid)]).await, 200);
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// HS256 minted here, by hand (not by the crate under test), for expiry relative to now.
fn mint_hs256(claims: serde_json::Value) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let input = format!(
        "{}.{}",
        encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        encode(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"portcullis-test-hs256-secret-0123456789").unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", encode(&mac.finalize().into_bytes()))
}

fn hs_table() -> &'static str {
    "[identity.jwt]\nsecret_env = \"PORTCULLIS_TEST_JWT_SECRET\"\nalgorithms = [\"HS256\"]\nissuer = \"https://idp.test/\"\naudience = [\"portcullis-tests\"]\nroles_claim = \"realm_access.roles\"\nleeway = \"60s\"\n"
}

#[tokio::test]
async fn hs256_from_secret_env_with_leeway() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, hs_table()).await;
    let claims = |exp: u64| serde_json::json!({"sub": "hs-user", "iss": "https://idp.test/", "aud": "portcullis-tests", "exp": exp, "realm_access": {"roles": ["admin"]}});
    let fresh = format!("Bearer {}", mint_hs256(claims(now() + 300)));
    assert_eq!(status_of(&proxy, "/admin/x", &[("authorization", &fresh)]).await, 200);
    let within_leeway = format!("Bearer {}", mint_hs256(claims(now() - 30)));
    assert_eq!(
        status_of(&proxy, "/admin/x", &[("authorization", &within_leeway)]).await,
        200
    );
    let beyond_leeway = format!("Bearer {}", mint_hs256(claims(now() - 120)));
    assert_eq!(
        status_of(&proxy, "/admin/x", &[("authorization", &beyond_leeway)]).await,
        401
    );
    let pyjwt = format!("Bearer {}", token("hs256_admin"));
    assert_eq!(status_of(&proxy, "/api/x", &[("authorization", &pyjwt)]).await, 200);
    let wrong_secret = format!("Bearer {}", token("hs256_wrong_secret"));
    assert_eq!(
        status_of(&proxy, "/api/x", &[("authorization", &wrong_secret)]).await,
        401
    );
}

#[tokio::test]
async fn jwt_config_mistakes_are_errors() {
    let cases = [
        (jwt_table("").replace("\"RS256\", ", "\"none\", "), "never accepted"),
        (
            jwt_table("").replace("\"RS256\", ", "\"HS256\", "),
            "never accepted beside a JWKS",
        ),
        (
            hs_table().replace("PORTCULLIS_TEST_JWT_SECRET", "PORTCULLIS_TEST_SHORT_SECRET"),
            "at least 32",
        ),
        (
            hs_table().replace("PORTCULLIS_TEST_JWT_SECRET", "PORTCULLIS_UNSET_VARIABLE"),
            "is not set",
        ),
        (jwt_table("").replace("jwks.json", "missing.json"), "cannot read"),
        (jwt_table("").replace("jwks.json", "tokens.json"), "not a JWKS"),
        (
            jwt_table("jwks_url = \"http://idp.example/jwks\"\n"),
            "exactly one key source",
        ),
        (jwt_table("").replace("\"RS256\"", "\"RS999\""), "unknown algorithm"),
    ];
    for (table, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, format!("{}{table}", common::server_table("http://127.0.0.1:1"))).unwrap();
        let errors = portcullis::config::load(&path).unwrap_err().to_string();
        assert!(errors.contains(expected), "expected {expected:?} in {errors}");
        assert!(errors.contains(".toml:") || errors.contains(".json"), "{errors}");
    }
}

#[tokio::test]
async fn plain_http_jwks_urls_are_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    let table = "[identity.jwt]\njwks_url = \"http://idp.example/jwks\"\nalgorithms = [\"RS256\"]\n";
    std::fs::write(&path, format!("{}{table}", common::server_table("http://127.0.0.1:1"))).unwrap();
    let errors = portcullis::config::load(&path).unwrap_err().to_string();
    assert!(errors.contains("https"), "{errors}");
}

/// A JWKS server on loopback whose document can be swapped, counting fetches.
struct JwksServer {
    url: String,
    document: Arc<Mutex<Bytes>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(file: &str) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let document = Arc::new(Mutex::new(Bytes::from(
            std::fs::read(format!("{FIXTURES}/{file}")).unwrap(),
        )));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counter) = (Arc::clone(&document), Arc::clone(&fetches));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (served, counter) = (Arc::clone(&served), Arc::clone(&counter));
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let body = served.lock().unwrap().clone();
                        async move { Ok::<_, Infallible>(http::Response::new(Full::new(body))) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        JwksServer { url, document, fetches }
    }

    fn serve(&self, file: &str) {
        *self.document.lock().unwrap() = Bytes::from(std::fs::read(format!("{FIXTURES}/{file}")).unwrap());
    }

    fn table(&self) -> String {
        format!(
            "[identity.jwt]\njwks_url = \"{}\"\nalgorithms = [\"RS256\"]\nissuer = \"https://idp.test/\"\naudience = [\"portcullis-tests\"]\nroles_claim = \"realm_access.roles\"\n",
            self.url
        )
    }
}

#[tokio::test]
async fn jwks_url_is_fetched_at_start_and_an_unknown_kid_refetches_once() {
    let jwks = JwksServer::start("jwks-single.json").await;
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &jwks.table()).await;
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1, "fetched at start");
    let admin = format!("Bearer {}", token("rs256_admin"));
    assert_eq!(status_of(&proxy, "/admin/x", &[("authorization", &admin)]).await, 200);

    // The identity provider rotates its key: a token with the new kid triggers one refetch.
    jwks.serve("jwks-rotated.json");
    let rotated = format!("Bearer {}", token("rs256_rotated"));
    assert_eq!(status_of(&proxy, "/api/x", &[("authorization", &rotated)]).await, 200);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);

    // Another unknown kid within the minute does not refetch.
    let unknown = format!("Bearer {}", token("rs256_unknown_kid"));
    assert_eq!(status_of(&proxy, "/api/x", &[("authorization", &unknown)]).await, 401);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_jwks_url_fails_the_start() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    let table = format!("[identity.jwt]\njwks_url = \"http://{address}/jwks.json\"\nalgorithms = [\"RS256\"]\n");
    std::fs::write(
        &path,
        format!("{}{table}{RULES}", common::server_table("http://127.0.0.1:1")),
    )
    .unwrap();
    let config = portcullis::config::load(&path).unwrap();
    let error = portcullis::server::Server::start(config).await.unwrap_err().to_string();
    assert!(error.contains("cannot fetch"), "{error}");
}

// ---- trusted headers --------------------------------------------------------------

fn trusted_table(peers: &str) -> String {
    format!(
        "[identity.trusted_headers]\npeers = [\"{peers}\"]\nuser = \"x-forwarded-user\"\nroles = \"x-forwarded-groups\"\n"
    )
}

#[tokio::test]
async fn trusted_headers_from_a_trusted_peer_are_the_identity() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &trusted_table("127.0.0.1")).await;
    let status = status_of(
        &proxy,
        "/admin/x",
        &[("x-forwarded-user", "alice"), ("x-forwarded-groups", "admin,ops")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(upstream.last().header("x-portcullis-user").as_deref(), Some("alice"));
}

#[tokio::test]
async fn trusted_headers_from_anyone_else_are_ignored_removed_and_403() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &trusted_table("10.0.0.0/8")).await;
    let spoofed = [("x-forwarded-user", "alice"), ("x-forwarded-groups", "admin")];
    let response = proxy.raw(&get("/admin/x", &spoofed)).await;
    assert_eq!(
        response.status, 403,
        "only trusted headers configured: no challenge can help"
    );
    assert!(challenges(&response).is_empty());
    assert_eq!(
        status_of(
            &proxy,
            "/public",
            &[("X_Forwarded_User", "alice"), ("x-forwarded-groups", "admin")]
        )
        .await,
        200
    );
    let received = upstream.last();
    assert!(received.header("x-forwarded-user").is_none() && received.header("x_forwarded_user").is_none());
    assert!(received.header("x-forwarded-groups").is_none());
}

#[tokio::test]
async fn client_sent_identity_headers_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let proxy = proxy_with(&upstream, &api_keys()).await;
    let spoofed = [
        ("x-portcullis-user", "root"),
        ("X_Portcullis_User", "root"),
        ("x.portcullis.user", "root"),
        ("X-PORTCULLIS-ROLES", "admin"),
    ];
    assert_eq!(status_of(&proxy, "/public", &spoofed).await, 200);
    let received = upstream.last();
    for (name, _) in spoofed {
        assert!(
            received.header(&name.to_ascii_lowercase()).is_none(),
            "{name} reached the upstream"
        );
    }
}

// ---- forwarding credentials and preflights ----------------------------------------

#[tokio::test]
async fn forward_credentials_all_and_none() {
    let upstream = Upstream::start().await;
    let all = proxy_with(
        &upstream,
        &format!("{}[upstream_headers]\nforward_credentials = \"all\"\n", api_keys()),
    )
    .await;
    assert_eq!(status_of(&all, "/api/x", &[("x-api-key", API_KEY)]).await, 200);
    assert_eq!(upstream.last().header("x-api-key").as_deref(), Some(API_KEY));
    let none = proxy_with(
        &upstream,
        &format!("{}[upstream_headers]\nforward_credentials = \"none\"\n", jwt_table("")),
    )
    .await;
    let bearer = format!("Bearer {}", token("rs256_admin"));
    assert_eq!(status_of(&none, "/api/x", &[("authorization", &bearer)]).await, 200);
    assert!(upstream.last().header("authorization").is_none());
}

#[tokio::test]
async fn custom_upstream_header_names_are_set_and_protected() {
    let upstream = Upstream::start().await;
    let names = "[upstream_headers]\nuser = \"x-user\"\nroles = \"x-groups\"\n";
    let proxy = proxy_with(&upstream, &format!("{}{names}", api_keys())).await;
    assert_eq!(
        status_of(&proxy, "/api/x", &[("x-api-key", API_KEY), ("x_user", "root")]).await,
        200
    );
    let received = upstream.last();
    assert_eq!(received.header("x-user").as_deref(), Some("ci-deployer"));
    assert!(received.header("x_user").is_none());
}

#[tokio::test]
async fn preflights_skip_gates_only_with_allow_preflight() {
    let upstream = Upstream::start().await;
    let preflight = "OPTIONS /api/x HTTP/1.1\r\nHost: app.test\r\nOrigin: https://web.test\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n";
    let strict = proxy_with(&upstream, &api_keys()).await;
    assert_eq!(strict.raw(preflight).await.status, 401);
    let lenient = proxy_with(&upstream, &format!("[policy]\nallow_preflight = true\n{}", api_keys())).await;
    assert_eq!(lenient.raw(preflight).await.status, 200);
    let plain_options = "OPTIONS /api/x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
    assert_eq!(
        lenient.raw(plain_options).await.status,
        401,
        "only real preflights skip the gate"
    );
}

// ---- lockout ----------------------------------------------------------------------

#[tokio::test]
async fn repeated_failures_ban_the_client_with_429_before_verifying() {
    let upstream = Upstream::start().await;
    let lockout = "[identity.lockout]\nfailures = 3\nwindow = \"1m\"\nban = \"10m\"\n";
    let proxy = proxy_with(&upstream, &format!("{}{lockout}", basic_table("users-cost5.htpasswd"))).await;
    for _ in 0..3 {
        assert_eq!(
            status_of(&proxy, "/api/x", &[("authorization", &basic("dave", "guess"))]).await,
            401
        );
    }
    let banned = proxy
        .raw(&get("/api/x", &[("authorization", &basic("dave", "dave-password"))]))
        .await;
    assert_eq!(banned.status, 429, "banned even with the right password");
    let retry_after: u64 = banned.header("retry-after").unwrap().parse().unwrap();
    assert!((590..=600).contains(&retry_after), "{retry_after}");
    assert!(proxy.metrics().await.contains("portcullis_lockout_bans_total 1"));
    assert_eq!(
        status_of(&proxy, "/public", &[]).await,
        200,
        "without credentials a banned client is just anonymous"
    );
}

#[tokio::test]
async fn a_banned_client_on_a_hidden_rule_gets_the_404() {
    let upstream = Upstream::start().await;
    let rules = format!(
        "{}[identity.lockout]\nfailures = 1\n[[rule]]\nname = \"secret\"\npaths = [\"/secret/**\"]\naction = \"allow\"\nauthenticated = true\nhide = true\n",
        api_keys()
    );
    let proxy = Proxy::with_rules(&upstream, &rules).await;
    assert_eq!(status_of(&proxy, "/secret/x", &[("x-api-key", "guess")]).await, 404);
    assert_eq!(
        status_of(&proxy, "/secret/x", &[("x-api-key", API_KEY)]).await,
        404,
        "banned, and hidden"
    );
}

#[tokio::test]
async fn per_user_lockout_bans_the_user_name() {
    let upstream = Upstream::start().await;
    let lockout = "[identity.lockout]\nfailures = 2\nper_user = true\n";
    let proxy = proxy_with(&upstream, &format!("{}{lockout}", basic_table("users-cost5.htpasswd"))).await;
    for _ in 0..2 {
        assert_eq!(
            status_of(&proxy, "/api/x", &[("authorization", &basic("dave", "guess"))]).await,
            401
        );
    }
    assert!(
        proxy.metrics().await.contains("portcullis_lockout_bans_total 2"),
        "client and user banned"
    );
}

#[tokio::test]
async fn requests_denied_by_path_rules_never_verify_credentials() {
    let upstream = Upstream::start().await;
    let rules = format!(
        "{}[identity.lockout]\nfailures = 1\n[[rule]]\nname = \"closed\"\npaths = [\"/closed/**\"]\naction = \"deny\"\n{RULES}",
        basic_table("users-cost5.htpasswd")
    );
    let proxy = Proxy::with_rules(&upstream, &rules).await;
    assert_eq!(
        status_of(&proxy, "/closed/x", &[("authorization", &basic("dave", "guess"))]).await,
        403
    );
    // Had the wrong password been verified, this client would now be banned.
    assert_eq!(
        status_of(&proxy, "/api/x", &[("authorization", &basic("dave", "dave-password"))]).await,
        200
    );
}
