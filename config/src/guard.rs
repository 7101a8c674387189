//! The address guard: which destination addresses are not "the internet" — loopback, private,
//! link-local, shared, reserved, documentation, multicast, cloud metadata endpoints and the host's
//! own interfaces — including IPv4 addresses hidden inside IPv6 ones.
//!
//! Written here rather than taken from `std` (`Ipv4Addr::is_global` is unstable and its ranges
//! move) or a crate: the table below is the security boundary, so it is spelled out in one place
//! with a test per row, and the IPv6 embeddings are decoded the way a router would route them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is not a public destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialKind {
    /// A cloud instance-metadata endpoint: credentials live there.
    Metadata,
    Loopback,
    /// RFC 1918.
    Private,
    LinkLocal,
    /// 100.64.0.0/10 (RFC 6598), used by carriers and overlay networks.
    SharedAddressSpace,
    /// fc00::/7, and the deprecated site-local fec0::/10.
    UniqueLocal,
    Multicast,
    /// 0.0.0.0, `::`: "this host" on most stacks.
    Unspecified,
    /// 0.0.0.0/8: "this network".
    ThisNetwork,
    Broadcast,
    /// Documentation and benchmarking ranges: never a real destination.
    Documentation,
    /// IETF protocol assignments, discard-only, future use.
    Reserved,
    /// An address of one of this host's own interfaces.
    OwnAddress,
}

impl SpecialKind {
    /// The word used in logs (`kind=`) and error details.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialKind::Metadata => "cloud-metadata",
            SpecialKind::Loopback => "loopback",
            SpecialKind::Private => "private",
            SpecialKind::LinkLocal => "link-local",
            SpecialKind::SharedAddressSpace => "shared-address-space",
            SpecialKind::UniqueLocal => "unique-local",
            SpecialKind::Multicast => "multicast",
            SpecialKind::Unspecified => "unspecified",
            SpecialKind::ThisNetwork => "this-network",
            SpecialKind::Broadcast => "broadcast",
            SpecialKind::Documentation => "documentation",
            SpecialKind::Reserved => "reserved",
            SpecialKind::OwnAddress => "own-interface",
        }
    }
}

/// A refused address: its kind, and the IPv4 address it carries when it came inside IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Special {
    pub kind: SpecialKind,
    pub embedded: Option<Ipv4Addr>,
}

impl fmt::Display for Special {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some(v4) = self.embedded {
            write!(f, " (IPv4 {v4} embedded in IPv6)")?;
        }
        Ok(())
    }
}

/// Single addresses where clouds serve instance metadata and credentials. Most also lie in a
/// special range; 168.63.129.16 (Azure) does not, which is why the list exists.
const METADATA: [IpAddr; 6] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)), // AWS, GCP, Azure IMDS, OpenStack, DigitalOcean
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),   // AWS ECS task credentials
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),   // Azure wireserver
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)), // Alibaba Cloud
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)), // AWS IMDS over IPv6
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),     // Oracle Cloud (legacy)
];

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> (u32, u8, SpecialKind) {
    (u32::from_be_bytes([a, b, c, d]), len, SpecialKind::Reserved)
}

/// IPv4 ranges, most specific first where they overlap (the first match names the kind).
const V4_RANGES: &[(u32, u8, SpecialKind)] = &[
    with(v4(255, 255, 255, 255, 32), SpecialKind::Broadcast),
    with(v4(0, 0, 0, 0, 32), SpecialKind::Unspecified),
    with(v4(0, 0, 0, 0, 8), SpecialKind::ThisNetwork),
    with(v4(127, 0, 0, 0, 8), SpecialKind::Loopback),
    with(v4(10, 0, 0, 0, 8), SpecialKind::Private),
    with(v4(172, 16, 0, 0, 12), SpecialKind::Private),
    with(v4(192, 168, 0, 0, 16), SpecialKind::Private),
    with(v4(169, 254, 0, 0, 16), SpecialKind::LinkLocal),
    with(v4(100, 64, 0, 0, 10), SpecialKind::SharedAddressSpace),
    v4(192, 0, 0, 0, 24), // IETF protocol assignments (RFC 6890)
    with(v4(192, 0, 2, 0, 24), SpecialKind::Documentation),
    with(v4(198, 51, 100, 0, 24), SpecialKind::Documentation),
    with(v4(203, 0, 113, 0, 24), SpecialKind::Documentation),
    with(v4(198, 18, 0, 0, 15), SpecialKind::Documentation), // benchmarking (RFC 2544)
    with(v4(224, 0, 0, 0, 4), SpecialKind::Multicast),
    v4(240, 0, 0, 0, 4), // future use
];

