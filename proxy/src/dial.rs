//! Connecting to the destination: each checked address in order, all within one deadline. With
//! several addresses, one attempt may use at most half of the deadline, so a black-holed first
//! address still leaves time for the next.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use egress_config::DenyReason;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::answer::Refusal;

/// Connects to the first address that accepts. `timeout` bounds the whole attempt, so a name with
/// many dead addresses cannot hold the client longer than one dial timeout.
pub async fn dial(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, Refusal> {
    let deadline = Instant::now() + timeout;
    let per_attempt = if addrs.len() > 1 {
        timeout / 2
    } else {
        timeout
    };
    let mut last = Refusal::new(DenyReason::UpstreamUnreachable, "no address to dial");
    for (i, addr) in addrs.iter().enumerate() {
        let attempt_deadline = deadline.min(Instant::now() + per_attempt);
        match tokio::time::timeout_at(attempt_deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(error)) => last = classify(*addr, &error),
            Err(_) if i + 1 < addrs.len() && Instant::now() < deadline => {
                last = Refusal::new(
                    DenyReason::UpstreamTimeout,
                    format!("connecting to {addr} timed out"),
                );
            }
            Err(_) => {
                return Err(Refusal::new(
                    DenyReason::UpstreamTimeout,
                    format!("connecting to {addr} took longer than {timeout:?}"),
                ))
            }
        }
    }
    Err(last)
}

fn classify(addr: SocketAddr, error: &io::Error) -> Refusal {
    let reason = match error.kind() {
        io::ErrorKind::ConnectionRefused => DenyReason::UpstreamRefused,
        io::ErrorKind::TimedOut => DenyReason::UpstreamTimeout,
        _ => DenyReason::UpstreamUnreachable,
    };
    Refusal::new(reason, format!("connecting to {addr}: {error}"))
}
