//! Listeners, the accept loop, connection limits and shutdown.
//!
//! `Server::start` binds every listener of a config and serves it on the current
//! tokio runtime; `run` is the binary's entry point around it (runtime with the
//! configured worker count, signals, exit codes). Tests start servers in-process on
//! port 0 through `Server::start`.

mod activity;
mod connection;
pub mod proxy_protocol;
mod reload;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

pub use connection::{MAX_HEADER_COUNT, http_builder};
pub use reload::{ReloadError, ReloadOutcome};

use crate::admin;
use crate::config::Config;
use crate::state::Shared;

/// How long a connection beyond `max_connections` waits for a free slot before it is
/// closed.
const PERMIT_WAIT: Duration = Duration::from_secs(1);
/// Connections allowed to wait for a slot at once; beyond this they are closed at once.
const MAX_WAITING: usize = 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A resource the config needs (a JWKS URL) could not be loaded.
    #[error("{0}")]
    Identity(String),
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The operating system's reason.
        source: io::Error,
    },
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    addresses: Vec<SocketAddr>,
    admin_address: Option<SocketAddr>,
    connections: TaskTracker,
    accept_loops: TaskTracker,
    admin: Option<tokio::task::JoinHandle<()>>,
    slots: Arc<Semaphore>,
    max_connections: AtomicUsize,
    restart: reload::RestartSettings,
    fingerprint: Mutex<Option<[u8; 32]>>,
}

impl Server {
    /// Binds every listener (and the admin listener) and starts serving.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let mut listeners = Vec::new();
        for listener in &config.server.listeners {
            listeners.push(bind(listener.address).await?);
        }
        let listener_settings = config.server.listeners.clone();
        let admin_listener = match config.server.admin_listen {
            Some(address) => Some(bind(address).await?),
            None => None,
        };
        let max_connections = config.server.max_connections;
        let restart = reload::RestartSettings::of(&config);
        let fingerprint = reload::fingerprint(&config.files);
        let shared = Shared::start(config).await.map_err(StartError::Identity)?;
        let addresses = listeners
            .iter()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
            .collect();
        let admin_address = admin_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"));
        let connections = TaskTracker::new();
        let accept_loops = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(max_connections));
        let waiting = Arc::new(Semaphore::new(MAX_WAITING));
        let acceptor = shared
            .certificates
            .as_ref()
            .map(|resolver| tokio_rustls::TlsAcceptor::from(crate::tls::server_config(Arc::clone(resolver))));
        for (listener, settings) in listeners.into_iter().zip(listener_settings) {
            let setup = ConnectionSetup {
                tls: if settings.tls { acceptor.clone() } else { None },
                proxy_protocol: settings.proxy_protocol,
            };
            accept_loops.spawn(accept_loop(
                listener,
                setup,
                Arc::clone(&shared),
                connections.clone(),
                Arc::clone(&slots),
                Arc::clone(&waiting),
            ));
        }
        accept_loops.close();
        // The admin listener is not an accept loop shutdown waits for: `/readyz` must
        // keep answering 503 while in-flight requests finish.
        let admin = admin_listener.map(|listener| tokio::spawn(admin::serve(listener, Arc::clone(&shared))));
        Ok(Server {
            shared,
            addresses,
            admin_address,
            connections,
            accept_loops,
            admin,
            slots,
            max_connections: AtomicUsize::new(max_connections),
            restart,
            fingerprint: Mutex::new(fingerprint),
        })
    }

    /// The bound addresses of the main listeners, in config order.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The bound admin address, when `admin_listen` is set.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin_address
    }

    /// The state shared with every connection.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, lets in-flight requests and tunnels finish for up to `grace`,
    /// and returns how many connections and tunnels were cut when it ran out.
    pub async fn shutdown(self, grace: Duration) -> usize {
        self.shared.shutdown.cancel();
        self.accept_loops.wait().await;
        self.connections.close();
        self.shared.tunnels.close();
        let finished = async {
            self.connections.wait().await;
            self.shared.tunnels.wait().await;
        };
        let cut = if tokio::time::timeout(grace, finished).await.is_ok() {
            0
        } else {
            self.connections.len() + self.shared.tunnels.len()
        };
        if let Some(admin) = self.admin {
            admin.abort();
        }
        cut
    }
}

async fn bind(address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind { address, source })
}

