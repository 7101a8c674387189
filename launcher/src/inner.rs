//! egress-run's second half, running inside bubblewrap as PID 1 of the sandbox. It listens on
//! the sandbox's 127.0.0.1:3128 and passes each accepted connection out through the bridge (see
//! `bridge`), confines itself (no_new_privs, seccomp) before any thread starts so every thread
//! and the command inherit the filter, and starts the command. As PID 1 it forwards SIGINT and
//! SIGTERM to the command, and its exit ends every process left in the sandbox.
//!
//! No async runtime here: one thread accepts and passes descriptors on, which costs nothing at
//! start-up and moves no bytes (the proxy reads the client's socket itself).

use std::ffi::OsString;
use std::net::TcpListener;
use std::os::fd::{OwnedFd, RawFd};
use std::process::ExitCode;

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::{bridge, env, inherited, seccomp, signals};

pub fn run(bridge_fd: RawFd, command: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let (program, args) = command.split_first().context("no command given")?;
    let control = inherited::bridge_end(bridge_fd).context("the bridge to egress-run")?;
    let listener = TcpListener::bind(("127.0.0.1", env::INSIDE_PORT))
        .context("cannot listen on the sandbox's 127.0.0.1:3128")?;
    // Registered before the command starts, so a signal that arrives early is queued, not lost
    // (PID 1 ignores signals it has no handler for).
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("signal handlers")?;
    // From here on this process, every thread it starts and the command are confined.
    seccomp::apply()?;
    if !bridge::wait_for_go(&control) {
        return Ok(ExitCode::from(125));
    }
    std::thread::spawn(move || pass_connections_out(&listener, &control));
    let mut child = std::process::Command::new(program)
        .args(args)
        .spawn()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
    let pid = rustix::process::Pid::from_child(&child);
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if let Some(signal) = rustix::process::Signal::from_named_raw(signal) {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    });
    let status = child.wait()?;
    Ok(signals::exit_code(status))
}

/// Accepts until the outer half is gone; each accepted socket is passed out and closed here.
fn pass_connections_out(listener: &TcpListener, control: &OwnedFd) {
    for accepted in listener.incoming() {
        let Ok(stream) = accepted else { continue };
        if bridge::pass_out(control, &stream).is_err() {
            // The outer half is gone (it died or is exiting): nothing can leave the sandbox.
            return;
        }
    }
}
