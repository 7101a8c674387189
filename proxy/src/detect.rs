//! The first byte of a connection picks its protocol: 0x05 is SOCKS5, 0x04 a SOCKS4 client we
//! refuse politely, anything else is treated as HTTP/1.x.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use egress_config::{DenyReason, ListenerProtocols, Protocol};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

use crate::account::{self, Ledger};
use crate::answer::{self, Asked, Refusal};
use crate::context::{ConnContext, Shared};
use crate::state::Snapshot;
use crate::transparent::original::Diverted;
use crate::{http, socks5};

const SOCKS5: u8 = 0x05;
const SOCKS4: u8 = 0x04;
/// SOCKS4's "request rejected or failed" reply: version 0, code 0x5B, port and address zeroed.
const SOCKS4_REJECTED: [u8; 8] = [0x00, 0x5B, 0, 0, 0, 0, 0, 0];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Http,
    Socks5,
    Socks4,
}

/// Serves one accepted connection to its end, or until shutdown cuts it. Either way, the
/// requests it served are recorded once each (see `account::Ledger`). Returns the ledger, which
/// keeps the connection counted as active: the caller drops it after giving back the caps.
pub async fn serve(
    stream: TcpStream,
    client: SocketAddr,
    protocols: ListenerProtocols,
    listener_identity: Option<Arc<str>>,
    snapshot: Arc<Snapshot>,
    stop: Shared,
) -> Arc<Ledger> {
    let guess = match protocols {
        ListenerProtocols::Socks5 => Protocol::Socks5,
        ListenerProtocols::Redirect | ListenerProtocols::Tproxy => Protocol::Transparent,
        ListenerProtocols::Mixed | ListenerProtocols::Http => Protocol::HttpForward,
    };
    let ledger = Ledger::new(client, guess, stop.observer.clone());
    let ctx = ConnContext {
        client,
        listener_identity,
        snapshot,
        shutdown: stop.shutdown,
        decider: stop.decider,
        intercepted: None,
        handed: stop.handed,
        stand_ins: stop.stand_ins,
    };
    let served = ledger.scope(serve_until_done(stream, protocols, ctx));
    // The connection's future is dropped at the end of this statement when the cut wins: its
    // sockets close, and nothing of it runs again.
    let cut = tokio::select! {
        () = served => false,
        () = stop.cut.cancelled() => true,
    };
    if cut {
        stop.cut_count.fetch_add(1, Ordering::Relaxed);
        ledger.cut();
    } else {
        ledger.close();
    }
    ledger
}

async fn serve_until_done(stream: TcpStream, protocols: ListenerProtocols, ctx: ConnContext) {
    // Not proxy clients: these connections are named by what they send (see `transparent`).
    // Boxed, as the protocols below are (why: there).
    match protocols {
        ListenerProtocols::Redirect => {
            return Box::pin(crate::transparent::serve(stream, ctx, Diverted::Redirect)).await
        }
        ListenerProtocols::Tproxy => {
            return Box::pin(crate::transparent::serve(stream, ctx, Diverted::Tproxy)).await
        }
        ListenerProtocols::Mixed | ListenerProtocols::Http | ListenerProtocols::Socks5 => {}
    }
    let wait = ctx.snapshot.timeouts.request_head;
    let Some(speaks) = sniff(&stream, protocols, wait).await else {
        // Silent or closed before a single byte. SOCKS5 clients always speak first, so a silent
        // client on an HTTP or mixed listener is answered as HTTP: 408, then close.
        if protocols != ListenerProtocols::Socks5 {
            let mut stream = stream;
            let refusal = Refusal::new(DenyReason::RequestTimeout, "no request was sent");
            write_http_refusal(&mut stream, &refusal).await;
        }
        debug!("closed before the first byte");
        return;
    };
    if speaks == Speaks::Socks5 {
        account::speaks(Protocol::Socks5);
    }
    // Boxed: a protocol's state machine is several KiB (every step of the flow lives in it),
    // and held inline it would make this future, the ledger's scope around it and the spawned
    // task that large, each copied whole as it is built, moved and spawned.
    match speaks {
        Speaks::Socks5 => Box::pin(socks5::serve(stream, ctx)).await,
        Speaks::Http => Box::pin(http::serve(stream, ctx)).await,
        Speaks::Socks4 => {
            let mut stream = stream;
            debug!(
                reason = DenyReason::UnsupportedMethod.as_str(),
                "SOCKS4 refused"
            );
            let _ = stream.write_all(&SOCKS4_REJECTED).await;
        }
    }
}

async fn write_http_refusal(stream: &mut TcpStream, refusal: &Refusal) {
    let asked = Asked {
        protocol: Protocol::HttpForward,
        target: None,
        rule: None,
    };
    let _ = stream
        .write_all(&answer::http_response(refusal, &asked))
        .await;
    let _ = stream.shutdown().await;
    // The request was only peeked at: unread, it would turn our close into a reset.
    crate::http::linger(stream).await;
}

/// Peeks (without consuming) the first byte, waiting at most `wait`.
async fn sniff(stream: &TcpStream, protocols: ListenerProtocols, wait: Duration) -> Option<Speaks> {
    match protocols {
        ListenerProtocols::Http | ListenerProtocols::Redirect | ListenerProtocols::Tproxy => {
            return Some(Speaks::Http)
        }
        ListenerProtocols::Socks5 => return Some(Speaks::Socks5),
        ListenerProtocols::Mixed => {}
    }
    let mut first = [0u8; 1];
    match tokio::time::timeout(wait, stream.peek(&mut first)).await {
        Ok(Ok(1)) => Some(match first[0] {
            SOCKS5 => Speaks::Socks5,
            SOCKS4 => Speaks::Socks4,
            _ => Speaks::Http,
        }),
        _ => None,
    }
}
