//! The "via parent" half of dialing: the route an allowed connection takes, and opening it
//! through a parent proxy with failover. A parent that cannot be reached is marked down and the
//! next of its chain is tried; a parent that answers (even with a refusal) is up, and its answer
//! is the client's.
//!
//! Through a parent the destination name is not resolved here: the parent resolves it (and its
//! own `dstdomain`-style rules see the name). The parent's own address is exempt from the
//! address guard; an IP-literal destination is still checked by it.

pub mod health;
mod http;
pub mod negotiate;
mod socks5;
pub mod tls;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use egress_config::{DenyReason, Host, RouteChoice, Routing, Upstream, UpstreamKind};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub use self::health::{Health, HealthTable};
pub use self::http::authorization;
use crate::answer::Refusal;
use crate::dial;
use crate::resolve::Resolver;

/// What reaching parents needs from the configuration in force: its parents, the resolver for
/// their names and the dial timeout. The owner of the configuration (the proxy state's snapshot)
/// implements it, so this module does not depend on that owner.
pub trait Reach: Send + Sync + 'static {
    fn parents(&self) -> &Parents;
    fn resolver(&self) -> &Resolver;
    /// The TCP connect timeout; also bounds a parent's answer to the tunnel request.
    fn dial_timeout(&self) -> Duration;
}

/// The parents of one snapshot with their (shared, long-lived) health.
#[derive(Debug, Default)]
pub struct Parents {
    routing: Routing,
    health: Vec<Arc<Health>>,
    /// Each `https://` parent's TLS settings, built on first use (files are read then).
    tls: Vec<OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
    /// The Kerberos agents of `auth: negotiate` parents, started on first use.
    negotiate: negotiate::Agents,
}

impl Parents {
    pub fn new(routing: &Routing, table: &HealthTable) -> Self {
        Self {
            routing: routing.clone(),
            health: routing.upstreams.iter().map(|u| table.entry(u)).collect(),
            tls: routing.upstreams.iter().map(|_| OnceLock::new()).collect(),
            negotiate: negotiate::Agents::default(),
        }
    }

    /// The rustls configuration for an `https://` parent (an error says which file is wrong).
    fn tls_config(
        &self,
        upstream: &Upstream,
        tls: &egress_config::ParentTls,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let index = self.routing.upstreams.iter().position(|u| u == upstream);
        match index.and_then(|i| self.tls.get(i)) {
            Some(cell) => cell.get_or_init(|| tls::client_config(tls)).clone(),
            None => tls::client_config(tls),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Upstream, &Arc<Health>)> {
        self.routing.upstreams.iter().zip(&self.health)
    }

    /// The route for an allowed target (see `Routing::choose`).
    pub fn route(&self, via: Option<&str>, host: &Host) -> RouteChoice {
        self.routing.choose(via, host)
    }

    /// The parent a new connection on route `name` goes to first: the first of its chain that
    /// is believed up (or the first of all, when none is).
    pub fn first_choice(&self, name: &str) -> Option<&str> {
        self.candidates(name)
            .first()
            .map(|(upstream, _)| upstream.name.as_str())
    }

    /// The parents to try for route `name`: its chain in order, the ones believed up first. The
    /// ones marked down come last rather than never: when every parent seems down, trying them
    /// beats refusing without trying.
    fn candidates(&self, name: &str) -> Vec<(&Upstream, &Arc<Health>)> {
        let chain: Vec<(&Upstream, &Arc<Health>)> = self
            .routing
            .chain(name)
            .into_iter()
            .filter_map(|u| self.iter().find(|(known, _)| known.name == u.name))
            .collect();
        let (up, down): (Vec<_>, Vec<_>) = chain.into_iter().partition(|(_, h)| h.is_up());
        up.into_iter().chain(down).collect()
    }
}

/// How one parent attempt ended, when it did not give a connection.
#[derive(Debug)]
enum Attempt {
    /// The parent itself could not be used (refused, unreachable, broken): try the next.
    ParentFailed(Refusal),
    /// The parent answered; its answer is final.
    Answered(Refusal),
}

/// A connection through a parent.
#[derive(Debug)]
pub struct Via {
    pub stream: TcpStream,
    /// Bytes the parent already sent after its answer (from the destination).
    pub pending: BytesMut,
    /// For an `https://` parent: why its TLS session broke, if it does.
    pub tls: Option<tls::Watch>,
    /// For plain-HTTP forwarding through an HTTP parent: the `Proxy-Authorization` line for the
    /// first request on this connection (a Kerberos token is good for one use; the parent
    /// keeps the connection authenticated after it).
    pub authorization: Option<String>,
    /// `Some` when the parent is an HTTP proxy and the connection is to the proxy itself (plain
    /// HTTP forwarding): requests go in absolute form with these credentials.
    pub forward_through: Option<Upstream>,
}

/// What the connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A tunnel to the destination (CONNECT, SOCKS5).
    Tunnel,
    /// Plain-HTTP requests: to an HTTP parent, a connection to the parent itself.
    Forward,
}

