//! Forwarding: one request from arrival to response (SPEC §3 and §6).
//!
//! `serve` is the outer handler: it loads the current config generation, runs
//! `handle`, and records the outcome once (metrics and the access log). `handle`
//! checks limits, builds the request facts, asks the policy, and either writes a
//! response itself or streams the request to the upstream. Policy lives in `rules`;
//! this module only carries out the decision.

mod body;
mod headers;
mod upgrade;
mod upstream;

use std::error::Error as StdError;
use std::time::Instant;

use http::header::{ACCEPT, CONTENT_LENGTH, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;

pub use body::{BodyError, RequestBody, ResponseBody};
pub use headers::{remove_hop_by_hop, request_id};
pub use upstream::{UpstreamClient, build_client, upstream_uri};

use crate::metrics::RequestLabels;
use crate::request::{self, Inspected};
use crate::respond::{self, REQUEST_ID, ResponseContext};
use crate::rules::NoTrace;
use crate::server::MAX_HEADER_COUNT;
use crate::state::{ConnectionInfo, Generation, Shared};

/// What the access log and metrics say about one request.
#[derive(Debug, Default)]
struct Outcome {
    status: u16,
    decision: &'static str,
    rule: Option<String>,
    client_ip: Option<std::net::IpAddr>,
    path: Option<String>,
}

/// Handles one request. An `Err` resets the connection (HTTP/1) or the stream
/// (HTTP/2): the only such case is a client body that stalls past
/// `timeouts.request_body` or breaks, where no response can help.
pub async fn serve(
    request: Request<Incoming>,
    connection: ConnectionInfo,
    shared: &Shared,
) -> Result<Response<ResponseBody>, BodyError> {
    let started = Instant::now();
    let generation = shared.current();
    let request_id = request_id(request.headers());
    let method = request.method().clone();
    let raw_path = request.uri().path().to_string();
    let mut outcome = Outcome::default();
    let result = handle(request, connection, &generation, shared, &request_id, &mut outcome).await;
    if let Ok(response) = &result {
        outcome.status = response.status().as_u16();
    }
    let elapsed = started.elapsed();
    shared.metrics.request_duration.observe(elapsed.as_secs_f64());
    shared
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            decision: outcome.decision,
            status: outcome.status,
            rule: outcome.rule.clone().unwrap_or_default(),
        })
        .inc();
    if generation.config.log.access_log {
        tracing::info!(
            target: "access",
            request_id = %request_id,
            client_ip = %outcome.client_ip.map_or_else(|| connection.peer.ip().to_string(), |ip| ip.to_string()),
            peer = %connection.peer.ip(),
            method = %method,
            path = %outcome.path.as_deref().unwrap_or(&raw_path),
            status = outcome.status,
            decision = outcome.decision,
            rule = outcome.rule.as_deref().unwrap_or(""),
            user = "",
            duration_ms = elapsed.as_secs_f64() * 1000.0,
        );
    }
    result
}

/// Everything a self-written response needs, borrowed from the request.
struct Responder<'a> {
    request_id: &'a str,
    accept: Option<HeaderValue>,
    generation: &'a Generation,
}

impl Responder<'_> {
    fn problem(&self, status: StatusCode, detail: Option<&str>) -> Response<ResponseBody> {
        let context = ResponseContext {
            request_id: self.request_id,
            accept: self.accept.as_ref(),
            bodies: &self.generation.config.responses,
        };
        respond::problem(status, detail, &context).map(ResponseBody::local)
    }
}

