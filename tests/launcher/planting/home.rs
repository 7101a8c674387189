//! The home directory: refused as a writable root unless `--allow-write-home`, and then
//! nothing planted there runs at the next login, shell, git or python command, ssh login or
//! service start; and programs planted in a directory on `PATH`.

use super::*;

#[test]
fn a_home_directory_is_no_writable_root_unless_asked_for() {
    let world = World::new();
    for (cwd, args) in [("~", &[][..]), (".", &["--allow-write", "~"][..])] {
        let home = world.home.display().to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace('~', &home)).collect();
        let out = Command::new(egress_run())
            .args(&args)
            .args(["--", "sh", "-c", "touch made"])
            .current_dir(world.path(cwd))
            .env("HOME", &world.home)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{out:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("is your home directory"), "{stderr}");
        assert!(stderr.contains("--allow-write-home"), "{stderr}");
        assert!(
            !world.path(cwd).join("made").exists(),
            "the command never ran"
        );
    }
    // Nor anything above it.
    let users = world.path("users");
    std::fs::create_dir_all(users.join("me")).unwrap();
    let out = Command::new(egress_run())
        .args(["--", "true"])
        .current_dir(&users)
        .env("HOME", users.join("me"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(
        text(&out.stderr).contains("holds your home directory"),
        "{out:?}"
    );
}

#[test]
fn with_allow_write_home_nothing_planted_there_runs_at_the_next_login_shell_git_or_python() {
    let home = |name, setup, script, then| Attack {
        name,
        setup,
        cwd: "~",
        args: &["--allow-write-home"],
        script,
        then,
    };
    // For session files with no runner here: the session would find the file at its path.
    fn exists(w: &World, path: &str) {
        if w.path(path).exists() {
            std::fs::write(&w.marker, "").unwrap();
        }
    }
    let attacks = [
        home(".bash_profile", "true", "echo 'touch MARKER' > .bash_profile", |w: &World| {
            w.host("bash", &["-l", "-c", "true"], "~", None)
        }),
        home(
            "an existing .bashrc, appended to or replaced",
            "echo '# the user own' > HOME/.bashrc",
            "echo 'touch MARKER' >> .bashrc; mv .bashrc .old; echo 'touch MARKER' > .bashrc",
            |w: &World| w.host("bash", &["-i", "-c", "true"], "~", None),
        ),
        home(".zshenv", "true", "echo 'touch MARKER' > .zshenv", |w: &World| {
            w.host("zsh", &["-c", "true"], "~", None)
        }),
        home(
            ".gitconfig",
            "git init -q repo",
            "printf '[core]\\n\\tfsmonitor = \"touch MARKER; false\"\\n' > .gitconfig",
            |w: &World| w.git("repo"),
        ),
        home(
            ".config/git/config",
            "git init -q repo",
            "mkdir -p .config/git && printf '[core]\\n\\tfsmonitor = \"touch MARKER; false\"\\n' > .config/git/config",
            |w: &World| w.git("repo"),
        ),
        home(
            "a .pth file in Python's user site-packages",
            "true",
            "d=$(python3 -c 'import site; print(site.getusersitepackages())') && mkdir -p \"$d\" \
             && echo 'import os; os.system(\"touch MARKER\")' > \"$d/evil.pth\"",
            |w: &World| {
            w.host("python3", &["-c", ""], "~", None)
        }),
        home(
            "a systemd user unit",
            "true",
            "mkdir -p .config/systemd/user/default.target.wants \
             && printf '[Service]\\nExecStart=/bin/touch MARKER\\n' > .config/systemd/user/evil.service \
             && ln -s ../evil.service .config/systemd/user/default.target.wants/evil.service",
            |w: &World| {
                // systemd's own search path for user units, as the user's manager would use it.
                let out = Command::new("systemd-analyze")
                    .args(["--user", "unit-paths"])
                    .env_clear()
                    .env("HOME", &w.home)
                    .output()
                    .unwrap();
                let found = text(&out.stdout)
                    .lines()
                    .any(|dir| Path::new(dir).join("evil.service").exists());
                if found {
                    std::fs::write(&w.marker, "").unwrap();
                }
            },
        ),
        home(
            "desktop autostart",
            "true",
            "mkdir -p .config/autostart && printf '[Desktop Entry]\\nExec=touch MARKER\\n' > .config/autostart/e.desktop",
            |w: &World| exists(w, "~/.config/autostart/e.desktop"),
        ),
        home(".pam_environment", "true", "echo 'LD_PRELOAD=/tmp/evil.so' > .pam_environment", |w: &World| {
            exists(w, "~/.pam_environment")
        }),
        home(".xprofile", "true", "echo 'touch MARKER' > .xprofile", |w: &World| {
            exists(w, "~/.xprofile")
        }),
    ];
    for attack in attacks {
        let out = attempt(&attack);
        let stderr = text(&out.stderr);
        assert!(stderr.contains("WARNING: --allow-write-home"), "{stderr}");
    }
}

#[test]
fn a_key_planted_in_authorized_keys_opens_no_ssh_login() {
    attempt(&Attack {
        name: ".ssh/authorized_keys",
        // The attacker's key pair, where the command can read it.
        setup: "ssh-keygen -q -t ed25519 -N '' -f HOME/attacker",
        cwd: "~",
        args: &["--allow-write-home"],
        script: "mkdir -p .ssh && cat attacker.pub > .ssh/authorized_keys",
        then: |w| {
            // A real sshd reading the home's authorized_keys; a login runs the command given.
            let dir = tempfile::tempdir().unwrap();
            let host_key = dir.path().join("host_key");
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key)
                .status()
                .unwrap();
            assert!(ok.success());
            std::fs::create_dir_all("/run/sshd").unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1:{port}\nHostKey {}\nAuthorizedKeysFile {}/.ssh/authorized_keys\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile none\n",
                    host_key.display(),
                    w.home.display()
                ),
            )
            .unwrap();
            let _server = Server::start(
                Command::new("/usr/sbin/sshd")
                    .args(["-D", "-e", "-f"])
                    .arg(&config),
                port,
                "sshd did not start",
            );
            let user = text(&Command::new("id").arg("-un").output().unwrap().stdout);
            let _ = Command::new("ssh")
                .arg("-i")
                .arg(w.home.join("attacker"))
                .args(["-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no"])
                .args([
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-p",
                ])
                .arg(port.to_string())
                .arg(format!("{}@127.0.0.1", user.trim()))
                .arg(format!("touch {}", w.marker.display()))
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
        },
    });
}

#[test]
fn programs_planted_in_a_directory_on_path_do_not_run() {
    for (bin, setup) in [("bin", "mkdir -p project/bin"), ("tools", "mkdir project")] {
        let world = World::new();
        world.setup(".", setup);
        let dir = world.path("project").join(bin);
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
        let out = Command::new(egress_run())
            .args(["-q", "--", "sh", "-c"])
            .arg(format!(
                "mkdir -p {bin}; printf '#!/bin/sh\\ntouch {}\\n' > {bin}/git; chmod +x {bin}/git",
                world.marker.display()
            ))
            .current_dir(world.path("project"))
            .env("HOME", &world.home)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        world.host("git", &["--version"], "project", Some(&path));
        assert!(!world.ran(), "{bin}: {out:?}");
        // The control: the same file planted from outside runs.
        world.setup(
            "project",
            &format!(
                "mkdir -p {bin}; printf '#!/bin/sh\\ntouch {}\\n' > {bin}/git; chmod +x {bin}/git",
                world.marker.display()
            ),
        );
        world.host("git", &["--version"], "project", Some(&path));
        assert!(world.ran(), "{bin}: the control");
    }
}
