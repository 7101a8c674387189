//! Nothing the command writes may make the host run code later (issue 12, item 2): each attack
//! runs for real inside egress-run, then the host does what a user does next — `git status` and
//! a commit, `bash -l`, `zsh`, `python3 -c ''`, an ssh login, systemd's unit search — and the
//! planted command (which would create a marker file outside the sandbox's reach) must not run.
//! Each attack is also run without the sandbox, where it must work: the positive control that
//! shows the test can fail.

mod home;

use std::path::PathBuf;

use super::*;

/// One run's world: `base` (the user's projects), `home` (their home directory, elsewhere) and
/// the marker the planted command would create (elsewhere again: never writable inside).
struct World {
    base: PathBuf,
    home: PathBuf,
    marker: PathBuf,
    _dirs: [tempfile::TempDir; 3],
}

impl World {
    fn new() -> World {
        let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
        let [base, home, marks] = dirs.each_ref().map(|d| d.path().canonicalize().unwrap());
        World {
            base,
            home,
            marker: marks.join("ran"),
            _dirs: dirs,
        }
    }

    /// `~` is the home directory, anything else lies under `base`.
    fn path(&self, at: &str) -> PathBuf {
        match at.strip_prefix('~') {
            Some(rest) => self.home.join(rest.trim_start_matches('/')),
            None => self.base.join(at),
        }
    }

    fn ran(&self) -> bool {
        self.marker.exists()
    }

    /// Runs `script` with sh in `at`, as the user, to set things up (or, in a control, to attack
    /// without the sandbox).
    fn sh(&self, at: &str, script: &str) -> Output {
        let dir = self.path(at);
        std::fs::create_dir_all(&dir).unwrap();
        Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn setup(&self, at: &str, script: &str) {
        let out = self.sh(at, script);
        assert!(out.status.success(), "setup {script}: {out:?}");
    }

    /// The host's programs, with a plain environment: `HOME`, and `PATH` as given.
    fn host(&self, program: &str, args: &[&str], at: &str, path: Option<&str>) {
        let default_path = std::env::var("PATH").unwrap();
        let _ = Command::new(program)
            .args(args)
            .current_dir(self.path(at))
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", path.unwrap_or(&default_path))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
    }

    /// What a user does next in a repository: `git status` (runs core.fsmonitor) and a commit
    /// (runs hooks).
    fn git(&self, at: &str) {
        self.host("git", &["status"], at, None);
        let commit = [
            "-c",
            "user.name=u",
            "-c",
            "user.email=u@example.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "next",
        ];
        self.host("git", &commit, at, None);
    }
}

/// An attack: the user's state before (`setup`, run in `base`), where egress-run starts and
/// with which options, the script the command runs (`MARKER` is the marker's path), and what
/// the host does next (`then`).
struct Attack {
    name: &'static str,
    setup: &'static str,
    cwd: &'static str,
    args: &'static [&'static str],
    script: &'static str,
    then: fn(&World),
}

/// Runs `attack` without the sandbox (the planted code must run: the control) and inside it
/// (it must not); returns egress-run's output.
fn attempt(attack: &Attack) -> Output {
    for sandboxed in [false, true] {
        let world = World::new();
        let home = world.home.display().to_string();
        world.setup(".", &attack.setup.replace("HOME", &home));
        let script = attack
            .script
            .replace("FSMONITOR", FSMONITOR)
            .replace("MARKER", &world.marker.display().to_string());
        let out = if sandboxed {
            let cwd = world.path(attack.cwd);
            std::fs::create_dir_all(&cwd).unwrap();
            Command::new(egress_run())
                .arg("-q")
                .args(attack.args)
                .args(["--", "sh", "-c", &script])
                .current_dir(cwd)
                .env("HOME", &world.home)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .stdin(Stdio::null())
                .output()
                .unwrap()
        } else {
            world.sh(attack.cwd, &script)
        };
        (attack.then)(&world);
        if !sandboxed {
            assert!(
                world.ran(),
                "{}: the control did not run: {out:?}",
                attack.name
            );
        } else {
            assert!(
                !world.ran(),
                "{}: the planted code ran on the host: {out:?}",
                attack.name
            );
            return out;
        }
    }
    unreachable!()
}

const FSMONITOR: &str = r#"printf '[core]\n\tfsmonitor = "touch MARKER; false"\n'"#;

