//! JSON Web Key Sets: parsing into verification keys, and the remote set behind
//! `jwks_url` — fetched at start, refreshed periodically, refetched (once a minute at
//! most, shared by every waiting request) when a token names an unknown `kid`, and
//! never emptied by a failed refresh.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::watch;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Unknown-`kid` refetches happen at most this often.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// How long a request waits for an unknown-`kid` refetch.
const REFETCH_WAIT: Duration = Duration::from_secs(2);
/// Timeout of one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One verification key.
#[derive(Clone)]
struct KeyEntry {
    kid: Option<String>,
    algorithm: Option<Algorithm>,
    family: jsonwebtoken::AlgorithmFamily,
    key: DecodingKey,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The signature keys of a JWKS.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<KeyEntry>,
}

impl KeySet {
    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token: by `kid` when given (`Ok(None)` when unknown), else the only
    /// key. A key whose JWK names an algorithm verifies only that algorithm, and any
    /// key only its own family.
    pub fn select(&self, kid: Option<&str>, algorithm: Algorithm) -> Result<Option<&DecodingKey>, &'static str> {
        let entry = match kid {
            Some(kid) => match self.keys.iter().find(|entry| entry.kid.as_deref() == Some(kid)) {
                Some(entry) => entry,
                None => return Ok(None),
            },
            None if self.keys.len() == 1 => &self.keys[0],
            None => return Err("the token has no kid and the key set has several keys"),
        };
        if entry.algorithm.is_some_and(|declared| declared != algorithm) {
            return Err("the token's algorithm differs from its key's");
        }
        if !entry.family.algorithms().contains(&algorithm) {
            return Err("the token's algorithm does not fit its key type");
        }
        Ok(Some(&entry.key))
    }
}

/// Parses a JWKS document. Encryption keys (`use: enc`) are skipped; symmetric (`oct`)
/// keys are refused, since a JWKS is public.
pub fn parse_jwks(bytes: &[u8]) -> Result<KeySet, String> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|error| format!("not a JWKS document: {error}"))?;
    let mut keys = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        let name = jwk
            .common
            .key_id
            .as_deref()
            .map_or_else(|| format!("key {}", index + 1), |kid| format!("key `{kid}`"));
        keys.push(key_entry(jwk).map_err(|error| format!("{name}: {error}"))?);
    }
    if keys.is_empty() {
        return Err("the JWKS has no signature keys".to_string());
    }
    Ok(KeySet { keys })
}

fn key_entry(jwk: &Jwk) -> Result<KeyEntry, String> {
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => jsonwebtoken::AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => jsonwebtoken::AlgorithmFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => jsonwebtoken::AlgorithmFamily::Ed,
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys do not belong in a JWKS; use secret_env for HS algorithms".to_string());
        }
        _ => return Err("unsupported key type".to_string()),
    };
    let algorithm = jwk
        .common
        .key_algorithm
        .map(|declared| {
            Algorithm::try_from(declared).map_err(|_| format!("`{declared:?}` is not a signature algorithm"))
        })
        .transpose()?;
    let key = DecodingKey::from_jwk(jwk).map_err(|error| format!("unusable key: {error}"))?;
    Ok(KeyEntry {
        kid: jwk.common.key_id.clone(),
        algorithm,
        family,
        key,
    })
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// State of unknown-`kid` refetching.
#[derive(Debug, Default)]
struct Refetch {
    last: Option<Instant>,
    running: Option<watch::Receiver<bool>>,
}

/// A JWKS fetched from `jwks_url`. It outlives config reloads (kept by URL in
/// `IdentityState`), so a reload never refetches while the identity provider is down.
#[derive(Debug)]
pub struct RemoteJwks {
    url: http::Uri,
    client: HttpsClient,
    keys: ArcSwap<KeySet>,
    refetch: Mutex<Refetch>,
}

impl RemoteJwks {
    /// Fetches the set once (a failure is returned, for a clear startup error) and
    /// starts refreshing it every `refresh` on the current runtime.
    pub async fn start(url: http::Uri, refresh: Duration) -> Result<Arc<RemoteJwks>, String> {
        let client = https_client()?;
        let keys = fetch(&client, &url).await?;
        let remote = Arc::new(RemoteJwks {
            url,
            client,
            keys: ArcSwap::from_pointee(keys),
            refetch: Mutex::new(Refetch::default()),
        });
        tokio::spawn(refresh_loop(Arc::downgrade(&remote), refresh));
        Ok(remote)
    }

