//! HTTP/1.x on the client side: a keep-alive loop that reads request heads and hands each to
//! `connect` (tunnels) or `forward` (absolute-form requests).

pub mod connect;
pub mod forward;
pub mod relay;
pub mod target;

use std::sync::Arc;

use egress_config::{DenyReason, Protocol};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::info;

use crate::answer::{self, Asked, Refusal};
use crate::context::ConnContext;
use crate::h1::head::{self, Buffered, HeadError, RequestHead};
use crate::identify;

/// A `CONNECT` request read on the connection: the tunnel that takes the connection over.
struct Connect {
    client: Buffered<TcpStream>,
    req: RequestHead,
    identity: Arc<str>,
}

/// Serves HTTP requests on one client connection until either side closes.
///
/// Two boxed steps, one after the other: the request loop (forwarding's state machine is
/// several KiB), then, when a `CONNECT` ends it, the tunnel. The loop's box is freed before the
/// tunnel's is made, so a tunnel held open for hours holds only its own state.
pub async fn serve(stream: TcpStream, ctx: ConnContext) {
    let Some(Connect {
        client,
        req,
        identity,
    }) = Box::pin(requests(stream, &ctx)).await
    else {
        return;
    };
    Box::pin(connect::handle(client, req, &ctx, &identity)).await
}

/// The keep-alive loop: forwards requests until either side closes (`None`), or hands over a
/// `CONNECT`.
async fn requests(stream: TcpStream, ctx: &ConnContext) -> Option<Connect> {
    let protocol = ctx.http_protocol();
    let mut client = Buffered::new(stream);
    let mut upstream: Option<forward::Upstream> = None;
    let timeouts = ctx.snapshot.timeouts;
    let mut first = true;
    let mut peeked = [0u8; 1];
    let first_byte = tokio::time::timeout(timeouts.request_head, client.io.peek(&mut peeked)).await;
    if matches!(first_byte, Ok(Ok(1)) if !can_start_request(peeked[0])) {
        let detail = if peeked[0] == 0x16 {
            "TLS sent to a plain proxy port: use http:// (not https://) for the proxy URL"
        } else {
            "the bytes sent are not an HTTP request"
        };
        let refusal = Refusal::new(DenyReason::BadRequest, detail);
        refuse(&mut client.io, &refusal, protocol, None, None).await;
        return None;
    }
    loop {
        if !first && client.buf.is_empty() {
            match wait_for_next_request(&client.io, ctx).await {
                Waited::Request => {}
                Waited::Close => return None,
                Waited::Draining => {
                    answer_draining(client, ctx).await;
                    return None;
                }
            }
        }
        if !first && ctx.shutdown.is_cancelled() {
            // Pipelined requests after shutdown began: the one in progress was answered with
            // `Connection: close`; the next is told why rather than cut off.
            answer_draining(client, ctx).await;
            return None;
        }
        let head = read_request_head(&mut client, ctx, first).await?;
        first = false;
        let req = match head::parse_request(&head) {
            Ok(req) => req,
            Err(refusal) => {
                refuse(&mut client.io, &refusal, protocol, None, None).await;
                return None;
            }
        };
        let is_connect = req.method.eq_ignore_ascii_case(b"CONNECT");
        if is_connect && ctx.intercepted.is_some() {
            let refusal = Refusal::new(
                DenyReason::UnsupportedMethod,
                "CONNECT sent to a web server: this connection was intercepted, not proxied",
            );
            refuse(&mut client.io, &refusal, protocol, None, None).await;
            return None;
        }
        let identity = match identify(&req, ctx).await {
            Ok(identity) => identity,
            Err(refusal) => {
                let protocol = if is_connect {
                    Protocol::HttpConnect
                } else {
                    protocol
                };
                refuse(&mut client.io, &refusal, protocol, None, None).await;
                return None;
            }
        };
        if is_connect {
            // `req` and `head` share the read buffer; the tunnel keeps neither (connect drops
            // `req` once it has the target).
            drop(head);
            return Some(Connect {
                client,
                req,
                identity,
            });
        }
        tracing::Span::current().record("protocol", protocol.as_str());
        // Counted as an open http-forward connection from its first forwarded request on.
        crate::account::open_as(protocol);
        match forward::exchange(&mut client, &req, &mut upstream, ctx, &identity).await {
            Ok(forward::Next::KeepAlive) => {}
            Ok(forward::Next::Close) => {
                // A request body the destination did not wait for may still be arriving: a
                // lingering close keeps the answer from being destroyed by a reset.
                let _ = client.io.shutdown().await;
                linger(&mut client.io).await;
                return None;
            }
            Err(forward::Failure::Refused(refusal, target, rule)) => {
                refuse(
                    &mut client.io,
                    &refusal,
                    protocol,
                    target.as_deref(),
                    rule.as_deref(),
                )
                .await;
                return None;
            }
            Err(forward::Failure::Broken(error)) => {
                info!(%error, "exchange broken after the response started");
                return None;
            }
        }
    }
}

