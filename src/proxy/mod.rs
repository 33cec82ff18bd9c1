//! Forwarding: one request from arrival to response (SPEC §3 and §6).
//!
//! `serve` is the outer handler: it loads the current config generation, runs
//! `handle`, and records the outcome once (metrics and the access log). `handle`
//! checks limits, builds the request facts, asks the policy, resolves the caller's
//! identity when the policy needs it (`gate`), and either writes a response itself or
//! streams the request to the upstream (`forward`). Policy lives in `rules`; this
//! module only carries out the decision.

mod body;
mod forward;
mod headers;
mod upgrade;
mod upstream;

use std::error::Error as StdError;
use std::time::Instant;

use http::header::{ACCEPT, CONTENT_LENGTH, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

pub use body::{BodyError, RequestBody, ResponseBody};
pub use headers::{RequestId, remove_hop_by_hop, request_id};
pub use upstream::{UpstreamClient, UpstreamClients, build_clients, upstream_uri};

use crate::config::Config;
use crate::identity::{Resolver, Stop};
use crate::request;
use crate::respond::{self, ResponseContext};
use crate::rules::{Caller, Country, Decision, NoTrace, Outcome};
use crate::server::MAX_HEADER_COUNT;
use crate::state::{ConnectionInfo, Generation, Shared};

/// What the access log and metrics say about one request.
#[derive(Debug, Default)]
struct Record {
    status: u16,
    decision: &'static str,
    rule: Option<usize>,
    client_ip: Option<std::net::IpAddr>,
    /// The client's country, when a rule made it look up.
    country: Option<Country>,
    /// The client's ASN, when a rule made it look up and the database knows it.
    asn: Option<u32>,
    /// The forwarded path, kept only when the access log is on.
    path: Option<String>,
    user: Option<String>,
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
    let policy = &generation.config.policy;
    // What only the access log needs is copied only when it is on.
    let logged = generation
        .config
        .log
        .access_log
        .then(|| (request.method().clone(), request.uri().path().to_string()));
    let mut record = Record::default();
    let result = handle(request, &connection, &generation, shared, &request_id, &mut record).await;
    if let Ok(response) = &result {
        record.status = response.status().as_u16();
    }
    let elapsed = started.elapsed();
    shared.metrics.request_duration.observe(elapsed.as_secs_f64());
    generation
        .request_counters
        .increment(&shared.metrics, record.decision, record.status, record.rule, || {
            record
                .rule
                .map(|id| policy.rule_name(id).to_string())
                .unwrap_or_default()
        });
    if let Some((method, raw_path)) = logged {
        tracing::info!(
            target: "access",
            request_id = %request_id,
            client_ip = %record.client_ip.unwrap_or_else(|| connection.peer.ip()),
            peer = %connection.peer.ip(),
            country = record.country.as_ref().map(Country::as_str),
            asn = record.asn,
            method = %method,
            path = %record.path.as_deref().unwrap_or(&raw_path),
            status = record.status,
            decision = record.decision,
            rule = record.rule.map_or("", |id| policy.rule_name(id)),
            user = record.user.as_deref().unwrap_or(""),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
        );
    }
    result
}

/// Everything a self-written response needs, borrowed from the request.
struct Responder<'a> {
    request_id: &'a RequestId,
    accept: Option<HeaderValue>,
    generation: &'a Generation,
}

impl Responder<'_> {
    fn problem(&self, status: StatusCode, detail: Option<&str>) -> Response<ResponseBody> {
        let context = ResponseContext {
            request_id: self.request_id.as_str(),
            accept: self.accept.as_ref(),
            bodies: &self.generation.config.responses,
        };
        respond::problem(status, detail, &context).map(ResponseBody::local)
    }

    /// The response for an enforced denial: status from the decision, challenges on a
    /// 401, the rule named only when `explain_denials` asks for it.
    fn denial(&self, decision: &Decision) -> Response<ResponseBody> {
        let config = &self.generation.config;
        let status = decision.status();
        let detail = explained_denial(config, status, decision.rule);
        let mut response = self.problem(status, detail.as_deref());
        if decision.challenges() {
            let invalid_token = matches!(
                decision.outcome,
                Outcome::Unauthenticated {
                    invalid_token: true,
                    ..
                }
            );
            for challenge in challenges(config, invalid_token) {
                response.headers_mut().append(WWW_AUTHENTICATE, challenge);
            }
        }
        response
    }
}

