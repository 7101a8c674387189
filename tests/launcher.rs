//! egress-run in a real bubblewrap: what must work (the proxy, exit codes, signals) and what
//! must fail from inside (direct connections, DNS, Unix sockets, secrets, writes outside the
//! allowed paths, git hooks, new user namespaces, terminal injection) — and no trace left in
//! the user's tree. The sandboxed commands are sh, curl and python3, as an agent would run.

#[allow(dead_code)] // the launcher tests use only the plain origin
#[path = "support/origin.rs"]
mod origin;
#[path = "support/squid.rs"]
mod squid;
#[path = "support/wait.rs"]
mod wait;

use std::path::Path;
use std::process::{Command, Output, Stdio};

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

#[test]
fn allowed_traffic_goes_through_the_proxy_and_denials_are_explained() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let work = tempfile::tempdir().unwrap();
    let allow = format!("127.0.0.1:{port}");
    let script = format!(
        "curl -sS http://127.0.0.1:{port}/hello; \
         curl -s -D - -o /dev/null http://example.org/ | tr -d '\\r' | grep -i '^x-egress-error'; \
         exit 3"
    );
    let out = run_in(work.path(), work.path(), &["--allow", &allow], &script);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "hello from origin\nX-Egress-Error: not-allowlisted\n"
    );
    assert_eq!(
        text(&out.stderr),
        "egress-run: blocked example.org:80 (not-allowlisted).\n"
    );
    let quiet = run_in(
        work.path(),
        work.path(),
        &["--quiet", "--allow", &allow],
        "curl -s http://example.org/ >/dev/null",
    );
    assert_eq!(text(&quiet.stderr), "");
}

