//! Copying bytes both ways between client and destination until both directions are done, or
//! until neither direction has moved a byte for the idle timeout.

#[cfg(not(target_os = "linux"))]
mod copy;
#[cfg(target_os = "linux")]
mod splice;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes moved by a finished tunnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transferred {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}

/// Relays until both sides have closed their sending half (each EOF is passed on as a
/// half-close), an error occurs, or the tunnel idles for `idle`. `early` holds bytes the client
/// sent before the tunnel was established; they go first.
pub async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    early: &[u8],
    idle: Duration,
) -> io::Result<Transferred> {
    if !early.is_empty() {
        upstream.write_all(early).await?;
    }
    let activity = Activity::new();
    #[cfg(target_os = "linux")]
    let (up, down) = tokio::try_join!(
        splice::one_way(client, upstream, &activity, idle),
        splice::one_way(upstream, client, &activity, idle),
    )?;
    #[cfg(not(target_os = "linux"))]
    let (up, down) = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        tokio::try_join!(
            copy::one_way(&mut client_read, &mut upstream_write, &activity, idle),
            copy::one_way(&mut upstream_read, &mut client_write, &activity, idle),
        )?
    };
    Ok(Transferred {
        client_to_upstream: up + early.len() as u64,
        upstream_to_client: down,
    })
}

/// The last time either direction moved bytes, shared by both, so a long one-way download is
/// not mistaken for an idle tunnel.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

#[cfg(test)]
mod tests;
