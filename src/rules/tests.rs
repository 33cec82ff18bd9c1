//! Engine behaviour, and the property that the indexed engine always agrees with the
//! per-rule reference matcher.

use std::net::IpAddr;

use http::Method;
use proptest::prelude::*;

use super::*;
use crate::identity::{Identity, Scheme};
use crate::path::{self, PathOptions};

fn facts(method: &str, host: Option<&str>, path: &str, ip: &str) -> RequestFacts {
    let ip: IpAddr = ip.parse().unwrap();
    RequestFacts {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        host: host.map(str::to_string),
        path: path::normalize(path, &PathOptions::default()).unwrap(),
        client_ip: ip,
        peer: ip,
        preflight: false,
        location: Location::default(),
    }
}

fn rule(name: &str, action: Action, selectors: Selectors) -> Rule {
    Rule {
        name: name.to_string(),
        action,
        hide: false,
        audit: false,
        gate: None,
        selectors,
        origin: format!("test.toml:{name}"),
    }
}

fn paths(list: &[&str]) -> Option<Vec<PathPattern>> {
    Some(
        list.iter()
            .map(|p| PathPattern::parse(p, &PathOptions::default()).unwrap())
            .collect(),
    )
}

fn ips(list: &[&str]) -> Option<Vec<IpNet>> {
    Some(list.iter().map(|c| parse_cidr(c).unwrap()).collect())
}

fn policy(rules: Vec<Rule>, default_action: Action) -> Policy {
    Policy {
        rules: RuleSet::new(rules),
        default_action,
        default_hide: false,
        mode: Mode::Enforce,
        path_options: PathOptions::default(),
        explain_denials: false,
        allow_preflight: false,
        challenge: true,
    }
}

fn decided_by<'a>(policy: &'a Policy, facts: &RequestFacts) -> Option<&'a str> {
    policy
        .decide(facts, &Caller::Unresolved, &mut NoTrace)
        .rule
        .map(|id| policy.rule_name(id))
}

#[test]
fn first_matching_rule_in_file_order_wins() {
    let p = policy(
        vec![
            rule(
                "deny-admin",
                Action::Deny,
                Selectors {
                    paths: paths(&["/admin/**"]),
                    ..Selectors::default()
                },
            ),
            rule("allow-all", Action::Allow, Selectors::default()),
            rule(
                "never",
                Action::Deny,
                Selectors {
                    paths: paths(&["/admin/**"]),
                    ..Selectors::default()
                },
            ),
        ],
        Action::Deny,
    );
    let admin = facts("GET", None, "/admin/x", "192.0.2.1");
    assert_eq!(decided_by(&p, &admin), Some("deny-admin"));
    assert_eq!(
        p.decide(&admin, &Caller::Unresolved, &mut NoTrace).outcome,
        Outcome::Deny { hidden: false }
    );
    assert_eq!(
        decided_by(&p, &facts("GET", None, "/public", "192.0.2.1")),
        Some("allow-all")
    );
}

#[test]
fn no_matching_rule_falls_to_the_default() {
    let only_health = vec![rule(
        "health",
        Action::Allow,
        Selectors {
            paths: paths(&["/healthz"]),
            ..Selectors::default()
        },
    )];
    let deny = policy(only_health.clone(), Action::Deny);
    let other = facts("GET", None, "/other", "192.0.2.1");
    let decision = deny.decide(&other, &Caller::Unresolved, &mut NoTrace);
    assert_eq!(
        (decision.rule, decision.outcome),
        (None, Outcome::Deny { hidden: false })
    );
    let allow = policy(only_health, Action::Allow);
    assert_eq!(
        allow.decide(&other, &Caller::Unresolved, &mut NoTrace).outcome,
        Outcome::Allow
    );
}

#[test]
fn a_rule_without_selectors_matches_everything() {
    let p = policy(vec![rule("all", Action::Deny, Selectors::default())], Action::Allow);
    assert_eq!(
        decided_by(&p, &facts("PATCH", Some("x.test"), "/anything", "2001:db8::1")),
        Some("all")
    );
}