#[test]
fn every_way_around_the_proxy_fails_from_inside() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/id_rsa"), "PRIVATE KEY").unwrap();
    std::fs::write(work.path().join(".env"), "TOKEN=secret").unwrap();
    std::fs::create_dir_all(work.path().join(".git/hooks")).unwrap();
    // Unix sockets of the host's, stream and datagram, which a sandboxed command must not reach.
    // Under /var/tmp, which the sandbox sees (its /tmp is private), so only the filter stops it.
    let sock_dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let host_socket = sock_dir.path().join("host.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&host_socket).unwrap();
    let host_dgram = sock_dir.path().join("host.dgram");
    let dgram = std::os::unix::net::UnixDatagram::bind(&host_dgram).unwrap();
    dgram.set_nonblocking(true).unwrap();
    // Outside /tmp (which is private inside) and outside the working tree: read-only there.
    let outside = tempfile::tempdir_in("/var/tmp").unwrap();
    let py = |code: &str| format!("python3 -c \"{code}\"");
    let attempts: Vec<(&str, String)> = vec![
        ("direct TCP to a host loopback service", format!("curl -s --noproxy '*' --max-time 5 http://127.0.0.1:{port}/hello")),
        ("a DNS lookup", "getent hosts example.com".into()),
        (
            "a UDP send",
            py("import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('192.0.2.1', 53))"),
        ),
        (
            "connect() to a host Unix socket",
            py(&format!("import socket; s=socket.socket(socket.AF_UNIX); s.connect('{}')", host_socket.display())),
        ),
        (
            "sending to a host datagram socket from a socket pair",
            py(&format!("import socket; a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM); a.sendto(b'x', '{}')", host_dgram.display())),
        ),
        (
            "an AF_VSOCK socket (to a VM's host)",
            py("import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)"),
        ),
        (
            "an AF_PACKET socket",
            py("import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)"),
        ),
        ("reading ~/.ssh/id_rsa", "cat \"$HOME/.ssh/id_rsa\"".into()),
        ("reading .env in the working tree", "grep -q secret .env".into()),
        ("writing outside the allowed paths", format!("touch {}/planted", outside.path().display())),
        ("creating a git hook", "echo evil > .git/hooks/pre-commit".into()),
        ("a new user namespace", "unshare -U true".into()),
        (
            "TIOCSTI injection",
            py("import fcntl, termios; fcntl.ioctl(0, termios.TIOCSTI, b'x')"),
        ),
        (
            "an x32 system call (socket(AF_UNIX) by the x32 number)",
            py("import ctypes, sys; libc=ctypes.CDLL(None); sys.exit(0 if libc.syscall(0x40000000+41, 1, 1, 0) >= 0 else 1)"),
        ),
        (
            "taking a descriptor of PID 1 (egress-run, holding the bridge) with pidfd_getfd",
            py("import ctypes, os, sys; libc=ctypes.CDLL(None); p=os.pidfd_open(1); sys.exit(0 if any(libc.syscall(438, p, fd, 0) >= 0 for fd in range(3, 64)) else 1)"),
        ),
        (
            "ptrace of PID 1",
            py("import ctypes; libc=ctypes.CDLL(None); import sys; sys.exit(0 if libc.ptrace(16, 1, 0, 0) == 0 else 1)"),
        ),
        (
            // A child of the script's own: even a Yama-restricted kernel would allow this, so
            // only the filter can refuse it.
            "ptrace of the command's own child",
            py("import ctypes, os, sys, time; libc=ctypes.CDLL(None); pid=os.fork()\nif pid == 0: time.sleep(5); os._exit(0)\nok = libc.ptrace(16, pid, 0, 0) == 0; os.kill(pid, 9); sys.exit(0 if ok else 1)"),
        ),
    ];
    for (what, script) in &attempts {
        let out = run_in(
            work.path(),
            home.path(),
            &["--quiet"],
            &format!("{script} 2>/dev/null"),
        );
        assert_ne!(out.status.code(), Some(0), "{what} succeeded: {out:?}");
    }
    // The same commands can succeed where allowed, so the failures above are the sandbox's.
    let out = run_in(
        work.path(),
        home.path(),
        &["--quiet"],
        "touch made-here && python3 -c 'import socket; socket.socketpair()'",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(work.path().join("made-here").exists());
    // No capability is left, even when egress-run runs as root: a mask cannot be unmounted.
    let caps = run_in(
        work.path(),
        home.path(),
        &["--quiet"],
        "grep -h '^CapEff:' /proc/self/status /proc/1/status; umount \"$HOME/.ssh\" 2>/dev/null && cat \"$HOME/.ssh/id_rsa\"",
    );
    assert_eq!(
        text(&caps.stdout),
        "CapEff:\t0000000000000000\n".repeat(2),
        "{caps:?}"
    );
    // The command and egress-run's inner half (PID 1) run under no_new_privs and the filters.
    let status = run_in(
        work.path(),
        home.path(),
        &["--quiet"],
        "grep -hE '^(NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status /proc/1/status",
    );
    let filters = if cfg!(target_arch = "x86_64") { 3 } else { 2 };
    assert_eq!(
        text(&status.stdout),
        format!("NoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t{filters}\n").repeat(2),
        "{status:?}"
    );
    assert!(!outside.path().join("planted").exists());
    assert!(!work.path().join(".git/hooks/pre-commit").exists());
    let mut buf = [0u8; 8];
    assert!(
        dgram.recv(&mut buf).is_err(),
        "nothing reached the host's datagram socket"
    );
}

#[test]
fn exit_codes_and_signals_pass_through() {
    let work = tempfile::tempdir().unwrap();
    let out = run_in(work.path(), work.path(), &["-q"], "exit 42");
    assert_eq!(out.status.code(), Some(42));
    let out = run_in(work.path(), work.path(), &["-q"], "kill -TERM $$");
    assert_eq!(out.status.code(), Some(128 + 15));
    // SIGTERM to egress-run reaches the command, which exits its own way. The command says
    // "ready" once its trap is set; the test reads that line rather than guessing a delay.
    let mut child = Command::new(egress_run())
        .args([
            "-q",
            "--",
            "sh",
            "-c",
            "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

#[test]
fn twenty_concurrent_runs_leave_no_trace_in_the_tree() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join(".env"), "TOKEN=1").unwrap();
    std::fs::create_dir_all(work.path().join(".git/hooks")).unwrap();
    let before = listing(work.path());
    let runtime = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let runs: Vec<_> = (0..20)
        .map(|_| {
            Command::new(egress_run())
                .args(["-q", "--", "true"])
                .current_dir(work.path())
                .env("HOME", work.path())
                .env("XDG_RUNTIME_DIR", runtime.path())
                .env("TMPDIR", tmp.path())
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(listing(work.path()), before);
    // Nor in the runtime or temporary directories: the bridge is a socket pair, no file.
    assert_eq!(listing(runtime.path()), Vec::<String>::new());
    assert_eq!(listing(tmp.path()), Vec::<String>::new());
}

#[test]
fn after_kill_9_no_process_outlives_egress_run_and_nothing_is_left_on_disk() {
    use std::io::BufRead;
    let work = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // A token no other process has in its command line.
    let token = format!("egress-run-kill9-{}", std::process::id());
    let mut child = Command::new(egress_run())
        .args([
            "-q",
            "--",
            "sh",
            "-c",
            &format!("echo ready; exec sleep 300 # {token}"),
        ])
        .current_dir(work.path())
        .env("XDG_RUNTIME_DIR", runtime.path())
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    // egress-run, bwrap and the sandbox's PID 1 carry the token in their arguments.
    assert!(processes_with(&token).len() >= 3, "the sandbox runs");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    wait::until("no sandbox process is left after egress-run", || {
        processes_with(&token).is_empty()
    });
    // No socket, lock or directory anywhere a run could have put one, so nothing to sweep.
    assert_eq!(listing(runtime.path()), Vec::<String>::new());
    assert_eq!(listing(tmp.path()), Vec::<String>::new());
    assert_eq!(listing(work.path()), Vec::<String>::new());
}

/// PIDs whose command line contains `token`.
fn processes_with(token: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(token))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn the_connect_helper_tunnels_stdin_and_stdout_through_the_proxy() {
    let servers = Servers::new();
    let echo = servers.echo();
    let work = tempfile::tempdir().unwrap();
    let allow = format!("127.0.0.1:{}", echo.port());
    // What ssh does with GIT_SSH_COMMAND's ProxyCommand: bytes in, bytes back. The helper is
    // taken from that variable, as ssh takes it (egress-run's own path, or /run/egress-run when
    // that path is not visible inside).
    const HELPER: &str =
        "helper=${GIT_SSH_COMMAND#*ProxyCommand=\\'}; helper=${helper%% connect*};";
    let script = format!(
        "{HELPER} printf 'ping' | \"$helper\" connect 127.0.0.1 {}",
        echo.port()
    );
    let out = run_in(
        work.path(),
        work.path(),
        &["-q", "--allow", &allow],
        &script,
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout).as_str()),
        (Some(0), "ping"),
        "{out:?}"
    );
    let refused = run_in(
        work.path(),
        work.path(),
        &["-q"],
        &format!("{HELPER} \"$helper\" connect example.org 22 </dev/null"),
    );
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        text(&refused.stderr).contains("the proxy refused example.org:22"),
        "{refused:?}"
    );
    assert!(
        text(&refused.stderr).contains("not-allowlisted"),
        "{refused:?}"
    );
}

#[test]
fn srt_settings_are_read_and_what_cannot_be_honoured_is_named() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    assert_ne!(port, 80, "an ephemeral port, not the default one");
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".secret"), "s3cret").unwrap();
    let settings = work.path().join("srt.json");
    std::fs::write(
        &settings,
        // No port: in srt that allows every port of the host, and so it must here.
        r#"{"network": {"allowedDomains": ["127.0.0.1"], "allowUnixSockets": ["/var/run/docker.sock"]},
            "filesystem": {"denyRead": ["~/.secret"]}}"#,
    )
    .unwrap();
    let script = format!("curl -sS http://127.0.0.1:{port}/hello; cat \"$HOME/.secret\"");
    let out = run_in(
        work.path(),
        home.path(),
        &["--srt-settings", settings.to_str().unwrap()],
        &script,
    );
    assert_eq!(
        text(&out.stdout),
        "hello from origin\n",
        "the secret stays unread: {out:?}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "egress-run: --srt-settings: network.allowUnixSockets is not honoured by egress-run and is ignored\n"
        ),
        "{stderr}"
    );
}

