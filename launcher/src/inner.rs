//! egress-run's second half, running inside bubblewrap as PID 1 of the sandbox. It listens on
//! the sandbox's 127.0.0.1:3128 and passes each accepted connection out through the bridge (see
//! `bridge`), and starts the command. bubblewrap has already set `no_new_privs` and installed the
//! seccomp filters (see `seccomp`), so this process, its threads and the command are confined
//! from the start. As PID 1 it passes on to the command the signals the outer half forwards over
//! the bridge (see `signals`), and its exit ends every process left in the sandbox.
//!
//! No async runtime here: one thread accepts and passes descriptors on, which costs nothing at
//! start-up and moves no bytes (the proxy reads the client's socket itself).

use std::ffi::OsString;
use std::net::TcpListener;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::bridge::Heard;
use crate::{bridge, env, inherited, signals};

pub fn run(bridge_fd: RawFd, capture: bool, command: Vec<OsString>) -> anyhow::Result<ExitCode> {
    let (program, args) = command.split_first().context("no command given")?;
    let control = inherited::bridge_end(bridge_fd).context("the bridge to egress-run")?;
    let listener = TcpListener::bind(("127.0.0.1", env::INSIDE_PORT))
        .context("cannot listen on the sandbox's 127.0.0.1:3128")?;
    // Captured connections and DNS (see `capture`): bound before the command starts, so it
    // cannot take these ports. Where capture could not be set up nothing is redirected here,
    // and these stay idle.
    let captured = match capture {
        true => capture_listeners(&control)?,
        false => Vec::new(),
    };
    match bridge::hear(&control) {
        Heard::Go => {}
        // Stopped before it started: the command never runs.
        Heard::Signal(signal) => return Ok(ExitCode::from(128u8.wrapping_add(signal as u8))),
        Heard::Closed => return Ok(ExitCode::from(125)),
    }
    inherited::close_on_exec_from_3().context("marking inherited descriptors close-on-exec")?;
    if let Some(signal) = inherited::unshield() {
        // The terminal's Ctrl-C (or similar) came during start-up: as if before the command.
        return Ok(ExitCode::from(128u8.wrapping_add(signal as u8)));
    }
    // Not dumpable: a command that can write /proc/1/mem (where Yama allows it) cannot take over
    // this process and its bridge. The command itself is dumpable again after its exec.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    let relay_control = control.try_clone()?;
    for captured in captured {
        let control = control.try_clone()?;
        std::thread::spawn(move || pass_connections_out(&captured, &control));
    }
    std::thread::spawn(move || pass_connections_out(&listener, &relay_control));
    let mut child = match command_for(program).args(args).spawn() {
        Ok(child) => child,
        // As shells report them: 127 not found, 126 found but not runnable.
        Err(error) => {
            eprintln!(
                "egress-run: cannot run {}: {error}",
                program.to_string_lossy()
            );
            let code = if error.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Ok(ExitCode::from(code));
        }
    };
    let pid = rustix::process::Pid::from_child(&child);
    // Signals the outer half passes on, for as long as the command runs. The bridge closing
    // means the outer half is gone (killed, even with -9, before bubblewrap's own parent-death
    // signal was armed): this process exits, and with it, as PID 1, the whole sandbox.
    std::thread::spawn(move || loop {
        match bridge::hear(&control) {
            Heard::Signal(signal) => signals::kill(pid, signal),
            Heard::Go => {}
            Heard::Closed => std::process::exit(125),
        }
    });
    let status = child.wait()?;
    Ok(signals::exit_code(status))
}

/// `program` found on `$PATH` here, once, by checking files: spawning by name would have the
/// child try `execve` in every directory before the right one, each try a failed system call
/// on the start-up path. `argv[0]` stays the name as given. Anything not found this way is left
/// to the usual search, which reports it.
fn command_for(program: &std::ffi::OsStr) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let found = std::env::var_os("PATH").and_then(|path| find_on_path(program, &path));
    match found {
        Some(path) => {
            let mut command = std::process::Command::new(path);
            command.arg0(program);
            command
        }
        None => std::process::Command::new(program),
    }
}

/// The first executable regular file named `program` in `path`'s directories, as execvp would
/// pick it; `None` for a name with a slash (used as it is) or one found nowhere.
fn find_on_path(program: &std::ffi::OsStr, path: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if program.is_empty() || program.as_bytes().contains(&b'/') {
        return None;
    }
    std::env::split_paths(path)
        // An empty entry means the current directory, as in execvp.
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            }
        })
        .map(|dir| dir.join(program))
        .find(|candidate| {
            // As execvp: a regular file this user may execute (its permission class, noexec
            // mounts); anything else, go on to the next directory.
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file())
                && rustix::fs::accessat(
                    rustix::fs::CWD,
                    candidate,
                    rustix::fs::Access::EXEC_OK,
                    rustix::fs::AtFlags::EACCESS,
                )
                .is_ok()
        })
}

/// The listeners for captured connections (127.0.0.1 and, where the sandbox has IPv6, ::1),
/// and the DNS stub's UDP sockets, passed out to the outer half at once: it answers queries on
/// them itself (a datagram socket needs no accepting).
fn capture_listeners(control: &OwnedFd) -> anyhow::Result<Vec<TcpListener>> {
    use crate::capture::{CAPTURE_PORT, DNS_PORT};
    let mut listeners = vec![TcpListener::bind(("127.0.0.1", CAPTURE_PORT))
        .context("cannot listen on the sandbox's 127.0.0.1:3129")?];
    let dns = std::net::UdpSocket::bind(("127.0.0.1", DNS_PORT))
        .context("cannot listen on the sandbox's 127.0.0.1:5353")?;
    // A failure means the outer half is gone or refused the run (a bad policy): the next
    // message heard says so, and the command never starts.
    let _ = bridge::pass_out(control, &dns);
    // No IPv6 in the sandbox (a kernel without it): IPv4 only.
    if let Ok(v6) = TcpListener::bind(("::1", CAPTURE_PORT)) {
        listeners.push(v6);
        if let Ok(dns6) = std::net::UdpSocket::bind(("::1", DNS_PORT)) {
            let _ = bridge::pass_out(control, &dns6);
        }
    }
    Ok(listeners)
}

/// Accepts until the outer half is gone; each accepted socket is passed out and closed here.
fn pass_connections_out(listener: &TcpListener, control: &OwnedFd) {
    use std::io::ErrorKind;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                // Out of descriptors or memory: accepting again at once would spin.
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        match bridge::pass_out(control, &stream) {
            Ok(()) => {}
            // The outer half is gone (it died or is exiting): nothing can leave the sandbox.
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::NotConnected
                ) =>
            {
                return
            }
            // Anything else (ENOBUFS, ETOOMANYREFS) costs this connection only; dropping it
            // closes it, so the client sees the failure at once.
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_found_in_the_first_directory_that_has_it_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        // Not executable in the first directory, executable in the second and third.
        std::fs::write(dirs[0].path().join("tool"), "").unwrap();
        for dir in &dirs[1..] {
            let tool = dir.path().join("tool");
            std::fs::write(&tool, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::join_paths(dirs.iter().map(|d| d.path())).unwrap();
        assert_eq!(
            find_on_path("tool".as_ref(), &path),
            Some(dirs[1].path().join("tool"))
        );
        assert_eq!(find_on_path("missing".as_ref(), &path), None);
        assert_eq!(
            find_on_path("./tool".as_ref(), &path),
            None,
            "a path is used as given"
        );
        assert_eq!(find_on_path("".as_ref(), &path), None);
    }
}
