//! Warnings `check` prints about configs that are valid but probably not what the
//! operator meant. A warning never stops a start or a reload.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, COOKIE};

use crate::config::Config;
use crate::rules::{IpRangeSet, Rule, SegmentPattern, method_admits};

/// One warning, tied to where it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `FILE:LINE` of the rule (or test, or file).
    pub origin: String,
    /// What looks wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}", self.origin, self.message)
    }
}

/// Every warning for a config, in rule order.
pub fn warnings(config: &Config) -> Vec<Warning> {
    let rules = config.policy.rules.rules();
    let views: Vec<RuleView<'_>> = rules.iter().map(RuleView::new).collect();
    let mut warnings = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        warnings.extend(shadowed(index, &views));
        warnings.extend(allows_protected_requests(index, &views));
        warnings.extend(bare_protected_patterns(rule, rules));
    }
    warnings.extend(weak_bcrypt_costs(config));
    warnings.extend(unscoped_jwt(config));
    warnings.extend(literal_credentials_in_tests(config));
    warnings.extend(stale_geoip_databases(config, SystemTime::now()));
    warnings
}

/// Providers publish GeoIP databases weekly, and a stale one places reassigned
/// networks in their old countries; MaxMind's GeoLite2 licence also asks for updates
/// within 30 days.
const STALE_GEOIP: Duration = Duration::from_secs(30 * 24 * 3600);

fn stale_geoip_databases(config: &Config, now: SystemTime) -> Vec<Warning> {
    [config.geoip.country_database(), config.geoip.asn_database()]
        .into_iter()
        .flatten()
        .filter_map(|database| {
            let age = now.duration_since(database.built()).ok()?;
            (age > STALE_GEOIP).then(|| Warning {
                origin: database.path().display().to_string(),
                message: format!(
                    "GeoIP database `{}` was built {} days ago; databases change weekly — update it (geoipupdate, or a fresh DB-IP lite download) and the proxy reloads it",
                    database.database_type(),
                    age.as_secs() / 86_400
                ),
            })
        })
        .collect()
}

/// A rule with its IP networks as a range set, so coverage checks are lookups.
struct RuleView<'a> {
    rule: &'a Rule,
    ips: Option<IpRangeSet>,
}

impl<'a> RuleView<'a> {
    fn new(rule: &'a Rule) -> Self {
        RuleView {
            rule,
            ips: rule
                .selectors
                .ips
                .as_ref()
                .map(|nets| IpRangeSet::new(nets.iter().copied())),
        }
    }

    /// Whether this rule matches every request `later` matches: each selector of this
    /// rule admits everything the same selector of `later` admits. Sound: `true` is
    /// never wrong, so a shadowing warning is never a false positive.
    fn covers(&self, later: &RuleView<'_>) -> bool {
        let (mine, theirs) = (&self.rule.selectors, &later.rule.selectors);
        let ips = match (&self.ips, &theirs.ips) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(set), Some(nets)) => nets.iter().all(|net| set.contains_net(net)),
        };
        let methods = match (&mine.methods, &theirs.methods) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(wide), Some(narrow)) => narrow
                .iter()
                .all(|m| wide.iter().any(|listed| method_admits(listed, m))),
        };
        let hosts = match (&mine.hosts, &theirs.hosts) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(wide), Some(narrow)) => narrow.iter().all(|h| wide.iter().any(|w| h.is_covered_by(w))),
        };
        let paths = match (&mine.paths, &theirs.paths) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(wide), Some(narrow)) => narrow.iter().all(|p| wide.iter().any(|w| p.is_covered_by(w))),
        };
        ips && list_covers(&mine.countries, &theirs.countries)
            && list_covers(&mine.asns, &theirs.asns)
            && methods
            && hosts
            && paths
    }

    /// Whether some request could match both rules.
    fn overlaps(&self, other: &RuleView<'_>) -> bool {
        let (mine, theirs) = (&self.rule.selectors, &other.rule.selectors);
        let ips = match (&self.ips, &theirs.ips) {
            (Some(set), Some(nets)) => nets.iter().any(|net| set.overlaps_net(net)),
            _ => true,
        };
        let methods = match (&mine.methods, &theirs.methods) {
            (Some(a), Some(b)) => a
                .iter()
                .any(|x| b.iter().any(|y| method_admits(x, y) || method_admits(y, x))),
            _ => true,
        };
        let hosts = match (&mine.hosts, &theirs.hosts) {
            (Some(a), Some(b)) => a.iter().any(|x| b.iter().any(|y| x.overlaps(y))),
            _ => true,
        };
        let paths = match (&mine.paths, &theirs.paths) {
            (Some(a), Some(b)) => a.iter().any(|x| b.iter().any(|y| x.overlaps(y))),
            _ => true,
        };
        ips && lists_overlap(&mine.countries, &theirs.countries)
            && lists_overlap(&mine.asns, &theirs.asns)
            && methods
            && hosts
            && paths
    }

    /// Whether the rule can match at all (an empty `ip_file` matches nothing).
    fn can_match(&self) -> bool {
        self.rule.selectors.ips.as_ref().is_none_or(|nets| !nets.is_empty())
    }

    /// Whether the rule exists to keep requests out: a deny rule or a gate.
    fn protects(&self) -> bool {
        self.rule.denies() || self.rule.gate.is_some()
    }
}

/// For selectors over one value per request (`countries`, `asns`): a list admits every
/// value another admits when it has no list or contains each listed value.
fn list_covers<T: PartialEq>(wide: &Option<Vec<T>>, narrow: &Option<Vec<T>>) -> bool {
    match (wide, narrow) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(wide), Some(narrow)) => narrow.iter().all(|value| wide.contains(value)),
    }
}

