//! Header hygiene between client and upstream (SPEC §6).
//!
//! Order matters: hop-by-hop headers (and every header a client names in
//! `Connection`) are removed first, and only then does the proxy add its own
//! forwarding headers, so no client header list can remove them.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{CONNECTION, HOST, HeaderName, HeaderValue, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};

use crate::config::Config;
use crate::identity::{Identity, UpstreamHeaders};
use crate::respond::REQUEST_ID;

// Header names are constants, built at compile time: naming a header by `&str` parses
// and validates it on every request.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Removes hop-by-hop headers (RFC 9110 7.6.1) and every header named in
/// `Connection`. `TE: trailers` survives (gRPC needs it); `Content-Length` and `Host`
/// are never removed through `Connection`, since framing and routing are the proxy's
/// to decide.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        remove_connection_named(headers);
    }
    let keep_te_trailers = headers
        .get(TE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"trailers"))
        && headers.get_all(TE).iter().count() == 1;
    for name in [
        CONNECTION,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
        KEEP_ALIVE,
        PROXY_CONNECTION,
    ] {
        headers.remove(name);
    }
    if !keep_te_trailers {
        headers.remove(TE);
    }
}

/// Removes every header a `Connection` header names (except the ones framing and
/// routing depend on).
fn remove_connection_named(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .filter(|name| *name != http::header::CONTENT_LENGTH && *name != HOST && *name != TE)
        .collect();
    for name in named {
        headers.remove(name);
    }
}

/// What the forwarding headers are made of.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// The connection's peer as header text (formatted once per connection).
    pub peer: &'a HeaderValue,
    /// Whether the peer is in `trusted_proxies`.
    pub peer_trusted: bool,
    /// `http` or `https`: how the client reached us.
    pub proto: &'static str,
    /// The host as the client sent it, port included.
    pub host_as_sent: Option<&'a HeaderValue>,
    /// The upstream's authority, for the `Host` of host-less HTTP/1.0 requests.
    pub upstream_authority: &'a str,
    /// The request id returned to the client.
    pub request_id: &'a RequestId,
}

/// A request id: the client's `X-Request-Id` when it is safe to echo (1–128
/// characters of `[A-Za-z0-9._-]`), else a fresh random one. Held as a header value,
/// so putting it on the upstream request and on the response copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id as text (always ASCII).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Prepares a client request's headers for the upstream, after `remove_hop_by_hop`.
pub fn set_forwarding_headers(headers: &mut HeaderMap, forwarding: &Forwarding<'_>) {
    for name in METHOD_OVERRIDES {
        headers.remove(name);
    }
    let chain = if forwarding.peer_trusted && headers.contains_key(&X_FORWARDED_FOR) {
        let earlier: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .collect();
        let peer = forwarding.peer.to_str().unwrap_or_default();
        match earlier.is_empty() {
            true => forwarding.peer.clone(),
            false => HeaderValue::from_str(&format!("{}, {peer}", earlier.join(", ")))
                .unwrap_or_else(|_| forwarding.peer.clone()),
        }
    } else {
        forwarding.peer.clone()
    };
    headers.insert(X_FORWARDED_FOR, chain);
    if !(forwarding.peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(forwarding.proto));
    }
    if !(forwarding.peer_trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match forwarding.host_as_sent {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host.clone());
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
    }
    if !forwarding.peer_trusted {
        headers.remove(FORWARDED);
        headers.remove(X_REAL_IP);
    }
    headers.insert(REQUEST_ID, forwarding.request_id.header_value().clone());
    match forwarding.host_as_sent {
        Some(host) => {
            headers.insert(HOST, host.clone());
        }
        None => {
            if let Ok(authority) = HeaderValue::from_str(forwarding.upstream_authority) {
                headers.insert(HOST, authority);
            }
        }
    }
}

/// The request id to use: the client's when it is 1–128 characters of
/// `[A-Za-z0-9._-]`, else a fresh one.
pub fn request_id(headers: &HeaderMap) -> RequestId {
    match headers.get(REQUEST_ID) {
        Some(value)
            if (1..=128).contains(&value.len())
                && value
                    .as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b)) =>
        {
            RequestId(value.clone())
        }
        _ => generate_request_id(),
    }
}