/// What a listener does with a connection before hyper sees it.
#[derive(Clone)]
pub struct ConnectionSetup {
    /// Terminate TLS with this acceptor.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Read a PROXY protocol header first (before TLS), from trusted proxies only.
    pub proxy_protocol: bool,
}

/// Accepts until shutdown. Past `max_connections`, a new connection waits up to
/// `PERMIT_WAIT` for a slot and is then closed; open connections are never touched.
async fn accept_loop(
    listener: TcpListener,
    setup: ConnectionSetup,
    shared: Arc<Shared>,
    connections: TaskTracker,
    slots: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => {
                connections.spawn(connection::serve_connection(
                    stream,
                    peer,
                    setup.clone(),
                    Arc::clone(&shared),
                    permit,
                ));
            }
            Err(_) => wait_for_slot(stream, peer, setup.clone(), &shared, &connections, &slots, &waiting),
        }
    }
}

fn wait_for_slot(
    stream: TcpStream,
    peer: SocketAddr,
    setup: ConnectionSetup,
    shared: &Arc<Shared>,
    connections: &TaskTracker,
    slots: &Arc<Semaphore>,
    waiting: &Arc<Semaphore>,
) {
    let Ok(waiter) = Arc::clone(waiting).try_acquire_owned() else {
        tracing::warn!(%peer, "max_connections reached and too many waiting; closing");
        return;
    };
    let shared = Arc::clone(shared);
    let slots = Arc::clone(slots);
    connections.spawn(async move {
        let _waiter = waiter;
        match tokio::time::timeout(PERMIT_WAIT, slots.acquire_owned()).await {
            Ok(Ok(permit)) => connection::serve_connection(stream, peer, setup, shared, permit).await,
            _ => tracing::warn!(%peer, "max_connections reached; closing a new connection"),
        }
    });
}

/// Why `run` failed; maps to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The server could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The runtime could not be built or signals could not be installed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Serves `config` (loaded from `path`) until SIGTERM or SIGINT, reloading on SIGHUP
/// and when a file it was built from changes; then shuts down gracefully.
pub fn run(path: &Path, config: Config) -> Result<(), RunError> {
    let runtime = runtime(config.server.workers)?;
    runtime.block_on(async move {
        let files = config.files.clone();
        let server = Server::start(config).await?;
        for address in server.addresses() {
            tracing::info!(%address, "listening");
        }
        if let Some(address) = server.admin_address() {
            tracing::info!(%address, "admin listening");
        }
        serve_until_stopped(&server, path, &files).await?;
        let grace = server.shared.current().config.server.shutdown_grace;
        tracing::info!(grace = ?grace, "shutting down: finishing in-flight requests");
        let cut = server.shutdown(grace).await;
        if cut > 0 {
            tracing::warn!(
                cut,
                "shutdown grace ran out; closed the remaining connections and tunnels"
            );
        } else {
            tracing::info!("shutdown complete");
        }
        Ok(())
    })
}

/// A multi-threaded runtime with `workers` threads; 0 leaves the choice to tokio
/// (`TOKIO_WORKER_THREADS`, else one per core).
pub fn runtime(workers: usize) -> io::Result<tokio::runtime::Runtime> {
    // One worker: a current-thread runtime, which skips work stealing and cross-thread
    // wake-ups (the same thread runs the I/O driver and every task).
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all();
    if workers > 1 {
        builder.worker_threads(workers);
    }
    builder.build()
}

/// Reloads on SIGHUP and file changes until SIGTERM or SIGINT.
async fn serve_until_stopped(server: &Server, path: &Path, files: &[std::path::PathBuf]) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut watcher = match reload::FileWatcher::new(files) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(%error, "cannot watch config files; reload with SIGHUP");
            None
        }
    };
    loop {
        let (trigger, force) = tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            _ = hangup.recv() => ("SIGHUP", true),
            () = async {
                match watcher.as_mut() {
                    Some(watcher) => watcher.changed().await,
                    None => std::future::pending().await,
                }
            } => ("file change", false),
        };
        let outcome = server.reload(path, force).await;
        reload::log_outcome(trigger, &outcome);
        if matches!(outcome, Ok(ReloadOutcome::Applied { .. }))
            && let Some(watcher) = watcher.as_mut()
        {
            watcher.watch(&server.shared.current().config.files);
        }
    }
}
