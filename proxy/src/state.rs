//! What every connection shares: the current configuration snapshot, the connection cap and the
//! shutdown signal.

use std::sync::Arc;

use arc_swap::ArcSwap;
use egress_config::{Config, Limits, ListenerProtocols, Policy, Timeouts};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The part of a configuration that a reload may replace. A connection takes the snapshot current
/// at accept and keeps it to the end, so a reload never changes the rules under an open tunnel.
#[derive(Debug)]
pub struct Snapshot {
    pub policy: Policy,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Where the rules came from, for logs and `X-Egress-Error` bodies.
    pub source: String,
}

impl Snapshot {
    pub fn from_config(config: &Config) -> Self {
        Self {
            policy: config.policy.clone(),
            limits: config.limits,
            timeouts: config.timeouts,
            source: config.source.clone(),
        }
    }
}

/// A socket already bound by the caller, and what it speaks.
#[derive(Debug)]
pub struct BoundListener {
    pub listener: TcpListener,
    pub protocols: ListenerProtocols,
}

/// Shared by the accept loops, every connection task and the reloader.
#[derive(Debug)]
pub struct ProxyState {
    snapshot: ArcSwap<Snapshot>,
    /// Permits for client connections; sized once at start (`limits.max_connections`).
    pub connections: Arc<Semaphore>,
    /// Cancelled when shutdown begins: accept loops stop, keep-alive connections finish.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them to drain.
    pub tracker: TaskTracker,
}

impl ProxyState {
    pub fn new(config: &Config) -> Arc<Self> {
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(Snapshot::from_config(config)),
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        })
    }

    /// The snapshot in force now; cheap (an atomic load and a refcount increment).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Makes `next` the snapshot for connections accepted from now on.
    pub fn replace(&self, next: Snapshot) {
        self.snapshot.store(Arc::new(next));
    }
}
