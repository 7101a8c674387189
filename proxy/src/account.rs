//! The "account" step: each request's outcome, once. The step that ends a request — refused at
//! whichever step refused it, or served when its tunnel closes or its response is relayed —
//! says so here (`refused`, `served`); the connection's `Ledger` builds the one owned `Record`
//! of it and hands it to the proxy's `Observer`, which counts it in the metrics, writes its
//! audit line and sends it to the event stream's subscribers. A request still in flight when
//! its connection ends, or is cut at shutdown, is recorded by the ledger itself.

mod ledger;

pub use crate::outcome::{Kind, Record};
pub use ledger::{decided, identified, moved, open_as, speaks, Ledger};

use std::sync::Arc;
use std::time::Duration;

use egress_config::{parse_authority, DenyReason, Host, Protocol, Verdict};

use crate::metrics::Metrics;

/// How a request ended, as the step that ended it knows it; the ledger adds the rest (client,
/// identity, time) and makes the record.
#[derive(Debug)]
pub struct Ending<'a> {
    pub protocol: Protocol,
    pub target: Option<(&'a Host, u16)>,
    pub kind: Kind,
    pub reason: Option<DenyReason>,
    pub rule: Option<&'a str>,
    /// Client to destination, destination to client.
    pub bytes: (u64, u64),
    pub duration: Duration,
}

/// The current connection's request did not get through: *denied* when the policy or a
/// protection refused it, *failed* when the destination or the way to it did not work (see
/// `Kind::of_refusal`).
pub fn refused(
    protocol: Protocol,
    target: Option<(&Host, u16)>,
    reason: DenyReason,
    rule: Option<&str>,
) {
    ledger::end(Ending {
        protocol,
        target,
        kind: Kind::of_refusal(reason),
        reason: Some(reason),
        rule,
        bytes: (0, 0),
        duration: Duration::ZERO,
    });
}

/// `refused`, for refusal paths that kept the target only as the `host:port` text they answer
/// with.
pub fn refused_at(
    protocol: Protocol,
    authority: Option<&str>,
    reason: DenyReason,
    rule: Option<&str>,
) {
    let target = authority.and_then(|a| match parse_authority(a) {
        Ok((host, Some(port))) => Some((host, port)),
        _ => None,
    });
    refused(
        protocol,
        target.as_ref().map(|(h, p)| (h, *p)),
        reason,
        rule,
    );
}

/// The current connection's request was let through by `verdict` and ended after moving
/// `bytes` (client to destination, destination to client) in `duration`.
pub fn served(
    protocol: Protocol,
    target: (&Host, u16),
    verdict: &Verdict<'_>,
    bytes: (u64, u64),
    duration: Duration,
) {
    ledger::end(Ending {
        protocol,
        target: Some(target),
        kind: Kind::of_verdict(verdict),
        reason: verdict.reason(),
        rule: verdict.rule,
        bytes,
        duration,
    });
}

/// The metrics of the proxy serving the current connection, if it keeps any (connect and DNS
/// timings, open connections).
pub fn metrics() -> Option<Arc<Metrics>> {
    ledger::metrics()
}
