//! `portcullis explain`: how a request would be decided, step by step.
//!
//! The request goes through the very functions a live one does — `request::inspect`
//! for the facts, `GeoIp::locate` for the client's place, `Policy::decide` and the identity `Resolver` for the decision —
//! with a `Recorder` as the tracer where the server passes `NoTrace`. So what
//! `explain` prints is what the server does, not a second implementation of it.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::{HeaderMap, Method};
use serde::Serialize;

use crate::config::Config;
use crate::identity::{IdentityState, KeySource, Resolver, Stop, Verifier};
use crate::request;
use crate::rules::{Caller, Country, Decision, Location, Outcome, SelectorSets, Tracer};

/// What `explain` is asked about.
#[derive(Debug, Clone)]
pub struct Question {
    /// Request method.
    pub method: Method,
    /// An absolute URL or a path.
    pub target: String,
    /// A stated client IP (skips the X-Forwarded-For walk).
    pub ip: Option<IpAddr>,
    /// The connection's peer.
    pub peer: IpAddr,
    /// A stated country for the client IP (instead of the database's answer).
    pub country: Option<Country>,
    /// A stated ASN for the client IP (instead of the database's answer).
    pub asn: Option<u32>,
    /// Request headers, credentials included (they are verified).
    pub headers: HeaderMap,
}

/// The explanation, serialized for `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// Method and target as asked.
    pub request: String,
    /// The host in match form.
    pub host: Option<String>,
    /// The path the upstream would receive.
    pub forwarded_path: Option<String>,
    /// The key the rules match.
    pub match_key: Option<String>,
    /// The client IP the rules see.
    pub client_ip: Option<String>,
    /// How the client IP was found: `stated`, `peer` or `x-forwarded-for`.
    pub client_ip_source: Option<&'static str>,
    /// The peer address.
    pub peer: String,
    /// The client's country and ASN as the rules see them.
    pub location: Option<LocationReport>,
    /// Who is calling.
    pub identity: IdentityReport,
    /// Every rule in file order.
    pub rules: Vec<RuleReport>,
    /// The final decision.
    pub decision: DecisionReport,
}

/// The client's place, and where each part came from.
#[derive(Debug, Clone, Serialize)]
pub struct LocationReport {
    /// ISO code, `--` when unplaced; `None` when no rule lists `countries` (not looked up).
    pub country: Option<String>,
    /// `stated`, or the database type (`GeoLite2-Country`).
    pub country_source: Option<String>,
    /// The ASN; `None` when not looked up or not in the database.
    pub asn: Option<u32>,
    /// `stated`, or the database type (`GeoLite2-ASN`); `None` when not looked up.
    pub asn_source: Option<String>,
}

/// The caller as the identity step saw it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IdentityReport {
    /// The decision did not need it and no credential was verified.
    NotNeeded,
    /// No credential presented.
    Anonymous,
    /// A credential was refused.
    Refused {
        /// The scheme it was read as.
        scheme: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// Verified.
    Verified {
        /// User name.
        user: String,
        /// Roles.
        roles: Vec<String>,
        /// Scheme.
        scheme: &'static str,
    },
}

/// One rule's part in the decision.
#[derive(Debug, Clone, Serialize)]
pub struct RuleReport {
    /// 1-based position.
    pub position: usize,
    /// Name.
    pub name: String,
    /// `FILE:LINE`.
    pub origin: String,
    /// `matched`, `no match`, `audit: skipped`, or `not reached`.
    pub result: &'static str,
    /// Why it did not match (each failing selector), or what it decided.
    pub why: Vec<String>,
}

/// The outcome.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionReport {
    /// `allow`, `deny` or `audit`.
    pub decision: &'static str,
    /// The deciding rule, `None` when the default decided.
    pub rule: Option<String>,
    /// The status the client gets: 200 means forwarded.
    pub status: u16,
    /// Whether the request reaches the upstream.
    pub forwarded: bool,
    /// One line saying why.
    pub reason: String,
}

/// Records what the engine did for the explanation. Each `decide` call starts with
/// `selectors`, so a second pass (after the identity step) replaces the first.
#[derive(Debug, Default)]
struct Recorder {
    /// Per rule: (ip, countries, asns, methods, hosts, paths) admitted.
    selectors: Vec<[bool; 6]>,
    audit_skipped: Vec<usize>,
}

impl Tracer for Recorder {
    fn selectors(&mut self, sets: &SelectorSets<'_>) {
        self.audit_skipped.clear();
        self.selectors = (0..sets.rule_count)
            .map(|id| {
                [
                    sets.ip.contains(id),
                    sets.countries.contains(id),
                    sets.asns.contains(id),
                    sets.methods.contains(id),
                    sets.hosts.contains(id),
                    sets.paths.contains(id),
                ]
            })
            .collect();
    }

    fn audit_skipped(&mut self, rule: usize) {
        self.audit_skipped.push(rule);
    }
}

