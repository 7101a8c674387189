//! The identity keys of a valid file: references checked, the users file read, each
//! identity's policy composed from the base (the rules are written in `identity`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::identity::{Auth, Identities, Users};
use crate::pattern::Pattern;
use crate::raw::identity::{IdentityName, RawAuth, RawGroup, RawIdentity};
use crate::raw::UpstreamName;
use crate::{Mode, Policy};

/// Why the identity part of a file cannot be used: a YAML path, or a users file line.
#[derive(Debug)]
pub struct IdentityError {
    /// The users file, when the error is in it.
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

/// The raw identity keys of a file whose other keys are valid.
#[derive(Debug)]
pub struct RawParts {
    pub auth: Option<RawAuth>,
    pub identities: BTreeMap<IdentityName, RawIdentity>,
    pub groups: BTreeMap<UpstreamName, RawGroup>,
}

/// Checks references, reads the users file (relative to the policy file's directory) and
/// composes each identity's policy from `base`.
pub fn compile(raw: RawParts, base: &Policy, origin: &str) -> Result<Identities, IdentityError> {
    let fail = |path: String, message: String, hint: Option<String>| IdentityError {
        file: None,
        line: None,
        path,
        message,
        hint,
    };
    let defaults = Auth::default();
    let auth = match raw.auth {
        None => defaults,
        Some(a) => Auth {
            users_file: a.users_file.map(|f| relative_to(origin, &f)),
            required: a.required.unwrap_or(false),
            realm: a.realm.map_or(defaults.realm, |r| r.0),
        },
    };
    let users = match &auth.users_file {
        None => Users::default(),
        Some(file) => read_users(file)?,
    };
    let mut names: Vec<Arc<str>> = Vec::new();
    let mut networks = Vec::new();
    let mut policies = HashMap::new();
    for (name, identity) in raw.identities {
        let key: Arc<str> = Arc::from(name.0.as_str());
        names.push(key.clone());
        for (i, net) in identity.networks.iter().enumerate() {
            if let Some((_, other)) = networks.iter().find(|(n, _)| *n == net.0) {
                return Err(fail(
                    format!("identities.{}.networks[{i}]", name.0),
                    format!("{} is also {other}'s network", net.0),
                    Some("a network recognises one identity".into()),
                ));
            }
            networks.push((net.0, key.clone()));
        }
        let mut allow: Vec<Pattern> = Vec::new();
        let mut deny: Vec<Pattern> = Vec::new();
        let mut group_mode: Option<Mode> = None;
        for (i, group_name) in identity.groups.iter().enumerate() {
            let Some(group) = raw.groups.get(group_name) else {
                let defined: Vec<&str> = raw.groups.keys().map(|g| g.0.as_str()).collect();
                return Err(fail(
                    format!("identities.{}.groups[{i}]", name.0),
                    format!("unknown group {:?}", group_name.0),
                    Some(format!("defined: {}", defined.join(", "))),
                ));
            };
            allow.extend(group.allow.iter().map(|p| p.0.clone()));
            deny.extend(group.deny.iter().map(|p| p.0.clone()));
            let mode = group.mode.unwrap_or(base.mode());
            group_mode = Some(group_mode.map_or(mode, |m| m.strictest(mode)));
        }
        if identity.groups.is_empty() && identity.mode.is_none() {
            continue;
        }
        let mode = identity.mode.or(group_mode).unwrap_or(base.mode());
        policies.insert(key, base.compose(&allow, &deny, mode));
    }
    Ok(Identities::new(auth, users, names, networks, policies))
}

fn relative_to(origin: &str, file: &str) -> PathBuf {
    let file = Path::new(file);
    match Path::new(origin).parent() {
        Some(dir) if file.is_relative() && !origin.starts_with('<') => dir.join(file),
        _ => file.to_path_buf(),
    }
}

fn read_users(file: &Path) -> Result<Users, IdentityError> {
    let text = std::fs::read_to_string(file).map_err(|e| IdentityError {
        file: None,
        line: None,
        path: "auth.users_file".into(),
        message: format!("cannot read the users file {}: {e}", file.display()),
        hint: Some("create it with `egress-proxy passwd FILE USER`".into()),
    })?;
    Users::parse(&text).map_err(|e| IdentityError {
        file: Some(file.to_path_buf()),
        line: Some(e.line),
        path: String::new(),
        message: e.message,
        hint: None,
    })
}