#[test]
fn every_selector_of_a_rule_must_match() {
    let p = policy(
        vec![rule(
            "office-admin",
            Action::Allow,
            Selectors {
                ips: ips(&["10.0.0.0/8"]),
                countries: countries(&["DE"]),
                asns: Some(vec![64496]),
                methods: Some(vec![Method::GET]),
                hosts: Some(vec![HostPattern::parse("admin.example.com").unwrap()]),
                paths: paths(&["/admin/**"]),
            },
        )],
        Action::Deny,
    );
    let from = |country: &str, asn: Option<u32>, facts: RequestFacts| RequestFacts {
        location: Location {
            country: Country::parse(country).unwrap(),
            asn,
        },
        ..facts
    };
    let office = |facts: RequestFacts| from("DE", Some(64496), facts);
    assert_eq!(
        decided_by(
            &p,
            &office(facts("GET", Some("admin.example.com"), "/admin/x", "10.1.1.1"))
        ),
        Some("office-admin")
    );
    assert_eq!(
        decided_by(
            &p,
            &office(facts("HEAD", Some("admin.example.com"), "/admin/x", "10.1.1.1"))
        ),
        Some("office-admin")
    );
    for miss in [
        office(facts("POST", Some("admin.example.com"), "/admin/x", "10.1.1.1")),
        office(facts("GET", Some("www.example.com"), "/admin/x", "10.1.1.1")),
        office(facts("GET", None, "/admin/x", "10.1.1.1")),
        office(facts("GET", Some("admin.example.com"), "/public", "10.1.1.1")),
        office(facts("GET", Some("admin.example.com"), "/admin/x", "11.1.1.1")),
        from(
            "FR",
            Some(64496),
            facts("GET", Some("admin.example.com"), "/admin/x", "10.1.1.1"),
        ),
        from(
            "DE",
            Some(64497),
            facts("GET", Some("admin.example.com"), "/admin/x", "10.1.1.1"),
        ),
        from(
            "DE",
            None,
            facts("GET", Some("admin.example.com"), "/admin/x", "10.1.1.1"),
        ),
    ] {
        assert_eq!(decided_by(&p, &miss), None, "{miss:?}");
    }
}

#[test]
fn hidden_rules_deny_with_404() {
    let mut hidden = rule(
        "secret",
        Action::Deny,
        Selectors {
            paths: paths(&["/secret/**"]),
            ..Selectors::default()
        },
    );
    hidden.hide = true;
    let p = policy(vec![hidden], Action::Allow);
    let decision = p.decide(
        &facts("GET", None, "/secret/x", "192.0.2.1"),
        &Caller::Unresolved,
        &mut NoTrace,
    );
    assert_eq!(decision.status(), http::StatusCode::NOT_FOUND);
}

#[test]
fn audit_rules_that_would_deny_are_recorded_and_skipped() {
    let mut trial = rule(
        "trial-block",
        Action::Deny,
        Selectors {
            ips: ips(&["192.0.2.0/24"]),
            ..Selectors::default()
        },
    );
    trial.audit = true;
    let p = policy(
        vec![trial, rule("all", Action::Allow, Selectors::default())],
        Action::Deny,
    );
    let decision = p.decide(&facts("GET", None, "/", "192.0.2.1"), &Caller::Unresolved, &mut NoTrace);
    assert_eq!(decision.outcome, Outcome::Allow);
    assert_eq!(decision.audited_rules.as_slice(), &[0]);
    assert_eq!(decision.label(), "audit");
}

#[test]
fn audit_mode_marks_denials_as_not_enforced() {
    let mut p = policy(vec![rule("deny", Action::Deny, Selectors::default())], Action::Deny);
    p.mode = Mode::Audit;
    let decision = p.decide(&facts("GET", None, "/", "192.0.2.1"), &Caller::Unresolved, &mut NoTrace);
    assert!(decision.forwards());
    assert_eq!(decision.label(), "audit");
}

#[test]
fn ipv4_mapped_client_addresses_match_ipv4_rules() {
    let p = policy(
        vec![rule(
            "block",
            Action::Deny,
            Selectors {
                ips: ips(&["203.0.113.0/24"]),
                ..Selectors::default()
            },
        )],
        Action::Allow,
    );
    let mapped = canonical_ip("::ffff:203.0.113.9".parse().unwrap());
    let mut request = facts("GET", None, "/", "203.0.113.9");
    request.client_ip = mapped;
    assert_eq!(decided_by(&p, &request), Some("block"));
}

