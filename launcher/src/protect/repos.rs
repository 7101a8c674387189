//! Repositories as git finds them: a git directory is a `.git` directory, or any directory with
//! `HEAD` and either `objects` and `refs` or a `commondir` file (bare repositories, linked
//! worktrees' and submodules' git directories); a `.git` file (`gitdir: …`) points to one. The
//! parts of a git directory that make git run code are its `config` (and `config.worktree`),
//! `hooks`, and `commondir` (which moves the config and hooks elsewhere).
//!
//! At start-up only a bounded search is made (`near`): a writable root, its ancestors, and its
//! direct subdirectories, plus the git directories nested in those (submodules, worktrees). The
//! check at exit (`check`) walks everything.

use std::path::{Path, PathBuf};

use super::gitconfig::{self, Named};

/// The code-bearing parts of a git directory, by name.
pub const PARTS: [&str; 4] = ["config", "config.worktree", "hooks", "commondir"];

/// How many subdirectories of a writable root are looked into at start-up (beyond, the check at
/// exit finds what changed).
const CHILDREN_LOOKED_AT: usize = 4096;

/// The text of a small regular file, or `None`: never blocks on a FIFO the command left in
/// place of a config, never reads more than a config could sensibly hold.
pub fn read_small(path: &Path) -> Option<String> {
    use rustix::fs::{fstat, open, FileType, Mode, OFlags};
    const LIMIT: u64 = 1 << 20;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = open(path, flags, Mode::empty()).ok()?;
    let stat = fstat(&fd).ok()?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile || stat.st_size as u64 > LIMIT
    {
        return None;
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::fs::File::from(fd), LIMIT),
        &mut text,
    )
    .ok()?;
    Some(text)
}

/// Whether `dir` is a git directory by git's own test (the name `.git` alone is not enough for
/// git either, but a `.git` directory is protected whatever it holds).
pub fn is_git_dir(dir: &Path) -> bool {
    let has = |name: &str| std::fs::symlink_metadata(dir.join(name)).is_ok();
    has("HEAD") && (has("commondir") || (has("objects") && has("refs")))
}

/// What `.git` at `path` is: a directory, or a file's `gitdir:` target (resolved against the
/// file's directory), or nothing git would use.
pub fn dot_git(path: &Path) -> Option<PathBuf> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if meta.is_dir() {
        return Some(path.to_path_buf());
    }
    let target = if meta.is_file() {
        gitlink_target(path)?
    } else {
        // A link: git follows it.
        path.to_path_buf()
    };
    let target = target.canonicalize().ok()?;
    is_git_dir(&target).then_some(target)
}

/// The target a `.git` file names (`gitdir: PATH`), as written, resolved against its directory.
pub fn gitlink_target(file: &Path) -> Option<PathBuf> {
    let text = read_small(file)?;
    let target = text.strip_prefix("gitdir:")?.trim();
    (!target.is_empty()).then(|| file.parent().unwrap_or(Path::new("/")).join(target))
}

/// The common directory `commondir` in `git_dir` names, resolved, if any.
pub fn common_dir(git_dir: &Path) -> Option<PathBuf> {
    let text = read_small(&git_dir.join("commondir"))?;
    git_dir.join(text.trim()).canonicalize().ok()
}

/// The git directories near `root` (see the module's notes), each once, canonical; and the
/// `.git` files found there (which a write could point elsewhere).
pub fn near(root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut links: Vec<PathBuf> = Vec::new();
    let mut consider = |dir: &Path, dirs: &mut Vec<PathBuf>| {
        let dot = dir.join(".git");
        if std::fs::symlink_metadata(&dot).is_ok_and(|m| !m.is_dir()) {
            links.push(dot.clone());
        }
        for found in dot_git(&dot)
            .into_iter()
            .chain(is_git_dir(dir).then(|| dir.to_path_buf()))
        {
            if !dirs.contains(&found) {
                dirs.push(found);
            }
        }
    };
    for dir in root.ancestors() {
        consider(dir, &mut dirs);
        if dir.file_name().is_some_and(|n| n == ".git") && !dirs.iter().any(|d| d == dir) {
            dirs.push(dir.to_path_buf());
        }
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        let children = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != ".git")
            .take(CHILDREN_LOOKED_AT);
        for child in children {
            consider(&child.path(), &mut dirs);
        }
    }
    // Submodules' and linked worktrees' git directories, and common directories named.
    let mut at = 0;
    while at < dirs.len() {
        let dir = dirs[at].clone();
        for nested in nested_git_dirs(&dir) {
            if !dirs.contains(&nested) {
                dirs.push(nested);
            }
        }
        if let Some(common) = common_dir(&dir) {
            if !dirs.contains(&common) {
                dirs.push(common);
            }
        }
        at += 1;
    }
    (dirs, links)
}

/// Git directories under `git_dir/modules` (submodules, at any depth of name) and
/// `git_dir/worktrees/*`.
fn nested_git_dirs(git_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![(git_dir.join("modules"), 0), (git_dir.join("worktrees"), 0)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if is_git_dir(&path) {
                out.push(path);
            } else if depth < 4 {
                pending.push((path, depth + 1));
            }
        }
    }
    out
}

