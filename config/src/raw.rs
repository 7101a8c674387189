//! The file as written: strict serde structs (unknown keys are errors). Values that need more
//! than a type check (patterns, addresses, durations, bounds) are validated while they are
//! deserialised, so each error carries the line and column of the offending value. Nothing
//! outside the text is read here: the secrets a file names are read by `secrets` once it is valid.

pub mod identity;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::pattern::Pattern;
use crate::policy::Mode;
use crate::settings::{Listener, ListenerProtocols, SniCheck, WithoutSni};
use crate::upstream::{parse_upstream_url, UpstreamUrl};

mod admin;
pub use admin::{AdminEntry, RawToken};

/// Separates a message from its hint inside a serde custom error (which carries one string).
pub const HINT_SEPARATOR: char = '\u{1f}';

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    #[serde(default)]
    pub listen: Option<ListenList>,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub allow: AllowList,
    #[serde(default)]
    pub deny: Vec<PatternEntry>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub dns: RawDns,
    #[serde(default)]
    pub dns_server: Option<RawDnsServer>,
    #[serde(default)]
    pub address_guard: RawAddressGuard,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub upstreams: BTreeMap<UpstreamName, RawUpstream>,
    #[serde(default)]
    pub route: RawRoute,
    #[serde(default)]
    pub admin: Option<AdminEntry>,
    #[serde(default)]
    pub audit: Option<RawAudit>,
    #[serde(default)]
    pub auth: Option<identity::RawAuth>,
    #[serde(default)]
    pub identities: BTreeMap<identity::IdentityName, identity::RawIdentity>,
    #[serde(default)]
    pub groups: BTreeMap<UpstreamName, identity::RawGroup>,
    #[serde(default)]
    pub ask: RawAsk,
}

/// `ask: { timeout: 60s }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAsk {
    #[serde(default)]
    pub timeout: Option<DurationEntry>,
}

/// `audit: { path: FILE }`; `path: "-"` is standard output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub path: String,
    #[serde(default)]
    pub buffer: Option<Bounded<16, 1_000_000>>,
}

/// A parent proxy as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: UpstreamUrlEntry,
    #[serde(default)]
    pub password_env: Option<EnvName>,
    #[serde(default)]
    pub password_file: Option<SecretFile>,
    #[serde(default)]
    pub fallback: Vec<UpstreamName>,
    #[serde(default)]
    pub health_check: Option<DurationEntry>,
    /// `basic` (implied by a user in the url) or `negotiate` (Kerberos).
    #[serde(default)]
    pub auth: Option<crate::upstream::AuthScheme>,
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub keytab: Option<std::path::PathBuf>,
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub client_cert: Option<std::path::PathBuf>,
    #[serde(default)]
    pub client_key: Option<std::path::PathBuf>,
}

impl RawUpstream {
    /// The TLS and Kerberos keys, for `RawSecure::check`.
    pub fn secure(&self) -> crate::upstream::secure::RawSecure<'_> {
        crate::upstream::secure::RawSecure {
            tls_url: self.url.0.tls,
            http_url: self.url.0.kind == crate::upstream::UpstreamKind::Http,
            has_user: self.url.0.user.is_some(),
            auth: self.auth,
            principal: self.principal.as_deref(),
            keytab: self.keytab.as_ref(),
            ca_file: self.ca_file.as_ref(),
            client_cert: self.client_cert.as_ref(),
            client_key: self.client_key.as_ref(),
        }
    }

    /// The compiled TLS and Kerberos settings.
    pub fn take_secure(
        &mut self,
    ) -> (
        Option<crate::upstream::ParentTls>,
        Option<crate::upstream::Negotiate>,
    ) {
        let tls = self.url.0.tls.then(|| crate::upstream::ParentTls {
            ca_file: self.ca_file.take(),
            client_cert: self.client_cert.take(),
            client_key: self.client_key.take(),
        });
        let negotiate = (self.auth == Some(crate::upstream::AuthScheme::Negotiate)).then(|| {
            crate::upstream::Negotiate {
                principal: self.principal.take(),
                keytab: self.keytab.take(),
            }
        });
        (tls, negotiate)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default)]
    pub default: Option<UpstreamName>,
    #[serde(default)]
    pub direct: Vec<PatternEntry>,
}

/// The `allow` list, with the routes apart: few entries name one, and a list can be a million
/// entries long.
#[derive(Debug, Default)]
pub struct AllowList {
    pub patterns: Vec<Pattern>,
    /// (position in `patterns`, route) for each entry that names a route, in order.
    pub via: Vec<(usize, UpstreamName)>,
}

