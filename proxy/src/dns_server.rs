//! Egress's DNS responder (`dns_server: { listen: ADDRESS }`), for transparent mode: the
//! gateway's clients ask it, over UDP or TCP, and it answers only for names their policy allows
//! (`answer`). What it hands out is remembered per client (`handed`), so an intercepted
//! connection can be held to it.
//!
//! Bounded like everything else: at most `AT_ONCE` questions in work (past that a UDP question
//! is dropped — the client asks again — and a TCP connection closed), a TCP connection waits at
//! most `TCP_IDLE` for its next question, and messages are at most 64 KiB by their framing.

mod answer;
mod svcb;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tracing::{debug, info};

use crate::state::ProxyState;

/// Questions in work at once, UDP and TCP together.
const AT_ONCE: usize = 256;
/// How long a TCP connection may stay silent between questions (and take to send one).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The largest UDP message read.
const UDP_MAX: usize = 4096;

/// The responder's sockets, bound before the proxy announces it is ready.
#[derive(Debug)]
pub struct Bound {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

/// Binds UDP and TCP on `address` (the TCP port follows the UDP one when `address` has port 0).
pub async fn bind(address: SocketAddr) -> io::Result<Bound> {
    let udp = UdpSocket::bind(address).await?;
    let tcp = TcpListener::bind(udp.local_addr()?).await?;
    Ok(Bound { udp, tcp })
}

/// Answers questions until shutdown begins.
pub async fn serve(bound: Bound, state: Arc<ProxyState>) {
    if let Ok(address) = bound.udp.local_addr() {
        info!(%address, "DNS responder listening (UDP and TCP)");
    }
    let busy = Arc::new(Semaphore::new(AT_ONCE));
    tokio::join!(
        udp_loop(Arc::new(bound.udp), state.clone(), busy.clone()),
        tcp_loop(bound.tcp, state, busy),
    );
}

async fn udp_loop(socket: Arc<UdpSocket>, state: Arc<ProxyState>, busy: Arc<Semaphore>) {
    let mut buf = vec![0u8; UDP_MAX];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buf) => received,
            () = state.shutdown.cancelled() => return,
        };
        let (len, client) = match received {
            Ok(received) => received,
            Err(error) => {
                debug!(%error, "DNS responder: receive failed");
                continue;
            }
        };
        let Ok(permit) = busy.clone().try_acquire_owned() else {
            debug!(%client, "DNS responder busy: question dropped (the client asks again)");
            continue;
        };
        let query = buf[..len].to_vec();
        let (socket, state) = (socket.clone(), state.clone());
        tokio::spawn(async move {
            if let Some(reply) = answer::reply(&query, client, &state, true).await {
                let _ = socket.send_to(&reply, client).await;
            }
            drop(permit);
        });
    }
}

async fn tcp_loop(listener: TcpListener, state: Arc<ProxyState>, busy: Arc<Semaphore>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = state.shutdown.cancelled() => return,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                debug!(%error, "DNS responder: accept failed");
                // Out of descriptors, most likely: let some close before trying again.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = busy.clone().try_acquire_owned() else {
            debug!(%client, "DNS responder busy: TCP connection closed");
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = serve_tcp(stream, client, &state).await;
            drop(permit);
        });
    }
}

/// Length-prefixed questions (RFC 1035 §4.2.2) until the client closes or stays silent.
async fn serve_tcp(
    mut stream: TcpStream,
    client: SocketAddr,
    state: &Arc<ProxyState>,
) -> io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        let Some(reply) = answer::reply(&query, client, state, false).await else {
            return Ok(());
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return Ok(());
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
        if state.shutdown.is_cancelled() {
            return Ok(());
        }
    }
}
