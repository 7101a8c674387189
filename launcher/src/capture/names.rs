//! The stand-in addresses the DNS stub hands out: one per allowed name, from 198.18.0.0/15
//! (RFC 2544's benchmarking block, which no real destination uses and egress's address guard
//! refuses), remembered for the whole run so that a connection to one is known to be that
//! name's (see `egress_proxy::transparent::StandIns`).
//!
//! Why stand-ins rather than the name's real addresses: a connection then carries its name even
//! when it says nothing (ssh, a database protocol), the program cannot learn where the name
//! really points (egress resolves and dials it, with its own resolver and address guard), and a
//! name with many addresses, or addresses shared with other names, needs no guessing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use egress_config::Host;

/// 198.18.0.0/15: the first and last addresses handed out.
const FIRST: u32 = u32::from_be_bytes([198, 18, 0, 1]);
const LAST: u32 = u32::from_be_bytes([198, 19, 255, 254]);

#[derive(Debug, Default)]
pub struct Names {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    by_name: HashMap<Host, Ipv4Addr>,
    by_address: HashMap<Ipv4Addr, Host>,
}

impl Names {
    /// `name`'s stand-in, the same for the whole run; `None` once all 131,070 are taken.
    pub fn address_for(&self, name: &Host) -> Option<Ipv4Addr> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(address) = table.by_name.get(name) {
            return Some(*address);
        }
        let next = FIRST + u32::try_from(table.by_name.len()).ok()?;
        if next > LAST {
            return None;
        }
        let address = Ipv4Addr::from(next);
        table.by_name.insert(name.clone(), address);
        table.by_address.insert(address, name.clone());
        Some(address)
    }
}

impl egress_proxy::transparent::StandIns for Names {
    fn name_of(&self, ip: IpAddr) -> Option<Host> {
        let IpAddr::V4(v4) = ip.to_canonical() else {
            return None;
        };
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.by_address.get(&v4).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_proxy::transparent::StandIns;

    #[test]
    fn each_name_keeps_its_own_address_and_others_stand_for_nothing() {
        let names = Names::default();
        let a = Host::parse("a.example").unwrap();
        let b = Host::parse("b.example").unwrap();
        let first = names.address_for(&a).unwrap();
        assert_eq!(first, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(names.address_for(&b).unwrap(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(names.address_for(&a).unwrap(), first);
        assert_eq!(names.name_of(first.into()), Some(a));
        let mapped: IpAddr = "::ffff:198.18.0.2".parse().unwrap();
        assert_eq!(names.name_of(mapped), Some(b));
        assert_eq!(names.name_of("198.18.0.3".parse().unwrap()), None);
        assert_eq!(names.name_of("10.0.0.1".parse().unwrap()), None);
    }
}
