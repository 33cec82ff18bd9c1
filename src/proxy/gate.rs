//! The identity step of a request (SPEC §3 step 5), between the two engine calls.
//!
//! Only requests whose deciding rule needs an identity, or that are being forwarded
//! anyway, have their credential read; a request denied by an IP or path rule never
//! costs a hash. A banned client presenting a credential is refused before anything is
//! verified. Failures count toward lockout only for the scheme the credential was read
//! as, and only when the scheme says so (an expired genuine JWT is not a guess).

use std::time::Instant;

use crate::identity::{Failure, Identity, read_credential, retry_after_seconds};
use crate::rules::{Caller, Decision, Outcome, RequestFacts};
use crate::state::{Generation, Shared};

/// Why the request stops at the identity step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
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

/// The decision after the identity step, and the identity when one was verified.
#[derive(Debug)]
pub(super) struct Resolved {
    pub decision: Decision,
    pub identity: Option<Identity>,
}

/// Reads and verifies the caller's credential when the decision needs it (or the
/// request is forwarded and the upstream should learn who called), then decides again
/// when the first decision was `NeedIdentity`.
pub(super) async fn resolve(
    decision: Decision,
    facts: &RequestFacts,
    headers: &http::HeaderMap,
    generation: &Generation,
    shared: &Shared,
) -> Result<Resolved, Stop> {
    let needs_identity = decision.outcome == Outcome::NeedIdentity;
    if !needs_identity && !decision.forwards() {
        return Ok(Resolved {
            decision,
            identity: None,
        });
    }
    let config = &generation.config;
    let policy = &config.policy;
    let Some(credential) = read_credential(headers, facts.peer, &config.identity) else {
        let decision = if needs_identity {
            policy.decide(facts, &Caller::Anonymous, &mut crate::rules::NoTrace)
        } else {
            decision
        };
        return Ok(Resolved {
            decision,
            identity: None,
        });
    };

    if let Some(settings) = &config.identity.lockout
        && let Some(remaining) =
            shared
                .identity
                .lockout
                .banned(settings, facts.client_ip, credential.basic_user(), Instant::now())
    {
        let hidden = decision
            .rule
            .map_or(policy.default_hide, |id| policy.rules.rules()[id].hide);
        return Err(Stop::Banned {
            retry_after: retry_after_seconds(remaining),
            hidden,
        });
    }

    let verified = shared.verifier(generation).verify(&credential).await;
    let (identity, invalid) = match verified {
        Ok(identity) => (Some(identity), None),
        Err(Failure::Busy) => return Err(Stop::Busy),
        Err(Failure::Invalid { scheme, counts, reason }) => {
            tracing::debug!(scheme = scheme.as_str(), reason, client_ip = %facts.client_ip, "credential refused");
            if counts && let Some(settings) = &config.identity.lockout {
                let bans = shared.identity.lockout.record_failure(
                    settings,
                    facts.client_ip,
                    credential.basic_user(),
                    Instant::now(),
                );
                if bans > 0 {
                    shared.metrics.lockout_bans.inc_by(u64::from(bans));
                    tracing::warn!(client_ip = %facts.client_ip, "lockout: too many failed credentials; banned");
                }
            }
            (None, Some(scheme))
        }
    };
    let decision = if needs_identity {
        let caller = match (&identity, invalid) {
            (Some(identity), _) => Caller::Known(identity),
            (None, Some(scheme)) => Caller::Invalid(scheme),
            (None, None) => Caller::Anonymous,
        };
        policy.decide(facts, &caller, &mut crate::rules::NoTrace)
    } else {
        decision
    };
    Ok(Resolved { decision, identity })
}
