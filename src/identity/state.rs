//! Identity state that outlives any one config: the lockout table, the Basic
//! verification cache, the hash pool, and fetched JWKS keys. A reload swaps the rules
//! but neither forgets bans nor refetches keys while the identity provider is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::basic::HashPool;
use super::htpasswd::VerifiedCache;
use super::jwks::RemoteJwks;
use super::lockout::Lockout;

/// Entries of the Basic verification cache.
const BASIC_CACHE_ENTRIES: usize = 10_000;
/// How long a successful Basic verification is reused.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(300);

/// See the module docs.
#[derive(Debug)]
pub struct IdentityState {
    /// Failed attempts and bans.
    pub lockout: Lockout,
    /// Successful Basic verifications.
    pub basic_cache: VerifiedCache,
    /// Runs password hashes.
    pub hash_pool: HashPool,
    remote_jwks: Mutex<HashMap<String, Arc<RemoteJwks>>>,
}

impl Default for IdentityState {
    fn default() -> Self {
        IdentityState {
            lockout: Lockout::new(),
            basic_cache: VerifiedCache::new(BASIC_CACHE_ENTRIES, BASIC_CACHE_TTL),
            hash_pool: HashPool::default(),
            remote_jwks: Mutex::new(HashMap::new()),
        }
    }
}

impl IdentityState {
    /// The remote key set for `url`: the one already fetched, or a new one fetched now
    /// (a failure is returned, so a start fails clearly and a reload is refused).
    pub async fn remote_jwks(&self, url: &http::Uri, refresh: Duration) -> Result<Arc<RemoteJwks>, String> {
        let key = url.to_string();
        if let Some(existing) = self.lock().get(&key) {
            return Ok(Arc::clone(existing));
        }
        let fetched = RemoteJwks::start(url.clone(), refresh).await?;
        Ok(Arc::clone(self.lock().entry(key).or_insert(fetched)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<RemoteJwks>>> {
        self.remote_jwks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
