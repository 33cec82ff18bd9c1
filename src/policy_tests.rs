//! `[[test]]` cases: expectations about the policy, run by `check` and before every
//! start and reload (SPEC §2). A config whose tests fail is not deployed.
//!
//! Each case builds a request and goes through the same functions as a live request —
//! `request::inspect` for the facts, `GeoIp::locate` for the client's country and ASN,
//! and `Policy::decide` for the decision — with the stated client IP (and, when given,
//! country, ASN and identity) instead of a socket, databases and credentials. Cases run as
//! `mode = "enforce"` and without lockout.

use std::net::IpAddr;

use http::{HeaderMap, Method, StatusCode, Uri};

use crate::config::{Config, ConfigError, Location};
use crate::identity::{Credential, Identity, Scheme, read_credential};
use crate::request;
use crate::rules::{Caller, Country, NoTrace, Outcome};

/// One compiled `[[test]]`.
#[derive(Debug, Clone)]
pub struct PolicyTest {
    /// Its name, for failure messages.
    pub name: String,
    /// Where it is written.
    pub origin: Location,
    /// Request method.
    pub method: Method,
    /// Request target (absolute URL or path).
    pub uri: Uri,
    /// Request headers (`Host` is added from the target when missing).
    pub headers: HeaderMap,
    /// The client IP after the X-Forwarded-For walk.
    pub client_ip: IpAddr,
    /// The connection's peer (for trusted-header cases).
    pub peer: IpAddr,
    /// A stated country for the client IP, instead of the database's answer.
    pub country: Option<Country>,
    /// A stated ASN for the client IP, instead of the database's answer.
    pub asn: Option<u32>,
    /// A stated identity, standing in for credentials.
    pub identity: Option<Identity>,
    /// Expected status: 200 means forwarded.
    pub expect: StatusCode,
    /// The rule that must decide, when given.
    pub rule: Option<String>,
}

/// What a case produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// 200 for forwarded, else the status the proxy would answer.
    pub status: StatusCode,
    /// The deciding rule, when one matched.
    pub rule: Option<String>,
}

/// Runs one case through the live decision path.
pub fn evaluate(config: &Config, test: &PolicyTest) -> TestOutcome {
    let Ok(parts) = request::synthetic(&test.method, &test.uri, &test.headers) else {
        return TestOutcome {
            status: StatusCode::BAD_REQUEST,
            rule: None,
        };
    };
    let policy = &config.policy;
    let mut inspected = match request::inspect(&parts, test.peer, &policy.path_options, &config.server.trusted_proxies)
    {
        Ok(inspected) => inspected,
        Err(_) => {
            return TestOutcome {
                status: StatusCode::BAD_REQUEST,
                rule: None,
            };
        }
    };
    inspected.facts.client_ip = test.client_ip;
    inspected.facts.location = config.geoip.locate_stated(test.client_ip, test.country, test.asn);
    let trusted = match read_credential(&parts.headers, test.peer, &config.identity) {
        Some(Credential::Trusted { user, roles }) => Some(Identity {
            user,
            roles,
            scheme: Scheme::TrustedHeaders,
        }),
        _ => None,
    };
    let caller = match test.identity.as_ref().or(trusted.as_ref()) {
        Some(identity) => Caller::Known(identity),
        None => Caller::Anonymous,
    };
    let decision = policy.decide(&inspected.facts, &caller, &mut NoTrace);
    TestOutcome {
        // Cases run as enforce: an audit-mode denial still counts as its status.
        status: if decision.outcome == Outcome::Allow {
            StatusCode::OK
        } else {
            decision.status()
        },
        rule: decision.rule.map(|id| policy.rule_name(id).to_string()),
    }
}

/// Every failing case, as an error at the case's position.
pub fn failures(config: &Config) -> Vec<ConfigError> {
    config
        .tests
        .iter()
        .filter_map(|test| {
            let outcome = evaluate(config, test);
            let status_ok = outcome.status == test.expect;
            let rule_ok = test.rule.is_none() || test.rule == outcome.rule;
            if status_ok && rule_ok {
                return None;
            }
            let describe = |status: StatusCode, rule: Option<&str>| match rule {
                Some(rule) => format!("{} (rule \"{rule}\")", status.as_u16()),
                None => format!("{} (no rule matched)", status.as_u16()),
            };
            Some(ConfigError {
                location: test.origin.clone(),
                key: format!("test \"{}\"", test.name),
                message: format!(
                    "expected {}, got {}",
                    match &test.rule {
                        Some(rule) => format!("{} (rule \"{rule}\")", test.expect.as_u16()),
                        None => test.expect.as_u16().to_string(),
                    },
                    describe(outcome.status, outcome.rule.as_deref()),
                ),
            })
        })
        .collect()
}
