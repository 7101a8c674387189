//! What the sandboxed command must not leave behind: anything the host runs on its own later —
//! git hooks and config wherever git finds them, shell startup files, Python's user
//! site-packages, ssh's files, user services, programs on `PATH` — in or below a writable path,
//! whether it existed before the run or not. egress-run itself creates nothing on the host.
//!
//! Three layers:
//!
//! 1. **Refusal** (`refuse_home`): the home directory, or an ancestor of it, is not a writable
//!    root unless asked for with `--allow-write-home` (then with a warning).
//! 2. **Mounts, at start-up** (`survey`): what exists is bound read-only inside (git
//!    directories' `config`, `config.worktree`, `hooks`, `commondir`, `.git` files, the places
//!    of `places`, and whatever a git config names: includes, hooks directories, programs);
//!    git directories and the directories between them and the writable root are pinned (bound
//!    onto themselves, writable) so they cannot be renamed away and replaced by a copy. These
//!    hold even if egress-run is killed. Nothing is mounted over a path that does not exist,
//!    since that would create it on the host.
//! 3. **The check at exit** (`check`, run by the guard process of `guard`, which outlives a
//!    `kill -9` of egress-run): the writable roots are walked whole; what was created or
//!    changed during the run (by ctime, which a program cannot set back) and would run code is
//!    moved aside to `NAME.egress-run-quarantine` (never deleted), and egress-run exits 125
//!    naming each: new git directories anywhere with a config that is not inert or with hooks,
//!    `.git` files pointing to no repository, `commondir` files pointing out, rebase plans with
//!    `exec`, and any place of `places` that was created or replaced.

mod check;
mod gitconfig;
pub mod places;
mod repos;

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[cfg(test)]
pub use check::Moved;
pub use check::{check, Report};

/// Something that exists and must stay as it is, as `survey` decides it for both platforms: on
/// Linux a bind of the path onto itself (`bwrap`), on macOS a rule of the Seatbelt profile
/// (`seatbelt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// Stays writable inside, but cannot be renamed or removed (replaced by a copy).
    Pin(PathBuf),
    ReadOnly(PathBuf),
}

/// What the check at exit needs from the start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Watch {
    /// The writable roots, canonical.
    pub roots: Vec<PathBuf>,
    /// Changes at or after this time (seconds and nanoseconds since the epoch, by ctime)
    /// happened during the run: the start, rounded down and less a margin for filesystems
    /// with coarse timestamps (see `start_time`).
    pub since: (i64, i64),
    /// Places (see `places`) under the roots: there at exit but not kept means planted.
    pub places: Vec<PathBuf>,
    /// Device and inode of what was bound read-only: unchanged by the command, whatever its
    /// ctime says (the user may have changed it outside meanwhile).
    pub kept: Vec<(u64, u64)>,
    /// `core.hooksPath` and programs named relatively in the user's own git configs: they are
    /// looked for in every work tree.
    pub relative: Vec<String>,
}

/// What `survey` found: the mounts to make, what the check at exit needs, and notes for the
/// user (a writable root that stays read-only because it lies in a protected place).
#[derive(Debug, Default)]
pub struct Survey {
    pub binds: Vec<Bind>,
    pub watch: Watch,
    pub notes: Vec<String>,
}

