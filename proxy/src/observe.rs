//! Where a proxy's outcomes go: its metrics registry, its audit log and its event stream, all
//! owned by the proxy's state and handed to the steps that need them — never process globals,
//! so two proxies in one process (tests, the launcher's embedded one) keep their own counts.
//! `record` is the one fan-out: every outcome record reaches all three from here.

pub mod events;

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::metrics::Metrics;
use crate::outcome::Record;

pub use events::{Event, Events, Next, Notice, Subscription};

/// The proxy's observability: each part optional but the event stream.
#[derive(Debug)]
pub struct Observer {
    metrics: Option<Arc<Metrics>>,
    audit: Option<AuditLog>,
    events: Events,
}

impl Default for Observer {
    /// No metrics, no audit log; an event stream nobody has subscribed to yet.
    fn default() -> Self {
        Self::new(None, None)
    }
}

impl Observer {
    pub fn new(metrics: Option<Arc<Metrics>>, audit: Option<AuditLog>) -> Self {
        Self {
            metrics,
            audit,
            events: Events::new(events::DEFAULT_CAPACITY),
        }
    }

    /// The metrics, when the admin listener turned them on.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// The audit log, when the policy asks for one.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// A new subscriber to the event stream.
    pub fn subscribe(&self) -> Subscription {
        self.events.subscribe()
    }

    /// Sends an event that is not an outcome (approvals, policy changes).
    pub fn publish(&self, event: Event) {
        self.events.send(event);
    }

    /// Counts `record` in the metrics, writes its audit line and sends it to subscribers.
    pub fn record(&self, record: Record) {
        if let Some(metrics) = &self.metrics {
            metrics.outcome(&record);
        }
        if let Some(audit) = &self.audit {
            audit.write(record.audit_line());
        }
        if self.events.wanted() {
            self.events.send(Event::Outcome(Arc::new(record)));
        }
    }

    /// Writes `notice`'s audit line and sends it to subscribers (always: the admin console's
    /// ring keeps it even before anybody watches).
    pub fn notice(&self, notice: Notice) {
        if let Some(audit) = &self.audit {
            audit.write(notice.json.clone());
        }
        self.events.send(Event::Notice(Arc::new(notice)));
    }
}
