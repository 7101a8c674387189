//! The caller's environment variables that look like credentials, kept from the command:
//! by name (`*_TOKEN`, `*_SECRET*`, `*_PASSWORD`, `*_API_KEY`, …), by value (a URL with a
//! password, a token with a well-known prefix, a private key), and any holding a parent proxy's
//! password, whatever its name. `--pass-env NAME` keeps one (not a parent's password, which the
//! command never sees). Only names are ever reported, never values.

use std::ffi::{OsStr, OsString};

/// Why a variable is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its name or value looks like a credential.
    Credential,
    /// It holds a parent proxy's password (or is `EGRESS_PROXY_PASSWORD`).
    ParentPassword,
}

/// The variables removed, sorted by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scrub {
    pub removed: Vec<(OsString, Why)>,
}

/// Words that make a name a credential's wherever they stand (`GITHUB_TOKEN`, `CLIENTSECRET`,
/// `TF_TOKEN_app_terraform_io`): a word ending so.
const ENDINGS: [&str; 11] = [
    "TOKEN",
    "TOKENS",
    "SECRET",
    "SECRETS",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "CREDENTIALS",
    "APIKEY",
    "PRIVATEKEY",
];
/// Words that do so only as a name's last word (`DB_PASS`, `STRIPE_KEY`, `npm_config__auth`;
/// but `SSH_AUTH_SOCK` or `KEY_PATH` are not secrets).
const LAST: [&str; 7] = ["KEY", "PASS", "PW", "AUTH", "PAT", "JWT", "COOKIE"];
/// Two words in a row (`AWS_ACCESS_KEY_ID`, `AZURE_STORAGE_CONNECTION_STRING`).
const PAIRS: [(&str, &str); 6] = [
    ("API", "KEY"),
    ("ACCESS", "KEY"),
    ("PRIVATE", "KEY"),
    ("AUTH", "KEY"),
    ("CONNECTION", "STRING"),
    ("WEBHOOK", "URL"),
];
/// Names that none of the rules above catch.
const KNOWN: [&str; 3] = ["DOCKER_AUTH_CONFIG", "BW_SESSION", "SLACK_WEBHOOK"];
/// Name prefixes (1Password's `OP_SESSION_<account>`).
const KNOWN_PREFIXES: [&str; 1] = ["OP_SESSION_"];

/// Whether `name` looks like a credential's.
pub fn credential_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if KNOWN.contains(&upper.as_str()) || KNOWN_PREFIXES.iter().any(|p| upper.starts_with(p)) {
        return true;
    }
    let words: Vec<&str> = upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().any(|w| ENDINGS.iter().any(|e| w.ends_with(e)))
        || words.last().is_some_and(|w| LAST.contains(w))
        || words.windows(2).any(|w| PAIRS.contains(&(w[0], w[1])))
}

/// Token formats with a fixed prefix, and how long such a token is at least.
const TOKEN_PREFIXES: [(&str, usize); 13] = [
    ("ghp_", 36),
    ("gho_", 36),
    ("ghu_", 36),
    ("ghs_", 36),
    ("ghr_", 36),
    ("github_pat_", 60),
    ("glpat-", 20),
    ("xoxb-", 20),
    ("xoxp-", 20),
    ("xoxa-", 20),
    ("sk-ant-", 40),
    ("sk-proj-", 40),
    ("npm_", 36),
];