/// Sixteen hex digits of randomness, without formatting machinery.
fn generate_request_id() -> RequestId {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let random = rand::random::<u64>();
    let mut text = [0u8; 16];
    for (index, digit) in text.iter_mut().enumerate() {
        *digit = HEX[((random >> (60 - 4 * index)) & 0xf) as usize];
    }
    RequestId(HeaderValue::from_bytes(&text).expect("hex digits are a valid header value"))
}

/// Whether two header names are the same to a backend that lower-cases them and reads
/// every character other than `a-z` and `0-9` as `-` (CGI and some frameworks turn `-`
/// into `_`, so `X_Portcullis_User` and `x.portcullis.user` reach the app as the same
/// header). Compared byte by byte, without allocating.
fn same_to_backends(a: &str, b: &str) -> bool {
    let fold = |byte: u8| {
        let lower = byte.to_ascii_lowercase();
        if lower.is_ascii_lowercase() || lower.is_ascii_digit() {
            lower
        } else {
            b'-'
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// Removes the identity headers a client must never set itself, in every spelling: the
/// `upstream_headers` names always, and the `trusted_headers` names unless the peer is
/// a trusted auth layer.
pub fn remove_identity_headers(headers: &mut HeaderMap, config: &Config, peer: IpAddr) {
    let upstream = &config.upstream_headers;
    let trusted = config
        .identity
        .trusted_headers
        .as_ref()
        .filter(|trusted| !trusted.peers.contains(peer));
    let spoofable = |name: &HeaderName| {
        let name = name.as_str();
        same_to_backends(name, upstream.user.as_str())
            || same_to_backends(name, upstream.roles.as_str())
            || trusted.is_some_and(|trusted| {
                same_to_backends(name, trusted.user.as_str())
                    || trusted
                        .roles
                        .as_ref()
                        .is_some_and(|roles| same_to_backends(name, roles.as_str()))
            })
    };
    let doomed: Vec<HeaderName> = headers.keys().filter(|name| spoofable(name)).cloned().collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Tells the upstream who called: the user and the comma-separated roles, each
/// percent-encoded where it would be unsafe in a header (or ambiguous, like `,` in a role).
pub fn set_identity_headers(headers: &mut HeaderMap, upstream: &UpstreamHeaders, identity: &Identity) {
    let roles: Vec<String> = identity.roles.iter().map(|role| header_safe(role)).collect();
    for (name, value) in [
        (&upstream.user, header_safe(&identity.user)),
        (&upstream.roles, roles.join(",")),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name.clone(), value);
        }
    }
}

fn header_safe(value: &str) -> String {
    let mut safe = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'%' && byte != b',' {
            safe.push(char::from(byte));
        } else {
            safe.push_str(&format!("%{byte:02X}"));
        }
    }
    safe
}

/// Whether the client asks for a WebSocket upgrade (`Connection: upgrade` and
/// `Upgrade: websocket`), read before hop-by-hop removal.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade_websocket = headers
        .get_all(UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("websocket"));
    connection_upgrade && upgrade_websocket
}

