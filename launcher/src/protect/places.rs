//! The places a user's programs run code from on their own, outside any repository: shell
//! startup files, git's global configuration, Python's user site-packages, ssh's files, user
//! services and session autostart, editors git starts, and the directories on `PATH` and the
//! like. A file or directory here that the command could write would run at the next login,
//! shell, `git`, `python3`, ssh login or service start.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Under each home directory. Directories stand for everything in them.
pub const HOME: [&str; 70] = [
    // Shells: login, interactive and logout files, and what the usual ones source.
    ".profile",
    ".bash_profile",
    ".bash_login",
    ".bashrc",
    ".bash_logout",
    ".bash_aliases",
    ".bashrc.d",
    ".inputrc",
    ".zshenv",
    ".zprofile",
    ".zshrc",
    ".zlogin",
    ".zlogout",
    ".oh-my-zsh",
    ".config/zsh",
    ".config/fish",
    ".kshrc",
    ".mkshrc",
    ".cshrc",
    ".tcshrc",
    ".login",
    ".logout",
    // The session: PAM's environment, X and desktop autostart, user services.
    ".pam_environment",
    ".xprofile",
    ".xinitrc",
    ".xsession",
    ".xsessionrc",
    ".Xclients",
    ".config/autostart",
    ".config/autostart-scripts",
    ".config/plasma-workspace",
    ".config/environment.d",
    ".config/systemd",
    ".local/share/systemd",
    // macOS: the user's launchd agents, started at login.
    "Library/LaunchAgents",
    // git's own global configuration.
    ".gitconfig",
    ".config/git",
    // Python: user site-packages (`.pth` files, usercustomize) under .local/lib.
    ".local/lib",
    // ssh: authorized_keys, rc, environment, config (ProxyCommand, LocalCommand).
    ".ssh",
    // Programs on the usual PATH of a login shell (Debian's .profile adds the first two).
    "bin",
    ".local/bin",
    ".cargo/bin",
    "go/bin",
    // Editors git starts for a commit message, and their plugin directories.
    ".vimrc",
    ".exrc",
    ".gvimrc",
    ".vim",
    ".config/nvim",
    ".emacs",
    ".emacs.d",
    ".config/emacs",
    // Tools whose user configuration can name a program to run.
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".cargo/config",
    ".cargo/config.toml",
    ".config/direnv",
    // direnv loads an .envrc only once allowed; the allowed ones are listed here.
    ".local/share/direnv",
    ".config/gh",
    ".aws",
    ".kube",
    ".gnupg",
    ".docker",
    ".gdbinit",
    ".tmux.conf",
    ".screenrc",
    ".forward",
    ".mailcap",
    ".Rprofile",
    ".psqlrc",
];

/// Under `$XDG_CONFIG_HOME` when it is set (it replaces `~/.config` for these programs).
const XDG_CONFIG: [&str; 8] = [
    "git",
    "systemd",
    "autostart",
    "environment.d",
    "fish",
    "nvim",
    "direnv",
    "zsh",
];

/// Variables that name a directory list, a directory, or a file run at start-up.
const DIR_LISTS: [&str; 3] = ["PATH", "PYTHONPATH", "LD_LIBRARY_PATH"];
const DIRS: [&str; 2] = ["PYTHONUSERBASE", "ZDOTDIR"];
const FILES: [&str; 5] = [
    "BASH_ENV",
    "ENV",
    "PYTHONSTARTUP",
    "GIT_CONFIG_GLOBAL",
    "LD_PRELOAD",
];

