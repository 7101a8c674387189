//! Copying bytes both ways between client and destination until both directions are done, or
//! until neither direction has moved a byte for the idle timeout.

mod one_way;
#[cfg(target_os = "linux")]
mod splice;

pub use one_way::{one_way, write_all};

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::future::Future;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes moved by a finished tunnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transferred {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}

/// Bytes moved so far each way, readable while the tunnel runs: a tunnel cut at the end of the
/// shutdown grace period, or ended by an error, is accounted with what it had moved.
#[derive(Debug, Default)]
pub struct Moved {
    client_to_upstream: AtomicU64,
    upstream_to_client: AtomicU64,
}

impl Moved {
    pub fn so_far(&self) -> Transferred {
        Transferred {
            client_to_upstream: self.client_to_upstream.load(Ordering::Relaxed),
            upstream_to_client: self.upstream_to_client.load(Ordering::Relaxed),
        }
    }

    /// Starts counting again (the next request on the connection).
    pub fn reset(&self) {
        self.client_to_upstream.store(0, Ordering::Relaxed);
        self.upstream_to_client.store(0, Ordering::Relaxed);
    }
}

/// Relays until both sides have closed their sending half (each EOF is passed on as a
/// half-close), an error occurs, or the tunnel idles for `idle`. `early` holds bytes the client
/// sent before the tunnel was established; they go first (and their buffer is freed once they
/// are sent). `moved` counts as bytes go.
pub async fn relay<B: AsRef<[u8]>>(
    client: &TcpStream,
    upstream: &TcpStream,
    early: B,
    idle: Duration,
    moved: &Moved,
) -> io::Result<Transferred> {
    relay_gated(client, upstream, idle, moved, async { Ok(early) }).await
}

/// Like `relay`, but the client → destination direction starts only when `first` completes:
/// it reads and judges the client's first bytes and yields them to be sent on (an error closes
/// the tunnel before any of them reach the destination). The destination → client direction
/// runs from the start, so protocols where the server speaks first are not delayed.
pub async fn relay_gated<'a, B: AsRef<[u8]>>(
    client: &TcpStream,
    upstream: &TcpStream,
    idle: Duration,
    moved: &Moved,
    first: impl Future<Output = io::Result<B>> + 'a,
) -> io::Result<Transferred> {
    let activity = Activity::default();
    let up_count = &moved.client_to_upstream;
    let up = async {
        // In a block of its own: the early bytes' buffer is freed once they are sent, not kept
        // for the life of the tunnel.
        let sent = {
            let early = first.await?;
            let early = early.as_ref();
            one_way::write_all(upstream, early, idle).await?;
            early.len()
        };
        if sent > 0 {
            activity.touch();
            up_count.fetch_add(sent as u64, Ordering::Relaxed);
        }
        let rest = one_way(client, upstream, &activity, idle, up_count).await?;
        Ok::<u64, io::Error>(rest + sent as u64)
    };
    let down = one_way(upstream, client, &activity, idle, &moved.upstream_to_client);
    let (up, down) = tokio::try_join!(up, down)?;
    Ok(Transferred {
        client_to_upstream: up,
        upstream_to_client: down,
    })
}

/// The last time either direction moved bytes, shared by both, so a long one-way download is
/// not mistaken for an idle tunnel.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
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