#[test]
fn git_runs_nothing_the_command_planted_in_any_repository_it_could_write() {
    let attacks = [
        Attack {
            name: "renaming .git away and copying it back",
            setup: "git init -q repo",
            cwd: "repo",
            args: &[],
            script: "cp -r .git .copy; mv .git .orig; mv .copy .git; FSMONITOR >> .git/config",
            then: |w| w.git("repo"),
        },
        Attack {
            name: "a hook, and core.hooksPath to a directory of hooks",
            setup: "git init -q repo",
            cwd: "repo",
            args: &[],
            script: "printf '#!/bin/sh\\ntouch MARKER\\n' > hook; chmod +x hook; \
                     cp hook .git/hooks/pre-commit; \
                     git config core.hooksPath .evil; mkdir .evil; cp hook .evil/pre-commit",
            then: |w| w.git("repo"),
        },
        Attack {
            name: "a new .git in a subdirectory, started below the repository's top",
            setup: "git init -q repo && mkdir repo/sub",
            cwd: "repo/sub",
            args: &[],
            script: "git init -q . && git config core.fsmonitor 'touch MARKER; false'",
            then: |w| w.git("repo/sub"),
        },
        Attack {
            name: "a .git file pointing to a git directory of the command's",
            setup: "mkdir plain",
            cwd: "plain",
            args: &[],
            script: "git init -q --bare .hidden && git --git-dir=.hidden config core.bare false \
                     && FSMONITOR >> .hidden/config && echo 'gitdir: .hidden' > .git",
            then: |w| w.git("plain"),
        },
        Attack {
            name: "a .git file to a worktree git directory whose commondir points out",
            setup: "mkdir plain",
            cwd: "plain",
            args: &[],
            script: "git init -q --bare common && git --git-dir=common config core.bare false \
                     && FSMONITOR >> common/config && mkdir gd && cp common/HEAD gd/ \
                     && echo ../common > gd/commondir && echo 'gitdir: gd' > .git",
            then: |w| w.git("plain"),
        },
        Attack {
            name: "--allow-write .. reaching a sibling repository",
            setup: "git init -q a && git init -q b",
            cwd: "a",
            args: &["--allow-write", ".."],
            script: "FSMONITOR >> ../b/.git/config; \
                     mv ../b/.git ../b/.orig && cp -r ../b/.orig ../b/.git && FSMONITOR >> ../b/.git/config; \
                     mv ../b ../b.orig && mkdir ../b && cp -r ../b.orig/.git ../b/.git && FSMONITOR >> ../b/.git/config",
            then: |w| w.git("b"),
        },
        Attack {
            name: "a repository deeper below an --allow-write root than start-up looks",
            setup: "git init -q a && git init -q x/y/c",
            cwd: "a",
            args: &["--allow-write", ".."],
            script: "FSMONITOR >> ../x/y/c/.git/config",
            then: |w| w.git("x/y/c"),
        },
        Attack {
            name: "a file the repository's config includes, existing",
            setup: "git init -q repo && git -C repo config include.path ../project.gitconfig \
                    && echo '[user]' > repo/project.gitconfig",
            cwd: "repo",
            args: &[],
            script: "FSMONITOR >> project.gitconfig",
            then: |w| w.git("repo"),
        },
        Attack {
            name: "a file the repository's config includes, not there yet",
            setup: "git init -q repo && git -C repo config include.path ../project.gitconfig",
            cwd: "repo",
            args: &[],
            script: "FSMONITOR > project.gitconfig",
            then: |w| w.git("repo"),
        },
        Attack {
            name: "config.worktree, read since the user turned worktreeConfig on",
            setup: "git init -q repo && git -C repo config extensions.worktreeConfig true",
            cwd: "repo",
            args: &[],
            script: "FSMONITOR > .git/config.worktree",
            then: |w| w.git("repo"),
        },
        Attack {
            name: "hooks in a repository that had no hooks directory",
            setup: "git init -q repo && rm -r repo/.git/hooks",
            cwd: "repo",
            args: &[],
            script: "mkdir .git/hooks && printf '#!/bin/sh\\ntouch MARKER\\n' > .git/hooks/pre-commit \
                     && chmod +x .git/hooks/pre-commit",
            then: |w| w.git("repo"),
        },
        Attack {
            name: "the hooks directory the repository's config names (husky)",
            setup: "git init -q repo && git -C repo config core.hooksPath .husky && mkdir repo/.husky \
                    && printf '#!/bin/sh\\ntrue\\n' > repo/.husky/pre-commit && chmod +x repo/.husky/pre-commit",
            cwd: "repo",
            args: &[],
            script: "printf 'touch MARKER\\n' >> .husky/pre-commit; \
                     mv .husky .h; mkdir .husky; printf '#!/bin/sh\\ntouch MARKER\\n' > .husky/pre-commit; \
                     chmod +x .husky/pre-commit",
            then: |w| w.git("repo"),
        },
        Attack {
            name: "the hooks directory the user's global config names relatively",
            setup: "git init -q repo && printf '[core]\\n\\thooksPath = .githooks\\n' > HOME/.gitconfig",
            cwd: "repo",
            args: &[],
            script: "mkdir .githooks && printf '#!/bin/sh\\ntouch MARKER\\n' > .githooks/pre-commit \
                     && chmod +x .githooks/pre-commit",
            then: |w| w.git("repo"),
        },
    ];
    for attack in attacks {
        attempt(&attack);
    }
}

