//! The `hosts` selector: exact names and `*.` suffix wildcards.
//!
//! Request hosts arrive already lowercased, without port or trailing dot (see
//! `request::host`). Patterns are put in the same form at load time, so matching is a
//! hash lookup for the exact name plus one per parent domain for wildcards.

use rustc_hash::FxHashMap as HashMap;
use std::net::Ipv6Addr;

use super::bits::RuleBits;

/// A host pattern from a rule's `hosts` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host.
    Exact(Box<str>),
    /// `*.example.com`: one or more labels, then `.example.com` (stored without `*.`).
    Subdomains(Box<str>),
}

impl HostPattern {
    /// Parses a pattern as written in a rule: any case, optional trailing dot, no port.
    pub fn parse(written: &str) -> Result<Self, String> {
        let lowered = written.trim().to_ascii_lowercase();
        let name = lowered.strip_suffix('.').unwrap_or(&lowered);
        if let Some(parent) = name.strip_prefix("*.") {
            validate_name(parent, written)?;
            return Ok(HostPattern::Subdomains(parent.into()));
        }
        if name.starts_with('[') {
            let inner = name
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .ok_or_else(|| {
                    format!("host `{written}` is not a valid bracketed IPv6 address; hosts are matched without port")
                })?;
            inner
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("host `{written}` is not a valid IPv6 address"))?;
            return Ok(HostPattern::Exact(name.into()));
        }
        validate_name(name, written)?;
        Ok(HostPattern::Exact(name.into()))
    }

    /// Reference matcher for a request host in match form.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => **name == *host,
            HostPattern::Subdomains(parent) => {
                host.len() > parent.len() + 1
                    && host.ends_with(&**parent)
                    && host.as_bytes()[host.len() - parent.len() - 1] == b'.'
            }
        }
    }
}

impl HostPattern {
    /// Whether every host this pattern matches, `wider` matches too.
    pub fn is_covered_by(&self, wider: &HostPattern) -> bool {
        match (self, wider) {
            (HostPattern::Exact(name), _) => wider.matches(name),
            (HostPattern::Subdomains(narrow), HostPattern::Subdomains(wide)) => {
                narrow == wide || HostPattern::Subdomains(wide.clone()).matches(narrow)
            }
            (HostPattern::Subdomains(_), HostPattern::Exact(_)) => false,
        }
    }

    /// Whether some host matches both patterns.
    pub fn overlaps(&self, other: &HostPattern) -> bool {
        self.is_covered_by(other) || other.is_covered_by(self)
    }
}

fn validate_name(name: &str, written: &str) -> Result<(), String> {
    if name.contains(':') {
        return Err(format!(
            "host `{written}` has a port; hosts are matched without port, write `{}`",
            name.split(':').next().unwrap_or_default()
        ));
    }
    if name.contains('*') {
        return Err(format!(
            "host `{written}`: `*` may only stand as the first label, as in `*.example.com`"
        ));
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "host `{written}` is not a valid host name (letters, digits, `-`, `_`, dot-separated)"
        ));
    }
    Ok(())
}

/// Host index over all rules.
#[derive(Debug, Clone)]
pub struct HostIndex {
    exact: HashMap<Box<str>, RuleBits>,
    subdomains: HashMap<Box<str>, RuleBits>,
    without_selector: RuleBits,
}

impl HostIndex {
    /// Builds the index; `without_selector` are the rules that match any host.
    pub fn build<'a>(
        rule_count: usize,
        rules: impl IntoIterator<Item = (usize, &'a [HostPattern])>,
        without_selector: &RuleBits,
    ) -> Self {
        let mut exact: HashMap<Box<str>, RuleBits> = HashMap::default();
        let mut subdomains: HashMap<Box<str>, RuleBits> = HashMap::default();
        for (rule, patterns) in rules {
            for pattern in patterns {
                let (map, key) = match pattern {
                    HostPattern::Exact(name) => (&mut exact, name),
                    HostPattern::Subdomains(parent) => (&mut subdomains, parent),
                };
                map.entry(key.clone())
                    .or_insert_with(|| RuleBits::empty(rule_count))
                    .insert(rule);
            }
        }
        HostIndex {
            exact,
            subdomains,
            without_selector: without_selector.clone(),
        }
    }

    /// The rules whose `hosts` selector admits `host` (match form), written into `out`.
    /// A request without a host matches only rules without a `hosts` selector.
    pub fn candidates(&self, host: Option<&str>, out: &mut RuleBits) {
        out.clone_from(&self.without_selector);
        let Some(host) = host else { return };
        if let Some(rules) = self.exact.get(host) {
            out.union_with(rules);
        }
        if self.subdomains.is_empty() {
            return;
        }
        for (dot, _) in host.match_indices('.') {
            if let Some(rules) = self.subdomains.get(&host[dot + 1..]) {
                out.union_with(rules);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_lowercased_without_trailing_dot() {
        assert_eq!(
            HostPattern::parse("Admin.Example.COM.").unwrap(),
            HostPattern::Exact("admin.example.com".into())
        );
    }

    #[test]
    fn wildcard_matches_one_or_more_labels_but_not_the_parent() {
        let pattern = HostPattern::parse("*.internal.example.com").unwrap();
        assert!(pattern.matches("a.internal.example.com"));
        assert!(pattern.matches("a.b.internal.example.com"));
        assert!(!pattern.matches("internal.example.com"));
        assert!(!pattern.matches("xinternal.example.com"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "example.com:443",
            "a.*.example.com",
            "*",
            "",
            "exa mple.com",
            "[::1",
            "[nope]",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(HostPattern::parse("[::1]").is_ok());
        assert!(HostPattern::parse("192.0.2.1").is_ok());
    }

    #[test]
    fn index_unions_exact_and_wildcard_rules() {
        let rule0 = [HostPattern::parse("admin.example.com").unwrap()];
        let rule1 = [HostPattern::parse("*.example.com").unwrap()];
        let mut without = RuleBits::empty(3);
        without.insert(2);
        let index = HostIndex::build(3, [(0, rule0.as_slice()), (1, rule1.as_slice())], &without);
        let mut out = RuleBits::empty(3);
        index.candidates(Some("admin.example.com"), &mut out);
        assert_eq!(out.iter().collect::<Vec<_>>(), vec![0, 1, 2]);
        index.candidates(Some("example.com"), &mut out);
        assert_eq!(out.iter().collect::<Vec<_>>(), vec![2]);
        index.candidates(None, &mut out);
        assert_eq!(out.iter().collect::<Vec<_>>(), vec![2]);
    }
}
