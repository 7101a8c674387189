//! What is mounted and watched for a given tree, from real directories and real git.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::*;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "git {args:?}");
}

fn root() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    (dir, path)
}

fn no_vars(_: &str) -> Option<OsString> {
    None
}

/// The binds, relative to `base`, as `pin X` / `ro X`.
fn binds(survey: &Survey, base: &Path) -> Vec<String> {
    survey
        .binds
        .iter()
        .map(|bind| match bind {
            Bind::Pin(p) => format!("pin {}", p.strip_prefix(base).unwrap().display()),
            Bind::ReadOnly(p) => format!("ro {}", p.strip_prefix(base).unwrap().display()),
        })
        .collect()
}

#[test]
fn a_repository_is_pinned_and_its_config_and_hooks_are_read_only() {
    let (_dir, base) = root();
    let project = base.join("project");
    std::fs::create_dir(&project).unwrap();
    git(&project, &["init", "-q"]);
    let home = base.join("home");
    let survey = survey(std::slice::from_ref(&project), &[home], &no_vars, (0, 0));
    assert_eq!(
        binds(&survey, &base),
        [
            "pin project/.git",
            "ro project/.git/config",
            "ro project/.git/hooks",
        ]
    );
    assert_eq!(survey.watch.kept.len(), 2);
    assert_eq!(
        survey.watch.places,
        Vec::<PathBuf>::new(),
        "the home is not writable"
    );
    assert_eq!(survey.notes, Vec::<String>::new());
}

#[test]
fn sibling_repositories_under_a_parent_root_are_pinned_up_to_the_root() {
    let (_dir, base) = root();
    for name in ["a", "b"] {
        std::fs::create_dir(base.join(name)).unwrap();
        git(&base.join(name), &["init", "-q"]);
    }
    git(&base, &["init", "-q", "--bare", "c.git"]);
    let survey = survey(std::slice::from_ref(&base), &[], &no_vars, (0, 0));
    assert_eq!(
        binds(&survey, &base),
        [
            "pin a",
            "pin b",
            "pin c.git",
            "pin a/.git",
            "pin b/.git",
            "ro c.git/config",
            "ro c.git/hooks",
            "ro a/.git/config",
            "ro a/.git/hooks",
            "ro b/.git/config",
            "ro b/.git/hooks",
        ]
    );
}

#[test]
fn what_a_repository_config_names_in_the_tree_is_protected_or_watched() {
    let (_dir, base) = root();
    git(&base, &["init", "-q"]);
    git(&base, &["config", "include.path", "../shared.gitconfig"]);
    git(&base, &["config", "core.hooksPath", ".husky"]);
    std::fs::write(base.join("shared.gitconfig"), "").unwrap();
    let survey = survey(std::slice::from_ref(&base), &[], &no_vars, (0, 0));
    let binds = binds(&survey, &base);
    assert!(
        binds.contains(&"ro shared.gitconfig".to_string()),
        "{binds:?}"
    );
    // .husky does not exist: nothing is mounted there (it would be created), it is watched.
    assert!(!binds.iter().any(|b| b.contains(".husky")));
    assert!(survey.watch.places.contains(&base.join(".husky")));
}