/// Refuses a writable root that is a home directory or contains one, unless `allowed`; then
/// returns the warning to show. `homes` and `roots` are compared canonical.
pub fn refuse_home(
    roots: &[PathBuf],
    homes: &[PathBuf],
    allowed: bool,
) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    for home in homes {
        let home = home.canonicalize().unwrap_or_else(|_| home.clone());
        for root in roots.iter().filter(|root| home.starts_with(root)) {
            let what = if *root == home {
                format!("{} is your home directory", root.display())
            } else {
                format!(
                    "{} holds your home directory {}",
                    root.display(),
                    home.display()
                )
            };
            if !allowed {
                return Err(format!(
                    "{what}: a command that can write there can plant files that run code at your \
                     next login, shell, git or python command, ssh login or service start \
                     (~/.bash_profile, ~/.gitconfig, ~/.local/lib/python*/site-packages, \
                     ~/.ssh/authorized_keys, ~/.config/systemd…). Run egress-run in a project \
                     directory, or pass --allow-write-home to allow it anyway"
                ));
            }
            warnings.push(format!(
                "egress-run: WARNING: --allow-write-home: {what}, writable inside the sandbox. \
                 Known startup files (shell, git, Python, ssh, systemd, autostart, PATH \
                 directories) stay read-only or are moved aside at exit; anything else there that \
                 a program runs later is not protected."
            ));
        }
    }
    Ok(warnings)
}

/// The mounts and the watch list for `roots` (canonical writable roots; empty when nothing is
/// writable). Bounded: a few `stat`s per place and per git directory near a root (see
/// `repos::near`), no walk.
pub fn survey(
    roots: &[PathBuf],
    homes: &[PathBuf],
    var: &dyn Fn(&str) -> Option<OsString>,
    since: (i64, i64),
) -> Survey {
    let mut survey = Survey {
        watch: Watch {
            roots: roots.to_vec(),
            since,
            ..Watch::default()
        },
        ..Survey::default()
    };
    if roots.is_empty() {
        return survey;
    }
    let mut found = Found {
        roots,
        resolver: places::Resolver::default(),
        pins: Vec::new(),
        read_only: Vec::new(),
        watch: &mut survey.watch,
    };
    let home = homes.first().map(PathBuf::as_path);
    let mut user = repos::ConfigNames::default();
    for file in repos::user_configs(homes, var) {
        found.place(&file);
        repos::read_config(&file, None, home, &mut user);
    }
    for path in places::all(homes, var).iter().chain(&user.paths) {
        found.place(path);
    }
    for root in roots {
        let (git_dirs, links) = repos::near(root);
        for git_dir in &git_dirs {
            found.git_dir(git_dir, home, &user.relative);
        }
        for link in &links {
            found.read_only(link);
        }
    }
    let mut pins = std::mem::take(&mut found.pins);
    let mut read_only = std::mem::take(&mut found.read_only);
    // Outer before inner: a later bind of a parent would cover the inner one.
    for list in [&mut pins, &mut read_only] {
        list.sort_by_key(|p| (p.components().count(), p.clone()));
        list.dedup();
    }
    for path in &read_only {
        if let Some(root) = roots.iter().find(|root| root.starts_with(path)) {
            survey.notes.push(format!(
                "egress-run: {} stays read-only inside: it lies in {}, which programs run code \
                 from",
                root.display(),
                path.display()
            ));
        }
    }
    survey.binds = pins
        .into_iter()
        .map(Bind::Pin)
        .chain(read_only.into_iter().map(Bind::ReadOnly))
        .collect();
    survey.watch.places.sort();
    survey.watch.places.dedup();
    survey.watch.kept.sort();
    survey.watch.kept.dedup();
    survey.watch.relative = user.relative;
    survey
}

/// The `since` of a run starting now: the clock file timestamps come from, rounded down to the
/// second and less two (filesystems that keep whole or even seconds). Linux stamps files with
/// its coarse clock, a few milliseconds behind at most: the two seconds cover that too, so no
/// change after this call can be stamped earlier, on Linux or macOS.
pub fn start_time() -> (i64, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    (now - 2, 0)
}

/// Collects mounts and watched paths for `survey`.
struct Found<'a> {
    roots: &'a [PathBuf],
    resolver: places::Resolver,
    pins: Vec<PathBuf>,
    read_only: Vec<PathBuf>,
    watch: &'a mut Watch,
}

