//! The decision as a value: which rule decided, what it said, and what was only
//! audited. Logs, metrics, `explain` and the response all read this one value.

use http::StatusCode;
use smallvec::SmallVec;

use super::bits::RuleBits;

/// What the rules say about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forward it.
    Allow,
    /// Refuse it: 403, or 404 when hidden.
    Deny {
        /// Answer 404 so the resource's existence is not revealed.
        hidden: bool,
    },
    /// The deciding rule has `roles` or `authenticated` and the caller's identity has
    /// not been looked at yet: resolve it and decide again.
    NeedIdentity,
    /// A gate, and no valid identity: 401 with challenges (403 when trusted headers are
    /// the only source, since no challenge can help), or 404 when hidden.
    Unauthenticated {
        /// Answer 404.
        hidden: bool,
        /// Answer 401 with `WWW-Authenticate` (false: 403).
        challenge: bool,
        /// A bearer token (JWT or API key) was presented and refused.
        invalid_token: bool,
    },
    /// A role rule, and the identity holds none of its roles: 403, or 404 when hidden.
    MissingRole {
        /// Answer 404.
        hidden: bool,
    },
}

impl Outcome {
    /// Whether the outcome refuses the request (when enforced).
    pub fn is_denial(self) -> bool {
        !matches!(self, Outcome::Allow | Outcome::NeedIdentity)
    }
}

/// The result of `Policy::decide`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the deciding rule (or the default) says.
    pub outcome: Outcome,
    /// The deciding rule's id; `None` when the default policy decided.
    pub rule: Option<usize>,
    /// `audit = true` rules that matched and would have denied, in file order.
    pub audited_rules: SmallVec<[usize; 2]>,
    /// False in `mode = "audit"`: a denial is recorded, and the request forwarded.
    pub enforced: bool,
}

impl Decision {
    pub(super) fn new(enforced: bool) -> Self {
        Decision {
            outcome: Outcome::Allow,
            rule: None,
            audited_rules: SmallVec::new(),
            enforced,
        }
    }

    /// Whether the request goes to the upstream.
    pub fn forwards(&self) -> bool {
        self.outcome == Outcome::Allow || (self.outcome.is_denial() && !self.enforced)
    }

    /// The status the outcome answers with when enforced (200 stands for "forwarded").
    pub fn status(&self) -> StatusCode {
        match self.outcome {
            Outcome::Allow => StatusCode::OK,
            Outcome::Deny { hidden: true }
            | Outcome::MissingRole { hidden: true }
            | Outcome::Unauthenticated { hidden: true, .. } => StatusCode::NOT_FOUND,
            Outcome::Deny { hidden: false }
            | Outcome::MissingRole { hidden: false }
            | Outcome::Unauthenticated { challenge: false, .. } => StatusCode::FORBIDDEN,
            Outcome::Unauthenticated { challenge: true, .. } | Outcome::NeedIdentity => StatusCode::UNAUTHORIZED,
        }
    }

    /// Whether the response needs `WWW-Authenticate` challenges.
    pub fn challenges(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Unauthenticated {
                hidden: false,
                challenge: true,
                ..
            }
        )
    }

    /// The `decision` label of metrics and logs: `deny` when refused, `audit` when
    /// forwarded although a rule (or the policy) would have refused it, else `allow`.
    pub fn label(&self) -> &'static str {
        if !self.forwards() {
            "deny"
        } else if self.outcome.is_denial() || !self.audited_rules.is_empty() {
            "audit"
        } else {
            "allow"
        }
    }

    /// The rule named in metrics and logs: the one that would have denied for an
    /// audit, else the deciding rule.
    pub fn reported_rule(&self) -> Option<usize> {
        if self.outcome == Outcome::Allow
            && let Some(&audited) = self.audited_rules.first()
        {
            return Some(audited);
        }
        self.rule
    }
}

/// The per-selector candidate sets computed for one request, for `explain`.
#[derive(Debug)]
pub struct SelectorSets<'a> {
    /// How many rules there are.
    pub rule_count: usize,
    /// Rules whose `ip`/`ip_file` admit the client IP (or that have none).
    pub ip: &'a RuleBits,
    /// Rules whose `countries` admit the client's country.
    pub countries: &'a RuleBits,
    /// Rules whose `asns` admit the client's ASN.
    pub asns: &'a RuleBits,
    /// Rules whose `methods` admit the method.
    pub methods: &'a RuleBits,
    /// Rules whose `hosts` admit the host.
    pub hosts: &'a RuleBits,
    /// Rules whose `paths` admit the match key.
    pub paths: &'a RuleBits,
}

/// Observes a decision as it is made. The server passes `NoTrace` (every method is an
/// empty default and compiles away); `explain` records each step.
pub trait Tracer {
    /// The candidate set of each selector.
    fn selectors(&mut self, _sets: &SelectorSets<'_>) {}
    /// A matching `audit = true` rule that would deny was skipped.
    fn audit_skipped(&mut self, _rule: usize) {}
    /// The final decision.
    fn decided(&mut self, _decision: &Decision) {}
}

/// The tracer that records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTrace;

impl Tracer for NoTrace {}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(outcome: Outcome, enforced: bool) -> Decision {
        Decision {
            outcome,
            rule: Some(0),
            audited_rules: SmallVec::new(),
            enforced,
        }
    }

    #[test]
    fn status_mapping_is_pinned() {
        assert_eq!(decision(Outcome::Allow, true).status(), StatusCode::OK);
        assert_eq!(
            decision(Outcome::Deny { hidden: false }, true).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            decision(Outcome::Deny { hidden: true }, true).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn audit_mode_denials_forward_and_are_labelled_audit() {
        let audited = decision(Outcome::Deny { hidden: false }, false);
        assert!(audited.forwards());
        assert_eq!(audited.label(), "audit");
        let enforced = decision(Outcome::Deny { hidden: false }, true);
        assert!(!enforced.forwards());
        assert_eq!(enforced.label(), "deny");
    }

    #[test]
    fn a_skipped_audit_rule_is_reported_over_the_allowing_rule() {
        let mut allowed = decision(Outcome::Allow, true);
        allowed.audited_rules.push(3);
        assert_eq!(allowed.label(), "audit");
        assert_eq!(allowed.reported_rule(), Some(3));
    }
}
