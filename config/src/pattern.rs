//! One policy entry: a host pattern with its ports, parsed from the text the user wrote.
//!
//! | written              | matches                                           |
//! |----------------------|---------------------------------------------------|
//! | `example.com`        | exactly that host                                 |
//! | `*.example.com`      | its subdomains, not the apex                      |
//! | `.example.com`       | the apex and its subdomains (Squid's meaning)     |
//! | `10.0.0.0/8`, `::1`  | IP-literal targets in that network, never names   |
//! | `…:443`, `…:80,443`, `…:8000-8999`, `…:*` | those ports                  |
//!
//! Without a port, an entry allows the protocol's default port: 443 for tunnels, 80 for plain
//! HTTP (`Protocol::default_port`); both for intercepted connections.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::guard;
use crate::host::{parse_port, Host};
use crate::Protocol;

/// Which ports an entry covers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PortSet {
    /// No port written: the protocol's default port only.
    #[default]
    Default,
    /// `:*`.
    Any,
    /// Inclusive ranges; a single port is a range of one.
    Ranges(Box<[(u16, u16)]>),
}

impl PortSet {
    pub fn matches(&self, port: u16, protocol: Protocol) -> bool {
        match self {
            PortSet::Default => protocol.allows_by_default(port),
            PortSet::Any => true,
            PortSet::Ranges(_) if protocol == Protocol::Dns => true,
            PortSet::Ranges(ranges) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)),
        }
    }
}

/// What an entry's host part covers; names in normal form (lowercase, IDNA as `xn--`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostPattern<'a> {
    Exact(&'a str),
    /// `*.suffix`: strictly below `suffix`.
    Subdomains(&'a str),
    /// `.suffix`: `suffix` and everything below it.
    DomainAndSubdomains(&'a str),
    Ip(IpAddr),
    Net(IpNet),
}

/// The kind of host part, its name (if any) kept in the pattern's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Exact,
    Subdomains,
    DomainAndSubdomains,
    Ip(IpAddr),
    Net(IpNet),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// The entry as written (its first `written` bytes), followed by its host name in normal
    /// form when that is not already a part of what was written. One allocation per entry: a
    /// policy of a million entries spent ~45 MB on a second one (the name apart, and malloc's
    /// overhead on it) of its ~220 MB peak.
    text: Box<str>,
    written: u32,
    /// Where the host name lies in `text` (empty for addresses).
    name: (u32, u32),
    kind: Kind,
    pub ports: PortSet,
}

/// A rejected entry: what is wrong and how to write it instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PatternError {
    pub message: String,
    pub hint: Option<String>,
}

fn error(message: impl Into<String>, hint: Option<String>) -> PatternError {
    PatternError {
        message: message.into(),
        hint,
    }
}

impl Pattern {
    /// The entry as written in the file; shown in logs as the matched rule.
    pub fn text(&self) -> &str {
        &self.text[..self.written as usize]
    }

