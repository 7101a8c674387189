//! The filesystem a command sees: `--read-only`, `--allow-write`, `--deny-read`, working
//! directories that are refused, and no trace left in the tree by concurrent runs.

use super::*;

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
    let plain = run_in(work.path(), no_home(), &["-q"], &script);
    assert_eq!(
        text(&plain.stdout),
        "yes cwd-write\nyes tmp-write\nno allowed-write\nno other-write\nyes other-read\nyes denied-read\n",
        "{plain:?}"
    );
    let shaped = run_in(
        work.path(),
        no_home(),
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
    let read_only = run_in(work.path(), no_home(), &["-q", "--read-only"], &script);
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
        no_home(),
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
                .env("HOME", no_home())
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
