//! The pooled upstream client and how upstream request URIs are built.
//!
//! The URI is always made from the configured upstream, never from the client's
//! authority: a client cannot steer where the proxy connects.

use http::Uri;
use http::uri::PathAndQuery;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::RequestBody;
use crate::config::{ServerSettings, Upstream};

/// The pooled HTTP client used for every forwarded request.
pub type UpstreamClient = Client<HttpConnector, RequestBody>;

/// Builds the client: keep-alive pool, `upstream_connect` as the connect timeout, no
/// automatic `Host` (the proxy sets the one the rules saw).
pub fn build_client(server: &ServerSettings) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(server.timeouts.upstream_connect));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(server.timeouts.idle)
        .set_host(false)
        .build(connector)
}

/// `scheme://authority` + base path + forwarded path + `?query` as received.
pub fn upstream_uri(upstream: &Upstream, forwarded_path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
    let path = if forwarded_path == "*" {
        if upstream.base_path.is_empty() {
            "*".to_string()
        } else {
            format!("{}/", upstream.base_path)
        }
    } else {
        format!("{}{forwarded_path}", upstream.base_path)
    };
    let path_and_query = match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let path_and_query: PathAndQuery = path_and_query.parse()?;
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::uri::Scheme;

    fn upstream(base: &str) -> Upstream {
        Upstream {
            scheme: Scheme::HTTP,
            authority: "127.0.0.1:3000".parse().unwrap(),
            base_path: base.to_string(),
        }
    }

    #[test]
    fn uri_is_built_from_the_configured_upstream() {
        let uri = upstream_uri(&upstream(""), "/a/b", Some("x=1&y=%2F")).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:3000/a/b?x=1&y=%2F");
    }

    #[test]
    fn base_path_is_prefixed() {
        let uri = upstream_uri(&upstream("/base"), "/a", None).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:3000/base/a");
    }

    #[test]
    fn asterisk_goes_to_the_base_path_or_stays_asterisk() {
        assert_eq!(upstream_uri(&upstream(""), "*", None).unwrap().path(), "*");
        assert_eq!(upstream_uri(&upstream("/base"), "*", None).unwrap().path(), "/base/");
    }
}
