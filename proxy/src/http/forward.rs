//! Plain-HTTP forwarding of absolute-form requests (`GET http://host/path`), keep-alive on both
//! sides. Every request is decided on its own, even on a reused connection.

use std::io;

use egress_config::{DenyReason, RouteChoice};
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::relay::{self, RelayError};
use super::target;
use crate::answer::Refusal;
use crate::context::ConnContext;
use crate::decide;
use crate::h1::body::{self, Framing};
use crate::h1::head::{Buffered, RequestHead};
use crate::h1::rewrite;
use crate::outbound;
use crate::parent::{self, Purpose};
use crate::state::Snapshot;

/// A kept-alive connection to a destination or an HTTP parent, reusable for the next request
/// that would open the same connection.
#[derive(Debug)]
pub struct Upstream {
    /// What the connection goes to: `direct host:port`, `parent NAME` (any destination), or
    /// `tunnel NAME host:port` (through a SOCKS5 parent).
    key: String,
    conn: Buffered<TcpStream>,
    /// The HTTP parent this connection goes to, when it does: requests go in absolute form.
    through: Option<egress_config::Upstream>,
    /// For an `https://` parent: why its TLS session broke, told instead of "no answer".
    tls: Option<crate::parent::tls::Watch>,
    /// The parent's credentials for the first request, when they are good for one use only.
    first_authorization: Option<String>,
}

/// What the connection does after this exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    KeepAlive,
    Close,
}

/// Why an exchange ended early.
#[derive(Debug)]
pub enum Failure {
    /// Nothing has been sent to the client yet: it gets a refusal answer.
    Refused(Refusal, Option<String>, Option<String>),
    /// Part of a response was already sent; all we can do is close.
    Broken(io::Error),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Failure::Refused(refusal, None, None)
    }
}

/// Forwards one request and its response.
pub async fn exchange(
    client: &mut Buffered<TcpStream>,
    req: &RequestHead,
    upstream: &mut Option<Upstream>,
    ctx: &ConnContext,
    identity: &str,
) -> Result<Next, Failure> {
    let snapshot = &ctx.snapshot;
    let exchange_started = std::time::Instant::now();
    let protocol = ctx.http_protocol();
    let stood_for = ctx.stood_for();
    let target = match ctx.intercepted {
        Some(original) => {
            target::intercepted(req.target_str(), &req.headers, original, stood_for.as_ref())?
        }
        None => target::parse_absolute(req.target_str())?,
    };
    // A stand-in address is no address of the name's: the name's own addresses are dialed.
    let pinned = ctx.intercepted.filter(|_| stood_for.is_none());
    let authority = target.host.authority(target.port);
    tracing::Span::current().record("target", authority.as_str());
    let refused = |r: Refusal| Failure::Refused(r, Some(authority.clone()), None);
    if let Some(stood_for) = stood_for.as_ref().filter(|s| **s != target.host) {
        return Err(refused(Refusal::new(
            DenyReason::HostMismatch,
            format!("the connection went to an address given for {stood_for}"),
        )));
    }
    if ctx.intercepted.is_none() {
        target::check_host_header(&req.headers, &target).map_err(refused)?;
    }
    let verdict =
        decide::check(snapshot, identity, &target.host, target.port, protocol).map_err(refused)?;
    let request_framing = request_framing(req).map_err(refused)?;
    let verdict = decide::ask(ctx, identity, &target.host, target.port, protocol, verdict)
        .await
        .map_err(refused)?;
    let route = snapshot.parents.route(verdict.via, &target.host);
    let mut key = match &route {
        RouteChoice::Direct => format!("direct {authority}"),
        RouteChoice::Upstream(name) => format!("via {name} {authority}"),
    };
    if let Some(original) = pinned {
        // Kept-alive connections of an intercepted client go to its original destination only.
        key = format!("{key} at {original}");
    }
    let pinned = pinned.map(|original| outbound::Pinned {
        original,
        handed: ctx
            .handed
            .gave(ctx.client.ip(), &target.host, original.ip()),
    });
    // A request without a body that may be repeated (RFC 9110 §9.2.2) is sent again, once, on a
    // new connection when a kept-alive one turns out to have been closed by the other side.
    let retryable = request_framing == Framing::Empty && is_idempotent(&req.method);
    let client_close =
        rewrite::wants_close(req.minor_version, &req.headers) || ctx.shutdown.is_cancelled();
    loop {
        let reused = take_reusable(upstream, &key, &route, snapshot);
        let fresh = reused.is_none();
        let mut dest = match reused {
            Some(kept) => kept,
            None => open(snapshot, key.clone(), &target, &verdict, pinned)
                .await
                .map_err(refused)?,
        };
        let first = dest.first_authorization.take();
        let head = outgoing_head(req, &target, &authority, dest.through.as_ref(), first);
        let plan = relay::Plan {
            head: &head,
            request_framing,
            client_close,
            idle: snapshot.timeouts.idle,
            parent: dest.through.as_ref().map(|p| (p, authority.as_str())),
        };
        let relayed = match relay::relay(client, &mut dest.conn, req, plan).await {
            Ok(relayed) => relayed,
            Err(RelayError::NoAnswer(_, detail)) if !fresh && retryable => {
                debug!(%detail, "kept-alive connection was closed; sending again on a new one");
                continue;
            }
            Err(error) => {
                if let Some(refusal) = dest.tls.as_ref().and_then(|w| w.failure()) {
                    return Err(Failure::Refused(refusal, Some(authority), None));
                }
                return Err(failure(error, authority));
            }
        };
        info!(
            method = req.method_str(),
            status = relayed.status,
            bytes_up = relayed.sent,
            bytes_down = relayed.received,
            "forwarded"
        );
        crate::account::served(
            protocol,
            (&target.host, target.port),
            &verdict,
            (relayed.sent, relayed.received),
            exchange_started.elapsed(),
        );
        if relayed.upstream_reusable {
            *upstream = Some(dest);
        }
        return Ok(if relayed.client_close {
            Next::Close
        } else {
            Next::KeepAlive
        });
    }
}

