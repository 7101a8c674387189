//! egress-run's second half, running inside bubblewrap as PID 1 of the sandbox: it relays the
//! sandbox's 127.0.0.1:3128 to the bridge socket, then confines itself (no_new_privs, seccomp)
//! and starts the command, which inherits that confinement. The filter is installed on the main
//! thread only, after the relay's worker thread started, so the relay alone may still use the
//! Unix socket. As PID 1 it forwards SIGINT and SIGTERM to the command, and its exit ends every
//! process left in the sandbox.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::{bridge, env, seccomp, signals};

pub fn run(socket: PathBuf, command: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let (program, args) = command.split_first().context("no command given")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(async { tokio::net::TcpListener::bind(("127.0.0.1", env::INSIDE_PORT)).await });
    let listener = listener.context("cannot listen on the sandbox's 127.0.0.1:3128")?;
    runtime.spawn(bridge::serve_inside(listener, socket));
    // From here on this thread, and what it starts, is confined; the runtime's threads are not.
    seccomp::apply()?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .spawn()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
    runtime.spawn(signals::forward(rustix::process::Pid::from_child(&child)));
    let status = child.wait()?;
    Ok(exit_code(status))
}

/// The command's exit code, or 128 + N when a signal N ended it (as shells report it).
pub fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from(128u8.wrapping_add(signal as u8)),
        _ => ExitCode::FAILURE,
    }
}