    /// The current keys.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// For a token with an unknown `kid`: refetch (unless one ran within the last
    /// minute), shared by every request that asks while it runs, and wait up to 2 s.
    pub async fn refetch_for_unknown_kid(self: &Arc<Self>) {
        let mut waiter = {
            let mut state = self.refetch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &state.running {
                Some(running) => running.clone(),
                None => {
                    if state.last.is_some_and(|last| last.elapsed() < MIN_REFETCH_INTERVAL) {
                        return;
                    }
                    state.last = Some(Instant::now());
                    let (done, running) = watch::channel(false);
                    state.running = Some(running.clone());
                    let this = Arc::clone(self);
                    tokio::spawn(async move {
                        this.fetch_and_store("unknown kid").await;
                        this.refetch
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .running = None;
                        let _ = done.send(true);
                    });
                    running
                }
            }
        };
        let _ = tokio::time::timeout(REFETCH_WAIT, waiter.wait_for(|done| *done)).await;
    }

    async fn fetch_and_store(&self, why: &str) {
        match fetch(&self.client, &self.url).await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), why, "fetched JWKS");
                self.keys.store(Arc::new(keys));
            }
            Err(error) => tracing::warn!(url = %self.url, %error, why, "JWKS fetch failed; keeping the last good keys"),
        }
    }
}

async fn refresh_loop(remote: Weak<RemoteJwks>, refresh: Duration) {
    loop {
        tokio::time::sleep(refresh).await;
        let Some(remote) = remote.upgrade() else { return };
        remote.fetch_and_store("periodic refresh").await;
    }
}

fn https_client() -> Result<HttpsClient, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|error| format!("cannot load the system's root certificates: {error}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// One GET of the JWKS, bounded in time and size.
pub async fn fetch_once(url: &http::Uri) -> Result<KeySet, String> {
    fetch(&https_client()?, url).await
}

async fn fetch(client: &HttpsClient, url: &http::Uri) -> Result<KeySet, String> {
    let request = http::Request::get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|error| error.to_string())?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|error| format!("cannot fetch {url}: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|error| format!("reading {url}: {error}"))?
            .to_bytes();
        parse_jwks(&body).map_err(|error| format!("{url}: {error}"))
    };
    tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{url} did not answer within {FETCH_TIMEOUT:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &[u8] = include_bytes!("../../tests/fixtures/identity/jwks.json");

    #[test]
    fn the_fixture_jwks_yields_three_keys() {
        assert_eq!(parse_jwks(JWKS).unwrap().len(), 3);
    }

    #[test]
    fn keys_are_selected_by_kid_and_family() {
        let keys = parse_jwks(JWKS).unwrap();
        assert!(keys.select(Some("rsa-1"), Algorithm::RS256).unwrap().is_some());
        assert!(keys.select(Some("ec-1"), Algorithm::ES256).unwrap().is_some());
        assert!(keys.select(Some("ed-1"), Algorithm::EdDSA).unwrap().is_some());
        assert!(keys.select(Some("nope"), Algorithm::RS256).unwrap().is_none());
        assert!(
            keys.select(Some("rsa-1"), Algorithm::HS256).is_err(),
            "an RSA key never verifies HMAC"
        );
        assert!(keys.select(Some("ec-1"), Algorithm::RS256).is_err());
    }

    #[test]
    fn a_token_without_kid_needs_a_single_key_set() {
        let several = parse_jwks(JWKS).unwrap();
        assert!(several.select(None, Algorithm::RS256).is_err());
        let single = parse_jwks(include_bytes!("../../tests/fixtures/identity/jwks-single.json")).unwrap();
        assert!(single.select(None, Algorithm::RS256).unwrap().is_some());
    }

    #[test]
    fn symmetric_keys_and_garbage_are_refused() {
        let oct = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}"#;
        assert!(parse_jwks(oct).unwrap_err().contains("symmetric"));
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"not json").is_err());
        assert!(parse_jwks(br#"{"keys":[]}"#).unwrap_err().contains("no signature keys"));
    }
}
