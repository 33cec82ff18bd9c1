//! The `methods` selector: which rules admit which request method.

use http::Method;

use super::bits::RuleBits;

/// Parses a method as written in a rule. Methods are case-sensitive tokens (RFC 9110),
/// and requests with lower-case methods are refused with 400 before any rule runs, so a
/// lower-case method in a rule could never match: refuse it here.
pub fn parse_method(written: &str) -> Result<Method, String> {
    if written.is_empty()
        || !written
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "method `{written}` must be an upper-case token like \"GET\" or \"POST\" (methods are case-sensitive)"
        ));
    }
    Method::from_bytes(written.as_bytes()).map_err(|_| format!("method `{written}` is not a valid HTTP method token"))
}

/// Whether a rule listing `listed` admits `method`: GET also admits HEAD, since a HEAD
/// is a GET without the body and must not escape a GET rule.
pub fn method_admits(listed: &Method, method: &Method) -> bool {
    listed == method || (*listed == Method::GET && *method == Method::HEAD)
}

/// Method index: one precomputed rule set per method some rule names, and the set of
/// rules without a method selector for every other method.
#[derive(Debug, Clone)]
pub struct MethodIndex {
    by_method: Vec<(Method, RuleBits)>,
    without_selector: RuleBits,
}

impl MethodIndex {
    /// Builds the index; `without_selector` are the rules that match any method.
    pub fn build<'a>(
        rules: impl IntoIterator<Item = (usize, &'a [Method])> + Clone,
        without_selector: &RuleBits,
    ) -> Self {
        let mut methods: Vec<Method> = rules
            .clone()
            .into_iter()
            .flat_map(|(_, listed)| listed.iter().cloned())
            .collect();
        if methods.contains(&Method::GET) {
            methods.push(Method::HEAD);
        }
        methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        methods.dedup();
        let by_method = methods
            .into_iter()
            .map(|method| {
                let mut set = without_selector.clone();
                for (rule, listed) in rules.clone() {
                    if listed.iter().any(|entry| method_admits(entry, &method)) {
                        set.insert(rule);
                    }
                }
                (method, set)
            })
            .collect();
        MethodIndex {
            by_method,
            without_selector: without_selector.clone(),
        }
    }

    /// The rules whose `methods` selector admits `method`.
    pub fn candidates(&self, method: &Method) -> &RuleBits {
        self.by_method
            .iter()
            .find(|(listed, _)| listed == method)
            .map_or(&self.without_selector, |(_, set)| set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_case_methods_are_refused() {
        assert!(parse_method("get").unwrap_err().contains("upper-case"));
        assert!(parse_method("GET").is_ok());
        assert!(parse_method("PURGE").is_ok());
    }

    #[test]
    fn get_rules_also_admit_head() {
        let get = [Method::GET];
        let post = [Method::POST];
        let mut without = RuleBits::empty(3);
        without.insert(2);
        let index = MethodIndex::build([(0, get.as_slice()), (1, post.as_slice())], &without);
        assert_eq!(index.candidates(&Method::HEAD).iter().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(index.candidates(&Method::POST).iter().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(index.candidates(&Method::DELETE).iter().collect::<Vec<_>>(), vec![2]);
    }
}
