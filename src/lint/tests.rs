//! Each warning, and configs that must not warn.

use std::path::PathBuf;

use super::*;
use crate::config::load_text;

fn lint(rest: &str) -> Vec<String> {
    let text = format!("[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\n{rest}");
    let config = load_text(&PathBuf::from("p.toml"), text).unwrap();
    warnings(&config).iter().map(ToString::to_string).collect()
}

fn rule(name: &str, body: &str) -> String {
    format!("[[rule]]\nname = \"{name}\"\n{body}\n")
}

#[test]
fn bare_admin_deny_pattern_is_warned_about() {
    let warnings = lint(&rule("admin", "paths = [\"/admin\"]\naction = \"deny\""));
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with(
            "p.toml:4: warning: rule `admin`: pattern `/admin` matches only that exact path, not `/admin/` or anything"
        ),
        "{warnings:?}"
    );
}

#[test]
fn bare_pattern_with_subtree_rule_is_fine() {
    let rules =
        rule("a", "paths = [\"/admin/**\"]\naction = \"deny\"") + &rule("b", "paths = [\"/admin\"]\naction = \"deny\"");
    assert!(
        lint(&rules).iter().all(|w| !w.contains("matches only that exact path")),
        "{:?}",
        lint(&rules)
    );
}

#[test]
fn bare_allow_patterns_are_not_warned_about() {
    assert!(lint(&rule("health", "paths = [\"/healthz\"]\naction = \"allow\"")).is_empty());
}

#[test]
fn a_rule_covered_by_an_earlier_one_is_shadowed() {
    let rules = rule("everything-admin", "paths = [\"/admin/**\"]\naction = \"deny\"")
        + &rule(
            "admin-users",
            "paths = [\"/admin/users\"]\nmethods = [\"GET\"]\naction = \"allow\"",
        );
    let warnings = lint(&rules);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("rule `admin-users` can never decide: rule `everything-admin`")),
        "{warnings:?}"
    );
}

#[test]
fn cidr_coverage_counts_for_shadowing() {
    let rules = rule("office", "ip = [\"10.0.0.0/8\"]\naction = \"allow\"")
        + &rule("team", "ip = [\"10.1.0.0/16\"]\naction = \"deny\"");
    assert!(lint(&rules).iter().any(|w| w.contains("rule `team` can never decide")));
}

#[test]
fn partial_overlap_is_not_shadowing() {
    let rules = rule("a", "paths = [\"/admin/**\"]\nmethods = [\"GET\"]\naction = \"deny\"")
        + &rule("b", "paths = [\"/admin/**\"]\naction = \"deny\"")
        + &rule("c", "paths = [\"/admin/**\"]\nip = [\"10.0.0.0/8\"]\naction = \"deny\"")
        + &rule("d", "hosts = [\"a.example.com\"]\naction = \"deny\"")
        + &rule("e", "hosts = [\"*.example.com\"]\naction = \"deny\"");
    let warnings = lint(&rules);
    assert!(
        warnings
            .iter()
            .all(|w| !w.contains("`b` can never") && !w.contains("`e` can never")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("`c` can never decide: rule `b`")),
        "{warnings:?}"
    );
}

#[test]
fn audit_rules_shadow_nothing() {
    let rules = rule("trial", "paths = [\"/x/**\"]\naction = \"deny\"\naudit = true")
        + &rule("real", "paths = [\"/x/y\"]\naction = \"deny\"");
    assert!(lint(&rules).iter().all(|w| !w.contains("can never decide")));
}

#[test]
fn an_allow_rule_taking_protected_requests_is_warned_about() {
    let rules = format!(
        "[[identity.api_keys]]\nname = \"k\"\nsha256 = \"{}\"\n{}{}",
        "ab".repeat(32),
        rule("public-reads", "methods = [\"GET\"]\naction = \"allow\""),
        rule(
            "admin",
            "paths = [\"/admin/**\"]\naction = \"allow\"\nroles = [\"admin\"]"
        )
    );
    let warnings = lint(&rules);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("allow rule `public-reads` comes before rule `admin`")),
        "{warnings:?}"
    );
}

