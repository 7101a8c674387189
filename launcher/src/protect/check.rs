//! The check at exit: walks the writable roots whole (no link followed, nothing skipped) and
//! moves aside what the run left that would make the host run code (see `protect`). Its cost
//! is one directory read per directory, plus a `stat` per code-bearing part of each git
//! directory and per watched place.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{gitconfig, repos, Watch};

/// Something moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub from: PathBuf,
    pub to: PathBuf,
    /// What it is, for the user: "a git hook", "git config with core.fsmonitor"…
    pub why: String,
}

/// What the check did.
#[derive(Debug, Default)]
pub struct Report {
    pub moved: Vec<Moved>,
    /// Paths that should have been moved aside but could not be, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// Directory entries looked at.
    pub entries: u64,
    /// Set when the walk stopped at `MAX_ENTRIES`: what lies beyond was not checked.
    pub incomplete: bool,
}

/// The most directory entries the walk looks at (some 20 seconds here): a command that fills
/// its writable paths with more cannot hold the check up for longer, and the check then says
/// that it stopped, which egress-run reports as a failure.
pub const MAX_ENTRIES: u64 = 10_000_000;

/// The suffix of a name moved aside. Nothing runs a file by that name.
pub const QUARANTINE: &str = ".egress-run-quarantine";

pub fn check(watch: &Watch) -> Report {
    let mut checker = Checker {
        watch,
        report: Report::default(),
        git_dirs: HashSet::new(),
    };
    let mut places = watch.places.clone();
    places.sort_by_key(|p| p.components().count());
    for place in &places {
        if checker
            .report
            .moved
            .iter()
            .any(|m| place.starts_with(&m.from))
        {
            continue;
        }
        if checker.planted(place) {
            checker.quarantine(
                place,
                "a file or directory shells, git, Python, ssh or services run code from",
            );
        }
    }
    let mut roots: Vec<&PathBuf> = watch.roots.iter().collect();
    roots.sort_by_key(|r| r.components().count());
    let mut walked: Vec<&PathBuf> = Vec::new();
    for root in roots {
        if !walked.iter().any(|w| root.starts_with(w)) {
            checker.walk(root);
            walked.push(root);
        }
    }
    checker.report
}

struct Checker<'a> {
    watch: &'a Watch,
    report: Report,
    /// Git directories already checked (a `.git` file's target, a common directory).
    git_dirs: HashSet<PathBuf>,
}

