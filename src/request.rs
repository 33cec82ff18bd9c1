//! From an HTTP request to the facts the rules decide on (SPEC §3 steps 1–3).
//!
//! One function, `inspect`, checks the request line and headers, picks the single
//! effective host, normalizes the path and finds the client IP. The server, `explain`
//! and `[[test]]` cases all go through it, so what the rules see is never computed two
//! ways. Nothing here does I/O.

use std::net::{IpAddr, SocketAddr};

use http::header::{HOST, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Version};

use crate::path::{self, NormalizedPath, PathError, PathOptions};
use crate::rules::{IpRangeSet, Location, RequestFacts, canonical_ip};

/// Why a request is refused with 400 before any rule runs. The messages are safe to
/// show to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// `delete` instead of `DELETE`: methods are case-sensitive, and a lower-case one
    /// would slip past a rule listing the upper-case method.
    #[error("the request method must be an upper-case token")]
    Method,
    /// HTTP/1.1 without `Host`.
    #[error("the request has no Host header")]
    MissingHost,
    /// More than one `Host`: which one the upstream believes is anyone's guess.
    #[error("the request has more than one Host header")]
    DuplicateHost,
    /// HTTP/2 `Host` disagreeing with `:authority`.
    #[error("the Host header does not match the request's authority")]
    HostMismatch,
    /// A host that is not a plain name or IP literal with an optional port.
    #[error("the request host is not a valid host name")]
    InvalidHost,
    /// A target that is neither origin-form nor absolute-form (`*` only with OPTIONS).
    #[error("the request target must be a path or an absolute http(s) URL")]
    Target,
    /// The path could not be normalized safely.
    #[error("{0}")]
    Path(#[from] PathError),
}

/// The request as the rules see it, plus the one thing forwarding needs that the rules
/// do not: the host exactly as the client sent it (port included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The decision input.
    pub facts: RequestFacts,
    /// The effective host as sent, for the upstream's `Host`.
    pub host_as_sent: Option<HeaderValue>,
}

/// Checks the request and builds its facts. `peer` is the connection's remote
/// address (after a PROXY header, when there is one).
pub fn inspect(
    parts: &Parts,
    peer: IpAddr,
    path_options: &PathOptions,
    trusted_proxies: &IpRangeSet,
) -> Result<Inspected, BadRequest> {
    check_method(&parts.method)?;
    let host_as_sent = effective_host(parts)?;
    let host = match &host_as_sent {
        Some(value) => match_form(value.to_str().map_err(|_| BadRequest::InvalidHost)?)?,
        None => None,
    };
    let path = normalize_target(parts, path_options)?;
    let peer = canonical_ip(peer);
    let client_ip = client_ip(peer, &parts.headers, trusted_proxies);
    Ok(Inspected {
        facts: RequestFacts {
            method: parts.method.clone(),
            host,
            path,
            client_ip,
            peer,
            preflight: parts.method == Method::OPTIONS && parts.headers.contains_key("access-control-request-method"),
            location: Location::default(),
        },
        host_as_sent,
    })
}

fn check_method(method: &Method) -> Result<(), BadRequest> {
    let is_upper_token = method
        .as_str()
        .bytes()
        .all(|b| !b.is_ascii_lowercase() && (b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)));
    if is_upper_token {
        Ok(())
    } else {
        Err(BadRequest::Method)
    }
}

/// The host from the absolute-form authority (HTTP/1) or `:authority` (HTTP/2), else
/// the `Host` header, with the conflicts SPEC §3 step 1 refuses.
fn effective_host(parts: &Parts) -> Result<Option<HeaderValue>, BadRequest> {
    let mut host_headers = parts.headers.get_all(HOST).iter();
    let host_header = host_headers.next();
    if host_headers.next().is_some() {
        return Err(BadRequest::DuplicateHost);
    }
    let authority = parts.uri.authority().map(|authority| authority.as_str());
    match parts.version {
        Version::HTTP_2 | Version::HTTP_3 => {
            if let (Some(authority), Some(header)) = (authority, host_header)
                && !authority.as_bytes().eq_ignore_ascii_case(header.as_bytes())
            {
                return Err(BadRequest::HostMismatch);
            }
        }
        version => {
            if version == Version::HTTP_11 && host_header.is_none() {
                return Err(BadRequest::MissingHost);
            }
        }
    }
    match authority {
        // The authority is what the request addresses; copy it into a header value.
        Some(authority) => HeaderValue::from_str(authority)
            .map(Some)
            .map_err(|_| BadRequest::InvalidHost),
        None => Ok(host_header.cloned()),
    }
}