fn located(country: &str, asn: Option<u32>, path: &str) -> RequestFacts {
    RequestFacts {
        location: Location {
            country: Country::parse(country).unwrap(),
            asn,
        },
        ..facts("GET", None, path, "192.0.2.1")
    }
}

fn countries(list: &[&str]) -> Option<Vec<Country>> {
    Some(list.iter().map(|c| Country::parse(c).unwrap()).collect())
}

#[test]
fn a_country_rule_matches_the_clients_country_and_combines_with_paths() {
    let p = policy(
        vec![rule(
            "embargo-login",
            Action::Deny,
            Selectors {
                countries: countries(&["KP", "ir"]),
                paths: paths(&["/login"]),
                ..Selectors::default()
            },
        )],
        Action::Allow,
    );
    assert_eq!(decided_by(&p, &located("KP", None, "/login")), Some("embargo-login"));
    assert_eq!(decided_by(&p, &located("IR", None, "/login")), Some("embargo-login"));
    assert_eq!(decided_by(&p, &located("KP", None, "/home")), None);
    assert_eq!(decided_by(&p, &located("DE", None, "/login")), None);
    assert!(p.rules.uses_countries());
    assert!(!p.rules.uses_asns());
}

#[test]
fn an_unplaced_client_matches_only_rules_listing_the_unknown_country() {
    let p = policy(
        vec![
            rule(
                "unplaced",
                Action::Deny,
                Selectors {
                    countries: countries(&["--"]),
                    ..Selectors::default()
                },
            ),
            rule(
                "germany",
                Action::Allow,
                Selectors {
                    countries: countries(&["DE"]),
                    ..Selectors::default()
                },
            ),
        ],
        Action::Deny,
    );
    assert_eq!(decided_by(&p, &located("--", None, "/")), Some("unplaced"));
    assert_eq!(decided_by(&p, &located("DE", None, "/")), Some("germany"));
    assert_eq!(decided_by(&p, &located("FR", None, "/")), None);
}

#[test]
fn an_asn_rule_never_matches_a_client_without_an_asn() {
    let p = policy(
        vec![rule(
            "hosting",
            Action::Deny,
            Selectors {
                asns: Some(vec![64496, 64511]),
                ..Selectors::default()
            },
        )],
        Action::Allow,
    );
    assert_eq!(decided_by(&p, &located("DE", Some(64511), "/")), Some("hosting"));
    assert_eq!(decided_by(&p, &located("DE", Some(64497), "/")), None);
    assert_eq!(decided_by(&p, &located("--", None, "/")), None);
    assert!(p.rules.uses_asns());
}

#[test]
fn a_hundred_thousand_cidrs_decide_by_lookup() {
    let nets: Vec<IpNet> = (0..100_000u32)
        .map(|i| IpNet::V4(ipnet::Ipv4Net::new((0x0a00_0000 + i * 4).into(), 30).unwrap()))
        .collect();
    let p = policy(
        vec![
            rule(
                "block",
                Action::Deny,
                Selectors {
                    ips: Some(nets),
                    ..Selectors::default()
                },
            ),
            rule("all", Action::Allow, Selectors::default()),
        ],
        Action::Deny,
    );
    assert_eq!(decided_by(&p, &facts("GET", None, "/", "10.0.0.2")), Some("block"));
    assert_eq!(decided_by(&p, &facts("GET", None, "/", "10.6.26.127")), Some("block"));
    assert_eq!(decided_by(&p, &facts("GET", None, "/", "10.6.26.128")), Some("all"));
}

fn gated(name: &str, gate: Gate, hide: bool) -> Rule {
    let mut rule = rule(
        name,
        Action::Allow,
        Selectors {
            paths: paths(&["/admin/**"]),
            ..Selectors::default()
        },
    );
    rule.gate = Some(gate);
    rule.hide = hide;
    rule
}

fn admin_identity(roles: &[&str]) -> Identity {
    Identity {
        user: "alice".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        scheme: Scheme::Basic,
    }
}

