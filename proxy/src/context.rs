//! What a connection carries with it through the flow: who the client is, the policy snapshot
//! it keeps to its end, the shutdown signals it answers to and the decider. Its own module, so
//! the steps (detect, http, socks5, decide) depend on it and not on each other.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::decider::Decider;
use crate::handed::Handed;
use crate::observe::Observer;
use crate::stand_ins::StandIns;
use crate::state::{ProxyState, Snapshot};

/// Everything a connection handler needs to know about where it runs.
#[derive(Debug, Clone)]
pub struct ConnContext {
    pub client: SocketAddr,
    /// The listener's identity for clients recognised by neither login nor network.
    pub listener_identity: Option<Arc<str>>,
    pub snapshot: Arc<Snapshot>,
    /// Cancelled when shutdown begins: keep-alive loops end after the current exchange.
    pub shutdown: CancellationToken,
    /// The step between the policy's verdict and the dial (see `decider`).
    pub decider: Arc<dyn Decider>,
    /// Set on a connection intercepted by a `redirect://` listener: where it was going. Its
    /// requests are named by their `Host` header and may reach only this address.
    pub intercepted: Option<SocketAddr>,
    /// The DNS responder's answers to each client (see `handed`).
    pub handed: Arc<Handed>,
    /// Addresses an embedder handed out for names (see `transparent::StandIns`).
    pub stand_ins: Option<Arc<dyn StandIns>>,
}

impl ConnContext {
    /// The protocol an HTTP request on this connection is decided and accounted under.
    pub fn http_protocol(&self) -> egress_config::Protocol {
        match self.intercepted {
            Some(_) => egress_config::Protocol::Transparent,
            None => egress_config::Protocol::HttpForward,
        }
    }

    /// The name an intercepted connection's original address stands for, when an embedder
    /// handed that address out for a name: the connection is that name's, whatever it says.
    pub fn stood_for(&self) -> Option<egress_config::Host> {
        let original = self.intercepted?;
        self.stand_ins.as_ref()?.name_of(original.ip())
    }
}

/// What a connection shares with the whole proxy beyond its snapshot: the two moments of
/// shutdown it answers to, and the decider.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Shutdown began: finish the exchange under way, take no new request.
    pub shutdown: CancellationToken,
    /// The grace period is over: the connection is closed where it stands, and recorded as cut.
    pub cut: CancellationToken,
    /// Counts the connections cut.
    pub cut_count: Arc<AtomicUsize>,
    pub decider: Arc<dyn Decider>,
    /// Where the connection's records go (its ledger's).
    pub observer: Arc<Observer>,
    pub handed: Arc<Handed>,
    pub stand_ins: Option<Arc<dyn StandIns>>,
}

impl Shared {
    pub fn of(state: &ProxyState) -> Self {
        Self {
            shutdown: state.shutdown.clone(),
            cut: state.cut.clone(),
            cut_count: state.cut_count.clone(),
            decider: state.decider.clone(),
            observer: state.observer.clone(),
            handed: state.handed.clone(),
            stand_ins: state.stand_ins.get().cloned(),
        }
    }
}
