//! The identity step of a request (SPEC §3 step 5), between the two engine calls.
//!
//! Only requests whose deciding rule needs an identity, or that are being forwarded
//! anyway, have their credential read; a request denied by an IP or path rule never
//! costs a hash. A banned client presenting a credential is refused before anything is
//! verified. Failures count toward lockout only for the scheme the credential was read
//! as, and only when the scheme says so (an expired genuine JWT is not a guess). The
//! server and `explain` both run this; `explain` passes no lockout.

use std::time::Instant;

use super::credential::read_credential;
use super::lockout::{LockoutSettings, retry_after_seconds};
use super::verify::{Failure, Verifier};
use super::{Identity, Scheme};
use crate::rules::{Caller, Decision, Outcome, Policy, RequestFacts, Tracer};

/// Why the request stops at the identity step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `[identity.lockout]` bans the client (or the Basic user): 429 with
    /// `Retry-After`, or 404 when the deciding rule hides.
    Banned {
        /// Seconds until the ban ends.
        retry_after: u64,
        /// Answer the hidden 404 instead.
        hidden: bool,
    },
    /// The password-hash pool is full: 503.
    Busy,
}

/// The decision after the identity step, and what the step found.
#[derive(Debug)]
pub struct Resolved {
    /// The final decision.
    pub decision: Decision,
    /// The verified identity, if any.
    pub identity: Option<Identity>,
    /// The scheme and reason of a refused credential (for logs and `explain`).
    pub refused: Option<(Scheme, &'static str)>,
    /// Bans this request's failure started (for the metric).
    pub new_bans: u32,
}

/// Everything the identity step needs.
#[derive(Debug, Clone, Copy)]
pub struct Resolver<'a> {
    /// The policy to decide again with.
    pub policy: &'a Policy,
    /// Verifies credentials.
    pub verifier: Verifier<'a>,
    /// Lockout settings; `None` disables lockout (`explain`, `[[test]]`).
    pub lockout: Option<&'a LockoutSettings>,
}

impl Resolver<'_> {
    /// Reads and verifies the caller's credential when the decision needs it (or the
    /// request is forwarded and the upstream should learn who called), then decides
    /// again when the first decision was `NeedIdentity`.
    pub async fn resolve(
        &self,
        decision: Decision,
        facts: &RequestFacts,
        headers: &http::HeaderMap,
        tracer: &mut impl Tracer,
    ) -> Result<Resolved, Stop> {
        let needs_identity = decision.outcome == Outcome::NeedIdentity;
        let mut resolved = Resolved {
            decision,
            identity: None,
            refused: None,
            new_bans: 0,
        };
        if !needs_identity && !resolved.decision.forwards() {
            return Ok(resolved);
        }
        let verifier = &self.verifier;
        let Some(credential) = read_credential(headers, facts.peer, verifier.config) else {
            if needs_identity {
                resolved.decision = self.policy.decide(facts, &Caller::Anonymous, tracer);
            }
            return Ok(resolved);
        };
        let lockout = &verifier.state.lockout;
        if let Some(settings) = self.lockout
            && let Some(remaining) = lockout.banned(settings, facts.client_ip, credential.basic_user(), Instant::now())
        {
            let policy = self.policy;
            let hidden = resolved
                .decision
                .rule
                .map_or(policy.default_hide, |id| policy.rules.rules()[id].hide);
            return Err(Stop::Banned {
                retry_after: retry_after_seconds(remaining),
                hidden,
            });
        }
        match verifier.verify(&credential).await {
            Ok(identity) => resolved.identity = Some(identity),
            Err(Failure::Busy) => return Err(Stop::Busy),
            Err(Failure::Invalid { scheme, counts, reason }) => {
                resolved.refused = Some((scheme, reason));
                if counts && let Some(settings) = self.lockout {
                    resolved.new_bans =
                        lockout.record_failure(settings, facts.client_ip, credential.basic_user(), Instant::now());
                }
            }
        }
        if needs_identity {
            let caller = match (&resolved.identity, resolved.refused) {
                (Some(identity), _) => Caller::Known(identity),
                (None, Some((scheme, _))) => Caller::Invalid(scheme),
                (None, None) => Caller::Anonymous,
            };
            resolved.decision = self.policy.decide(facts, &caller, tracer);
        }
        Ok(resolved)
    }
}