/// Re-adds the two headers a WebSocket handshake needs after hop-by-hop removal.
pub fn set_websocket_upgrade(headers: &mut HeaderMap) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in list {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    static HOST_SENT: std::sync::LazyLock<HeaderValue> =
        std::sync::LazyLock::new(|| HeaderValue::from_static("app.example.com:8080"));
    static RID: std::sync::LazyLock<RequestId> =
        std::sync::LazyLock::new(|| RequestId(HeaderValue::from_static("rid")));

    static PEER: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| HeaderValue::from_static("192.0.2.10"));

    fn forwarding(trusted: bool) -> Forwarding<'static> {
        Forwarding {
            peer: &PEER,
            peer_trusted: trusted,
            proto: "http",
            host_as_sent: Some(&HOST_SENT),
            upstream_authority: "127.0.0.1:3000",
            request_id: &RID,
        }
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("x-secret", "1"),
            ("x-kept", "1"),
        ]);
        remove_hop_by_hop(&mut map);
        let names: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn te_trailers_is_kept() {
        let mut map = headers(&[("te", "trailers")]);
        remove_hop_by_hop(&mut map);
        assert_eq!(map["te"], "trailers");
    }

    #[test]
    fn connection_cannot_remove_content_length_or_host() {
        let mut map = headers(&[
            ("connection", "content-length, host"),
            ("content-length", "3"),
            ("host", "a"),
        ]);
        remove_hop_by_hop(&mut map);
        assert!(map.contains_key("content-length") && map.contains_key("host"));
    }

    #[test]
    fn connection_cannot_remove_the_proxys_own_headers() {
        let mut map = headers(&[
            ("connection", "x-forwarded-for, x-request-id"),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        remove_hop_by_hop(&mut map);
        set_forwarding_headers(&mut map, &forwarding(false));
        assert_eq!(map[X_FORWARDED_FOR], "192.0.2.10");
        assert_eq!(map[REQUEST_ID], "rid");
    }

    #[test]
    fn untrusted_peer_replaces_forwarding_headers() {
        let mut map = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
        ]);
        set_forwarding_headers(&mut map, &forwarding(false));
        assert_eq!(map[X_FORWARDED_FOR], "192.0.2.10");
        assert_eq!(map[X_FORWARDED_PROTO], "http");
        assert_eq!(map[X_FORWARDED_HOST], "app.example.com:8080");
        assert!(!map.contains_key(FORWARDED) && !map.contains_key(X_REAL_IP));
    }

    #[test]
    fn trusted_peer_extends_the_chain_and_keeps_its_headers() {
        let mut map = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "public.example"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
        ]);
        set_forwarding_headers(&mut map, &forwarding(true));
        assert_eq!(map[X_FORWARDED_FOR], "1.2.3.4, 5.6.7.8, 192.0.2.10");
        assert_eq!(map[X_FORWARDED_PROTO], "https");
        assert_eq!(map[X_FORWARDED_HOST], "public.example");
        assert!(map.contains_key(FORWARDED) && map.contains_key(X_REAL_IP));
    }

    #[test]
    fn method_overrides_are_always_removed() {
        let mut map = headers(&[
            ("x-http-method-override", "DELETE"),
            ("x-http-method", "PUT"),
            ("x-method-override", "PATCH"),
        ]);
        set_forwarding_headers(&mut map, &forwarding(true));
        assert!(METHOD_OVERRIDES.iter().all(|name| !map.contains_key(name)));
    }

    #[test]
    fn host_is_the_host_the_rules_saw() {
        let mut map = headers(&[("host", "other")]);
        set_forwarding_headers(&mut map, &forwarding(false));
        assert_eq!(map[HOST], "app.example.com:8080");
        let mut no_host = HeaderMap::new();
        set_forwarding_headers(
            &mut no_host,
            &Forwarding {
                host_as_sent: None,
                ..forwarding(false)
            },
        );
        assert_eq!(no_host[HOST], "127.0.0.1:3000");
        assert!(!no_host.contains_key(X_FORWARDED_HOST));
    }

    #[test]
    fn valid_client_request_ids_are_kept_others_replaced() {
        assert_eq!(
            request_id(&headers(&[("x-request-id", "abc-123_X.y")])).as_str(),
            "abc-123_X.y"
        );
        for bad in ["has space", "semi;colon", &"a".repeat(129)] {
            let generated = request_id(&headers(&[("x-request-id", bad)]));
            assert_ne!(generated.as_str(), bad);
            assert_eq!(generated.as_str().len(), 16);
            assert!(generated.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn identity_values_are_encoded_when_unsafe() {
        let identity = Identity {
            user: "zoë smith".into(),
            roles: vec!["admin".into(), "a,b".into()],
            scheme: crate::identity::Scheme::Basic,
        };
        let mut map = HeaderMap::new();
        set_identity_headers(&mut map, &UpstreamHeaders::default(), &identity);
        assert_eq!(map["x-portcullis-user"], "zo%C3%AB%20smith");
        assert_eq!(map["x-portcullis-roles"], "admin,a%2Cb");
    }

    #[test]
    fn websocket_upgrade_needs_both_headers() {
        assert!(wants_websocket(&headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket")
        ])));
        assert!(!wants_websocket(&headers(&[("upgrade", "websocket")])));
        assert!(!wants_websocket(&headers(&[
            ("connection", "upgrade"),
            ("upgrade", "h2c")
        ])));
    }
}
