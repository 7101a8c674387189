//! Passing SIGINT and SIGTERM on: from egress-run to the sandbox's PID 1, and from there to the
//! command, so the command ends its own way; and the command's exit code, which egress-run
//! returns as its own.

use rustix::process::{kill_process, Pid, Signal};
use tokio::signal::unix::{signal, SignalKind};

/// Forwards every SIGINT and SIGTERM this process receives to `pid`, for as long as it runs.
pub async fn forward(pid: Pid) {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    loop {
        let sig = tokio::select! {
            _ = int.recv() => Signal::INT,
            _ = term.recv() => Signal::TERM,
        };
        let _ = kill_process(pid, sig);
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
