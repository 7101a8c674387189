//! One forwarded exchange on the wire: the request head out, the request body out while the
//! response comes back (a client that sent `Expect: 100-continue` waits for the destination's
//! `100` before its body), and the response relayed with the framing decided once for it.
//!
//! What the client is told about a response's framing always matches how its body is sent, and
//! a connection is kept for another message only after a message read to its end: the two rules
//! that keep this proxy and the hops on either side from disagreeing about where a message ends.

use std::borrow::Cow;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use egress_config::DenyReason;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::answer::Refusal;
use crate::h1::body::{self, Framing};
use crate::h1::head::{parse_response, Buffered, HeadError, RequestHead, ResponseHead};
use crate::h1::rewrite::{self, Delivery};
use crate::parent;

/// Response heads from destinations may be larger than what we accept from clients.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How one exchange is to be relayed.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The request head as it goes to the destination or parent.
    pub head: &'a [u8],
    pub request_framing: Framing,
    /// The client asked to close after this exchange (or shutdown began).
    pub client_close: bool,
    pub idle: Duration,
    /// The HTTP parent the request goes through, and the target's authority.
    pub parent: Option<(&'a egress_config::Upstream, &'a str)>,
}

/// A relayed exchange.
#[derive(Debug)]
pub struct Relayed {
    pub status: u16,
    /// Request body bytes sent.
    pub sent: u64,
    /// Response body bytes received.
    pub received: u64,
    /// The destination connection ended in step and may carry another request.
    pub upstream_reusable: bool,
    /// The client connection must close after this response.
    pub client_close: bool,
}

