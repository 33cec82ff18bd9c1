//! The compiled rule engine: pure, synchronous, no I/O.
//!
//! A `RuleSet` holds the rules in file order plus one index per selector. Deciding a
//! request asks each index for the rules its selector admits, intersects the sets and
//! takes the lowest rule id — the first matching rule in file order — so the cost does
//! not grow with the number of rules or CIDRs. The per-rule `Rule::matches` is kept as
//! the reference the index is property-tested against.

mod bits;
mod cidr;
mod decision;
mod geo;
mod host;
mod method;
mod path_index;
mod pattern;

use std::net::IpAddr;

use http::Method;
use ipnet::IpNet;

pub use bits::RuleBits;
pub use cidr::{CidrIndex, IpRangeSet, canonical_ip, parse_cidr};
pub use decision::{Decision, NoTrace, Outcome, SelectorSets, Tracer};
pub use geo::{Country, KeyIndex, Location, parse_asn};
pub use host::{HostIndex, HostPattern};
pub use method::{MethodIndex, method_admits, parse_method};
pub use path_index::PathIndex;
pub use pattern::{Glob, PathPattern, SegmentPattern, key_segments};

use crate::identity::{Identity, Scheme};
use crate::path::{NormalizedPath, PathOptions};

/// What a request looks like to the rules: everything the decision depends on, and
/// nothing it does not. Built from the HTTP request by `request::facts`, or stated
/// directly by `explain` and `[[test]]` cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// The request method (already checked to be an upper-case token).
    pub method: Method,
    /// The effective host in match form: lowercased, no port, no trailing dot.
    pub host: Option<String>,
    /// The forwarded path and its match key.
    pub path: NormalizedPath,
    /// The client address after the X-Forwarded-For walk, canonical.
    pub client_ip: IpAddr,
    /// The connection's peer address, canonical.
    pub peer: IpAddr,
    /// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method`.
    pub preflight: bool,
    /// The client IP's country and ASN, looked up only when some rule lists them.
    pub location: Location,
}

/// What the engine knows about the caller's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// Not looked at yet: a gate answers `Outcome::NeedIdentity`.
    Unresolved,
    /// No credential presented (or trusted headers from an untrusted peer).
    Anonymous,
    /// A credential was presented and refused.
    Invalid(Scheme),
    /// A verified identity (or one stated by `explain` / `[[test]]`).
    Known(&'a Identity),
}

/// What a rule with `roles` or `authenticated` requires of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Any valid identity.
    Authenticated,
    /// An identity holding at least one of these roles.
    AnyRole(Vec<String>),
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Forward the request.
    Allow,
    /// Answer 403 (or 404 when hidden).
    Deny,
}

/// Whether rule denials are applied or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Denials are answered.
    Enforce,
    /// Denials are logged and counted as `audit`, and the request is forwarded.
    Audit,
}

/// A rule's selectors; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selectors {
    /// `ip` and `ip_file` together.
    pub ips: Option<Vec<IpNet>>,
    /// `countries`.
    pub countries: Option<Vec<Country>>,
    /// `asns`.
    pub asns: Option<Vec<u32>>,
    /// `methods`.
    pub methods: Option<Vec<Method>>,
    /// `hosts`.
    pub hosts: Option<Vec<HostPattern>>,
    /// `paths`.
    pub paths: Option<Vec<PathPattern>>,
}

/// One compiled `[[rule]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique name, shown in logs, metrics and `explain`.
    pub name: String,
    /// What happens when it decides.
    pub action: Action,
    /// Denials by this rule answer 404.
    pub hide: bool,
    /// Log what this rule would deny, then go on to the next rule.
    pub audit: bool,
    /// `roles` / `authenticated` (allow rules only).
    pub gate: Option<Gate>,
    /// The conditions under which it matches.
    pub selectors: Selectors,
    /// `FILE:LINE` of the rule, for lint warnings.
    pub origin: String,
}