/// Explains one request against a loaded config. Credentials in the headers are
/// verified (a `jwks_url` is fetched); lockout is not applied.
pub async fn explain(config: &Config, question: &Question) -> Result<Explanation, String> {
    let uri = request::parse_target(&question.target)?;
    let parts = request::synthetic(&question.method, &uri, &question.headers)
        .map_err(|error| format!("bad request: {error}"))?;
    let request_line = format!("{} {}", question.method, question.target);
    let policy = &config.policy;
    let mut inspected = match request::inspect(
        &parts,
        question.peer,
        &policy.path_options,
        &config.server.trusted_proxies,
    ) {
        Ok(inspected) => inspected,
        Err(bad) => {
            return Ok(Explanation {
                request: request_line,
                host: None,
                forwarded_path: None,
                match_key: None,
                client_ip: None,
                client_ip_source: None,
                peer: question.peer.to_string(),
                location: None,
                identity: IdentityReport::NotNeeded,
                rules: Vec::new(),
                decision: DecisionReport {
                    decision: "deny",
                    rule: None,
                    status: 400,
                    forwarded: false,
                    reason: format!("refused before any rule: {bad}"),
                },
            });
        }
    };
    let client_ip_source = match question.ip {
        Some(ip) => {
            inspected.facts.client_ip = ip.to_canonical();
            "stated"
        }
        None if inspected.facts.client_ip == inspected.facts.peer => "peer",
        None => "x-forwarded-for",
    };
    inspected.facts.location = config
        .geoip
        .locate_stated(inspected.facts.client_ip, question.country, question.asn);
    let location = location_report(config, question, &inspected.facts.location);
    let facts = &inspected.facts;

    let state = IdentityState::default();
    let remote_jwks = match config.identity.jwt.as_ref().map(|jwt| &jwt.keys) {
        Some(KeySource::Url { url, refresh }) => Some(state.remote_jwks(url, *refresh).await?),
        _ => None,
    };
    let resolver = Resolver {
        policy,
        verifier: Verifier {
            config: &config.identity,
            state: &state,
            remote_jwks: remote_jwks.as_ref(),
        },
        lockout: None,
    };
    let mut recorder = Recorder::default();
    let first = policy.decide(facts, &Caller::Unresolved, &mut recorder);
    let needed = first.outcome == Outcome::NeedIdentity || first.forwards();
    let resolved = match resolver.resolve(first, facts, &parts.headers, &mut recorder).await {
        Ok(resolved) => resolved,
        Err(Stop::Busy | Stop::Banned { .. }) => return Err("the identity step could not run".to_string()),
    };
    let identity = match (&resolved.identity, resolved.refused) {
        (Some(identity), _) => IdentityReport::Verified {
            user: identity.user.clone(),
            roles: identity.roles.clone(),
            scheme: identity.scheme.as_str(),
        },
        (None, Some((scheme, reason))) => IdentityReport::Refused {
            scheme: scheme.as_str(),
            reason,
        },
        (None, None) if needed => IdentityReport::Anonymous,
        (None, None) => IdentityReport::NotNeeded,
    };
    let decision = &resolved.decision;
    Ok(Explanation {
        request: request_line,
        host: facts.host.clone(),
        forwarded_path: Some(facts.path.forwarded.clone()),
        match_key: Some(facts.path.key.clone()),
        client_ip: Some(facts.client_ip.to_string()),
        client_ip_source: Some(client_ip_source),
        peer: facts.peer.to_string(),
        location,
        identity,
        rules: rule_reports(config, &recorder, decision),
        decision: decision_report(config, decision),
    })
}

/// The location line: what `locate_stated` gave, and where from. `None` when neither
/// a rule nor the question involves a country or an ASN.
fn location_report(config: &Config, question: &Question, location: &Location) -> Option<LocationReport> {
    let geoip = &config.geoip;
    let source = |stated: bool, looked_up: bool, database: Option<&crate::geoip::Database>| {
        if stated {
            Some("stated".to_string())
        } else if looked_up {
            database.map(|database| database.database_type().to_string())
        } else {
            None
        }
    };
    let country_source = source(
        question.country.is_some(),
        geoip.looks_up_country(),
        geoip.country_database(),
    );
    let asn_source = source(question.asn.is_some(), geoip.looks_up_asn(), geoip.asn_database());
    if country_source.is_none() && asn_source.is_none() {
        return None;
    }
    Some(LocationReport {
        country: country_source.as_ref().map(|_| location.country.to_string()),
        country_source,
        asn: location.asn,
        asn_source,
    })
}

