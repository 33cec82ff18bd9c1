//! What the server shares between connections: the current config generation, and
//! the state that outlives any one config (metrics, identity state, the shutdown
//! signal, tunnel tracking).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::identity::{IdentityState, KeySource, RemoteJwks, Verifier};
use crate::metrics::{Metrics, RequestCounters};
use crate::proxy::{UpstreamClients, build_clients};
use crate::tls::CertResolver;

/// One loaded config with the resources built from it. Requests load the current
/// generation once, at arrival, and keep it until they finish, so a reload never
/// changes the rules under a request in flight.
#[derive(Debug)]
pub struct Generation {
    /// The validated config.
    pub config: Config,
    /// The upstream connection pools for this config's upstream and timeouts.
    pub clients: UpstreamClients,
    /// The fetched key set when `identity.jwt.jwks_url` is used.
    pub remote_jwks: Option<Arc<RemoteJwks>>,
    /// Request counters this generation's rules have used.
    pub request_counters: RequestCounters,
    /// hyper's connection settings for this generation's limits and timeouts, built
    /// once rather than per connection.
    pub http: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
}

impl Generation {
    /// Builds the resources a config needs. A `jwks_url` that was never fetched is
    /// fetched now; a failure is returned (a start fails, a reload is refused).
    pub async fn build(config: Config, identity: &IdentityState) -> Result<Self, String> {
        let remote_jwks = match config.identity.jwt.as_ref().map(|jwt| &jwt.keys) {
            Some(KeySource::Url { url, refresh }) => Some(identity.remote_jwks(url, *refresh).await?),
            _ => None,
        };
        let clients = build_clients(&config.server);
        let http = crate::server::http_builder(&config.server);
        Ok(Generation {
            http,
            config,
            clients,
            remote_jwks,
            request_counters: RequestCounters::default(),
        })
    }
}

/// Server-wide state.
#[derive(Debug)]
pub struct Shared {
    current: ArcSwap<Generation>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Lockout, caches and keys that survive reloads.
    pub identity: IdentityState,
    /// Fired on SIGTERM/SIGINT: stop accepting, finish in-flight work.
    pub shutdown: CancellationToken,
    /// Upgraded (WebSocket) tunnels, which hyper's connection tracking cannot see.
    pub tunnels: TaskTracker,
    /// The certificate TLS listeners serve; reloads swap it in place.
    pub certificates: Option<Arc<CertResolver>>,
}

impl Shared {
    /// State serving `config`.
    pub async fn start(config: Config) -> Result<Arc<Self>, String> {
        let identity = IdentityState::default();
        let certificates = config
            .server
            .tls
            .as_ref()
            .map(|tls| CertResolver::new(Arc::clone(&tls.certified_key)));
        let generation = Generation::build(config, &identity).await?;
        let metrics = Metrics::default();
        metrics.set_geoip(&generation.config.geoip);
        Ok(Arc::new(Shared {
            current: ArcSwap::from_pointee(generation),
            metrics,
            identity,
            shutdown: CancellationToken::new(),
            tunnels: TaskTracker::new(),
            certificates,
        }))
    }

    /// The generation new requests use.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Makes `generation` the one new requests use; requests in flight keep theirs.
    /// Its certificate (already checked against its key) serves new TLS handshakes, and
    /// its GeoIP databases' build times are published.
    pub fn replace(&self, generation: Generation) {
        if let (Some(resolver), Some(tls)) = (&self.certificates, &generation.config.server.tls) {
            resolver.replace(Arc::clone(&tls.certified_key));
        }
        self.metrics.set_geoip(&generation.config.geoip);
        self.current.store(Arc::new(generation));
    }

    /// The credential verifier for a request under `generation`.
    pub fn verifier<'a>(&'a self, generation: &'a Generation) -> Verifier<'a> {
        Verifier {
            config: &generation.config.identity,
            state: &self.identity,
            remote_jwks: generation.remote_jwks.as_ref(),
        }
    }

    /// Whether `/readyz` answers 200: a config is serving (it is, or this value
    /// would not exist) and shutdown has not begun.
    pub fn is_ready(&self) -> bool {
        !self.shutdown.is_cancelled()
    }
}

/// What the server knows about a client connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The remote address (after a PROXY header, when there is one).
    pub peer: SocketAddr,
    /// The peer's canonical IP as header text, formatted once per connection for
    /// `X-Forwarded-For`.
    pub peer_text: http::HeaderValue,
    /// Whether the client connected with TLS.
    pub tls: bool,
}

impl ConnectionInfo {
    /// A connection from `peer`.
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        let text = crate::rules::canonical_ip(peer.ip()).to_string();
        ConnectionInfo {
            peer,
            peer_text: http::HeaderValue::from_str(&text).expect("an IP address is valid header text"),
            tls,
        }
    }
}
