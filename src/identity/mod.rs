//! Who is calling (SPEC §3 step 5): credential sources producing an `Identity`.
//!
//! The rule engine stays pure: it answers "needs identity" when the deciding rule has
//! `roles` or `authenticated`. The server then reads the one credential the request
//! presents (`credential`), refuses banned clients before any work (`lockout`),
//! verifies it (`verify`: API keys, HTTP Basic against htpasswd, JWT, trusted headers)
//! and asks the engine again with the result.

mod api_key;
mod basic;
mod credential;
mod htpasswd;
mod jwks;
mod jwt;
mod lockout;
mod resolve;
mod state;
mod verify;

use http::HeaderName;

pub use api_key::{ApiKey, ApiKeys};
pub use basic::{BasicConfig, HashPool};
pub use credential::{Credential, read_credential, strip_credentials};
pub use htpasswd::{Entry as HtpasswdEntry, Htpasswd, HtpasswdError, VerifiedCache, verify as verify_password};
pub use jwks::{KeySet, RemoteJwks, fetch_once, parse_jwks};
pub use jwt::{JwtConfig, KeySource, dotted_path, is_hmac, parse_algorithm};
pub use lockout::{Lockout, LockoutSettings, retry_after_seconds};
pub use resolve::{Resolved, Resolver, Stop};
pub use state::IdentityState;
pub use verify::{Failure, Verifier};

/// The scheme a credential was read as. Failures are counted only for that scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `Authorization: Basic`.
    Basic,
    /// An API key, from the key header or `Authorization: Bearer`.
    ApiKey,
    /// A JWT, from `Authorization: Bearer` or the cookie.
    Jwt,
    /// Identity headers set by a trusted auth layer.
    TrustedHeaders,
    /// Stated by a `[[test]]` case or `explain`, standing in for credentials.
    Stated,
}

impl Scheme {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Basic => "basic",
            Scheme::ApiKey => "api_key",
            Scheme::Jwt => "jwt",
            Scheme::TrustedHeaders => "trusted_headers",
            Scheme::Stated => "stated",
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name (API key name, Basic user, JWT `user_claim`, trusted user header).
    pub user: String,
    /// The roles role rules check.
    pub roles: Vec<String>,
    /// How the identity was established.
    pub scheme: Scheme,
}

impl Identity {
    /// Whether the identity holds at least one of `roles`.
    pub fn has_any_role(&self, roles: &[String]) -> bool {
        self.roles.iter().any(|held| roles.contains(held))
    }
}

/// `[identity.trusted_headers]`.
#[derive(Debug, Clone)]
pub struct TrustedHeadersConfig {
    /// Peers whose identity headers are believed.
    pub peers: crate::rules::IpRangeSet,
    /// The user header.
    pub user: HeaderName,
    /// The comma-separated roles header, when set.
    pub roles: Option<HeaderName>,
}

/// The compiled `[identity]` table.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// In `WWW-Authenticate`.
    pub realm: String,
    /// Where API keys are read besides `Authorization: Bearer`.
    pub api_key_header: HeaderName,
    /// `[[identity.api_keys]]`.
    pub api_keys: ApiKeys,
    /// `[identity.basic]`.
    pub basic: Option<BasicConfig>,
    /// `[identity.jwt]`.
    pub jwt: Option<JwtConfig>,
    /// `[identity.trusted_headers]`.
    pub trusted_headers: Option<TrustedHeadersConfig>,
    /// `[identity.lockout]`; `None` means no lockout.
    pub lockout: Option<LockoutSettings>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            realm: "portcullis".to_string(),
            api_key_header: HeaderName::from_static("x-api-key"),
            api_keys: ApiKeys::default(),
            basic: None,
            jwt: None,
            trusted_headers: None,
            lockout: None,
        }
    }
}

impl IdentityConfig {
    /// Whether any credential source is configured (a role rule needs one).
    pub fn has_sources(&self) -> bool {
        !self.api_keys.is_empty() || self.basic.is_some() || self.jwt.is_some() || self.trusted_headers.is_some()
    }

    /// Whether trusted headers are the only source: then a missing identity is 403, since
    /// no challenge could help the client.
    pub fn only_trusted_headers(&self) -> bool {
        self.trusted_headers.is_some() && self.api_keys.is_empty() && self.basic.is_none() && self.jwt.is_none()
    }

    /// Whether a 401 may offer `Bearer` (API keys or JWT configured).
    pub fn offers_bearer(&self) -> bool {
        !self.api_keys.is_empty() || self.jwt.is_some()
    }
}

/// What the upstream is told about the caller, and which credentials it sees.
#[derive(Debug, Clone)]
pub struct UpstreamHeaders {
    /// Set to the user whenever the request carries a valid identity.
    pub user: HeaderName,
    /// Set to the comma-separated roles.
    pub roles: HeaderName,
    /// Which presented credentials are forwarded.
    pub forward_credentials: ForwardCredentials,
}

impl Default for UpstreamHeaders {
    fn default() -> Self {
        UpstreamHeaders {
            user: HeaderName::from_static("x-portcullis-user"),
            roles: HeaderName::from_static("x-portcullis-roles"),
            forward_credentials: ForwardCredentials::Tokens,
        }
    }
}

/// `upstream_headers.forward_credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardCredentials {
    /// Forward JWTs; strip Basic and API keys (the default: passwords and keys never reach the app).
    Tokens,
    /// Forward every credential as received.
    All,
    /// Strip every credential.
    None,
}
