//! IP and CIDR entries, found by one hash lookup per prefix length in use: an address is in a
//! network exactly when the address cut to the network's length is the network's address. With
//! ten thousand networks this is a handful of lookups instead of a scan of all of them.

use std::collections::HashMap;
use std::net::IpAddr;

use super::hash::Key;
use crate::pattern::{HostPattern, Pattern};

#[derive(Clone, Debug, Default)]
pub struct AddressTable {
    /// (IPv6?, prefix length, address cut to that length) → entry positions.
    networks: HashMap<(bool, u8, u128), Vec<u32>, Key>,
    /// The prefix lengths of IPv4 entries, each once (a single address is a /32).
    v4_lengths: Vec<u8>,
    /// The same for IPv6 (a single address is a /128).
    v6_lengths: Vec<u8>,
}

/// The address as a number, with its family and width in bits.
fn bits(ip: IpAddr) -> (bool, u8, u128) {
    match ip {
        IpAddr::V4(v4) => (false, 32, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, 128, u128::from(v6)),
    }
}

/// `value` (of `width` bits) with everything after the first `length` bits cleared.
fn cut(value: u128, width: u8, length: u8) -> u128 {
    if length == 0 {
        return 0;
    }
    let host_bits = u32::from(width - length);
    value >> host_bits << host_bits
}

impl AddressTable {
    pub fn new(patterns: &[Pattern]) -> AddressTable {
        let mut table = AddressTable::default();
        for (position, pattern) in patterns.iter().enumerate() {
            let (ip, length) = match pattern.host() {
                HostPattern::Ip(ip) => (ip, bits(ip).1),
                HostPattern::Net(net) => (net.network(), net.prefix_len()),
                _ => continue,
            };
            let (v6, width, value) = bits(ip);
            let lengths = if v6 {
                &mut table.v6_lengths
            } else {
                &mut table.v4_lengths
            };
            if !lengths.contains(&length) {
                lengths.push(length);
            }
            table
                .networks
                .entry((v6, length, cut(value, width, length)))
                .or_default()
                .push(position as u32);
        }
        table
    }

    /// Calls `visit` with the position of every entry covering `ip`.
    pub fn for_each(&self, ip: IpAddr, visit: &mut impl FnMut(usize)) {
        let (v6, width, value) = bits(ip);
        let lengths = if v6 {
            &self.v6_lengths
        } else {
            &self.v4_lengths
        };
        for &length in lengths {
            if let Some(positions) = self.networks.get(&(v6, length, cut(value, width, length))) {
                positions.iter().for_each(|p| visit(*p as usize));
            }
        }
    }
}
