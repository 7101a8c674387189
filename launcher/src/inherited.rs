//! What the processes egress-run starts inherit: the inner half's end of the bridge (see
//! `bridge`), taken by number; whatever else egress-run's own caller left open, which must not
//! reach the command; and bubblewrap's SIGINT disposition. The only `unsafe` in the launcher:
//! taking ownership of a raw descriptor number, marking descriptors nobody owns, and setting a
//! signal to "ignored" have no safe form in std or rustix.

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

/// Marks every descriptor from 3 up close-on-exec, so nothing egress-run's caller left open (a
/// connected socket, an IPC channel, a `LISTEN_FDS` socket) reaches the command: it gets stdin,
/// stdout and stderr, and makes the rest itself.
pub fn close_on_exec_from_3() -> io::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on open descriptors; it
    // takes no pointers and closes nothing.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done == 0 {
        return Ok(());
    }
    // Kernels before 5.11: one by one, from the list the kernel keeps.
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= 3)
        .collect();
    for fd in open {
        // SAFETY: F_SETFD on a number takes no pointers; a number that was the directory
        // listing's own descriptor, closed since, fails with EBADF, which is ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Sets SIGINT to "ignored" in this process, so that bubblewrap, spawned next, inherits it: a
/// Ctrl-C at the terminal then cannot kill bubblewrap (which would take the sandbox down before
/// the command could handle its own SIGINT). The caller catches SIGINT itself right after the
/// spawn (`signals::catch`), which replaces this; the inner half catches it too, so the command
/// starts with the default disposition again (an exec resets caught signals, not ignored ones).
pub fn ignore_interrupt_in_children() -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler code; signal(2) takes no pointers here.
    let previous = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
