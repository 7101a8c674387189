//! Linux: the bulk phase of a tunnel direction. splice(2) moves pages socket → pipe → socket
//! without copying them through user space.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::one_way::{half_close, wait_for};
use super::Activity;

/// Pipe capacity asked for (Linux allows 1 MiB to unprivileged processes by default); if
/// refused, the default 64 KiB pipe still works.
const PIPE_SIZE: usize = 1024 * 1024;

/// Relays the rest of `from` → `to` through a pipe; `None` when no pipe can be made (out of
/// descriptors), and the caller keeps copying instead.
pub(super) async fn try_rest(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    idle: Duration,
    count: &AtomicU64,
) -> Option<io::Result<u64>> {
    let pipe = Pipe::new().ok()?;
    Some(splice_rest(from, to, &pipe, activity, idle, count).await)
}

async fn splice_rest(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    activity: &Activity,
    idle: Duration,
    count: &AtomicU64,
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
        count.fetch_add(n as u64, Ordering::Relaxed);
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
