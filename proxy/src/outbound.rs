//! The one way out, for tunnels and plain-HTTP forwarding alike: choose the route an allowed
//! request takes, check the addresses it would reach, and dial them directly or open the way
//! through a parent proxy. Tunnels take the steps one at a time (on TLS ports the client's
//! ClientHello is judged between the checks and the dial); forwarding takes them at once.

use std::net::SocketAddr;

use bytes::BytesMut;
use egress_config::{DenyReason, Host, RouteChoice, Upstream, Verdict};
use tokio::net::TcpStream;

use crate::answer::Refusal;
use crate::parent::{self, Purpose, Via};
use crate::state::Snapshot;
use crate::{destination, dial};

/// How an allowed request leaves.
#[derive(Debug)]
pub enum Way {
    /// Straight to these addresses, each one checked by the address guard (not dialed yet).
    Direct(Vec<SocketAddr>),
    /// Through the parents of this route (the parent resolves the name).
    Parent(String),
}

/// An intercepted connection's original destination, which it alone may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinned {
    pub original: SocketAddr,
    /// Egress's DNS responder handed `original` to this client for the target's name (within
    /// the answer's TTL): as good as egress's own lookup giving it now.
    pub handed: bool,
}

/// The route for `host:port`, with the address checks it needs: every address of a direct
/// destination; an IP-literal destination even through a parent (the parent would reach it).
pub async fn choose(
    snapshot: &Snapshot,
    host: &Host,
    port: u16,
    verdict: &Verdict<'_>,
) -> Result<Way, Refusal> {
    let explicit = verdict.explicit_address;
    match snapshot.parents.route(verdict.via, host) {
        RouteChoice::Direct => Ok(Way::Direct(
            destination::resolve_checked(snapshot, host, port, explicit).await?,
        )),
        RouteChoice::Upstream(name) => {
            if let Host::Ip(_) = host {
                // No lookup for a literal: this only runs the address guard over it.
                destination::resolve_checked(snapshot, host, port, explicit).await?;
            }
            Ok(Way::Parent(name))
        }
    }
}

/// Holds an intercepted connection to its original destination: `original` must be one of the
/// addresses egress's own lookup of `host` gives (each checked by the address guard), or one its
/// DNS responder handed this client for `host` (checked again: the guard may have changed
/// since), or the client named an allowed host while connecting somewhere else
/// (`host-mismatch`). A direct way then dials `original` alone; a parent is asked for `host` by
/// name, as for any request.
pub async fn pin(
    snapshot: &Snapshot,
    way: Way,
    host: &Host,
    port: u16,
    verdict: &Verdict<'_>,
    pinned: Pinned,
) -> Result<Way, Refusal> {
    let original = pinned.original;
    let wanted = original.ip().to_canonical();
    let agrees = if pinned.handed && original.port() == port {
        destination::check_all(&snapshot.guard, host, &[wanted], verdict.explicit_address)?;
        true
    } else {
        let resolved = match &way {
            Way::Direct(addrs) => addrs.clone(),
            Way::Parent(_) => {
                destination::resolve_checked(snapshot, host, port, verdict.explicit_address).await?
            }
        };
        original.port() == port
            && resolved
                .iter()
                .any(|addr| addr.ip().to_canonical() == wanted)
    };
    if !agrees {
        return Err(Refusal::new(
            DenyReason::HostMismatch,
            format!(
                "the connection was going to {original}, which is not an address of {host} \
                 (egress's own lookup, or its DNS responder's answer to this client)"
            ),
        ));
    }
    Ok(match way {
        Way::Direct(_) => Way::Direct(vec![original]),
        parent => parent,
    })
}

/// Dials checked addresses, timing the connect.
pub async fn dial(snapshot: &Snapshot, addrs: &[SocketAddr]) -> Result<TcpStream, Refusal> {
    let started = std::time::Instant::now();
    let stream = dial::dial(addrs, snapshot.timeouts.dial).await?;
    if let Some(metrics) = crate::account::metrics() {
        metrics.connect_duration(started.elapsed());
    }
    Ok(stream)
}

/// Opens the way through route `route`'s parents (with failover), timing it.
pub async fn through_parent(
    snapshot: &Snapshot,
    route: &str,
    host: &Host,
    port: u16,
    purpose: Purpose,
) -> Result<Via, Refusal> {
    let started = std::time::Instant::now();
    let via = parent::open(snapshot, route, host, port, purpose).await?;
    if let Some(metrics) = crate::account::metrics() {
        metrics.connect_duration(started.elapsed());
    }
    Ok(via)
}

/// A connection on its way out, all steps taken.
#[derive(Debug)]
pub struct Opened {
    pub stream: TcpStream,
    /// Bytes already received from the other side (a parent's answer may carry some).
    pub pending: BytesMut,
    /// The HTTP parent this connection goes to, for plain-HTTP forwarding through it.
    pub forward_through: Option<Upstream>,
    /// Why the TLS session to an `https://` parent broke, if it does.
    pub tls: Option<parent::tls::Watch>,
    /// The parent's `Proxy-Authorization` line for the first request (see `parent::Via`).
    pub authorization: Option<String>,
    /// The parent route taken, when one was.
    pub route: Option<String>,
}

/// Chooses, checks and dials (or opens through a parent) in one step. `pinned`: an intercepted
/// connection's original destination (see `pin`).
pub async fn open(
    snapshot: &Snapshot,
    host: &Host,
    port: u16,
    verdict: &Verdict<'_>,
    purpose: Purpose,
    pinned: Option<Pinned>,
) -> Result<Opened, Refusal> {
    let mut way = choose(snapshot, host, port, verdict).await?;
    if let Some(pinned) = pinned {
        way = pin(snapshot, way, host, port, verdict, pinned).await?;
    }
    match way {
        Way::Direct(addrs) => Ok(Opened {
            stream: dial(snapshot, &addrs).await?,
            pending: BytesMut::new(),
            forward_through: None,
            tls: None,
            authorization: None,
            route: None,
        }),
        Way::Parent(route) => {
            let via = through_parent(snapshot, &route, host, port, purpose).await?;
            Ok(Opened {
                stream: via.stream,
                pending: via.pending,
                forward_through: via.forward_through,
                tls: via.tls,
                authorization: via.authorization,
                route: Some(route),
            })
        }
    }
}

#[cfg(test)]
mod tests;
