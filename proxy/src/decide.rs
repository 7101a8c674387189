//! Asking the policy, and the one structured event per decision.

use egress_config::{Host, Protocol, Request, Verdict};
use tracing::{info, warn};

use crate::answer::Refusal;
use crate::context::ConnContext;
use crate::decider::{Asking, Decision};
use crate::state::Snapshot;

/// The policy's verdict for `identity` asking for `host:port` over `protocol`, logged once
/// (a pure function of the snapshot, the identity and the target). `Err` when it is a denial.
/// A request let through is in flight in the connection's ledger until it is recorded.
pub fn check<'s>(
    snapshot: &'s Snapshot,
    identity: &str,
    host: &Host,
    port: u16,
    protocol: Protocol,
) -> Result<Verdict<'s>, Refusal> {
    let verdict = snapshot.policy_for(identity).decide(&Request {
        host,
        port,
        protocol,
    });
    let reason = verdict.reason().map(|r| r.as_str());
    if verdict.permits() {
        info!(
            decision = verdict.decision(),
            reason,
            protocol = protocol.as_str(),
            identity,
            host = %host,
            port,
            rule = verdict.rule,
            "decision"
        );
        crate::account::decided(protocol, host, port, &verdict);
        Ok(verdict)
    } else {
        warn!(
            decision = verdict.decision(),
            reason,
            protocol = protocol.as_str(),
            identity,
            host = %host,
            port,
            rule = verdict.rule,
            "decision"
        );
        let reason = verdict.reason().expect("a denial has a reason");
        Err(match verdict.rule {
            Some(rule) => Refusal::new(reason, format!("matched rule \"{rule}\"")),
            None => Refusal::from(reason),
        }
        .with_rule(verdict.rule)
        .for_identity(identity))
    }
}

/// The verdict, then the decider: `Ok` when the request goes on to its dial. The one step every
/// protocol takes between parsing its target and dialing it.
pub async fn decide<'s>(
    ctx: &'s ConnContext,
    identity: &str,
    host: &Host,
    port: u16,
    protocol: Protocol,
) -> Result<Verdict<'s>, Refusal> {
    let verdict = check(&ctx.snapshot, identity, host, port, protocol)?;
    ask(ctx, identity, host, port, protocol, verdict).await
}

/// The decider's part of `decide`, for a caller that checks more of the request between the
/// verdict and the decider (plain HTTP: the body's framing).
pub async fn ask<'s>(
    ctx: &ConnContext,
    identity: &str,
    host: &Host,
    port: u16,
    protocol: Protocol,
    verdict: Verdict<'s>,
) -> Result<Verdict<'s>, Refusal> {
    let asking = Asking {
        client: ctx.client,
        identity,
        protocol,
        host,
        port,
        verdict: &verdict,
        resolver: &ctx.snapshot.resolver,
        guard: &ctx.snapshot.guard,
        ask: ctx.snapshot.ask,
    };
    match ctx.decider.decide(asking).await {
        Decision::Proceed => Ok(verdict),
        Decision::Refuse(refusal) => {
            warn!(
                reason = refusal.reason.as_str(),
                detail = %refusal.detail,
                protocol = protocol.as_str(),
                identity,
                host = %host,
                port,
                "decider refused"
            );
            Err(refusal)
        }
    }
}