/// `Example.COM.:8080` → `example.com`. Only plain names (letters, digits, `-`, `.`,
/// `_`, `~`) and bracketed IPv6 literals are accepted, so no escape or userinfo can
/// make the upstream see a different host than the rules did. An empty host is none.
fn match_form(host: &str) -> Result<Option<String>, BadRequest> {
    if host.is_empty() {
        return Ok(None);
    }
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']').ok_or(BadRequest::InvalidHost)?;
        let literal = &rest[..end];
        literal
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| BadRequest::InvalidHost)?;
        (&host[..end + 2], &rest[end + 1..])
    } else {
        match host.find(':') {
            Some(colon) => (&host[..colon], &host[colon..]),
            None => (host, ""),
        }
    };
    if !port.is_empty() {
        let digits = port.strip_prefix(':').ok_or(BadRequest::InvalidHost)?;
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadRequest::InvalidHost);
        }
    }
    if !name.starts_with('[') && !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
        return Err(BadRequest::InvalidHost);
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.starts_with('.') || trimmed.contains("..") {
        return Err(BadRequest::InvalidHost);
    }
    Ok(Some(trimmed.to_ascii_lowercase()))
}

/// Origin-form paths and absolute-form `http(s)` URLs are normalized; `*` is allowed
/// only with OPTIONS and matches only rules without a `paths` selector.
fn normalize_target(parts: &Parts, options: &PathOptions) -> Result<NormalizedPath, BadRequest> {
    let uri = &parts.uri;
    if let Some(scheme) = uri.scheme_str()
        && scheme != "http"
        && scheme != "https"
    {
        return Err(BadRequest::Target);
    }
    let path = uri.path();
    if path == "*" {
        if parts.method == Method::OPTIONS && uri.query().is_none() {
            return Ok(NormalizedPath {
                forwarded: "*".to_string(),
                key: "*".to_string(),
            });
        }
        return Err(BadRequest::Target);
    }
    if !path.starts_with('/') {
        return Err(BadRequest::Target);
    }
    Ok(path::normalize(path, options)?)
}

/// A target as `explain` and `[[test]]` accept it: an absolute `http(s)` URL or a path.
pub fn parse_target(target: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = target.parse().map_err(|_| format!("`{target}` is not a URL or path"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        (None, None) if target.starts_with('/') => Ok(uri),
        _ => Err(format!("`{target}` must be an http(s) URL or a path starting with /")),
    }
}

/// Builds the head of a request that never came over a socket (`explain`,
/// `[[test]]`): the method and target as written, the given headers, and `Host`
/// from an absolute URL or `localhost` when no header names one.
pub fn synthetic(method: &Method, uri: &http::Uri, headers: &HeaderMap) -> Result<Parts, http::Error> {
    let mut builder = http::Request::builder().method(method.clone()).uri(uri.clone());
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    if !headers.contains_key(HOST) {
        builder = builder.header(
            HOST,
            uri.authority().map_or("localhost", |authority| authority.as_str()),
        );
    }
    Ok(builder.body(())?.into_parts().0)
}

/// SPEC §3 step 3: the peer, unless it is a trusted proxy; then `X-Forwarded-For`
/// walked from the right, skipping trusted hops. The first untrusted address is the
/// client; an unparseable entry stops the walk at the last trusted hop; when every
/// hop is trusted, the leftmost is the client.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &IpRangeSet) -> IpAddr {
    if !trusted_proxies.contains(peer) {
        return peer;
    }
    let mut last_trusted = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(text) = value.to_str() else {
            return last_trusted;
        };
        for entry in text.rsplit(',') {
            let Some(hop) = parse_forwarded_address(entry.trim()) else {
                return last_trusted;
            };
            if !trusted_proxies.contains(hop) {
                return hop;
            }
            last_trusted = hop;
        }
    }
    last_trusted
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some(canonical_ip(socket.ip()));
    }
    let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|v6| canonical_ip(IpAddr::V6(v6)))
}

#[cfg(test)]
mod tests;
