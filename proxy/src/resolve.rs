//! From a target host to the addresses to dial, with the proxy's own resolver (hickory): the
//! system's nameservers or the policy file's, `/etc/hosts` (final for the names it lists, see
//! `hosts`), a bounded cache that honours TTLs and
//! one timeout over the whole lookup. IP literals skip DNS entirely.
//!
//! The proxy resolves a name exactly once per connection and dials only addresses from that one
//! answer, after the address guard has checked every one of them (`destination.rs`): a second
//! lookup at dial time is what DNS rebinding exploits.

use std::net::SocketAddr;
use std::time::Duration;

use egress_config::{DenyReason, Dns, Host};
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
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
        if let Some(addrs) = self.hosts.lookup(name) {
            return Ok(addrs
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect());
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
                let addrs: Vec<SocketAddr> =
                    answer.iter().map(|ip| SocketAddr::new(ip, port)).collect();
                if addrs.is_empty() {
                    Err(failed(format!("{name} has no addresses")))
                } else {
                    Ok(addrs)
                }
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
}