impl<'de> Deserialize<'de> for AllowList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = AllowList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AllowList, A::Error> {
                let mut list = AllowList::default();
                while let Some(entry) = seq.next_element::<AllowEntry>()? {
                    if let Some(via) = entry.via {
                        list.via.push((list.patterns.len(), via));
                    }
                    list.patterns.push(entry.pattern);
                }
                Ok(list)
            }
        }
        d.deserialize_seq(ListVisitor)
    }
}

/// An `allow` entry: a pattern, or `{ host: PATTERN, via: UPSTREAM }` to pick its route.
#[derive(Debug)]
pub struct AllowEntry {
    pub pattern: Pattern,
    pub via: Option<UpstreamName>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowRule {
    host: PatternEntry,
    #[serde(default)]
    via: Option<UpstreamName>,
}

impl<'de> Deserialize<'de> for AllowEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = AllowEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host pattern, or { host: PATTERN, via: UPSTREAM }")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<AllowEntry, E> {
                PatternEntry::parse(text)
                    .map(|p| AllowEntry {
                        pattern: p.0,
                        via: None,
                    })
                    .map_err(E::custom)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<AllowEntry, A::Error> {
                let rule = AllowRule::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(AllowEntry {
                    pattern: rule.host.0,
                    via: rule.via,
                })
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}

/// The name of an upstream (or `direct` where a route is expected): lowercase letters, digits,
/// `-` and `_`, so it is safe as a metric label and in logs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UpstreamName(pub String);

impl<'de> Deserialize<'de> for UpstreamName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "an upstream name like corp-squid", |text| {
            let valid = !text.is_empty()
                && text.len() <= 64
                && text.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if valid {
                Ok(UpstreamName(text.to_string()))
            } else {
                Err(hinted(
                    format_args!("invalid upstream name {text:?}"),
                    Some("use lowercase letters, digits, - and _ (at most 64)"),
                ))
            }
        })
    }
}

/// An upstream URL, checked as it is read; errors never repeat its password.
#[derive(Debug)]
pub struct UpstreamUrlEntry(pub UpstreamUrl);

impl<'de> Deserialize<'de> for UpstreamUrlEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "a URL like http://user@squid.example:3128", |text| {
            parse_upstream_url(text.trim())
                .map(UpstreamUrlEntry)
                .map_err(|(message, hint)| hinted(message, hint))
        })
    }
}

/// `password_env: NAME`: the password is in that environment variable. Only the name is read
/// here; `secrets::read` reads the variable once the whole file is valid.
#[derive(Debug)]
pub struct EnvName(pub String);

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "an environment variable name", |name| {
            Ok(EnvName(name.to_string()))
        })
    }
}

/// `password_file: PATH`: the password is the file's content. Only the path is read here;
/// `secrets::read` reads the file once the whole file is valid.
#[derive(Debug)]
pub struct SecretFile(pub std::path::PathBuf);

impl<'de> Deserialize<'de> for SecretFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "a path to a file holding the password", |path| {
            Ok(SecretFile(path.into()))
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    #[serde(default)]
    pub nameservers: Option<Vec<NameserverEntry>>,
    #[serde(default)]
    pub timeout: Option<DurationEntry>,
    #[serde(default)]
    pub cache_size: Option<Bounded<0, 1_000_000>>,
}

/// `dns_server: { listen: ADDRESS }`: egress's DNS responder for transparent mode.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnsServer {
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAddressGuard {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub allow_networks: Vec<NetworkEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    #[serde(default)]
    pub sni: Option<SniCheck>,
    #[serde(default)]
    pub without_sni: Option<WithoutSni>,
    #[serde(default)]
    pub ports: Option<Vec<PortEntry>>,
}

/// A TCP port, 1-65535.
#[derive(Debug, Clone, Copy)]
pub struct PortEntry(pub u16);

impl<'de> Deserialize<'de> for PortEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let port = Bounded::<1, 65535>::deserialize(d)?;
        Ok(PortEntry(port.0 as u16))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default)]
    pub max_connections: Option<Bounded<1, { 1 << 20 }>>,
    #[serde(default)]
    pub max_request_head_bytes: Option<Bounded<1024, { 1 << 20 }>>,
    #[serde(default)]
    pub max_connections_per_client: Option<Bounded<1, { 1 << 20 }>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    #[serde(default)]
    pub request_head: Option<DurationEntry>,
    #[serde(default)]
    pub handshake: Option<DurationEntry>,
    #[serde(default)]
    pub dial: Option<DurationEntry>,
    #[serde(default)]
    pub idle: Option<DurationEntry>,
    #[serde(default)]
    pub shutdown_grace: Option<DurationEntry>,
}

