//! The responses portcullis writes itself (SPEC §7).
//!
//! `application/problem+json` (RFC 9457) by default, a small HTML page when the client
//! prefers `text/html`, or the operator's own body from `[responses]`. Details are
//! generic: they never name a rule, a role or an internal address unless
//! `explain_denials` asks for it on a 401/403, and a hidden 404 is the same bytes
//! whatever rule produced it (apart from the request id).

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

/// The `x-request-id` header name, shared by the proxy and its own responses.
pub const REQUEST_ID: &str = "x-request-id";

/// Operator-supplied bodies from `[responses]`, read at load time.
#[derive(Debug, Clone, Default)]
pub struct CustomBodies {
    bodies: HashMap<StatusCode, (&'static str, Bytes)>,
}

impl CustomBodies {
    /// Registers the body for one status.
    pub fn insert(&mut self, status: StatusCode, content_type: &'static str, body: Bytes) {
        self.bodies.insert(status, (content_type, body));
    }

    fn get(&self, status: StatusCode) -> Option<&(&'static str, Bytes)> {
        self.bodies.get(&status)
    }
}

/// Everything a self-written response depends on besides the status.
#[derive(Debug, Clone, Copy)]
pub struct ResponseContext<'a> {
    /// Echoed in the body and the `x-request-id` header.
    pub request_id: &'a str,
    /// The client's `Accept`, to choose between JSON and HTML.
    pub accept: Option<&'a HeaderValue>,
    /// `[responses]`.
    pub bodies: &'a CustomBodies,
}

/// The generic detail text for a status: what the client may know.
pub fn default_detail(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The request is malformed.",
        401 => "Authentication is required to access this resource.",
        403 => "Access to this resource is forbidden.",
        404 => "The requested resource was not found.",
        413 => "The request body is larger than allowed.",
        429 => "Too many failed attempts; try again later.",
        431 => "The request headers are too large.",
        502 => "The upstream server could not be reached.",
        503 => "The service is temporarily unavailable.",
        504 => "The upstream server did not answer in time.",
        _ => "The request could not be completed.",
    }
}

/// Builds a self-written response. `detail` overrides the generic text (400 reasons,
/// `explain_denials`); callers must only pass text that is safe for the client.
pub fn problem(status: StatusCode, detail: Option<&str>, context: &ResponseContext<'_>) -> Response<Bytes> {
    let (content_type, body) = match context.bodies.get(status) {
        Some((content_type, body)) => (*content_type, body.clone()),
        None => {
            let detail = detail.unwrap_or_else(|| default_detail(status));
            if prefers_html(context.accept) {
                (
                    "text/html; charset=utf-8",
                    html_body(status, detail, context.request_id),
                )
            } else {
                (
                    "application/problem+json",
                    json_body(status, detail, context.request_id),
                )
            }
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(context.request_id) {
        headers.insert(REQUEST_ID, value);
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// The RFC 9457 body, written directly: denials are the cheapest requests to answer and
/// must stay cheap, so no JSON value tree is built per response.
fn json_body(status: StatusCode, detail: &str, request_id: &str) -> Bytes {
    let mut body = String::with_capacity(96 + detail.len() + request_id.len());
    body.push_str("{\"type\":\"about:blank\",\"title\":");
    push_json_string(&mut body, title(status));
    body.push_str(",\"status\":");
    body.push_str(status.as_str());
    body.push_str(",\"detail\":");
    push_json_string(&mut body, detail);
    body.push_str(",\"request_id\":");
    push_json_string(&mut body, request_id);
    body.push('}');
    Bytes::from(body)
}

/// Appends `text` as a JSON string literal (RFC 8259 §7).
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn html_body(status: StatusCode, detail: &str, request_id: &str) -> Bytes {
    let code = status.as_u16();
    let title = title(status);
    Bytes::from(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\n\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{code} {title}</h1><p>{}</p>\
         <p><small>Request ID: {}</small></p></body></html>\n",
        escape_html(detail),
        escape_html(request_id),
    ))
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Whether `Accept` ranks `text/html` above JSON. Browsers send
/// `text/html,…,*/*;q=0.8` (HTML wins); curl sends `*/*` (a tie, so JSON).
fn prefers_html(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    for range in accept.split(',') {
        let mut params = range.split(';');
        let media = params.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = params
            .filter_map(|param| param.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" => html = html.max(quality),
            "application/problem+json" | "application/json" => json = json.max(quality),
            "text/*" => html = html.max(quality * 0.99),
            "application/*" => json = json.max(quality * 0.99),
            "*/*" => {
                html = html.max(quality * 0.98);
                json = json.max(quality * 0.98);
            }
            _ => {}
        }
    }
    html > json
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context<'a>(accept: Option<&'a HeaderValue>, bodies: &'a CustomBodies) -> ResponseContext<'a> {
        ResponseContext {
            request_id: "req-1",
            accept,
            bodies,
        }
    }

    #[test]
    fn default_is_problem_json_with_request_id() {
        let bodies = CustomBodies::default();
        let response = problem(StatusCode::FORBIDDEN, None, &context(None, &bodies));
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[REQUEST_ID], "req-1");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["status"], 403);
        assert_eq!(body["title"], "Forbidden");
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(body["type"], "about:blank");
    }

    #[test]
    fn json_details_are_escaped() {
        let bodies = CustomBodies::default();
        let detail = "quote \" backslash \\ newline \n tab \t é";
        let response = problem(StatusCode::BAD_REQUEST, Some(detail), &context(None, &bodies));
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["detail"], detail);
        assert_eq!(body["status"], 400);
    }

    #[test]
    fn browsers_get_html() {
        let bodies = CustomBodies::default();
        let accept = HeaderValue::from_static("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        let response = problem(StatusCode::NOT_FOUND, None, &context(Some(&accept), &bodies));
        assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(std::str::from_utf8(response.body()).unwrap().contains("404 Not Found"));
    }

    #[test]
    fn curl_and_json_clients_get_json() {
        for accept in [
            "*/*",
            "application/json",
            "application/json, text/html;q=0.5",
            "text/html;q=0",
        ] {
            let value = HeaderValue::from_static(accept);
            assert!(!prefers_html(Some(&value)), "{accept}");
        }
    }

    #[test]
    fn html_details_are_escaped() {
        let bodies = CustomBodies::default();
        let accept = HeaderValue::from_static("text/html");
        let response = problem(
            StatusCode::BAD_REQUEST,
            Some("<script>"),
            &context(Some(&accept), &bodies),
        );
        assert!(!std::str::from_utf8(response.body()).unwrap().contains("<script>"));
    }

    #[test]
    fn custom_bodies_replace_the_generated_ones() {
        let mut bodies = CustomBodies::default();
        bodies.insert(
            StatusCode::NOT_FOUND,
            "text/html; charset=utf-8",
            Bytes::from_static(b"<h1>nope</h1>"),
        );
        let response = problem(StatusCode::NOT_FOUND, None, &context(None, &bodies));
        assert_eq!(response.body().as_ref(), b"<h1>nope</h1>");
        assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    }

    #[test]
    fn only_401_and_403_are_no_store() {
        let bodies = CustomBodies::default();
        let response = problem(StatusCode::NOT_FOUND, None, &context(None, &bodies));
        assert!(response.headers().get(CACHE_CONTROL).is_none());
    }
}
