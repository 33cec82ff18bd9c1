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
use crate::metrics::Metrics;
use crate::proxy::{UpstreamClient, build_client};

/// One loaded config with the resources built from it. Requests load the current
/// generation once, at arrival, and keep it until they finish, so a reload never
/// changes the rules under a request in flight.
#[derive(Debug)]
pub struct Generation {
    /// The validated config.
    pub config: Config,
    /// The upstream connection pool for this config's upstream and timeouts.
    pub client: UpstreamClient,
    /// The fetched key set when `identity.jwt.jwks_url` is used.
    pub remote_jwks: Option<Arc<RemoteJwks>>,
}

impl Generation {
    /// Builds the resources a config needs. A `jwks_url` that was never fetched is
    /// fetched now; a failure is returned (a start fails, a reload is refused).
    pub async fn build(config: Config, identity: &IdentityState) -> Result<Self, String> {
        let remote_jwks = match config.identity.jwt.as_ref().map(|jwt| &jwt.keys) {
            Some(KeySource::Url { url, refresh }) => Some(identity.remote_jwks(url, *refresh).await?),
            _ => None,
        };
        let client = build_client(&config.server);
        Ok(Generation {
            config,
            client,
            remote_jwks,
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
}

impl Shared {
    /// State serving `config`.
    pub async fn start(config: Config) -> Result<Arc<Self>, String> {
        let identity = IdentityState::default();
        let generation = Generation::build(config, &identity).await?;
        Ok(Arc::new(Shared {
            current: ArcSwap::from_pointee(generation),
            metrics: Metrics::default(),
            identity,
            shutdown: CancellationToken::new(),
            tunnels: TaskTracker::new(),
        }))
    }

    /// The generation new requests use.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Makes `generation` the one new requests use; requests in flight keep theirs.
    pub fn replace(&self, generation: Generation) {
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
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    /// The remote address (after a PROXY header, when there is one).
    pub peer: SocketAddr,
    /// Whether the client connected with TLS.
    pub tls: bool,
}