impl Rule {
    /// Reference matcher: whether every selector admits the request, checked rule by
    /// rule with plain scans. The indexed engine must always agree with this.
    pub fn matches(&self, facts: &RequestFacts) -> bool {
        let selectors = &self.selectors;
        selectors
            .ips
            .as_ref()
            .is_none_or(|nets| cidr::any_contains(nets, facts.client_ip))
            && selectors
                .countries
                .as_ref()
                .is_none_or(|countries| countries.contains(&facts.location.country))
            && selectors
                .asns
                .as_ref()
                .is_none_or(|asns| facts.location.asn.is_some_and(|asn| asns.contains(&asn)))
            && selectors
                .methods
                .as_ref()
                .is_none_or(|methods| methods.iter().any(|listed| method_admits(listed, &facts.method)))
            && selectors.hosts.as_ref().is_none_or(|hosts| {
                facts
                    .host
                    .as_deref()
                    .is_some_and(|host| hosts.iter().any(|pattern| pattern.matches(host)))
            })
            && selectors
                .paths
                .as_ref()
                .is_none_or(|paths| paths.iter().any(|pattern| pattern.matches(&facts.path.key)))
    }

    /// Whether matching this rule would deny the request.
    pub fn denies(&self) -> bool {
        self.action == Action::Deny
    }
}

/// The rules in file order with their selector indexes.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    ips: CidrIndex,
    countries: KeyIndex<Country>,
    asns: KeyIndex<u32>,
    methods: MethodIndex,
    hosts: HostIndex,
    paths: PathIndex,
}

impl RuleSet {
    /// Compiles the indexes. Rule names are assumed unique (the config layer checks).
    pub fn new(rules: Vec<Rule>) -> Self {
        let count = rules.len();
        let (listed, without) = selector_lists(&rules, |s| s.ips.as_deref());
        let ips = CidrIndex::build(listed, &without);
        let (listed, without) = selector_lists(&rules, |s| s.countries.as_deref());
        let countries = KeyIndex::build(listed, &without);
        let (listed, without) = selector_lists(&rules, |s| s.asns.as_deref());
        let asns = KeyIndex::build(listed, &without);
        let (listed, without) = selector_lists(&rules, |s| s.methods.as_deref());
        let methods = MethodIndex::build(listed, &without);
        let (listed, without) = selector_lists(&rules, |s| s.hosts.as_deref());
        let hosts = HostIndex::build(count, listed, &without);
        let (listed, without) = selector_lists(&rules, |s| s.paths.as_deref());
        let paths = PathIndex::build(count, listed, &without);
        RuleSet {
            rules,
            ips,
            countries,
            asns,
            methods,
            hosts,
            paths,
        }
    }

    /// Whether some rule lists `countries`: only then is the country looked up.
    pub fn uses_countries(&self) -> bool {
        self.countries.is_used()
    }

    /// Whether some rule lists `asns`: only then is the ASN looked up.
    pub fn uses_asns(&self) -> bool {
        self.asns.is_used()
    }

    /// The rules in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How many CIDR range boundaries the IP index holds.
    pub fn cidr_boundaries(&self) -> usize {
        self.ips.boundaries()
    }

    /// The rules that match the request, in file order, by the indexes.
    pub fn matching(&self, facts: &RequestFacts, tracer: &mut impl Tracer) -> RuleBits {
        let count = self.rules.len();
        let ip = self.ips.candidates(facts.client_ip);
        let countries = self.countries.candidates(Some(facts.location.country));
        let asns = self.asns.candidates(facts.location.asn);
        let methods = self.methods.candidates(&facts.method);
        let mut hosts = RuleBits::empty(count);
        self.hosts.candidates(facts.host.as_deref(), &mut hosts);
        let mut paths = RuleBits::empty(count);
        self.paths.candidates(&facts.path.key, &mut paths);
        tracer.selectors(&SelectorSets {
            rule_count: count,
            ip,
            countries,
            asns,
            methods,
            hosts: &hosts,
            paths: &paths,
        });
        let mut matching = paths;
        matching.intersect_with(ip);
        // Most configs have no location rules: then these sets hold every rule.
        if self.countries.is_used() {
            matching.intersect_with(countries);
        }
        if self.asns.is_used() {
            matching.intersect_with(asns);
        }
        matching.intersect_with(methods);
        matching.intersect_with(&hosts);
        matching
    }
}