/// One `WWW-Authenticate` value per configured scheme (SPEC §3).
fn challenges(config: &Config, invalid_token: bool) -> Vec<HeaderValue> {
    let identity = &config.identity;
    let realm = &identity.realm;
    let mut values = Vec::new();
    if identity.basic.is_some() {
        values.push(format!("Basic realm=\"{realm}\", charset=\"UTF-8\""));
    }
    if identity.offers_bearer() {
        values.push(if invalid_token {
            format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
        } else {
            format!("Bearer realm=\"{realm}\"")
        });
    }
    values
        .into_iter()
        .filter_map(|value| HeaderValue::from_str(&value).ok())
        .collect()
}

async fn handle(
    request: Request<Incoming>,
    connection: &ConnectionInfo,
    generation: &Generation,
    shared: &Shared,
    request_id: &RequestId,
    record: &mut Record,
) -> Result<Response<ResponseBody>, BodyError> {
    let config = &generation.config;
    let responder = Responder {
        request_id,
        accept: request.headers().get(ACCEPT).cloned(),
        generation,
    };
    record.decision = "deny";

    // Limits first: nothing about an oversized head is looked at further. HTTP/1
    // heads over the count are refused by hyper already; this holds HTTP/2 to the same.
    if request.headers().len() > MAX_HEADER_COUNT
        || header_bytes(request.headers()) > config.server.max_request_header_bytes
    {
        return Ok(responder.problem(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, None));
    }

    let (parts, body) = request.into_parts();
    let mut inspected = match request::inspect(
        &parts,
        connection.peer.ip(),
        &config.policy.path_options,
        &config.server.trusted_proxies,
    ) {
        Ok(inspected) => inspected,
        Err(bad) => return Ok(responder.problem(StatusCode::BAD_REQUEST, Some(&bad.to_string()))),
    };
    record.client_ip = Some(inspected.facts.client_ip);
    let geoip = &config.geoip;
    inspected.facts.location = geoip.locate(inspected.facts.client_ip);
    record.country = geoip.looks_up_country().then_some(inspected.facts.location.country);
    record.asn = inspected.facts.location.asn;
    if config.log.access_log {
        record.path = Some(inspected.facts.path.forwarded.clone());
    }

    let first = config
        .policy
        .decide(&inspected.facts, &Caller::Unresolved, &mut NoTrace);
    let deciding_rule = first.rule;
    let resolver = Resolver {
        policy: &config.policy,
        verifier: shared.verifier(generation),
        lockout: config.identity.lockout.as_ref(),
    };
    let resolved = resolver
        .resolve(first, &inspected.facts, &parts.headers, &mut NoTrace)
        .await;
    let resolved = match resolved {
        Ok(resolved) => resolved,
        Err(Stop::Banned { retry_after, hidden }) => {
            record.rule = deciding_rule;
            if hidden {
                return Ok(responder.problem(StatusCode::NOT_FOUND, None));
            }
            let mut response = responder.problem(StatusCode::TOO_MANY_REQUESTS, None);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after));
            return Ok(response);
        }
        Err(Stop::Busy) => {
            tracing::warn!(%request_id, "password verification queue is full");
            let mut response = responder.problem(StatusCode::SERVICE_UNAVAILABLE, None);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return Ok(response);
        }
    };
    if resolved.new_bans > 0 {
        shared.metrics.lockout_bans.inc_by(u64::from(resolved.new_bans));
        tracing::warn!(client_ip = %inspected.facts.client_ip, "lockout: too many failed credentials; banned");
    }
    if let Some((scheme, reason)) = resolved.refused {
        tracing::debug!(%request_id, scheme = scheme.as_str(), reason, "credential refused");
    }
    let decision = resolved.decision;
    record.decision = decision.label();
    record.rule = decision.reported_rule();
    record.user = resolved.identity.as_ref().map(|identity| identity.user.clone());
    if !decision.forwards() {
        return Ok(responder.denial(&decision));
    }

    if let Some(limit) = config.server.max_request_body_bytes
        && content_length(&parts.headers).is_some_and(|length| length > limit)
    {
        record.decision = "deny";
        return Ok(responder.problem(StatusCode::PAYLOAD_TOO_LARGE, None));
    }

    forward::forward(
        parts,
        body,
        inspected,
        resolved.identity.as_ref(),
        connection,
        shared,
        &responder,
    )
    .await
}

/// `explain_denials`: 401/403 bodies name the deciding rule. Hidden 404s never do.
fn explained_denial(config: &Config, status: StatusCode, rule: Option<usize>) -> Option<String> {
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