#[test]
fn a_gate_needs_identity_before_it_can_decide() {
    let p = policy(
        vec![gated("admin", Gate::AnyRole(vec!["admin".into()]), false)],
        Action::Deny,
    );
    let request = facts("GET", None, "/admin/x", "192.0.2.1");
    assert_eq!(
        p.decide(&request, &Caller::Unresolved, &mut NoTrace).outcome,
        Outcome::NeedIdentity
    );
}

#[test]
fn requests_outside_a_gate_never_need_identity() {
    let p = policy(vec![gated("admin", Gate::Authenticated, false)], Action::Deny);
    let request = facts("GET", None, "/public", "192.0.2.1");
    assert_eq!(
        p.decide(&request, &Caller::Unresolved, &mut NoTrace).outcome,
        Outcome::Deny { hidden: false }
    );
}

#[test]
fn a_holder_of_any_listed_role_passes() {
    let p = policy(
        vec![gated("admin", Gate::AnyRole(vec!["admin".into(), "ops".into()]), false)],
        Action::Deny,
    );
    let request = facts("GET", None, "/admin/x", "192.0.2.1");
    let identity = admin_identity(&["viewer", "ops"]);
    assert_eq!(
        p.decide(&request, &Caller::Known(&identity), &mut NoTrace).outcome,
        Outcome::Allow
    );
}

#[test]
fn an_identity_without_the_roles_gets_403_or_404_when_hidden() {
    let request = facts("GET", None, "/admin/x", "192.0.2.1");
    let identity = admin_identity(&["viewer"]);
    let visible = policy(
        vec![gated("admin", Gate::AnyRole(vec!["admin".into()]), false)],
        Action::Deny,
    );
    let decision = visible.decide(&request, &Caller::Known(&identity), &mut NoTrace);
    assert_eq!(decision.status(), http::StatusCode::FORBIDDEN);
    let hidden = policy(
        vec![gated("admin", Gate::AnyRole(vec!["admin".into()]), true)],
        Action::Deny,
    );
    let decision = hidden.decide(&request, &Caller::Known(&identity), &mut NoTrace);
    assert_eq!(decision.status(), http::StatusCode::NOT_FOUND);
}

#[test]
fn authenticated_admits_any_identity() {
    let p = policy(vec![gated("admin", Gate::Authenticated, false)], Action::Deny);
    let request = facts("GET", None, "/admin/x", "192.0.2.1");
    let identity = admin_identity(&[]);
    assert_eq!(
        p.decide(&request, &Caller::Known(&identity), &mut NoTrace).outcome,
        Outcome::Allow
    );
}

#[test]
fn anonymous_and_invalid_callers_are_unauthenticated() {
    let p = policy(vec![gated("admin", Gate::Authenticated, false)], Action::Deny);
    let request = facts("GET", None, "/admin/x", "192.0.2.1");
    let anonymous = p.decide(&request, &Caller::Anonymous, &mut NoTrace);
    assert_eq!(anonymous.status(), http::StatusCode::UNAUTHORIZED);
    assert!(anonymous.challenges());
    let bad_jwt = p.decide(&request, &Caller::Invalid(Scheme::Jwt), &mut NoTrace);
    assert!(matches!(
        bad_jwt.outcome,
        Outcome::Unauthenticated {
            invalid_token: true,
            ..
        }
    ));
    let bad_basic = p.decide(&request, &Caller::Invalid(Scheme::Basic), &mut NoTrace);
    assert!(matches!(
        bad_basic.outcome,
        Outcome::Unauthenticated {
            invalid_token: false,
            ..
        }
    ));
}

#[test]
fn without_challengeable_sources_a_missing_identity_is_403() {
    let mut p = policy(vec![gated("admin", Gate::Authenticated, false)], Action::Deny);
    p.challenge = false;
    let request = facts("GET", None, "/admin/x", "192.0.2.1");
    let decision = p.decide(&request, &Caller::Anonymous, &mut NoTrace);
    assert_eq!(decision.status(), http::StatusCode::FORBIDDEN);
    assert!(!decision.challenges());
}

#[test]
fn preflights_skip_gates_only_when_allowed() {
    let mut p = policy(vec![gated("admin", Gate::Authenticated, false)], Action::Deny);
    let mut preflight = facts("OPTIONS", None, "/admin/x", "192.0.2.1");
    preflight.preflight = true;
    assert_eq!(
        p.decide(&preflight, &Caller::Unresolved, &mut NoTrace).outcome,
        Outcome::NeedIdentity
    );
    p.allow_preflight = true;
    assert_eq!(
        p.decide(&preflight, &Caller::Unresolved, &mut NoTrace).outcome,
        Outcome::Allow
    );
}