/// One selector across the rules, as every index is built from it: the rules that have
/// it, each with its list, and the set of rules that do not (they admit any value).
fn selector_lists<'a, T: 'a>(
    rules: &'a [Rule],
    get: fn(&Selectors) -> Option<&[T]>,
) -> (impl Iterator<Item = (usize, &'a [T])> + Clone + 'a, RuleBits) {
    let mut without = RuleBits::empty(rules.len());
    for (id, rule) in rules.iter().enumerate() {
        if get(&rule.selectors).is_none() {
            without.insert(id);
        }
    }
    let listed = rules
        .iter()
        .enumerate()
        .filter_map(move |(id, rule)| get(&rule.selectors).map(|list| (id, list)));
    (listed, without)
}

/// The compiled `[policy]` and rules: everything needed to decide a request.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The rules and their indexes.
    pub rules: RuleSet,
    /// When no rule matches.
    pub default_action: Action,
    /// Default `hide` for rules and for the default deny.
    pub default_hide: bool,
    /// Enforce or audit.
    pub mode: Mode,
    /// How request paths (and patterns) are normalized.
    pub path_options: PathOptions,
    /// 401/403 bodies name the deciding rule.
    pub explain_denials: bool,
    /// CORS preflights skip identity gates (IP, path and deny rules still apply).
    pub allow_preflight: bool,
    /// A failed gate answers 401 with challenges; false when trusted headers are the
    /// only identity source (then 403: no challenge can help).
    pub challenge: bool,
}

impl Policy {
    /// Decides a request: the first matching rule in file order, skipping (and
    /// recording) `audit = true` rules that would deny; else the default. A gate with
    /// an unresolved caller stops at `NeedIdentity`; the server resolves the identity
    /// and calls again (`explain` and `[[test]]` pass a stated one at once). In audit
    /// mode a denial is marked as not enforced. `tracer` sees each step; the server
    /// passes `NoTrace`.
    pub fn decide(&self, facts: &RequestFacts, caller: &Caller<'_>, tracer: &mut impl Tracer) -> Decision {
        let matching = self.rules.matching(facts, tracer);
        let mut decision = Decision::new(self.mode == Mode::Enforce);
        for id in matching.iter() {
            let rule = &self.rules.rules[id];
            let outcome = self.rule_outcome(rule, facts, caller);
            if rule.audit && outcome.is_denial() {
                tracer.audit_skipped(id);
                decision.audited_rules.push(id);
                continue;
            }
            decision.rule = Some(id);
            decision.outcome = outcome;
            tracer.decided(&decision);
            return decision;
        }
        decision.outcome = match self.default_action {
            Action::Allow => Outcome::Allow,
            Action::Deny => Outcome::Deny {
                hidden: self.default_hide,
            },
        };
        tracer.decided(&decision);
        decision
    }

    fn rule_outcome(&self, rule: &Rule, facts: &RequestFacts, caller: &Caller<'_>) -> Outcome {
        let hidden = rule.hide;
        let gate = match (rule.action, &rule.gate) {
            (Action::Deny, _) => return Outcome::Deny { hidden },
            (Action::Allow, None) => return Outcome::Allow,
            (Action::Allow, Some(_)) if facts.preflight && self.allow_preflight => return Outcome::Allow,
            (Action::Allow, Some(gate)) => gate,
        };
        let unauthenticated = |invalid_token| Outcome::Unauthenticated {
            hidden,
            challenge: self.challenge,
            invalid_token,
        };
        match caller {
            Caller::Unresolved => Outcome::NeedIdentity,
            Caller::Anonymous => unauthenticated(false),
            Caller::Invalid(scheme) => unauthenticated(matches!(scheme, Scheme::Jwt | Scheme::ApiKey)),
            Caller::Known(identity) => match gate {
                Gate::Authenticated => Outcome::Allow,
                Gate::AnyRole(roles) if identity.has_any_role(roles) => Outcome::Allow,
                Gate::AnyRole(_) => Outcome::MissingRole { hidden },
            },
        }
    }

    /// The name of a rule by id (from a `Decision`).
    pub fn rule_name(&self, id: usize) -> &str {
        &self.rules.rules[id].name
    }
}

#[cfg(test)]
mod tests;
