//! Answering connections refused at a cap (global or per client) in their own protocol, without
//! letting the answering become the next thing to run out.
//!
//! A refused connection goes to one of a small, bounded number of refusers. A refuser looks at
//! the client's first bytes (waiting at most `ANSWER_WAIT`) to tell SOCKS5 (first byte 0x05)
//! from HTTP, counts the refusal under that protocol, writes the documented answer (HTTP `503`
//! with `X-Egress-Error: too-many-connections`; SOCKS5 the usual method reply, then reply 0x01),
//! and lingers at most `LINGER` so the answer is not destroyed by a reset. When every refuser is
//! busy, the connection is closed at once and counted in
//! `egress_connections_refused_unanswered_total`: a refusal then costs one accept and one close,
//! nothing that can pile up.
//!
//! A client that says too little before the wait ends cannot be answered in its own protocol (a
//! slow SOCKS5 client must not get HTTP, nor be labelled HTTP): it is closed and counted as
//! unanswered too, with `cause="silent"` (`cause="busy"`: every refuser was busy). On an
//! HTTP-only listener a silent client can only be HTTP and is answered. One that closes before a
//! byte, or a SOCKS4 client (answered with SOCKS4's rejection), asked for nothing egress serves
//! and is not counted as a decision — as when admitted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use egress_config::{DenyReason, ListenerProtocols, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn, Instrument, Span};

use crate::account;
use crate::account::Ledger;
use crate::answer::{self, Asked, Refusal};
use crate::metrics::Unanswered;
use crate::observe::Observer;
use crate::refusers::Refusers;
use crate::socks5::{self, Handshake};

/// How long a refuser waits for the client to say enough to be answered (its first bytes, or
/// the whole SOCKS5 negotiation). Loopback and LAN clients speak within milliseconds.
const ANSWER_WAIT: Duration = Duration::from_secs(1);
/// After the answer: how long to keep reading what the client still sends, and how much of it,
/// so closing with unread bytes does not turn into a reset that destroys the answer in flight.
const LINGER: Duration = Duration::from_millis(250);
const LINGER_BYTES: usize = 64 * 1024;
const SOCKS4: u8 = 0x04;
const SOCKS5: u8 = 0x05;
/// SOCKS4's "request rejected or failed" reply: version 0, code 0x5B, port and address zeroed.
const SOCKS4_REJECTED: [u8; 8] = [0x00, 0x5B, 0, 0, 0, 0, 0, 0];
const CONNECT: &[u8] = b"CONNECT ";

/// A connection refused at a cap.
#[derive(Debug)]
pub struct Refused {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// What its listener speaks.
    pub protocols: ListenerProtocols,
    /// Which cap: "the connection limit" or "this client's connection limit".
    pub limit: &'static str,
}

/// Answers `refused` on a refuser of `refusers` (a task on `tracker`, in `span`) or, when all
/// are busy, closes it and counts it in `observer`'s metrics. Returns at once.
pub fn refuse(
    refusers: &Refusers,
    refused: Refused,
    tracker: &TaskTracker,
    span: Span,
    observer: &Arc<Observer>,
) {
    let Refused {
        stream,
        peer,
        protocols,
        limit,
    } = refused;
    let Some(permit) = refusers.try_take() else {
        if let Some(metrics) = observer.metrics() {
            metrics.refused_unanswered(Unanswered::Busy);
        }
        span.in_scope(|| refusers.warn_unanswered(limit));
        return; // dropping the stream closes it
    };
    // The refusal is the connection's one request: it gets a ledger like any other.
    let ledger = Ledger::new(peer, Protocol::HttpForward, observer.clone());
    tracker.spawn(
        async move {
            ledger.scope(answer(stream, protocols, limit)).await;
            drop(permit);
        }
        .instrument(span),
    );
}

/// What the refused client turned out to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Http(Protocol),
    Socks5,
    Socks4,
    /// Nothing before the wait ended (never on a SOCKS5-only listener: there the wait is for
    /// the whole negotiation).
    Silent,
    /// Closed (or failed) before a byte.
    Gone,
}

