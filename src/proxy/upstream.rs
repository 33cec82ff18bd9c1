//! The pooled upstream clients and how upstream request URIs are built.
//!
//! Every connection goes to the configured upstream, whatever the request URI says:
//! the connector ignores the URI it is handed. That lets the request URI to an `https`
//! upstream carry the host the rules saw — it becomes `:authority` when the upstream
//! speaks HTTP/2 — while a client can never steer where the proxy connects. TLS to the
//! upstream verifies the configured upstream's name, not the client's host.
//!
//! The URI's authority is also the key of hyper's connection pool. A plain `http`
//! upstream only ever speaks HTTP/1.1, where the `Host` header carries the client's
//! host, so its URIs name the upstream itself: one pool, however many hosts clients
//! send.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;

use super::body::RequestBody;
use crate::config::{ServerSettings, Upstream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle keep-alive connections kept per pool, like nginx's `keepalive 256`: enough
/// for bursts of concurrent requests, without holding a connection (and its buffers)
/// open for every client that was ever served at once.
const MAX_IDLE_UPSTREAM_CONNECTIONS: usize = 256;

/// Dials the configured upstream for every request URI.
#[derive(Clone, Debug)]
pub struct UpstreamConnector {
    inner: HttpsConnector<HttpConnector>,
    target: Uri,
}

impl Service<Uri> for UpstreamConnector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, _requested: Uri) -> Self::Future {
        Box::pin(self.inner.call(self.target.clone()))
    }
}

/// The pooled HTTP client used for forwarded requests.
pub type UpstreamClient = Client<UpstreamConnector, RequestBody>;

/// One client for ordinary requests (HTTP/2 when an `https` upstream offers it by ALPN)
/// and one that always speaks HTTP/1.1, for WebSocket upgrades.
#[derive(Debug, Clone)]
pub struct UpstreamClients {
    /// For ordinary requests.
    pub main: UpstreamClient,
    /// For `Upgrade: websocket` requests.
    pub upgrade: UpstreamClient,
}

/// Builds both clients: keep-alive pools, `upstream_connect` as the connect timeout, no
/// automatic `Host` (the proxy sets the one the rules saw).
pub fn build_clients(server: &ServerSettings) -> UpstreamClients {
    UpstreamClients {
        main: build_client(server, true),
        upgrade: build_client(server, false),
    }
}

/// A client whose TLS offers ALPN `h2` and `http/1.1` (`offer_h2`) or `http/1.1` alone.
fn build_client(server: &ServerSettings, offer_h2: bool) -> UpstreamClient {
    let upstream = &server.upstream;
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(server.timeouts.upstream_connect));
    http.set_nodelay(true);
    http.enforce_http(false);
    let roots = upstream
        .tls_roots
        .clone()
        .unwrap_or_else(|| Arc::new(rustls::RootCertStore::empty()));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(crate::tls::upstream_client_config(roots))
        .https_or_http();
    let inner = if offer_h2 {
        builder.enable_http1().enable_http2().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    };
    let target = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query("/")
        .build()
        .expect("a validated upstream is a valid URI");
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(server.timeouts.idle)
        .pool_max_idle_per_host(MAX_IDLE_UPSTREAM_CONNECTIONS)
        .set_host(false)
        .build(UpstreamConnector { inner, target })
}

/// The upstream request URI: the upstream's scheme, its authority (for an `https`
/// upstream, the host the rules saw when there is one), the base path, the forwarded
/// path and the query as received.
/// Built in one buffer and assembled from parts: this runs for every forwarded request.
pub fn upstream_uri(
    upstream: &Upstream,
    host: Option<&str>,
    forwarded_path: &str,
    query: Option<&str>,
) -> Result<Uri, http::Error> {
    let base = &upstream.base_path;
    let mut target = String::with_capacity(base.len() + forwarded_path.len() + query.map_or(0, |q| q.len() + 1) + 1);
    if forwarded_path == "*" {
        target.push_str(if base.is_empty() { "*" } else { base });
        if !base.is_empty() {
            target.push('/');
        }
    } else {
        target.push_str(base);
        target.push_str(forwarded_path);
    }
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    let authority = match host
        .filter(|_| upstream.scheme == Scheme::HTTPS)
        .map(Authority::try_from)
    {
        Some(Ok(authority)) => authority,
        _ => upstream.authority.clone(),
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(upstream.scheme.clone());
    parts.authority = Some(authority);
    parts.path_and_query = Some(PathAndQuery::from_maybe_shared(bytes::Bytes::from(target))?);
    Ok(Uri::from_parts(parts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(base: &str) -> Upstream {
        Upstream {
            scheme: Scheme::HTTP,
            authority: "127.0.0.1:3000".parse().unwrap(),
            base_path: base.to_string(),
            tls_roots: None,
        }
    }

    #[test]
    fn https_uri_carries_the_rules_host_and_the_forwarded_path() {
        let https = Upstream {
            scheme: Scheme::HTTPS,
            ..upstream("")
        };
        let uri = upstream_uri(&https, Some("app.example:8080"), "/a/b", Some("x=1&y=%2F")).unwrap();
        assert_eq!(uri.to_string(), "https://app.example:8080/a/b?x=1&y=%2F");
    }

    #[test]
    fn http_uri_names_the_upstream_whatever_host_the_client_sent() {
        let uri = upstream_uri(&upstream(""), Some("random-1234.example"), "/a", None).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:3000/a");
    }

    #[test]
    fn without_a_host_the_upstream_authority_is_used() {
        let uri = upstream_uri(&upstream(""), None, "/a", None).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:3000/a");
    }

    #[test]
    fn base_path_is_prefixed() {
        let uri = upstream_uri(&upstream("/base"), None, "/a", None).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:3000/base/a");
    }

    #[test]
    fn asterisk_goes_to_the_base_path_or_stays_asterisk() {
        assert_eq!(upstream_uri(&upstream(""), None, "*", None).unwrap().path(), "*");
        assert_eq!(
            upstream_uri(&upstream("/base"), None, "*", None).unwrap().path(),
            "/base/"
        );
    }
}
