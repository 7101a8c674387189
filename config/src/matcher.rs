//! A compiled list of patterns. Names are found by hash lookups of the target and each of its
//! parent domains (O(labels)); addresses by one hash lookup per prefix length the list uses. No
//! lookup allocates.
//!
//! The tables hold entry positions, not copies of the names: a policy of a million names costs a
//! few bytes per entry here on top of the entries themselves.

mod addresses;
mod names;

use crate::host::Host;
use crate::pattern::{HostPattern, Pattern};

use addresses::AddressTable;
use names::NameTable;

#[derive(Clone, Debug, Default)]
pub struct Index {
    /// Exact names.
    exact: NameTable,
    /// `*.suffix`, by suffix; looked up with each proper parent of the target.
    subdomains: NameTable,
    /// `.suffix`, by suffix; looked up with the target and each parent.
    domain: NameTable,
    /// IP and CIDR entries.
    addresses: AddressTable,
}

impl Index {
    pub fn new(patterns: &[Pattern]) -> Self {
        Index {
            exact: NameTable::new(patterns, |h| matches!(h, HostPattern::Exact(_))),
            subdomains: NameTable::new(patterns, |h| matches!(h, HostPattern::Subdomains(_))),
            domain: NameTable::new(patterns, |h| {
                matches!(h, HostPattern::DomainAndSubdomains(_))
            }),
            addresses: AddressTable::new(patterns),
        }
    }

    /// Calls `visit` with the position of every entry whose host part covers `host`.
    pub fn for_each_match(&self, patterns: &[Pattern], host: &Host, mut visit: impl FnMut(usize)) {
        match host {
            Host::Name(name) => {
                self.exact.for_each(patterns, name, &mut visit);
                self.domain.for_each(patterns, name, &mut visit);
                let mut rest: &str = name;
                while let Some((_, parent)) = rest.split_once('.') {
                    self.subdomains.for_each(patterns, parent, &mut visit);
                    self.domain.for_each(patterns, parent, &mut visit);
                    rest = parent;
                }
            }
            Host::Ip(ip) => self.addresses.for_each(*ip, &mut visit),
        }
    }
}

#[cfg(test)]
mod tests;
