//! Warnings `check` prints about configs that are valid but probably not what the
//! operator meant. A warning never stops a start or a reload.

use std::fmt;

use crate::config::Config;
use crate::rules::{Rule, SegmentPattern};

/// One warning, tied to the rule it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `FILE:LINE` of the rule.
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
    let mut warnings = Vec::new();
    for rule in rules {
        warnings.extend(bare_protected_patterns(rule, rules));
    }
    warnings.extend(weak_bcrypt_costs(config));
    warnings.extend(unscoped_jwt(config));
    warnings
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

/// A deny rule for `/admin` protects exactly `/admin`: `/admin/` and `/admin/users`
/// stay reachable. Warn when no rule covers the subtree with `/admin/**`.
fn bare_protected_patterns<'a>(rule: &'a Rule, rules: &'a [Rule]) -> impl Iterator<Item = Warning> + 'a {
    let protects = rule.denies();
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
                "rule `{}`: pattern `{}` matches only that exact path, not `{0}/` or anything below it; no rule has `{}/**` — add it if the subtree should be protected too",
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::load_text;

    fn lint(rules: &str) -> Vec<String> {
        let text = format!("[server]\nlisten = \"127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:3000\"\n{rules}");
        let config = load_text(&PathBuf::from("p.toml"), text).unwrap();
        warnings(&config).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn bare_admin_deny_pattern_is_warned_about() {
        let warnings = lint("[[rule]]\nname = \"admin\"\npaths = [\"/admin\"]\naction = \"deny\"\n");
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("p.toml:4: warning: rule `admin`: pattern `/admin`"),
            "{warnings:?}"
        );
    }

    #[test]
    fn bare_pattern_with_subtree_rule_is_fine() {
        let rules = "[[rule]]\nname = \"a\"\npaths = [\"/admin\"]\naction = \"deny\"\n[[rule]]\nname = \"b\"\npaths = [\"/admin/**\"]\naction = \"deny\"\n";
        assert!(lint(rules).is_empty());
    }

    #[test]
    fn bare_allow_patterns_are_not_warned_about() {
        assert!(lint("[[rule]]\nname = \"health\"\npaths = [\"/healthz\"]\naction = \"allow\"\n").is_empty());
    }
}
