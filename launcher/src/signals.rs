//! Passing SIGINT and SIGTERM on: from egress-run to the sandbox's PID 1, and from there to the
//! command, so the command ends its own way; and the command's exit code, which egress-run
//! returns as its own.
//!
//! Only signals *sent* with kill(2) (a supervisor, `timeout`, an agent stopping its command) are
//! passed on. Those the terminal sends — Ctrl-C reaches the whole foreground process group, the
//! command included — already reached the command itself: passing them on as well would
//! interrupt its own handling of the first. bubblewrap, between the two halves, ignores SIGINT
//! (see `inherited::ignore_interrupt_in_children`), so Ctrl-C cannot kill it and, through
//! `--die-with-parent`, the command.

use rustix::process::{kill_process, Pid, Signal};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;

/// Starts catching SIGINT and SIGTERM, queued until `forward_sent` takes them: registered early,
/// no signal is lost between now and the moment the target's PID is known.
pub fn catch() -> std::io::Result<SignalsInfo<WithOrigin>> {
    SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM])
}

/// On a thread of its own, for as long as the process runs: every caught signal that was sent
/// rather than raised by the kernel (a terminal's Ctrl-C) goes on to `pid`.
pub fn forward_sent(mut caught: SignalsInfo<WithOrigin>, pid: Pid) {
    std::thread::spawn(move || {
        for origin in caught.forever() {
            if matches!(origin.cause, Cause::Kernel) {
                continue;
            }
            if let Some(signal) = Signal::from_named_raw(origin.signal) {
                let _ = kill_process(pid, signal);
            }
        }
    });
}

/// The command's exit code, or 128 + N when a signal N ended it (as shells report it).
pub fn exit_code(status: std::process::ExitStatus) -> std::process::ExitCode {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitCode;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from(128u8.wrapping_add(signal as u8)),
        _ => ExitCode::FAILURE,
    }
}
