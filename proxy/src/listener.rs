//! Accepting connections: the connection caps, backoff on accept errors, one span per connection;
//! refused connections go to the [`Refusers`] (answered in `refuse`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use egress_config::{ListenerProtocols, ProxyProtocol};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::detect;
use crate::state::ProxyState;
use proxy_protocol::Header;

pub mod proxy_protocol;
mod refuse;

pub use crate::refusers::Refusers;

const BACKOFF_START: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts until shutdown begins. Each accepted connection runs on the state's task tracker.
pub async fn accept_loop(
    listener: TcpListener,
    protocols: ListenerProtocols,
    proxy_protocol: Option<ProxyProtocol>,
    identity: Option<String>,
    state: Arc<ProxyState>,
) {
    let admission = Admission::new(state.clone(), protocols, listener.local_addr().ok())
        .with_proxy_protocol(proxy_protocol)
        .with_identity(identity);
    let mut backoff = BACKOFF_START;
    loop {
        let accepted = tokio::select! {
            biased;
            () = state.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = BACKOFF_START;
                admission.admit(stream, peer);
            }
            Err(error) if is_resource_exhaustion(&error) => {
                // EMFILE and friends: the listen queue stays full, so accepting again at once
                // would spin. Back off, doubling, and let existing connections finish.
                warn!(%error, backoff_ms = backoff.as_millis() as u64, "accept failed; backing off");
                tokio::select! {
                    () = state.shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(error) => debug!(%error, "accept failed"),
        }
    }
}

/// What happens to a connection once accepted: the caps, the span, and its task. Shared by the
/// accept loops and by callers that accept elsewhere and hand connections over (egress-run
/// receives its sandbox's connections as file descriptors, with no listening port at all).
#[derive(Debug, Clone)]
pub struct Admission {
    state: Arc<ProxyState>,
    protocols: ListenerProtocols,
    /// The listening address, for the span (`None` for handed-over connections).
    local: Option<SocketAddr>,
    /// `local` as the span shows it, written once rather than at every connection.
    local_text: Arc<str>,
    /// Connections start with a PROXY protocol header from one of these peers.
    proxy_protocol: Option<Arc<ProxyProtocol>>,
    /// The identity of clients recognised by neither login nor network (`listen[].identity`).
    identity: Option<Arc<str>>,
}

impl Admission {
    pub fn new(
        state: Arc<ProxyState>,
        protocols: ListenerProtocols,
        local: Option<SocketAddr>,
    ) -> Self {
        Self {
            state,
            protocols,
            local,
            local_text: format!("{local:?}").into(),
            proxy_protocol: None,
            identity: None,
        }
    }

    /// Clients recognised by neither login nor network are `identity`.
    pub fn with_identity(mut self, identity: Option<String>) -> Self {
        self.identity = identity.map(Arc::from);
        self
    }

    /// Reads a PROXY protocol header first on each connection, from `trusted` peers only.
    pub fn with_proxy_protocol(mut self, proxy_protocol: Option<ProxyProtocol>) -> Self {
        self.proxy_protocol = proxy_protocol.map(Arc::new);
        self
    }

    /// Serves `stream` from `peer` on the state's task tracker, or, when a cap is reached,
    /// hands it to the refusers (answered in its own protocol, or closed and counted). Returns
    /// at once. Behind a load balancer (the PROXY protocol), `peer` is the balancer: the
    /// header is read first, on a task of its own, and the client it names is admitted.
    pub fn admit(&self, stream: TcpStream, peer: SocketAddr) {
        let Some(proxy_protocol) = &self.proxy_protocol else {
            return self.admit_client(stream, peer);
        };
        let balancer = canonical(peer.ip());
        if !proxy_protocol.trusted.iter().any(|n| n.contains(&balancer)) {
            // Whoever sends the header picks the client's address (and network identity):
            // an untrusted peer is closed before a byte of it is read.
            info!(peer = %peer, listener = ?self.local, "refused: not a trusted PROXY protocol peer");
            return;
        }
        let this = self.clone();
        let wait = self.state.snapshot().timeouts.request_head;
        let shutdown = self.state.shutdown.clone();
        self.state.tracker.spawn(async move {
            let mut stream = stream;
            let header = tokio::select! {
                header = proxy_protocol::read(&mut stream, wait) => header,
                () = shutdown.cancelled() => return,
            };
            match header {
                Ok(Header::Proxied(client)) => this.admit_client(stream, client),
                Ok(Header::Local) => this.admit_client(stream, peer),
                Err(error) => {
                    info!(peer = %peer, listener = ?this.local, error = error.as_str(), "refused");
                }
            }
        });
    }

    /// `admit` for a connection whose client is known.
    fn admit_client(&self, stream: TcpStream, peer: SocketAddr) {
        let state = &self.state;
        let protocols = self.protocols;
        let _ = stream.set_nodelay(true);
        let span = info_span!(
            "conn",
            client = %peer,
            listener = %self.local_text,
            protocol = tracing::field::Empty,
            target = tracing::field::Empty,
            identity = tracing::field::Empty,
        );
        let snapshot = state.snapshot();
        let per_client_max = snapshot.limits.max_connections_per_client;
        let admitted = state
            .per_client
            .try_acquire(peer.ip(), per_client_max)
            .map(|slot| (slot, state.connections.clone().try_acquire_owned()));
        match admitted {
            Some((slot, Ok(permit))) => {
                span.in_scope(|| debug!("accepted"));
                let stop = crate::context::Shared::of(state);
                let identity = self.identity.clone();
                state.tracker.spawn(
                    async move {
                        let ledger =
                            detect::serve(stream, peer, protocols, identity, snapshot, stop).await;
                        drop(permit);
                        drop(slot);
                        // Counted as active until now: when the gauge reads 0, the room is free.
                        drop(ledger);
                    }
                    .instrument(span),
                );
            }
            refused => {
                let limit: &'static str = if refused.is_none() {
                    "this client's connection limit"
                } else {
                    "the connection limit"
                };
                let connection = refuse::Refused {
                    stream,
                    peer,
                    protocols,
                    limit,
                };
                refuse::refuse(
                    &state.refusers,
                    connection,
                    &state.tracker,
                    span,
                    &state.observer,
                );
            }
        }
    }
}

/// Errors that mean "the process or system is out of something": retrying at once cannot help.
fn is_resource_exhaustion(error: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    matches!(
        error.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM)
    )
}

/// IPv4-mapped IPv6 peers (a dual-stack listener) match IPv4 networks.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}
