//! Passing SIGINT and SIGTERM on: from egress-run to the sandbox's PID 1, and from there to the
//! command, so the command ends its own way (and its exit code is what egress-run returns).

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
