//! What the processes egress-run starts inherit: the inner half's end of the bridge (see
//! `bridge`), taken by number; whatever else egress-run's own caller left open, which must not
//! reach the command; and signal dispositions (bubblewrap ignores what a terminal sends, the
//! command starts with the defaults). The only `unsafe` in the launcher: taking ownership of a
//! raw descriptor number, marking descriptors nobody owns, and setting signal dispositions and
//! masks have no safe form in std or rustix.

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

/// The guard's start (see `guard`): takes its channel to egress-run (checked as `bridge_end`
/// checks the bridge), closes every other descriptor egress-run's caller left open (the guard
/// may outlive egress-run, and must not keep a caller's pipe open meanwhile), and ignores
/// SIGTTOU and SIGHUP, so that writing its report to a terminal neither stops it (`tostop`) nor
/// a hangup ends it before it has checked.
pub fn guard_setup(raw: RawFd) -> io::Result<OwnedFd> {
    let channel = bridge_end(raw)?;
    for (first, last) in [(3, raw - 1), (raw + 1, RawFd::MAX)] {
        if first > last {
            continue;
        }
        // SAFETY: close_range(2) takes no pointers; it closes descriptors nothing in this
        // process uses yet (the guard has opened nothing but its channel, which is kept).
        let done = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) };
        if done != 0 {
            // Kernels before 5.11: left open, as harmless as they were in egress-run.
            break;
        }
    }
    for signal in [libc::SIGTTOU, libc::SIGHUP] {
        // SAFETY: SIG_IGN for a valid signal number; no handler runs.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    Ok(channel)
}

/// The signals a terminal or a process group sends to everything in it, which bubblewrap must
/// survive (see `signals`).
const SHIELDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Makes the next process this one spawns (bubblewrap) start with `SHIELDED` blocked: an exec
/// keeps the signal mask, bubblewrap never unblocks them, so none can kill it; they stay
/// pending, and the inner half (which inherits the mask too) looks at them before it unblocks
/// (`unshield`). Blocked, not ignored: setting a signal to "ignored" would discard one already
/// pending, and would change what the command inherits (a caller's `nohup` is kept as it is).
/// The returned guard unblocks them here once `signals::catch` has its handler in place, which
/// then gets whatever came meanwhile. Called while this process is single-threaded.
pub fn shield_children() -> io::Result<Unblock> {
    let set = shielded_set();
    // SAFETY: `set` is a valid, initialised sigset_t; the old mask is not asked for.
    let blocked = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if blocked != 0 {
        return Err(io::Error::from_raw_os_error(blocked));
    }
    Ok(Unblock(set))
}

/// Unblocks the shielded signals (see `shield_children`).
#[derive(Debug)]
pub struct Unblock(libc::sigset_t);

impl Unblock {
    pub fn now(self) {
        // SAFETY: as in `shield_children`.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.0, std::ptr::null_mut()) };
    }
}

/// In the inner half, before the command starts: the first of `SHIELDED` already pending (the
/// terminal's Ctrl-C during start-up, which reached this process but no command yet), or `None`
/// after unblocking them, so the command starts with an empty mask and the dispositions
/// egress-run's caller gave it.
pub fn unshield() -> Option<libc::c_int> {
    // SAFETY: sigpending fills the zeroed set it is given; sigismember reads it.
    let pending = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set);
        SHIELDED
            .into_iter()
            .find(|&signal| libc::sigismember(&set, signal) == 1)
    };
    if pending.is_none() {
        Unblock(shielded_set()).now();
    }
    pending
}

/// Whether a terminal (stdin, stdout, stderr or the controlling one) has this process's group
/// in its foreground. Raw calls: inside a PID namespace whose group leader is outside it the
/// group reads as 0, which rustix's `Pid` cannot hold; 0 means "not in front".
pub fn foreground_of_a_terminal() -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: getpgrp and tcgetpgrp take no pointers; a descriptor that is not a terminal
    // answers -1.
    let own = unsafe { libc::getpgrp() };
    let in_front = |fd: RawFd| own > 0 && unsafe { libc::tcgetpgrp(fd) } == own;
    if in_front(0) || in_front(1) || in_front(2) {
        return true;
    }
    std::fs::File::open("/dev/tty").is_ok_and(|tty| in_front(tty.as_raw_fd()))
}

fn shielded_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset takes valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in SHIELDED {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// `unshare(CLONE_NEWUSER | CLONE_NEWNET)`, for the capture step (see `capture`).
pub fn unshare_user_and_network() -> io::Result<()> {
    use rustix::thread::UnshareFlags;
    // SAFETY: the flags do not include CLONE_FILES, the one that makes `unshare` unsafe (other
    // threads would see descriptors from a table they no longer share); the capture step calls
    // this before it starts any thread.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNET) }?;
    Ok(())
}
