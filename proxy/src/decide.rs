//! Asking the policy, and the one structured event per decision.

use egress_config::{Host, Protocol, Request, Verdict};
use tracing::{info, warn};

use crate::answer::Refusal;
use crate::state::Snapshot;

/// The policy's verdict for `host:port` over `protocol`, logged once. `Err` when it is a denial.
/// A request let through is in flight in the connection's ledger until it is recorded.
pub fn check<'s>(
    snapshot: &'s Snapshot,
    host: &Host,
    port: u16,
    protocol: Protocol,
) -> Result<Verdict<'s>, Refusal> {
    let verdict = snapshot.policy.decide(&Request {
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
        .with_rule(verdict.rule))
    }
}
