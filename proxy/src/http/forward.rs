//! Plain-HTTP forwarding of absolute-form requests (`GET http://host/path`), keep-alive on both
//! sides. Every request is decided on its own, even on a reused connection.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use egress_config::{DenyReason, Host, Protocol, RouteChoice};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info};

use super::body::{self, Framing};
use super::head::{parse_response, Buffered, HeadError, RequestHead};
use super::{rewrite, target};
use crate::answer::Refusal;
use crate::decide;
use crate::detect::ConnContext;
use crate::parent::{self, Purpose};
use crate::{destination, dial};

/// Response heads from destinations may be larger than what we accept from clients.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

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
) -> Result<Next, Failure> {
    let snapshot = &ctx.snapshot;
    let exchange_started = std::time::Instant::now();
    let idle = snapshot.timeouts.idle;
    let target = target::parse_absolute(req.target_str())?;
    let authority = target.host.authority(target.port);
    tracing::Span::current().record("target", authority.as_str());
    target::check_host_header(&req.headers, &target)
        .map_err(|r| Failure::Refused(r, Some(authority.clone()), None))?;
    let verdict = decide::check(snapshot, &target.host, target.port, Protocol::HttpForward)
        .map_err(|r| Failure::Refused(r, Some(authority.clone()), None))?;
    let request_framing = body::request_framing(&req.headers)
        .map_err(|e| Refusal::new(DenyReason::BadRequest, e.0))?;

    let route = snapshot.parents.route(verdict.via, &target.host);
    let refused = |r: Refusal| Failure::Refused(r, Some(authority.clone()), None);
    let key = match &route {
        RouteChoice::Direct => format!("direct {authority}"),
        RouteChoice::Upstream(name) => format!("via {name} {authority}"),
    };
    let mut dest = take_reusable(upstream, &key).or_else(|| {
        // An HTTP parent's connection serves every destination.
        let RouteChoice::Upstream(name) = &route else {
            return None;
        };
        take_reusable(upstream, &format!("parent {name}"))
    });
    if dest.is_none() {
        let connecting = std::time::Instant::now();
        let opened = match &route {
            RouteChoice::Direct => {
                let addrs = destination::resolve_checked(
                    snapshot,
                    &target.host,
                    target.port,
                    verdict.explicit_address,
                )
                .await
                .map_err(refused)?;
                let stream = dial::dial(&addrs, snapshot.timeouts.dial)
                    .await
                    .map_err(refused)?;
                Upstream {
                    key,
                    conn: Buffered::new(stream),
                    through: None,
                }
            }
            RouteChoice::Upstream(name) => {
                if let Host::Ip(_) = target.host {
                    // No lookup for a literal: this only runs the address guard over it.
                    destination::resolve_checked(
                        snapshot,
                        &target.host,
                        target.port,
                        verdict.explicit_address,
                    )
                    .await
                    .map_err(refused)?;
                }
                let via = parent::open(snapshot, name, &target.host, target.port, Purpose::Forward)
                    .await
                    .map_err(refused)?;
                let key = match via.forward_through {
                    Some(_) => format!("parent {name}"),
                    None => key,
                };
                let mut conn = Buffered::new(via.stream);
                conn.buf = via.pending;
                Upstream {
                    key,
                    conn,
                    through: via.forward_through,
                }
            }
        };
        crate::metrics::connect_duration(connecting.elapsed());
        dest = Some(opened);
    }
    let mut dest = dest.expect("set above");

    let head = match &dest.through {
        None => rewrite::request_head(&req.method, target.path, &authority, &req.headers),
        Some(parent) => rewrite::parent_request_head(
            &req.method,
            target.path,
            &authority,
            &req.headers,
            parent::authorization(parent).as_deref(),
        ),
    };
    dest.conn.io.write_all(&head).await.map_err(|e| {
        Refusal::new(
            DenyReason::UpstreamUnreachable,
            format!("sending the request: {e}"),
        )
    })?;

    let client_close =
        rewrite::wants_close(req.minor_version, &req.headers) || ctx.shutdown.is_cancelled();
    // Whether anything reached the client; shared with the relay future (which must be Send).
    let started = AtomicBool::new(false);
    let plan = Plan {
        request_framing,
        client_close,
        idle,
        parent: dest.through.as_ref().map(|p| (p, authority.as_str())),
    };
    let outcome = relay(client, &mut dest.conn, req, plan, &started).await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) if started.load(Ordering::Relaxed) => return Err(Failure::Broken(e)),
        Err(e) if e.get_ref().is_some_and(|inner| inner.is::<ParentRefusal>()) => {
            let inner = e.into_inner().expect("checked above");
            let ParentRefusal(refusal) = *inner.downcast::<ParentRefusal>().expect("checked above");
            return Err(Failure::Refused(refusal, Some(authority), None));
        }
        Err(e)
            if e.get_ref()
                .is_some_and(|inner| inner.is::<BadRequestBody>()) =>
        {
            return Err(Failure::Refused(
                Refusal::new(DenyReason::BadRequest, format!("request body: {e}")),
                Some(authority),
                None,
            ))
        }
        Err(e) => {
            let reason = match e.kind() {
                io::ErrorKind::TimedOut => DenyReason::UpstreamTimeout,
                _ => DenyReason::UpstreamBadResponse,
            };
            return Err(Failure::Refused(
                Refusal::new(reason, e.to_string()),
                Some(authority),
                None,
            ));
        }
    };
    info!(
        method = req.method_str(),
        status = outcome.status,
        bytes_up = outcome.sent,
        bytes_down = outcome.received,
        "forwarded"
    );
    crate::account::record(&crate::account::Outcome::served(
        Some(ctx.client),
        Protocol::HttpForward,
        (&target.host, target.port),
        &verdict,
        (outcome.sent, outcome.received),
        exchange_started.elapsed(),
    ));
    if outcome.upstream_reusable {
        *upstream = Some(dest);
    }
    Ok(if outcome.client_close {
        Next::Close
    } else {
        Next::KeepAlive
    })
}