/// A git server on loopback: `git http-backend` as a CGI behind Python's http.server, serving a
/// bare repository with one commit. Returns the clone URL; the server lives as long as `dir`'s
/// guard.
struct GitServer {
    url: String,
    _server: Server,
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

/// `srv/repo.git`: a bare repository with one commit (README: "hello from git").
fn bare_repo(srv: &Path) -> std::path::PathBuf {
    let git = |args: &[&str], cwd: &Path| {
        let ok = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    };
    std::fs::create_dir_all(srv).unwrap();
    git(&["init", "--bare", "repo.git"], srv);
    let src = srv.join("src");
    std::fs::create_dir_all(&src).unwrap();
    git(&["init"], &src);
    std::fs::write(src.join("README"), "hello from git\n").unwrap();
    git(&["add", "README"], &src);
    git(&["commit", "-m", "init"], &src);
    git(
        &[
            "push",
            srv.join("repo.git").to_str().unwrap(),
            "HEAD:refs/heads/main",
        ],
        &src,
    );
    srv.join("repo.git")
}

fn git_server(dir: &Path) -> GitServer {
    let srv = dir.join("srv");
    std::fs::create_dir_all(srv.join("cgi-bin")).unwrap();
    bare_repo(&srv);
    // http.server runs CGIs as nobody when started as root: trust the repository regardless.
    let script = format!(
        "#!/bin/sh\nexport GIT_PROJECT_ROOT={}\nexport GIT_HTTP_EXPORT_ALL=1\n\
         export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'\nexec git http-backend\n",
        srv.display()
    );
    let cgi = srv.join("cgi-bin/git");
    std::fs::write(&cgi, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::start(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--cgi",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(&srv),
        port,
        "the git server did not start",
    );
    GitServer {
        url: format!("http://127.0.0.1:{port}/cgi-bin/git/repo.git"),
        _server: server,
    }
}

#[test]
fn git_clones_over_http_through_the_proxy_and_a_denied_clone_shows_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = git_server(dir.path());
    let work = tempfile::tempdir().unwrap();
    let port = server
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let allow = format!("127.0.0.1:{port}");
    let out = run_in(
        work.path(),
        work.path(),
        &["-q", "--allow", &allow],
        &format!("git clone -q {} cloned", server.url),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("cloned/README")).unwrap(),
        "hello from git\n"
    );
    let denied = run_in(
        work.path(),
        work.path(),
        &[],
        &format!("git clone -q {} denied", server.url),
    );
    assert_ne!(denied.status.code(), Some(0));
    let stderr = text(&denied.stderr);
    assert!(stderr.contains("reason: not-allowlisted"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "egress-run: blocked 127.0.0.1:{port} (not-allowlisted)."
        )),
        "{stderr}"
    );
}

/// A tmux server of the test's own (its own socket), running one command on a real terminal;
/// killed when dropped.
struct Terminal {
    socket: String,
}

impl Terminal {
    /// Starts `command` (a shell command line) in a 100×20 terminal.
    fn start(label: &str, command: &str) -> Terminal {
        let terminal = Terminal {
            socket: format!("egress-run-{label}-{}", std::process::id()),
        };
        let started = terminal.tmux(&["new-session", "-d", "-x", "100", "-y", "20", command]);
        assert!(started.status.success(), "{started:?}");
        terminal
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux")
    }

