//! Copying bytes both ways between client and destination until both directions are done, or
//! until neither direction has moved a byte for the idle timeout.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes a single read may move. Large enough that a bulk transfer costs few syscalls.
const BUFFER_SIZE: usize = 128 * 1024;

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
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let up = copy_one_way(&mut client_read, &mut upstream_write, &activity, idle);
    let down = copy_one_way(&mut upstream_read, &mut client_write, &activity, idle);
    let (up, down) = tokio::try_join!(up, down)?;
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

async fn copy_one_way<R, W>(
    reader: &mut R,
    writer: &mut W,
    activity: &Activity,
    idle: Duration,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER_SIZE];
    let mut total = 0u64;
    loop {
        let n = match tokio::time::timeout(idle, reader.read(&mut buf)).await {
            Ok(read) => read?,
            Err(_) if activity.idle_for() < idle => continue, // the other direction is busy
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "tunnel idle")),
        };
        if n == 0 {
            // Pass the half-close on; the other direction may still have a reply to deliver.
            let _ = writer.shutdown().await;
            return Ok(total);
        }
        match tokio::time::timeout(idle, writer.write_all(&buf[..n])).await {
            Ok(written) => written?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "peer stopped reading",
                ))
            }
        }
        activity.touch();
        total += n as u64;
    }
}
