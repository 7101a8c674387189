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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use egress_config::{DenyReason, ListenerProtocols, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{timeout_at, Instant};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn, Instrument, Span};

use crate::account;
use crate::account::Ledger;
use crate::answer::{self, Asked, Refusal};
use crate::metrics::Unanswered;
use crate::observe::Observer;
use crate::socks5::{self, Handshake};

/// How long a refuser waits for the client to say enough to be answered (its first bytes, or
/// the whole SOCKS5 negotiation). Loopback and LAN clients speak within milliseconds.
const ANSWER_WAIT: Duration = Duration::from_secs(1);
/// After the answer: how long to keep reading what the client still sends, and how much of it,
/// so closing with unread bytes does not turn into a reset that destroys the answer in flight.
const LINGER: Duration = Duration::from_millis(250);
const LINGER_BYTES: usize = 64 * 1024;
/// The pool's bounds. Every refuser holds one descriptor and a small task, for at most
/// `ANSWER_WAIT` + `LINGER` (with prompt clients, a round trip or two).
const MOST: usize = 1024;
const FEWEST: usize = 16;
/// Descriptors left to everything but connections: listeners, admin, DNS, audit, splice pipes.
const RESERVED_DESCRIPTORS: u64 = 128;
/// Unanswered refusals are logged at most this often (they are counted every time).
const WARN_EVERY: Duration = Duration::from_secs(1);

const SOCKS4: u8 = 0x04;
const SOCKS5: u8 = 0x05;
/// SOCKS4's "request rejected or failed" reply: version 0, code 0x5B, port and address zeroed.
const SOCKS4_REJECTED: [u8; 8] = [0x00, 0x5B, 0, 0, 0, 0, 0, 0];
const CONNECT: &[u8] = b"CONNECT ";

/// The refusers, shared by every listener of the process.
#[derive(Debug)]
pub struct Refusers {
    permits: Arc<Semaphore>,
    size: usize,
    /// When an unanswered refusal was last logged, and how many went unlogged since.
    last_warning: Mutex<(Option<Instant>, u64)>,
}

impl Refusers {
    /// A pool sized for `max_connections`: at most `MOST`, and no more than half of the
    /// descriptors that the served connections (two each) and `RESERVED_DESCRIPTORS` leave, so
    /// that answering refusals leaves served connections the descriptors their dials need.
    pub fn new(max_connections: usize) -> Self {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let size = pool_size(max_connections, limit);
        tracing::info!(
            refusers = size,
            descriptor_limit = limit,
            "connections refused at a cap are answered by at most this many refusers at once"
        );
        Self::sized(size)
    }

    fn sized(size: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
            last_warning: Mutex::new((None, 0)),
        }
    }

    /// Answers `refused` on a refuser (a task on `tracker`, in `span`) or, when all are busy,
    /// closes it and counts it. Returns at once.
    pub fn refuse(
        &self,
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
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            if let Some(metrics) = observer.metrics() {
                metrics.refused_unanswered(Unanswered::Busy);
            }
            span.in_scope(|| self.warn_unanswered(limit));
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

    /// One warning per `WARN_EVERY` at most, with the number closed since the last one: a flood
    /// must not also flood the log.
    fn warn_unanswered(&self, limit: &'static str) {
        let now = Instant::now();
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (when, unlogged) = &mut *last;
        *unlogged += 1;
        if when.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return;
        }
        warn!(
            reason = DenyReason::TooManyConnections.as_str(),
            limit,
            closed = *unlogged,
            refusers = self.size,
            "connection refused unanswered: every refuser is busy"
        );
        *when = Some(now);
        *unlogged = 0;
    }
}

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

/// `MOST`, or less when the descriptor limit (`None`: unlimited) leaves less room.
fn pool_size(max_connections: usize, descriptor_limit: Option<u64>) -> usize {
    let Some(limit) = descriptor_limit else {
        return MOST;
    };
    let served = (max_connections as u64).saturating_mul(2);
    let spare = limit.saturating_sub(served.saturating_add(RESERVED_DESCRIPTORS));
    usize::try_from(spare / 2)
        .unwrap_or(MOST)
        .clamp(FEWEST, MOST)
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
        Speaks::Socks5 => match timeout_at(deadline, socks5::handshake(&mut stream)).await {
            // A malformed request is refused for the same reason: there is no room for it.
            Ok(Ok(_) | Err(Handshake::Reply(..))) => {
                (Protocol::Socks5, answer::socks_refusal(reason).to_vec())
            }
            Err(_) => return silent(limit),
            Ok(Err(Handshake::Gone)) => {
                debug!(limit, "refused SOCKS5 client left during the negotiation");
                return;
            }
        },
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
    if protocols == ListenerProtocols::Socks5 {
        return Speaks::Socks5;
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