#[test]
fn preflights_do_not_skip_deny_rules() {
    let mut p = policy(
        vec![rule(
            "block",
            Action::Deny,
            Selectors {
                paths: paths(&["/admin/**"]),
                ..Selectors::default()
            },
        )],
        Action::Allow,
    );
    p.allow_preflight = true;
    let mut preflight = facts("OPTIONS", None, "/admin/x", "192.0.2.1");
    preflight.preflight = true;
    assert_eq!(
        p.decide(&preflight, &Caller::Unresolved, &mut NoTrace).outcome,
        Outcome::Deny { hidden: false }
    );
}

#[test]
fn an_audit_gate_that_would_refuse_is_skipped() {
    let mut trial = gated("trial", Gate::AnyRole(vec!["admin".into()]), false);
    trial.audit = true;
    let p = policy(
        vec![trial, rule("all", Action::Allow, Selectors::default())],
        Action::Deny,
    );
    let request = facts("GET", None, "/admin/x", "192.0.2.1");
    assert_eq!(
        p.decide(&request, &Caller::Unresolved, &mut NoTrace).outcome,
        Outcome::NeedIdentity
    );
    let decision = p.decide(&request, &Caller::Anonymous, &mut NoTrace);
    assert_eq!(decision.outcome, Outcome::Allow);
    assert_eq!(decision.audited_rules.as_slice(), &[0]);
}

#[test]
fn audit_mode_forwards_unauthenticated_requests() {
    let mut p = policy(vec![gated("admin", Gate::Authenticated, false)], Action::Deny);
    p.mode = Mode::Audit;
    let request = facts("GET", None, "/admin/x", "192.0.2.1");
    let decision = p.decide(&request, &Caller::Anonymous, &mut NoTrace);
    assert!(decision.forwards());
    assert_eq!(decision.label(), "audit");
}

/// Reference decision: walk the rules one by one with the plain matcher.
fn reference_decide(policy: &Policy, facts: &RequestFacts) -> (Option<usize>, Vec<usize>) {
    let mut audited = Vec::new();
    for (id, rule) in policy.rules.rules().iter().enumerate() {
        if rule.matches(facts) {
            if rule.audit && rule.denies() {
                audited.push(id);
                continue;
            }
            return (Some(id), audited);
        }
    }
    (None, audited)
}

const IP_POOL: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.0.2.0/24",
    "192.0.2.7",
    "2001:db8::/32",
    "0.0.0.0/0",
    "::/0",
];
const METHOD_POOL: &[&str] = &["GET", "POST", "DELETE", "OPTIONS"];
const HOST_POOL: &[&str] = &["a.example.com", "*.example.com", "b.test", "*.a.example.com", "[::1]"];
const PATH_POOL: &[&str] = &[
    "/admin/**",
    "/admin",
    "/admin/",
    "/api/*/items",
    "/files/*.pdf",
    "/**",
    "/",
    "/a/**/b",
    "/**/x",
    "/a*/b*",
    "/api/**",
];
const CLIENT_POOL: &[&str] = &[
    "10.1.2.3",
    "10.2.0.1",
    "192.0.2.7",
    "192.0.2.8",
    "2001:db8::5",
    "2001:db9::1",
    "8.8.8.8",
];
const COUNTRY_POOL: &[&str] = &["DE", "FR", "KP", "--"];
const ASN_POOL: &[&str] = &["64496", "64511", "13335"];
const REQUEST_LOCATIONS: &[(&str, Option<u32>)] = &[
    ("DE", Some(64496)),
    ("FR", Some(64511)),
    ("US", Some(1)),
    ("--", None),
    ("KP", None),
];
const REQUEST_HOSTS: &[Option<&str>] = &[
    Some("a.example.com"),
    Some("x.a.example.com"),
    Some("example.com"),
    Some("b.test"),
    Some("[::1]"),
    None,
];
const REQUEST_PATHS: &[&str] = &[
    "/admin",
    "/admin/",
    "/admin/x",
    "/administrator",
    "/api/v1/items",
    "/api/items",
    "/files/a.pdf",
    "/files/a/b.pdf",
    "/",
    "/a/b",
    "/a/q/r/b",
    "/x",
    "/q/x",
    "/ab/bc",
];

