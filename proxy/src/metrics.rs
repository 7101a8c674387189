//! Every Prometheus metric egress exports, defined here and nowhere else. All are prefixed
//! `egress_`; every label has a bounded set of values:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `egress_decisions_total` | counter | `protocol` (http-connect, http-forward, socks5), `decision` (allow, report, deny, fail), `reason` (a `DenyReason`, or `none`) |
//! | `egress_failures_total` | counter | `protocol`, `reason` (the upstream reasons: dns-failed, upstream-unreachable, …): requests that failed, not denied |
//! | `egress_blocked_domains_total` | counter | `domain`: registrable domain (eTLD+1) of denied targets, at most `blocked_domains_cap` of them, then `other` |
//! | `egress_active_connections` | gauge | `protocol` |
//! | `egress_connections_refused_unanswered_total` | counter | `cause`: why a connection refused at a cap was closed without an answer (busy: every refuser was busy; silent: it did not say in time which protocol it speaks). Answered refusals are `egress_decisions_total{reason="too-many-connections"}` |
//! | `egress_bytes_total` | counter | `direction` (upload: client → destination, download) |
//! | `egress_connect_duration_seconds` | histogram | – (decision to destination connected / tunnel open) |
//! | `egress_dns_lookup_duration_seconds` | histogram | – |
//! | `egress_upstream_up` | gauge | `upstream` (configured parent names) |
//! | `egress_config_reloads_total` | counter | `result` (success, failure) |
//! | `egress_config_last_reload_success_timestamp_seconds` | gauge | – |
//! | `egress_config_last_reload_failure_timestamp_seconds` | gauge | – (0 until a reload fails) |
//! | `egress_build_info` | gauge (1) | `version` |
//! | `egress_audit_lines_dropped_total` | counter | – (queue full, or the file refused the line: disk full) |
//! | `egress_connections_cut_total` | counter | `protocol` (connections still open at the end of the shutdown grace period, closed by the proxy) |
//!
//! Metrics exist only when the admin listener is configured; otherwise every recording call is
//! a single check of an unset `OnceLock`, so they cost nothing.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use egress_config::{DenyReason, Host, Protocol};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    protocol: &'static str,
    decision: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    protocol: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabel {
    domain: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// The label value for domains beyond the cap.
pub const OTHER: &str = "other";

pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    blocked_domains: Family<DomainLabel, Counter>,
    /// Domains that have their own series; at most `cap`.
    labelled_domains: Mutex<HashSet<String>>,
    cap: usize,
    active: Family<ProtocolLabel, Gauge>,
    /// Refused at a connection cap and closed unanswered (see `listener::Refusers`).
    refused_unanswered: Family<CauseLabel, Counter>,
    bytes: Family<DirectionLabel, Counter>,
    connect_duration: Histogram,
    dns_duration: Histogram,
    upstream_up: Family<UpstreamLabel, Gauge>,
    reloads: Family<ResultLabel, Counter>,
    last_reload_success: Gauge<f64, AtomicU64>,
    last_reload_failure: Gauge<f64, AtomicU64>,
    audit_dropped: Counter,
    connections_cut: Family<ProtocolLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Turns metrics on (once per process), with `cap` distinct blocked domains.
pub fn install(cap: usize) -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(cap))
}

/// The metrics, when the admin listener turned them on.
pub fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

