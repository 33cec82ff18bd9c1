//! Verifying a presented credential into an `Identity`.

use std::sync::Arc;

use super::basic::Busy;
use super::credential::Credential;
use super::htpasswd;
use super::jwks::RemoteJwks;
use super::jwt::{KeyLookup, Rejection};
use super::state::IdentityState;
use super::{Identity, IdentityConfig, Scheme};

/// Why a credential did not yield an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The credential is wrong; `counts` says whether it counts toward lockout.
    Invalid {
        /// The scheme it was read as.
        scheme: Scheme,
        /// Counts toward `[identity.lockout]`.
        counts: bool,
        /// For the debug log; never sent to the client.
        reason: &'static str,
    },
    /// The password-hash pool is full: answer 503.
    Busy,
}

impl From<Busy> for Failure {
    fn from(_: Busy) -> Self {
        Failure::Busy
    }
}

fn invalid(scheme: Scheme, counts: bool, reason: &'static str) -> Failure {
    Failure::Invalid { scheme, counts, reason }
}

/// Everything verification needs for one request.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    /// The current `[identity]`.
    pub config: &'a IdentityConfig,
    /// State that outlives configs.
    pub state: &'a IdentityState,
    /// The current generation's remote key set, when `jwks_url` is used.
    pub remote_jwks: Option<&'a Arc<RemoteJwks>>,
}

impl Verifier<'_> {
    /// Verifies a credential.
    pub async fn verify(&self, credential: &Credential<'_>) -> Result<Identity, Failure> {
        match credential {
            Credential::ApiKey { key } => self
                .config
                .api_keys
                .verify(key)
                .ok_or_else(|| invalid(Scheme::ApiKey, true, "unknown API key")),
            Credential::Basic { user, password } => self.verify_basic(user, password).await,
            Credential::Jwt { token } => self.verify_jwt(token).await,
            Credential::Trusted { user, roles } => Ok(Identity {
                user: user.clone(),
                roles: roles.clone(),
                scheme: Scheme::TrustedHeaders,
            }),
        }
    }

    async fn verify_basic(&self, user: &str, password: &str) -> Result<Identity, Failure> {
        let basic = self
            .config
            .basic
            .as_ref()
            .ok_or_else(|| invalid(Scheme::Basic, false, "Basic is not configured"))?;
        let entry = basic.htpasswd.get(user).cloned();
        let cache_key = entry
            .as_ref()
            .map(|entry| self.state.basic_cache.key(user, entry, password));
        let now = std::time::Instant::now();
        let cached = cache_key
            .as_ref()
            .is_some_and(|key| self.state.basic_cache.contains(key, now));
        if !cached {
            let password = password.to_string();
            // An unknown user still costs a hash (against a dummy), so timing does not
            // reveal which users exist.
            let matched = self
                .state
                .hash_pool
                .run(move || htpasswd::verify(entry.as_ref(), &password))
                .await?;
            if !matched {
                return Err(invalid(Scheme::Basic, true, "wrong user or password"));
            }
            if let Some(key) = cache_key {
                self.state.basic_cache.insert(key, now);
            }
        }
        Ok(Identity {
            user: user.to_string(),
            roles: basic.roles.get(user).cloned().unwrap_or_default(),
            scheme: Scheme::Basic,
        })
    }

    async fn verify_jwt(&self, token: &str) -> Result<Identity, Failure> {
        let jwt = self
            .config
            .jwt
            .as_ref()
            .ok_or_else(|| invalid(Scheme::Jwt, false, "JWT is not configured"))?;
        let as_failure = |rejection: Rejection| invalid(Scheme::Jwt, rejection.counts, rejection.reason);
        let header = jwt.header(token).map_err(as_failure)?;
        let file_keys = match &jwt.keys {
            super::jwt::KeySource::File(keys) => Some(keys),
            _ => None,
        };
        let mut remote_keys = self.remote_jwks.map(|remote| remote.keys());
        let mut lookup = jwt.select_key(&header, file_keys.or(remote_keys.as_deref()));
        if let (KeyLookup::UnknownKid, Some(remote)) = (&lookup, self.remote_jwks) {
            remote.refetch_for_unknown_kid().await;
            remote_keys = Some(remote.keys());
            lookup = jwt.select_key(&header, remote_keys.as_deref());
        }
        match lookup {
            KeyLookup::Found(key) => jwt.verify_with(token, header.alg, key).map_err(as_failure),
            KeyLookup::UnknownKid => Err(invalid(Scheme::Jwt, true, "unknown key id")),
            KeyLookup::Refused(rejection) => Err(as_failure(rejection)),
        }
    }
}
