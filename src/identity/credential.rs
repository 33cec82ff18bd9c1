//! Reading the one credential a request presents (SPEC §3 step 5).
//!
//! Sources are tried in a fixed order — `Authorization: Basic`, `Authorization:
//! Bearer`, the API key header, the JWT cookie, trusted headers from trusted peers —
//! and only for schemes that are configured. A Bearer value in JWS compact form is a
//! JWT when JWT is configured, otherwise an API key: never tried as both, so a JWT is
//! never counted as a failed API key. Malformed values are no credential at all.

use std::net::IpAddr;

use base64::Engine;
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, HeaderValue};

use super::{ForwardCredentials, IdentityConfig, Scheme};

/// A credential as presented, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `Authorization: Basic`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// An API key.
    ApiKey {
        /// The key as sent.
        key: &'a str,
    },
    /// A JWT.
    Jwt {
        /// The compact token.
        token: &'a str,
    },
    /// Identity headers from a peer in `trusted_headers.peers`.
    Trusted {
        /// The user header's value.
        user: String,
        /// The roles header's values, split at commas.
        roles: Vec<String>,
    },
}

impl Credential<'_> {
    /// The scheme the credential is verified (and its failures counted) as.
    pub fn scheme(&self) -> Scheme {
        match self {
            Credential::Basic { .. } => Scheme::Basic,
            Credential::ApiKey { .. } => Scheme::ApiKey,
            Credential::Jwt { .. } => Scheme::Jwt,
            Credential::Trusted { .. } => Scheme::TrustedHeaders,
        }
    }

    /// The Basic user name, for per-user lockout.
    pub fn basic_user(&self) -> Option<&str> {
        match self {
            Credential::Basic { user, .. } => Some(user),
            _ => None,
        }
    }
}

/// The first credential the request presents, for the configured schemes only.
pub fn read_credential<'a>(headers: &'a HeaderMap, peer: IpAddr, config: &IdentityConfig) -> Option<Credential<'a>> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic")
            && config.basic.is_some()
            && let Some(credential) = decode_basic(rest)
        {
            return Some(credential);
        }
        if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            if config.jwt.is_some() && is_jws_compact(rest) {
                return Some(Credential::Jwt { token: rest });
            }
            if !config.api_keys.is_empty() {
                return Some(Credential::ApiKey { key: rest });
            }
        }
    }
    if !config.api_keys.is_empty()
        && let Some(key) = headers.get(&config.api_key_header).and_then(|v| v.to_str().ok())
        && !key.trim().is_empty()
    {
        return Some(Credential::ApiKey { key: key.trim() });
    }
    if let Some(jwt) = &config.jwt
        && let Some(name) = &jwt.cookie
        && let Some(token) = cookie(headers, name)
        && is_jws_compact(token)
    {
        return Some(Credential::Jwt { token });
    }
    let trusted = config.trusted_headers.as_ref()?;
    if !trusted.peers.contains(peer) {
        return None;
    }
    let user = headers.get(&trusted.user)?.to_str().ok()?.trim();
    if user.is_empty() {
        return None;
    }
    let roles = trusted
        .roles
        .as_ref()
        .map(|name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|role| !role.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(Credential::Trusted {
        user: user.to_string(),
        roles,
    })
}

/// Removes the credentials the upstream must not see (SPEC §6 `forward_credentials`):
/// with `tokens`, Basic and API keys go and JWTs stay; with `none`, every credential
/// portcullis reads goes (including the JWT cookie); with `all`, nothing is touched.
/// Only schemes portcullis is configured to read are touched, so an app's own
/// `Authorization` passes when portcullis does not use that scheme.
pub fn strip_credentials(headers: &mut HeaderMap, config: &IdentityConfig, policy: ForwardCredentials) {
    if policy == ForwardCredentials::All {
        return;
    }
    let authorization_consumed = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|value| {
            let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
            let rest = rest.trim();
            if scheme.eq_ignore_ascii_case("basic") {
                config.basic.is_some()
            } else if scheme.eq_ignore_ascii_case("bearer") {
                let is_jwt = config.jwt.is_some() && is_jws_compact(rest);
                (is_jwt && policy == ForwardCredentials::None) || (!is_jwt && !config.api_keys.is_empty())
            } else {
                false
            }
        });
    if authorization_consumed {
        headers.remove(AUTHORIZATION);
    }
    if !config.api_keys.is_empty() {
        headers.remove(&config.api_key_header);
    }
    if policy == ForwardCredentials::None
        && let Some(name) = config.jwt.as_ref().and_then(|jwt| jwt.cookie.as_deref())
    {
        remove_cookie(headers, name);
    }
}

/// Rewrites every `Cookie` header without the named cookie.
fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .map(str::trim)
                .filter(|pair| pair.split_once('=').is_none_or(|(key, _)| key.trim() != name))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|value| !value.is_empty())
        .collect();
    headers.remove(COOKIE);
    for value in kept {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(COOKIE, value);
        }
    }
}

fn decode_basic(encoded: &str) -> Option<Credential<'static>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    Some(Credential::Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// `header.payload.signature`, each part base64url (the signature may be empty, as in
/// an `alg: none` token, which verification then refuses).
fn is_jws_compact(value: &str) -> bool {
    let mut parts = value.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let base64url = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    !header.is_empty() && !payload.is_empty() && base64url(header) && base64url(payload) && base64url(signature)
}

/// The value of the named cookie in any `Cookie` header.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
}

#[cfg(test)]
mod tests;
