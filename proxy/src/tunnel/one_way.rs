//! One direction of a tunnel, on shared `&TcpStream`s (tokio's readiness API), so both
//! directions and the first-bytes inspection can run at once without splitting the sockets.
//!
//! Small exchanges are copied through a buffer that lives for one read and write. On Linux, once a read fills that
//! buffer the direction is a bulk transfer and switches to splice(2) (`splice.rs`).
//!
//! Written here rather than taken from a crate: it is the hottest loop of the proxy, it must keep
//! the tunnel's shared idle clock and half-close semantics, and a would-block result must clear
//! readiness (`try_io`) instead of spinning.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::Activity;

/// Reads below this size are copied; on Linux a read that fills it marks the direction as bulk.
const SMALL_BUFFER: usize = 16 * 1024;

/// What one read-and-forward step did.
enum Step {
    /// `from` reached EOF.
    Eof,
    /// `n` bytes were read and all of them written.
    Passed(usize),
    /// `n` bytes were read; `to` took only part of them and the rest must be written later.
    Partly(usize, Vec<u8>),
}

/// Relays `from` → `to` until EOF (passed on as a half-close of `to`), an error, or idleness.
/// Returns the bytes relayed, also added to `count` as they go.
///
/// No buffer lives in the tunnel between reads: bytes are read into a buffer that lives for the
/// one call and written on at once, and only what `to` cannot take right away is copied to the
/// heap until it is written. An idle tunnel (the usual state of thousands of held ones) holds no
/// relay buffer at all.
pub async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    idle: Duration,
    count: &AtomicU64,
) -> io::Result<u64> {
    let mut total = 0u64;
    // Only Linux switches to splice(2): elsewhere there is nothing to try.
    #[cfg(target_os = "linux")]
    let mut bulk_tried = false;
    loop {
        let n = match wait_for(from, Interest::READABLE, activity, idle, || pass(from, to)).await? {
            Step::Eof => {
                half_close(to);
                return Ok(total);
            }
            Step::Passed(n) => n,
            Step::Partly(n, rest) => {
                write_all(to, &rest, idle).await?;
                n
            }
        };
        activity.touch();
        total += n as u64;
        count.fetch_add(n as u64, Ordering::Relaxed);
        #[cfg(target_os = "linux")]
        if n == SMALL_BUFFER && !bulk_tried {
            bulk_tried = true;
            // Without a pipe (out of descriptors) keep copying rather than failing the tunnel.
            if let Some(rest) = super::splice::try_rest(from, to, activity, idle, count).await {
                return rest.map(|n| n + total);
            }
        }
    }
}

/// One read of `from` into a buffer, written on to `to` as far as it takes it without
/// waiting. A plain function, not async: the buffer lives only during the call and is never
/// part of the tunnel's future. Would-block comes only from the read (so `wait_for` clears the
/// right readiness); a write that would block is `Partly`.
fn pass(from: &TcpStream, to: &TcpStream) -> io::Result<Step> {
    // Fresh capacity, read into uninitialised: a zeroed 16 KiB stack array cost 16 KiB of stores
    // at every call (about a third of a short tunnel's instructions, `bench/callgrind.sh`),
    // where one allocation of the same size costs a few hundred; `unsafe` (which would let the
    // stack array stay uninitialised) is forbidden in this workspace. Freed before returning:
    // still no buffer between reads.
    let mut buf = Vec::with_capacity(SMALL_BUFFER);
    let n = from.try_read_buf(&mut buf)?;
    if n == 0 {
        return Ok(Step::Eof);
    }
    let written = match to.try_write(&buf[..n]) {
        Ok(written) => written,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if written == n {
        Ok(Step::Passed(n))
    } else {
        Ok(Step::Partly(n, buf[written..n].to_vec()))
    }
}

/// Writes all of `bytes` to a shared socket; fails when the peer has not read for `idle`.
pub async fn write_all(to: &TcpStream, mut bytes: &[u8], idle: Duration) -> io::Result<()> {
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
pub(super) async fn wait_for<T>(
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
pub(super) fn half_close(to: &TcpStream) {
    let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
}
