//! The addresses egress's DNS responder handed out: for each client, which name each address
//! was given for, until the answer's TTL runs out. An intercepted connection trusts them: its
//! name may be one the responder answered with its original address (as well as one egress's
//! own lookup gives), and a connection without a name (SSH) may go only to an address handed
//! to that client for a name the policy allows on that port.
//!
//! Bounded: at most `MAX_PAIRS` (client, address) pairs, each with at most `MAX_NAMES` names
//! (a CDN address serves many); past that the oldest pair, or the pair's oldest name, goes. A
//! client asking for many names can only push out entries, never grow the table.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use egress_config::Host;

/// (client, address) pairs remembered across all clients.
pub const MAX_PAIRS: usize = 65_536;
/// Names remembered for one (client, address) pair.
pub const MAX_NAMES: usize = 16;

type Pair = (IpAddr, IpAddr);

/// The table; one per proxy, outliving reloads (a reload does not take back answers given).
#[derive(Debug, Default)]
pub struct Handed {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    names: HashMap<Pair, Vec<(Host, Instant)>>,
    /// Pairs in the order they were first remembered: the front is evicted first.
    order: VecDeque<Pair>,
}

impl Handed {
    /// `client` was told `name` is at `addresses`, valid for `ttl`.
    pub fn remember(&self, client: IpAddr, name: &Host, addresses: &[IpAddr], ttl: Duration) {
        let until = Instant::now() + ttl;
        let mut inner = self.lock();
        for &address in addresses {
            let pair = (client.to_canonical(), address.to_canonical());
            if !inner.names.contains_key(&pair) {
                if inner.order.len() >= MAX_PAIRS {
                    if let Some(oldest) = inner.order.pop_front() {
                        inner.names.remove(&oldest);
                    }
                }
                inner.order.push_back(pair);
            }
            let names = inner.names.entry(pair).or_default();
            names.retain(|(known, expires)| known != name && *expires > Instant::now());
            if names.len() >= MAX_NAMES {
                names.remove(0);
            }
            names.push((name.clone(), until));
        }
    }

    /// The names `address` was handed to `client` for, still within their TTL.
    pub fn names(&self, client: IpAddr, address: IpAddr) -> Vec<Host> {
        let now = Instant::now();
        let inner = self.lock();
        inner
            .names
            .get(&(client.to_canonical(), address.to_canonical()))
            .map(|names| {
                names
                    .iter()
                    .filter(|(_, expires)| *expires > now)
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `address` was handed to `client` for `name`, within its TTL.
    pub fn gave(&self, client: IpAddr, name: &Host, address: IpAddr) -> bool {
        self.names(client, address).iter().any(|n| n == name)
    }

    /// (client, address) pairs held (expired ones included until pushed out), for tests.
    pub fn pairs(&self) -> usize {
        self.lock().order.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn an_answer_is_trusted_for_its_client_address_and_name_only() {
        let handed = Handed::default();
        let (client, other) = (ip("198.18.1.2"), ip("198.18.1.3"));
        let ttl = Duration::from_secs(60);
        handed.remember(client, &host("a.test"), &[ip("198.18.2.2")], ttl);
        assert!(handed.gave(client, &host("a.test"), ip("198.18.2.2")));
        // The same client over an IPv4-mapped address is the same client.
        assert!(handed.gave(ip("::ffff:198.18.1.2"), &host("a.test"), ip("198.18.2.2")));
        assert!(!handed.gave(other, &host("a.test"), ip("198.18.2.2")));
        assert!(!handed.gave(client, &host("b.test"), ip("198.18.2.2")));
        assert!(!handed.gave(client, &host("a.test"), ip("198.18.2.3")));
        assert_eq!(handed.names(client, ip("198.18.2.2")), vec![host("a.test")]);
    }

    #[test]
    fn an_answer_expires_with_its_ttl() {
        let handed = Handed::default();
        let client = ip("198.18.1.2");
        handed.remember(client, &host("a.test"), &[ip("198.18.2.2")], Duration::ZERO);
        assert!(handed.names(client, ip("198.18.2.2")).is_empty());
    }

    #[test]
    fn the_table_stays_bounded_however_many_answers_are_given() {
        let handed = Handed::default();
        let client = ip("198.18.1.2");
        let ttl = Duration::from_secs(60);
        // Many names for one address: the newest MAX_NAMES stay.
        for i in 0..(MAX_NAMES + 5) {
            handed.remember(
                client,
                &host(&format!("n{i}.test")),
                &[ip("198.18.2.2")],
                ttl,
            );
        }
        let names = handed.names(client, ip("198.18.2.2"));
        assert_eq!(names.len(), MAX_NAMES);
        assert!(names.contains(&host(&format!("n{}.test", MAX_NAMES + 4))));
        assert!(!names.contains(&host("n0.test")));
        // Many addresses: the oldest pairs go.
        for i in 0..(MAX_PAIRS as u32 + 10) {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            handed.remember(client, &host("x.test"), &[address], ttl);
        }
        assert_eq!(handed.pairs(), MAX_PAIRS);
        assert!(handed.names(client, ip("198.18.2.2")).is_empty());
        assert!(handed.gave(client, &host("x.test"), ip("10.1.0.9")));
    }
}
