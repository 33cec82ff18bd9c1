//! Streaming an allowed request to the upstream and its response back.

use std::error::Error as StdError;

use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::body::{BodyError, RequestBody, ResponseBody};
use super::headers::{self, RequestId};
use super::upgrade;
use super::upstream::upstream_uri;
use super::{ErrorChain, Responder};
use crate::identity::{Identity, strip_credentials};
use crate::request::Inspected;
use crate::respond::REQUEST_ID;
use crate::state::{ConnectionInfo, Shared};

/// Header hygiene, then the upstream exchange. Ordering: hop-by-hop headers and every
/// identity header a client could spoof go first; credentials the upstream must not
/// see are stripped; only then are the proxy's own headers (forwarding, request id,
/// identity) set, so nothing a client sends can remove or fake them.
pub(super) async fn forward(
    mut parts: http::request::Parts,
    body: Incoming,
    inspected: Inspected,
    identity: Option<&Identity>,
    connection: &ConnectionInfo,
    shared: &Shared,
    responder: &Responder<'_>,
) -> Result<Response<ResponseBody>, BodyError> {
    let generation = responder.generation;
    let config = &generation.config;
    let server = &config.server;
    // Read the upgrade wish before hop-by-hop removal erases it.
    let websocket = parts.version == Version::HTTP_11 && headers::wants_websocket(&parts.headers);
    let client_upgrade = if websocket {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };

    let mut headers = std::mem::take(&mut parts.headers);
    headers::remove_hop_by_hop(&mut headers);
    headers::remove_identity_headers(&mut headers, config, inspected.facts.peer);
    strip_credentials(
        &mut headers,
        &config.identity,
        config.upstream_headers.forward_credentials,
    );
    headers::set_forwarding_headers(
        &mut headers,
        &headers::Forwarding {
            peer: &connection.peer_text,
            peer_trusted: server.trusted_proxies.contains(inspected.facts.peer),
            proto: if connection.tls { "https" } else { "http" },
            host_as_sent: inspected.host_as_sent.as_ref(),
            upstream_authority: server.upstream.authority.as_str(),
            request_id: responder.request_id,
        },
    );
    if let Some(identity) = identity {
        headers::set_identity_headers(&mut headers, &config.upstream_headers, identity);
    }
    if client_upgrade.is_some() {
        headers::set_websocket_upgrade(&mut headers);
    }

    let Ok(uri) = upstream_uri(
        &server.upstream,
        inspected.host_as_sent.as_ref().and_then(|host| host.to_str().ok()),
        &inspected.facts.path.forwarded,
        parts.uri.query(),
    ) else {
        return Ok(responder.problem(StatusCode::BAD_REQUEST, Some("the request target cannot be forwarded")));
    };
    let mut upstream_request = Request::new(RequestBody::new(
        body,
        server.max_request_body_bytes,
        server.timeouts.request_body,
    ));
    *upstream_request.method_mut() = parts.method;
    *upstream_request.uri_mut() = uri;
    *upstream_request.version_mut() = Version::HTTP_11;
    *upstream_request.headers_mut() = headers;

    // WebSocket upgrades need HTTP/1.1 end to end; everything else may use HTTP/2.
    let client = if client_upgrade.is_some() {
        &generation.clients.upgrade
    } else {
        &generation.clients.main
    };
    let sent = tokio::time::timeout(server.timeouts.upstream_response, client.request(upstream_request)).await;
    let mut response = match sent {
        Err(_elapsed) => {
            shared.metrics.upstream_error("timeout");
            tracing::warn!(
                request_id = %responder.request_id,
                "upstream did not answer within upstream_response"
            );
            return Ok(responder.problem(StatusCode::GATEWAY_TIMEOUT, None));
        }
        Ok(Err(error)) => return upstream_failure(&error, shared, responder),
        Ok(Ok(response)) => response,
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            shared.metrics.upstream_error("other");
            tracing::warn!(
                request_id = %responder.request_id,
                "upstream switched protocols without being asked"
            );
            return Ok(responder.problem(StatusCode::BAD_GATEWAY, None));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        upgrade::spawn_tunnel(
            &shared.tunnels,
            client_upgrade,
            upstream_upgrade,
            responder.request_id.to_string(),
        );
        let (mut response_parts, _) = response.into_parts();
        headers::remove_hop_by_hop(&mut response_parts.headers);
        headers::set_websocket_upgrade(&mut response_parts.headers);
        set_request_id(&mut response_parts.headers, responder.request_id);
        return Ok(Response::from_parts(response_parts, ResponseBody::empty()));
    }

    let (mut response_parts, response_body) = response.into_parts();
    headers::remove_hop_by_hop(&mut response_parts.headers);
    set_request_id(&mut response_parts.headers, responder.request_id);
    Ok(Response::from_parts(
        response_parts,
        ResponseBody::Upstream(response_body),
    ))
}

pub(super) fn set_request_id(headers: &mut http::HeaderMap, request_id: &RequestId) {
    headers.insert(REQUEST_ID, request_id.header_value().clone());
}

/// Maps a failed upstream exchange to a response: the client's own body errors come
/// first (413 for an oversized stream, a reset for a stalled one), then connect
/// failures (502) and everything else (502).
fn upstream_failure(
    error: &hyper_util::client::legacy::Error,
    shared: &Shared,
    responder: &Responder<'_>,
) -> Result<Response<ResponseBody>, BodyError> {
    match body_error(error) {
        Some(BodyError::TooLarge) => return Ok(responder.problem(StatusCode::PAYLOAD_TOO_LARGE, None)),
        Some(BodyError::Stalled) => return Err(BodyError::Stalled),
        Some(BodyError::Client(_)) => {
            tracing::debug!(request_id = %responder.request_id, "client body failed while forwarding");
            return Ok(responder.problem(StatusCode::BAD_REQUEST, Some("the request body could not be read")));
        }
        None => {}
    }
    let kind = if error.is_connect() { "connect" } else { "other" };
    shared.metrics.upstream_error(kind);
    tracing::warn!(request_id = %responder.request_id, kind, error = %ErrorChain(error), "upstream request failed");
    Ok(responder.problem(StatusCode::BAD_GATEWAY, None))
}

fn body_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a BodyError> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(body_error) = error.downcast_ref::<BodyError>() {
            return Some(body_error);
        }
        current = error.source();
    }
    None
}
