//! JWT verification with the `jsonwebtoken` crate: algorithm allow-list, key selection
//! by `kid`, `exp` required, `nbf`, leeway, issuer and audience, then the user and
//! roles claims.
//!
//! The allow-list is checked before a key is chosen, and a key only verifies the
//! algorithm family it belongs to, so neither `alg: none` nor an HS256 token signed
//! with an RSA public key (algorithm confusion) can pass.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, errors::ErrorKind};
use serde_json::Value;

use super::jwks::KeySet;
use super::{Identity, Scheme};

/// Where verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `jwks_file`, read at load time.
    File(KeySet),
    /// `jwks_url`, fetched at start and refreshed (the keys live in `RemoteJwks`).
    Url {
        /// The JWKS address.
        url: http::Uri,
        /// Refetch period.
        refresh: Duration,
    },
    /// `secret_env`: an HMAC secret for HS256/384/512.
    Secret(DecodingKey),
}

/// The compiled `[identity.jwt]`.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// Key source.
    pub keys: KeySource,
    /// Accepted `alg` values.
    pub algorithms: Vec<Algorithm>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Accepted `aud` values (one must match), when non-empty.
    pub audience: Vec<String>,
    /// Path of the roles claim, as segments.
    pub roles_claim: Vec<String>,
    /// Path of the user claim, as segments.
    pub user_claim: Vec<String>,
    /// Clock skew allowed for `exp` and `nbf`.
    pub leeway: Duration,
    /// Cookie the token may also come from.
    pub cookie: Option<String>,
    /// `FILE:LINE:COL` of the `[identity.jwt]` table, for `check`'s messages.
    pub origin: String,
}

/// Parses an algorithm name from `algorithms`. `none` is never accepted.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    if name.eq_ignore_ascii_case("none") {
        return Err("`none` is never accepted: an unsigned token proves nothing".to_string());
    }
    name.parse::<Algorithm>().map_err(|_| {
        format!("unknown algorithm `{name}`; use RS256/384/512, PS256/384/512, ES256/384, EdDSA, or HS256/384/512 with secret_env")
    })
}

/// Whether an algorithm is an HMAC one.
pub fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Why a token was refused, and whether the failure counts toward lockout. Genuine
/// tokens that are expired, not yet valid, or for another issuer or audience do not
/// count: their holder is not guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// For the debug log.
    pub reason: &'static str,
    /// Counts toward `[identity.lockout]`.
    pub counts: bool,
}

const fn rejected(reason: &'static str, counts: bool) -> Rejection {
    Rejection { reason, counts }
}

/// What key selection needs from the key set.
pub enum KeyLookup<'a> {
    /// Verify with this key.
    Found(&'a DecodingKey),
    /// The token names a `kid` the set does not have (a refetch may help).
    UnknownKid,
    /// Refused outright.
    Refused(Rejection),
}

impl JwtConfig {
    /// Selects the key for a token's header from `keys` (or the HMAC secret).
    pub fn select_key<'a>(&'a self, header: &jsonwebtoken::Header, keys: Option<&'a KeySet>) -> KeyLookup<'a> {
        if let KeySource::Secret(secret) = &self.keys {
            return KeyLookup::Found(secret);
        }
        let Some(keys) = keys else {
            return KeyLookup::Refused(rejected("no key set loaded", false));
        };
        match keys.select(header.kid.as_deref(), header.alg) {
            Ok(Some(key)) => KeyLookup::Found(key),
            Ok(None) => KeyLookup::UnknownKid,
            Err(reason) => KeyLookup::Refused(rejected(reason, true)),
        }
    }

    /// The token's header, if its algorithm is allowed.
    pub fn header(&self, token: &str) -> Result<jsonwebtoken::Header, Rejection> {
        let header = decode_header(token).map_err(|_| rejected("malformed token header", true))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(rejected("algorithm not allowed", true));
        }
        Ok(header)
    }

    /// Verifies the signature and claims with `key`, then reads user and roles.
    pub fn verify_with(&self, token: &str, algorithm: Algorithm, key: &DecodingKey) -> Result<Identity, Rejection> {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audience);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        let claims = decode::<Value>(token, key, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => rejected("token expired", false),
                ErrorKind::ImmatureSignature => rejected("token not yet valid (nbf)", false),
                ErrorKind::InvalidIssuer => rejected("wrong issuer", false),
                ErrorKind::InvalidAudience => rejected("wrong audience", false),
                ErrorKind::MissingRequiredClaim(_) => rejected("a required claim (exp, iss or aud) is missing", false),
                ErrorKind::InvalidClaimFormat(_) => rejected("a claim has the wrong type", false),
                _ => rejected("bad signature or malformed token", true),
            })?
            .claims;
        let user = claim(&claims, &self.user_claim)
            .and_then(Value::as_str)
            .filter(|user| !user.is_empty())
            .ok_or(rejected("the user claim is missing", false))?;
        Ok(Identity {
            user: user.to_string(),
            roles: claim(&claims, &self.roles_claim).map(roles_from).unwrap_or_default(),
            scheme: Scheme::Jwt,
        })
    }
}

/// Follows a claim path (`["realm_access", "roles"]`).
fn claim<'a>(claims: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(claims, |value, segment| value.get(segment))
}

/// An array of strings, or one space- or comma-separated string (OAuth `scope`).
fn roles_from(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Value::String(text) => text
            .split([' ', ','])
            .filter(|role| !role.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Splits a dotted claim path; a path given as a list is taken as is.
pub fn dotted_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_come_from_arrays_or_separated_strings() {
        assert_eq!(roles_from(&json!(["admin", "editor"])), ["admin", "editor"]);
        assert_eq!(roles_from(&json!("read write")), ["read", "write"]);
        assert_eq!(roles_from(&json!("admin,editor")), ["admin", "editor"]);
        assert!(roles_from(&json!(42)).is_empty());
    }

    #[test]
    fn claim_paths_follow_nested_objects_and_dotted_names() {
        let claims = json!({"realm_access": {"roles": ["a"]}, "https://example.com/claims": {"roles": ["b"]}});
        assert_eq!(claim(&claims, &dotted_path("realm_access.roles")), Some(&json!(["a"])));
        let segments = vec!["https://example.com/claims".to_string(), "roles".to_string()];
        assert_eq!(claim(&claims, &segments), Some(&json!(["b"])));
        assert_eq!(claim(&claims, &dotted_path("missing.roles")), None);
    }

    #[test]
    fn none_and_unknown_algorithms_are_refused() {
        assert!(parse_algorithm("none").unwrap_err().contains("never"));
        assert!(parse_algorithm("NONE").is_err());
        assert!(parse_algorithm("RS1").unwrap_err().contains("unknown"));
        assert_eq!(parse_algorithm("ES256"), Ok(Algorithm::ES256));
    }
}
