//! A run's life: exit codes and signals passed through, `kill -9`, clear errors before anything
//! runs (bwrap missing, user namespaces refused, a bad policy, a missing command).

use super::*;

#[test]
fn exit_codes_and_signals_pass_through() {
    let work = tempfile::tempdir().unwrap();
    let out = run_in(work.path(), no_home(), &["-q"], "exit 42");
    assert_eq!(out.status.code(), Some(42));
    let out = run_in(work.path(), no_home(), &["-q"], "kill -TERM $$");
    assert_eq!(out.status.code(), Some(128 + 15));
    // SIGTERM to egress-run reaches the command, which exits its own way.
    let mut child = spawn_until_ready(
        work.path(),
        "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        |_| {},
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

#[test]
fn after_kill_9_no_process_outlives_egress_run_and_nothing_is_left_on_disk() {
    let work = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // A token no other process has in its command line.
    let token = format!("egress-run-kill9-{}", std::process::id());
    let mut child = spawn_until_ready(
        work.path(),
        &format!("echo ready; exec sleep 300 # {token}"),
        |command| {
            command
                .env("XDG_RUNTIME_DIR", runtime.path())
                .env("TMPDIR", tmp.path());
        },
    );
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

#[test]
fn a_bad_policy_is_an_error_and_the_command_never_runs() {
    let work = tempfile::tempdir().unwrap();
    // The policy is checked while bubblewrap builds the sandbox: the command must still not run.
    let out = run_in(work.path(), no_home(), &["--allow", "*"], "touch ran");
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
        no_home(),
        &["--policy", policy.to_str().unwrap()],
        "touch ran",
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(text(&out.stderr).contains("bogus"), "{out:?}");
    assert!(!work.path().join("ran").exists());
}

#[test]
fn a_command_that_is_not_there_exits_127_as_in_a_shell() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(egress_run())
        .args(["-q", "--", "no-such-command-egress"])
        .current_dir(work.path())
        .env("HOME", no_home())
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
        .env("HOME", no_home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126), "{out:?}");
}

#[test]
fn signals_start_at_their_defaults_and_a_group_signal_reaches_the_command_once() {
    let work = tempfile::tempdir().unwrap();
    // bubblewrap runs with the terminal's signals ignored and (briefly) blocked; none of that
    // may reach the command.
    let out = run_in(
        work.path(),
        no_home(),
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
        .env("HOME", no_home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "ready\nTERM 1\ndone\n", "{out:?}");
    assert_eq!(out.status.code(), Some(7), "{out:?}");
}

#[test]
fn it_works_for_an_unprivileged_user_too() {
    // CI runs as root; people run egress-run as themselves, where bubblewrap has no privilege
    // and relies on unprivileged user namespaces. Run it as `nobody` then (as is, when the
    // suite already runs unprivileged).
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // A copy of the binary `nobody` can reach, wherever the build directory is.
    let exe = work.path().join("egress-run");
    std::fs::copy(egress_run(), &exe).unwrap();
    let root = rustix::process::getuid().is_root();
    let mut command = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    // Capture works unprivileged too: a direct connection reaches egress (which refuses it),
    // and the command can change neither the routes nor the rules.
    let script = format!(
        "id -u; grep CapEff /proc/self/status; curl -sS http://127.0.0.1:{port}/hello; \
         curl -s -o /dev/null -w '%{{http_code}}\\n' http://example.org/; \
         curl -s --noproxy '*' http://198.51.100.1/ | head -n 1; \
         ip route del default 2>/dev/null || echo routes kept; \
         nft flush ruleset 2>/dev/null || echo rules kept"
    );
    let out = command
        .args([
            "--allow",
            &format!("127.0.0.1:{port}"),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .current_dir(work.path())
        .env("HOME", no_home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let uid = if root {
        "65534".to_string()
    } else {
        rustix::process::getuid().as_raw().to_string()
    };
    assert_eq!(
        text(&out.stdout),
        format!(
            "{uid}\nCapEff:\t0000000000000000\nhello from origin\n403\n\
             egress: blocked 198.51.100.1:80 via transparent\nroutes kept\nrules kept\n"
        ),
        "{out:?}"
    );
    assert!(
        text(&out.stderr).contains(
            "egress-run: blocked 198.51.100.1:80 (not-allowlisted), example.org:80 (not-allowlisted)."
        ),
        "{out:?}"
    );
}

#[test]
fn signals_the_caller_ignores_stay_ignored_and_a_pid_namespace_is_no_obstacle() {
    let work = tempfile::tempdir().unwrap();
    // nohup's way: SIGHUP ignored by the caller is still ignored by the command.
    let script = format!(
        "trap '' HUP; exec {} -q -- grep '^SigIgn:' /proc/self/status",
        egress_run()
    );
    let out = shell_in(work.path(), &script);
    let line = text(&out.stdout);
    let ignored =
        u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(ignored & 1, 1, "SIGHUP still ignored: {out:?}");
    // Started inside a PID namespace (its process group leader outside it): it runs.
    let out = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            egress_run(),
            "-q",
            "--",
            "echo",
            "inside",
        ])
        .current_dir(work.path())
        .env("HOME", no_home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), text(&out.stdout).as_str()),
        (Some(0), "inside\n"),
        "{out:?}"
    );
}

#[test]
fn when_capture_cannot_be_set_up_it_is_said_once_and_required_capture_refuses_to_start() {
    let work = tempfile::tempdir().unwrap();
    // nftables missing: as on a host without it.
    let run = |flags: &[&str]| {
        Command::new(egress_run())
            .args(flags)
            .args(["--", "sh", "-c"])
            .arg("echo ran; curl -s --noproxy '*' --max-time 5 http://198.51.100.1/; echo curl $?")
            .current_dir(work.path())
            .env("HOME", no_home())
            .env("EGRESS_RUN_NFT", "/nonexistent/nft")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Said once, and the command runs with the proxy variables only: a direct connection has
    // nowhere to go (curl: could not connect).
    let out = run(&[]);
    assert_eq!(text(&out.stdout), "ran\ncurl 7\n", "{out:?}");
    let said = "egress-run: connections cannot be captured in the sandbox (EGRESS_RUN_NFT=/nonexistent/nft does not exist)";
    assert_eq!(text(&out.stderr).matches(said).count(), 1, "{out:?}");
    // Required: it refuses to start, and the command never runs.
    let out = run(&["--require-capture"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert_eq!(text(&out.stdout), "", "{out:?}");
    assert!(
        text(&out.stderr).contains("--require-capture: connections cannot be captured"),
        "{out:?}"
    );
    // Turned off: nothing said, nothing tried.
    let out = run(&["--no-capture"]);
    assert_eq!(text(&out.stdout), "ran\ncurl 7\n", "{out:?}");
    assert_eq!(text(&out.stderr), "", "{out:?}");
}

#[test]
fn twenty_concurrent_captured_runs_each_reach_egress_and_leave_the_host_as_it_was() {
    let host_state = || {
        let rules = Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        let routes = Command::new("ip").args(["route"]).output().unwrap();
        let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
        (
            text(&rules.stdout),
            text(&routes.stdout),
            text(&links.stdout),
        )
    };
    let before = host_state();
    let work = tempfile::tempdir().unwrap();
    let runs: Vec<Child> = (0..20)
        .map(|n| {
            Command::new(egress_run())
                .args(["--", "sh", "-c"])
                .arg(format!(
                    "curl -s --noproxy '*' --max-time 10 http://198.51.100.{}/ | head -n 1",
                    n + 1
                ))
                .current_dir(work.path())
                .env("HOME", no_home())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (n, run) in runs.into_iter().enumerate() {
        let out = run.wait_with_output().unwrap();
        let ip = format!("198.51.100.{}", n + 1);
        assert_eq!(
            text(&out.stdout),
            format!("egress: blocked {ip}:80 via transparent\n"),
            "{out:?}"
        );
        assert!(
            text(&out.stderr).contains(&format!("blocked {ip}:80 (not-allowlisted)")),
            "{out:?}"
        );
    }
    // A run killed with -9 mid-command, too.
    let mut killed = spawn_until_ready(work.path(), "echo ready; sleep 30", |_| {});
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert_eq!(host_state(), before, "the host's rules, routes and links");
}
