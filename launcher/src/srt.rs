//! `--srt-settings FILE`: Anthropic sandbox-runtime's settings, so a team can switch without
//! rewriting them. Honoured: `network.allowedDomains` / `deniedDomains` (as allow / deny
//! patterns with srt's meaning — checked against srt 0.0.78's matcher: a bare name is that host
//! only, `*.name` its subdomains only, and either allows every port unless one is named), `filesystem.denyRead`, `allowWrite`, `denyWrite`. Every other key gets a warning
//! naming it, never silence.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::Value;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SrtSettings {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub deny_read: Vec<PathBuf>,
    pub allow_write: Vec<PathBuf>,
    pub deny_write: Vec<PathBuf>,
    /// One line per key that egress-run does not honour.
    pub warnings: Vec<String>,
}

pub fn load(path: &Path, home: &Path) -> anyhow::Result<SrtSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--srt-settings {}", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("--srt-settings {}: not JSON", path.display()))?;
    parse(&value, home)
}

pub fn parse(value: &Value, home: &Path) -> anyhow::Result<SrtSettings> {
    let Some(top) = value.as_object() else {
        bail!("srt settings must be a JSON object");
    };
    let mut out = SrtSettings::default();
    for (key, section) in top {
        match (key.as_str(), section.as_object()) {
            ("network", Some(network)) => {
                for (name, entry) in network {
                    match name.as_str() {
                        "allowedDomains" => {
                            for domain in strings(entry, "network.allowedDomains")? {
                                match allow_pattern(&domain) {
                                    Some(pattern) => out.allow.push(pattern),
                                    None => out.warnings.push(format!(
                                        "egress-run: --srt-settings: network.allowedDomains {domain:?} \
                                         (everything) is not honoured: egress-run allows only named \
                                         destinations"
                                    )),
                                }
                            }
                        }
                        "deniedDomains" => out.deny = strings(entry, "network.deniedDomains")?,
                        other => out.warnings.push(unhonoured(&format!("network.{other}"))),
                    }
                }
            }
            ("filesystem", Some(filesystem)) => {
                for (name, entry) in filesystem {
                    let paths = || -> anyhow::Result<Vec<PathBuf>> {
                        Ok(strings(entry, &format!("filesystem.{name}"))?
                            .iter()
                            .map(|p| expand(p, home))
                            .collect())
                    };
                    match name.as_str() {
                        "denyRead" => out.deny_read = paths()?,
                        "allowWrite" => out.allow_write = paths()?,
                        "denyWrite" => out.deny_write = paths()?,
                        other => out
                            .warnings
                            .push(unhonoured(&format!("filesystem.{other}"))),
                    }
                }
            }
            (other, _) => out.warnings.push(unhonoured(other)),
        }
    }
    Ok(out)
}

/// An srt allow entry as an egress pattern with srt's meaning: a bare name or `*.name` allows
/// every port in srt (egress's own default is 443 for tunnels and 80 for plain HTTP), so it
/// gets `:*`; an entry with a port keeps it. `None` for srt's `*`, which allows everything.
/// Deny entries need no change: an egress deny entry without a port covers every port.
fn allow_pattern(entry: &str) -> Option<String> {
    if entry == "*" {
        return None;
    }
    let has_port = if let Some(rest) = entry.strip_prefix('[') {
        rest.split_once(']')
            .is_some_and(|(_, after)| after.starts_with(':'))
    } else {
        // Two colons or more and no brackets: a bare IPv6 address, never split.
        entry.matches(':').count() == 1
    };
    Some(if has_port {
        entry.to_string()
    } else if entry.starts_with('[') {
        format!("{entry}:*")
    } else if entry.matches(':').count() > 1 {
        format!("[{entry}]:*")
    } else {
        format!("{entry}:*")
    })
}

fn unhonoured(key: &str) -> String {
    format!("egress-run: --srt-settings: {key} is not honoured by egress-run and is ignored")
}

fn strings(value: &Value, key: &str) -> anyhow::Result<Vec<String>> {
    let Some(items) = value.as_array() else {
        bail!("{key} must be a list of strings");
    };
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_string)
                .with_context(|| format!("{key} must be a list of strings"))
        })
        .collect()
}

/// `~/x` and `~` relative to `home`; other paths as written (made absolute later).
fn expand(path: &str, home: &Path) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if path == "~" => home.to_path_buf(),
        None => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_honoured_keys_map_and_the_rest_are_named() {
        let value: Value = serde_json::from_str(
            r#"{
                "network": {
                    "allowedDomains": ["github.com", "*.npmjs.org"],
                    "deniedDomains": ["evil.example"],
                    "allowUnixSockets": ["/var/run/docker.sock"],
                    "allowLocalBinding": true
                },
                "filesystem": {
                    "denyRead": ["~/.ssh"],
                    "allowWrite": [".", "/tmp/build"],
                    "denyWrite": ["~/.bashrc"]
                },
                "ignoreViolations": {}
            }"#,
        )
        .unwrap();
        let settings = parse(&value, Path::new("/home/dev")).unwrap();
        assert_eq!(settings.allow, ["github.com:*", "*.npmjs.org:*"]);
        assert_eq!(settings.deny, ["evil.example"]);
        assert_eq!(settings.deny_read, [PathBuf::from("/home/dev/.ssh")]);
        assert_eq!(
            settings.allow_write,
            [PathBuf::from("."), PathBuf::from("/tmp/build")]
        );
        assert_eq!(settings.deny_write, [PathBuf::from("/home/dev/.bashrc")]);
        assert_eq!(
            settings.warnings,
            [
                "egress-run: --srt-settings: ignoreViolations is not honoured by egress-run and is ignored",
                "egress-run: --srt-settings: network.allowLocalBinding is not honoured by egress-run and is ignored",
                "egress-run: --srt-settings: network.allowUnixSockets is not honoured by egress-run and is ignored",
            ]
        );
    }

    #[test]
    fn allowed_domains_keep_srts_meaning_every_port_unless_one_is_named() {
        for (srt, egress) in [
            ("example.com", "example.com:*"),
            ("*.example.com", "*.example.com:*"),
            ("example.com:8443", "example.com:8443"),
            ("10.1.2.3", "10.1.2.3:*"),
            ("[::1]", "[::1]:*"),
            ("[2001:db8::1]:443", "[2001:db8::1]:443"),
            ("2001:db8::1", "[2001:db8::1]:*"),
            ("localhost", "localhost:*"),
        ] {
            let pattern = allow_pattern(srt).unwrap();
            assert_eq!(pattern, egress, "{srt}");
            assert!(egress_config::Pattern::parse(&pattern).is_ok(), "{pattern}");
        }
        assert_eq!(allow_pattern("*"), None);
        let value: Value =
            serde_json::from_str(r#"{"network": {"allowedDomains": ["*", "a.example"]}}"#).unwrap();
        let settings = parse(&value, Path::new("/h")).unwrap();
        assert_eq!(settings.allow, ["a.example:*"]);
        assert_eq!(
            settings.warnings,
            ["egress-run: --srt-settings: network.allowedDomains \"*\" (everything) is not honoured: egress-run allows only named destinations"]
        );
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let bad: Value =
            serde_json::from_str(r#"{"network": {"allowedDomains": "github.com"}}"#).unwrap();
        let e = parse(&bad, Path::new("/h")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "network.allowedDomains must be a list of strings"
        );
        assert!(parse(&Value::Array(vec![]), Path::new("/h")).is_err());
    }
}
