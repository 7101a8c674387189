//! `admin:` as written: `admin: 127.0.0.1:9090`, or a map with `listen` and the console's keys.
//! A non-loopback `listen` is an error unless the same map says `allow_remote: true`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::{from_str_with, hinted, Bounded, EnvName, SecretFile};
use crate::admin::{Role, ADMIN_TOKEN_NAME};

#[derive(Debug)]
pub struct AdminEntry {
    pub listen: SocketAddr,
    pub allow_remote: bool,
    pub blocked_domains_cap: Option<usize>,
    pub token_file: Option<std::path::PathBuf>,
    pub tokens: BTreeMap<String, RawToken>,
    pub events_ring: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: AdminAddress,
    #[serde(default)]
    allow_remote: bool,
    #[serde(default)]
    blocked_domains_cap: Option<Bounded<1, 100_000>>,
    #[serde(default)]
    token_file: Option<SecretFile>,
    #[serde(default)]
    tokens: BTreeMap<TokenName, RawToken>,
    #[serde(default)]
    events_ring: Option<Bounded<1, 1_000_000>>,
}

/// `tokens: { alice: { role: viewer, token_file: PATH } }` (or `token_env: NAME`): the token is
/// never written in the policy file, whose text the admin API serves.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub role: Role,
    #[serde(default)]
    pub token_file: Option<SecretFile>,
    #[serde(default)]
    pub token_env: Option<EnvName>,
}

/// A token's name: shown in logs and the audit, so plain and short.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TokenName(String);

impl<'de> Deserialize<'de> for TokenName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "a token name", |name| {
            let plain = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !plain {
                return Err(hinted(
                    format_args!("invalid token name {name:?}"),
                    Some("use 1 to 64 letters, digits, '-', '_' or '.'"),
                ));
            }
            if name == ADMIN_TOKEN_NAME {
                return Err(hinted(
                    format_args!("the token name {name:?} is the admin token's (token_file)"),
                    Some("pick another name"),
                ));
            }
            Ok(TokenName(name.to_string()))
        })
    }
}

/// The address as written; whether it may be off loopback is decided with `allow_remote`.
struct AdminAddress(SocketAddr);

impl AdminAddress {
    fn parse(text: &str) -> Result<AdminAddress, String> {
        text.trim().parse().map(AdminAddress).map_err(|_| {
            hinted(
                format_args!("invalid admin address {text:?}"),
                Some("write a loopback IP:PORT, like 127.0.0.1:9090"),
            )
        })
    }
}

impl<'de> Deserialize<'de> for AdminAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(
            d,
            "a loopback address like 127.0.0.1:9090",
            AdminAddress::parse,
        )
    }
}

/// A remote admin address is refused unless the operator opted in.
fn remote_check(address: SocketAddr, allow_remote: bool) -> Result<(), String> {
    if address.ip().is_loopback() || allow_remote {
        return Ok(());
    }
    Err(hinted(
        format_args!("the admin listener must be on loopback, not {address}"),
        Some("anyone who can reach it can try its tokens; reach it through an SSH tunnel, or set `allow_remote: true` to serve it there (without TLS)"),
    ))
}

impl<'de> Deserialize<'de> for AdminEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = AdminEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a loopback address like 127.0.0.1:9090, or { listen: ADDRESS }")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<AdminEntry, E> {
                let address = AdminAddress::parse(text).map_err(E::custom)?;
                remote_check(address.0, false).map_err(E::custom)?;
                Ok(AdminEntry {
                    listen: address.0,
                    allow_remote: false,
                    blocked_domains_cap: None,
                    token_file: None,
                    tokens: BTreeMap::new(),
                    events_ring: None,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<AdminEntry, A::Error> {
                let raw = RawAdmin::deserialize(de::value::MapAccessDeserializer::new(map))?;
                remote_check(raw.listen.0, raw.allow_remote).map_err(de::Error::custom)?;
                Ok(AdminEntry {
                    listen: raw.listen.0,
                    allow_remote: raw.allow_remote,
                    blocked_domains_cap: raw.blocked_domains_cap.map(|b| b.0),
                    token_file: raw.token_file.map(|f| f.0),
                    tokens: raw.tokens.into_iter().map(|(n, t)| (n.0, t)).collect(),
                    events_ring: raw.events_ring.map(|b| b.0),
                })
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}
