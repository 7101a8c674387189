//! Passing signals on: SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to egress-run reach the command,
//! which ends its own way; and the command's exit code, which egress-run returns as its own.
//!
//! Only signals *sent* by a process (kill(2): a supervisor, `timeout`, an agent stopping its
//! command) are passed on. Those the terminal raises — Ctrl-C, Ctrl-\, a hangup — reach the
//! whole foreground process group, the command included, so the command already has them:
//! passing them on as well would interrupt its own handling of the first. bubblewrap, between
//! egress-run and the command, runs with all four blocked (`inherited::shield_children`), so
//! none can kill it and, through `--die-with-parent`, the command. When egress-run is not the
//! terminal's foreground job, bubblewrap gets a process group of its own (`run`), so a signal
//! sent to egress-run's whole group reaches the command once, passed on, not twice; there the
//! terminal's own signals are passed on too, since they cannot reach the command otherwise.
//!
//! On Linux the signal goes through the bridge (`bridge::send_signal`) rather than kill(2) to
//! the sandbox's PID 1: a message waits in the socket until the inner half reads it, where a
//! signal sent before PID 1 had a handler would be dropped (PID 1 of a namespace ignores what it
//! has no handler for). A signal that comes before the command started means it never starts.

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;

/// The signals passed on.
const PASSED_ON: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// Starts catching `PASSED_ON`, queued until `pass_on_sent` takes them.
pub fn catch() -> std::io::Result<SignalsInfo<WithOrigin>> {
    SignalsInfo::<WithOrigin>::new(PASSED_ON)
}

/// On a thread of its own, for as long as the process runs: every caught signal sent by a
/// process goes to `deliver`; those the kernel raised for the terminal only when
/// `also_from_terminal` (the command is not in the terminal's group, so it did not get them).
/// (macOS leaves the cause unknown, so "sent by a process" is also read from the sender's PID
/// being known.)
pub fn pass_on_sent(
    mut caught: SignalsInfo<WithOrigin>,
    also_from_terminal: bool,
    mut deliver: impl FnMut(i32) + Send + 'static,
) {
    std::thread::spawn(move || {
        for origin in caught.forever() {
            let from_terminal = matches!(origin.cause, Cause::Kernel) || origin.process.is_none();
            if also_from_terminal || !from_terminal {
                deliver(origin.signal);
            }
        }
    });
}

/// Sends `signal` to `pid` (kill(2)), ignoring a process already gone.
pub fn kill(pid: rustix::process::Pid, signal: i32) {
    if let Some(signal) = rustix::process::Signal::from_named_raw(signal) {
        let _ = rustix::process::kill_process(pid, signal);
    }
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