/// Whether one value could be admitted by both lists.
fn lists_overlap<T: PartialEq>(a: &Option<Vec<T>>, b: &Option<Vec<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|value| b.contains(value)),
        _ => true,
    }
}

/// A rule that one earlier rule always catches first can never decide. Earlier audit
/// rules are skipped over, so they shadow nothing.
fn shadowed(index: usize, views: &[RuleView<'_>]) -> Option<Warning> {
    let later = &views[index];
    if !later.can_match() {
        return None;
    }
    let earlier = views[..index]
        .iter()
        .find(|earlier| !earlier.rule.audit && earlier.covers(later))?;
    Some(Warning {
        origin: later.rule.origin.clone(),
        message: format!(
            "rule `{}` can never decide: rule `{}` ({}) comes first and matches every request it matches",
            later.rule.name, earlier.rule.name, earlier.rule.origin
        ),
    })
}

/// An allow rule that lets through part of what a later deny or role rule protects:
/// the later rule never sees those requests.
fn allows_protected_requests(index: usize, views: &[RuleView<'_>]) -> Vec<Warning> {
    let allow = &views[index];
    let rule = allow.rule;
    if rule.denies() || rule.gate.is_some() || rule.audit || !allow.can_match() {
        return Vec::new();
    }
    views[index + 1..]
        .iter()
        .filter(|later| later.protects() && later.can_match() && allow.overlaps(later) && !allow.covers(later))
        .map(|later| Warning {
            origin: rule.origin.clone(),
            message: format!(
                "allow rule `{}` comes before rule `{}` ({}) and lets through some of the requests it protects; move `{}` up or narrow `{}`",
                rule.name, later.rule.name, later.rule.origin, later.rule.name, rule.name
            ),
        })
        .collect()
}

/// A deny rule for `/admin` protects exactly `/admin`: `/admin/` and `/admin/users`
/// stay reachable. Warn when no rule covers the subtree with `/admin/**`.
fn bare_protected_patterns<'a>(rule: &'a Rule, rules: &'a [Rule]) -> impl Iterator<Item = Warning> + 'a {
    let protects = rule.denies() || rule.gate.is_some();
    rule.selectors
        .paths
        .iter()
        .flatten()
        .filter(move |_| protects)
        .filter(|pattern| !pattern.has_wildcard() && !pattern.written().ends_with('/'))
        .filter(|pattern| !subtree_covered(pattern.segments(), rules))
        .map(move |pattern| Warning {
            origin: rule.origin.clone(),
            message: format!(
                "rule `{}`: pattern `{}` matches only that exact path, not `{1}/` or anything below it; no rule has `{}/**` — add it if the subtree should be protected too",
                rule.name,
                pattern.written(),
                pattern.written().trim_end_matches('/'),
            ),
        })
}

fn subtree_covered(segments: &[SegmentPattern], rules: &[Rule]) -> bool {
    rules
        .iter()
        .flat_map(|rule| rule.selectors.paths.iter().flatten())
        .any(|other| {
            let other = other.segments();
            other.len() == segments.len() + 1
                && other.last() == Some(&SegmentPattern::AnySegments)
                && other[..segments.len()] == *segments
        })
}

/// Below cost 10, an offline guess at a stolen htpasswd file is cheap; `htpasswd -B`
/// alone gives cost 5.
fn weak_bcrypt_costs(config: &Config) -> Vec<Warning> {
    let Some(basic) = &config.identity.basic else {
        return Vec::new();
    };
    basic
        .htpasswd
        .users()
        .filter_map(|(user, entry)| {
            let cost = entry.bcrypt_cost().filter(|&cost| cost < 10)?;
            Some(Warning {
                origin: format!("{}:{}", basic.file.display(), entry.line()),
                message: format!(
                    "user `{user}` has bcrypt cost {cost}; use at least 10: htpasswd -B -C 10 {} {user}",
                    basic.file.display()
                ),
            })
        })
        .collect()
}

/// A JWT accepted without `issuer` or `audience` may be a token another application
/// (or another tenant of the same identity provider) was given.
fn unscoped_jwt(config: &Config) -> Vec<Warning> {
    let Some(jwt) = &config.identity.jwt else {
        return Vec::new();
    };
    let mut missing = Vec::new();
    if jwt.issuer.is_none() {
        missing.push("issuer");
    }
    if jwt.audience.is_empty() {
        missing.push("audience");
    }
    if missing.is_empty() {
        return Vec::new();
    }
    vec![Warning {
        origin: jwt.origin.clone(),
        message: format!(
            "[identity.jwt] has no {}: tokens your identity provider issued for other applications are accepted too",
            missing.join(" or ")
        ),
    }]
}

/// Tests carry no secrets: a credential in a test's headers ends up in the config
/// repository. State the identity instead.
fn literal_credentials_in_tests(config: &Config) -> Vec<Warning> {
    let api_key_header = &config.identity.api_key_header;
    let jwt_cookie = config.identity.jwt.as_ref().and_then(|jwt| jwt.cookie.as_deref());
    config
        .tests
        .iter()
        .filter_map(|test| {
            let header = if test.headers.contains_key(AUTHORIZATION) {
                "authorization"
            } else if test.headers.contains_key(api_key_header) {
                api_key_header.as_str()
            } else if let Some(cookie) = jwt_cookie
                && test
                    .headers
                    .get_all(COOKIE)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .any(|value| value.split(';').any(|pair| pair.trim().starts_with(&format!("{cookie}="))))
            {
                "cookie"
            } else {
                return None;
            };
            Some(Warning {
                origin: test.origin.to_string(),
                message: format!(
                    "test `{}` carries a literal credential in `{header}`; tests carry no secrets: state the caller with identity = {{ user = \"…\", roles = [\"…\"] }}",
                    test.name
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