fn subset(pool: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<&'static str>>> {
    prop::option::weighted(0.4, prop::sample::subsequence(pool, 0..=3))
}

fn arbitrary_rule() -> impl Strategy<Value = Rule> {
    (
        subset(IP_POOL),
        subset(METHOD_POOL),
        subset(HOST_POOL),
        subset(PATH_POOL),
        subset(COUNTRY_POOL),
        subset(ASN_POOL),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(ip_list, method_list, host_list, path_list, country_list, asn_list, allow, audit)| Rule {
                name: String::new(),
                action: if allow { Action::Allow } else { Action::Deny },
                hide: false,
                audit,
                gate: None,
                selectors: Selectors {
                    ips: ip_list.map(|l| l.iter().map(|c| parse_cidr(c).unwrap()).collect()),
                    countries: country_list.map(|l| l.iter().map(|c| Country::parse(c).unwrap()).collect()),
                    asns: asn_list.map(|l| l.iter().map(|a| a.parse().unwrap()).collect()),
                    methods: method_list.map(|l| l.iter().map(|m| parse_method(m).unwrap()).collect()),
                    hosts: host_list.map(|l| l.iter().map(|h| HostPattern::parse(h).unwrap()).collect()),
                    paths: path_list.map(|l| {
                        l.iter()
                            .map(|p| PathPattern::parse(p, &PathOptions::default()).unwrap())
                            .collect()
                    }),
                },
                origin: String::new(),
            },
        )
}

fn arbitrary_request() -> impl Strategy<Value = RequestFacts> {
    (
        prop::sample::select(METHOD_POOL.iter().chain(&["HEAD", "PUT"]).copied().collect::<Vec<_>>()),
        prop::sample::select(REQUEST_HOSTS),
        prop::sample::select(REQUEST_PATHS),
        prop::sample::select(CLIENT_POOL),
        prop::sample::select(REQUEST_LOCATIONS),
    )
        .prop_map(|(method, host, path, ip, (country, asn))| RequestFacts {
            location: Location {
                country: Country::parse(country).unwrap(),
                asn,
            },
            ..facts(method, host, path, ip)
        })
}

proptest! {
    #[test]
    fn indexed_engine_agrees_with_reference_matcher(
        rules in prop::collection::vec(arbitrary_rule(), 0..80),
        requests in prop::collection::vec(arbitrary_request(), 1..20),
    ) {
        let p = policy(rules, Action::Deny);
        for request in &requests {
            let decision = p.decide(request, &Caller::Unresolved, &mut NoTrace);
            let (rule, audited) = reference_decide(&p, request);
            prop_assert_eq!(decision.rule, rule, "request {:?}", request);
            prop_assert_eq!(decision.audited_rules.to_vec(), audited);
            let matching: Vec<usize> = p.rules.matching(request, &mut NoTrace).iter().collect();
            let reference: Vec<usize> = p.rules.rules().iter().enumerate().filter(|(_, r)| r.matches(request)).map(|(i, _)| i).collect();
            prop_assert_eq!(matching, reference);
        }
    }
}

const ROLE_POOL: &[&str] = &["admin", "editor", "viewer"];

fn arbitrary_gate() -> impl Strategy<Value = Option<Gate>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Gate::Authenticated)),
        1 => prop::sample::subsequence(ROLE_POOL, 1..=2)
            .prop_map(|roles| Some(Gate::AnyRole(roles.iter().map(|r| r.to_string()).collect()))),
    ]
}

fn arbitrary_gated_rule() -> impl Strategy<Value = Rule> {
    (arbitrary_rule(), arbitrary_gate(), any::<bool>()).prop_map(|(mut rule, gate, hide)| {
        if rule.action == Action::Allow {
            rule.gate = gate;
        }
        rule.hide = hide;
        rule
    })
}