    fn send_keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Waits until `needle` is on the screen, and returns the screen.
    fn wait_for(&self, needle: &str) -> String {
        let mut shown = String::new();
        wait::until(&format!("{needle:?} is on the terminal"), || {
            shown = text(&self.tmux(&["capture-pane", "-p"]).stdout);
            shown.contains(needle)
        });
        shown
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        // tmux leaves its socket behind; it is this test's, in tmux's per-user directory.
        let base = std::env::var("TMUX_TMPDIR").unwrap_or_else(|_| "/tmp".into());
        let uid = rustix::process::getuid().as_raw();
        let _ = std::fs::remove_file(format!("{base}/tmux-{uid}/{}", self.socket));
    }
}

#[test]
fn an_interactive_program_works_on_a_terminal_under_tmux() {
    let work = tempfile::tempdir().unwrap();
    // Also on a real terminal, injecting keystrokes into it (TIOCSTI) is refused.
    let program = "import sys, fcntl, termios, errno\n\
print('tty' if sys.stdin.isatty() else 'no tty')\n\
try:\n    fcntl.ioctl(0, termios.TIOCSTI, b'x'); print('tiocsti injected')\n\
except OSError as e:\n    print('tiocsti refused', errno.errorcode[e.errno])\n\
name = input('name? '); print('hello', name)";
    let command = format!(
        "cd {} && {} -q -- python3 -c \"{program}\"; echo exit=$?; sleep 30",
        work.path().display(),
        egress_run()
    );
    let terminal = Terminal::start("interactive", &command);
    terminal.wait_for("name?");
    terminal.send_keys(&["world", "Enter"]);
    let shown = terminal.wait_for("exit=0");
    assert!(
        shown.contains("tty\ntiocsti refused EPERM\nname? world\nhello world\nexit=0"),
        "{shown}"
    );
}

/// A network namespace with a web server at 10.213.N.2, reachable from the host over a veth
/// pair: an address that is really there, outside the sandbox. Removed on drop.
struct OtherHost {
    name: String,
    server: std::process::Child,
    addr: String,
}

impl OtherHost {
    fn start() -> OtherHost {
        let n = std::process::id() % 250;
        let name = format!("egr{}", std::process::id());
        let ip = |args: &[&str]| {
            let out = Command::new("ip")
                .args(args)
                .output()
                .expect("ip (iproute2)");
            assert!(out.status.success(), "ip {args:?}: {}", text(&out.stderr));
        };
        let (host_side, ns_side) = (format!("v{name}"), format!("p{name}"));
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_side, "type", "veth", "peer", "name", &ns_side,
        ]);
        ip(&["link", "set", &ns_side, "netns", &name]);
        ip(&[
            "addr",
            "add",
            &format!("10.213.{n}.1/30"),
            "dev",
            &host_side,
        ]);
        ip(&["link", "set", &host_side, "up"]);
        ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("10.213.{n}.2/30"),
            "dev",
            &ns_side,
        ]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &ns_side, "up"]);
        let addr = format!("10.213.{n}.2:8000");
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                "python3",
                "-m",
                "http.server",
                "8000",
                "--bind",
                &format!("10.213.{n}.2"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait::listening(addr.as_str(), "the other host's server did not start");
        OtherHost { name, server, addr }
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &format!("v{}", self.name)])
            .status();
    }
}

#[test]
fn an_address_the_host_reaches_is_out_of_reach_from_inside() {
    let other = OtherHost::start();
    let work = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", other.addr);
    // The host reaches it directly…
    let direct = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--noproxy",
            "*",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(text(&direct.stdout), "200");
    // …the sandbox does not, and through the proxy only if the policy allows it.
    let out = run_in(
        work.path(),
        work.path(),
        &["-q"],
        &format!("curl -s --noproxy '*' --max-time 5 {url}"),
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "curl: could not connect: {out:?}"
    );
    let out = run_in(
        work.path(),
        work.path(),
        &["-q"],
        &format!("curl -s -o /dev/null -w '%{{http_code}}' {url}"),
    );
    assert_eq!(text(&out.stdout), "403");
}

