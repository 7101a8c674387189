//! Who a client is, and the policy that applies to it.
//!
//! Identities come only from configuration: every user of `auth.users_file` (recognised by a
//! proxy login) and every key of `identities` (a user's groups and mode, or, with `networks`, a
//! client recognised by its source address). A client recognised as none of them is
//! `anonymous`. Since a name only becomes an identity by being configured, identity names are
//! safe as metric labels and log fields: a client cannot invent one.
//!
//! Per-identity policy, written down (README "Identities"):
//!
//! - allow: the base `allow` list, then the `allow` list of each of the identity's groups;
//! - deny: the base `deny` list plus each group's `deny` list; any matching deny entry wins;
//! - mode: the identity's own `mode` if it sets one; else the strictest of its groups' modes (a
//!   group without `mode` counts as the base mode); an identity in no group has the base mode.

pub mod raw;
pub mod users;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pattern::Pattern;
use crate::raw::UpstreamName;
use crate::{Mode, Policy};
use raw::{IdentityName, RawAuth, RawGroup, RawIdentity};
pub use users::{hash_password, Users, UsersError};

/// The identity of a client recognised as no configured identity.
pub const ANONYMOUS: &str = "anonymous";
/// The metric label value of identities beyond the labelled set.
pub const OTHER: &str = "other";
/// The longest identity (user) name; longer logins fail without a lookup.
pub const MAX_NAME: usize = 64;

/// Proxy login settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// `None`: no proxy login; credentials clients send are ignored.
    pub users_file: Option<PathBuf>,
    /// Clients recognised as no identity (neither login nor network) are refused (`407`).
    pub required: bool,
    /// The realm a `407` names.
    pub realm: String,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            users_file: None,
            required: false,
            realm: "egress".into(),
        }
    }
}

/// Every configured identity, how each is recognised, and its policy.
#[derive(Debug, Clone, Default)]
pub struct Identities {
    pub auth: Auth,
    /// The users file, read at load (and so at every reload).
    pub users: Arc<Users>,
    /// Source networks, most specific first.
    networks: Vec<(ipnet::IpNet, Arc<str>)>,
    /// The composed policy of each identity that has groups or a mode of its own.
    policies: HashMap<Arc<str>, Policy>,
    /// Every identity name: users and `identities` keys.
    names: HashMap<Arc<str>, ()>,
}

impl Identities {
    /// Whether clients may log in (a users file is configured).
    pub fn logins(&self) -> bool {
        self.auth.users_file.is_some()
    }

    /// The identity a client from `ip` has by its network, if any (the most specific network).
    pub fn by_network(&self, ip: IpAddr) -> Option<Arc<str>> {
        let ip = canonical(ip);
        self.networks
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, name)| name.clone())
    }

    /// The configured name `name`, shared (so records and labels never hold a client's copy).
    pub fn known(&self, name: &str) -> Option<Arc<str>> {
        self.names.get_key_value(name).map(|(k, ())| k.clone())
    }

    /// Every identity name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.names.keys().map(|n| &**n).collect();
        names.sort_unstable();
        names
    }

    /// The policy that applies to `identity` (`base` for `anonymous`, unknown names, and
    /// identities without groups or mode).
    pub fn policy_for<'a>(&'a self, identity: &str, base: &'a Policy) -> &'a Policy {
        self.policies.get(identity).unwrap_or(base)
    }
}

/// IPv4-mapped IPv6 sources (a dual-stack listener) match IPv4 networks.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

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
    let mut names: HashMap<Arc<str>, ()> = users.names().map(|n| (Arc::from(n), ())).collect();
    let mut networks = Vec::new();
    let mut policies = HashMap::new();
    for (name, identity) in raw.identities {
        let key: Arc<str> = Arc::from(name.0.as_str());
        names.insert(key.clone(), ());
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
    // Most specific first: a /32 inside a team's /24 is its own identity.
    networks.sort_by_key(|(net, _): &(ipnet::IpNet, Arc<str>)| std::cmp::Reverse(net.prefix_len()));
    Ok(Identities {
        auth,
        users: Arc::new(users),
        networks,
        policies,
        names,
    })
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

#[cfg(test)]
mod tests;
