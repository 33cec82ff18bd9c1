//! `[identity]` and `[upstream_headers]`: credential sources, lockout, and what the
//! upstream is told.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use toml::Spanned;

use super::Compiler;
use crate::config::raw::{
    RawApiKey, RawBasic, RawClaimPath, RawForwardCredentials, RawIdentity, RawJwt, RawLockout, RawStrings,
    RawTrustedHeaders, RawUpstreamHeaders,
};
use crate::identity::{
    ApiKey, ApiKeys, BasicConfig, ForwardCredentials, Htpasswd, IdentityConfig, JwtConfig, KeySource, LockoutSettings,
    TrustedHeadersConfig, UpstreamHeaders, dotted_path, is_hmac, parse_algorithm, parse_jwks,
};
use crate::rules::{IpRangeSet, parse_cidr};

pub(super) fn compile_identity(c: &mut Compiler<'_>, raw: Option<RawIdentity>) -> IdentityConfig {
    let mut identity = IdentityConfig::default();
    let Some(raw) = raw else { return identity };
    if let Some(realm) = &raw.realm
        && let Some(realm) = c.check(realm, "identity.realm", |text| parse_realm(text))
    {
        identity.realm = realm;
    }
    if let Some(header) = &raw.api_key_header
        && let Some(name) = c.check(header, "identity.api_key_header", |text| parse_header_name(text))
    {
        identity.api_key_header = name;
    }
    identity.api_keys = compile_api_keys(c, &raw.api_keys);
    identity.basic = raw.basic.as_ref().and_then(|basic| compile_basic(c, basic.get_ref()));
    identity.jwt = raw.jwt.as_ref().and_then(|jwt| compile_jwt(c, jwt));
    identity.trusted_headers = raw
        .trusted_headers
        .as_ref()
        .and_then(|trusted| compile_trusted(c, trusted.get_ref()));
    identity.lockout = raw
        .lockout
        .as_ref()
        .and_then(|lockout| compile_lockout(c, lockout.get_ref()));
    identity
}

fn parse_realm(text: &str) -> Result<String, String> {
    if text.is_empty()
        || text
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control() || !c.is_ascii())
    {
        return Err("the realm must be non-empty printable ASCII without `\"` or `\\`".to_string());
    }
    Ok(text.to_string())
}

fn parse_header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(text.trim().to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("`{text}` is not a valid header name"))
}

fn compile_api_keys(c: &mut Compiler<'_>, raw: &[Spanned<RawApiKey>]) -> ApiKeys {
    let mut names = HashSet::new();
    let mut digests = HashSet::new();
    let mut keys = Vec::new();
    for entry in raw {
        let entry = entry.get_ref();
        let name = entry.name.get_ref().trim().to_string();
        if name.is_empty() {
            c.error(
                &entry.name,
                "identity.api_keys.name",
                "an API key needs a non-empty name",
            );
        } else if !names.insert(name.clone()) {
            c.error(
                &entry.name,
                "identity.api_keys.name",
                format!("API key name `{name}` is used twice"),
            );
        }
        let Some(digest) = c.check(&entry.sha256, "identity.api_keys.sha256", |text| {
            ApiKey::parse_digest(text)
        }) else {
            continue;
        };
        if !digests.insert(digest) {
            c.error(
                &entry.sha256,
                "identity.api_keys.sha256",
                "the same key digest is listed twice",
            );
        }
        keys.push(ApiKey {
            name,
            digest,
            roles: entry.roles.clone(),
        });
    }
    ApiKeys::new(keys)
}

fn compile_basic(c: &mut Compiler<'_>, raw: &RawBasic) -> Option<BasicConfig> {
    let key = "identity.basic.htpasswd_file";
    let (path, bytes) = c.read_file(&raw.htpasswd_file, key)?;
    let Ok(text) = String::from_utf8(bytes) else {
        c.error(
            &raw.htpasswd_file,
            key,
            format!("`{}` is not UTF-8 text", path.display()),
        );
        return None;
    };
    match Htpasswd::parse(&text) {
        Ok(htpasswd) => Some(BasicConfig {
            htpasswd,
            file: path,
            roles: raw
                .roles
                .iter()
                .map(|(user, roles)| (user.clone(), roles.clone()))
                .collect::<HashMap<_, _>>(),
        }),
        Err(errors) => {
            for error in errors {
                c.errors
                    .push(super::error_at(&path, error.line, error.column, key, error.message));
            }
            None
        }
    }
}