#[test]
fn pip_downloads_from_a_local_index_through_the_proxy() {
    // A one-package PEP 503 index: a minimal wheel, served by http.server on loopback.
    let dir = tempfile::tempdir().unwrap();
    let make = format!(
        r#"
import os, zipfile
root = {root:?}
os.makedirs(os.path.join(root, "simple", "egress-test-pkg"))
wheel = "egress_test_pkg-0.1-py3-none-any.whl"
with zipfile.ZipFile(os.path.join(root, "simple", "egress-test-pkg", wheel), "w") as z:
    z.writestr("egress_test_pkg/__init__.py", "")
    z.writestr("egress_test_pkg-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: egress-test-pkg\nVersion: 0.1\n")
    z.writestr("egress_test_pkg-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("egress_test_pkg-0.1.dist-info/RECORD", "")
with open(os.path.join(root, "simple", "egress-test-pkg", "index.html"), "w") as f:
    f.write('<a href="' + wheel + '">' + wheel + '</a>')
"#,
        root = dir.path().display().to_string()
    );
    let made = Command::new("python3")
        .args(["-c", &make])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait::listening(("127.0.0.1", port), "the index did not start");
    let work = tempfile::tempdir().unwrap();
    let allow = format!("127.0.0.1:{port}");
    let pip = format!(
        "python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check -q \
         --index-url http://127.0.0.1:{port}/simple/ -d dl egress-test-pkg"
    );
    let out = run_in(work.path(), work.path(), &["-q", "--allow", &allow], &pip);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(work
        .path()
        .join("dl/egress_test_pkg-0.1-py3-none-any.whl")
        .exists());
}

#[test]
fn a_missing_bwrap_or_refused_user_namespaces_get_a_clear_error_not_a_trace() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(egress_run())
        .args(["--", "true"])
        .current_dir(work.path())
        .env("EGRESS_RUN_BWRAP", work.path().join("no-such-bwrap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).starts_with("egress-run: EGRESS_RUN_BWRAP="),
        "{out:?}"
    );
    // Stands in for a kernel that refuses user namespaces (sysctl or AppArmor), which cannot be
    // switched off here without breaking every other sandbox the suite runs at the same time:
    // a bwrap that fails the way the real one does there, before starting anything.
    let fake = work.path().join("bwrap");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(egress_run())
        .args(["--", "true"])
        .current_dir(work.path())
        .env("EGRESS_RUN_BWRAP", &fake)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.starts_with("bwrap: No permissions to create new namespace\negress-run: bubblewrap could not create the sandbox"), "{stderr}");
    assert!(
        stderr.contains("kernel.unprivileged_userns_clone=1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apparmor_restrict_unprivileged_userns"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

/// A real OpenSSH server on loopback, with its own host key, one authorised client key and no
/// password logins; it runs `git-upload-pack` for git over ssh.
struct SshServer {
    port: u16,
    _server: Server,
}

fn ssh_server(dir: &Path, client_key: &Path) -> SshServer {
    let keygen = |path: &Path| {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success(), "ssh-keygen");
    };
    let host_key = dir.join("host_key");
    keygen(&host_key);
    keygen(client_key);
    let authorized = dir.join("authorized_keys");
    std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
    // sshd refuses to start without its privilege-separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {}\nAuthorizedKeysFile {}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile none\n",
            host_key.display(),
            authorized.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config),
        port,
        "sshd did not start",
    );
    SshServer {
        port,
        _server: server,
    }
}

#[test]
fn git_clones_over_ssh_through_the_proxy_with_the_connect_helper() {
    let dir = tempfile::tempdir().unwrap();
    let repo = bare_repo(&dir.path().join("srv"));
    let work = tempfile::tempdir().unwrap();
    // The key a user passes in for this clone: ~/.ssh is masked inside, so it lives elsewhere
    // (here in the working tree, which the sandbox sees).
    let key = work.path().join("deploy_key");
    let server = ssh_server(dir.path(), &key);
    let user = text(&Command::new("id").arg("-un").output().unwrap().stdout);
    // The user adds the key and host-key options to the GIT_SSH_COMMAND egress-run sets, whose
    // ProxyCommand carries ssh through the proxy.
    let clone = |target: &str| {
        format!(
            "GIT_SSH_COMMAND=\"$GIT_SSH_COMMAND -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes\" \
             git clone -q ssh://{}@127.0.0.1:{}{} {target}",
            key.display(),
            user.trim(),
            server.port,
            repo.display()
        )
    };
    let allow = format!("127.0.0.1:{}", server.port);
    let out = run_in(
        work.path(),
        work.path(),
        &["-q", "--allow", &allow],
        &clone("cloned"),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("cloned/README")).unwrap(),
        "hello from git\n"
    );
    // Not allowed: ssh never reaches the server, and the helper says why.
    let denied = run_in(work.path(), work.path(), &[], &clone("denied"));
    assert_ne!(denied.status.code(), Some(0));
    let stderr = text(&denied.stderr);
    assert!(
        stderr.contains(&format!(
            "the proxy refused 127.0.0.1:{}: HTTP/1.1 403 Forbidden (not-allowlisted)",
            server.port
        )),
        "{stderr}"
    );
    assert!(!work.path().join("denied").exists());
}

#[test]
fn a_bad_policy_is_an_error_and_the_command_never_runs() {
    let work = tempfile::tempdir().unwrap();
    // The policy is checked while bubblewrap builds the sandbox: the command must still not run.
    let out = run_in(work.path(), work.path(), &["--allow", "*"], "touch ran");
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("egress-run: --allow: invalid pattern \"*\""),
        "{stderr}"
    );
    assert!(!work.path().join("ran").exists());
    let policy = work.path().join("policy.yaml");
    std::fs::write(&policy, "mode: enforce\nallow: [github.com]\nbogus: 1\n").unwrap();
    let out = run_in(
        work.path(),
        work.path(),
        &["--policy", policy.to_str().unwrap()],
        "touch ran",
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(text(&out.stderr).contains("bogus"), "{out:?}");
    assert!(!work.path().join("ran").exists());
}

/// Names the test Squids resolve (their hosts file) to the local origin.
const SQUID_HOSTS: &[(&str, &str)] = &[
    ("allowed.test", "127.0.0.1"),
    ("x.denied-by-squid.test", "127.0.0.1"),
];

