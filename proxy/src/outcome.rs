//! The outcome record: one owned value per request that ended (and per connection cut before
//! any request of it was decided), made by `account` and read by the metrics, the audit log and
//! every subscriber of the event stream alike. It depends on nothing in this crate, so all of
//! them can.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use egress_config::{DenyReason, Host, Protocol, Verdict};

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

    /// The kind of a request `verdict` let through.
    pub fn of_verdict(verdict: &Verdict<'_>) -> Kind {
        match verdict.action {
            egress_config::Action::Report(_) => Kind::Reported,
            _ => Kind::Allowed,
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
}

/// How a request ended, whole.
#[derive(Debug, Clone)]
pub struct Record {
    /// When it ended.
    pub time: SystemTime,
    pub client: Option<SocketAddr>,
    /// Who the client is: a configured identity or `anonymous`; `None` when the connection
    /// ended before it was identified (a malformed request, a failed login).
    pub identity: Option<String>,
    pub protocol: Protocol,
    pub target: Option<(Host, u16)>,
    /// `None` only for a connection cut before any request of it was decided.
    pub kind: Option<Kind>,
    pub reason: Option<DenyReason>,
    /// The policy entry that matched.
    pub rule: Option<String>,
    /// Bytes from the client to the destination.
    pub upload: u64,
    /// Bytes from the destination to the client.
    pub download: u64,
    pub duration: Duration,
    /// Shutdown cut the connection at the end of its grace period, before the request ended.
    pub cut: bool,
}

impl Record {
    /// The record of a connection from `client` of which nothing was decided (yet).
    pub fn connection(client: Option<SocketAddr>, protocol: Protocol) -> Self {
        Self {
            time: SystemTime::now(),
            client,
            identity: None,
            protocol,
            target: None,
            kind: None,
            reason: None,
            rule: None,
            upload: 0,
            download: 0,
            duration: Duration::ZERO,
            cut: false,
        }
    }

    /// The `decision` label: allow, report, deny or fail.
    pub fn decision(&self) -> Option<&'static str> {
        self.kind.map(Kind::label)
    }

    /// The audit log's JSON line (fields in the documented order).
    pub fn audit_line(&self) -> String {
        Line {
            time: humantime::format_rfc3339_millis(self.time).to_string(),
            client: self.client,
            identity: self.identity.as_deref(),
            protocol: self.protocol.as_str(),
            host: self.target.as_ref().map(|(h, _)| h.to_string()),
            port: self.target.as_ref().map(|(_, p)| *p),
            decision: self.decision(),
            reason: self.reason.map(DenyReason::as_str),
            rule: self.rule.as_deref(),
            bytes_up: self.upload,
            bytes_down: self.download,
            duration_ms: self.duration.as_millis() as u64,
            cut: self.cut,
        }
        .to_json()
    }
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