#[test]
fn a_writable_home_keeps_its_startup_files_and_watches_the_missing_ones() {
    let (_dir, home) = root();
    std::fs::write(home.join(".bashrc"), "").unwrap();
    std::fs::create_dir_all(home.join(".config/git")).unwrap();
    std::fs::create_dir_all(home.join("dotfiles")).unwrap();
    std::fs::write(home.join("dotfiles/zshrc"), "").unwrap();
    std::os::unix::fs::symlink(home.join("dotfiles/zshrc"), home.join(".zshrc")).unwrap();
    let homes = [home.clone()];
    assert!(refuse_home(std::slice::from_ref(&home), &homes, false)
        .unwrap_err()
        .contains("is your home directory"));
    let holds = refuse_home(&[home.parent().unwrap().to_path_buf()], &homes, false).unwrap_err();
    assert!(holds.contains("holds your home directory"), "{holds}");
    let warnings = refuse_home(std::slice::from_ref(&home), &homes, true).unwrap();
    assert!(warnings[0].starts_with("egress-run: WARNING: --allow-write-home"));
    assert_eq!(
        refuse_home(&[home.join("project")], &homes, false),
        Ok(vec![])
    );

    let survey = survey(std::slice::from_ref(&home), &homes, &no_vars, (0, 0));
    let binds = binds(&survey, &home);
    for kept in ["ro .bashrc", "ro .config/git", "ro dotfiles/zshrc"] {
        assert!(binds.contains(&kept.to_string()), "{kept}: {binds:?}");
    }
    for watched in [
        ".bash_profile",
        ".zshrc",
        ".local/lib",
        ".ssh",
        ".config/systemd",
    ] {
        assert!(
            survey.watch.places.contains(&home.join(watched)),
            "{watched}"
        );
    }
}

#[test]
fn a_root_inside_a_protected_place_stays_read_only_and_says_so() {
    let (_dir, home) = root();
    let lua = home.join(".config/nvim/lua");
    std::fs::create_dir_all(&lua).unwrap();
    let survey = survey(
        std::slice::from_ref(&lua),
        std::slice::from_ref(&home),
        &no_vars,
        (0, 0),
    );
    assert_eq!(binds(&survey, &home), ["ro .config/nvim"]);
    assert_eq!(survey.notes.len(), 1);
    assert!(survey.notes[0].contains("stays read-only inside"));
}

#[test]
fn directories_on_path_under_a_root_are_read_only() {
    let (_dir, base) = root();
    std::fs::create_dir(base.join("bin")).unwrap();
    let path = format!(
        "/usr/bin:{}:{}",
        base.join("bin").display(),
        base.join("tools").display()
    );
    let vars = move |name: &str| (name == "PATH").then(|| OsString::from(&path));
    let survey = survey(std::slice::from_ref(&base), &[], &vars, (0, 0));
    assert_eq!(binds(&survey, &base), ["ro bin"]);
    assert!(survey.watch.places.contains(&base.join("tools")));
}

#[test]
fn nothing_is_writable_nothing_is_needed() {
    let survey = survey(&[], &[PathBuf::from("/root")], &no_vars, (0, 0));
    assert_eq!(survey.binds, []);
    assert_eq!(survey.watch.places, Vec::<PathBuf>::new());
}

#[test]
fn a_linked_config_is_protected_where_it_points_and_the_link_is_watched() {
    let (_dir, base) = root();
    git(&base, &["init", "-q", "repo"]);
    std::fs::rename(
        base.join("repo/.git/config"),
        base.join("repo/shared-config"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        base.join("repo/shared-config"),
        base.join("repo/.git/config"),
    )
    .unwrap();
    let root = base.join("repo");
    let survey = survey(std::slice::from_ref(&root), &[], &no_vars, (0, 0));
    assert_eq!(
        binds(&survey, &base),
        [
            "pin repo/.git",
            "ro repo/shared-config",
            "ro repo/.git/hooks"
        ]
    );
    assert!(survey.watch.places.contains(&root.join(".git/config")));
}

#[test]
fn the_report_names_each_thing_moved_and_each_failure() {
    let report = Report {
        moved: vec![Moved {
            from: "/p/.git/hooks/pre-commit".into(),
            to: "/p/.git/hooks/pre-commit.egress-run-quarantine".into(),
            why: "a git hook".into(),
        }],
        failed: vec![("/p/x".into(), "Permission denied".into())],
        entries: 3,
        incomplete: false,
    };
    let text = describe(&report);
    assert!(
        text.starts_with("egress-run: WARNING: the command left 1 thing(s)"),
        "{text}"
    );
    assert!(text.contains("  /p/.git/hooks/pre-commit (a git hook)\n    now /p/.git/hooks/pre-commit.egress-run-quarantine\n"));
    assert!(text.contains("could not move aside /p/x (Permission denied)"));
    assert_eq!(describe(&Report::default()), "");
}
