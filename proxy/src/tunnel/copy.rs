//! Portable relay of one tunnel direction through a user-space buffer (non-Linux systems; Linux
//! uses splice, see `splice.rs`).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Activity;

/// Bytes a single read may move. Large enough that a bulk transfer costs few syscalls.
const BUFFER_SIZE: usize = 128 * 1024;

pub(super) async fn one_way<R, W>(
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