/// Whether `value` looks like a credential whatever its variable's name: a URL with a password
/// in it, a token of a well-known format, an AWS access key id, a PEM private key.
pub fn credential_value(value: &str) -> bool {
    let value = value.trim();
    let token = TOKEN_PREFIXES.iter().any(|(prefix, len)| {
        value.starts_with(prefix)
            && value.len() >= *len
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    let aws_key_id = value.len() == 20
        && (value.starts_with("AKIA") || value.starts_with("ASIA"))
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    token || aws_key_id || value.contains("PRIVATE KEY-----") || url_with_password(value)
}

/// `scheme://user:password@host…` anywhere in `value` (a list of URLs, a connection string).
fn url_with_password(value: &str) -> bool {
    value.match_indices("://").any(|(at, _)| {
        let rest = &value[at + 3..];
        let authority = rest
            .split(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .next()
            .unwrap_or("");
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    })
}

/// Shorter passwords are matched only as a variable's whole value: found inside longer
/// values, they would remove harmless variables by chance.
const CONTAINED_MIN: usize = 6;

/// Decides what to remove from `env` (the caller's). `passwords`: the parent proxies' passwords
/// (`password_env`, `password_file`, in a URL), found in any variable. `pass`: `--pass-env`
/// names, each exact or a prefix ending in `*`. `set_here`: the variables egress-run sets itself
/// (their caller's values are replaced, not removed). Refuses to pass a parent's password or a
/// variable egress-run sets.
pub fn scrub(
    env: &[(OsString, OsString)],
    passwords: &[&str],
    pass: &[String],
    set_here: &[String],
) -> Result<Scrub, String> {
    let passed = |name: &str| {
        pass.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        })
    };
    // A prefix may cover names egress-run sets (`npm_config_*`): it applies to the others.
    if let Some(p) = pass.iter().find(|p| set_here.contains(p)) {
        return Err(format!(
            "--pass-env {p}: egress-run sets this variable itself, pointing at its proxy"
        ));
    }
    let mut removed = Vec::new();
    for (name, value) in env {
        let text = name.to_string_lossy();
        if set_here.iter().any(|s| *s == text) {
            continue;
        }
        let value = value.to_string_lossy();
        let parent = text == crate::request::PASSWORD_ENV
            || passwords.iter().any(|p| {
                !p.is_empty() && (*p == value || (p.len() >= CONTAINED_MIN && value.contains(p)))
            });
        if parent {
            if passed(&text) {
                return Err(format!(
                    "--pass-env {text}: it holds a parent proxy's password, which the command \
                     never sees (egress-run's proxy presents it to the parent)"
                ));
            }
            removed.push((name.clone(), Why::ParentPassword));
        } else if (credential_name(&text) || credential_value(&value)) && !passed(&text) {
            removed.push((name.clone(), Why::Credential));
        }
    }
    removed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Scrub { removed })
}

impl Scrub {
    /// Files that removed variables point at (`DB_PASSWORD_FILE=/run/secrets/db`,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`): an absolute path to a regular file that exists, outside
    /// the sandbox's own `/dev`, `/proc` and `/sys`. Masked too, or removing the name is moot.
    pub fn files(&self, env: &[(OsString, OsString)]) -> Vec<std::path::PathBuf> {
        let mut files: Vec<std::path::PathBuf> = env
            .iter()
            .filter(|(name, _)| self.removed.iter().any(|(n, _)| n == name))
            .map(|(_, value)| std::path::PathBuf::from(value))
            .filter(|path| {
                path.is_absolute()
                    && !["/dev", "/proc", "/sys"]
                        .iter()
                        .any(|d| path.starts_with(d))
                    && path.is_file()
            })
            .collect();
        files.sort();
        files.dedup();
        files
    }

    /// The names removed, for `Command::env_remove`.
    pub fn names(&self) -> impl Iterator<Item = &OsStr> {
        self.removed.iter().map(|(n, _)| n.as_os_str())
    }

    /// One line for the caller naming what was removed (never a value), or nothing.
    pub fn message(&self) -> Option<String> {
        let list = |why: Why| {
            let names: Vec<String> = self
                .removed
                .iter()
                .filter(|(_, w)| *w == why)
                .map(|(n, _)| n.to_string_lossy().into_owned())
                .collect();
            (!names.is_empty()).then(|| names.join(", "))
        };
        let mut parts = Vec::new();
        if let Some(names) = list(Why::Credential) {
            parts.push(format!(
                "{names} (they look like credentials; --pass-env NAME passes one)"
            ));
        }
        if let Some(names) = list(Why::ParentPassword) {
            parts.push(format!("{names} (a parent proxy's password)"));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "egress-run: not passed to the command: {}.",
                parts.join("; ")
            )
        })
    }
}

#[cfg(test)]
mod tests;