impl Metrics {
    fn new(cap: usize) -> Self {
        let mut registry = Registry::with_prefix("egress");
        let decisions = Family::<DecisionLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let blocked_domains = Family::<DomainLabel, Counter>::default();
        let active = Family::<ProtocolLabel, Gauge>::default();
        let refused_unanswered = Family::<CauseLabel, Counter>::default();
        for cause in Unanswered::ALL {
            let _ = refused_unanswered.get_or_create(&CauseLabel {
                cause: cause.as_str(),
            });
        }
        let bytes = Family::<DirectionLabel, Counter>::default();
        // 1 ms to ~33 s: a loopback connect to a slow parent's CONNECT.
        let connect_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let dns_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let upstream_up = Family::<UpstreamLabel, Gauge>::default();
        let reloads = Family::<ResultLabel, Counter>::default();
        let last_reload_success = Gauge::<f64, AtomicU64>::default();
        let last_reload_failure = Gauge::<f64, AtomicU64>::default();
        let audit_dropped = Counter::default();
        let connections_cut = Family::<ProtocolLabel, Counter>::default();
        let build_info = Family::<VersionLabel, Gauge>::default();

        registry.register(
            "decisions",
            "Requests decided, by protocol, decision (allow, report, deny, fail) and reason",
            decisions.clone(),
        );
        registry.register(
            "failures",
            "Requests that failed (the destination or the way to it did not work; not denials), by protocol and reason",
            failures.clone(),
        );
        registry.register(
            "blocked_domains",
            "Denied requests by registrable domain (capped; the rest are domain=\"other\")",
            blocked_domains.clone(),
        );
        registry.register(
            "active_connections",
            "Open client connections by protocol",
            active.clone(),
        );
        registry.register(
            "connections_refused_unanswered",
            "Connections refused at a connection cap and closed without an answer, by cause (busy: every refuser was busy; silent: the client did not say in time which protocol it speaks)",
            refused_unanswered.clone(),
        );
        registry.register(
            "bytes",
            "Bytes relayed, by direction (upload: client to destination)",
            bytes.clone(),
        );
        registry.register(
            "connect_duration_seconds",
            "From the decision to the destination connected (or the tunnel opened through a parent)",
            connect_duration.clone(),
        );
        registry.register(
            "dns_lookup_duration_seconds",
            "Destination name lookups",
            dns_duration.clone(),
        );
        registry.register(
            "upstream_up",
            "Whether each parent proxy is up (1) or marked down (0)",
            upstream_up.clone(),
        );
        registry.register(
            "config_reloads",
            "Policy reloads by result",
            reloads.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the policy in force was loaded (Unix time)",
            last_reload_success.clone(),
        );
        registry.register(
            "config_last_reload_failure_timestamp_seconds",
            "When a policy file was last rejected (Unix time; 0: never). Newer than the last success: the file on disk is not in force",
            last_reload_failure.clone(),
        );
        registry.register("build_info", "The running build", build_info.clone());
        registry.register(
            "audit_lines_dropped",
            "Audit log lines lost: dropped because the writer fell behind, or refused by the file (disk full)",
            audit_dropped.clone(),
        );
        registry.register(
            "connections_cut",
            "Connections still open at the end of the shutdown grace period, closed by the proxy",
            connections_cut.clone(),
        );

        // Every known label value exists from the start, so rates and alerts work at once.
        for protocol in Protocol::ALL {
            let protocol = protocol.as_str();
            let _ = decisions.get_or_create(&DecisionLabels {
                protocol,
                decision: "allow",
                reason: "none",
            });
            for reason in DenyReason::ALL {
                let refused = match reason.fault() {
                    egress_config::Fault::Upstream => {
                        let _ = failures.get_or_create(&FailureLabels {
                            protocol,
                            reason: reason.as_str(),
                        });
                        "fail"
                    }
                    _ => "deny",
                };
                for decision in [refused, "report"] {
                    let _ = decisions.get_or_create(&DecisionLabels {
                        protocol,
                        decision,
                        reason: reason.as_str(),
                    });
                }
            }
            let _ = active.get_or_create(&ProtocolLabel { protocol });
            let _ = connections_cut.get_or_create(&ProtocolLabel { protocol });
        }
        for direction in ["upload", "download"] {
            let _ = bytes.get_or_create(&DirectionLabel { direction });
        }
        for result in ["success", "failure"] {
            let _ = reloads.get_or_create(&ResultLabel { result });
        }
        let _ = blocked_domains.get_or_create(&DomainLabel {
            domain: OTHER.into(),
        });
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);

        Self {
            registry,
            decisions,
            failures,
            blocked_domains,
            labelled_domains: Mutex::new(HashSet::new()),
            cap,
            active,
            refused_unanswered,
            bytes,
            connect_duration,
            dns_duration,
            upstream_up,
            reloads,
            last_reload_success,
            last_reload_failure,
            audit_dropped,
            connections_cut,
        }
    }

    /// The OpenMetrics text format, for scrapers that ask for it (Prometheus does).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The classic Prometheus text format (0.0.4), for everything else (curl, promtool).
    pub fn encode_classic(&self) -> String {
        to_classic(&self.encode())
    }

    fn domain_label(&self, host: &Host) -> String {
        let domain = registrable_domain(host);
        let mut labelled = self
            .labelled_domains
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if labelled.contains(&domain) {
            return domain;
        }
        if labelled.len() < self.cap && domain != OTHER {
            labelled.insert(domain.clone());
            return domain;
        }
        OTHER.to_string()
    }
}