/// Opens a connection for `host:port` through route `name`, with failover along its chain.
pub async fn open(
    reach: &impl Reach,
    name: &str,
    host: &Host,
    port: u16,
    purpose: Purpose,
) -> Result<Via, Refusal> {
    let candidates = reach.parents().candidates(name);
    let mut last: Option<Refusal> = None;
    for (upstream, health) in candidates {
        match attempt(reach, upstream, host, port, purpose).await {
            Ok(via) => {
                health.mark_up(&upstream.name);
                return Ok(via);
            }
            Err(Attempt::Answered(refusal)) => {
                health.mark_up(&upstream.name);
                return Err(refusal);
            }
            Err(Attempt::ParentFailed(refusal)) => {
                health.mark_down(&upstream.name, &refusal.detail);
                last = Some(refusal);
            }
        }
    }
    let last = last.unwrap_or_else(|| {
        Refusal::new(
            DenyReason::UpstreamUnreachable,
            format!("no parent named {name:?}"),
        )
    });
    // Whatever failed at the parents, for the client the way out is unreachable (or slow),
    // unless egress itself could not prove who it is or who the parent is: that needs the
    // operator, and says so.
    let reason = match last.reason {
        DenyReason::UpstreamTimeout
        | DenyReason::UpstreamAuthFailed
        | DenyReason::UpstreamTlsFailed => last.reason,
        _ => DenyReason::UpstreamUnreachable,
    };
    Err(Refusal::new(
        reason,
        format!(
            "no parent of route {name:?} could be reached; last: {}",
            last.detail
        ),
    ))
}

async fn attempt(
    reach: &impl Reach,
    upstream: &Upstream,
    host: &Host,
    port: u16,
    purpose: Purpose,
) -> Result<Via, Attempt> {
    let failed = |r: Refusal| {
        Attempt::ParentFailed(Refusal::new(
            r.reason,
            format!(
                "parent {} ({}): {}",
                upstream.name,
                upstream.display_url(),
                r.detail
            ),
        ))
    };
    let addrs = reach
        .resolver()
        .resolve(&upstream.host, upstream.port)
        .await
        .map_err(failed)?;
    // A ticket first: without one there is nothing to send, and a KDC that is down is a
    // reason to try the next parent.
    let authorization = match &upstream.negotiate {
        Some(negotiate) => Some(
            reach
                .parents()
                .negotiate
                .authorization(upstream, negotiate, reach.dial_timeout())
                .await
                .map_err(failed)?,
        ),
        None => http::authorization(upstream),
    };
    let stream = dial::dial(&addrs, reach.dial_timeout())
        .await
        .map_err(failed)?;
    let deadline = Instant::now() + reach.dial_timeout();
    let (mut stream, watch) = match &upstream.tls {
        Some(settings) => {
            let config = reach.parents().tls_config(upstream, settings);
            let (stream, watch) = tls::wrap(stream, upstream, config, deadline)
                .await
                .map_err(failed)?;
            (stream, Some(watch))
        }
        None => (stream, None),
    };
    match (upstream.kind, purpose) {
        (UpstreamKind::Http, Purpose::Forward) => Ok(Via {
            stream,
            pending: BytesMut::new(),
            tls: watch,
            authorization,
            forward_through: Some(upstream.clone()),
        }),
        (UpstreamKind::Http, Purpose::Tunnel) => {
            let pending = http::connect(
                &mut stream,
                upstream,
                (host, port),
                authorization.as_deref(),
                deadline,
            )
            .await
            .map_err(|e| match watch.as_ref().and_then(tls::Watch::failure) {
                Some(refusal) => failed(refusal),
                None => e,
            })?;
            Ok(Via {
                stream,
                pending,
                tls: watch,
                authorization: None,
                forward_through: None,
            })
        }
        (UpstreamKind::Socks5, _) => {
            match tokio::time::timeout_at(
                deadline,
                socks5::connect(&mut stream, upstream, host, port),
            )
            .await
            {
                Ok(result) => result?,
                Err(_) => {
                    return Err(Attempt::Answered(Refusal::new(
                        DenyReason::UpstreamTimeout,
                        format!(
                            "parent {} did not open {} in time",
                            upstream.name,
                            host.authority(port)
                        ),
                    )))
                }
            }
            Ok(Via {
                stream,
                pending: BytesMut::new(),
                tls: None,
                authorization: None,
                forward_through: None,
            })
        }
    }
}

/// What a plain-HTTP answer from an HTTP parent means: `Some` refusal for the parent's own
/// refusals (407 always; 403 when it carries the parent's error header), `None` for an answer
/// that is the destination's and is passed on as it is.
pub fn forward_refusal(
    upstream: &Upstream,
    code: u16,
    headers: &[crate::h1::head::Header],
    target: &str,
) -> Option<Refusal> {
    let from_parent = headers
        .iter()
        .any(|h| h.is("x-squid-error") || h.is("proxy-status"));
    (code == 407 || (code == 403 && from_parent))
        .then(|| http::refusal_for(upstream, code, headers, target))
}