/// Why an exchange did not complete. Private to plain-HTTP forwarding: the caller turns it into
/// the client's answer, a retry, or a close.
#[derive(Debug)]
pub enum RelayError {
    /// Nothing came back on the connection (closed or reset before a byte of response, or the
    /// request head could not be written): a kept-alive connection the other side had closed.
    /// Nothing of the response reached the client, so an idempotent request may be retried.
    NoAnswer(DenyReason, Cow<'static, str>),
    /// An HTTP parent refused the request itself (407, or 403 with its error header).
    ParentRefused(Refusal),
    /// The client's request body broke its own framing: the client's fault (400).
    BadRequestBody(io::Error),
    /// The destination's response cannot be relayed faithfully (502 / 504); nothing reached
    /// the client yet.
    Upstream(DenyReason, Cow<'static, str>),
    /// Part of the response already reached the client: all that is left is to close.
    Broken(io::Error),
}

/// Relays one exchange: `plan.head` has not been written yet.
pub async fn relay(
    client: &mut Buffered<TcpStream>,
    dest: &mut Buffered<TcpStream>,
    req: &RequestHead,
    plan: Plan<'_>,
) -> Result<Relayed, RelayError> {
    if let Err(e) = dest.io.write_all(plan.head).await {
        return Err(RelayError::NoAnswer(
            DenyReason::UpstreamUnreachable,
            format!("sending the request: {e}").into(),
        ));
    }
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
    let idle = plan.idle;
    // A request without a body is sent in full with its head: waiting on an empty copy would
    // let a fast response win the race and close a connection that was in step.
    let mut sent = (plan.request_framing == Framing::Empty).then_some(0);
    // Read by the response side when it writes the final head: a response that overtakes the
    // request body (an early 401 or 413) tells the client the connection closes, as it will.
    let body_sent = AtomicBool::new(sent.is_some());
    // Whether any byte of a response went to the client: after that, a broken request body can
    // only close the connection, not be answered.
    let responded = AtomicBool::new(false);
    let result = {
        let send = async {
            let copied = body::copy(
                &mut from_client,
                &mut dest_write,
                plan.request_framing,
                idle,
            )
            .await;
            body_sent.store(copied.is_ok(), Ordering::Relaxed);
            copied
        };
        let receive = respond(
            &mut from_dest,
            &mut client_write,
            req,
            &plan,
            &body_sent,
            &responded,
        );
        tokio::pin!(send, receive);
        let received = loop {
            tokio::select! {
                biased;
                result = &mut send, if sent.is_none() => match result {
                    Ok(n) => sent = Some(n),
                    // A broken request body: the destination would wait for the rest forever.
                    Err(e) if responded.load(Ordering::Relaxed) => break Err(RelayError::Broken(e)),
                    Err(e) => break Err(RelayError::BadRequestBody(e)),
                },
                result = &mut receive => break result,
            }
        };
        if received.is_ok() && sent.is_none() {
            // The response ended first; a body already buffered still completes without
            // waiting, and then both connections are in step.
            tokio::select! {
                biased;
                Ok(n) = &mut send => sent = Some(n),
                () = std::future::ready(()) => {}
            }
        }
        received
    };
    client.buf = from_client.buf;
    dest.buf = from_dest.buf;
    let response = result?;
    // A body the destination did not wait for leaves both connections out of step: close them.
    let body_done = sent.is_some();
    Ok(Relayed {
        status: response.status,
        sent: sent.unwrap_or(0),
        received: response.received,
        upstream_reusable: response.reusable && body_done,
        client_close: response.close || !body_done,
    })
}

struct Response {
    status: u16,
    received: u64,
    reusable: bool,
    close: bool,
}

/// Reads the destination's response (after any interim ones) and relays it to the client.
async fn respond<R, W>(
    from_dest: &mut Buffered<R>,
    client: &mut W,
    req: &RequestHead,
    plan: &Plan<'_>,
    body_sent: &AtomicBool,
    responded: &AtomicBool,
) -> Result<Response, RelayError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let client_1_0 = req.minor_version == 0;
    let mut started = false;
    loop {
        let response = read_response(from_dest, plan.idle, started).await?;
        if response.code == 101 {
            // No upgrade is relayed on plain-HTTP forwarding (the request's Upgrade was
            // removed): a switch here would leave the client off HTTP while egress stays on it.
            return Err(fail_after(
                started,
                DenyReason::UpstreamBadResponse,
                "unrequested protocol switch",
            ));
        }
        if (100..200).contains(&response.code) {
            // Interim (e.g. 100 Continue): passed on to an HTTP/1.1 client, never to a 1.0 one
            // (RFC 9110 §15.2), then the final response follows.
            if !client_1_0 {
                let interim = rewrite::response_head(
                    response.code,
                    &response.reason,
                    &response.headers,
                    Delivery::default(),
                );
                client
                    .write_all(&interim)
                    .await
                    .map_err(RelayError::Broken)?;
                started = true;
                responded.store(true, Ordering::Relaxed);
            }
            continue;
        }
        if let Some((parent, target)) = plan.parent {
            if let Some(refusal) =
                parent::forward_refusal(parent, response.code, &response.headers, target)
            {
                return Err(if started {
                    RelayError::Broken(io::Error::other(refusal.detail))
                } else {
                    RelayError::ParentRefused(refusal)
                });
            }
        }
        let framing = final_framing(req, &response).map_err(|detail| {
            if started {
                RelayError::Broken(io::Error::new(io::ErrorKind::InvalidData, detail))
            } else {
                RelayError::Upstream(DenyReason::UpstreamBadResponse, detail.into())
            }
        })?;
        let dechunk = client_1_0 && framing == Framing::Chunked;
        if dechunk && !only_chunked(&response.headers) {
            // Removing the chunked coding would leave the others (gzip) unnamed: a 1.0 client
            // cannot be told about transfer codings at all.
            return Err(fail_after(
                started,
                DenyReason::UpstreamBadResponse,
                "transfer codings besides chunked cannot reach an HTTP/1.0 client",
            ));
        }
        let close = plan.client_close
            || framing == Framing::UntilClose
            || dechunk
            || !body_sent.load(Ordering::Relaxed);
        let delivery = Delivery {
            close,
            dechunk,
            announce_keep_alive: client_1_0 && !close,
        };
        let out =
            rewrite::response_head(response.code, &response.reason, &response.headers, delivery);
        responded.store(true, Ordering::Relaxed);
        client.write_all(&out).await.map_err(RelayError::Broken)?;
        let copied = if dechunk {
            body::copy_dechunked(from_dest, client, plan.idle).await
        } else {
            body::copy(from_dest, client, framing, plan.idle).await
        };
        let received = copied.map_err(RelayError::Broken)?;
        let reusable = framing != Framing::UntilClose
            && !rewrite::wants_close(response.minor_version, &response.headers);
        return Ok(Response {
            status: response.code,
            received,
            reusable,
            close,
        });
    }
}

/// Whether a response's transfer codings are `chunked` alone.
fn only_chunked(headers: &[crate::h1::head::Header]) -> bool {
    let mut codings = crate::h1::head::values(headers, "transfer-encoding")
        .flat_map(|h| h.value.split(|b| *b == b','))
        .map(crate::h1::body::trim_ows);
    codings
        .next()
        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
        && codings.next().is_none()
}

/// An error while relaying a response: a refusal while nothing reached the client, else a
/// broken exchange.
fn fail_after(started: bool, reason: DenyReason, detail: &'static str) -> RelayError {
    if started {
        RelayError::Broken(io::Error::other(detail))
    } else {
        RelayError::Upstream(reason, detail.into())
    }
}

/// The framing of a final response, refusing the shapes this proxy and the client could read
/// differently.
fn final_framing(req: &RequestHead, response: &ResponseHead) -> Result<Framing, String> {
    if let Some(option) = rewrite::forbidden_connection_option(&response.headers) {
        return Err(format!(
            "the response's Connection header names {option}, which frames or routes the message"
        ));
    }
    body::response_framing(&req.method, response.code, &response.headers)
        .map_err(|e| e.0.to_string())
}

/// Reads and parses one response head. `started`: something already reached the client, so a
/// failure can only break the exchange.
async fn read_response<R>(
    from_dest: &mut Buffered<R>,
    idle: Duration,
    started: bool,
) -> Result<ResponseHead, RelayError>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let fail = |reason: DenyReason, detail: &'static str| {
        if started {
            RelayError::Broken(io::Error::other(detail))
        } else {
            RelayError::Upstream(reason, detail.into())
        }
    };
    let deadline = Instant::now() + idle;
    let head = match from_dest.read_head(MAX_RESPONSE_HEAD, deadline).await {
        Ok(head) => head,
        Err(HeadError::Closed) if !started => {
            return Err(RelayError::NoAnswer(
                DenyReason::UpstreamBadResponse,
                "the destination closed without a response".into(),
            ))
        }
        Err(HeadError::Io(e)) if !started && from_dest.buf.is_empty() => {
            return Err(RelayError::NoAnswer(
                DenyReason::UpstreamBadResponse,
                format!("the destination's connection failed before a response: {e}").into(),
            ))
        }
        Err(HeadError::Closed | HeadError::Truncated) => {
            return Err(fail(
                DenyReason::UpstreamBadResponse,
                "the destination closed without a complete response",
            ))
        }
        Err(HeadError::TooLarge) => {
            return Err(fail(
                DenyReason::UpstreamBadResponse,
                "response head too large",
            ))
        }
        Err(HeadError::Timeout { .. }) => {
            return Err(fail(DenyReason::UpstreamTimeout, "no response in time"))
        }
        Err(HeadError::Io(e)) if started => return Err(RelayError::Broken(e)),
        Err(HeadError::Io(e)) => {
            return Err(RelayError::Upstream(
                DenyReason::UpstreamBadResponse,
                format!("reading the response: {e}").into(),
            ))
        }
    };
    parse_response(&head)
        .ok_or_else(|| fail(DenyReason::UpstreamBadResponse, "malformed response head"))
}
