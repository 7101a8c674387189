//! egress-run in a real bubblewrap: what must work (the proxy, exit codes, signals) and what
//! must fail from inside (direct connections, DNS, Unix sockets, secrets, writes outside the
//! allowed paths, git hooks, new user namespaces, terminal injection) — and no trace left in
//! the user's tree. The sandboxed commands are sh, curl, git, ssh, pip and python3, as an agent
//! would run them.
//!
//! `escape`: ways around the proxy that must fail. `network`: what must work through it, and
//! `--proxy`. `git`: clones over http and ssh. `files`: the filesystem options. `secrets`:
//! credential files, `.env` files, variables, keyrings. `lifecycle`: exit codes, signals,
//! kill -9, errors. `planting`: nothing written inside runs on the host later. `terminal`: tmux.

#[path = "../support/dns.rs"]
mod dns;
#[allow(dead_code)] // the launcher tests use the realm and one user
#[path = "../support/kdc.rs"]
mod kdc;
#[allow(dead_code)] // the launcher tests use only the plain origin
#[path = "../support/origin.rs"]
mod origin;
#[path = "../support/squid.rs"]
mod squid;
#[path = "../support/wait.rs"]
mod wait;

mod escape;
mod files;
mod git;
mod lifecycle;
mod network;
mod planting;
mod secrets;
mod shared;
mod terminal;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use origin::Servers;

fn egress_run() -> &'static str {
    env!("CARGO_BIN_EXE_egress-run")
}

/// Runs egress-run in `cwd` with `HOME=home`, with `args` before `--` and `script` for sh.
fn run_in(cwd: &Path, home: &Path, args: &[&str], script: &str) -> Output {
    Command::new(egress_run())
        .args(args)
        .args(["--", "sh", "-c", script])
        .current_dir(cwd)
        .env("HOME", home)
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("egress-run")
}

/// Runs `script` with sh in `cwd`, as egress-run's caller: the script starts egress-run itself,
/// in some state of its own (a descriptor open, a signal ignored).
fn shell_in(cwd: &Path, script: &str) -> Output {
    Command::new("sh")
        .args(["-c", script])
        .current_dir(cwd)
        .env("HOME", no_home())
        .stdin(Stdio::null())
        .output()
        .expect("sh")
}

/// Spawns egress-run in `cwd` running `script` with sh, which must print "ready" once it is set
/// up; returns once it has (a line read, not a delay guessed). `tune` adds to the command.
fn spawn_until_ready(cwd: &Path, script: &str, tune: impl FnOnce(&mut Command)) -> Child {
    let mut command = Command::new(egress_run());
    command
        .args(["-q", "--", "sh", "-c", script])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    tune(&mut command);
    let mut child = command.spawn().expect("egress-run");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    child
}

/// `HOME` for runs whose home does not matter: none at all (as for Debian's `nobody`). Not the
/// working directory: egress-run refuses a writable home (see `planting`), and not the real
/// one, which the tests leave alone.
fn no_home() -> &'static Path {
    Path::new("/nonexistent")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// A server process a test started: killed and reaped when the test is done with it.
struct Server(std::process::Child);

impl Server {
    /// Starts `command` quietly and returns once it accepts connections on loopback `port`.
    fn start(command: &mut Command, port: u16, what: &str) -> Server {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server(child);
        wait::listening(("127.0.0.1", port), what);
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
