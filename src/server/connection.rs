//! One client connection: `accept → permit → [PROXY header] → [TLS] → hyper`.
//!
//! Everything before hyper runs under the `request_header` timeout. The PROXY and TLS
//! steps slot in before `serve_http` without changing it. A watchdog closes
//! connections that never send a request or sit idle, and shutdown asks hyper to
//! finish in-flight requests before closing.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::ConnectionSetup;
use super::activity::{Activity, Expired, Tracked};
use super::proxy_protocol::{self, ProxiedPeer, ProxyHeaderError};
use crate::config::ServerSettings;
use crate::metrics::ProxyProtocolLabels;
use crate::proxy::{self, BodyError, ErrorChain, ResponseBody};
use crate::state::{ConnectionInfo, Generation, Shared};

/// HTTP/2 streams one connection may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Streams a client may reset before they are answered before the connection is
/// closed (HTTP/2 rapid reset, CVE-2023-44487).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Requests hyper may see with more headers than this are refused with 431.
pub const MAX_HEADER_COUNT: usize = 100;

/// Serves one accepted TCP connection until it closes, the watchdog fires, or
/// shutdown has let its requests finish.
pub async fn serve_connection(
    mut stream: TcpStream,
    socket_peer: SocketAddr,
    setup: ConnectionSetup,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    let opened = Instant::now();
    let _permit = permit;
    shared.metrics.active_connections.inc();
    let _gauge = scopeguard(|| {
        shared.metrics.active_connections.dec();
    });
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(peer = %socket_peer, %error, "could not disable Nagle's algorithm");
    }
    // Connection settings (timeouts, limits, hyper's builder) come from the generation
    // current at accept; each request still loads the generation current at its arrival.
    let generation = shared.current();
    let server = &generation.config.server;
    let peer = if setup.proxy_protocol {
        match proxied_peer(&mut stream, socket_peer, &generation, &shared, opened).await {
            Some(peer) => peer,
            None => return,
        }
    } else {
        socket_peer
    };
    let Some(acceptor) = setup.tls else {
        let info = ConnectionInfo::new(peer, false);
        serve_http(TokioIo::new(stream), info, &generation, &shared, opened).await;
        return;
    };
    // The handshake counts against request_header, like everything before hyper.
    let handshake = tokio::time::timeout_at(opened + server.timeouts.request_header, acceptor.accept(stream)).await;
    match handshake {
        Ok(Ok(stream)) => {
            let info = ConnectionInfo::new(peer, true);
            serve_http(TokioIo::new(stream), info, &generation, &shared, opened).await;
        }
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "no TLS handshake within request_header; closing"),
    }
}

/// The client's address from the PROXY header of a trusted proxy, read within
/// `request_header` of the accept; `None` (counted, logged) closes the connection.
async fn proxied_peer(
    stream: &mut TcpStream,
    socket_peer: SocketAddr,
    generation: &Generation,
    shared: &Shared,
    opened: Instant,
) -> Option<SocketAddr> {
    let server = &generation.config.server;
    let reject = |reason: &'static str| {
        shared
            .metrics
            .proxy_protocol_rejected
            .get_or_create(&ProxyProtocolLabels { reason })
            .inc();
        tracing::debug!(peer = %socket_peer, reason, "PROXY header refused; closing");
        None
    };
    if !server.trusted_proxies.contains(socket_peer.ip()) {
        return reject("untrusted");
    }
    let deadline = opened + server.timeouts.request_header;
    match tokio::time::timeout_at(deadline, proxy_protocol::read_header(stream)).await {
        Ok(Ok(ProxiedPeer::Client(client))) => Some(client),
        Ok(Ok(ProxiedPeer::KeepSocketPeer)) => Some(socket_peer),
        Ok(Err(ProxyHeaderError::Truncated)) => reject("truncated"),
        Ok(Err(ProxyHeaderError::Malformed(_))) => reject("malformed"),
        Err(_) => reject("timeout"),
    }
}

/// Runs hyper's auto (HTTP/1.1 + h2c) connection over any transport.
async fn serve_http<I>(io: I, info: ConnectionInfo, generation: &Generation, shared: &Arc<Shared>, opened: Instant)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let activity = Activity::new(opened);
    let peer = info.peer;
    let service = {
        let shared = Arc::clone(shared);
        let activity = Arc::clone(&activity);
        service_fn(move |request: Request<Incoming>| {
            let shared = Arc::clone(&shared);
            let info = info.clone();
            let in_flight = activity.begin();
            async move {
                let response: Response<ResponseBody> = proxy::serve(request, info, &shared).await?;
                Ok::<_, BodyError>(response.map(|body| Tracked::new(body, in_flight)))
            }
        })
    };
    let connection = generation.http.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let timeouts = generation.config.server.timeouts;
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, error = %ErrorChain(&*error), "connection ended with an error");
                }
                return;
            }
            expired = activity.expired(timeouts.request_header, timeouts.idle), if !shutting_down => {
                match expired {
                    Expired::NoRequest => {
                        tracing::debug!(%peer, "no request within request_header; closing");
                        return;
                    }
                    Expired::Idle => {
                        connection.as_mut().graceful_shutdown();
                        shutting_down = true;
                    }
                }
            }
            () = shared.shutdown.cancelled(), if !shutting_down => {
                connection.as_mut().graceful_shutdown();
                shutting_down = true;
            }
        }
    }
}

/// hyper settings for client connections. Both protocols get a timer (without it the
/// HTTP/1 header timeout does nothing); the HTTP/1 header read timeout also bounds
/// idle keep-alive between requests. Header limits are set above ours so our own
/// count (`max_request_header_bytes`) answers 431 the same way on both protocols.
pub fn http_builder(server: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let head_room = server.max_request_header_bytes.saturating_mul(2).saturating_add(8192);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.timeouts.request_header)
        .max_buf_size(head_room.max(8192))
        .max_headers(MAX_HEADER_COUNT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(head_room).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS);
    builder
}

/// Runs a closure when dropped.
fn scopeguard<F: FnOnce()>(on_drop: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(on_drop))
}