/// Every place, as a path that may or may not exist: the home directories' and those the
/// environment names (`var`). Relative entries of `PATH` and the like (`.`, an empty one) are
/// left out: they mean whatever directory a program starts in.
pub fn all(homes: &[PathBuf], var: &dyn Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = homes
        .iter()
        .flat_map(|home| HOME.iter().map(move |p| home.join(p)))
        .collect();
    if let Some(config) = var("XDG_CONFIG_HOME") {
        out.extend(XDG_CONFIG.iter().map(|p| Path::new(&config).join(p)));
    }
    if let Some(data) = var("XDG_DATA_HOME") {
        out.push(Path::new(&data).join("systemd"));
    }
    if let Some(zdotdir) = var("ZDOTDIR") {
        let zdotdir = Path::new(&zdotdir);
        out.extend(
            [".zshenv", ".zprofile", ".zshrc", ".zlogin", ".zlogout"].map(|f| zdotdir.join(f)),
        );
    }
    for name in DIR_LISTS {
        if let Some(list) = var(name) {
            out.extend(std::env::split_paths(&list));
        }
    }
    for name in DIRS.iter().chain(&FILES) {
        if let Some(value) = var(name) {
            // LD_PRELOAD may list several, separated by spaces or colons.
            let text = value.to_string_lossy().into_owned();
            if *name == "LD_PRELOAD" {
                out.extend(text.split([' ', ':']).map(PathBuf::from));
            } else {
                out.push(PathBuf::from(value));
            }
        }
    }
    out.retain(|p| p.is_absolute());
    out
}

/// Where paths really are: the deepest existing ancestor with links resolved, and the rest
/// appended (so a place that does not exist yet, under a linked `~/.config`, is found where a
/// write would put it); a path that is itself a link is resolved too. Directories are resolved
/// once: the places share a few parents, and each resolution costs a `readlink` per component.
#[derive(Debug, Default)]
pub struct Resolver {
    dirs: std::collections::HashMap<PathBuf, PathBuf>,
}

impl Resolver {
    pub fn real(&mut self, path: &Path) -> PathBuf {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return path.to_path_buf();
        };
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            if let Ok(resolved) = path.canonicalize() {
                return resolved;
            }
        }
        self.real_dir(parent).join(name)
    }

    fn real_dir(&mut self, dir: &Path) -> PathBuf {
        if let Some(known) = self.dirs.get(dir) {
            return known.clone();
        }
        let resolved = match dir.canonicalize() {
            Ok(resolved) => resolved,
            Err(_) => match (dir.parent(), dir.file_name()) {
                (Some(parent), Some(name)) => self.real_dir(parent).join(name),
                _ => dir.to_path_buf(),
            },
        };
        self.dirs.insert(dir.to_path_buf(), resolved.clone());
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_come_from_the_homes_and_the_environment() {
        let vars = |name: &str| -> Option<OsString> {
            match name {
                "PATH" => Some("/usr/bin:.::/home/u/proj/bin".into()),
                "XDG_CONFIG_HOME" => Some("/home/u/cfg".into()),
                "LD_PRELOAD" => Some("/opt/a.so /opt/b.so".into()),
                "BASH_ENV" => Some("relative/env".into()),
                _ => None,
            }
        };
        let places = all(&[PathBuf::from("/home/u")], &vars);
        for expected in [
            "/home/u/.bash_profile",
            "/home/u/.config/systemd",
            "/home/u/.local/lib",
            "/home/u/cfg/git",
            "/usr/bin",
            "/home/u/proj/bin",
            "/opt/b.so",
        ] {
            assert!(places.contains(&PathBuf::from(expected)), "{expected}");
        }
        assert!(!places
            .iter()
            .any(|p| p == Path::new(".") || p.is_relative()));
    }

    #[test]
    fn places_are_found_where_they_really_are_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        std::fs::create_dir(dir.join("dotfiles")).unwrap();
        std::os::unix::fs::symlink(dir.join("dotfiles"), dir.join(".config")).unwrap();
        std::fs::write(dir.join("dotfiles/bashrc"), "").unwrap();
        std::os::unix::fs::symlink(dir.join("dotfiles/bashrc"), dir.join(".bashrc")).unwrap();
        let mut resolver = Resolver::default();
        assert_eq!(
            resolver.real(&dir.join(".config/systemd/user")),
            dir.join("dotfiles/systemd/user")
        );
        assert_eq!(
            resolver.real(&dir.join(".bashrc")),
            dir.join("dotfiles/bashrc")
        );
        assert_eq!(resolver.real(&dir.join(".profile")), dir.join(".profile"));
        assert_eq!(
            resolver.real(Path::new("/no/such/place")),
            Path::new("/no/such/place")
        );
    }
}