/// Who sent `req` (see `identify`): each request of a keep-alive connection says so again, as
/// HTTP clients send `Proxy-Authorization` with every request. Recorded on the connection.
async fn identify(req: &RequestHead, ctx: &ConnContext) -> Result<Arc<str>, Refusal> {
    let identities = &ctx.snapshot.identities;
    if ctx.intercepted.is_some() {
        // The client does not know a proxy is there: its Proxy-Authorization, if any, was not
        // meant for this proxy.
        let identity = identify::intercepted(
            identities,
            ctx.client.ip(),
            ctx.listener_identity.as_deref(),
        )?;
        crate::account::identified(&identity);
        return Ok(identity);
    }
    let login = if identities.logins() {
        let values: Vec<&[u8]> = head::values(&req.headers, "proxy-authorization")
            .map(|h| &h.value[..])
            .collect();
        identify::from_header(&values)
            .map_err(|r| identify::challenge(identities, r.reason, r.detail))?
    } else {
        None
    };
    let identity = identify::identify(
        identities,
        &ctx.snapshot.verifier,
        ctx.client.ip(),
        ctx.listener_identity.as_deref(),
        login,
    )
    .await?;
    crate::account::identified(&identity);
    Ok(identity)
}

/// Reads the next request head within `timeouts.request_head`; `None` when the connection ends
/// instead (closed, or refused here: too slow, too large).
async fn read_request_head(
    client: &mut Buffered<TcpStream>,
    ctx: &ConnContext,
    first: bool,
) -> Option<bytes::Bytes> {
    let limits = ctx.snapshot.limits;
    let wait = ctx.snapshot.timeouts.request_head;
    let refusal = match client
        .read_head(limits.max_request_head_bytes, Instant::now() + wait)
        .await
    {
        Ok(head) => return Some(head),
        Err(HeadError::Closed | HeadError::Truncated | HeadError::Io(_)) => return None,
        // A kept-alive connection that stays silent just ends; a started head is refused.
        Err(HeadError::Timeout { partial }) if !(partial || first) => return None,
        Err(HeadError::Timeout { .. }) => Refusal::new(
            DenyReason::RequestTimeout,
            format!("no complete request head within {wait:?}"),
        ),
        Err(HeadError::TooLarge) => Refusal::new(
            DenyReason::HeaderTooLarge,
            format!("the limit is {} bytes", limits.max_request_head_bytes),
        ),
    };
    refuse(&mut client.io, &refusal, ctx.http_protocol(), None, None).await;
    None
}

/// What an idle kept-alive connection did.
enum Waited {
    /// The next request's first byte arrived.
    Request,
    /// Idle for the idle timeout, or the client closed: close too.
    Close,
    /// Shutdown began while it was idle.
    Draining,
}

