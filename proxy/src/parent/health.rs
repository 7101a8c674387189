//! Whether each parent proxy is up: marked down by a failed connection, then probed (a TCP
//! connect; a TLS handshake for an `https://` parent, a ticket for a Kerberos one) every
//! `health_check` until it answers, and
//! logged on every change. Kept across reloads for parents whose URL did not change, so a
//! reload does not forget that a parent is down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use egress_config::Upstream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Reach;
use crate::dial;
use crate::metrics::Metrics;

/// One parent's state.
#[derive(Debug)]
pub struct Health {
    /// The URL (without password) this state belongs to; a changed URL is a new parent.
    url: String,
    up: AtomicBool,
    /// When the prober looks at this parent next.
    next_probe: Mutex<Instant>,
    /// Where `egress_upstream_up` is kept.
    metrics: Option<Arc<Metrics>>,
}

impl Health {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records a failed connection (or probe); logs only the change.
    pub fn mark_down(&self, name: &str, why: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            warn!(upstream = name, url = %self.url, reason = why, "upstream down");
        }
        self.gauge(name);
    }

    /// Records a working connection (or probe); logs only the change.
    pub fn mark_up(&self, name: &str) {
        if !self.up.swap(true, Ordering::Relaxed) {
            info!(upstream = name, url = %self.url, "upstream up");
        }
        self.gauge(name);
    }

    fn gauge(&self, name: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.upstream_up(name, self.is_up());
        }
    }
}

/// Every parent's state by name, shared by all snapshots.
#[derive(Debug, Default)]
pub struct HealthTable {
    by_name: Mutex<HashMap<String, Arc<Health>>>,
    metrics: Option<Arc<Metrics>>,
}

impl HealthTable {
    /// An empty table whose parents' states are shown in `metrics`.
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            by_name: Mutex::default(),
            metrics,
        }
    }

    /// The state for `upstream`: the existing one if its URL is unchanged, else a fresh one
    /// (up until shown otherwise: a new parent gets traffic at once).
    pub fn entry(&self, upstream: &Upstream) -> Arc<Health> {
        let entry = self.entry_inner(upstream);
        entry.gauge(&upstream.name);
        entry
    }

    fn entry_inner(&self, upstream: &Upstream) -> Arc<Health> {
        let url = upstream.display_url();
        let mut table = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        match table.get(&upstream.name) {
            Some(existing) if existing.url == url => existing.clone(),
            _ => {
                let fresh = Arc::new(Health {
                    url,
                    up: AtomicBool::new(true),
                    next_probe: Mutex::new(Instant::now()),
                    metrics: self.metrics.clone(),
                });
                table.insert(upstream.name.clone(), fresh.clone());
                fresh
            }
        }
    }
}

/// How often the prober wakes to see which parents are due.
const TICK: Duration = Duration::from_millis(250);

/// Probes every parent marked down, on its own `health_check` schedule, until `shutdown`; each
/// round looks at the configuration `current` returns (the one in force then). Parents
/// believed up are not probed: real traffic tells soon enough when one fails, and a corporate
/// Squid should not log an empty connection from every egress every few seconds. Probes run
/// concurrently, so a black-holed parent does not delay the others.
pub async fn probe_loop<R: Reach>(shutdown: CancellationToken, current: impl Fn() -> Arc<R>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let snapshot = current();
        let now = Instant::now();
        for (upstream, health) in snapshot.parents().iter() {
            if health.is_up() {
                continue;
            }
            {
                let mut next = health.next_probe.lock().unwrap_or_else(|e| e.into_inner());
                if *next > now {
                    continue;
                }
                *next = now + upstream.health_check;
            }
            let (upstream, health, snapshot) = (upstream.clone(), health.clone(), snapshot.clone());
            tokio::spawn(async move {
                let timeout = upstream.health_check.min(snapshot.dial_timeout());
                let reached = match snapshot
                    .resolver()
                    .resolve(&upstream.host, upstream.port)
                    .await
                {
                    Ok(addrs) => match dial::dial(&addrs, timeout).await {
                        // An https:// parent whose certificate egress refuses is of no use
                        // either: the probe shakes hands too.
                        Ok(stream) => match &upstream.tls {
                            Some(settings) => {
                                let config = snapshot.parents().tls_config(&upstream, settings);
                                let deadline = Instant::now() + timeout;
                                super::tls::wrap(stream, &upstream, config, deadline)
                                    .await
                                    .map(drop)
                            }
                            None => Ok(()),
                        },
                        Err(refusal) => Err(refusal),
                    },
                    Err(refusal) => Err(refusal),
                };
                // A Kerberos parent is of no use without a ticket for it: while the KDC cannot
                // be reached it stays down, rather than coming up and costing each new
                // connection a failed ticket request before the next parent is tried.
                let reached = match (reached, &upstream.negotiate) {
                    (Ok(()), Some(negotiate)) => snapshot
                        .parents()
                        .negotiate
                        .authorization(&upstream, negotiate, timeout)
                        .await
                        .map(drop),
                    (reached, _) => reached,
                };
                match reached {
                    Ok(()) => health.mark_up(&upstream.name),
                    Err(refusal) => health.mark_down(&upstream.name, &refusal.detail),
                }
            });
        }
    }
}
