//! The plan for real trees on disk: names with spaces, quotes and Unicode, a real git
//! repository, secrets reached through links.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::*;

fn no_vars(_: &str) -> Option<OsString> {
    None
}

/// A machine: `base/hóme dir` (the home), `base/it's "work"` (the working tree, a git
/// repository with `sub dir/.env`), `base/tmp` (the shared temporary directory).
struct Machine {
    _dir: tempfile::TempDir,
    base: PathBuf,
    home: PathBuf,
    work: PathBuf,
    shared: PathBuf,
}

fn machine() -> Machine {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let home = base.join("hóme dir");
    let work = base.join("it's \"work\"");
    let shared = base.join("tmp");
    for d in [&home, &work, &shared, &work.join("sub dir")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let ok = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&work)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", &home)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::write(work.join("sub dir/.env"), "TOKEN=1").unwrap();
    Machine {
        _dir: dir,
        base,
        home,
        work,
        shared,
    }
}

fn inputs<'a>(m: &'a Machine, secrets: &'a [PathBuf], temp: &'a Path) -> Inputs<'a> {
    Inputs {
        port: 49152,
        cwd: &m.work,
        allow_write: &[],
        read_only: false,
        allow_write_home: false,
        homes: std::slice::from_ref(&m.home),
        secrets,
        temp,
        shared_temp: &m.shared,
    }
}

fn relative(paths: &[PathBuf], base: &Path) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.strip_prefix(base).unwrap().display().to_string())
        .collect()
}

#[test]
fn a_repository_with_a_secret_inside_and_one_reached_through_a_link() {
    let m = machine();
    // ~/.aws is a link to a directory kept elsewhere: both names are denied.
    let elsewhere = m.base.join("dotfiles/aws");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, m.home.join(".aws")).unwrap();
    // A --deny-read path that does not exist yet, under a linked directory: denied where a
    // file made later would really be.
    std::os::unix::fs::symlink(&m.work, m.base.join("work link")).unwrap();
    let secrets = [
        m.home.join(".aws"),
        m.work.join("sub dir/.env"),
        m.base.join("work link/later/key"),
    ];
    let temp = m.shared.join("egress-run.1");
    let decided = decide(&inputs(&m, &secrets, &temp), &no_vars, (0, 0)).unwrap();
    let plan = &decided.plan;
    assert_eq!(plan.proxy_port, 49152);
    assert_eq!(plan.writable, std::slice::from_ref(&m.work));
    assert_eq!(plan.temp, temp);
    assert_eq!(
        relative(&plan.secrets, &m.base),
        [
            "dotfiles/aws",
            "hóme dir/.aws",
            "it's \"work\"/later/key",
            "it's \"work\"/sub dir/.env",
            "work link/later/key"
        ]
    );
    // The secret inside the tree keeps its name: nor its directory nor the root can move.
    // The git directory is pinned by `protect`, as on Linux.
    assert_eq!(
        relative(&plan.unmovable, &m.base),
        [
            "it's \"work\"",
            "it's \"work\"/.git",
            "it's \"work\"/later",
            "it's \"work\"/sub dir"
        ]
    );
    assert_eq!(
        relative(&plan.read_only, &m.base),
        ["it's \"work\"/.git/config", "it's \"work\"/.git/hooks"]
    );
    assert_eq!(decided.watch.roots, std::slice::from_ref(&m.work));
    assert!(decided.warnings.is_empty() && decided.notes.is_empty());
}

#[test]
fn read_only_leaves_nothing_writable_and_nothing_to_protect() {
    let m = machine();
    let temp = m.shared.join("egress-run.2");
    let mut inputs = inputs(&m, &[], &temp);
    inputs.read_only = true;
    let decided = decide(&inputs, &no_vars, (0, 0)).unwrap();
    assert!(decided.plan.writable.is_empty());
    assert!(decided.plan.read_only.is_empty() && decided.plan.unmovable.is_empty());
    assert!(decided.watch.roots.is_empty());
}

#[test]
fn the_home_as_a_root_is_refused_unless_asked_for_and_then_its_places_are_denied_by_path() {
    let m = machine();
    let temp = m.shared.join("egress-run.3");
    let mut inputs = inputs(&m, &[], &temp);
    inputs.cwd = &m.home;
    let error = decide(&inputs, &no_vars, (0, 0)).unwrap_err();
    assert!(error.contains("is your home directory"), "{error}");
    inputs.allow_write_home = true;
    let decided = decide(&inputs, &no_vars, (0, 0)).unwrap();
    assert!(decided.warnings[0].contains("--allow-write-home"));
    // None of these exist: a rule holds for a path that does not exist yet.
    for place in [
        ".bashrc",
        ".zshrc",
        ".gitconfig",
        ".ssh",
        ".local/bin",
        "bin",
    ] {
        assert!(
            decided.plan.read_only.contains(&m.home.join(place)),
            "{place}"
        );
        assert!(!m.home.join(place).exists());
    }
}

#[test]
fn a_directory_on_path_under_the_tree_is_denied_by_path() {
    let m = machine();
    let bin = m.work.join("tools bin");
    let vars = |name: &str| {
        (name == "PATH").then(|| OsString::from(format!("/usr/bin:{}", bin.display())))
    };
    let temp = m.shared.join("egress-run.4");
    let decided = decide(&inputs(&m, &[], &temp), &vars, (0, 0)).unwrap();
    assert!(
        decided.plan.read_only.contains(&bin),
        "{:?}",
        decided.plan.read_only
    );
}

#[test]
fn roots_that_would_open_what_the_sandbox_keeps_shut_are_refused() {
    let shared = Path::new("/private/var/folders/xy/abc/T");
    for refused in [
        "/",
        "/dev",
        "/dev/fd",
        "/private",
        "/private/tmp",
        "/private/var",
        "/private/var/folders",
        "/private/var/folders/xy/abc/T",
        "/tmp",
    ] {
        let error = check_writable(Path::new(refused), "--allow-write", shared).unwrap_err();
        assert!(
            error.starts_with(&format!("--allow-write {refused} cannot be writable")),
            "{error}"
        );
    }
    for fine in [
        "/Users/dev/project",
        "/private/tmp/build",
        "/private/var/folders/xy/abc/T/project",
        "/devices",
    ] {
        assert_eq!(
            check_writable(Path::new(fine), "x", shared),
            Ok(()),
            "{fine}"
        );
    }
}
