//! The bubblewrap command line, built by a pure function so that every flag is tested by exact
//! output: namespaces, a read-only root, writable working directory and allowed paths, private
//! /tmp, fresh /dev and /proc, secrets masked, and files that would let a command escape later
//! (shell rc files, git hooks and config) write-protected.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What the sandbox looks like, as decided from the command line and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The user's working directory: writable unless `read_only`.
    pub cwd: PathBuf,
    /// `--allow-write` paths (absolute), writable besides the working directory.
    pub allow_write: Vec<PathBuf>,
    /// `--deny-read` paths (absolute), hidden: an empty directory or file over them.
    pub deny_read: Vec<PathBuf>,
    /// Kept read-only even inside writable paths (srt's `denyWrite`).
    pub deny_write: Vec<PathBuf>,
    /// Nothing writable but a private /tmp.
    pub read_only: bool,
    /// The private runtime directory holding the bridge socket, mounted at `RUNTIME_MOUNT`.
    pub runtime_dir: PathBuf,
    /// egress-run's own binary, mounted at `SELF_MOUNT`.
    pub self_exe: PathBuf,
    /// Secret files and directories that exist (masked), and write-protected paths that exist;
    /// found by `existing_sensitive_paths`, so the function below stays pure.
    pub secrets: Vec<PathBuf>,
    pub protected: Vec<PathBuf>,
}

/// Where the runtime directory appears inside the sandbox.
pub const RUNTIME_MOUNT: &str = "/run/egress";

/// Where egress-run's own binary appears inside the sandbox: wherever it lives outside (even
/// under /tmp, which is private inside), it is found here for the inner half and `connect`.
pub const SELF_MOUNT: &str = "/run/egress-run";

/// Under the home directory: credentials a sandboxed command has no business reading.
pub const HOME_SECRETS: [&str; 7] = [
    ".ssh",
    ".aws",
    ".gnupg",
    ".kube",
    ".docker/config.json",
    ".netrc",
    ".config/gcloud",
];

/// Under the home directory: files that run code at the user's next login or shell.
pub const HOME_PROTECTED: [&str; 7] = [
    ".bashrc",
    ".bash_profile",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".bash_login",
    ".config/fish/config.fish",
];

/// The bwrap arguments, up to and including `--`; the caller appends the inner command.
pub fn args(plan: &Plan) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    fn push(out: &mut Vec<OsString>, items: &[&dyn AsRef<std::ffi::OsStr>]) {
        out.extend(items.iter().map(|item| item.as_ref().to_os_string()));
    }
    push(
        &mut out,
        &[
            &"--unshare-user",
            &"--unshare-pid",
            &"--unshare-ipc",
            &"--unshare-uts",
            &"--unshare-net",
            &"--unshare-cgroup-try",
            &"--die-with-parent",
            &"--ro-bind",
            &"/",
            &"/",
            &"--dev",
            &"/dev",
            &"--proc",
            &"/proc",
            &"--tmpfs",
            &"/tmp",
            // Host daemons' sockets live under /run; the sandbox gets an empty one, holding only
            // the bridge directory.
            &"--tmpfs",
            &"/run",
        ],
    );
    if !plan.read_only {
        push(&mut out, &[&"--bind", &plan.cwd, &plan.cwd]);
        for path in &plan.allow_write {
            push(&mut out, &[&"--bind-try", path, path]);
        }
    }
    push(&mut out, &[&"--bind", &plan.runtime_dir, &RUNTIME_MOUNT]);
    push(&mut out, &[&"--ro-bind", &plan.self_exe, &SELF_MOUNT]);
    // Masks come after the writable binds, so a secret inside the working tree stays masked.
    for path in plan.secrets.iter().chain(&plan.deny_read) {
        mask(&mut out, path);
    }
    for path in plan.protected.iter().chain(&plan.deny_write) {
        out.extend(["--ro-bind-try".into(), path.into(), path.into()]);
    }
    push(&mut out, &[&"--chdir", &plan.cwd, &"--"]);
    out
}

/// Hides `path`: an empty tmpfs over a directory, /dev/null over a file.
fn mask(out: &mut Vec<OsString>, path: &Path) {
    if path.is_dir() {
        out.extend(["--tmpfs".into(), path.into()]);
    } else {
        out.extend(["--ro-bind-try".into(), "/dev/null".into(), path.into()]);
    }
}

/// The secrets and protected files of `home` and `cwd` that exist now (masks over missing
/// paths would create them: the "phantom dotfiles" other sandboxes leave behind).
pub fn existing_sensitive_paths(home: &Path, cwd: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut secrets: Vec<PathBuf> = HOME_SECRETS
        .iter()
        .map(|p| home.join(p))
        .filter(|p| p.exists())
        .collect();
    if let Ok(entries) = std::fs::read_dir(cwd) {
        let mut env_files: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".env"))
            .map(|e| e.path())
            .collect();
        env_files.sort();
        secrets.extend(env_files);
    }
    let mut protected: Vec<PathBuf> = HOME_PROTECTED
        .iter()
        .map(|p| home.join(p))
        .filter(|p| p.exists())
        .collect();
    let git = cwd.join(".git");
    if git.is_dir() {
        protected.extend(
            [git.join("hooks"), git.join("config")]
                .into_iter()
                .filter(|p| p.exists()),
        );
    }
    (secrets, protected)
}

#[cfg(test)]
mod tests;