async fn answer(mut stream: TcpStream, protocols: ListenerProtocols, limit: &'static str) {
    let reason = DenyReason::TooManyConnections;
    let deadline = Instant::now() + ANSWER_WAIT;
    let (protocol, reply) = match sniff(&mut stream, protocols, deadline).await {
        Speaks::Http(protocol) => {
            let asked = Asked {
                protocol,
                target: None,
                rule: None,
            };
            (
                protocol,
                answer::http_response(&Refusal::from(reason), &asked),
            )
        }
        // On an HTTP-only listener even a silent client can only be waiting to speak HTTP.
        Speaks::Silent if protocols == ListenerProtocols::Http => {
            let asked = Asked {
                protocol: Protocol::HttpForward,
                target: None,
                rule: None,
            };
            let reply = answer::http_response(&Refusal::from(reason), &asked);
            (Protocol::HttpForward, reply)
        }
        Speaks::Silent => return silent(limit),
        // No login is checked for a client refused anyway (no password work at a cap).
        Speaks::Socks5 => {
            match timeout_at(deadline, socks5::handshake(&mut stream, false, accept_any)).await {
                // A malformed request is refused for the same reason: there is no room for it.
                Ok(Ok(_) | Err(Handshake::Reply(..))) => {
                    (Protocol::Socks5, answer::socks_refusal(reason).to_vec())
                }
                Err(_) => return silent(limit),
                Ok(Err(Handshake::Gone | Handshake::Refused(_))) => {
                    debug!(limit, "refused SOCKS5 client left during the negotiation");
                    return;
                }
            }
        }
        Speaks::Socks4 => {
            debug!(limit, "SOCKS4 client refused at the connection limit");
            let _ = timeout_at(deadline, stream.write_all(&SOCKS4_REJECTED)).await;
            return linger(stream).await;
        }
        Speaks::Gone => {
            debug!(limit, "refused connection closed before it spoke");
            return;
        }
    };
    tracing::Span::current().record("protocol", protocol.as_str());
    warn!(
        reason = reason.as_str(),
        limit,
        protocol = protocol.as_str(),
        "connection refused"
    );
    // Counted before the answer is written, so a client holding its answer is already counted.
    account::refused(protocol, None, reason, None);
    if let Ok(Ok(())) = timeout_at(deadline + LINGER, stream.write_all(&reply)).await {
        let _ = stream.shutdown().await;
        linger(stream).await;
    }
}

/// A client that did not say enough in time to be answered in its own protocol: guessing would
/// send HTTP to a slow SOCKS5 client (or the reverse) under the wrong label, so it is closed and
/// counted instead.
fn silent(limit: &'static str) {
    debug!(
        limit,
        "refused connection closed unanswered: it did not speak in time"
    );
    if let Some(metrics) = account::metrics() {
        metrics.refused_unanswered(Unanswered::Silent);
    }
}

/// Tells SOCKS5 from HTTP by the first byte (peeked, so the SOCKS5 negotiation still sees it),
/// and `CONNECT` from a forwarded request by the first eight bytes (read: an HTTP request is
/// refused whole and never parsed).
async fn sniff(stream: &mut TcpStream, protocols: ListenerProtocols, deadline: Instant) -> Speaks {
    match protocols {
        ListenerProtocols::Socks5 => return Speaks::Socks5,
        // An intercepted client does not know it talks to a proxy: no answer of ours would make
        // sense to it (a 503 to a TLS client), so it is closed and counted.
        ListenerProtocols::Redirect | ListenerProtocols::Tproxy => return Speaks::Silent,
        ListenerProtocols::Mixed | ListenerProtocols::Http => {}
    }
    let mut first = [0u8; 1];
    match timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_) => return Speaks::Silent,
        Ok(Ok(0) | Err(_)) => return Speaks::Gone,
        Ok(Ok(_)) => {}
    }
    if protocols == ListenerProtocols::Mixed {
        match first[0] {
            SOCKS5 => return Speaks::Socks5,
            SOCKS4 => return Speaks::Socks4,
            _ => {}
        }
    }
    let mut start = [0u8; 8];
    let mut have = 0;
    // Read while what arrived could still be the start of "CONNECT ".
    while have < CONNECT.len() && start[..have] == CONNECT[..have] {
        match timeout_at(deadline, stream.read(&mut start[have..])).await {
            Ok(Ok(n)) if n > 0 => have += n,
            _ => break,
        }
    }
    if start[..have].starts_with(CONNECT) {
        Speaks::Http(Protocol::HttpConnect)
    } else {
        Speaks::Http(Protocol::HttpForward)
    }
}

/// Reads and discards what the client still sends, until it closes, `LINGER` passes or
/// `LINGER_BYTES` were read.
async fn linger(mut stream: TcpStream) {
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 1024];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests;

/// The login check of a client refused at a cap: none.
async fn accept_any(_: Option<crate::identify::Login>) -> Result<(), Refusal> {
    Ok(())
}
