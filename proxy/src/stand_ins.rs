//! Addresses that stand for names (see `StandIns`): its own module, so the connection context
//! and the state can hold one without depending on `transparent`, which serves them.

use egress_config::Host;

/// Addresses that stand for names. An embedder that answers the DNS queries of the programs it
/// intercepts (egress-run's sandbox) hands out an address of its own for each allowed name;
/// a connection to one is that name's: decided on it, dialed at the name's own addresses (as
/// egress resolves them), and refused (`host-mismatch`) when its SNI or `Host` names another.
pub trait StandIns: Send + Sync + std::fmt::Debug {
    /// The name `ip` was handed out for, if any.
    fn name_of(&self, ip: std::net::IpAddr) -> Option<Host>;
}
