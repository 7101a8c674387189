//! What must fail from inside: every way around the proxy (direct connections, DNS, UDP,
//! Unix, vsock and packet sockets, secrets, writes outside the allowed paths, git hooks, user
//! namespaces, ptrace, terminal injection, an address the host reaches), with positive controls.

use super::*;

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
            // Port 53 goes to egress-run's own DNS stub under capture, which answers from the
            // policy and forwards nothing (tests/clients/captured.rs); any other port is refused.
            "a UDP send",
            py("import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('192.0.2.1', 443))"),
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
        // The network egress-run's capture step prepared (see launcher/src/capture.rs).
        ("deleting the sandbox's default route", "ip route del default".into()),
        ("flushing the sandbox's nftables rules", "nft flush ruleset".into()),
        ("taking loopback down", "ip link set lo down".into()),
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
    // With capture (the default) and without.
    for flags in [&["--quiet"][..], &["--quiet", "--no-capture"]] {
        for (what, script) in &attempts {
            let out = run_in(
                work.path(),
                home.path(),
                flags,
                &format!("{script} 2>/dev/null"),
            );
            assert_ne!(
                out.status.code(),
                Some(0),
                "{what} succeeded ({flags:?}): {out:?}"
            );
        }
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
    // …the sandbox does not, and through the proxy only if the policy allows it: without
    // capture a direct connection has nowhere to go…
    let out = run_in(
        work.path(),
        no_home(),
        &["-q", "--no-capture"],
        &format!("curl -s --noproxy '*' --max-time 5 {url}"),
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "curl: could not connect: {out:?}"
    );
    // …with capture it reaches egress, which decides it (protocol transparent, named by its
    // address: the Host header is the address itself)…
    let out = run_in(
        work.path(),
        no_home(),
        &[],
        &format!("curl -sS --noproxy '*' --max-time 5 {url}"),
    );
    assert!(
        text(&out.stdout).starts_with(&format!("egress: blocked {} via transparent", other.addr)),
        "{out:?}"
    );
    assert!(
        text(&out.stderr).contains(&format!("blocked {} (not-allowlisted)", other.addr)),
        "{out:?}"
    );
    // …and lets it through when the policy allows the address.
    let out = run_in(
        work.path(),
        no_home(),
        &["-q", "--allow", &other.addr],
        &format!("curl -sS -o /dev/null -w '%{{http_code}}' --noproxy '*' --max-time 5 {url}"),
    );
    assert_eq!(text(&out.stdout), "200", "{out:?}");
    let out = run_in(
        work.path(),
        no_home(),
        &["-q"],
        &format!("curl -s -o /dev/null -w '%{{http_code}}' {url}"),
    );
    assert_eq!(text(&out.stdout), "403");
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
    let out = shell_in(work.path(), &script);
    let stdout = text(&out.stdout);
    let (outside, inside) = stdout.split_once("--\n").unwrap();
    assert!(outside.lines().any(|fd| fd == "7"), "the control: {stdout}");
    // ls's own directory descriptor is 3.
    assert_eq!(inside, "0\n1\n2\n3\n", "{out:?}");
}
