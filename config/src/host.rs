//! Target hosts, normalised once where they are parsed: case, trailing dot, IDNA, IPv4 spellings
//! (`127.1`, `0x7f.0.0.1`, `2130706433`, `017700000001`), brackets and IPv4-mapped IPv6. The
//! policy compares only normalised hosts, so two spellings of one address can never diverge.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A destination host: a DNS name (lowercase ASCII, punycode, no trailing dot) or an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Name(Box<str>),
    Ip(IpAddr),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("host contains a control character, space or NUL")]
    ControlCharacter,
    #[error("IPv6 zone ids (%) are not accepted")]
    ZoneId,
    #[error("invalid IPv6 address")]
    InvalidIpv6,
    #[error("looks like an IPv4 address but is not a valid one")]
    InvalidIpv4,
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("a label is longer than 63 characters")]
    LabelTooLong,
    #[error("the name is longer than 253 characters")]
    NameTooLong,
    #[error("character {0:?} is not allowed in a host name")]
    InvalidCharacter(char),
    #[error("invalid internationalised name")]
    Idna,
    #[error("invalid port (expected 1-65535)")]
    InvalidPort,
    #[error("an IPv6 address with a port must be in brackets: [::1]:443")]
    UnbracketedIpv6,
}

impl Host {
    /// Parses and normalises a host (no port). Brackets around IPv6 are accepted.
    pub fn parse(input: &str) -> Result<Host, HostError> {
        if input.is_empty() {
            return Err(HostError::Empty);
        }
        if input.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(HostError::ControlCharacter);
        }
        if input.contains('%') {
            return Err(HostError::ZoneId);
        }
        if let Some(inner) = input.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(HostError::InvalidIpv6)?;
            let ip: Ipv6Addr = inner.parse().map_err(|_| HostError::InvalidIpv6)?;
            return Ok(Host::from_ip(IpAddr::V6(ip)));
        }
        if input.contains(':') {
            let ip: Ipv6Addr = input.parse().map_err(|_| HostError::InvalidIpv6)?;
            return Ok(Host::from_ip(IpAddr::V6(ip)));
        }
        let trimmed = input.strip_suffix('.').unwrap_or(input);
        if trimmed.is_empty() {
            return Err(HostError::Empty);
        }
        if looks_numeric(trimmed) {
            return parse_ipv4(trimmed).map(|ip| Host::Ip(IpAddr::V4(ip)));
        }
        let name = normalise_name(trimmed)?;
        // IDNA maps some characters to digits and letters (fullwidth `１２７`, `ˣ`), so the
        // mapped name gets the same "is it an address?" check as typed ASCII (as WHATWG URL
        // does); otherwise two spellings of one host could be judged differently.
        if looks_numeric(&name) {
            return parse_ipv4(&name).map(|ip| Host::Ip(IpAddr::V4(ip)));
        }
        Ok(Host::Name(name.into_boxed_str()))
    }

    /// An address, with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) unwrapped to IPv4.
    pub fn from_ip(ip: IpAddr) -> Host {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Host::Ip(IpAddr::V4(v4)),
                None => Host::Ip(IpAddr::V6(v6)),
            },
            v4 => Host::Ip(v4),
        }
    }

    pub fn as_name(&self) -> Option<&str> {
        match self {
            Host::Name(n) => Some(n),
            Host::Ip(_) => None,
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }

    /// `host:port`, with brackets around IPv6.
    pub fn authority(&self, port: u16) -> String {
        match self {
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            other => format!("{other}:{port}"),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port` (as in a CONNECT target or a URL).
pub fn parse_authority(input: &str) -> Result<(Host, Option<u16>), HostError> {
    let (host, port) = if let Some(rest) = input.strip_prefix('[') {
        let close = rest.find(']').ok_or(HostError::InvalidIpv6)?;
        let after = &rest[close + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(HostError::InvalidPort)?),
        };
        (&input[..close + 2], port)
    } else {
        match input.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => return Err(HostError::UnbracketedIpv6),
            Some((host, port)) => (host, Some(port)),
            None => (input, None),
        }
    };
    let port = port.map(parse_port).transpose()?;
    Ok((Host::parse(host)?, port))
}

/// Digits only, 1..=65535 (no sign, no spaces, no leading `+`).
pub fn parse_port(text: &str) -> Result<u16, HostError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::InvalidPort);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(HostError::InvalidPort),
        Ok(port) => Ok(port),
    }
}

/// A host whose last label starts with a digit or is hex (`0x…`) is an address attempt, never a
/// name: `1.2.3.256` must be an error, not a DNS lookup a resolver might answer differently.
fn looks_numeric(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or("");
    last.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && last
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'x' || b == b'X')
}

/// inet_aton: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last part fills the
/// remaining bytes.
fn parse_ipv4(host: &str) -> Result<Ipv4Addr, HostError> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 4 {
        return Err(HostError::InvalidIpv4);
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        values.push(parse_ipv4_part(part).ok_or(HostError::InvalidIpv4)?);
    }
    let (last, leading) = values.split_last().ok_or(HostError::InvalidIpv4)?;
    let mut addr: u64 = 0;
    for (i, value) in leading.iter().enumerate() {
        if *value > 255 {
            return Err(HostError::InvalidIpv4);
        }
        addr |= value << (24 - 8 * i);
    }
    let room = 32 - 8 * leading.len() as u32;
    if *last >= (1u64 << room) {
        return Err(HostError::InvalidIpv4);
    }
    Ok(Ipv4Addr::from((addr | last) as u32))
}

fn parse_ipv4_part(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return if radix == 16 { None } else { Some(0) };
    }
    if digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Lowercase ASCII fast path; anything else goes through IDNA (UTS #46) to punycode.
fn normalise_name(name: &str) -> Result<String, HostError> {
    if is_normal_already(name) {
        return Ok(name.to_string());
    }
    normalise_slowly(name)
}

/// `normalise_name` without the shortcut: case, IDNA and every check.
fn normalise_slowly(name: &str) -> Result<String, HostError> {
    let ascii = if name.is_ascii() {
        name.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii_strict(name).map_err(|_| HostError::Idna)?
    };
    if ascii.len() > 253 {
        return Err(HostError::NameTooLong);
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(HostError::LabelTooLong);
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(HostError::InvalidCharacter(bad));
        }
    }
    if ascii.contains("xn--") && !name.is_ascii() {
        return Ok(ascii);
    }
    if ascii.contains("xn--") {
        // Already punycode: check it decodes, so a bogus `xn--` label is not a second spelling.
        let (_, result) = idna::domain_to_unicode(&ascii);
        result.map_err(|_| HostError::Idna)?;
    }
    Ok(ascii)
}

/// Whether `name` is already what `normalise_name` would make of it, checked in one pass: the
/// common case (lowercase letters, digits, `-`, `_`, no empty or long label, no `xn--` that
/// would need decoding). A policy of a million names spends its load time here otherwise.
fn is_normal_already(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.len() > 253 {
        return false;
    }
    let mut label = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'.' if label == 0 => return false,
            b'.' => label = 0,
            b'x' if bytes[i + 1..].starts_with(b"n--") => return false,
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {
                label += 1;
                if label > 63 {
                    return false;
                }
            }
            _ => return false,
        }
    }
    label > 0
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
