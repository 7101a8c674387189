//! The "account" step: each request's outcome, once, into the metrics and the audit log. A
//! request is accounted where it ends — refused (at whichever step refused it), or served (when
//! its tunnel closes or its response is relayed, with the bytes moved) — so every request counts
//! exactly once, with its final decision and reason. A connection's `Ledger` keeps the request
//! in flight, so one cut at shutdown, or ended without its step recording it, is recorded too.

mod ledger;

pub use ledger::{decided, moved, speaks, Ledger};

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use egress_config::{parse_authority, DenyReason, Host, Protocol, Verdict};

use crate::{audit, metrics};

/// How a request ended.
#[derive(Debug)]
pub struct Outcome<'a> {
    pub client: Option<SocketAddr>,
    pub protocol: Protocol,
    pub target: Option<(&'a Host, u16)>,
    /// `allow`, `report`, `deny` or `fail` (see `Kind`).
    pub decision: &'static str,
    pub reason: Option<DenyReason>,
    pub rule: Option<&'a str>,
    pub upload: u64,
    pub download: u64,
    pub duration: Duration,
    /// Shutdown cut the connection at the end of its grace period, before the request ended.
    pub cut: bool,
}

impl<'a> Outcome<'a> {
    /// A request the policy let through, ended after moving these bytes.
    pub fn served(
        client: Option<SocketAddr>,
        protocol: Protocol,
        target: (&'a Host, u16),
        verdict: &Verdict<'a>,
        (upload, download): (u64, u64),
        duration: Duration,
    ) -> Self {
        Self {
            client,
            protocol,
            target: Some(target),
            decision: verdict.decision(),
            reason: verdict.reason(),
            rule: verdict.rule,
            upload,
            download,
            duration,
            cut: false,
        }
    }

    /// The kind of this outcome.
    pub fn kind(&self) -> Kind {
        Kind::from_label(self.decision)
    }

    /// A request that did not get through: *denied* when the policy or a protection refused it,
    /// *failed* when the destination or the way to it did not work (see `Kind::of_refusal`).
    pub fn refused(
        client: Option<SocketAddr>,
        protocol: Protocol,
        target: Option<(&'a Host, u16)>,
        reason: DenyReason,
        rule: Option<&'a str>,
    ) -> Self {
        Self {
            client,
            protocol,
            target,
            decision: Kind::of_refusal(reason).label(),
            reason: Some(reason),
            rule,
            upload: 0,
            download: 0,
            duration: Duration::ZERO,
            cut: false,
        }
    }
}

/// What became of a request. Denied is not failed: a parent proxy that is down, or a name that
/// does not resolve, is no blocked destination, and must not look like one on a dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Served.
    Allowed,
    /// Served in `report` mode, though the policy would have denied it.
    Reported,
    /// The policy or a protection refused it (deny lists, not allowlisted, private address, SNI
    /// or Host mismatch, bad request, limits, a parent's own policy refusal).
    Denied,
    /// The destination or the path to it did not work (DNS, connect, timeouts, a parent that is
    /// down or rejects egress's credentials, an invalid response).
    Failed,
}

impl Kind {
    /// The kind of a refusal with `reason`: the upstream faults are failures.
    pub fn of_refusal(reason: DenyReason) -> Kind {
        match reason.fault() {
            egress_config::Fault::Upstream => Kind::Failed,
            _ => Kind::Denied,
        }
    }

    /// The `decision` label of metrics and audit lines.
    pub const fn label(self) -> &'static str {
        match self {
            Kind::Allowed => "allow",
            Kind::Reported => "report",
            Kind::Denied => "deny",
            Kind::Failed => "fail",
        }
    }

    fn from_label(label: &str) -> Kind {
        match label {
            "allow" => Kind::Allowed,
            "report" => Kind::Reported,
            "fail" => Kind::Failed,
            _ => Kind::Denied,
        }
    }
}

/// A function that also sees every outcome (the launcher's summary of what was blocked).
pub type Observer = Box<dyn Fn(&Outcome<'_>) + Send + Sync>;

static OBSERVER: std::sync::OnceLock<Observer> = std::sync::OnceLock::new();

/// Installs `observer` (once per process; later calls are ignored).
pub fn observe(observer: Observer) {
    let _ = OBSERVER.set(observer);
}

/// Records `outcome` in the metrics and the audit log.
pub fn record(outcome: &Outcome<'_>) {
    ledger::recorded();
    if let Some(observer) = OBSERVER.get() {
        observer(outcome);
    }
    metrics::decision(
        outcome.protocol,
        outcome.decision,
        outcome.reason,
        outcome.target.map(|t| t.0),
    );
    metrics::bytes(outcome.upload, outcome.download);
    if audit::enabled() {
        audit::write(audit_line(outcome));
    }
}

/// For refusal paths that kept the target only as the `host:port` text they answer with.
pub fn refused_at(
    client: Option<SocketAddr>,
    protocol: Protocol,
    authority: Option<&str>,
    reason: DenyReason,
    rule: Option<&str>,
) {
    let target = authority.and_then(|a| match parse_authority(a) {
        Ok((host, Some(port))) => Some((host, port)),
        _ => None,
    });
    record(&Outcome::refused(
        client,
        protocol,
        target.as_ref().map(|(h, p)| (h, *p)),
        reason,
        rule,
    ));
}

/// One audit line's fields, in the documented order.
#[derive(serde::Serialize)]
struct Line<'a> {
    time: String,
    client: Option<SocketAddr>,
    identity: Option<&'a str>,
    protocol: &'static str,
    host: Option<String>,
    port: Option<u16>,
    /// `None` only for a connection cut before any request of it was decided.
    decision: Option<&'static str>,
    reason: Option<&'static str>,
    rule: Option<&'a str>,
    bytes_up: u64,
    bytes_down: u64,
    duration_ms: u64,
    /// Present (`true`) only on lines of connections cut at the end of the shutdown grace period.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cut: bool,
}

impl Line<'_> {
    fn to_json(&self) -> String {
        // Plain strings and numbers cannot fail to serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn audit_line(o: &Outcome<'_>) -> String {
    Line {
        time: now(),
        client: o.client,
        identity: None,
        protocol: o.protocol.as_str(),
        host: o.target.map(|(h, _)| h.to_string()),
        port: o.target.map(|(_, p)| p),
        decision: Some(o.decision),
        reason: o.reason.map(DenyReason::as_str),
        rule: o.rule,
        bytes_up: o.upload,
        bytes_down: o.download,
        duration_ms: o.duration.as_millis() as u64,
        cut: o.cut,
    }
    .to_json()
}

/// The line of a connection cut before any request of it was decided: no decision, no target.
/// Audit only: the decision metrics count decisions, and there was none.
fn audit_cut_connection(client: SocketAddr, protocol: Protocol, open_for: Duration) {
    if !audit::enabled() {
        return;
    }
    let line = Line {
        time: now(),
        client: Some(client),
        identity: None,
        protocol: protocol.as_str(),
        host: None,
        port: None,
        decision: None,
        reason: None,
        rule: None,
        bytes_up: 0,
        bytes_down: 0,
        duration_ms: open_for.as_millis() as u64,
        cut: true,
    };
    audit::write(line.to_json());
}
