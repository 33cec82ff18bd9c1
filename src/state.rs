//! What the server shares between connections: the current config generation, and
//! the state that outlives any one config (metrics, the shutdown signal, tunnel
//! tracking).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
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
}

impl Generation {
    /// Builds the resources a config needs.
    pub fn new(config: Config) -> Self {
        let client = build_client(&config.server);
        Generation { config, client }
    }
}

/// Server-wide state.
#[derive(Debug)]
pub struct Shared {
    current: ArcSwap<Generation>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Fired on SIGTERM/SIGINT: stop accepting, finish in-flight work.
    pub shutdown: CancellationToken,
    /// Upgraded (WebSocket) tunnels, which hyper's connection tracking cannot see.
    pub tunnels: TaskTracker,
}

impl Shared {
    /// State serving `generation`.
    pub fn new(generation: Generation) -> Arc<Self> {
        Arc::new(Shared {
            current: ArcSwap::from_pointee(generation),
            metrics: Metrics::default(),
            shutdown: CancellationToken::new(),
            tunnels: TaskTracker::new(),
        })
    }

    /// The generation new requests use.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Makes `generation` the one new requests use; requests in flight keep theirs.
    pub fn replace(&self, generation: Generation) {
        self.current.store(Arc::new(generation));
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