/// Deserialises a string and validates it inside the visitor: serde_yaml attaches the scalar's
/// own line and column to an error raised there (one raised after `String::deserialize` returns
/// would carry a stale position).
pub(crate) fn from_str_with<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct StrVisitor<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }
    impl<T> Visitor<'_> for StrVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
            (self.parse)(text).map_err(E::custom)
        }
    }
    d.deserialize_str(StrVisitor { expecting, parse })
}

pub(crate) fn hinted(message: impl fmt::Display, hint: Option<&str>) -> String {
    match hint {
        Some(hint) => format!("{message}{HINT_SEPARATOR}{hint}"),
        None => message.to_string(),
    }
}

/// A policy entry, parsed as it is read.
#[derive(Debug)]
pub struct PatternEntry(pub Pattern);

impl PatternEntry {
    fn parse(text: &str) -> Result<PatternEntry, String> {
        Pattern::parse(text).map(PatternEntry).map_err(|e| {
            hinted(
                format_args!("invalid pattern {text:?}: {}", e.message),
                e.hint.as_deref(),
            )
        })
    }
}

impl<'de> Deserialize<'de> for PatternEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(
            d,
            "a host pattern like example.com or *.example.com:443",
            PatternEntry::parse,
        )
    }
}

/// A positive duration written the humantime way: `500ms`, `10s`, `5m`, `1h`.
#[derive(Debug, Clone, Copy)]
pub struct DurationEntry(pub Duration);

impl<'de> Deserialize<'de> for DurationEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "a duration like 10s", |text| {
            let hint = Some("write a duration like \"500ms\", \"10s\" or \"5m\"");
            match humantime::parse_duration(text.trim()) {
                Ok(duration) if !duration.is_zero() => Ok(DurationEntry(duration)),
                Ok(_) => Err(hinted("a duration must be greater than zero", hint)),
                Err(e) => Err(hinted(format_args!("invalid duration {text:?}: {e}"), hint)),
            }
        })
    }
}

/// An integer within `MIN..=MAX`.
#[derive(Debug, Clone, Copy)]
pub struct Bounded<const MIN: usize, const MAX: usize>(pub usize);

impl<'de, const MIN: usize, const MAX: usize> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BoundedVisitor<const MIN: usize, const MAX: usize>;
        impl<const MIN: usize, const MAX: usize> Visitor<'_> for BoundedVisitor<MIN, MAX> {
            type Value = Bounded<MIN, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a whole number from {MIN} to {MAX}")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
                match usize::try_from(value) {
                    Ok(v) if (MIN..=MAX).contains(&v) => Ok(Bounded(v)),
                    _ => Err(E::custom(format_args!(
                        "{value} is out of range (allowed: {MIN} to {MAX})"
                    ))),
                }
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
                Err(E::custom(format_args!(
                    "{value} is out of range (allowed: {MIN} to {MAX})"
                )))
            }
        }
        d.deserialize_u64(BoundedVisitor::<MIN, MAX>)
    }
}

/// `listen`: one entry or a list of them.
#[derive(Debug)]
pub struct ListenList(pub Vec<Listener>);

