//! What every connection shares: the current configuration snapshot, the connection cap, the
//! shutdown signal and the proxy's observability (metrics, audit log, event stream).

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use egress_config::guard::AddressGuard;
use egress_config::{
    Config, Identities, Limits, ListenerProtocols, Policy, Timeouts, TlsInspection,
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::decider::{Decider, PassThrough};
use crate::identify::Verifier;
use crate::observe::Observer;
use crate::parent::{HealthTable, Parents, Reach};
use crate::per_client::ClientCounts;
use crate::refusers::Refusers;
use crate::resolve::Resolver;

/// The part of a configuration that a reload may replace. A connection takes the snapshot current
/// at accept and keeps it to the end, so a reload never changes the rules under an open tunnel.
#[derive(Debug)]
pub struct Snapshot {
    pub policy: Policy,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Where the rules came from, for logs and `X-Egress-Error` bodies.
    pub source: String,
    pub resolver: Resolver,
    pub guard: AddressGuard,
    pub tls: TlsInspection,
    /// Parent proxies, the routes to them, and their health.
    pub parents: Parents,
    /// Who clients are, and each identity's policy.
    pub identities: Identities,
    /// `ask` mode's settings.
    pub ask: egress_config::Ask,
    /// Password checks, their cache and the failed-login delays (fresh with each snapshot, so
    /// a changed users file is never answered from the old one's cache).
    pub verifier: Verifier,
}

impl Snapshot {
    /// `health` keeps each parent's up/down state across reloads.
    pub fn from_config(config: &Config, health: &HealthTable) -> Self {
        Self {
            policy: config.policy.clone(),
            limits: config.limits,
            timeouts: config.timeouts,
            source: config.source.clone(),
            resolver: Resolver::new(&config.dns),
            guard: address_guard(config),
            tls: config.tls.clone(),
            parents: Parents::new(&config.routing, health),
            identities: config.identities.clone(),
            ask: config.ask,
            verifier: Verifier::default(),
        }
    }

    /// The policy that applies to `identity`.
    pub fn policy_for(&self, identity: &str) -> &Policy {
        self.identities.policy_for(identity, &self.policy)
    }
}

impl Reach for Snapshot {
    fn parents(&self) -> &Parents {
        &self.parents
    }

    fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    fn dial_timeout(&self) -> Duration {
        self.timeouts.dial
    }
}

/// The guard the configuration asks for, knowing this host's own interface addresses (read
/// again at every reload, so a new interface is covered from the next reload on).
fn address_guard(config: &Config) -> AddressGuard {
    if !config.address_guard.enabled {
        return AddressGuard::disabled();
    }
    let own = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces.into_iter().map(|i| i.ip()).collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot list this host's interface addresses; the guard covers the standard ranges only");
            Vec::new()
        }
    };
    AddressGuard::new(config.address_guard.allow_networks.clone()).with_own_addresses(own)
}

/// A socket already bound by the caller, and what it speaks.
#[derive(Debug)]
pub struct BoundListener {
    pub listener: TcpListener,
    pub protocols: ListenerProtocols,
    /// Connections start with a PROXY protocol header (`None`: they do not).
    pub proxy_protocol: Option<egress_config::ProxyProtocol>,
    /// The identity of this listener's clients recognised by neither login nor network.
    pub identity: Option<String>,
}

/// Shared by the accept loops, every connection task and the reloader.
#[derive(Debug)]
pub struct ProxyState {
    snapshot: ArcSwap<Snapshot>,
    /// Permits for client connections; sized once at start (`limits.max_connections`).
    pub connections: Arc<Semaphore>,
    /// Open connections per client address (`limits.max_connections_per_client`).
    pub per_client: Arc<ClientCounts>,
    /// Answer connections refused at either cap; sized once at start, like `connections`.
    pub refusers: Refusers,
    /// Cancelled when shutdown begins: accept loops stop, keep-alive connections finish.
    pub shutdown: CancellationToken,
    /// Cancelled when the shutdown grace period is over: connections still open are closed,
    /// each recorded as cut.
    pub cut: CancellationToken,
    /// How many connections the cut closed.
    pub cut_count: Arc<AtomicUsize>,
    /// Every connection task, so shutdown can wait for them to drain.
    pub tracker: TaskTracker,
    /// Parent proxies' health, outliving any one snapshot.
    pub parent_health: HealthTable,
    /// The step between verdict and dial; outlives reloads (it will hold "ask" approvals).
    pub decider: Arc<dyn Decider>,
    /// This proxy's metrics, audit log and event stream.
    pub observer: Arc<Observer>,
    /// What the DNS responder handed to each client, which intercepted connections trust.
    pub handed: Arc<crate::handed::Handed>,
    /// Set by an embedder that answers DNS itself (see `transparent::StandIns`).
    pub stand_ins: std::sync::OnceLock<Arc<dyn crate::stand_ins::StandIns>>,
}

impl ProxyState {
    /// A state without metrics or audit log (its event stream is there for subscribers).
    pub fn new(config: &Config) -> Arc<Self> {
        Self::assemble(config, Arc::default(), Arc::new(PassThrough))
    }

    /// A state whose outcomes go to `observer`.
    pub fn with_observer(config: &Config, observer: Arc<Observer>) -> Arc<Self> {
        Self::assemble(config, observer, Arc::new(PassThrough))
    }

    /// A state whose allowed requests pass through `decider` before they are dialed.
    pub fn with_decider(config: &Config, decider: Arc<dyn Decider>) -> Arc<Self> {
        Self::assemble(config, Arc::default(), decider)
    }

    /// A state from all its parts.
    pub fn assemble(
        config: &Config,
        observer: Arc<Observer>,
        decider: Arc<dyn Decider>,
    ) -> Arc<Self> {
        let parent_health = HealthTable::new(observer.metrics().cloned());
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(Snapshot::from_config(config, &parent_health)),
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            per_client: Arc::new(ClientCounts::default()),
            refusers: Refusers::new(config.limits.max_connections),
            shutdown: CancellationToken::new(),
            cut: CancellationToken::new(),
            cut_count: Arc::default(),
            tracker: TaskTracker::new(),
            parent_health,
            decider,
            observer,
            handed: Arc::default(),
            stand_ins: std::sync::OnceLock::new(),
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
