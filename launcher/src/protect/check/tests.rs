//! The check at exit on real trees made by real git, without a sandbox: what a run leaves is
//! judged by ctime against `since`, taken between the "before" and the "during".

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::*;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "git {args:?} in {}", dir.display());
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn ctime(path: &Path) -> (i64, i64) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.ctime(), meta.ctime_nsec())
}

/// A `since` later than every change made so far in `dir`: file timestamps tick coarsely, so
/// a probe is written until it is stamped later than a first one (a tick, not a guessed delay).
fn since(dir: &Path) -> (i64, i64) {
    let (first, second) = (dir.join(".probe-1"), dir.join(".probe-2"));
    write(&first, "");
    let before = ctime(&first);
    let after = loop {
        write(&second, "");
        let stamped = ctime(&second);
        if stamped > before {
            break stamped;
        }
    };
    std::fs::remove_file(first).unwrap();
    std::fs::remove_file(second).unwrap();
    after
}

/// A canonical temporary root.
fn root() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

fn watch(root: &Path, since: (i64, i64)) -> Watch {
    Watch {
        roots: vec![root.to_path_buf()],
        since,
        ..Watch::default()
    }
}

fn moved(report: &Report, root: &Path) -> Vec<String> {
    assert!(report.failed.is_empty(), "nothing failed: {report:?}");
    report
        .moved
        .iter()
        .map(|m| m.from.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

#[test]
fn new_repositories_are_judged_by_what_runs_and_old_ones_are_left_as_they_were() {
    let (_dir, root) = root();
    // Before the run: a repository with the user's own hook and an alias.
    git(&root, &["init", "-q", "old"]);
    git(&root.join("old"), &["config", "alias.st", "status"]);
    write(&root.join("old/.git/hooks/pre-commit"), "#!/bin/sh\n");
    let since = since(&root);
    // During: a clean new repository, a clone, and repositories that would run code.
    git(&root, &["init", "-q", "clean"]);
    git(&root, &["clone", "-q", "old", "cloned"]);
    git(&root, &["init", "-q", "evil"]);
    git(
        &root.join("evil"),
        &["config", "core.fsmonitor", "touch marker"],
    );
    git(&root, &["init", "-q", "--bare", "deep/er/bare.git"]);
    git(
        &root.join("deep/er/bare.git"),
        &["config", "core.pager", "evil"],
    );
    write(&root.join("clean/.git/hooks/post-checkout"), "#!/bin/sh\n");
    write(
        &root.join("clean/.git/hooks/pre-push.sample"),
        "changed sample\n",
    );
    let report = check(&watch(&root, since));
    let mut found = moved(&report, &root);
    found.sort();
    assert_eq!(
        found,
        [
            "clean/.git/hooks/post-checkout",
            "deep/er/bare.git/config",
            "evil/.git/config",
        ]
    );
    let why: Vec<&str> = report.moved.iter().map(|m| m.why.as_str()).collect();
    assert!(why.contains(&"a git config with core.fsmonitor"), "{why:?}");
    assert!(root.join("evil/.git/config.egress-run-quarantine").exists());
    assert!(root.join("old/.git/hooks/pre-commit").exists());
    // Git still works in the repository whose config was moved aside, and runs nothing.
    git(&root.join("evil"), &["status"]);
    assert!(!root.join("evil/marker").exists());
}

#[test]
fn a_changed_config_is_moved_aside_unless_it_was_kept_read_only() {
    let (_dir, root) = root();
    git(&root, &["init", "-q", "a"]);
    git(&root, &["init", "-q", "b"]);
    let kept = std::fs::metadata(root.join("b/.git/config")).unwrap();
    let since = since(&root);
    git(&root.join("a"), &["config", "core.hooksPath", "/tmp/x"]);
    // Changed outside the sandbox meanwhile: the sandbox saw it read-only.
    git(&root.join("b"), &["config", "core.editor", "vim"]);
    let mut watch = watch(&root, since);
    watch.kept = vec![(kept.dev(), kept.ino())];
    // `git config` replaces the file: b's is a new inode, so keep that one instead.
    let now = std::fs::metadata(root.join("b/.git/config")).unwrap();
    watch.kept.push((now.dev(), now.ino()));
    assert_eq!(moved(&check(&watch), &root), ["a/.git/config"]);
}

#[test]
fn git_files_links_and_common_directories_must_point_to_a_repository_inward() {
    let (_dir, root) = root();
    git(&root, &["init", "-q", "main"]);
    git(
        &root.join("main"),
        &["commit", "-q", "--allow-empty", "-m", "x"],
    );
    let since = since(&root);
    // A linked worktree: a .git file to main/.git/worktrees/wt, whose commondir is "../..".
    git(&root.join("main"), &["worktree", "add", "-q", "../wt"]);
    write(
        &root.join("nowhere/.git"),
        "gitdir: /tmp/egress-run-no-such-repository\n",
    );
    std::fs::create_dir_all(root.join("linked")).unwrap();
    std::os::unix::fs::symlink(root.join("main/.git"), root.join("linked/.git")).unwrap();
    // A git directory whose commondir points out, to a config that runs code.
    git(&root, &["init", "-q", "--bare", "common"]);
    git(&root.join("common"), &["config", "core.fsmonitor", "evil"]);
    git(&root, &["init", "-q", "--bare", "outward"]);
    write(&root.join("outward/commondir"), "../common\n");
    let mut found = moved(&check(&watch(&root, since)), &root);
    found.sort();
    assert_eq!(
        found,
        [
            "common/config",
            "linked/.git",
            "nowhere/.git",
            "outward/commondir",
        ]
    );
}

#[test]
fn hooks_directories_named_in_configs_and_rebase_plans_are_checked() {
    let (_dir, root) = root();
    git(&root, &["init", "-q", "husky"]);
    git(&root.join("husky"), &["config", "core.hooksPath", ".husky"]);
    write(&root.join("husky/.husky/pre-commit"), "npm test\n");
    git(&root, &["init", "-q", "plain"]);
    let since = since(&root);
    write(&root.join("husky/.husky/pre-push"), "evil\n");
    write(&root.join("plain/.githooks/pre-commit"), "evil\n");
    write(
        &root.join("plain/.git/rebase-merge/git-rebase-todo"),
        "pick abc x\nexec evil\n",
    );
    write(&root.join("plain/.git/rebase-merge/done"), "pick abc x\n");
    let mut watch = watch(&root, since);
    // The user's global config says `core.hooksPath = .githooks`.
    watch.relative = vec![".githooks".into()];
    let mut found = moved(&check(&watch), &root);
    found.sort();
    assert_eq!(
        found,
        [
            "husky/.husky/pre-push",
            "plain/.git/rebase-merge/git-rebase-todo",
            "plain/.githooks/pre-commit",
        ]
    );
}

#[test]
fn places_made_or_replaced_during_the_run_are_moved_aside_and_others_left() {
    let (_dir, root) = root();
    write(&root.join(".bashrc"), "user's\n");
    write(&root.join(".profile"), "user's\n");
    write(
        &root.join(".bash_profile.egress-run-quarantine"),
        "an older one\n",
    );
    let kept = std::fs::metadata(root.join(".profile")).unwrap();
    let since = since(&root);
    write(&root.join(".bash_profile"), "evil\n");
    write(
        &root.join(".config/systemd/user/evil.service"),
        "[Service]\n",
    );
    write(
        &root.join(".profile"),
        "changed outside, kept read-only inside\n",
    );
    let mut watch = watch(&root, since);
    watch.places = [
        ".bashrc",
        ".profile",
        ".bash_profile",
        ".config/systemd",
        ".zshenv",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    watch.kept = vec![(kept.dev(), kept.ino())];
    let report = check(&watch);
    assert_eq!(moved(&report, &root), [".bash_profile", ".config/systemd"]);
    // Never over anything: the name already taken gets a number.
    assert_eq!(
        report.moved[0].to,
        root.join(".bash_profile.egress-run-quarantine-2")
    );
    assert_eq!(
        std::fs::read_to_string(root.join(".bash_profile.egress-run-quarantine")).unwrap(),
        "an older one\n"
    );
}

#[test]
fn nothing_outside_the_writable_roots_is_ever_renamed() {
    let (_dir, root) = root();
    let (_other, outside) = self::root();
    let since = since(&root);
    write(
        &outside.join("target/.bash_profile"),
        "the user's, elsewhere\n",
    );
    // A link inside the root to a directory outside it: what lies behind it is not the run's.
    std::os::unix::fs::symlink(outside.join("target"), root.join("linked")).unwrap();
    let mut watch = watch(&root, since);
    watch.places = vec![root.join("linked/.bash_profile")];
    let report = check(&watch);
    assert!(report.moved.is_empty(), "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(outside.join("target/.bash_profile").exists());
}

#[test]
fn fifos_where_files_are_read_do_not_hold_the_check_up() {
    let (_dir, root) = root();
    let since = since(&root);
    git(&root, &["init", "-q", "--bare", "bare"]);
    std::fs::remove_file(root.join("bare/config")).unwrap();
    std::fs::create_dir_all(root.join("plain")).unwrap();
    std::fs::create_dir_all(root.join("bare/rebase-merge")).unwrap();
    for fifo in [
        "bare/config",
        "bare/commondir",
        "bare/rebase-merge/git-rebase-todo",
        "plain/.git",
    ] {
        let ok = Command::new("mkfifo")
            .arg(root.join(fifo))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let mut found = moved(&check(&watch(&root, since)), &root);
    found.sort();
    assert_eq!(
        found,
        [
            "bare/commondir",
            "bare/config",
            "bare/rebase-merge/git-rebase-todo",
            "plain/.git",
        ]
    );
}

#[test]
fn an_unreadable_or_unwritable_directory_does_not_hide_what_was_planted() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, root) = root();
    let since = since(&root);
    // Traversable but not listable: git reaches hidden/sub/.git, the walk cannot list hidden.
    git(&root, &["init", "-q", "hidden/sub"]);
    git(
        &root.join("hidden/sub"),
        &["config", "core.fsmonitor", "evil"],
    );
    // A new repository whose directory cannot be written: its config cannot be renamed as is.
    git(&root, &["init", "-q", "locked"]);
    git(&root.join("locked"), &["config", "alias.x", "!evil"]);
    let mode = |path: &str, mode| {
        std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode("hidden", 0o311);
    mode("locked/.git", 0o555);
    // Root reads and writes regardless: for root this shows only that nothing breaks.
    let report = check(&watch(&root, since));
    mode("hidden", 0o755);
    let mut found = moved(&report, &root);
    found.sort();
    let hidden = if rustix::process::geteuid().is_root() {
        "hidden/sub/.git/config"
    } else {
        "hidden"
    };
    assert_eq!(found, [hidden, "locked/.git/config"]);
}