impl<'de> Deserialize<'de> for ListenList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = ListenList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address like 127.0.0.1:3128, or a list of them")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ListenList, E> {
                parse_listener(text)
                    .map(|l| ListenList(vec![l]))
                    .map_err(E::custom)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<ListenList, A::Error> {
                let raw = RawListener::deserialize(de::value::MapAccessDeserializer::new(map))?;
                raw.compile()
                    .map(|l| ListenList(vec![l]))
                    .map_err(de::Error::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ListenList, A::Error> {
                let mut out = Vec::new();
                while let Some(ListenEntry(listener)) = seq.next_element()? {
                    if out.iter().any(|l: &Listener| l.address == listener.address) {
                        return Err(de::Error::custom(format_args!(
                            "{} is listed twice",
                            listener.address
                        )));
                    }
                    out.push(listener);
                }
                if out.is_empty() {
                    return Err(de::Error::custom("at least one listen address is needed"));
                }
                Ok(ListenList(out))
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

struct ListenEntry(Listener);

impl<'de> Deserialize<'de> for ListenEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = ListenEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an address like 127.0.0.1:3128, or {address, proxy_protocol, trusted, identity}",
                )
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ListenEntry, E> {
                parse_listener(text).map(ListenEntry).map_err(E::custom)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<ListenEntry, A::Error> {
                let raw = RawListener::deserialize(de::value::MapAccessDeserializer::new(map))?;
                raw.compile().map(ListenEntry).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}

/// A listener written out: `{address: ADDR, proxy_protocol: true, trusted: [CIDR…]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    address: String,
    #[serde(default)]
    proxy_protocol: bool,
    #[serde(default)]
    trusted: Vec<NetworkEntry>,
    #[serde(default)]
    identity: Option<identity::IdentityName>,
}

impl RawListener {
    fn compile(self) -> Result<Listener, String> {
        let mut listener = parse_listener(&self.address)?;
        listener.identity = self.identity.map(|name| name.0);
        match (self.proxy_protocol, self.trusted.is_empty()) {
            (true, true) => {
                return Err(hinted(
                    format_args!("{}: proxy_protocol needs `trusted`", self.address),
                    Some("list the load balancers' networks: whoever sends the header chooses the client's address"),
                ))
            }
            (false, false) => {
                return Err(hinted(
                    format_args!("{}: `trusted` is only for proxy_protocol: true", self.address),
                    None,
                ))
            }
            (true, false) if listener.protocols.intercepts() => {
                return Err(hinted(
                    format_args!("{}: proxy_protocol is for listeners that proxy clients reach", self.address),
                    Some("an intercepted connection's client and destination are the firewall's: a header must not restate them"),
                ))
            }
            (true, false) => {
                listener.proxy_protocol = Some(crate::ProxyProtocol {
                    trusted: self.trusted.into_iter().map(|n| n.0).collect(),
                })
            }
            (false, true) => {}
        }
        Ok(listener)
    }
}

fn parse_listener(text: &str) -> Result<Listener, String> {
    let (protocols, address) = match text.split_once("://") {
        Some(("http", rest)) => (ListenerProtocols::Http, rest),
        Some(("socks5", rest)) => (ListenerProtocols::Socks5, rest),
        Some(("redirect", rest)) => (ListenerProtocols::Redirect, rest),
        Some(("tproxy", rest)) => (ListenerProtocols::Tproxy, rest),
        Some((scheme, _)) => {
            return Err(hinted(
                format_args!("unknown listener scheme {scheme:?}"),
                Some("write ADDR for HTTP and SOCKS5 on one port, or http://ADDR, socks5://ADDR, redirect://ADDR, tproxy://ADDR"),
            ))
        }
        None => (ListenerProtocols::Mixed, text),
    };
    let address: SocketAddr = address.trim().parse().map_err(|_| {
        hinted(
            format_args!("invalid listen address {text:?}"),
            Some("write IP:PORT, like 127.0.0.1:3128 or [::1]:3128"),
        )
    })?;
    Ok(Listener::plain(address, protocols))
}

/// A DNS server: `IP` (port 53) or `IP:PORT`.
#[derive(Debug)]
pub struct NameserverEntry(pub SocketAddr);

impl<'de> Deserialize<'de> for NameserverEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(
            d,
            "a DNS server address like 192.0.2.53 or 127.0.0.1:5353",
            |text| {
                let text = text.trim();
                if let Ok(ip) = text.parse::<std::net::IpAddr>() {
                    return Ok(NameserverEntry(SocketAddr::new(ip, 53)));
                }
                text.parse().map(NameserverEntry).map_err(|_| {
                    hinted(
                        format_args!("invalid nameserver {text:?}"),
                        Some("write an IP address, optionally with a port: 10.0.0.2 or [::1]:5353"),
                    )
                })
            },
        )
    }
}

/// A network in CIDR notation (a bare address is a network of one).
#[derive(Debug)]
pub struct NetworkEntry(pub ipnet::IpNet);

impl<'de> Deserialize<'de> for NetworkEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_with(d, "a network like 10.20.0.0/16", |text| {
            let text = text.trim();
            if let Ok(ip) = text.parse::<std::net::IpAddr>() {
                return Ok(NetworkEntry(ipnet::IpNet::from(ip)));
            }
            text.parse::<ipnet::IpNet>()
                .map(|net| NetworkEntry(net.trunc()))
                .map_err(|_| {
                    hinted(
                        format_args!("invalid network {text:?}"),
                        Some("write a CIDR like 10.20.0.0/16 or fd00:1::/64, or one address"),
                    )
                })
        })
    }
}