impl Checker<'_> {
    /// Whether `path` exists and was made or replaced during the run (not kept, ctime recent).
    fn planted(&self, path: &Path) -> bool {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => !self.kept(&meta) && self.recent(&meta),
            Err(_) => false,
        }
    }

    /// Changed at or after the start (ctime, which no program can set back).
    fn recent(&self, meta: &std::fs::Metadata) -> bool {
        (meta.ctime(), meta.ctime_nsec()) >= self.watch.since
    }

    fn kept(&self, meta: &std::fs::Metadata) -> bool {
        self.watch.kept.contains(&(meta.dev(), meta.ino()))
    }

    fn under_root(&self, path: &Path) -> bool {
        self.watch.roots.iter().any(|root| path.starts_with(root))
    }

    fn walk(&mut self, root: &Path) {
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            if self.report.entries >= MAX_ENTRIES {
                self.report.incomplete = true;
                return;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                self.unreadable(&dir);
                continue;
            };
            let (mut head, mut objects, mut refs, mut commondir) = (false, false, false, false);
            for entry in entries.flatten() {
                self.report.entries += 1;
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let name = entry.file_name();
                match name.as_encoded_bytes() {
                    b".git" if kind.is_dir() => self.git_dir(&entry.path()),
                    b".git" => self.gitlink(&entry.path()),
                    b"HEAD" => head = true,
                    b"objects" => objects = true,
                    b"refs" => refs = true,
                    b"commondir" => commondir = true,
                    _ => {}
                }
                if kind.is_dir() {
                    pending.push(entry.path());
                }
            }
            // A bare repository, or a worktree's or submodule's git directory.
            if head && (commondir || (objects && refs)) {
                self.git_dir(&dir);
            }
        }
    }

    /// Checks the code-bearing parts of `git_dir` that the run made or changed.
    fn git_dir(&mut self, git_dir: &Path) {
        if !self.git_dirs.insert(git_dir.to_path_buf()) {
            return;
        }
        for name in ["config", "config.worktree"] {
            let config = git_dir.join(name);
            if self.planted(&config) {
                if let Some(why) = config_runs_code(&config) {
                    self.quarantine(&config, &why);
                }
            }
        }
        self.hooks_dir(&git_dir.join("hooks"), "a git hook");
        let commondir = git_dir.join("commondir");
        if let Some(common) = repos::common_dir(git_dir) {
            // Linked worktrees' git directories say "../..": their main git directory.
            let inward = git_dir.starts_with(&common) && common != git_dir;
            if self.planted(&commondir) && !inward {
                self.quarantine(
                    &commondir,
                    &format!("a git commondir pointing to {}", common.display()),
                );
            } else if self.under_root(&common) {
                self.git_dir(&common);
            }
        } else if self.planted(&commondir) {
            self.quarantine(&commondir, "a git commondir pointing to no directory");
        }
        let todo = git_dir.join("rebase-merge/git-rebase-todo");
        if self.planted(&todo) && rebase_plan_execs(&todo) {
            self.quarantine(&todo, "a git rebase plan with exec lines");
        }
        // What the repository's own config and the user's relative settings name in its work
        // tree: hooks directories and programs.
        let text = repos::read_small(&git_dir.join("config")).unwrap_or_default();
        let entries = gitconfig::parse(&text).unwrap_or_default();
        let tree = repos::work_tree(git_dir, &entries);
        let mut names = repos::ConfigNames::default();
        repos::read_config(&git_dir.join("config"), Some(&tree), None, &mut names);
        let relative = self.watch.relative.iter().map(|r| tree.join(r));
        for path in names.paths.into_iter().chain(relative).collect::<Vec<_>>() {
            if self.under_root(&path) {
                self.hooks_dir(&path, "a program or hook a git config names");
            }
        }
    }

    /// A hooks directory (or a program file): itself if made during the run, else each entry
    /// made during the run (sample hooks, which never run, aside).
    fn hooks_dir(&mut self, path: &Path, why: &str) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if self.kept(&meta) {
            return;
        }
        if !meta.is_dir() {
            if self.recent(&meta) {
                self.quarantine(path, why);
            }
            return;
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            self.unreadable(path);
            return;
        };
        let mut planted: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_none_or(|e| e != "sample") && self.planted(p))
            .collect();
        planted.sort();
        for hook in planted {
            self.quarantine(&hook, why);
        }
    }

    /// A directory that cannot be listed: git could still run what lies in it (a hook needs
    /// only to be reached), so if the run changed it, it goes aside whole.
    fn unreadable(&mut self, dir: &Path) {
        if self.planted(dir) {
            self.quarantine(dir, "a directory the check cannot read");
        }
    }

    /// A `.git` file or link made during the run must point to a git directory.
    fn gitlink(&mut self, path: &Path) {
        if !self.planted(path) {
            return;
        }
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let target = if is_link {
            None
        } else {
            repos::gitlink_target(path)
        };
        match target.and_then(|t| t.canonicalize().ok()) {
            Some(target) if repos::is_git_dir(&target) => {
                if self.under_root(&target) {
                    self.git_dir(&target);
                }
            }
            Some(target) => self.quarantine(
                path,
                &format!(
                    "a .git file pointing to {}, not a repository",
                    target.display()
                ),
            ),
            None if is_link => self.quarantine(path, "a .git link"),
            None => self.quarantine(path, "a .git file pointing to no repository"),
        }
    }

    /// Renames `path` to `path.egress-run-quarantine` (or `…-2`, `…-3`), never replacing
    /// anything, and only where its directory really is inside a writable root: nothing of the
    /// command's runs any more, so the links it may have left are resolved as they were checked.
    fn quarantine(&mut self, path: &Path, why: &str) {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        let parent = match parent.canonicalize() {
            Ok(parent) if self.under_root(&parent) => parent,
            _ => {
                self.report
                    .failed
                    .push((path.to_path_buf(), "not inside a writable root".into()));
                return;
            }
        };
        let path = parent.join(name);
        let path = path.as_path();
        for n in 1..100 {
            let mut new_name = name.to_os_string();
            new_name.push(QUARANTINE);
            if n > 1 {
                new_name.push(format!("-{n}"));
            }
            let to = parent.join(new_name);
            let mut renamed = rename_no_replace(path, &to);
            if renamed
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
                && self.make_writable(&parent)
            {
                renamed = rename_no_replace(path, &to);
            }
            match renamed {
                Ok(()) => {
                    self.report.moved.push(Moved {
                        from: path.to_path_buf(),
                        to,
                        why: why.to_string(),
                    });
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    self.report.failed.push((path.to_path_buf(), e.to_string()));
                    return;
                }
            }
        }
        self.report
            .failed
            .push((path.to_path_buf(), "too many names taken".into()));
    }
}

impl Checker<'_> {
    /// Gives the owner write access to `dir` again if the run changed it (a command can take
    /// it away to keep what it planted there from being moved).
    fn make_writable(&self, dir: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::symlink_metadata(dir) else {
            return false;
        };
        let ours = meta.uid() == rustix::process::geteuid().as_raw();
        if !ours || !self.recent(&meta) {
            return false;
        }
        let mode = meta.permissions().mode() | 0o700;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).is_ok()
    }
}

fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A filesystem without RENAME_NOREPLACE: nothing else renames meanwhile.
        Err(rustix::io::Errno::INVAL) if std::fs::symlink_metadata(to).is_err() => {
            std::fs::rename(from, to)
        }
        Err(e) => Err(e.into()),
    }
}

/// `Some(reason)` when the config at `path` holds a key that is not inert, or cannot be read.
fn config_runs_code(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return Some("a git config that is not a plain file".into());
    }
    let Some(text) = repos::read_small(path) else {
        return Some("a git config that cannot be read".into());
    };
    let entries = match gitconfig::parse(&text) {
        Ok(entries) => entries,
        Err(line) => return Some(format!("a git config git cannot parse (line {line})")),
    };
    let mut keys: Vec<String> = entries
        .iter()
        .filter(|e| !gitconfig::inert(e))
        .map(|e| match &e.subsection {
            Some(sub) => format!("{}.{sub}.{}", e.section, e.key),
            None => format!("{}.{}", e.section, e.key),
        })
        .collect();
    keys.dedup();
    (!keys.is_empty()).then(|| format!("a git config with {}", keys.join(", ")))
}

/// Whether a rebase plan has `exec` (`x`) lines, which run when the rebase goes on.
fn rebase_plan_execs(path: &Path) -> bool {
    repos::read_small(path).is_none_or(|text| {
        text.lines().any(|line| {
            let word = line.split_whitespace().next().unwrap_or("");
            word == "x" || word == "exec"
        })
    })
}

#[cfg(test)]
mod tests;
