//! A compiled list of patterns. Names are found by hash lookups of the target and each of its
//! parent domains (O(labels)); IP entries are few and scanned. No lookup allocates.

use std::collections::HashMap;

use crate::host::Host;
use crate::pattern::{HostPattern, Pattern};

#[derive(Clone, Debug, Default)]
pub struct Index {
    /// Exact names → entry positions.
    exact: HashMap<Box<str>, Vec<usize>>,
    /// `*.suffix` → positions; looked up with each proper parent of the target.
    subdomains: HashMap<Box<str>, Vec<usize>>,
    /// `.suffix` → positions; looked up with the target and each parent.
    domain: HashMap<Box<str>, Vec<usize>>,
    /// IP and CIDR entries.
    addresses: Vec<usize>,
}

impl Index {
    pub fn new(patterns: &[Pattern]) -> Self {
        let mut index = Index::default();
        for (position, pattern) in patterns.iter().enumerate() {
            let slot = match &pattern.host {
                HostPattern::Exact(name) => index.exact.entry(name.clone()),
                HostPattern::Subdomains(suffix) => index.subdomains.entry(suffix.clone()),
                HostPattern::DomainAndSubdomains(suffix) => index.domain.entry(suffix.clone()),
                HostPattern::Ip(_) | HostPattern::Net(_) => {
                    index.addresses.push(position);
                    continue;
                }
            };
            slot.or_default().push(position);
        }
        index
    }

    /// Calls `visit` with the position of every entry whose host part covers `host`.
    pub fn for_each_match(&self, patterns: &[Pattern], host: &Host, mut visit: impl FnMut(usize)) {
        match host {
            Host::Name(name) => {
                let mut each = |map: &HashMap<Box<str>, Vec<usize>>, key: &str| {
                    if let Some(positions) = map.get(key) {
                        positions.iter().for_each(|p| visit(*p));
                    }
                };
                each(&self.exact, name);
                each(&self.domain, name);
                let mut rest: &str = name;
                while let Some((_, parent)) = rest.split_once('.') {
                    each(&self.subdomains, parent);
                    each(&self.domain, parent);
                    rest = parent;
                }
            }
            Host::Ip(_) => {
                for &position in &self.addresses {
                    if patterns[position].matches_host(host) {
                        visit(position);
                    }
                }
            }
        }
    }
}
