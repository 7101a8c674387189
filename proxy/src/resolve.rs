//! From a target host to the addresses to dial, with the proxy's own resolver (hickory): the
//! system's nameservers or the policy file's, `/etc/hosts` (final for the names it lists, see
//! `hosts`), a bounded cache that honours TTLs and
//! one timeout over the whole lookup. IP literals skip DNS entirely.
//!
//! The proxy resolves a name exactly once per connection and dials only addresses from that one
//! answer, after the address guard has checked every one of them (`destination.rs`): a second
//! lookup at dial time is what DNS rebinding exploits.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use egress_config::{DenyReason, Dns, Host};
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{Record, RecordType};
use hickory_resolver::proto::xfer::Protocol as Transport;
use hickory_resolver::TokioResolver;
use tracing::warn;

use crate::answer::Refusal;

mod hosts;
use hosts::HostsFile;

/// The resolver of one configuration snapshot.
#[derive(Debug, Clone)]
pub struct Resolver {
    inner: TokioResolver,
    /// Consulted before DNS; shared by the clones of one snapshot's resolver.
    hosts: std::sync::Arc<HostsFile>,
    timeout: Duration,
}

impl Resolver {
    /// Builds the resolver `settings` describe. When the system configuration cannot be read,
    /// logs why and resolves from `/etc/hosts` only (every other name fails with `dns-failed`).
    pub fn new(settings: &Dns) -> Resolver {
        let mut options = ResolverOpts::default();
        options.cache_size = settings.cache_size;
        // Our own `hosts` answers for the file: hickory's would send half of the lookup to DNS.
        options.use_hosts_file = ResolveHosts::Never;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        // Our own deadline bounds the whole lookup; hickory's per-query timeout splits it so a
        // dead first server leaves time for the next.
        options.timeout = (settings.timeout / 2).max(Duration::from_millis(100));
        options.attempts = 2;
        // A name from a client is never completed with the host's search domains.
        options.ndots = 0;
        let provider = TokioConnectionProvider::default();
        let builder = match &settings.nameservers {
            Some(servers) => {
                let mut group = NameServerConfigGroup::new();
                for &server in servers {
                    group.push(NameServerConfig::new(server, Transport::Udp));
                    group.push(NameServerConfig::new(server, Transport::Tcp));
                }
                TokioResolver::builder_with_config(ResolverConfig::from_parts(None, vec![], group), provider)
            }
            None => TokioResolver::builder_tokio().unwrap_or_else(|error| {
                warn!(%error, "cannot read the system DNS configuration; resolving from /etc/hosts only");
                TokioResolver::builder_with_config(ResolverConfig::new(), TokioConnectionProvider::default())
            }),
        };
        Resolver {
            inner: builder.with_options(options).build(),
            hosts: std::sync::Arc::new(HostsFile::system()),
            timeout: settings.timeout,
        }
    }

    /// The addresses of `host:port`, in the order the answer gave them. An empty answer is a
    /// failure, never a hang.
    pub async fn resolve(&self, host: &Host, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let name = match host {
            Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
            Host::Name(name) => name,
        };
        let found = self.lookup(name).await?;
        Ok(found
            .addresses
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    /// `name`'s addresses with how long they hold (`None`: from `/etc/hosts`, no TTL) and the
    /// CNAME records met on the way: what the DNS responder answers from.
    pub async fn lookup(&self, name: &str) -> Result<Found, Refusal> {
        if let Some(addresses) = self.hosts.lookup(name) {
            return Ok(Found {
                addresses,
                ttl: None,
                cnames: Vec::new(),
            });
        }
        // Absolute, so no search domain is appended.
        let absolute = format!("{name}.");
        let failed = |detail: String| Refusal::new(DenyReason::DnsFailed, detail);
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(self.timeout, self.inner.lookup_ip(absolute)).await;
        if let Some(metrics) = crate::account::metrics() {
            metrics.dns_duration(started.elapsed());
        }
        match answer {
            Ok(Ok(answer)) => {
                let addresses: Vec<IpAddr> = answer.iter().collect();
                if addresses.is_empty() {
                    return Err(failed(format!("{name} has no addresses")));
                }
                let ttl = answer
                    .valid_until()
                    .saturating_duration_since(std::time::Instant::now());
                let cnames = answer
                    .as_lookup()
                    .records()
                    .iter()
                    .filter(|r| r.record_type() == RecordType::CNAME)
                    .cloned()
                    .collect();
                Ok(Found {
                    addresses,
                    ttl: Some(ttl),
                    cnames,
                })
            }
            Ok(Err(error)) if error.is_nx_domain() => {
                Err(failed(format!("{name} does not exist (NXDOMAIN)")))
            }
            Ok(Err(error)) if error.is_no_records_found() => {
                Err(failed(format!("{name} has no addresses")))
            }
            Ok(Err(error)) => Err(failed(format!("looking up {name} failed: {error}"))),
            Err(_) => Err(failed(format!(
                "looking up {name} took longer than {:?}",
                self.timeout
            ))),
        }
    }

    /// `name`'s records of `kind` (the DNS responder's HTTPS and SVCB answers); none when the
    /// name has none of them or is one `/etc/hosts` lists (the file has only addresses).
    pub async fn records(&self, name: &str, kind: RecordType) -> Result<Vec<Record>, Refusal> {
        if self.hosts.lookup(name).is_some() {
            return Ok(Vec::new());
        }
        let failed = |detail: String| Refusal::new(DenyReason::DnsFailed, detail);
        let absolute = format!("{name}.");
        match tokio::time::timeout(self.timeout, self.inner.lookup(absolute, kind)).await {
            Ok(Ok(answer)) => Ok(answer.records().to_vec()),
            Ok(Err(error)) if error.is_no_records_found() || error.is_nx_domain() => Ok(Vec::new()),
            Ok(Err(error)) => Err(failed(format!("looking up {name} {kind} failed: {error}"))),
            Err(_) => Err(failed(format!(
                "looking up {name} {kind} took longer than {:?}",
                self.timeout
            ))),
        }
    }
}

/// A name's addresses as the resolver found them.
#[derive(Debug)]
pub struct Found {
    pub addresses: Vec<IpAddr>,
    /// How long the answer holds; `None` for `/etc/hosts` names.
    pub ttl: Option<Duration>,
    /// The CNAME records of the answer, in its order.
    pub cnames: Vec<Record>,
}
