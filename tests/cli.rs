//! The command line: `check`, `default-policy`, the embedded default, startup errors, and
//! graceful shutdown.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use support::origin::Servers;
use support::{curl, header, message, proxy_binary, write_file, Proxy, WAIT};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(proxy_binary()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_summarises_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "ok.yaml",
        "mode: report\nallow: [github.com, .crates.io]\ndeny: [evil.example.com]\n",
    );
    let (code, stdout, stderr) = run(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok.yaml: OK"), "{stdout}");
    assert!(stdout.contains("mode:     report"), "{stdout}");
    assert!(
        stdout.contains("allow:    2 entries: github.com, .crates.io"),
        "{stdout}"
    );
    assert!(stdout.lines().count() <= 24, "fits on one screen");
}

#[test]
fn the_corporate_examples_check_and_name_their_files_and_service() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/corporate");
    let (code, stdout, stderr) = run(&["check", &format!("{root}/kerberos.yaml")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "corp = http://squid.corp.example:3128, Kerberos for HTTP@squid.corp.example \
             from keytab /etc/egress/egress.keytab"
        ),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&["check", &format!("{root}/tls.yaml")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "corp = https://squid.corp.example:3129, TLS trusting system roots + \
             /etc/egress/corp-ca.pem, client certificate /etc/egress/egress.pem"
        ),
        "{stdout}"
    );
}

#[test]
fn check_names_file_line_column_and_path_of_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "bad.yaml",
        "mode: enforce\nallow:\n  - github.com\n  - \"*.com\"\n",
    );
    let (code, stdout, stderr) = run(&["check", file.to_str().unwrap()]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.contains("bad.yaml:4:5"), "{stderr}");
    assert!(stderr.contains("allow[1]"), "{stderr}");
    assert!(stderr.contains("hint"), "{stderr}");

    let file = write_file(
        dir.path(),
        "typo.yaml",
        "allow: [github.com]\ntimeouts:\n  dail: 5s\n",
    );
    let (code, _, stderr) = run(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("typo.yaml:3:3"), "{stderr}");
    assert!(stderr.contains("dail"), "{stderr}");
}

#[test]
fn default_policy_is_printed_and_valid() {
    let (code, yaml, _) = run(&["default-policy"]);
    assert_eq!(code, 0);
    assert!(
        yaml.contains("github.com") && yaml.contains("mode: enforce"),
        "{yaml}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "default.yaml", &yaml);
    let (code, stdout, stderr) = run(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("mode:     enforce"));
}

#[test]
fn the_embedded_default_runs_and_denies_what_it_does_not_list() {
    let proxy = Proxy::start_args(&["--listen", "127.0.0.1:0"]);
    let event = proxy.wait_for_log("the policy line", |v| message(v) == "policy in force");
    assert_eq!(event["source"], "<embedded default>");
    assert_eq!(event["mode"], "enforce");
    assert!(event["allow"].as_u64().unwrap() > 10, "{event}");
    let r = curl(&["-x", &proxy.url(), "-D", "-", "http://example.org/"]);
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("not-allowlisted"),
        "{r:?}"
    );
}

#[test]
fn a_bad_config_at_startup_exits_1_with_the_location() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "bad.yaml", "listen: 127.0.0.1:0\nallow: 5\n");
    let (code, _, stderr) = run(&["--config", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("bad.yaml:2:8"), "{stderr}");
}

#[test]
fn sigterm_stops_accepting_and_drains_open_tunnels_then_exits_0() {
    let servers = Servers::new();
    let echo = servers.echo();
    let target = format!("127.0.0.1:{}", echo.port());
    let mut proxy = Proxy::start(&format!(
        "allow: [\"{target}\"]\ntimeouts: {{ shutdown_grace: 20s }}\n"
    ));
    let mut tunnel = TcpStream::connect(proxy.addr).unwrap();
    tunnel.set_read_timeout(Some(WAIT)).unwrap();
    write!(tunnel, "CONNECT {target} HTTP/1.1\r\n\r\n").unwrap();
    let mut established = [0u8; 39];
    tunnel.read_exact(&mut established).unwrap();

    proxy.signal("TERM");
    proxy.wait_for_log("draining", |v| message(v) == "stopped accepting; draining");
    assert!(
        TcpStream::connect(proxy.addr).is_err(),
        "no longer accepting"
    );
    // The open tunnel still carries bytes during the grace period.
    tunnel.write_all(b"still here").unwrap();
    let mut back = [0u8; 10];
    tunnel.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here");
    drop(tunnel);
    assert_eq!(proxy.wait_exit(), Some(0));
}

/// The runtime's worker threads at start-up, as the log says (logged before it listens).
fn workers_of(proxy: &Proxy) -> (u64, String) {
    let logs = proxy.logs();
    let event = logs
        .iter()
        .find(|v| message(v) == "runtime started")
        .unwrap_or_else(|| panic!("no runtime line in {}", proxy.log_text()));
    (
        event["workers"].as_u64().unwrap(),
        event["from"].as_str().unwrap().to_string(),
    )
}

/// Threads of `pid` named `egress-worker`: the runtime's workers (and its blocking pool's
/// threads, named alike).
fn runtime_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter(|task| {
            let comm = task.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.starts_with("egress-worker"))
        })
        .count()
}

#[test]
fn workers_follow_the_cpus_the_process_may_use_unless_fixed() {
    let policy = "listen: 127.0.0.1:0\nallow: []\n";
    // Pinned to one CPU (as `taskset`, a cpuset or a container's affinity would): one worker.
    let pinned = Proxy::start_wrapped(policy, &["taskset", "-c", "0"]);
    assert_eq!(workers_of(&pinned), (1, "available CPUs".to_string()));
    assert!(runtime_threads(pinned.pid()) >= 1);
    // Fixed: the setting wins over the affinity.
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "p.yaml", policy);
    let mut command = Command::new("taskset");
    command
        .args(["-c", "0", proxy_binary(), "--config"])
        .arg(&file)
        .args(["--log-format", "json", "--workers", "3"]);
    let fixed = Proxy::spawn(command, dir);
    assert_eq!(workers_of(&fixed), (3, "--workers".to_string()));
    assert!(runtime_threads(fixed.pid()) >= 3);
    // Unpinned: every CPU this test may use.
    let free = Proxy::start_with(policy, &[]);
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(workers_of(&free), (cpus, "available CPUs".to_string()));
    // Zero is no count.
    let (code, _, stderr) = run(&["--workers", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--workers"), "{stderr}");
}