async fn handle(
    request: Request<Incoming>,
    connection: ConnectionInfo,
    generation: &Generation,
    shared: &Shared,
    request_id: &str,
    outcome: &mut Outcome,
) -> Result<Response<ResponseBody>, BodyError> {
    let config = &generation.config;
    let responder = Responder {
        request_id,
        accept: request.headers().get(ACCEPT).cloned(),
        generation,
    };
    outcome.decision = "deny";

    // Limits first: nothing about an oversized head is looked at further. HTTP/1
    // heads over the count are refused by hyper already; this holds HTTP/2 to the same.
    if request.headers().len() > MAX_HEADER_COUNT
        || header_bytes(request.headers()) > config.server.max_request_header_bytes
    {
        return Ok(responder.problem(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, None));
    }

    let (parts, body) = request.into_parts();
    let inspected = match request::inspect(
        &parts,
        connection.peer.ip(),
        &config.policy.path_options,
        &config.server.trusted_proxies,
    ) {
        Ok(inspected) => inspected,
        Err(bad) => return Ok(responder.problem(StatusCode::BAD_REQUEST, Some(&bad.to_string()))),
    };
    outcome.client_ip = Some(inspected.facts.client_ip);
    outcome.path = Some(inspected.facts.path.forwarded.clone());

    let decision = config.policy.decide(&inspected.facts, &mut NoTrace);
    outcome.decision = decision.label();
    outcome.rule = decision
        .reported_rule()
        .map(|id| config.policy.rule_name(id).to_string());
    if !decision.forwards() {
        let status = decision.status();
        let detail = explained_denial(config, status, decision.rule);
        return Ok(responder.problem(status, detail.as_deref()));
    }

    if let Some(limit) = config.server.max_request_body_bytes
        && content_length(&parts.headers).is_some_and(|length| length > limit)
    {
        outcome.decision = "deny";
        return Ok(responder.problem(StatusCode::PAYLOAD_TOO_LARGE, None));
    }

    forward(parts, body, inspected, connection, generation, shared, &responder).await
}

/// `explain_denials`: 401/403 bodies name the deciding rule. Hidden 404s never do.
fn explained_denial(config: &crate::config::Config, status: StatusCode, rule: Option<usize>) -> Option<String> {
    if !config.policy.explain_denials || status == StatusCode::NOT_FOUND {
        return None;
    }
    Some(match rule {
        Some(id) => format!("Denied by rule `{}`.", config.policy.rule_name(id)),
        None => "Denied by the default policy.".to_string(),
    })
}

/// Names plus values of every header, the measure `max_request_header_bytes` limits
/// on both protocols.
fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

async fn forward(
    mut parts: http::request::Parts,
    body: Incoming,
    inspected: Inspected,
    connection: ConnectionInfo,
    generation: &Generation,
    shared: &Shared,
    responder: &Responder<'_>,
) -> Result<Response<ResponseBody>, BodyError> {
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
    headers::set_forwarding_headers(
        &mut headers,
        &headers::Forwarding {
            peer: inspected.facts.peer,
            peer_trusted: server.trusted_proxies.contains(inspected.facts.peer),
            proto: if connection.tls { "https" } else { "http" },
            host_as_sent: inspected.host_as_sent.as_deref(),
            upstream_authority: server.upstream.authority.as_str(),
            request_id: responder.request_id,
        },
    );
    if client_upgrade.is_some() {
        headers::set_websocket_upgrade(&mut headers);
    }

    let Ok(uri) = upstream_uri(&server.upstream, &inspected.facts.path.forwarded, parts.uri.query()) else {
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

    let sent = tokio::time::timeout(
        server.timeouts.upstream_response,
        generation.client.request(upstream_request),
    )
    .await;
    let mut response = match sent {
        Err(_elapsed) => {
            shared.metrics.upstream_error("timeout");
            tracing::warn!(
                request_id = responder.request_id,
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
                request_id = responder.request_id,
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

fn set_request_id(headers: &mut http::HeaderMap, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, value);
    }
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
            tracing::debug!(request_id = responder.request_id, "client body failed while forwarding");
            return Ok(responder.problem(StatusCode::BAD_REQUEST, Some("the request body could not be read")));
        }
        None => {}
    }
    let kind = if error.is_connect() { "connect" } else { "other" };
    shared.metrics.upstream_error(kind);
    tracing::warn!(request_id = responder.request_id, kind, error = %ErrorChain(error), "upstream request failed");
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

/// Displays an error with its whole chain of causes, `a: b: c`.
pub struct ErrorChain<'a>(pub &'a (dyn StdError + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