/// Waits on a kept-alive connection for the next request's first byte, for at most the idle
/// timeout.
async fn wait_for_next_request(stream: &TcpStream, ctx: &ConnContext) -> Waited {
    tokio::select! {
        () = ctx.shutdown.cancelled() => Waited::Draining,
        ready = tokio::time::timeout(ctx.snapshot.timeouts.idle, stream.readable()) => {
            if matches!(ready, Ok(Ok(()))) { Waited::Request } else { Waited::Close }
        }
    }
}

/// How long an idle kept-alive connection stays open once shutdown began, so that a request
/// already on its way gets `503 shutting-down` with `Connection: close` instead of a bare close
/// the client cannot tell from a crash. Bounded by the grace period.
const LAST_CALL: std::time::Duration = std::time::Duration::from_secs(2);

/// Shutdown began on a kept-alive connection between requests: a request that arrives (or was
/// pipelined) within the last call is answered `503 shutting-down`; then the connection closes.
async fn answer_draining(mut client: Buffered<TcpStream>, ctx: &ConnContext) {
    let window = LAST_CALL.min(ctx.snapshot.timeouts.shutdown_grace);
    if client.buf.is_empty() {
        let arrived = tokio::time::timeout(window, client.io.readable()).await;
        if !matches!(arrived, Ok(Ok(()))) {
            return;
        }
    }
    let refusal = Refusal::new(
        DenyReason::ShuttingDown,
        "the proxy stopped taking requests; open a new connection",
    );
    // `refuse` reads and discards what the client sent for a short while before closing, so
    // the answer is not destroyed by a reset.
    refuse(&mut client.io, &refusal, ctx.http_protocol(), None, None).await;
}

/// Writes a refusal answer and logs it. Policy denials were logged by `decide` already.
pub async fn refuse(
    stream: &mut TcpStream,
    refusal: &Refusal,
    protocol: Protocol,
    target: Option<&str>,
    rule: Option<&str>,
) {
    // A parent's refusal is policy too, but its own: `decide` has not logged it.
    let logged = refusal.reason.fault() == egress_config::Fault::Policy
        && refusal.reason != egress_config::DenyReason::UpstreamDenied;
    if !logged {
        info!(
            reason = refusal.reason.as_str(),
            detail = %refusal.detail,
            protocol = protocol.as_str(),
            target,
            "refused"
        );
    }
    let rule = rule.or(refusal.rule.as_deref());
    crate::account::refused_at(protocol, target, refusal.reason, rule);
    let asked = Asked {
        protocol,
        target,
        rule,
    };
    let _ = stream
        .write_all(&answer::http_response(refusal, &asked))
        .await;
    let _ = stream.shutdown().await;
    linger(stream).await;
}

/// Unread request bytes (the rest of an oversized head, a body) would make the kernel answer our
/// close with a reset, which can destroy the refusal before the client reads it. So read and
/// discard for a short, bounded while first, like a lingering close.
pub(crate) async fn linger(stream: &mut TcpStream) {
    const LINGER_TIME: std::time::Duration = std::time::Duration::from_millis(500);
    const LINGER_BYTES: usize = 256 * 1024;
    // On the heap: an 8 KiB array here would be part of every connection's future (this is
    // awaited from the connection's handlers), copied whole each time that future moves. Read
    // into its spare capacity, never zeroed: zeroing it was an eighth of a denial's instructions.
    let mut sink = Vec::with_capacity(8192);
    let mut drained = 0;
    let deadline = Instant::now() + LINGER_TIME;
    while drained < LINGER_BYTES {
        sink.clear();
        match tokio::time::timeout_at(
            deadline,
            tokio::io::AsyncReadExt::read_buf(stream, &mut sink),
        )
        .await
        {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

/// Whether `byte` can start an HTTP/1.x request: a method token character, or the blank line a
/// client may send before it. Anything else (TLS, binary) is refused at once, not after a timeout.
pub(crate) fn can_start_request(byte: u8) -> bool {
    byte == b'\r'
        || byte == b'\n'
        || (byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&byte))
}