#[test]
fn with_proxy_everything_goes_to_a_running_proxy_and_its_password_stays_outside() {
    use squid::{Squid, SquidOptions};
    const PASSWORD: &str = "run-pa55-4417";
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let squid = Squid::start(&SquidOptions {
        users: &[("agent", PASSWORD)],
        deny_domains: &[".denied-by-squid.test"],
        hosts: SQUID_HOSTS,
        ..SquidOptions::default()
    });
    let work = tempfile::tempdir().unwrap();
    let proxy = format!("http://agent@{}", squid.addr);
    let run = |extra: &[&str], password: Option<&str>, script: &str| {
        let mut command = Command::new(egress_run());
        command
            .args(["-q", "--proxy", &proxy])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .current_dir(work.path())
            .env("HOME", work.path())
            .env_remove("EGRESS_PROXY_PASSWORD")
            .stdin(Stdio::null());
        if let Some(password) = password {
            command.env("EGRESS_PROXY_PASSWORD", password);
        }
        command.output().unwrap()
    };
    // HTTP, SOCKS5 and a Squid denial; then what the command could see of the password.
    let script = format!(
        "curl -s http://allowed.test:{port}/hello; \
         curl -s --socks5-hostname 127.0.0.1:3128 http://allowed.test:{port}/hello; \
         curl -s -i http://x.denied-by-squid.test:{port}/hello; \
         env; tr '\\0' ' ' </proc/1/cmdline; cat /proc/1/environ 2>/dev/null || echo pid-1-environ-unreadable"
    );
    let out = run(&[], Some(PASSWORD), &script);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout.starts_with("hello from origin\nhello from origin\nHTTP/1.1 403"),
        "{stdout}"
    );
    assert!(
        stdout.contains("X-Squid-Error: ERR_ACCESS_DENIED 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("X-Egress-Error: upstream-denied"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(PASSWORD),
        "the command sees the password: {stdout}"
    );
    // Squid saw the user's requests by name, authenticated as the user.
    let entries = squid.wait_for_entries(3);
    let seen: Vec<(&str, &str, u16)> = entries
        .iter()
        .map(|e| (e.method.as_str(), e.user.as_str(), e.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "agent", 200),
            ("CONNECT", "agent", 200),
            ("GET", "agent", 403)
        ],
        "{entries:?}"
    );
    assert_eq!(entries[1].url, format!("allowed.test:{port}"));

    // The password from a file instead: one the sandbox could see (under /var/tmp; its /tmp is
    // private), so it must be masked there.
    let secrets = tempfile::tempdir_in("/var/tmp").unwrap();
    let file = secrets.path().join("proxy-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let script = format!(
        "curl -s http://allowed.test:{port}/hello; cat {} /proc/1/environ",
        file.display()
    );
    let out = run(
        &["--proxy-password-file", file.to_str().unwrap()],
        None,
        &script,
    );
    assert!(
        text(&out.stdout).starts_with("hello from origin\n"),
        "{out:?}"
    );
    assert!(!text(&out.stdout).contains(PASSWORD), "{out:?}");

    // A policy file's own parent with a password file: masked too.
    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "allow: [\"allowed.test:*\"]\nupstreams:\n  corp:\n    url: http://agent@{}\n    password_file: {}\nroute:\n  default: corp\n",
            squid.addr,
            file.display()
        ),
    )
    .unwrap();
    let out = Command::new(egress_run())
        .args(["-q", "--policy", policy.to_str().unwrap(), "--"])
        .args(["sh", "-c", &script])
        .current_dir(work.path())
        .env("HOME", work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).starts_with("hello from origin\n"),
        "{out:?}"
    );
    assert!(!text(&out.stdout).contains(PASSWORD), "{out:?}");

    // A wrong password: Squid's 407 reaches the command as egress's 502 with the reason.
    let out = run(
        &[],
        Some("wrong"),
        &format!("curl -s -i http://allowed.test:{port}/hello"),
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 502"), "{stdout}");
    assert!(
        stdout.contains("X-Egress-Error: upstream-auth-failed"),
        "{stdout}"
    );

    // No password at all: refused before anything runs, saying where it should come from.
    let out = run(&[], None, "touch ran");
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("names a user: give the password in EGRESS_PROXY_PASSWORD"),
        "{out:?}"
    );
    assert!(!work.path().join("ran").exists());
}

#[test]
fn with_proxy_and_no_credentials_requests_reach_it_and_a_dead_one_gets_a_clear_answer() {
    use squid::{Squid, SquidOptions};
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let squid = Squid::start(&SquidOptions {
        hosts: SQUID_HOSTS,
        ..SquidOptions::default()
    });
    let work = tempfile::tempdir().unwrap();
    let proxy = format!("http://{}", squid.addr);
    let out = run_in(
        work.path(),
        work.path(),
        &["-q", "--proxy", &proxy],
        &format!("curl -s http://allowed.test:{port}/hello"),
    );
    assert_eq!(text(&out.stdout), "hello from origin\n", "{out:?}");
    let entries = squid.wait_for_entries(1);
    assert_eq!(
        (entries[0].method.as_str(), entries[0].user.as_str()),
        ("GET", "-")
    );
    // A proxy that is not there: an answer naming the cause, over HTTP and SOCKS5 alike, and a
    // summary at exit; never a hang or a bare reset.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let script = format!(
        "curl -s -i http://allowed.test:{port}/hello; \
         curl -s --socks5-hostname 127.0.0.1:3128 http://allowed.test:{port}/hello; echo \"socks5 exit $?\""
    );
    let out = run_in(
        work.path(),
        work.path(),
        &["--proxy", &format!("http://{dead_addr}")],
        &script,
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 502"), "{stdout}");
    assert!(
        stdout.contains("X-Egress-Error: upstream-unreachable"),
        "{stdout}"
    );
    // curl's exit 97: the SOCKS5 server replied with a failure (not a connection error).
    assert!(stdout.ends_with("socks5 exit 97\n"), "{stdout}");
    assert!(
        text(&out.stderr).contains(&format!(
            "egress-run: blocked allowed.test:{port} (upstream-unreachable)"
        )),
        "{out:?}"
    );
    // A policy of egress-run's own would be ignored with --proxy: refused instead.
    let out = run_in(
        work.path(),
        work.path(),
        &["--proxy", &proxy, "--allow", "github.com"],
        "true",
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("--policy, --allow and --deny are for egress-run's own proxy")
    );
}

