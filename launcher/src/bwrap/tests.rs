use super::*;

fn plan() -> Plan {
    Plan {
        cwd: "/home/dev/project".into(),
        allow_write: vec!["/home/dev/.cache/pip".into()],
        deny_read: vec!["/srv/customer-data".into()],
        deny_write: vec!["/home/dev/project/Makefile".into()],
        read_only: false,
        self_exe: "/usr/local/bin/egress-run".into(),
        secrets: vec!["/home/dev/project/.env".into()],
        protected: vec![
            "/home/dev/.bashrc".into(),
            "/home/dev/project/.git/hooks".into(),
        ],
        capture: false,
        resolv_conf: None,
        guarded: vec![
            Bind::Pin("/home/dev/project/sub/.git".into()),
            Bind::ReadOnly("/home/dev/project/sub/.git/config".into()),
        ],
    }
}

fn text(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_command_line_for_a_typical_project() {
    assert_eq!(
        text(&args(&plan())),
        [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/run",
            "--bind",
            "/home/dev/project",
            "/home/dev/project",
            "--bind-try",
            "/home/dev/.cache/pip",
            "/home/dev/.cache/pip",
            // /usr/local/bin/egress-run is visible in place: no mount for it.
            // What `protect` guards, before the masks so that a mask always wins.
            "--bind-try",
            "/home/dev/project/sub/.git",
            "/home/dev/project/sub/.git",
            "--ro-bind-try",
            "/home/dev/project/sub/.git/config",
            "/home/dev/project/sub/.git/config",
            // Not directories on the test machine: masked by /dev/null.
            "--ro-bind-try",
            "/dev/null",
            "/home/dev/project/.env",
            "--ro-bind-try",
            "/dev/null",
            "/srv/customer-data",
            // ~/.bashrc is not under a writable path: the read-only root protects it already.
            "--ro-bind-try",
            "/home/dev/project/.git/hooks",
            "/home/dev/project/.git/hooks",
            "--ro-bind-try",
            "/home/dev/project/Makefile",
            "/home/dev/project/Makefile",
            "--chdir",
            "/home/dev/project",
            "--",
        ]
    );
}

#[test]
fn read_only_leaves_nothing_writable_but_tmp() {
    let mut plan = plan();
    plan.read_only = true;
    let args = text(&args(&plan));
    let binds: Vec<&String> = args
        .windows(2)
        .filter(|w| w[0] == "--bind" || w[0] == "--bind-try")
        .map(|w| &w[1])
        .collect();
    assert_eq!(binds, Vec::<&String>::new(), "nothing is bound writable");
    // The working directory is there, read-only (it may lie under the private /tmp).
    let at = args.iter().position(|a| a == "/home/dev/project").unwrap();
    assert_eq!(
        args[at - 1..=at + 1],
        ["--ro-bind", "/home/dev/project", "/home/dev/project"]
    );
    // With nothing writable, nothing needs protecting again.
    assert!(!args.iter().any(|a| a.ends_with(".git/hooks")));
}

#[test]
fn protected_files_under_a_writable_path_are_bound_read_only() {
    // Working in the home directory: the rc files are inside the writable bind.
    let mut plan = plan();
    plan.cwd = "/home/dev".into();
    plan.protected = vec!["/home/dev/.bashrc".into(), "/etc/profile".into()];
    plan.deny_write.clear();
    plan.guarded.clear();
    let args = text(&args(&plan));
    let protected: Vec<&String> = args
        .windows(3)
        .filter(|w| w[0] == "--ro-bind-try" && w[1] == w[2])
        .map(|w| &w[1])
        .collect();
    assert_eq!(protected, ["/home/dev/.bashrc"]);
}

#[test]
fn a_secret_directory_is_masked_by_an_empty_tmpfs() {
    let dir = tempfile::tempdir().unwrap();
    let ssh = dir.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    let mut plan = plan();
    plan.secrets = vec![ssh.clone()];
    plan.deny_read.clear();
    let args = text(&args(&plan));
    let at = args
        .iter()
        .position(|a| a == ssh.to_str().unwrap())
        .unwrap();
    assert_eq!(args[at - 1], "--tmpfs");
}

#[test]
fn only_existing_protected_paths_are_listed_so_none_is_created() {
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".bashrc"), "").unwrap();
    std::fs::create_dir_all(cwd.path().join(".git/hooks")).unwrap();
    std::fs::write(cwd.path().join(".git/config"), "").unwrap();
    // A protected file that is a link into the tree: its target is protected too.
    let real_profile = cwd.path().join("dotfiles-profile");
    std::fs::write(&real_profile, "").unwrap();
    std::os::unix::fs::symlink(&real_profile, home.path().join(".profile")).unwrap();
    let protected = existing_protected_paths(&[home.path().to_path_buf()]);
    assert_eq!(
        protected,
        [
            home.path().join(".bashrc"),
            home.path().join(".profile"),
            real_profile.canonicalize().unwrap(),
        ]
    );
}

#[test]
fn egress_run_is_mounted_only_where_the_sandbox_would_not_see_it() {
    let mut plan = plan();
    assert_eq!(self_inside(&plan), Path::new("/usr/local/bin/egress-run"));
    for hidden in [
        "/tmp/build/egress-run",
        "/run/user/1000/egress-run",
        "/srv/customer-data/bin/egress-run",
        "/opt/my tools/egress-run",
    ] {
        plan.self_exe = hidden.into();
        assert_eq!(self_inside(&plan), Path::new(SELF_MOUNT), "{hidden}");
        let args = text(&args(&plan));
        let at = args.iter().position(|a| a == SELF_MOUNT).unwrap();
        assert_eq!(args[at - 2..=at], ["--ro-bind", hidden, SELF_MOUNT]);
    }
}

#[test]
fn binds_that_would_undo_the_sandboxs_own_mounts_are_refused() {
    for refused in [
        "/",
        "/tmp",
        "/run",
        "/dev",
        "/proc",
        "/proc/self",
        "/dev/shm",
        "/sys/fs",
    ] {
        let error = check_bindable(Path::new(refused), "the working directory").unwrap_err();
        assert!(
            error.starts_with(&format!("the working directory {refused} cannot be bound")),
            "{error}"
        );
    }
    for fine in [
        "/tmp/build",
        "/run/user/1000/project",
        "/home/dev",
        "/devices",
        "/var/tmp",
    ] {
        assert_eq!(check_bindable(Path::new(fine), "x"), Ok(()), "{fine}");
    }
}

#[test]
fn with_capture_the_sandbox_shares_the_prepared_network_and_gets_the_stubs_resolv_conf() {
    let mut captured = plan();
    captured.capture = true;
    captured.resolv_conf = Some((7, "/run/resolvconf/resolv.conf".into()));
    let out = text(&args(&captured));
    assert!(!out.contains(&"--unshare-net".to_string()));
    let end = out.len();
    assert_eq!(
        out[end - 6..],
        [
            "--ro-bind-data",
            "7",
            "/run/resolvconf/resolv.conf",
            "--chdir",
            "/home/dev/project",
            "--"
        ]
    );
    // Without capture the descriptor is not used, and the sandbox's network is its own.
    captured.capture = false;
    let out = text(&args(&captured));
    assert!(out.contains(&"--unshare-net".to_string()));
    assert!(!out.contains(&"--ro-bind-data".to_string()));
}
