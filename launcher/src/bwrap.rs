//! The bubblewrap command line, built by a pure function so that every flag is tested by exact
//! output: namespaces, a read-only root, writable working directory and allowed paths, private
//! /tmp, fresh /dev and /proc, secrets masked, and files that would let a command escape later
//! (shell rc files, git directories: see `protect`) write-protected.

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
    /// egress-run's own binary (see `self_inside`).
    pub self_exe: PathBuf,
    /// Secret files and directories that exist (masked, found by `secrets::discover`), and
    /// write-protected paths that exist (`existing_protected_paths`), so `args` stays pure.
    pub secrets: Vec<PathBuf>,
    pub protected: Vec<PathBuf>,
    /// Mounts protecting what exists in the writable paths (see `protect`): after the writable
    /// binds, before the masks, so that a mask always wins.
    pub guarded: Vec<Bind>,
    /// Connections are captured (see `capture`): the sandbox shares the capture step's network
    /// namespace instead of getting an empty one of its own.
    pub capture: bool,
    /// With capture: `/etc/resolv.conf` read from this descriptor, at this path (the host's
    /// file, or where its link leads). None when the host has none (glibc then asks 127.0.0.1).
    pub resolv_conf: Option<(i32, PathBuf)>,
}

/// What `protect` guards: here each is a `-try` bind of a path onto itself, so one that
/// vanished meanwhile is skipped, never created.
pub use crate::protect::Bind;

/// Where egress-run's own binary appears inside the sandbox when its own path is not visible
/// there (under /tmp, which is private inside, or a masked path).
pub const SELF_MOUNT: &str = "/run/egress-run";

/// Directories whose host contents the sandbox does not see.
const REPLACED: [&str; 4] = ["/tmp", "/run", "/dev", "/proc"];

/// egress-run's path inside the sandbox, for the inner half and the `connect` helper: its own
/// path when the read-only root shows it there (no mount needed: one less for every start), else
/// `SELF_MOUNT`. A path that would need quoting in `GIT_SSH_COMMAND` is mounted too.
pub fn self_inside(plan: &Plan) -> PathBuf {
    let exe = &plan.self_exe;
    let hidden = REPLACED
        .iter()
        .map(Path::new)
        .chain(plan.secrets.iter().map(PathBuf::as_path))
        .chain(plan.deny_read.iter().map(PathBuf::as_path))
        .any(|dir| exe.starts_with(dir));
    let plain = exe.to_str().is_some_and(|s| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    });
    if hidden || !plain {
        PathBuf::from(SELF_MOUNT)
    } else {
        exe.clone()
    }
}

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

/// Refuses a working directory or `--allow-write` path whose bind would undo the sandbox's own
/// mounts: `/` (it would cover the private /tmp and /run and the fresh /dev and /proc with the
/// host's), those four themselves, and anything under /dev, /proc or /sys.
pub fn check_bindable(path: &Path, what: &str) -> Result<(), String> {
    let replaced = REPLACED.iter().any(|dir| path == Path::new(dir));
    let system = ["/dev", "/proc", "/sys"]
        .iter()
        .any(|dir| path.starts_with(dir));
    if path == Path::new("/") || replaced || system {
        return Err(format!(
            "{what} {} cannot be bound into the sandbox: it would replace the sandbox's own \
             /tmp, /run, /dev or /proc with the host's; use a project directory",
            path.display()
        ));
    }
    Ok(())
}

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
        ],
    );
    if !plan.capture {
        out.push("--unshare-net".into());
    }
    push(
        &mut out,
        &[
            &"--unshare-cgroup-try",
            &"--die-with-parent",
            // Run as root, bwrap would leave the command every capability inside its namespaces,
            // enough to unmount the masks over secrets.
            &"--cap-drop",
            &"ALL",
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
    if plan.read_only {
        // Bound all the same, read-only: a working directory under /tmp or /run would not
        // exist inside otherwise.
        push(&mut out, &[&"--ro-bind", &plan.cwd, &plan.cwd]);
    } else {
        push(&mut out, &[&"--bind", &plan.cwd, &plan.cwd]);
        for path in &plan.allow_write {
            push(&mut out, &[&"--bind-try", path, path]);
        }
    }
    if self_inside(plan) != plan.self_exe {
        push(&mut out, &[&"--ro-bind", &plan.self_exe, &SELF_MOUNT]);
    }
    for bind in plan.guarded.iter().filter(|_| !plan.read_only) {
        match bind {
            Bind::Pin(path) => push(&mut out, &[&"--bind-try", path, path]),
            Bind::ReadOnly(path) => push(&mut out, &[&"--ro-bind-try", path, path]),
        }
    }
    // Masks come after the writable binds, so a secret inside the working tree stays masked.
    for path in plan.secrets.iter().chain(&plan.deny_read) {
        mask(&mut out, path);
    }
    // The root is read-only already: only what lies under a writable bind needs protecting
    // again, and each bind skipped is a mount less for bwrap to make at every start.
    for path in plan.protected.iter().chain(&plan.deny_write) {
        if writable(plan).any(|w| path.starts_with(w)) {
            out.extend(["--ro-bind-try".into(), path.into(), path.into()]);
        }
    }
    if let Some((fd, path)) = plan.resolv_conf.as_ref().filter(|_| plan.capture) {
        push(&mut out, &[&"--ro-bind-data", &fd.to_string(), path]);
    }
    push(&mut out, &[&"--chdir", &plan.cwd, &"--"]);
    out
}

/// The paths bound writable, in the order `args` binds them.
fn writable(plan: &Plan) -> impl Iterator<Item = &Path> {
    std::iter::once(plan.cwd.as_path())
        .chain(plan.allow_write.iter().map(PathBuf::as_path))
        .filter(|_| !plan.read_only)
}

/// Hides `path`: an empty tmpfs over a directory, /dev/null over a file. Only for paths that
/// exist (see `existing_sensitive_paths` and `run`): bwrap would create a missing one.
fn mask(out: &mut Vec<OsString>, path: &Path) {
    if path.is_dir() {
        out.extend(["--tmpfs".into(), path.into()]);
    } else {
        out.extend(["--ro-bind-try".into(), "/dev/null".into(), path.into()]);
    }
}

/// The protected files of the home directories that exist now (binds over missing
/// paths would create them: the "phantom dotfiles" other sandboxes leave behind). Secrets are
/// found by `secrets::discover`.
pub fn existing_protected_paths(homes: &[PathBuf]) -> Vec<PathBuf> {
    let mut protected: Vec<PathBuf> = Vec::new();
    let home_protected = homes
        .iter()
        .flat_map(|home| HOME_PROTECTED.iter().map(move |p| home.join(p)));
    for path in home_protected {
        // A link's target is what a write would change: protect it too (`args` keeps only what
        // lies under a writable path, by plain prefix, so both spellings must be listed).
        if let Ok(real) = path.canonicalize() {
            let linked = real != path;
            protected.push(path);
            if linked {
                protected.push(real);
            }
        }
    }
    // Git directories: see `protect`.
    protected
}

#[cfg(test)]
mod tests;