impl Found<'_> {
    fn under(&self, path: &Path) -> bool {
        self.roots.iter().any(|root| path.starts_with(root))
    }

    /// Under a root, or holding one: a read-only bind there matters.
    fn relevant(&self, path: &Path) -> bool {
        self.under(path) || self.roots.iter().any(|root| root.starts_with(path))
    }

    /// Binds `path` read-only if it exists and matters, and remembers it as kept. A link cannot
    /// be bound (the bind lands on its target): its target is bound instead, and the link
    /// watched, since it could be replaced.
    fn read_only(&mut self, path: &Path) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if meta.file_type().is_symlink() {
            if self.under(path) {
                self.watch.places.push(path.to_path_buf());
            }
            if let Ok(target) = path.canonicalize() {
                self.read_only(&target);
            }
        } else if self.relevant(path) {
            self.read_only.push(path.to_path_buf());
            self.watch.kept.push((meta.dev(), meta.ino()));
        }
    }

    /// A place, as named and where it really is (through links): each read-only if it exists,
    /// and watched if a write could put something there.
    fn place(&mut self, path: &Path) {
        let real = self.resolver.real(path);
        for candidate in [path, real.as_path()] {
            if self.under(candidate) {
                self.watch.places.push(candidate.to_path_buf());
            }
            self.read_only(candidate);
        }
    }

    /// A git directory: pinned with the directories above it up to its root, its code-bearing
    /// parts read-only, and what its config names protected as places.
    fn git_dir(&mut self, git_dir: &Path, home: Option<&Path>, relative: &[String]) {
        if let Some(root) = self.roots.iter().filter(|r| git_dir.starts_with(r)).max() {
            let inner: Vec<PathBuf> = git_dir
                .ancestors()
                .take_while(|dir| *dir != root.as_path())
                .map(Path::to_path_buf)
                .collect();
            self.pins.extend(inner);
        }
        for part in repos::PARTS {
            self.read_only(&git_dir.join(part));
        }
        let text = repos::read_small(&git_dir.join("config")).unwrap_or_default();
        let entries = gitconfig::parse(&text).unwrap_or_default();
        let tree = repos::work_tree(git_dir, &entries);
        let mut names = repos::ConfigNames::default();
        for file in ["config", "config.worktree"] {
            repos::read_config(&git_dir.join(file), Some(&tree), home, &mut names);
        }
        let relative = relative.iter().map(|r| tree.join(r));
        for path in names.paths.into_iter().chain(relative) {
            self.place(&path);
        }
    }
}

/// What the check at exit found, for the user; empty when nothing was found.
pub fn describe(report: &Report) -> String {
    let mut out = String::new();
    if !report.moved.is_empty() {
        out.push_str(&format!(
            "egress-run: WARNING: the command left {} thing(s) that would make this machine run \
             code later (through git, a shell, Python, ssh or a user service). Moved aside, not \
             deleted; look at them before you use them:\n",
            report.moved.len()
        ));
        for moved in &report.moved {
            out.push_str(&format!(
                "  {} ({})\n    now {}\n",
                moved.from.display(),
                moved.why,
                moved.to.display()
            ));
        }
    }
    if report.incomplete {
        out.push_str(&format!(
            "egress-run: WARNING: the check at exit stopped after {} entries; what lies beyond \
             was not checked: look for new .git directories and startup files yourself\n",
            report.entries
        ));
    }
    for (path, error) in &report.failed {
        out.push_str(&format!(
            "egress-run: WARNING: could not move aside {} ({error}): it may run code later; \
             remove it yourself\n",
            path.display()
        ));
    }
    out
}

#[cfg(test)]
mod tests;

/// Something was planted for later: egress-run exits 125, and says what the command's own exit
/// status was.
pub fn planted_exit(status: std::process::ExitStatus) -> std::process::ExitCode {
    eprintln!(
        "egress-run: exiting with 125 because of the above (the command itself exited {})",
        status
            .code()
            .map_or_else(|| status.to_string(), |code| code.to_string())
    );
    std::process::ExitCode::from(125)
}
