//! The macOS sandbox: the Seatbelt profile (SBPL) and the `/usr/bin/sandbox-exec` command line,
//! built by pure functions from a `Plan` so that both are tested by exact output on any
//! platform (no Mac runs them here). The fixed rules are `base.sbpl`; the rules that depend on
//! the run name their paths only as parameters, `(param "NAME")`, whose values go to
//! sandbox-exec as `-D NAME=VALUE`: a path with quotes, backslashes, parentheses or newlines
//! can change a value, never the profile's text. What the plan holds is decided by `plan`, with
//! the same decision functions as on Linux (`secrets`, `protect`).

pub mod plan;
pub mod quote;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Everything the profile depends on. Paths are as Seatbelt sees them: absolute, links
/// resolved (it matches the real path, `/private/var/…` rather than `/var/…`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The embedded proxy's port on loopback: the only network destination.
    pub proxy_port: u16,
    /// Writable trees (the working directory, `--allow-write`); empty with `--read-only`.
    pub writable: Vec<PathBuf>,
    /// The run's private temporary directory (`TMPDIR` inside), writable even when read-only.
    pub temp: PathBuf,
    /// Neither readable, nor writable, nor linkable: credential files and directories.
    pub secrets: Vec<PathBuf>,
    /// Directories that must keep their name: a secret's ancestors inside a writable tree
    /// (renamed, the secret would be readable under the new name) and what `protect` pins.
    pub unmovable: Vec<PathBuf>,
    /// Not writable (nor linkable) although inside a writable tree: what programs run code
    /// from (`protect`). Unlike a mount, a rule holds for a path that does not exist yet.
    pub read_only: Vec<PathBuf>,
}

/// A profile and the values of its parameters, in the order they are passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub text: String,
    pub params: Vec<(String, PathBuf)>,
}

/// The fixed part: what every run allows and denies (see the file's comments).
const BASE: &str = include_str!("seatbelt/base.sbpl");

/// `sandbox-exec` by absolute path: a `$PATH` lookup could find a fake one.
pub const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

pub fn profile(plan: &Plan) -> Profile {
    let mut out = Profile {
        text: BASE.to_string(),
        params: Vec::new(),
    };
    out.rules(
        "Writable: the working tree, --allow-write paths, the run's own temporary directory.",
        "(allow file-write* (subpath {}))",
        "WRITABLE",
        plan.writable.iter().chain(std::iter::once(&plan.temp)),
    );
    out.rules(
        "Kept as they are inside the writable trees: what the host runs code from.",
        "(deny file-write* file-link file-clone (subpath {}))",
        "READ_ONLY",
        &plan.read_only,
    );
    out.rules(
        "Kept where they are: neither renamed nor removed.",
        "(deny file-write-unlink (literal {}))",
        "UNMOVABLE",
        &plan.unmovable,
    );
    // Last, so that no allow above can reopen them.
    out.rules(
        "Secrets: not read, written, moved, hard-linked or cloned under another name.",
        "(deny file-read* file-write* file-link file-clone (subpath {}))",
        "SECRET",
        &plan.secrets,
    );
    // A number, not a path: nothing in it can need quoting. `localhost` admits 127.0.0.1
    // and ::1, where the proxy listens on the same port.
    let _ = write!(
        out.text,
        "\n; The network: only the proxy.\n(allow network-outbound (remote ip \"localhost:{}\"))\n",
        plan.proxy_port
    );
    out
}

impl Profile {
    /// One rule per path, `{}` standing for `(param "PREFIX_N")`, under a comment.
    fn rules<'a>(
        &mut self,
        comment: &str,
        rule: &str,
        prefix: &str,
        paths: impl IntoIterator<Item = &'a PathBuf>,
    ) {
        let mut paths = paths.into_iter().peekable();
        if paths.peek().is_none() {
            return;
        }
        let _ = writeln!(self.text, "\n; {comment}");
        for (n, path) in paths.enumerate() {
            let name = format!("{prefix}_{n}");
            let _ = writeln!(
                self.text,
                "{}",
                rule.replace("{}", &format!("(param \"{name}\")"))
            );
            self.params.push((name, path.clone()));
        }
    }
}

/// The arguments to `SANDBOX_EXEC`: the parameters, the profile inline, then the command after
/// `--` (so that a command starting with `-` is not read as an option).
pub fn command_line(profile: &Profile, command: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    for (name, value) in &profile.params {
        let mut define = OsString::from(format!("{name}="));
        define.push(value);
        args.push("-D".into());
        args.push(define);
    }
    args.push("-p".into());
    args.push(profile.text.clone().into());
    args.push("--".into());
    args.extend(command.iter().cloned());
    args
}

/// `program` and `args` as a shell would take them back: each word in single quotes when it
/// needs any (`--print-profile`, for a person to read or paste).
pub fn shown(program: &str, args: &[OsString]) -> String {
    let words = std::iter::once(std::ffi::OsStr::new(program))
        .chain(args.iter().map(OsString::as_os_str))
        .map(|word| {
            let text = word.to_string_lossy();
            let plain = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b));
            match plain {
                true => text.into_owned(),
                false => format!("'{}'", text.replace('\'', "'\\''")),
            }
        });
    words.collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