const fn with(range: (u32, u8, SpecialKind), kind: SpecialKind) -> (u32, u8, SpecialKind) {
    (range.0, range.1, kind)
}

const fn v6(prefix: u128, len: u8, kind: SpecialKind) -> (u128, u8, SpecialKind) {
    (prefix, len, kind)
}

/// IPv6 ranges that carry no IPv4 address (those are decoded first, see `embedded_v4`).
const V6_RANGES: &[(u128, u8, SpecialKind)] = &[
    v6(0, 128, SpecialKind::Unspecified),
    v6(1, 128, SpecialKind::Loopback),
    v6(0xfe80 << 112, 10, SpecialKind::LinkLocal),
    v6(0xfec0 << 112, 10, SpecialKind::UniqueLocal), // site-local, deprecated but still routed by some
    v6(0xfc00 << 112, 7, SpecialKind::UniqueLocal),
    v6(0xff00 << 112, 8, SpecialKind::Multicast),
    v6(0x2001_0db8 << 96, 32, SpecialKind::Documentation),
    v6(0x3fff << 112, 20, SpecialKind::Documentation),
    v6(0x2001_0002 << 96, 48, SpecialKind::Documentation), // benchmarking (RFC 5180)
    v6(0x0100 << 112, 64, SpecialKind::Reserved),          // discard-only (RFC 6666)
    v6(0x2001_0000 << 96, 23, SpecialKind::Reserved), // IETF protocol assignments, Teredo aside
    v6(0, 8, SpecialKind::Reserved),                  // ::/8 holds nothing routable but the above
];

fn in_v4(addr: Ipv4Addr, prefix: u32, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(addr) & mask == prefix & mask
}

fn in_v6(addr: Ipv6Addr, prefix: u128, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    u128::from(addr) & mask == prefix & mask
}

