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
    /// `allow`, `deny` or `report`.
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

    /// A refused request. Refusals are denials, whatever the step that refused.
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
            decision: "deny",
            reason: Some(reason),
            rule,
            upload: 0,
            download: 0,
            duration: Duration::ZERO,
            cut: false,
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