/// OpenMetrics names a counter family without `_total` in `# HELP`/`# TYPE`; the classic format
/// names it as its samples are named. `# UNIT` and `# EOF` do not exist there.
fn to_classic(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The registrable domain (eTLD+1) by the Public Suffix List; an address or a name without a
/// known suffix is its own label.
pub fn registrable_domain(host: &Host) -> String {
    match host {
        Host::Ip(ip) => ip.to_string(),
        Host::Name(name) => psl::domain_str(name).unwrap_or(name).to_string(),
    }
}

/// One decision. `reason` is `None` for allow.
pub fn decision(
    protocol: Protocol,
    decision: &'static str,
    reason: Option<DenyReason>,
    host: Option<&Host>,
) {
    let Some(m) = get() else { return };
    m.decisions
        .get_or_create(&DecisionLabels {
            protocol: protocol.as_str(),
            decision,
            reason: reason.map_or("none", DenyReason::as_str),
        })
        .inc();
    if let ("fail", Some(reason)) = (decision, reason) {
        m.failures
            .get_or_create(&FailureLabels {
                protocol: protocol.as_str(),
                reason: reason.as_str(),
            })
            .inc();
    }
    // Only denials are blocked domains: a failing destination is not a blocked one.
    if let (Some(host), "deny") = (host, decision) {
        let domain = m.domain_label(host);
        m.blocked_domains
            .get_or_create(&DomainLabel { domain })
            .inc();
    }
}

/// Counts an open connection of `protocol` until the returned guard drops.
pub fn connection(protocol: Protocol) -> Option<ActiveGuard> {
    let m = get()?;
    let labels = ProtocolLabel {
        protocol: protocol.as_str(),
    };
    m.active.get_or_create(&labels).inc();
    Some(ActiveGuard { labels })
}

/// Decrements `egress_active_connections` when dropped.
#[derive(Debug)]
pub struct ActiveGuard {
    labels: ProtocolLabel,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if let Some(m) = get() {
            m.active.get_or_create(&self.labels).dec();
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: &'static str,
}

/// Why a connection refused at a cap was closed without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// Every refuser was busy.
    Busy,
    /// The client did not say in time which protocol it speaks.
    Silent,
}

impl Unanswered {
    pub const ALL: [Unanswered; 2] = [Self::Busy, Self::Silent];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Silent => "silent",
        }
    }
}

/// A connection refused at a cap and closed without an answer.
pub fn refused_unanswered(cause: Unanswered) {
    if let Some(m) = get() {
        m.refused_unanswered
            .get_or_create(&CauseLabel {
                cause: cause.as_str(),
            })
            .inc();
    }
}

pub fn bytes(upload: u64, download: u64) {
    let Some(m) = get() else { return };
    for (direction, n) in [("upload", upload), ("download", download)] {
        if n > 0 {
            m.bytes
                .get_or_create(&DirectionLabel { direction })
                .inc_by(n);
        }
    }
}

pub fn connect_duration(elapsed: Duration) {
    if let Some(m) = get() {
        m.connect_duration.observe(elapsed.as_secs_f64());
    }
}

pub fn dns_duration(elapsed: Duration) {
    if let Some(m) = get() {
        m.dns_duration.observe(elapsed.as_secs_f64());
    }
}

pub fn upstream_up(name: &str, up: bool) {
    if let Some(m) = get() {
        m.upstream_up
            .get_or_create(&UpstreamLabel {
                upstream: name.to_string(),
            })
            .set(i64::from(up));
    }
}

/// A reload (or the first load, which counts as a success for the timestamp only).
pub fn reload(success: bool) {
    let Some(m) = get() else { return };
    let result = if success { "success" } else { "failure" };
    m.reloads.get_or_create(&ResultLabel { result }).inc();
    if success {
        loaded_now();
    } else {
        m.last_reload_failure.set(unix_now());
    }
}

/// Sets the last-successful-load time to now.
pub fn loaded_now() {
    if let Some(m) = get() {
        m.last_reload_success.set(unix_now());
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

pub fn audit_dropped() {
    audit_dropped_by(1);
}

/// `n` audit lines lost at once (a batch the disk refused).
pub fn audit_dropped_by(n: u64) {
    if let Some(m) = get() {
        m.audit_dropped.inc_by(n);
    }
}

/// A connection of `protocol` cut at the end of the shutdown grace period.
pub fn connection_cut(protocol: Protocol) {
    if let Some(m) = get() {
        m.connections_cut
            .get_or_create(&ProtocolLabel {
                protocol: protocol.as_str(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests;
