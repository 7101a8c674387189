//! The macOS sandbox profile (Seatbelt, SBPL) egress-run would hand to `/usr/bin/sandbox-exec`:
//! deny by default; network out only to the proxy on localhost; file writes only under the
//! allowed paths, with `file-write-unlink` denied elsewhere so rename tricks cannot move a
//! protected file out of the way; secrets unreadable. Plain string building, compiled and
//! tested on every platform, as is the `sandbox-exec` command line; the runner that uses them
//! (`macos`) exists only on macOS, and has not been run on a Mac yet.

#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatbeltPlan {
    pub proxy_port: u16,
    pub writable: Vec<PathBuf>,
    pub secrets: Vec<PathBuf>,
}

/// SBPL string literal: backslash and double quote escaped.
fn quoted(path: &std::path::Path) -> String {
    let text = path.to_string_lossy();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn profile(plan: &SeatbeltPlan) -> String {
    let mut out = String::from(
        "(version 1)\n\
         (deny default)\n\
         (allow process-exec process-fork signal (target same-sandbox))\n\
         (allow sysctl-read mach-lookup ipc-posix-shm)\n\
         (allow file-read*)\n\
         (allow file-write* (literal \"/dev/null\") (regex #\"^/dev/tty\") (subpath \"/private/tmp\") (subpath \"/private/var/folders\"))\n",
    );
    for path in &plan.writable {
        let _ = writeln!(out, "(allow file-write* (subpath {}))", quoted(path));
    }
    // Unlink and rename-away outside the writable paths, stated explicitly: a rule order
    // mistake above must not reopen them.
    let _ = write!(out, "(deny file-write-unlink (require-not (require-any");
    for path in &plan.writable {
        let _ = write!(out, " (subpath {})", quoted(path));
    }
    out.push_str(" (subpath \"/private/tmp\") (subpath \"/private/var/folders\"))))\n");
    for path in &plan.secrets {
        let _ = writeln!(out, "(deny file-read* (subpath {}))", quoted(path));
    }
    let _ = writeln!(
        out,
        "(allow network-outbound (remote ip \"localhost:{}\"))",
        plan.proxy_port
    );
    out
}

/// `sandbox-exec` by absolute path: a `$PATH` lookup could find a fake one.
pub const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// The arguments to `SANDBOX_EXEC`: the profile inline, then the command.
pub fn sandbox_exec_args(profile: &str, command: &[std::ffi::OsString]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["-p".into(), profile.into(), "--".into()];
    args.extend(command.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_exec_gets_the_profile_inline_and_the_command_after_dashes() {
        let args = sandbox_exec_args("(version 1)", &["make".into(), "-j4".into()]);
        assert_eq!(args, ["-p", "(version 1)", "--", "make", "-j4"]);
    }

    #[test]
    fn a_project_with_one_secret() {
        let plan = SeatbeltPlan {
            proxy_port: 41234,
            writable: vec!["/Users/dev/project".into()],
            secrets: vec!["/Users/dev/.ssh".into(), "/Users/dev/my \"keys\"".into()],
        };
        assert_eq!(
            profile(&plan),
            "(version 1)\n\
             (deny default)\n\
             (allow process-exec process-fork signal (target same-sandbox))\n\
             (allow sysctl-read mach-lookup ipc-posix-shm)\n\
             (allow file-read*)\n\
             (allow file-write* (literal \"/dev/null\") (regex #\"^/dev/tty\") (subpath \"/private/tmp\") (subpath \"/private/var/folders\"))\n\
             (allow file-write* (subpath \"/Users/dev/project\"))\n\
             (deny file-write-unlink (require-not (require-any (subpath \"/Users/dev/project\") (subpath \"/private/tmp\") (subpath \"/private/var/folders\"))))\n\
             (deny file-read* (subpath \"/Users/dev/.ssh\"))\n\
             (deny file-read* (subpath \"/Users/dev/my \\\"keys\\\"\"))\n\
             (allow network-outbound (remote ip \"localhost:41234\"))\n"
        );
    }

    #[test]
    fn read_only_has_no_writable_subpath_but_temp() {
        let plan = SeatbeltPlan {
            proxy_port: 3128,
            writable: vec![],
            secrets: vec![],
        };
        let text = profile(&plan);
        assert_eq!(text.matches("(allow file-write* (subpath").count(), 0);
        assert!(text.contains("(allow network-outbound (remote ip \"localhost:3128\"))"));
        assert!(text.starts_with("(version 1)\n(deny default)\n"));
    }
}
