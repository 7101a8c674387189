//! Every Prometheus metric egress exports, defined here and nowhere else. All are prefixed
//! `egress_`; every label has a bounded set of values:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `egress_decisions_total` | counter | `protocol` (http-connect, http-forward, socks5, transparent, dns), `decision` (allow, report, deny, fail), `reason` (a `DenyReason`, or `none`), `identity` (see below) |
//! | `egress_failures_total` | counter | `protocol`, `reason` (the upstream reasons: dns-failed, upstream-unreachable, …): requests that failed, not denied |
//! | `egress_blocked_domains_total` | counter | `domain`: registrable domain (eTLD+1) of denied targets, at most `blocked_domains_cap` of them, then `other`; `identity` |
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
//! | `egress_policy_info` | gauge (1) | `sha256`: of the policy file's bytes in force (one series at a time; replicas running the same file show the same value) |
//! | `egress_audit_lines_dropped_total` | counter | – (queue full, or the file refused the line: disk full) |
//! | `egress_connections_cut_total` | counter | `protocol` (connections still open at the end of the shutdown grace period, closed by the proxy) |
//!
//! `identity` is the client's identity: a configured name (a user of the users file, a key of
//! `identities`), `anonymous` for clients recognised as none (and requests refused before they
//! were identified), or `other` past the first `IDENTITY_CAP` names. Never a string a client
//! sent: a user name becomes a label only once its password has checked out.
//!
//! Metrics exist only when the admin listener is configured. A `Metrics` is owned by the proxy's
//! state (its `Observer`), not the process: two proxies in one process count apart.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use egress_config::{DenyReason, Host, Protocol, ANONYMOUS};

