//! Linux: relay one direction of a tunnel. Small exchanges are copied through a small buffer;
//! once a read fills that buffer the direction is a bulk transfer and switches to splice(2),
//! which moves pages socket → pipe → socket without copying them through user space.
//!
//! Written here rather than taken from a crate: it is the hottest loop of the proxy, it must keep
//! the tunnel's shared idle clock and half-close semantics, and it needs tokio's readiness API
//! (`try_io`) so that a would-block result clears readiness instead of spinning.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::Activity;

/// Reads below this size are copied; a read that fills it marks the direction as bulk.
const SMALL_BUFFER: usize = 16 * 1024;
/// Pipe capacity asked for in bulk mode (Linux allows 1 MiB to unprivileged processes by
/// default); if refused, the default 64 KiB pipe still works.
const PIPE_SIZE: usize = 1024 * 1024;

/// Relays `from` → `to` until EOF (passed on as a half-close of `to`), an error, or idleness.
pub(super) async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    idle: Duration,
) -> io::Result<u64> {
    let mut total = 0u64;
    let mut buf = vec![0u8; SMALL_BUFFER];
    let mut bulk_tried = false;
    loop {
        let n = read(from, &mut buf, activity, idle).await?;
        if n == 0 {
            half_close(to);
            return Ok(total);
        }
        write_all(to, &buf[..n], idle).await?;
        activity.touch();
        total += n as u64;
        if n == buf.len() && !bulk_tried {
            bulk_tried = true;
            // Out of file descriptors for a pipe: keep copying rather than failing the tunnel.
            if let Ok(pipe) = Pipe::new() {
                drop(buf);
                return splice_rest(from, to, &pipe, activity, idle)
                    .await
                    .map(|n| n + total);
            }
        }
    }
}

async fn splice_rest(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    activity: &Activity,
    idle: Duration,
) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = wait_for(from, Interest::READABLE, activity, idle, || {
            splice(
                from,
                None,
                &pipe.write,
                None,
                PIPE_SIZE,
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            )
            .map_err(io::Error::from)
        })
        .await?;
        if n == 0 {
            half_close(to);
            return Ok(total);
        }
        let mut left = n;
        while left > 0 {
            left -= wait_for(to, Interest::WRITABLE, activity, idle, || {
                splice(
                    &pipe.read,
                    None,
                    to,
                    None,
                    left,
                    SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
                )
                .map_err(io::Error::from)
            })
            .await?;
        }
        activity.touch();
        total += n as u64;
    }
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        let _ = fcntl_setpipe_size(&write, PIPE_SIZE);
        Ok(Pipe { read, write })
    }
}

async fn read(
    from: &TcpStream,
    buf: &mut [u8],
    activity: &Activity,
    idle: Duration,
) -> io::Result<usize> {
    wait_for(from, Interest::READABLE, activity, idle, || {
        from.try_read(buf)
    })
    .await
}

async fn write_all(to: &TcpStream, mut bytes: &[u8], idle: Duration) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = tokio::time::timeout(idle, async {
            loop {
                to.writable().await?;
                match to.try_write(bytes) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            }
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading"))??;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Waits until `stream` is ready for `interest` and `op` succeeds. A would-block result clears
/// readiness (through `try_io`) and waits again. Waiting longer than `idle` fails, unless the
/// other direction of the tunnel moved bytes meanwhile.
async fn wait_for<T>(
    stream: &TcpStream,
    interest: Interest,
    activity: &Activity,
    idle: Duration,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        match tokio::time::timeout(idle, stream.ready(interest)).await {
            Ok(ready) => {
                ready?;
            }
            Err(_) if interest.is_readable() && activity.idle_for() < idle => continue,
            Err(_) if interest.is_readable() => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "tunnel idle"))
            }
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "peer stopped reading",
                ))
            }
        }
        match stream.try_io(interest, &mut op) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// Passes an EOF on: the peer may still send its reply the other way.
fn half_close(to: &TcpStream) {
    let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
}
