//! `[[test]]` tables into `PolicyTest` values.

use std::collections::HashSet;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use toml::Spanned;

use super::Compiler;
use crate::config::raw::RawTest;
use crate::identity::{Identity, Scheme};
use crate::policy_tests::PolicyTest;
use crate::rules::{Country, parse_asn};

/// The client IP a case has when it states none (TEST-NET-1, RFC 5737).
const DEFAULT_CLIENT_IP: &str = "192.0.2.1";

pub(super) fn compile_tests(
    c: &mut Compiler<'_>,
    raw: Vec<Spanned<RawTest>>,
    rule_names: &HashSet<&str>,
) -> Vec<PolicyTest> {
    let mut names = HashSet::new();
    let mut tests = Vec::new();
    for spanned in raw {
        let origin = c.source.location(spanned.span().start);
        let raw = spanned.into_inner();
        let name = raw.name.get_ref().trim().to_string();
        let key = format!("test \"{name}\"");
        if name.is_empty() {
            c.error(&raw.name, "test.name", "a test needs a non-empty name");
        } else if !names.insert(name.clone()) {
            c.error(&raw.name, "test.name", format!("test name `{name}` is used twice"));
        }
        let request = c.check(&raw.request, &format!("{key}.request"), |text| parse_request(text));
        let client_ip = match &raw.ip {
            Some(ip) => c.check(ip, &format!("{key}.ip"), |text| parse_ip(text)),
            None => DEFAULT_CLIENT_IP.parse().ok(),
        };
        let peer = match &raw.peer {
            Some(peer) => c.check(peer, &format!("{key}.peer"), |text| parse_ip(text)),
            None => client_ip,
        };
        let mut headers = HeaderMap::new();
        if let Some(list) = &raw.headers {
            for (header, value) in list.get_ref() {
                match (HeaderName::from_bytes(header.as_bytes()), HeaderValue::from_str(value)) {
                    (Ok(header), Ok(value)) => {
                        headers.append(header, value);
                    }
                    _ => c.error(
                        list,
                        &format!("{key}.headers"),
                        format!("`{header}: {value}` is not a valid header"),
                    ),
                }
            }
        }
        // Outer `None`: stated but invalid (recorded); `Some(None)`: not stated.
        let country = match &raw.country {
            Some(code) => c
                .check(code, &format!("{key}.country"), |text| Country::parse(text))
                .map(Some),
            None => Some(None),
        };
        let asn = match &raw.asn {
            Some(number) => c
                .check(number, &format!("{key}.asn"), |number| parse_asn(*number))
                .map(Some),
            None => Some(None),
        };
        let expect = c.check(&raw.expect, &format!("{key}.expect"), |code| parse_expect(*code));
        if let Some(rule) = &raw.rule
            && !rule_names.contains(rule.get_ref().as_str())
        {
            c.error(
                rule,
                &format!("{key}.rule"),
                format!("there is no rule named `{}`", rule.get_ref()),
            );
        }
        let (Some((method, uri)), Some(client_ip), Some(peer), Some(expect), Some(country), Some(asn)) =
            (request, client_ip, peer, expect, country, asn)
        else {
            continue;
        };
        tests.push(PolicyTest {
            name,
            origin,
            method,
            uri,
            headers,
            client_ip,
            peer,
            country,
            asn,
            identity: raw.identity.map(|stated| Identity {
                user: stated.user,
                roles: stated.roles,
                scheme: Scheme::Stated,
            }),
            expect,
            rule: raw.rule.map(Spanned::into_inner),
        });
    }
    tests
}

/// `GET https://admin.example.com/x` or `GET /x` (then `Host: localhost`).
fn parse_request(text: &str) -> Result<(Method, Uri), String> {
    let mut words = text.split_whitespace();
    let (Some(method), Some(target), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!(
            "`{text}` should be a method and a URL or path, like \"GET https://app.example/admin\""
        ));
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| format!("`{method}` is not an HTTP method"))?;
    Ok((method, crate::request::parse_target(target)?))
}

fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| format!("`{text}` is not an IP address"))
}

fn parse_expect(code: u16) -> Result<StatusCode, String> {
    match code {
        200 | 400 | 401 | 403 | 404 => Ok(StatusCode::from_u16(code).expect("a valid status")),
        _ => Err(format!("`{code}`: expect 200 (forwarded), 400, 401, 403 or 404")),
    }
}
