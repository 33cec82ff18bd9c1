//! WebSocket tunnels: opened only after the upstream answered 101, then bytes are
//! copied both ways until either side closes. The tunnel keeps the decision it was
//! opened under.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::task::TaskTracker;

/// Joins the client's and the upstream's upgraded connections in a tracked task, so
/// shutdown can wait for open tunnels.
pub fn spawn_tunnel(tunnels: &TaskTracker, client: OnUpgrade, upstream: OnUpgrade, request_id: String) {
    tunnels.spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(request_id, %error, "websocket upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((to_upstream, to_client)) => {
                tracing::debug!(request_id, to_upstream, to_client, "websocket tunnel closed");
            }
            Err(error) => tracing::debug!(request_id, %error, "websocket tunnel ended with an error"),
        }
    });
}
