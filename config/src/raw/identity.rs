//! The identity keys as written: `auth`, `identities` and `groups`, strict like the rest of
//! `raw`, each value checked where it is read so errors carry its line and column.

use serde::{Deserialize, Deserializer};

use super::{from_str_with, hinted, NetworkEntry, PatternEntry, UpstreamName};
use crate::identity::valid_name;
use crate::policy::Mode;

/// `auth: { users_file, required, realm }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub users_file: Option<String>,
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub realm: Option<Realm>,
}

/// An identity: `{ networks: [CIDR…], groups: [GROUP…], mode: MODE }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    #[serde(default)]
    pub networks: Vec<NetworkEntry>,
    #[serde(default)]
    pub groups: Vec<UpstreamName>,
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// A group: its own allow and deny lists, and optionally its mode.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    #[serde(default)]
    pub allow: Vec<PatternEntry>,
    #[serde(default)]
    pub deny: Vec<PatternEntry>,
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// An `identities` key (see `identity::valid_name`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdentityName(pub String);

impl<'de> Deserialize<'de> for IdentityName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "an identity name like alice or ci", |text| {
            valid_name(text)
                .map(|()| IdentityName(text.to_string()))
                .map_err(|(message, hint)| hinted(message, Some(hint)))
        })
    }
}

/// The realm a `407` names: quoted in a header, so no quotes, backslashes or control bytes.
#[derive(Debug, Clone)]
pub struct Realm(pub String);

impl<'de> Deserialize<'de> for Realm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "a realm like egress", |text| {
            let valid = !text.is_empty()
                && text.len() <= 64
                && text
                    .bytes()
                    .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
            if valid {
                Ok(Realm(text.to_string()))
            } else {
                Err(hinted(
                    format_args!("invalid realm {text:?}"),
                    Some("printable ASCII without quotes or backslashes, at most 64 characters"),
                ))
            }
        })
    }
}