    /// What the host part covers.
    pub fn host(&self) -> HostPattern<'_> {
        let name = &self.text[self.name.0 as usize..self.name.1 as usize];
        match self.kind {
            Kind::Exact => HostPattern::Exact(name),
            Kind::Subdomains => HostPattern::Subdomains(name),
            Kind::DomainAndSubdomains => HostPattern::DomainAndSubdomains(name),
            Kind::Ip(ip) => HostPattern::Ip(ip),
            Kind::Net(net) => HostPattern::Net(net),
        }
    }

    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(error("empty pattern", None));
        }
        if let Some((_, rest)) = trimmed.split_once("://") {
            let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            return Err(error(
                format!("{trimmed:?} is a URL, not a host pattern"),
                Some(format!("write the host only: \"{host}\"")),
            ));
        }
        let (host_part, ports) = split_ports(trimmed)?;
        let (kind, name) = parse_host_pattern(host_part)?;
        let written =
            u32::try_from(trimmed.len()).map_err(|_| error("an entry longer than 4 GB", None))?;
        // Usually the name is written as it is normalised, after the `*.` or `.`: no copy.
        let written_at = |n: &str| {
            let prefix = host_part.len() - host_part.trim_start_matches(['*', '.']).len();
            let at = host_part.as_ptr() as usize - trimmed.as_ptr() as usize + prefix;
            trimmed[at..].starts_with(n).then_some(at)
        };
        let (text, name) = match name.as_deref().map(|n| (n, written_at(n))) {
            None => (Box::from(trimmed), (written, written)),
            Some((n, Some(at))) => (Box::from(trimmed), (at as u32, (at + n.len()) as u32)),
            Some((n, None)) => {
                let mut both = String::with_capacity(trimmed.len() + n.len());
                both.push_str(trimmed);
                both.push_str(n);
                (both.into_boxed_str(), (written, written + n.len() as u32))
            }
        };
        Ok(Pattern {
            text,
            written,
            name,
            kind,
            ports,
        })
    }

    /// Whether this entry names `target`'s address on purpose, which exempts the target from the
    /// address guard: an IP entry; a CIDR entry lying wholly in one special range (`10.0.0.0/8`,
    /// not `0.0.0.0/0`), except for a cloud metadata address, which only its own IP entry names;
    /// or exactly `localhost`.
    pub fn names_address(&self, target: &Host) -> bool {
        match (self.host(), target) {
            (HostPattern::Ip(_), _) => true,
            (HostPattern::Net(net), Host::Ip(ip)) => {
                let metadata =
                    guard::classify(*ip).is_some_and(|s| s.kind == guard::SpecialKind::Metadata);
                guard::network_is_special(&net) && !metadata
            }
            (HostPattern::Exact(name), _) => name == "localhost",
            _ => false,
        }
    }

    /// Whether the host part covers `host` (ports aside).
    pub fn matches_host(&self, host: &Host) -> bool {
        match (self.host(), host) {
            (HostPattern::Exact(p), Host::Name(n)) => p == &**n,
            (HostPattern::Subdomains(s), Host::Name(n)) => is_strict_subdomain(n, s),
            (HostPattern::DomainAndSubdomains(s), Host::Name(n)) => {
                **n == *s || is_strict_subdomain(n, s)
            }
            (HostPattern::Ip(p), Host::Ip(ip)) => p == *ip,
            (HostPattern::Net(net), Host::Ip(ip)) => net.contains(ip),
            _ => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

fn is_strict_subdomain(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

/// Splits `host[:ports]`. IPv6 needs brackets when a port follows: `[::1]:8080`.
fn split_ports(text: &str) -> Result<(&str, PortSet), PatternError> {
    if let Some(rest) = text.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| error("missing ']' after an IPv6 address", None))?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        if after.is_empty() {
            return Ok((host, PortSet::Default));
        }
        let ports = after
            .strip_prefix(':')
            .ok_or_else(|| error(format!("unexpected {after:?} after ']'"), None))?;
        return Ok((host, parse_ports(ports)?));
    }
    if text.matches(':').count() > 1 {
        // Bare IPv6 (or IPv6 CIDR) without a port.
        return Ok((text, PortSet::Default));
    }
    match text.split_once(':') {
        Some((host, ports)) => Ok((host, parse_ports(ports)?)),
        None => Ok((text, PortSet::Default)),
    }
}

fn parse_ports(text: &str) -> Result<PortSet, PatternError> {
    let hint =
        || Some("ports are written \":443\", \":80,443\", \":8000-8999\" or \":*\"".to_string());
    if text == "*" {
        return Ok(PortSet::Any);
    }
    let mut ranges = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let range = match item.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (port(lo.trim(), hint)?, port(hi.trim(), hint)?);
                if lo > hi {
                    return Err(error(
                        format!("port range {item:?} is reversed"),
                        Some(format!("write {hi}-{lo}")),
                    ));
                }
                (lo, hi)
            }
            None => {
                let p = port(item, hint)?;
                (p, p)
            }
        };
        ranges.push(range);
    }
    Ok(PortSet::Ranges(ranges.into_boxed_slice()))
}

fn port(text: &str, hint: impl Fn() -> Option<String>) -> Result<u16, PatternError> {
    parse_port(text)
        .map_err(|_| error(format!("invalid port {text:?} (ports are 1-65535)"), hint()))
}

/// The kind of host part, and its name in normal form for a name.
fn parse_host_pattern(text: &str) -> Result<(Kind, Option<Box<str>>), PatternError> {
    if text.contains('/') {
        let net: IpNet = text.parse().map_err(|_| {
            error(
                format!("{text:?} is neither a host nor a CIDR"),
                Some(
                    "a CIDR is written like 10.0.0.0/8 or fd00::/8, with ports [fd00::/8]:443; \
                     for a URL, write the host only"
                        .into(),
                ),
            )
        })?;
        return Ok((Kind::Net(net.trunc()), None));
    }
    let wildcard_hint =
        || Some("a wildcard is only a whole first label: write \"*.example.com\"".to_string());
    if text == "*" {
        return Err(error(
            "\"*\" would allow everything",
            Some("list the hosts to allow; use mode: report to discover them".into()),
        ));
    }
    let (kind, rest) = if let Some(rest) = text.strip_prefix("*.") {
        (Kind::Subdomains, rest)
    } else if let Some(rest) = text.strip_prefix('.') {
        (Kind::DomainAndSubdomains, rest)
    } else {
        (Kind::Exact, text)
    };
    if rest.contains('*') {
        return Err(error(
            format!("{text:?}: misplaced wildcard"),
            wildcard_hint(),
        ));
    }
    let host = Host::parse(rest).map_err(|e| error(format!("{text:?}: {e}"), None))?;
    match host {
        Host::Ip(ip) if text == rest => Ok((Kind::Ip(ip), None)),
        Host::Ip(_) => Err(error(
            format!("{text:?}: wildcards apply to names, not addresses"),
            Some("for a range of addresses write a CIDR, like 10.0.0.0/8".into()),
        )),
        Host::Name(name) => {
            if text != rest && !name.contains('.') {
                return Err(error(
                    format!("{text:?} would match a whole top-level domain"),
                    Some(format!(
                        "name a domain, like \"{}example.{name}\"",
                        &text[..text.len() - rest.len()]
                    )),
                ));
            }
            Ok((kind, Some(name)))
        }
    }
}

#[cfg(test)]
mod tests;
