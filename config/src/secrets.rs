//! Reading secrets: the one step of loading that looks outside the policy text, into the
//! environment and the file system. It runs once the whole file is valid (see `load::load_str`),
//! so deserialisation stays pure and a broken file is reported as such before any secret is
//! touched. A value read becomes a `Secret` at once: errors name the variable or the file,
//! never the value, and `Debug` prints `***`.
//!
//! Another kind of secret (a parent's keytab, a TLS client key) is read here too: its source in
//! `raw::RawUpstream`, a field in `Secrets`, a step in `read`, and `load::compile` takes it from
//! there.

use std::collections::BTreeMap;
use std::path::Path;

use crate::admin::MIN_TOKEN_LEN;
use crate::raw::{RawFile, RawToken, RawUpstream};
use crate::upstream::Secret;

/// Every secret the file names, read.
#[derive(Debug, Default)]
pub struct Secrets {
    /// Parent proxies' passwords from `password_env` or `password_file`, by upstream name.
    passwords: BTreeMap<String, Secret>,
    /// `admin.tokens`, by name.
    tokens: BTreeMap<String, Secret>,
}

impl Secrets {
    /// The password read for upstream `name`, if its file named one outside the URL.
    pub fn take_password(&mut self, name: &str) -> Option<Secret> {
        self.passwords.remove(name)
    }

    /// The token read for `admin.tokens.NAME`.
    pub fn take_token(&mut self, name: &str) -> Option<Secret> {
        self.tokens.remove(name)
    }
}

/// A secret that could not be read (`load` makes it a `ConfigError`).
#[derive(Debug)]
pub struct Unreadable {
    /// Where the file names it, like `upstreams.corp.password_env`.
    pub path: String,
    pub message: String,
    pub hint: Option<&'static str>,
}

/// Reads every secret `raw` names. `raw` has passed `load::check_routes`, so each upstream names
/// at most one password source.
pub fn read(raw: &RawFile) -> Result<Secrets, Unreadable> {
    let mut secrets = Secrets::default();
    for (name, upstream) in &raw.upstreams {
        let password = upstream_password(upstream).map_err(|mut e| {
            e.path = format!("upstreams.{}.{}", name.0, e.path);
            e
        })?;
        if let Some(password) = password {
            secrets.passwords.insert(name.0.clone(), password);
        }
    }
    if let Some(admin) = &raw.admin {
        for (name, token) in &admin.tokens {
            let value = admin_token(token).map_err(|mut e| {
                e.path = format!("admin.tokens.{name}.{}", e.path);
                e
            })?;
            if let Some(other) = secrets.tokens.iter().find(|(_, v)| **v == value) {
                return Err(Unreadable {
                    path: format!("admin.tokens.{name}"),
                    message: format!("the token is the same as token {:?}'s", other.0),
                    hint: Some("each name needs its own token, or its role is ambiguous"),
                });
            }
            secrets.tokens.insert(name.clone(), value);
        }
    }
    Ok(secrets)
}

/// A named admin token from `token_file` or `token_env` (exactly one), long enough not to be
/// guessed.
fn admin_token(token: &RawToken) -> Result<Secret, Unreadable> {
    let (value, path) = match (&token.token_file, &token.token_env) {
        (Some(file), None) => (from_file(&file.0), "token_file"),
        (None, Some(name)) => (from_env(&name.0), "token_env"),
        _ => {
            return Err(Unreadable {
                path: "role".into(),
                message: "a named token needs exactly one of token_file and token_env".into(),
                hint: Some("the token itself is never written in the policy file"),
            })
        }
    };
    let value = value.map_err(|mut e| {
        e.path = path.into();
        e.message = e.message.replace("password", "token");
        e.hint = None;
        e
    })?;
    if value.expose().chars().count() < MIN_TOKEN_LEN {
        return Err(Unreadable {
            path: path.into(),
            message: format!("the token is shorter than {MIN_TOKEN_LEN} characters"),
            hint: Some("use a long random token, e.g. `head -c 32 /dev/urandom | base64`"),
        });
    }
    Ok(value)
}

/// The password `upstream` names outside its URL (errors with `path` relative to the upstream).
fn upstream_password(upstream: &RawUpstream) -> Result<Option<Secret>, Unreadable> {
    if let Some(name) = &upstream.password_env {
        return from_env(&name.0).map(Some);
    }
    if let Some(file) = &upstream.password_file {
        return from_file(&file.0).map(Some);
    }
    Ok(None)
}

/// `password_env: NAME`: the variable's value, which must not be empty.
fn from_env(name: &str) -> Result<Secret, Unreadable> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
        _ => Err(Unreadable {
            path: "password_env".into(),
            message: format!("environment variable {name:?} is not set (or empty)"),
            hint: Some("export it before starting egress-proxy, or use password_file"),
        }),
    }
}

/// `password_file: PATH`: the file's content, one trailing newline (LF or CRLF) dropped.
fn from_file(path: &Path) -> Result<Secret, Unreadable> {
    let unreadable = |message| Unreadable {
        path: "password_file".into(),
        message,
        hint: None,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| unreadable(format!("cannot read password file {path:?}: {e}")))?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(unreadable(format!("password file {path:?} is empty")));
    }
    Ok(Secret::new(value))
}