/// The top of the work tree whose git directory is `git_dir`: the parent of a `.git`
/// directory, `core.worktree` when the config names one, else the git directory itself (bare).
pub fn work_tree(git_dir: &Path, entries: &[gitconfig::Entry]) -> PathBuf {
    let named = entries
        .iter()
        .rev()
        .find(|e| e.section == "core" && e.subsection.is_none() && e.key == "worktree")
        .and_then(|e| e.value.as_deref());
    match named {
        Some(tree) => git_dir.join(tree),
        None if git_dir.file_name().is_some_and(|n| n == ".git") => {
            git_dir.parent().unwrap_or(git_dir).to_path_buf()
        }
        None => git_dir.to_path_buf(),
    }
}

/// The config files git reads besides the repositories' own: system, global, XDG, and what
/// the environment names.
pub fn user_configs(
    homes: &[PathBuf],
    var: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/etc/gitconfig")];
    for home in homes {
        out.push(home.join(".gitconfig"));
        out.push(home.join(".config/git/config"));
    }
    for name in ["XDG_CONFIG_HOME"] {
        if let Some(dir) = var(name) {
            out.push(Path::new(&dir).join("git/config"));
        }
    }
    for name in ["GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM"] {
        if let Some(file) = var(name) {
            out.push(PathBuf::from(file));
        }
    }
    out
}

/// What config files name (see `read_config`).
#[derive(Debug, Default)]
pub struct ConfigNames {
    /// Absolute paths git would run from or read as configuration.
    pub paths: Vec<PathBuf>,
    /// Relative `core.hooksPath` and programs from user configs, as written: relative to
    /// whichever work tree git runs in.
    pub relative: Vec<String>,
}

/// Reads `file` and the files it includes (to git's depth limit), resolving what they name:
/// includes relative to the including file, the rest relative to `tree` (`None` for a user
/// config, whose relative hooks directory or program is then kept as written, to resolve
/// against every repository). `~/` is `home`.
pub fn read_config(file: &Path, tree: Option<&Path>, home: Option<&Path>, out: &mut ConfigNames) {
    read_config_depth(file, tree, home, out, 0);
}

fn read_config_depth(
    file: &Path,
    tree: Option<&Path>,
    home: Option<&Path>,
    out: &mut ConfigNames,
    depth: u8,
) {
    let Some(text) = read_small(file) else {
        return;
    };
    let Ok(entries) = gitconfig::parse(&text) else {
        return;
    };
    let expand = |written: &str, base: Option<&Path>| -> Option<PathBuf> {
        if let (Some(rest), Some(home)) = (written.strip_prefix("~/"), home) {
            return Some(home.join(rest));
        }
        let path = Path::new(written);
        if path.is_absolute() {
            return Some(path.to_path_buf());
        }
        base.map(|b| b.join(path))
    };
    for named in gitconfig::named_paths(&entries) {
        match named {
            Named::Include(written) => {
                let Some(path) = expand(&written, file.parent()) else {
                    continue;
                };
                out.paths.push(path.clone());
                if depth < 10 {
                    read_config_depth(&path, tree, home, out, depth + 1);
                }
            }
            Named::HooksDir(written) | Named::Program(written) => match expand(&written, tree) {
                Some(path) => out.paths.push(path),
                None => out.relative.push(written),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    }

    #[test]
    fn repositories_near_a_root_are_found_with_their_submodules_and_worktrees() {
        let top = tempfile::tempdir().unwrap();
        let top = top.path().canonicalize().unwrap();
        // top/outer is a repository; the root is its subdirectory `work`, holding a sibling
        // repository `a`, a bare one `b.git`, a linked worktree `wt` of `a`; deeper ones are
        // left to the check at exit.
        git(&top, &["init", "-q", "outer"]);
        let root = top.join("outer/work");
        std::fs::create_dir_all(root.join("deep/er")).unwrap();
        git(&root, &["init", "-q", "a"]);
        git(&root, &["init", "-q", "--bare", "b.git"]);
        git(&root.join("deep/er"), &["init", "-q", "c"]);
        git(
            &root.join("a"),
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "x",
            ],
        );
        git(&root.join("a"), &["worktree", "add", "-q", "../wt"]);
        let (dirs, links) = near(&root);
        let mut names: Vec<String> = dirs
            .iter()
            .map(|d| d.strip_prefix(&top).unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "outer/.git",
                "outer/work/a/.git",
                "outer/work/a/.git/worktrees/wt",
                "outer/work/b.git",
            ]
        );
        assert_eq!(links, [root.join("wt/.git")]);
        assert_eq!(
            common_dir(&root.join("a/.git/worktrees/wt")),
            Some(root.join("a/.git"))
        );
    }

    #[test]
    fn a_config_names_its_includes_hooks_and_programs() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::write(
            dir.join("config"),
            "[include]\npath = extra\n[core]\nhooksPath = .husky\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("extra"),
            "[core]\npager = ~/bin/pager\nfsmonitor = ./fsm\n",
        )
        .unwrap();
        let mut named = ConfigNames::default();
        read_config(
            &dir.join("config"),
            Some(Path::new("/tree")),
            Some(Path::new("/home/u")),
            &mut named,
        );
        assert_eq!(
            named.paths,
            [
                dir.join("extra"),
                PathBuf::from("/home/u/bin/pager"),
                PathBuf::from("/tree/./fsm"),
                PathBuf::from("/tree/.husky"),
            ]
        );
        let mut user = ConfigNames::default();
        read_config(&dir.join("config"), None, None, &mut user);
        assert_eq!(user.relative, ["~/bin/pager", "./fsm", ".husky"]);
    }
}