fn rule_reports(config: &Config, recorder: &Recorder, decision: &Decision) -> Vec<RuleReport> {
    let rules = config.policy.rules.rules();
    rules
        .iter()
        .enumerate()
        .map(|(id, rule)| {
            let admitted = recorder.selectors.get(id).copied().unwrap_or([true; 6]);
            let (result, why) = if decision.rule.is_some_and(|deciding| id > deciding) {
                ("not reached", Vec::new())
            } else if admitted.iter().all(|&ok| ok) {
                if recorder.audit_skipped.contains(&id) {
                    (
                        "audit: skipped",
                        vec!["matched and would deny; audit = true, so it is only logged".to_string()],
                    )
                } else {
                    ("matched", vec!["decides".to_string()])
                }
            } else {
                let labels = [
                    "client IP not in its ip/ip_file",
                    "country not in its countries",
                    "ASN not in its asns",
                    "method not in its methods",
                    "host not in its hosts",
                    "path not in its paths",
                ];
                let why = admitted
                    .iter()
                    .zip(labels)
                    .filter(|(ok, _)| !**ok)
                    .map(|(_, label)| label.to_string())
                    .collect();
                ("no match", why)
            };
            RuleReport {
                position: id + 1,
                name: rule.name.clone(),
                origin: rule.origin.clone(),
                result,
                why,
            }
        })
        .collect()
}

fn decision_report(config: &Config, decision: &Decision) -> DecisionReport {
    let policy = &config.policy;
    let rule = decision.rule.map(|id| policy.rule_name(id).to_string());
    let by = rule
        .as_ref()
        .map_or_else(|| "the default policy".to_string(), |name| format!("rule \"{name}\""));
    let enforced_status = decision.status().as_u16();
    let forwarded = decision.forwards();
    let what = match decision.outcome {
        Outcome::Allow => "allowed".to_string(),
        Outcome::Deny { hidden: true } => "denied, hidden as 404".to_string(),
        Outcome::Deny { hidden: false } => "denied".to_string(),
        Outcome::Unauthenticated { hidden: true, .. } => "no valid identity; hidden as 404".to_string(),
        Outcome::Unauthenticated { challenge: true, .. } => "no valid identity; challenge with 401".to_string(),
        Outcome::Unauthenticated { .. } => "no valid identity (trusted headers only): 403".to_string(),
        Outcome::MissingRole { hidden } => if hidden {
            "identity lacks the rule's roles; hidden as 404"
        } else {
            "identity lacks the rule's roles"
        }
        .to_string(),
        Outcome::NeedIdentity => "needs an identity".to_string(),
    };
    let mut reason = format!("{what} by {by}");
    if !decision.audited_rules.is_empty() {
        let names: Vec<&str> = decision.audited_rules.iter().map(|&id| policy.rule_name(id)).collect();
        let _ = write!(reason, "; audit rules that would have denied: {}", names.join(", "));
    }
    if forwarded && decision.outcome.is_denial() {
        let _ = write!(
            reason,
            "; mode = \"audit\": would answer {enforced_status}, forwarded instead"
        );
    }
    DecisionReport {
        decision: decision.label(),
        rule,
        status: if forwarded { 200 } else { enforced_status },
        forwarded,
        reason,
    }
}

/// The explanation as text for a terminal.
pub fn render_text(explanation: &Explanation) -> String {
    let mut out = String::new();
    let e = explanation;
    let _ = writeln!(out, "request    {}", e.request);
    if let (Some(forwarded), Some(key)) = (&e.forwarded_path, &e.match_key) {
        let _ = writeln!(out, "host       {}", e.host.as_deref().unwrap_or("(none)"));
        let _ = writeln!(out, "path       {forwarded}   (match key {key})");
    }
    if let (Some(ip), Some(source)) = (&e.client_ip, e.client_ip_source) {
        let _ = writeln!(out, "client ip  {ip}   ({source}; peer {})", e.peer);
    }
    if let Some(location) = &e.location {
        let mut parts = Vec::new();
        if let (Some(country), Some(source)) = (&location.country, &location.country_source) {
            parts.push(format!("country {country} ({source})"));
        }
        if let Some(source) = &location.asn_source {
            match location.asn {
                Some(asn) => parts.push(format!("AS{asn} ({source})")),
                None => parts.push(format!("no ASN ({source})")),
            }
        }
        let _ = writeln!(out, "location   {}", parts.join(", "));
    }
    let identity = match &e.identity {
        IdentityReport::NotNeeded => "not needed".to_string(),
        IdentityReport::Anonymous => "anonymous (no credential presented)".to_string(),
        IdentityReport::Refused { scheme, reason } => format!("refused {scheme} credential: {reason}"),
        IdentityReport::Verified { user, roles, scheme } => {
            format!("{user} via {scheme}, roles [{}]", roles.join(", "))
        }
    };
    let _ = writeln!(out, "identity   {identity}");
    if !e.rules.is_empty() {
        let width = e.rules.iter().map(|rule| rule.name.len()).max().unwrap_or(0);
        let _ = writeln!(out, "rules");
        for rule in &e.rules {
            let line = format!(
                "  {:>3}  {:<width$}  {:<14} {}",
                rule.position,
                rule.name,
                rule.result,
                rule.why.join("; ")
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    let verdict = if e.decision.forwarded {
        "forwarded".to_string()
    } else {
        format!("answered {}", e.decision.status)
    };
    let _ = writeln!(
        out,
        "decision   {} ({verdict}): {}",
        e.decision.decision, e.decision.reason
    );
    out
}