#[test]
fn descriptors_left_open_by_egress_runs_caller_do_not_reach_the_command() {
    let work = tempfile::tempdir().unwrap();
    // The caller holds fd 7 open (here a file; it could be a connected socket) and runs
    // egress-run; the command must see only its standard streams.
    let script = format!(
        "exec 7</etc/hostname; ls /proc/self/fd; echo --; {} -q -- ls /proc/self/fd",
        egress_run()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .current_dir(work.path())
        .env("HOME", work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let (outside, inside) = stdout.split_once("--\n").unwrap();
    assert!(outside.lines().any(|fd| fd == "7"), "the control: {stdout}");
    // ls's own directory descriptor is 3.
    assert_eq!(inside, "0\n1\n2\n3\n", "{out:?}");
}

#[test]
fn a_command_that_is_not_there_exits_127_as_in_a_shell() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(egress_run())
        .args(["-q", "--", "no-such-command-egress"])
        .current_dir(work.path())
        .env("HOME", work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(
        text(&out.stderr).starts_with("egress-run: cannot run no-such-command-egress: "),
        "{out:?}"
    );
    let script = work.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let out = Command::new(egress_run())
        .args(["-q", "--"])
        .arg(&script)
        .current_dir(work.path())
        .env("HOME", work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126), "{out:?}");
}

#[test]
fn srt_settings_with_no_allowed_domains_allow_nothing_not_the_built_in_list() {
    let work = tempfile::tempdir().unwrap();
    let settings = work.path().join("srt.json");
    std::fs::write(&settings, r#"{"network": {"allowedDomains": []}}"#).unwrap();
    // github.com is in the built-in list: it must be refused by the policy, before any lookup.
    let out = run_in(
        work.path(),
        work.path(),
        &["-q", "--srt-settings", settings.to_str().unwrap()],
        "curl -s -o /dev/null -D - https://github.com/",
    );
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 403"), "{out:?}");
    assert!(
        stdout.contains("X-Egress-Error: not-allowlisted"),
        "{out:?}"
    );
}

#[test]
fn ctrl_c_at_the_terminal_reaches_the_command_once_and_it_ends_its_own_way() {
    let work = tempfile::tempdir().unwrap();
    // The command counts the SIGINTs it gets and takes its time to clean up after the first:
    // a Ctrl-C passed on by egress-run as well as delivered by the terminal would show as 2, and
    // one that killed bubblewrap would end it before "cleaned up".
    std::fs::write(
        work.path().join("app.py"),
        "import signal, sys, time\n\
         seen = []\n\
         signal.signal(signal.SIGINT, lambda *_: seen.append(1))\n\
         print('ready', flush=True)\n\
         while not seen: time.sleep(0.01)\n\
         time.sleep(0.5)\n\
         print('cleaned up after', len(seen), 'interrupt(s)', flush=True)\n\
         sys.exit(3)\n",
    )
    .unwrap();
    // The pane's own program ignores SIGINT (so the pane outlives the Ctrl-C) and starts
    // egress-run with the default disposition, as an interactive shell would.
    std::fs::write(
        work.path().join("pane.py"),
        "import signal, subprocess, sys, time\n\
         signal.signal(signal.SIGINT, signal.SIG_IGN)\n\
         code = subprocess.call(sys.argv[1:], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))\n\
         print('exit', code, flush=True)\n\
         time.sleep(30)\n",
    )
    .unwrap();
    let command = format!(
        "cd {} && python3 pane.py {} -q -- python3 app.py",
        work.path().display(),
        egress_run()
    );
    let terminal = Terminal::start("ctrl-c", &command);
    terminal.wait_for("ready");
    terminal.send_keys(&["C-c"]);
    let shown = terminal.wait_for("exit ");
    assert!(
        shown.contains("cleaned up after 1 interrupt(s)\nexit 3"),
        "{shown}"
    );
}

#[test]
fn read_only_allow_write_and_deny_read_shape_the_filesystem() {
    let work = tempfile::tempdir().unwrap();
    // Under /var/tmp: visible inside (the sandbox's /tmp is its own), read-only unless allowed.
    let cache = tempfile::tempdir_in("/var/tmp").unwrap();
    let other = tempfile::tempdir_in("/var/tmp").unwrap();
    let private = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::write(private.path().join("data.csv"), "customer,card\n").unwrap();
    std::fs::write(other.path().join("notes"), "visible\n").unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    let private_arg = private.path().to_str().unwrap();
    // The same script, three ways: each line says whether an operation worked.
    let script = format!(
        "try() {{ if sh -c \"$1\" 2>/dev/null; then echo \"yes $2\"; else echo \"no $2\"; fi; }}; \
         try 'touch made-here' cwd-write; \
         try 'touch /tmp/scratch' tmp-write; \
         try 'touch {cache}/cached' allowed-write; \
         try 'touch {other}/planted' other-write; \
         try 'cat {other}/notes >/dev/null' other-read; \
         try 'cat {private}/data.csv | grep -q customer' denied-read",
        cache = cache.path().display(),
        other = other.path().display(),
        private = private.path().display(),
    );
    let plain = run_in(work.path(), work.path(), &["-q"], &script);
    assert_eq!(
        text(&plain.stdout),
        "yes cwd-write\nyes tmp-write\nno allowed-write\nno other-write\nyes other-read\nyes denied-read\n",
        "{plain:?}"
    );
    let shaped = run_in(
        work.path(),
        work.path(),
        &["-q", "--allow-write", cache_arg, "--deny-read", private_arg],
        &script,
    );
    assert_eq!(
        text(&shaped.stdout),
        "yes cwd-write\nyes tmp-write\nyes allowed-write\nno other-write\nyes other-read\nno denied-read\n",
        "{shaped:?}"
    );
    assert!(
        cache.path().join("cached").exists(),
        "the allowed write is on the host"
    );
    let read_only = run_in(work.path(), work.path(), &["-q", "--read-only"], &script);
    assert_eq!(
        text(&read_only.stdout),
        "no cwd-write\nyes tmp-write\nno allowed-write\nno other-write\nyes other-read\nyes denied-read\n",
        "{read_only:?}"
    );
    // The scratch file stayed in the sandbox's own /tmp; nothing was planted.
    assert!(!other.path().join("planted").exists());
    std::fs::remove_file(work.path().join("made-here")).unwrap();
    assert_eq!(listing(work.path()), Vec::<String>::new());
}

#[test]
fn allowing_localhost_reaches_the_hosts_loopback_through_the_proxy() {
    // srt's NO_PROXY sends "localhost" to the sandbox's own, empty loopback, so allowing it
    // silently does nothing there. Here the name goes to the proxy, which allows it.
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let work = tempfile::tempdir().unwrap();
    let script = format!("echo \"[$NO_PROXY]\"; curl -sS http://localhost:{port}/hello");
    let allowed = run_in(
        work.path(),
        work.path(),
        &["-q", "--allow", &format!("localhost:{port}")],
        &script,
    );
    assert_eq!(
        text(&allowed.stdout),
        "[]\nhello from origin\n",
        "{allowed:?}"
    );
    // Not allowed: the proxy's refusal, not a connection to the sandbox's own loopback.
    let denied = run_in(
        work.path(),
        work.path(),
        &["-q"],
        &format!("curl -s -i http://localhost:{port}/hello"),
    );
    let stdout = text(&denied.stdout);
    assert!(stdout.starts_with("HTTP/1.1 403"), "{denied:?}");
}

#[test]
fn a_working_directory_that_would_undo_the_sandbox_is_refused() {
    for cwd in ["/", "/tmp"] {
        let out = Command::new(egress_run())
            .args(["-q", "--", "true"])
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{cwd}: {out:?}");
        assert!(
            text(&out.stderr).starts_with(&format!(
                "egress-run: the working directory {cwd} cannot be bound into the sandbox"
            )),
            "{out:?}"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let out = run_in(
        work.path(),
        work.path(),
        &["-q", "--allow-write", "/"],
        "true",
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(
        text(&out.stderr).contains("--allow-write / cannot be bound"),
        "{out:?}"
    );
}

#[test]
fn signals_start_at_their_defaults_and_a_group_signal_reaches_the_command_once() {
    let work = tempfile::tempdir().unwrap();
    // bubblewrap runs with the terminal's signals ignored and (briefly) blocked; none of that
    // may reach the command.
    let out = run_in(
        work.path(),
        work.path(),
        &["-q"],
        "grep -E '^(SigBlk|SigIgn):' /proc/self/status",
    );
    let status = text(&out.stdout);
    let mask = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let hup_int_quit_term: u64 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14);
    assert_eq!(mask("SigBlk:"), 0, "{status}");
    assert_eq!(mask("SigIgn:") & hup_int_quit_term, 0, "{status}");
    // `timeout` signals its whole process group, egress-run and all it started: the command
    // gets SIGTERM once (passed on by egress-run), finishes its handler, and its code is kept.
    let script = "n=0; trap 'n=$((n+1)); echo \"TERM $n\"; sleep 0.3; echo done; exit 7' TERM; \
                  echo ready; while :; do sleep 0.05; done";
    let out = Command::new("timeout")
        .args(["--preserve-status", "-s", "TERM", "2"])
        .arg(egress_run())
        .args(["-q", "--", "sh", "-c", script])
        .current_dir(work.path())
        .env("HOME", work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "ready\nTERM 1\ndone\n", "{out:?}");
    assert_eq!(out.status.code(), Some(7), "{out:?}");
}