/// The IPv4 address an IPv6 address stands for, when it is one of the forms that routers or
/// translators turn into IPv4 traffic: mapped (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`),
/// SIIT-translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`), 6to4
/// (`2002:AABB:CCDD::/48`) and Teredo (`2001:0::/32`, client address stored inverted).
pub fn embedded_v4(addr: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(addr);
    let low32 = Ipv4Addr::from(bits as u32);
    if in_v6(addr, 0xffff << 32, 96) || in_v6(addr, 0xffff_0000 << 32, 96) {
        return Some(low32);
    }
    // Compatible: `::a.b.c.d`, but `::` and `::1` are themselves.
    if bits >> 32 == 0 && bits > 1 {
        return Some(low32);
    }
    if in_v6(addr, 0x0064_ff9b << 96, 96) || in_v6(addr, 0x0064_ff9b_0001 << 80, 48) {
        return Some(low32);
    }
    if in_v6(addr, 0x2002 << 112, 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    if in_v6(addr, 0x2001_0000 << 96, 32) {
        return Some(Ipv4Addr::from(!(bits as u32)));
    }
    None
}

/// The fixed table alone: what an address is, regardless of configuration and host.
pub fn classify(ip: IpAddr) -> Option<Special> {
    if METADATA.contains(&ip) {
        return Some(Special {
            kind: SpecialKind::Metadata,
            embedded: None,
        });
    }
    match ip {
        IpAddr::V4(addr) => classify_v4(addr).map(|kind| Special {
            kind,
            embedded: None,
        }),
        IpAddr::V6(addr) => {
            if let Some(inner) = embedded_v4(addr) {
                let kind = if METADATA.contains(&IpAddr::V4(inner)) {
                    Some(SpecialKind::Metadata)
                } else {
                    classify_v4(inner)
                };
                // Teredo's server half is an IPv4 address too; a private one is a relay to
                // somewhere inside.
                let teredo_server = in_v6(addr, 0x2001_0000 << 96, 32)
                    .then(|| Ipv4Addr::from((u128::from(addr) >> 64) as u32))
                    .and_then(classify_v4);
                return kind.or(teredo_server).map(|kind| Special {
                    kind,
                    embedded: Some(inner),
                });
            }
            V6_RANGES
                .iter()
                .find(|(prefix, len, _)| in_v6(addr, *prefix, *len))
                .map(|(_, _, kind)| Special {
                    kind: *kind,
                    embedded: None,
                })
        }
    }
}

fn classify_v4(addr: Ipv4Addr) -> Option<SpecialKind> {
    V4_RANGES
        .iter()
        .find(|(prefix, len, _)| in_v4(addr, *prefix, *len))
        .map(|(_, _, kind)| *kind)
}

/// Whether a whole network is special space of one kind: an allow entry written for such a
/// network (`10.0.0.0/8`, `fd00::/8`) is a deliberate choice to reach it; one that merely spans
/// it (`0.0.0.0/0`) is not.
pub fn network_is_special(net: &IpNet) -> bool {
    let kind = |ip| classify(ip).map(|s| s.kind);
    match (kind(net.network()), kind(net.broadcast())) {
        (Some(first), Some(last)) => first == last,
        _ => false,
    }
}

/// The guard as configured: the table, the host's own addresses, and the exceptions.
#[derive(Debug, Clone)]
pub struct AddressGuard {
    enabled: bool,
    allow_networks: Vec<IpNet>,
    own_addresses: Vec<IpAddr>,
}

impl AddressGuard {
    /// Enabled, with `allow_networks` as exceptions. A metadata endpoint is excepted only by an
    /// entry for that single address: `100.64.0.0/10` for an overlay network must not open
    /// Alibaba's metadata service at 100.100.100.200 by accident.
    pub fn new(allow_networks: Vec<IpNet>) -> Self {
        Self {
            enabled: true,
            allow_networks,
            own_addresses: Vec::new(),
        }
    }

    /// Lets every address through (`address_guard.enabled: false`).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            allow_networks: Vec::new(),
            own_addresses: Vec::new(),
        }
    }

    /// Also refuses these addresses (the host's interfaces): a public address of the proxy's own
    /// host reaches its local services just as loopback does.
    pub fn with_own_addresses(mut self, own: Vec<IpAddr>) -> Self {
        self.own_addresses = own;
        self
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `ip` is one of this host's own addresses, whatever `allow_networks` says: an
    /// intercepted connection to the proxy's own host is a loop or a way into its local
    /// services, never a destination.
    pub fn is_own(&self, ip: IpAddr) -> bool {
        self.enabled && self.own_address(ip).is_some()
    }

    /// `Ok` when `ip` may be dialed.
    pub fn check(&self, ip: IpAddr) -> Result<(), Special> {
        if !self.enabled {
            return Ok(());
        }
        let special = classify(ip).or_else(|| self.own_address(ip));
        let Some(special) = special else {
            return Ok(());
        };
        if self.excepted(ip, special) {
            Ok(())
        } else {
            Err(special)
        }
    }

    fn own_address(&self, ip: IpAddr) -> Option<Special> {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_v4(v6),
            IpAddr::V4(_) => None,
        };
        let own = self.own_addresses.contains(&ip)
            || embedded.is_some_and(|v4| self.own_addresses.contains(&v4.into()));
        own.then_some(Special {
            kind: SpecialKind::OwnAddress,
            embedded,
        })
    }

    fn excepted(&self, ip: IpAddr, special: Special) -> bool {
        let candidates = [Some(ip), special.embedded.map(IpAddr::V4)];
        candidates.into_iter().flatten().any(|addr| {
            self.allow_networks.iter().any(|net| {
                net.contains(&addr)
                    && (special.kind != SpecialKind::Metadata
                        || net.prefix_len() == net.max_prefix_len())
            })
        })
    }
}

#[cfg(test)]
mod tests;