#[test]
fn what_git_legitimately_does_inside_still_works_and_is_left_alone() {
    let world = World::new();
    world.setup(
        ".",
        "git init -q repo && git init -q --bare srv.git && git -C repo config user.name u \
         && git -C repo config user.email u@example.invalid",
    );
    let out = Command::new(egress_run())
        .args(["-q", "--allow-write", ".."])
        .args([
            "--",
            "sh",
            "-c",
            "set -e; echo x > file; git add file; git commit -q -m one; git checkout -q -b topic; \
             git gc -q; git init -q sub/new; git clone -q ../srv.git ../copy 2>/dev/null; \
             git push -q ../srv.git topic; exit 7",
        ])
        .current_dir(world.path("repo"))
        .env("HOME", &world.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(text(&out.stderr), "", "nothing to report");
    assert!(world.path("repo/sub/new/.git/config").exists());
    assert!(world.path("copy/.git/config").exists());
}

#[test]
fn after_kill_9_of_egress_run_the_guard_still_moves_what_was_planted_aside() {
    for (cwd, args, plant, then) in [
        (
            "repo/sub",
            &[][..],
            "git init -q . && git config core.fsmonitor 'touch MARKER; false'",
            (|w: &World| w.git("repo/sub")) as fn(&World),
        ),
        (
            "~",
            &["--allow-write-home"][..],
            "echo 'touch MARKER' > .bash_profile",
            |w: &World| w.host("bash", &["-l", "-c", "true"], "~", None),
        ),
    ] {
        let world = World::new();
        world.setup(".", "git init -q repo && mkdir repo/sub");
        let plant = plant.replace("MARKER", &world.marker.display().to_string());
        let mut child = Command::new(egress_run())
            .arg("-q")
            .args(args)
            .args([
                "--",
                "sh",
                "-c",
                &format!("{plant} && echo ready; exec sleep 300"),
            ])
            .current_dir(world.path(cwd))
            .env("HOME", &world.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "ready\n", "{cwd}");
        let mut stderr = child.stderr.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // The guard holds egress-run's stderr until it is done: read to its end.
        let mut report = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut report).unwrap();
        assert!(report.contains("Moved aside, not deleted"), "{report}");
        then(&world);
        assert!(!world.ran(), "{cwd}: {report}");
    }
}

#[test]
fn deny_read_of_a_missing_path_creates_nothing_and_is_no_error() {
    let work = tempfile::tempdir().unwrap();
    for missing in [
        work.path().join("not-there-yet"),
        PathBuf::from("/usr/share/egress-run-no-such-file"),
    ] {
        let out = run_in(
            work.path(),
            no_home(),
            &["--deny-read", missing.to_str().unwrap()],
            "true",
        );
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(
            text(&out.stderr).contains(&format!(
                "--deny-read {}: no such file or directory, nothing to hide",
                missing.display()
            )),
            "{out:?}"
        );
        assert!(!missing.exists(), "nothing was created");
    }
    assert_eq!(listing(work.path()), Vec::<String>::new());
}

#[test]
fn directories_made_unlistable_or_unwritable_hide_nothing_from_an_unprivileged_user() {
    // Root reads and renames anything; people run egress-run as themselves, where a command
    // can make a directory unlistable (git still reaches what is in it) or keep the check from
    // renaming in it. As `nobody` then, when the suite runs as root.
    use std::os::unix::fs::PermissionsExt;
    let open = || {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        dir
    };
    let as_user = |program: &Path| {
        if rustix::process::getuid().is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    let bin = open();
    let exe = bin.path().join("egress-run");
    std::fs::copy(egress_run(), &exe).unwrap();
    for sandboxed in [false, true] {
        let (work, marks) = (open(), open());
        let marker = marks.path().join("ran");
        let script = format!(
            "git init -q hidden/sub && git -C hidden/sub config core.fsmonitor 'touch {m}; false' \
             && chmod 311 hidden && git init -q locked \
             && git -C locked config core.fsmonitor 'touch {m}; false' && chmod 555 locked/.git",
            m = marker.display()
        );
        let mut command = if sandboxed {
            let mut c = as_user(&exe);
            c.args(["-q", "--", "sh", "-c", &script]);
            c
        } else {
            let mut c = as_user(Path::new("/bin/sh"));
            c.args(["-c", &script]);
            c
        };
        let out = command
            .current_dir(work.path())
            .env("HOME", no_home())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        for repo in ["hidden/sub", "locked"] {
            let dir = work.path().join(repo);
            if !dir.exists() {
                continue; // moved aside with its directory: nowhere to run git in
            }
            let _ = as_user(Path::new("git"))
                .args(["status"])
                .current_dir(dir)
                .env("HOME", no_home())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
        }
        assert_eq!(
            marker.exists(),
            !sandboxed,
            "sandboxed: {sandboxed}: {out:?}"
        );
        if sandboxed {
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains("hidden (a directory the check cannot read)"),
                "{stderr}"
            );
            assert!(
                stderr.contains("locked/.git/config (a git config"),
                "{stderr}"
            );
        }
        // So that the temporary directories can be removed.
        let _ = Command::new("chmod")
            .args(["-R", "u+rwx"])
            .arg(work.path())
            .status();
    }
}