/// The kept-alive connection if it goes to `host:port` and the destination has not closed it
/// meanwhile (a cheap non-blocking read: data or EOF both mean "do not reuse").
fn take_reusable(upstream: &mut Option<Upstream>, key: &str) -> Option<Upstream> {
    if upstream.as_ref()?.key != key {
        return None;
    }
    let kept = upstream.take()?;
    if !kept.conn.buf.is_empty() {
        return None;
    }
    let mut probe = [0u8; 1];
    match kept.conn.io.try_read(&mut probe) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(kept),
        _ => None,
    }
}

/// An HTTP parent refused the request itself (407, or 403 with its error header): the client
/// gets egress's answer for it, not the parent's page.
#[derive(Debug)]
struct ParentRefusal(Refusal);

impl std::fmt::Display for ParentRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.detail)
    }
}

impl std::error::Error for ParentRefusal {}

/// The client's request body broke its own framing (e.g. an invalid chunk size): the client's
/// fault, answered 400, not the destination's.
#[derive(Debug)]
struct BadRequestBody(String);

impl std::fmt::Display for BadRequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadRequestBody {}

/// How one exchange is to be relayed.
struct Plan<'a> {
    request_framing: Framing,
    client_close: bool,
    idle: std::time::Duration,
    /// The HTTP parent the request goes through, and the target's authority.
    parent: Option<(&'a egress_config::Upstream, &'a str)>,
}

struct Outcome {
    status: u16,
    sent: u64,
    received: u64,
    upstream_reusable: bool,
    client_close: bool,
}

/// Sends the request body while relaying the response, at the same time: a client that sent
/// `Expect: 100-continue` waits for the destination's `100` before its body.
async fn relay(
    client: &mut Buffered<TcpStream>,
    dest: &mut Buffered<TcpStream>,
    req: &RequestHead,
    plan: Plan<'_>,
    started: &AtomicBool,
) -> io::Result<Outcome> {
    let Plan {
        request_framing,
        client_close,
        idle,
        parent,
    } = plan;
    let (client_read, mut client_write) = client.io.split();
    let (dest_read, mut dest_write) = dest.io.split();
    let mut from_client = Buffered {
        io: client_read,
        buf: std::mem::take(&mut client.buf),
    };
    let mut from_dest = Buffered {
        io: dest_read,
        buf: std::mem::take(&mut dest.buf),
    };
    let result = {
        let send = body::copy(&mut from_client, &mut dest_write, request_framing, idle);
        let receive = async {
            loop {
                let deadline = Instant::now() + idle;
                let head = match from_dest.read_head(MAX_RESPONSE_HEAD, deadline).await {
                    Ok(head) => head,
                    Err(HeadError::Closed | HeadError::Truncated) => {
                        return Err(invalid(
                            "the destination closed without a complete response",
                        ))
                    }
                    Err(HeadError::TooLarge) => return Err(invalid("response head too large")),
                    Err(HeadError::Timeout { .. }) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no response in time",
                        ))
                    }
                    Err(HeadError::Io(e)) => return Err(e),
                };
                let response =
                    parse_response(&head).ok_or_else(|| invalid("malformed response head"))?;
                if response.code == 101 {
                    return Err(invalid("unrequested protocol switch"));
                }
                if (100..200).contains(&response.code) {
                    // Interim (e.g. 100 Continue): pass on and wait for the final response.
                    let interim = rewrite::response_head(
                        response.code,
                        &response.reason,
                        &response.headers,
                        false,
                    );
                    client_write.write_all(&interim).await?;
                    started.store(true, Ordering::Relaxed);
                    continue;
                }
                if let Some((parent, target)) = parent {
                    if let Some(refusal) =
                        parent::forward_refusal(parent, response.code, &response.headers, target)
                    {
                        return Err(io::Error::other(ParentRefusal(refusal)));
                    }
                }
                let framing = body::response_framing(&req.method, response.code, &response.headers)
                    .map_err(|e| invalid(e.0))?;
                let close = client_close || framing == Framing::UntilClose;
                let out = rewrite::response_head(
                    response.code,
                    &response.reason,
                    &response.headers,
                    close,
                );
                client_write.write_all(&out).await?;
                started.store(true, Ordering::Relaxed);
                let received = body::copy(&mut from_dest, &mut client_write, framing, idle).await?;
                let reusable = framing != Framing::UntilClose
                    && !rewrite::wants_close(response.minor_version, &response.headers);
                return Ok((response.code, received, reusable, close));
            }
        };
        tokio::pin!(send, receive);
        let mut sent: Option<u64> = None;
        loop {
            tokio::select! {
                result = &mut send, if sent.is_none() => match result {
                    Ok(n) => sent = Some(n),
                    // A broken request body: the destination would wait for the rest forever.
                    Err(e) => break Err(io::Error::new(e.kind(), BadRequestBody(e.to_string()))),
                },
                result = &mut receive => break result.map(|r| (r, sent)),
            }
        }
    };
    client.buf = from_client.buf;
    dest.buf = from_dest.buf;
    let ((status, received, reusable, close), sent) = result?;
    debug!(status, ?sent, "response relayed");
    // A body the destination did not wait for leaves both connections out of step: close them.
    let body_done = sent.is_some();
    Ok(Outcome {
        status,
        sent: sent.unwrap_or(0),
        received,
        upstream_reusable: reusable && body_done,
        client_close: close || !body_done,
    })
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}
