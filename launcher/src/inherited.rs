//! The one descriptor egress-run's inner half inherits by number: its end of the bridge (see
//! `bridge`). The only `unsafe` in the launcher: taking ownership of a raw descriptor number
//! has no safe form in std or rustix.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Takes ownership of descriptor `raw`, after checking that it is open and a socket, and marks
/// it close-on-exec so the sandboxed command does not inherit it.
pub fn bridge_end(raw: RawFd) -> io::Result<OwnedFd> {
    if raw < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the bridge descriptor cannot be a standard stream",
        ));
    }
    // SAFETY: `raw` is the descriptor egress-run's outer half passed to bubblewrap for this
    // process; nothing else in this process owns or closes it. `fcntl(F_GETFD)` below fails
    // with EBADF (and we drop nothing) if it is not open, so ownership is only taken of an open
    // descriptor, exactly once, at start-up.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open (checked above) and owned by nobody else (see above).
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    let kind = rustix::net::sockopt::socket_type(&fd)?;
    if kind != rustix::net::SocketType::SEQPACKET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the bridge descriptor is not egress-run's socket pair",
        ));
    }
    Ok(fd)
}