fn compile_jwt(c: &mut Compiler<'_>, spanned: &Spanned<RawJwt>) -> Option<JwtConfig> {
    let raw = spanned.get_ref();
    let errors_before = c.errors.len();
    let sources = [
        raw.jwks_file.is_some(),
        raw.jwks_url.is_some(),
        raw.secret_env.is_some(),
    ];
    if sources.iter().filter(|&&set| set).count() != 1 {
        c.error(
            spanned,
            "identity.jwt",
            "set exactly one key source: jwks_file, jwks_url or secret_env",
        );
        return None;
    }
    if raw.algorithms.get_ref().is_empty() {
        c.error(
            &raw.algorithms,
            "identity.jwt.algorithms",
            "list at least one algorithm, like [\"RS256\"]",
        );
    }
    let algorithms: Vec<_> = raw
        .algorithms
        .get_ref()
        .iter()
        .filter_map(|name| c.check(name, "identity.jwt.algorithms", |text| parse_algorithm(text)))
        .collect();
    let hmac = raw.secret_env.is_some();
    for (name, algorithm) in raw.algorithms.get_ref().iter().zip(&algorithms) {
        if hmac != is_hmac(*algorithm) {
            let message = if hmac {
                "secret_env only verifies HS256/384/512"
            } else {
                "HS algorithms are never accepted beside a JWKS (an RSA public key must not double as an HMAC secret); use secret_env"
            };
            c.error(name, "identity.jwt.algorithms", message);
        }
    }
    let refresh = super::duration_or(
        c,
        raw.jwks_refresh.as_ref(),
        "identity.jwt.jwks_refresh",
        Duration::from_secs(600),
    );
    let keys = if let Some(file) = &raw.jwks_file {
        let (path, bytes) = c.read_file(file, "identity.jwt.jwks_file")?;
        match parse_jwks(&bytes) {
            Ok(keys) => Some(KeySource::File(keys)),
            Err(message) => {
                c.error(
                    file,
                    "identity.jwt.jwks_file",
                    format!("`{}`: {message}", path.display()),
                );
                None
            }
        }
    } else if let Some(url) = &raw.jwks_url {
        c.check(url, "identity.jwt.jwks_url", |text| parse_jwks_url(text))
            .zip(refresh)
            .map(|(url, refresh)| KeySource::Url { url, refresh })
    } else {
        let env = raw.secret_env.as_ref().expect("one source is set");
        c.check(env, "identity.jwt.secret_env", |name| read_secret(name))
    };
    let audience = raw
        .audience
        .as_ref()
        .map_or_else(Vec::new, |audience| match audience.get_ref() {
            RawStrings::One(one) => vec![one.clone()],
            RawStrings::Many(many) => many.clone(),
        });
    if let Some(spanned) = &raw.audience
        && (audience.is_empty() || audience.iter().any(String::is_empty))
    {
        c.error(
            spanned,
            "identity.jwt.audience",
            "list non-empty audience values, or remove the key",
        );
    }
    let roles_claim = raw.roles_claim.as_ref().map_or_else(
        || vec!["roles".to_string()],
        |path| match path.get_ref() {
            RawClaimPath::Dotted(dotted) => dotted_path(dotted),
            RawClaimPath::Segments(segments) => segments.clone(),
        },
    );
    let user_claim = raw
        .user_claim
        .as_ref()
        .map_or_else(|| vec!["sub".to_string()], |claim| dotted_path(claim.get_ref()));
    let leeway = super::duration_or(c, raw.leeway.as_ref(), "identity.jwt.leeway", Duration::from_secs(60));
    let cookie = raw
        .cookie
        .as_ref()
        .and_then(|cookie| c.check(cookie, "identity.jwt.cookie", |name| parse_cookie_name(name)));
    if c.errors.len() != errors_before {
        return None;
    }
    Some(JwtConfig {
        keys: keys?,
        algorithms,
        issuer: raw.issuer.clone(),
        audience,
        roles_claim,
        user_claim,
        leeway: leeway?,
        cookie,
        origin: c.source.location(spanned.span().start).to_string(),
    })
}