/// A caller state for the second engine pass.
#[derive(Debug, Clone)]
enum StatedCaller {
    Anonymous,
    Invalid,
    Known(Vec<&'static str>),
}

fn arbitrary_caller() -> impl Strategy<Value = StatedCaller> {
    prop_oneof![
        Just(StatedCaller::Anonymous),
        Just(StatedCaller::Invalid),
        prop::sample::subsequence(ROLE_POOL, 0..=2).prop_map(StatedCaller::Known),
    ]
}

/// Reference semantics of SPEC §3 and its outcome table, written out plainly.
fn reference_outcome(policy: &Policy, facts: &RequestFacts, caller: &StatedCaller) -> (Option<usize>, Outcome) {
    for (id, rule) in policy.rules.rules().iter().enumerate() {
        if !rule.matches(facts) {
            continue;
        }
        let outcome = match (rule.action, &rule.gate, caller) {
            (Action::Deny, _, _) => Outcome::Deny { hidden: rule.hide },
            (Action::Allow, None, _) => Outcome::Allow,
            (Action::Allow, Some(_), StatedCaller::Anonymous) => Outcome::Unauthenticated {
                hidden: rule.hide,
                challenge: true,
                invalid_token: false,
            },
            (Action::Allow, Some(_), StatedCaller::Invalid) => Outcome::Unauthenticated {
                hidden: rule.hide,
                challenge: true,
                invalid_token: true,
            },
            (Action::Allow, Some(Gate::Authenticated), StatedCaller::Known(_)) => Outcome::Allow,
            (Action::Allow, Some(Gate::AnyRole(needed)), StatedCaller::Known(held)) => {
                if needed.iter().any(|role| held.contains(&role.as_str())) {
                    Outcome::Allow
                } else {
                    Outcome::MissingRole { hidden: rule.hide }
                }
            }
        };
        if rule.audit && outcome != Outcome::Allow {
            continue;
        }
        return (Some(id), outcome);
    }
    (None, Outcome::Deny { hidden: false })
}

proptest! {
    #[test]
    fn gated_decisions_agree_with_the_reference_semantics(
        rules in prop::collection::vec(arbitrary_gated_rule(), 0..60),
        requests in prop::collection::vec(arbitrary_request(), 1..10),
        caller in arbitrary_caller(),
    ) {
        let p = policy(rules, Action::Deny);
        let roles: Vec<String> = match &caller {
            StatedCaller::Known(held) => held.iter().map(|r| r.to_string()).collect(),
            _ => Vec::new(),
        };
        let identity = Identity { user: "u".into(), roles, scheme: Scheme::Stated };
        let engine_caller = match &caller {
            StatedCaller::Anonymous => Caller::Anonymous,
            StatedCaller::Invalid => Caller::Invalid(Scheme::Jwt),
            StatedCaller::Known(_) => Caller::Known(&identity),
        };
        for request in &requests {
            let decision = p.decide(request, &engine_caller, &mut NoTrace);
            prop_assert_eq!((decision.rule, decision.outcome), reference_outcome(&p, request, &caller), "{:?}", request);
            // The first pass never decides past a gate without asking for identity.
            let first = p.decide(request, &Caller::Unresolved, &mut NoTrace);
            if let Some(id) = first.rule && p.rules.rules()[id].gate.is_some() && first.outcome != Outcome::Allow {
                prop_assert_eq!(first.outcome, Outcome::NeedIdentity);
            }
        }
    }

    /// `is_covered_by` is sound (the linter's shadowing warning relies on it) and
    /// `overlaps` is complete (it never misses a common path).
    #[test]
    fn pattern_coverage_is_sound_and_overlap_complete(
        a in prop::sample::select(PATH_POOL),
        b in prop::sample::select(PATH_POOL),
        path in prop::sample::select(REQUEST_PATHS),
    ) {
        let options = PathOptions::default();
        let (a, b) = (PathPattern::parse(a, &options).unwrap(), PathPattern::parse(b, &options).unwrap());
        let key = path::normalize(path, &options).unwrap().key;
        if a.is_covered_by(&b) && a.matches(&key) {
            prop_assert!(b.matches(&key), "{} covered by {} but {} matches only the first", a.written(), b.written(), path);
        }
        if a.matches(&key) && b.matches(&key) {
            prop_assert!(a.overlaps(&b), "{} and {} both match {}", a.written(), b.written(), path);
        }
    }
}