#[test]
fn disjoint_allow_rules_are_fine() {
    let rules = rule("assets", "paths = [\"/assets/**\"]\naction = \"allow\"")
        + &rule("admin", "paths = [\"/admin/**\"]\naction = \"deny\"");
    assert!(lint(&rules).is_empty(), "{:?}", lint(&rules));
}

#[test]
fn literal_credentials_in_tests_are_warned_about() {
    let rest = rule("all", "action = \"allow\"")
        + "[[test]]\nname = \"with a key\"\nrequest = \"GET /\"\nheaders = { \"authorization\" = \"Bearer secret\" }\nexpect = 200\n";
    let warnings = lint(&rest);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("test `with a key` carries a literal credential")),
        "{warnings:?}"
    );
}

const GEOIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/geoip");

fn with_geoip(country_database: &str, rules: &str) -> String {
    format!("[geoip]\ncountry_database = \"{GEOIP}/{country_database}\"\nasn_database = \"{GEOIP}/asn.mmdb\"\n{rules}")
}

#[test]
fn a_country_rule_does_not_shadow_a_later_rule_for_every_country() {
    let rules = with_geoip(
        "country-v1.mmdb",
        &(rule("embargo", "countries = [\"KP\"]\naction = \"deny\"")
            + &rule("admin", "paths = [\"/admin/**\"]\naction = \"deny\"")),
    );
    let warnings = lint(&rules);
    assert!(!warnings.iter().any(|w| w.contains("can never decide")), "{warnings:?}");
}

#[test]
fn a_wider_country_or_asn_list_shadows_a_narrower_one() {
    let rules = with_geoip(
        "country-v1.mmdb",
        &(rule("sanctioned", "countries = [\"KP\", \"IR\", \"SY\"]\naction = \"deny\"")
            + &rule("korea", "countries = [\"kp\"]\npaths = [\"/x\"]\naction = \"deny\"")
            + &rule("hosting", "asns = [64496, 64511]\naction = \"deny\"")
            + &rule("one-host", "asns = [64511]\naction = \"deny\"")),
    );
    let warnings = lint(&rules);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("rule `korea` can never decide: rule `sanctioned`")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("rule `one-host` can never decide: rule `hosting`")),
        "{warnings:?}"
    );
}

#[test]
fn an_allow_rule_for_other_countries_takes_nothing_from_a_country_deny() {
    let rules = with_geoip(
        "country-v1.mmdb",
        &(rule("germany", "countries = [\"DE\"]\naction = \"allow\"")
            + &rule(
                "public",
                "countries = [\"FR\", \"KP\"]\npaths = [\"/public/**\"]\naction = \"allow\"",
            )
            + &rule("embargo", "countries = [\"KP\"]\naction = \"deny\"")),
    );
    let warnings = lint(&rules);
    assert!(
        !warnings.iter().any(|w| w.contains("allow rule `germany`")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("allow rule `public` comes before rule `embargo`")),
        "{warnings:?}"
    );
}

#[test]
fn a_stale_geoip_database_is_warned_about() {
    let warnings = lint(&with_geoip("country-stale.mmdb", ""));
    let stale: Vec<&String> = warnings.iter().filter(|w| w.contains("country-stale.mmdb")).collect();
    assert_eq!(stale.len(), 1, "{warnings:?}");
    assert!(
        stale[0].contains("GeoIP database `GeoLite2-Country` was built"),
        "{stale:?}"
    );
}

#[test]
fn a_fresh_geoip_database_is_not_warned_about() {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\n{}",
        with_geoip("country-v1.mmdb", "")
    );
    let config = load_text(&PathBuf::from("p.toml"), text).unwrap();
    let built = config.geoip.country_database().unwrap().built();
    let a_week_later = built + Duration::from_secs(7 * 86_400);
    assert!(stale_geoip_databases(&config, a_week_later).is_empty());
    let two_months_later = built + Duration::from_secs(60 * 86_400);
    assert_eq!(
        stale_geoip_databases(&config, two_months_later).len(),
        2,
        "country and ASN"
    );
}