/// `https://…`, or `http://` only to a loopback address: keys fetched in the clear
/// from anywhere else could be replaced on the way.
fn parse_jwks_url(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text.parse().map_err(|_| format!("`{text}` is not a URL"))?;
    let host = uri.host().ok_or_else(|| format!("`{text}` has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(uri)
            } else {
                Err(format!(
                    "`{text}`: JWKS must be fetched over https (plain http only on loopback)"
                ))
            }
        }
        _ => Err(format!("`{text}` must be an https:// URL")),
    }
}

/// Minimum HMAC secret length: a shorter secret can be brute-forced from one token.
const MIN_SECRET_BYTES: usize = 32;

fn read_secret(name: &str) -> Result<KeySource, String> {
    let secret = std::env::var(name).map_err(|_| format!("the environment variable `{name}` is not set"))?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the secret in `{name}` is {} bytes; use at least {MIN_SECRET_BYTES} (e.g. `openssl rand -base64 48`)",
            secret.len()
        ));
    }
    jsonwebtoken::DecodingKey::from_secret(secret.as_bytes())
        .map(KeySource::Secret)
        .map_err(|error| format!("unusable secret: {error}"))
}

fn parse_cookie_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!("`{name}` is not a valid cookie name"))
    }
}

fn compile_trusted(c: &mut Compiler<'_>, raw: &RawTrustedHeaders) -> Option<TrustedHeadersConfig> {
    if raw.peers.get_ref().is_empty() {
        c.error(
            &raw.peers,
            "identity.trusted_headers.peers",
            "list the auth layer's addresses; an empty list trusts nobody",
        );
    }
    let peers: Vec<IpNet> = raw
        .peers
        .get_ref()
        .iter()
        .filter_map(|peer| c.check(peer, "identity.trusted_headers.peers", |text| parse_cidr(text)))
        .collect();
    let user = c.check(&raw.user, "identity.trusted_headers.user", |text| {
        parse_header_name(text)
    });
    let roles = match &raw.roles {
        Some(roles) => Some(c.check(roles, "identity.trusted_headers.roles", |text| parse_header_name(text))?),
        None => None,
    };
    Some(TrustedHeadersConfig {
        peers: IpRangeSet::new(peers),
        user: user?,
        roles,
    })
}

fn compile_lockout(c: &mut Compiler<'_>, raw: &RawLockout) -> Option<LockoutSettings> {
    let positive = |c: &mut Compiler<'_>, value: &Option<Spanned<u64>>, key: &str, default: u64| match value {
        Some(spanned) if *spanned.get_ref() == 0 => {
            c.error(spanned, key, "must be at least 1");
            None
        }
        Some(spanned) => Some(*spanned.get_ref()),
        None => Some(default),
    };
    let failures = positive(c, &raw.failures, "identity.lockout.failures", 10);
    let max_entries = positive(c, &raw.max_entries, "identity.lockout.max_entries", 100_000);
    let window = super::duration_or(
        c,
        raw.window.as_ref(),
        "identity.lockout.window",
        Duration::from_secs(60),
    );
    let ban = super::duration_or(c, raw.ban.as_ref(), "identity.lockout.ban", Duration::from_secs(600));
    Some(LockoutSettings {
        failures: u32::try_from(failures?).unwrap_or(u32::MAX),
        window: window?,
        ban: ban?,
        per_user: raw.per_user.unwrap_or(false),
        max_entries: usize::try_from(max_entries?).unwrap_or(usize::MAX),
    })
}

pub(super) fn compile_upstream_headers(c: &mut Compiler<'_>, raw: &RawUpstreamHeaders) -> UpstreamHeaders {
    let mut headers = UpstreamHeaders::default();
    if let Some(user) = &raw.user
        && let Some(name) = c.check(user, "upstream_headers.user", |text| parse_header_name(text))
    {
        headers.user = name;
    }
    if let Some(roles) = &raw.roles
        && let Some(name) = c.check(roles, "upstream_headers.roles", |text| parse_header_name(text))
    {
        headers.roles = name;
    }
    headers.forward_credentials = match raw.forward_credentials {
        Some(RawForwardCredentials::All) => ForwardCredentials::All,
        Some(RawForwardCredentials::None) => ForwardCredentials::None,
        Some(RawForwardCredentials::Tokens) | None => ForwardCredentials::Tokens,
    };
    headers
}
