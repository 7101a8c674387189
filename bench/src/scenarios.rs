//! The scenarios of the comparison table, what each measures, and the targets egress is held to.

use std::net::SocketAddr;

use crate::contenders::Contender;
use crate::{requests, workloads};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// New tunnels per second from one client (a one-byte echo in each).
    TunnelsOne,
    /// New tunnels per second from `--workers` clients at once.
    TunnelsMany,
    /// One bulk tunnel, MiB/s.
    Bulk,
    /// Eight bulk tunnels at once, aggregate MiB/s.
    Bulk8,
    /// Plain-HTTP `GET`s forwarded to the origin, keep-alive client connections, `--workers`
    /// clients, per second.
    Forward,
    /// CONNECTs to a name on no allow list, each answered 403, `--workers` clients, per second.
    Deny,
}

pub const ALL: [Scenario; 6] = [
    Scenario::TunnelsOne,
    Scenario::TunnelsMany,
    Scenario::Bulk,
    Scenario::Bulk8,
    Scenario::Forward,
    Scenario::Deny,
];

/// The loopback servers the scenarios reach.
#[derive(Debug, Clone, Copy)]
pub struct Servers {
    /// Sends `bytes` per connection.
    pub source: SocketAddr,
    /// Sends an eighth of `bytes` per connection (for the eight parallel tunnels).
    pub source8: SocketAddr,
    pub echo: SocketAddr,
    pub origin: SocketAddr,
}

impl Servers {
    pub fn all(&self) -> [SocketAddr; 4] {
        [self.source, self.source8, self.echo, self.origin]
    }
}

/// How much each measurement does at most (each also stops at `workloads::MEASURE_DEADLINE`).
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub bytes: u64,
    pub tunnels: usize,
    pub requests: usize,
    pub denials: usize,
    /// Clients of the "many clients" scenarios.
    pub clients: usize,
}

impl Scenario {
    pub fn label(self, counts: &Counts) -> String {
        let c = counts.clients;
        match self {
            Scenario::TunnelsOne => "new tunnels/s, 1 client".into(),
            Scenario::TunnelsMany => format!("new tunnels/s, {c} clients"),
            Scenario::Bulk => "1 bulk tunnel, MiB/s".into(),
            Scenario::Bulk8 => "8 bulk tunnels, MiB/s (aggregate)".into(),
            Scenario::Forward => format!("forwarded requests/s, {c} clients"),
            Scenario::Deny => format!("denials/s, {c} clients"),
        }
    }

    /// One measurement; `None` where the scenario means nothing for the contender (a denial
    /// without a proxy).
    pub fn measure(
        self,
        contender: &Contender,
        servers: &Servers,
        counts: &Counts,
    ) -> anyhow::Result<Option<f64>> {
        let c = counts.clients;
        Ok(Some(match self {
            Scenario::TunnelsOne => {
                workloads::tunnel_rate(contender, servers.echo, counts.tunnels, 1)?
            }
            Scenario::TunnelsMany => {
                workloads::tunnel_rate(contender, servers.echo, counts.tunnels, c)?
            }
            Scenario::Bulk => workloads::bulk(contender, servers.source, counts.bytes)?,
            Scenario::Bulk8 => {
                workloads::bulk_parallel(contender, servers.source8, counts.bytes / 8, 8)?
            }
            Scenario::Forward => {
                requests::forward_rate(contender, servers.origin, counts.requests, c)?
            }
            Scenario::Deny => match contender {
                Contender::Direct => return Ok(None),
                _ => requests::deny_rate(contender, counts.denials, c)?,
            },
        }))
    }

    /// The target for egress in this scenario: the contender it is held against and the
    /// least ratio, in this mode (pinned or not).
    pub fn target(self, pinned: bool) -> Option<(&'static str, f64)> {
        match self {
            Scenario::TunnelsMany | Scenario::Forward => Some(("squid", 2.0)),
            Scenario::Bulk if pinned => Some(("squid", 1.5)),
            Scenario::Bulk => Some(("direct", 0.85)),
            Scenario::Bulk8 => Some(("direct", 0.8)),
            Scenario::Deny => Some(("tinyproxy", 1.5)),
            Scenario::TunnelsOne => None,
        }
    }
}
