//! A compiled list of patterns. Names are found by hash lookups of the target and each of its
//! parent domains (O(labels)); addresses by one hash lookup per prefix length the list uses. No
//! lookup allocates.
//!
//! The tables hold entry positions, not copies of the names: a policy of a million names costs a
//! few bytes per entry here on top of the entries themselves.

mod addresses;
mod hash;
mod names;

use crate::host::Host;
use crate::pattern::{HostPattern, Pattern};

use addresses::AddressTable;
use names::NameTable;

#[derive(Clone, Debug, Default)]
pub struct Index {
    /// Name entries of every kind, by the name after any `*.` or `.`.
    names: NameTable,
    /// IP and CIDR entries.
    addresses: AddressTable,
}

impl Index {
    pub fn new(patterns: &[Pattern]) -> Self {
        Index {
            names: NameTable::new(patterns),
            addresses: AddressTable::new(patterns),
        }
    }

    /// Calls `visit` with the position of every entry whose host part covers `host`.
    pub fn for_each_match(&self, patterns: &[Pattern], host: &Host, mut visit: impl FnMut(usize)) {
        match host {
            Host::Name(name) => self.names.for_each_suffix(patterns, name, &mut |p, whole| {
                // `name` and `.name` cover the name itself, `*.name` does not; `*.parent` and
                // `.parent` cover it, `parent` does not.
                let covers = match patterns[p].host() {
                    HostPattern::Subdomains(_) => !whole,
                    HostPattern::Exact(_) => whole,
                    _ => true,
                };
                if covers {
                    visit(p)
                }
            }),
            Host::Ip(ip) => self.addresses.for_each(*ip, &mut visit),
        }
    }
}

#[cfg(test)]
mod tests;
