//! The raw layer: serde types that mirror the TOML file one to one.
//!
//! Nothing here is validated beyond its TOML type. Every table denies unknown keys (a
//! typo such as `alow = …` must fail, not silently weaken a rule), and values the
//! compile step checks further are `Spanned` so its errors can point at them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: Spanned<RawServer>,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub responses: BTreeMap<Spanned<String>, Spanned<String>>,
    pub upstream_tls: Option<Spanned<RawUpstreamTls>>,
    pub geoip: Option<RawGeoIp>,
    pub identity: Option<RawIdentity>,
    #[serde(default)]
    pub upstream_headers: RawUpstreamHeaders,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RawRule>>,
    #[serde(default, rename = "test")]
    pub tests: Vec<Spanned<RawTest>>,
}

/// One `[[test]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    pub name: Spanned<String>,
    pub request: Spanned<String>,
    pub ip: Option<Spanned<String>>,
    pub peer: Option<Spanned<String>>,
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    pub identity: Option<RawStatedIdentity>,
    pub country: Option<Spanned<String>>,
    pub asn: Option<Spanned<i64>>,
    pub expect: Spanned<u16>,
    pub rule: Option<Spanned<String>>,
}

/// `identity = { user = "alice", roles = ["admin"] }` in a `[[test]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatedIdentity {
    pub user: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `listen = "addr"` or `listen = ["addr", …]`. (An untagged enum cannot hold
/// `Spanned` values, so errors point at the whole value.)
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The addresses in file order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<OneOrMany>>,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Spanned<RawListener>>,
    pub upstream: Spanned<String>,
    pub admin_listen: Option<Spanned<String>>,
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    pub max_connections: Option<Spanned<u64>>,
    pub workers: Option<u64>,
    pub max_request_body_bytes: Option<u64>,
    pub max_request_header_bytes: Option<Spanned<u64>>,
    pub shutdown_grace: Option<Spanned<String>>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    pub tls: Option<Spanned<RawTls>>,
}

/// `[[server.listener]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub address: Spanned<String>,
    pub tls: Option<Spanned<bool>>,
    pub proxy_protocol: Option<Spanned<bool>>,
}

/// `[server.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Spanned<String>,
    pub key_file: Spanned<String>,
}

/// `[upstream_tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca_file: Option<Spanned<String>>,
}

/// `[geoip]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeoIp {
    pub country_database: Option<Spanned<String>>,
    pub asn_database: Option<Spanned<String>>,
}

/// `[server.timeouts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub request_header: Option<Spanned<String>>,
    pub request_body: Option<Spanned<String>>,
    pub upstream_connect: Option<Spanned<String>>,
    pub upstream_response: Option<Spanned<String>>,
    pub idle: Option<Spanned<String>>,
}

/// `[policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub default: Option<RawAction>,
    pub hide: Option<bool>,
    pub mode: Option<RawMode>,
    pub case_insensitive_paths: Option<bool>,
    pub escaped_slashes: Option<RawEscapedSlashes>,
    pub merge_slashes: Option<bool>,
    pub explain_denials: Option<bool>,
    pub allow_preflight: Option<bool>,
}

/// `allow` / `deny`, for `policy.default` and `rule.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawAction {
    Allow,
    Deny,
}

/// `policy.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawMode {
    Enforce,
    Audit,
}

/// `policy.escaped_slashes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawEscapedSlashes {
    Reject,
    Keep,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<RawLogFormat>,
    pub access_log: Option<bool>,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawLogFormat {
    Text,
    Json,
}

/// One `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Spanned<String>,
    pub ip: Option<Spanned<Vec<Spanned<String>>>>,
    pub ip_file: Option<Spanned<String>>,
    pub countries: Option<Spanned<Vec<Spanned<String>>>>,
    pub asns: Option<Spanned<Vec<Spanned<i64>>>>,
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    pub hosts: Option<Spanned<Vec<Spanned<String>>>>,
    pub paths: Option<Spanned<Vec<Spanned<String>>>>,
    pub action: Spanned<RawAction>,
    pub hide: Option<bool>,
    pub audit: Option<bool>,
    pub roles: Option<Spanned<Vec<String>>>,
    pub authenticated: Option<Spanned<bool>>,
}

/// `[identity]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub realm: Option<Spanned<String>>,
    pub api_key_header: Option<Spanned<String>>,
    #[serde(default)]
    pub api_keys: Vec<Spanned<RawApiKey>>,
    pub basic: Option<Spanned<RawBasic>>,
    pub jwt: Option<Spanned<RawJwt>>,
    pub trusted_headers: Option<Spanned<RawTrustedHeaders>>,
    pub lockout: Option<Spanned<RawLockout>>,
}

/// One `[[identity.api_keys]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    pub name: Spanned<String>,
    pub sha256: Spanned<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `[identity.basic]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasic {
    pub htpasswd_file: Spanned<String>,
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
}

/// `roles_claim = "a.b"` or `roles_claim = ["https://x/claims", "roles"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawClaimPath {
    Dotted(String),
    Segments(Vec<String>),
}

/// `audience = "app"` or `audience = ["app", …]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawStrings {
    One(String),
    Many(Vec<String>),
}

/// `[identity.jwt]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    pub jwks_file: Option<Spanned<String>>,
    pub jwks_url: Option<Spanned<String>>,
    pub secret_env: Option<Spanned<String>>,
    pub algorithms: Spanned<Vec<Spanned<String>>>,
    pub issuer: Option<String>,
    pub audience: Option<Spanned<RawStrings>>,
    pub roles_claim: Option<Spanned<RawClaimPath>>,
    pub user_claim: Option<Spanned<String>>,
    pub leeway: Option<Spanned<String>>,
    pub cookie: Option<Spanned<String>>,
    pub jwks_refresh: Option<Spanned<String>>,
}

/// `[identity.trusted_headers]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrustedHeaders {
    pub peers: Spanned<Vec<Spanned<String>>>,
    pub user: Spanned<String>,
    pub roles: Option<Spanned<String>>,
}

/// `[identity.lockout]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLockout {
    pub failures: Option<Spanned<u64>>,
    pub window: Option<Spanned<String>>,
    pub ban: Option<Spanned<String>>,
    pub per_user: Option<bool>,
    pub max_entries: Option<Spanned<u64>>,
}

/// `[upstream_headers]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamHeaders {
    pub user: Option<Spanned<String>>,
    pub roles: Option<Spanned<String>>,
    pub forward_credentials: Option<RawForwardCredentials>,
}

/// `upstream_headers.forward_credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawForwardCredentials {
    Tokens,
    All,
    None,
}