/// The request head as it leaves: origin-form to a destination, absolute-form with the parent's
/// own credentials to an HTTP parent.
fn outgoing_head(
    req: &RequestHead,
    target: &target::Absolute<'_>,
    authority: &str,
    through: Option<&egress_config::Upstream>,
    first_authorization: Option<String>,
) -> Vec<u8> {
    match through {
        None => rewrite::request_head(&req.method, target.path, authority, &req.headers),
        Some(parent) => rewrite::parent_request_head(
            &req.method,
            target.path,
            authority,
            &req.headers,
            first_authorization
                .or_else(|| parent::authorization(parent))
                .as_deref(),
        ),
    }
}

/// The request body's framing, refusing what the next hop could read differently: ambiguous
/// length headers, and `Connection` options that would strip a framing or routing header.
fn request_framing(req: &RequestHead) -> Result<Framing, Refusal> {
    if let Some(option) = rewrite::forbidden_connection_option(&req.headers) {
        return Err(Refusal::new(
            DenyReason::BadRequest,
            format!(
                "the Connection header names {option}, which frames or routes the request; \
                 a proxy cannot drop it without changing the request"
            ),
        ));
    }
    body::request_framing(req.minor_version, &req.headers)
        .map_err(|e| Refusal::new(DenyReason::BadRequest, e.0))
}

/// Methods whose repetition has the same effect as one request (RFC 9110 §9.2.2).
fn is_idempotent(method: &[u8]) -> bool {
    [
        &b"GET"[..],
        b"HEAD",
        b"OPTIONS",
        b"TRACE",
        b"PUT",
        b"DELETE",
    ]
    .contains(&method)
}

/// What the client is told when an exchange did not complete.
fn failure(error: RelayError, authority: String) -> Failure {
    let refusal = match error {
        RelayError::Broken(e) => return Failure::Broken(e),
        RelayError::ParentRefused(refusal) => refusal,
        RelayError::BadRequestBody(e) => {
            Refusal::new(DenyReason::BadRequest, format!("request body: {e}"))
        }
        RelayError::NoAnswer(reason, detail) | RelayError::Upstream(reason, detail) => {
            Refusal::new(reason, detail)
        }
    };
    Failure::Refused(refusal, Some(authority), None)
}

/// Opens a new connection for `target` by the one way out (`outbound`). A connection to an
/// HTTP parent itself serves every destination of its route, so it is keyed by the route.
async fn open(
    snapshot: &Snapshot,
    key: String,
    target: &target::Absolute<'_>,
    verdict: &egress_config::Verdict<'_>,
    pinned: Option<outbound::Pinned>,
) -> Result<Upstream, Refusal> {
    let opened = outbound::open(
        snapshot,
        &target.host,
        target.port,
        verdict,
        Purpose::Forward,
        pinned,
    )
    .await?;
    let key = match (&opened.forward_through, &opened.route) {
        (Some(_), Some(route)) => format!("parent {route}"),
        _ => key,
    };
    let mut conn = Buffered::new(opened.stream);
    conn.buf = opened.pending;
    Ok(Upstream {
        key,
        conn,
        through: opened.forward_through,
        tls: opened.tls,
        first_authorization: opened.authorization,
    })
}

/// The kept-alive connection if it serves this request and is still in step: it goes to the
/// same place (an HTTP parent's connection serves every destination of its route, but only
/// while that parent is still the route's first choice, so clients move back to a primary that
/// returned), and the other side has not closed it or sent anything meanwhile (a cheap
/// non-blocking read: data or EOF both mean "do not reuse").
fn take_reusable(
    upstream: &mut Option<Upstream>,
    key: &str,
    route: &RouteChoice,
    snapshot: &Snapshot,
) -> Option<Upstream> {
    let kept = upstream.take()?;
    let same_place = match (&kept.through, route) {
        (None, _) => kept.key == key,
        (Some(parent), RouteChoice::Upstream(name)) => {
            kept.key == format!("parent {name}")
                && snapshot.parents.first_choice(name) == Some(parent.name.as_str())
        }
        (Some(_), RouteChoice::Direct) => false,
    };
    if !same_place || !kept.conn.buf.is_empty() {
        return None;
    }
    let mut probe = [0u8; 1];
    match kept.conn.io.try_read(&mut probe) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(kept),
        _ => None,
    }
}
