//! `/etc/hosts`, answered as glibc does: a name the file lists gets exactly the file's
//! addresses, of both families, and DNS is never asked about it.
//!
//! hickory's own hosts support answers per record type: for a name the file maps to IPv4 only,
//! the AAAA half still goes to the nameservers and is waited for, so a dead nameserver turned a
//! local name into `dns-failed` after the whole DNS deadline.

use std::net::IpAddr;
use std::str::FromStr;

use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::Hosts;
use tracing::warn;

/// The hosts file as read when the resolver was built (each policy snapshot reads it anew).
#[derive(Debug, Default)]
pub struct HostsFile {
    table: Hosts,
}

impl HostsFile {
    /// The system's file (`/etc/hosts`); empty, with a warning, when it cannot be read.
    pub fn system() -> HostsFile {
        match Hosts::from_system() {
            Ok(table) => HostsFile { table },
            Err(error) => {
                warn!(%error, "cannot read /etc/hosts; names are resolved by DNS only");
                HostsFile::default()
            }
        }
    }

    /// Parses hosts-file text (for tests).
    #[cfg(test)]
    pub fn parse(text: &str) -> HostsFile {
        let mut table = Hosts::default();
        table
            .read_hosts_conf(text.as_bytes())
            .expect("reading a string");
        HostsFile { table }
    }

    /// Every address the file gives `name` (a normalised host name, without trailing dot), IPv4
    /// first; `None` when the file does not list the name, so it goes to DNS.
    pub fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let name = Name::from_str(&format!("{name}.")).ok()?;
        let mut found: Option<Vec<IpAddr>> = None;
        for kind in [RecordType::A, RecordType::AAAA] {
            let query = Query::query(name.clone(), kind);
            if let Some(lookup) = self.table.lookup_static_host(&query) {
                let addrs = found.get_or_insert_with(Vec::new);
                addrs.extend(lookup.iter().filter_map(|rdata| rdata.ip_addr()));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "127.0.0.1 localhost\n\
                        ::1 localhost ip6-localhost\n\
                        10.1.2.3 Build.Internal build # a comment\n\
                        fd00::7 only-six.internal\n\
                        # 10.9.9.9 commented.internal\n";

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn a_listed_name_gets_the_files_addresses_of_both_families() {
        let hosts = HostsFile::parse(FILE);
        assert_eq!(hosts.lookup("localhost"), Some(ips(&["127.0.0.1", "::1"])));
        // IPv4 only: an answer, not "ask DNS for the AAAA half".
        assert_eq!(hosts.lookup("build.internal"), Some(ips(&["10.1.2.3"])));
        assert_eq!(hosts.lookup("build"), Some(ips(&["10.1.2.3"])));
        assert_eq!(hosts.lookup("only-six.internal"), Some(ips(&["fd00::7"])));
    }

    #[test]
    fn an_unlisted_or_commented_name_goes_to_dns() {
        let hosts = HostsFile::parse(FILE);
        assert_eq!(hosts.lookup("commented.internal"), None);
        assert_eq!(hosts.lookup("example.com"), None);
        assert_eq!(hosts.lookup("sub.build.internal"), None);
        assert_eq!(HostsFile::default().lookup("localhost"), None);
    }
}
