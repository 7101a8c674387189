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

pub mod users;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::Policy;
pub use users::{hash_password, Users, UsersError, DEFAULT_COST};

/// The identity of a client recognised as no configured identity.
pub const ANONYMOUS: &str = "anonymous";
/// The metric label value of identities beyond the labelled set.
pub const OTHER: &str = "other";
/// The longest identity (user) name; longer logins fail without a lookup.
pub const MAX_NAME: usize = 64;
/// Names egress uses for clients it did not recognise and for labels beyond the configured set.
pub const RESERVED: [&str; 2] = [ANONYMOUS, OTHER];

/// Whether `name` can be an identity (a user in the users file, or an `identities` key): names
/// become metric label values, log fields and audit fields, so a closed, printable alphabet,
/// short, and not one of the names egress gives itself. `Err` is a message and a hint.
pub fn valid_name(name: &str) -> Result<(), (String, &'static str)> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if !valid {
        return Err((
            format!("invalid identity name {name:?}"),
            "use letters, digits, '-', '_', '.' and '@' (at most 64)",
        ));
    }
    if RESERVED.contains(&name) {
        return Err((
            format!("{name:?} is reserved"),
            "egress names unrecognised clients `anonymous` and labels beyond the configured identities `other`",
        ));
    }
    Ok(())
}

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
    /// From validated parts (`load` checks and composes them): `names` are the `identities`
    /// keys (the users' names are added), `networks` recognise identities by source address.
    pub(crate) fn new(
        auth: Auth,
        users: Users,
        names: Vec<Arc<str>>,
        mut networks: Vec<(ipnet::IpNet, Arc<str>)>,
        policies: HashMap<Arc<str>, Policy>,
    ) -> Identities {
        let mut all: HashMap<Arc<str>, ()> = users.names().map(|n| (Arc::from(n), ())).collect();
        all.extend(names.into_iter().map(|n| (n, ())));
        // Most specific first: a /32 inside a team's /24 is its own identity.
        networks.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Identities {
            auth,
            users: Arc::new(users),
            networks,
            policies,
            names: all,
        }
    }

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

#[cfg(test)]
mod tests;
