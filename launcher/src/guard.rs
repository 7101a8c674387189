//! The guard: a process of its own, started before the command, that runs the check at exit
//! (`protect::check`) once the sandbox is gone — when egress-run ends normally, and also when
//! egress-run is killed (even with -9), which a check inside egress-run could not survive.
//!
//! It is egress-run's child, in a process group of its own (the terminal's signals and a
//! signal to egress-run's group do not reach it), linked by a socket pair: egress-run passes it
//! a pidfd of the sandbox's PID 1 before the command starts, and closes its end when the
//! sandbox has ended (or dies, which closes it too). The guard then waits until that PID 1 is
//! gone — the kernel ends every process of a PID namespace before its PID 1 is gone, so
//! nothing of the command's is left writing — checks, reports on its stderr (egress-run's), and
//! exits 0 (nothing found) or 3 (something moved aside or not movable), which egress-run reads.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use anyhow::Context;

use crate::protect::{self, describe, Watch};

/// The guard's exit code when it moved something aside or failed to.
const FOUND: u8 = 3;

/// egress-run's side of the guard.
#[derive(Debug)]
pub struct Guard {
    child: Option<Child>,
    channel: OwnedFd,
}

impl Guard {
    /// Starts the guard with what it will check. Call it before any descriptor is made
    /// inheritable for bubblewrap (the guard must not hold the bridge).
    pub fn spawn(self_exe: &Path, watch: &Watch) -> anyhow::Result<Guard> {
        let (channel, theirs) = crate::bridge::pair()?;
        rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty())?;
        let mut command = Command::new(self_exe);
        command
            .arg("__guard")
            .arg("--fd")
            .arg(theirs.as_raw_fd().to_string())
            .args(to_args(watch))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().context("cannot start egress-run's guard")?;
        drop(theirs);
        Ok(Guard {
            child: Some(child),
            channel,
        })
    }

    /// Hands over a pidfd of the sandbox's PID 1 (`pid`, in this PID namespace). Before the
    /// command is told to start: if egress-run dies before this, the command never starts.
    pub fn watch_sandbox(&self, pid: i32) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(pid).context("no sandbox PID")?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .context("pidfd_open of the sandbox (Linux 5.3 or newer is needed)")?;
        crate::bridge::pass_out(&self.channel, &pidfd)?;
        Ok(())
    }

    /// After the sandbox has ended: lets the guard check, and returns whether it found
    /// anything (it has said what on stderr).
    pub fn finish(mut self) -> anyhow::Result<bool> {
        self.wait()
    }

    fn wait(&mut self) -> anyhow::Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(false);
        };
        let _ = rustix::net::shutdown(&self.channel, rustix::net::Shutdown::Both);
        let status = child.wait()?;
        match status.code() {
            Some(0) => Ok(false),
            Some(code) if code == i32::from(FOUND) => Ok(true),
            _ => anyhow::bail!("the check at exit failed ({status}); see above"),
        }
    }
}

impl Drop for Guard {
    /// On an early return (a bad policy, bubblewrap failing), the guard still checks and is
    /// waited for: nothing outlives egress-run.
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// The guard's arguments after `--fd`: a `Watch`.
fn to_args(watch: &Watch) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![
        "--since".into(),
        format!("{}.{:09}", watch.since.0, watch.since.1).into(),
    ];
    let mut push = |flag: &str, value: OsString| {
        out.push(flag.into());
        out.push(value);
    };
    for root in &watch.roots {
        push("--root", root.into());
    }
    for place in &watch.places {
        push("--place", place.into());
    }
    for (dev, ino) in &watch.kept {
        push("--kept", format!("{dev}:{ino}").into());
    }
    for relative in &watch.relative {
        push("--relative", relative.into());
    }
    out
}

/// The guard's arguments, parsed by `main`.
#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    #[arg(long)]
    fd: RawFd,
    #[arg(long)]
    since: String,
    #[arg(long)]
    root: Vec<PathBuf>,
    #[arg(long)]
    place: Vec<PathBuf>,
    #[arg(long)]
    kept: Vec<String>,
    #[arg(long)]
    relative: Vec<String>,
}

impl GuardArgs {
    fn watch(&self) -> anyhow::Result<Watch> {
        let (secs, nanos) = self.since.split_once('.').context("--since")?;
        let kept = self
            .kept
            .iter()
            .map(|k| {
                let (dev, ino) = k.split_once(':')?;
                Some((dev.parse().ok()?, ino.parse().ok()?))
            })
            .collect::<Option<Vec<_>>>()
            .context("--kept")?;
        Ok(Watch {
            roots: self.root.clone(),
            since: (secs.parse()?, nanos.parse()?),
            places: self.place.clone(),
            kept,
            relative: self.relative.clone(),
        })
    }
}

/// The guard process.
pub fn run(args: GuardArgs) -> anyhow::Result<ExitCode> {
    let channel = crate::inherited::guard_setup(args.fd).context("the guard's channel")?;
    let watch = args.watch()?;
    // A pidfd of the sandbox's PID 1, if egress-run got that far; then the end of egress-run's
    // side (it closed it, or died).
    let mut sandbox = None;
    loop {
        match crate::bridge::receive_fd(&channel) {
            Ok(Some(fd)) => sandbox = Some(fd),
            Ok(None) => {}
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if let Some(pidfd) = sandbox {
        wait_for_exit(&pidfd);
    }
    let report = protect::check(&watch);
    // Not eprint!, which would panic on a closed stderr: what was found is moved aside anyway.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), describe(&report).as_bytes());
    let found = !report.moved.is_empty() || !report.failed.is_empty() || report.incomplete;
    Ok(ExitCode::from(if found { FOUND } else { 0 }))
}

/// Waits until the process behind `pidfd` has ended (the pidfd reads as ready).
fn wait_for_exit(pidfd: &OwnedFd) {
    use rustix::event::{poll, PollFd, PollFlags};
    loop {
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: GuardArgs,
    }

    #[test]
    fn the_watch_reaches_the_guard_unchanged() {
        let watch = Watch {
            roots: vec!["/home/dev/project".into(), "/srv/a b".into()],
            since: (1_700_000_000, 42),
            places: vec!["/home/dev/.bash_profile".into()],
            kept: vec![(2049, 1234), (2049, 99)],
            relative: vec![".githooks".into()],
        };
        let argv = std::iter::once(OsString::from("__guard"))
            .chain(["--fd".into(), "7".into()])
            .chain(to_args(&watch));
        let cli = Cli::try_parse_from(argv).unwrap();
        assert_eq!(cli.args.fd, 7);
        assert_eq!(cli.args.watch().unwrap(), watch);
    }
}