use crate::outcome::{Kind, Record};
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
    identity: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    protocol: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabel {
    domain: String,
    identity: Arc<str>,
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabel {
    sha256: String,
}

/// The label value for domains (and identities) beyond the cap.
pub const OTHER: &str = egress_config::identity::OTHER;
/// Identities with series of their own; more are counted as `other`.
pub const IDENTITY_CAP: usize = 256;

pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    blocked_domains: Family<DomainLabel, Counter>,
    /// Domains that have their own series; at most `cap`.
    labelled_domains: Mutex<HashSet<String>>,
    cap: usize,
    /// Identities that have their own series; at most `IDENTITY_CAP`.
    labelled_identities: Mutex<HashSet<Arc<str>>>,
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
    /// One series: the digest of the policy in force (the previous one is removed).
    policy_info: Family<PolicyLabel, Gauge>,
    policy_sha256: Mutex<Option<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every family registered and every known label value at zero;
    /// `cap` distinct blocked domains get their own series.
    pub fn new(cap: usize) -> Self {
        let metrics = Self {
            registry: Registry::with_prefix("egress"),
            decisions: Family::default(),
            failures: Family::default(),
            blocked_domains: Family::default(),
            labelled_domains: Mutex::new(HashSet::new()),
            cap,
            labelled_identities: Mutex::new(HashSet::new()),
            active: Family::default(),
            refused_unanswered: Family::default(),
            bytes: Family::default(),
            // 1 ms to ~33 s: a loopback connect to a slow parent's CONNECT.
            connect_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            dns_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            upstream_up: Family::default(),
            reloads: Family::default(),
            last_reload_success: Gauge::default(),
            last_reload_failure: Gauge::default(),
            audit_dropped: Counter::default(),
            connections_cut: Family::default(),
            policy_info: Family::default(),
            policy_sha256: Mutex::new(None),
        };
        let mut metrics = metrics;
        metrics.register();
        metrics.seed_label_values();
        metrics
    }

    /// Names and describes every family in the registry.
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "decisions",
            "Requests decided, by protocol, decision (allow, report, deny, fail) and reason",
            self.decisions.clone(),
        );
        r.register(
            "failures",
            "Requests that failed (the destination or the way to it did not work; not denials), by protocol and reason",
            self.failures.clone(),
        );
        r.register(
            "blocked_domains",
            "Denied requests by registrable domain (capped; the rest are domain=\"other\")",
            self.blocked_domains.clone(),
        );
        r.register(
            "active_connections",
            "Open client connections by protocol",
            self.active.clone(),
        );
        r.register(
            "connections_refused_unanswered",
            "Connections refused at a connection cap and closed without an answer, by cause (busy: every refuser was busy; silent: the client did not say in time which protocol it speaks)",
            self.refused_unanswered.clone(),
        );
        r.register(
            "bytes",
            "Bytes relayed, by direction (upload: client to destination)",
            self.bytes.clone(),
        );
        r.register(
            "connect_duration_seconds",
            "From the decision to the destination connected (or the tunnel opened through a parent)",
            self.connect_duration.clone(),
        );
        r.register(
            "dns_lookup_duration_seconds",
            "Destination name lookups",
            self.dns_duration.clone(),
        );
        r.register(
            "upstream_up",
            "Whether each parent proxy is up (1) or marked down (0)",
            self.upstream_up.clone(),
        );
        r.register(
            "config_reloads",
            "Policy reloads by result",
            self.reloads.clone(),
        );
        r.register(
            "config_last_reload_success_timestamp_seconds",
            "When the policy in force was loaded (Unix time)",
            self.last_reload_success.clone(),
        );
        r.register(
            "config_last_reload_failure_timestamp_seconds",
            "When a policy file was last rejected (Unix time; 0: never). Newer than the last success: the file on disk is not in force",
            self.last_reload_failure.clone(),
        );
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register("build_info", "The running build", build_info);
        r.register(
            "policy_info",
            "The policy in force: sha256 of its file's bytes (compare replicas)",
            self.policy_info.clone(),
        );
        r.register(
            "audit_lines_dropped",
            "Audit log lines lost: dropped because the writer fell behind, or refused by the file (disk full)",
            self.audit_dropped.clone(),
        );
        r.register(
            "connections_cut",
            "Connections still open at the end of the shutdown grace period, closed by the proxy",
            self.connections_cut.clone(),
        );
    }

    /// Every known label value exists from the start, so rates and alerts work at once.
    fn seed_label_values(&self) {
        for protocol in Protocol::ALL {
            let protocol = protocol.as_str();
            let _ = self.decisions.get_or_create(&DecisionLabels {
                protocol,
                decision: "allow",
                reason: "none",
                identity: ANONYMOUS.into(),
            });
            for reason in DenyReason::ALL {
                let refused = match reason.fault() {
                    egress_config::Fault::Upstream => {
                        let _ = self.failures.get_or_create(&FailureLabels {
                            protocol,
                            reason: reason.as_str(),
                        });
                        "fail"
                    }
                    _ => "deny",
                };
                for decision in [refused, "report"] {
                    let _ = self.decisions.get_or_create(&DecisionLabels {
                        protocol,
                        decision,
                        reason: reason.as_str(),
                        identity: ANONYMOUS.into(),
                    });
                }
            }
            let _ = self.active.get_or_create(&ProtocolLabel { protocol });
            let _ = self
                .connections_cut
                .get_or_create(&ProtocolLabel { protocol });
        }
        for cause in Unanswered::ALL {
            let _ = self.refused_unanswered.get_or_create(&CauseLabel {
                cause: cause.as_str(),
            });
        }
        for direction in ["upload", "download"] {
            let _ = self.bytes.get_or_create(&DirectionLabel { direction });
        }
        for result in ["success", "failure"] {
            let _ = self.reloads.get_or_create(&ResultLabel { result });
        }
        let _ = self.blocked_domains.get_or_create(&DomainLabel {
            domain: OTHER.into(),
            identity: ANONYMOUS.into(),
        });
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

    /// A record's identity as a label value. Identities are configured names (a client cannot
    /// make one up: a user name becomes an identity only once its password checks out), and a
    /// large users file is still bounded here: past `IDENTITY_CAP` names, `other`.
    fn identity_label(&self, record: &Record) -> Arc<str> {
        let Some(identity) = record.identity.as_deref() else {
            return ANONYMOUS.into();
        };
        let mut labelled = self
            .labelled_identities
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(known) = labelled.get(identity) {
            return known.clone();
        }
        if labelled.len() < IDENTITY_CAP && identity != OTHER {
            let label: Arc<str> = identity.into();
            labelled.insert(label.clone());
            return label;
        }
        OTHER.into()
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

/// What a connection that is open counts as; decrements `egress_active_connections` when
/// dropped.
#[derive(Debug)]
pub struct ActiveGuard {
    metrics: Arc<Metrics>,
    labels: ProtocolLabel,
}

impl ActiveGuard {
    /// The `protocol` label it counts under.
    pub fn protocol(&self) -> &'static str {
        self.labels.protocol
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.metrics.active.get_or_create(&self.labels).dec();
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

/// The recording side: one method per thing counted.
impl Metrics {
    /// One outcome record: its decision, its failure or blocked domain, its bytes. A record
    /// without a decision (a connection cut before any) is not a decision and counts nothing.
    pub fn outcome(&self, record: &Record) {
        let Some(kind) = record.kind else { return };
        let protocol = record.protocol.as_str();
        let identity = self.identity_label(record);
        self.decisions
            .get_or_create(&DecisionLabels {
                protocol,
                decision: kind.label(),
                reason: record.reason.map_or("none", DenyReason::as_str),
                identity: identity.clone(),
            })
            .inc();
        match (kind, record.reason, &record.target) {
            (Kind::Failed, Some(reason), _) => {
                self.failures
                    .get_or_create(&FailureLabels {
                        protocol,
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            // Only denials are blocked domains: a failing destination is not a blocked one.
            (Kind::Denied, _, Some((host, _))) => {
                let domain = self.domain_label(host);
                self.blocked_domains
                    .get_or_create(&DomainLabel { domain, identity })
                    .inc();
            }
            _ => {}
        }
        for (direction, n) in [("upload", record.upload), ("download", record.download)] {
            if n > 0 {
                self.bytes
                    .get_or_create(&DirectionLabel { direction })
                    .inc_by(n);
            }
        }
    }

    /// Counts an open connection of `protocol` until the returned guard drops.
    pub fn connection(self: &Arc<Self>, protocol: Protocol) -> ActiveGuard {
        let labels = ProtocolLabel {
            protocol: protocol.as_str(),
        };
        self.active.get_or_create(&labels).inc();
        ActiveGuard {
            metrics: self.clone(),
            labels,
        }
    }

    /// A connection refused at a cap and closed without an answer.
    pub fn refused_unanswered(&self, cause: Unanswered) {
        self.refused_unanswered
            .get_or_create(&CauseLabel {
                cause: cause.as_str(),
            })
            .inc();
    }

    pub fn connect_duration(&self, elapsed: Duration) {
        self.connect_duration.observe(elapsed.as_secs_f64());
    }

    pub fn dns_duration(&self, elapsed: Duration) {
        self.dns_duration.observe(elapsed.as_secs_f64());
    }

    pub fn upstream_up(&self, name: &str, up: bool) {
        self.upstream_up
            .get_or_create(&UpstreamLabel {
                upstream: name.to_string(),
            })
            .set(i64::from(up));
    }

    /// A reload (or the first load, which counts as a success for the timestamp only).
    pub fn reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
        if success {
            self.loaded_now();
        } else {
            self.last_reload_failure.set(unix_now());
        }
    }

    /// The policy file `text` is in force: `egress_policy_info{sha256}` names it, alone.
    pub fn policy_loaded(&self, digest: &[u8; 32]) {
        let sha256: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let mut current = self.policy_sha256.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = current.take() {
            self.policy_info.remove(&PolicyLabel { sha256: previous });
        }
        self.policy_info
            .get_or_create(&PolicyLabel {
                sha256: sha256.clone(),
            })
            .set(1);
        *current = Some(sha256);
    }

    /// Sets the last-successful-load time to now.
    pub fn loaded_now(&self) {
        self.last_reload_success.set(unix_now());
    }

    /// `n` audit lines lost (the queue was full, or a batch the disk refused).
    pub fn audit_dropped(&self, n: u64) {
        self.audit_dropped.inc_by(n);
    }

    /// A connection of `protocol` cut at the end of the shutdown grace period.
    pub fn connection_cut(&self, protocol: Protocol) {
        self.connections_cut
            .get_or_create(&ProtocolLabel {
                protocol: protocol.as_str(),
            })
            .inc();
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests;
