//! egress-run's own path as a word of `GIT_SSH_COMMAND`'s `ProxyCommand` (`env::proxy_env`
//! puts it inside `ProxyCommand='… connect %h %p'`). On Linux the sandbox shows egress-run at
//! a plain path (`bwrap::self_inside`); on macOS it is wherever the user keeps it, so it is
//! quoted for each reader in turn: the shell git runs `GIT_SSH_COMMAND` with (it removes the
//! single quotes), ssh (`%` starts a token), and the shell ssh runs the `ProxyCommand` with
//! (it removes the double quotes).

use std::path::Path;

/// `path` as it must appear between `ProxyCommand='` and ` connect`. `None` when it is not
/// UTF-8 (an environment variable's text cannot carry it faithfully).
pub fn proxy_command_word(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    let mut inner = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' | '$' | '`' => {
                inner.push('\\');
                inner.push(c);
            }
            '%' => inner.push_str("%%"),
            _ => inner.push(c),
        }
    }
    inner.push('"');
    // Inside the outer single quotes, a single quote ends them, is escaped, and they resume.
    Some(inner.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_both_shells_and_ssh() {
        let cases = [
            ("/usr/local/bin/egress-run", "\"/usr/local/bin/egress-run\""),
            ("/Users/a b/bin/egress-run", "\"/Users/a b/bin/egress-run\""),
            ("/opt/it's/egress-run", "\"/opt/it'\\''s/egress-run\""),
            ("/opt/\"q\"/e", "\"/opt/\\\"q\\\"/e\""),
            ("/opt/$HOME/`id`/e", "\"/opt/\\$HOME/\\`id\\`/e\""),
            ("/opt/100%/e", "\"/opt/100%%/e\""),
            (
                "/Users/zoë/工具/egress-run",
                "\"/Users/zoë/工具/egress-run\"",
            ),
        ];
        for (path, word) in cases {
            assert_eq!(
                proxy_command_word(Path::new(path)).as_deref(),
                Some(word),
                "{path}"
            );
        }
    }

    /// The real readers: git's shell runs `GIT_SSH_COMMAND`, the real ssh expands the
    /// `ProxyCommand` and runs it; the program at the awkward path records the arguments it got.
    #[test]
    fn the_real_ssh_runs_egress_run_at_an_awkward_path() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a b", "it's", "q\"uote", "$HOME`x`", "100%", "zoë 工具"] {
            let bin = dir.path().join(name);
            std::fs::create_dir(&bin).unwrap();
            let exe = bin.join("egress-run");
            let record = dir.path().join("args");
            let _ = std::fs::remove_file(&record);
            std::fs::write(
                &exe,
                format!(
                    "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n",
                    record.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
            let word = proxy_command_word(&exe).unwrap();
            let vars = crate::env::proxy_env(49152, &word);
            let command = &vars.iter().find(|(k, _)| k == "GIT_SSH_COMMAND").unwrap().1;
            // As git runs it: through sh, with its own arguments after.
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "{command} -F /dev/null -o BatchMode=yes -p 2222 \"$@\" true"
                ))
                .arg("sh")
                .arg("example.test")
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(!status.success(), "ssh cannot log in through the fake");
            let args = std::fs::read_to_string(&record)
                .unwrap_or_else(|_| panic!("{name}: the ProxyCommand did not run {exe:?}"));
            assert_eq!(
                args, "connect\n--proxy-port\n49152\nexample.test\n2222\n",
                "{name}"
            );
        }
    }
}
