//! The one asynchronous step between the policy's verdict and the dial. The verdict stays a pure
//! function of the policy snapshot; a `Decider` may then hold the connection and answer later —
//! the seam for "ask" mode (a person approves or denies a destination the policy does not know)
//! and for rules that need more than the policy file. The decider lives in the proxy state, so it outlives reloads, and
//! every protocol (CONNECT, plain HTTP, SOCKS5) passes through it at the same point.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use egress_config::{Host, Protocol, Verdict};

use egress_config::guard::AddressGuard;

use crate::answer::Refusal;
use crate::resolve::Resolver;

/// What is being decided: a request the policy let through.
#[derive(Debug, Clone, Copy)]
pub struct Asking<'a> {
    pub client: SocketAddr,
    /// Who the client is (`identify`): a configured identity or `anonymous`.
    pub identity: &'a str,
    pub protocol: Protocol,
    pub host: &'a Host,
    pub port: u16,
    pub verdict: &'a Verdict<'a>,
    /// The connection snapshot's resolver and address guard: a decider checks what the dial
    /// would refuse before it holds anything.
    pub resolver: &'a Resolver,
    pub guard: &'a AddressGuard,
    /// The snapshot's `ask` settings.
    pub ask: egress_config::Ask,
}

/// The decider's answer.
#[derive(Debug)]
pub enum Decision {
    /// Go on to the dial.
    Proceed,
    /// Refuse with this answer (recorded like any other refusal).
    Refuse(Refusal),
}

/// A boxed future, so deciders can be stored as trait objects.
pub type Deciding<'a> = Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

/// Decides, possibly later, whether a request the policy let through goes on. A connection
/// waiting here holds only its own task: others are served meanwhile. A decider that waits must
/// bound its wait (the connection's own timeouts do not run while it waits).
pub trait Decider: Send + Sync + fmt::Debug {
    fn decide<'a>(&'a self, asking: Asking<'a>) -> Deciding<'a>;
}

/// The default: the verdict stands. A verdict that asks a person (ask mode) is refused, as
/// nobody can answer here: a decider that cannot ask never lets an unknown destination through.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

impl Decider for PassThrough {
    fn decide<'a>(&'a self, asking: Asking<'a>) -> Deciding<'a> {
        let decision = if asking.verdict.asks() {
            Decision::Refuse(Refusal::new(
                egress_config::DenyReason::ApprovalUnattended,
                "this proxy has no admin listener to ask a person",
            ))
        } else {
            Decision::Proceed
        };
        Box::pin(std::future::ready(decision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_config::Action;

    #[tokio::test]
    async fn pass_through_lets_the_verdict_stand() {
        let host = Host::parse("example.com").unwrap();
        let config = egress_config::default_config();
        let snapshot =
            crate::state::Snapshot::from_config(&config, &crate::parent::HealthTable::new(None));
        let verdict = Verdict {
            action: Action::Allow,
            rule: Some("example.com"),
            explicit_address: false,
            via: None,
        };
        let asking = Asking {
            client: "127.0.0.1:1".parse().unwrap(),
            identity: "anonymous",
            protocol: Protocol::HttpConnect,
            host: &host,
            port: 443,
            verdict: &verdict,
            resolver: &snapshot.resolver,
            guard: &snapshot.guard,
            ask: snapshot.ask,
        };
        assert!(matches!(
            PassThrough.decide(asking).await,
            Decision::Proceed
        ));
        // Nobody can be asked here: an ask verdict is refused, never let through.
        let asks = Verdict {
            action: Action::Ask(egress_config::DenyReason::NotAllowlisted),
            rule: None,
            ..verdict
        };
        let asking = Asking {
            verdict: &asks,
            ..asking
        };
        match PassThrough.decide(asking).await {
            Decision::Refuse(refusal) => assert_eq!(
                refusal.reason,
                egress_config::DenyReason::ApprovalUnattended
            ),
            Decision::Proceed => panic!("an ask verdict went through"),
        }
    }
}
