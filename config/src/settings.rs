//! Everything in the file besides the rules: where to listen, limits and timeouts.

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::admin::Admin;
use crate::identity::Identities;
use crate::{Policy, Routing};

/// A fully validated configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sockets to bind. Changing them needs a restart; a reload keeps the bound ones.
    pub listeners: Vec<Listener>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// The compiled rules; swapped as a whole on reload.
    pub policy: Policy,
    /// Where the configuration came from: a path, or `<embedded default>`.
    pub source: String,
    pub dns: Dns,
    /// Egress's own DNS responder (transparent mode); off unless configured. Takes effect at
    /// restart.
    pub dns_server: Option<DnsServer>,
    pub address_guard: AddressGuardSettings,
    pub tls: TlsInspection,
    /// Parent proxies and which traffic goes through them.
    pub routing: Routing,
    /// `/metrics`, `/livez`, `/readyz`; off unless configured. Takes effect at restart.
    pub admin: Option<Admin>,
    /// One JSON line per decision; off unless configured. Takes effect at restart.
    pub audit: Option<Audit>,
    /// Who clients are (proxy login, source networks) and each identity's policy.
    pub identities: Identities,
    /// `ask` mode's settings.
    pub ask: Ask,
}

/// `ask: { timeout }`: how long a request of `ask` mode waits for a person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// Beyond it the request is refused once, `approval-timeout`.
    pub timeout: Duration,
}

impl Default for Ask {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// The policy that applies to `identity` (see `identity` for how it is composed).
    pub fn policy_for(&self, identity: &str) -> &Policy {
        self.identities.policy_for(identity, &self.policy)
    }
}

/// The audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// `None`: standard output.
    pub path: Option<std::path::PathBuf>,
    /// Lines queued for the writer; beyond it lines are dropped (and counted), never waited for.
    pub buffer: usize,
}

/// The DNS responder: answers a client only for names its policy allows (UDP and TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsServer {
    pub listen: SocketAddr,
}

/// The proxy's own resolver. Names are resolved once and only the checked addresses are dialed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    /// `None`: the system's (`/etc/resolv.conf`); `/etc/hosts` is consulted either way.
    pub nameservers: Option<Vec<SocketAddr>>,
    /// One whole lookup, all servers and retries included; beyond it: 502 `dns-failed`.
    pub timeout: Duration,
    /// Answers kept, each for its TTL.
    pub cache_size: usize,
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            nameservers: None,
            timeout: Duration::from_secs(5),
            cache_size: 4096,
        }
    }
}

/// Refusing private, loopback, link-local and metadata destinations (`private-address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressGuardSettings {
    pub enabled: bool,
    /// Internal networks the proxy may reach despite the guard.
    pub allow_networks: Vec<ipnet::IpNet>,
}

impl Default for AddressGuardSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_networks: Vec::new(),
        }
    }
}

/// Checks on the first bytes a client sends into a CONNECT tunnel, before the destination is
/// dialed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInspection {
    pub sni: SniCheck,
    pub without_sni: WithoutSni,
    /// Ports whose tunnels must start with TLS: the ClientHello is read and checked before the
    /// destination is dialed, and anything else falls under `without_sni`. On other ports the
    /// destination is dialed first and a ClientHello, if the client sends one, is still checked.
    pub ports: Vec<u16>,
}

impl Default for TlsInspection {
    fn default() -> Self {
        Self {
            sni: SniCheck::default(),
            without_sni: WithoutSni::default(),
            ports: vec![443],
        }
    }
}

/// What the TLS server name of a tunnelled ClientHello must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SniCheck {
    /// The SNI must be the CONNECT host (after normalisation). Stops domain fronting.
    #[default]
    Match,
    /// The SNI may differ from the CONNECT host if the policy allows the SNI host itself.
    Policy,
    /// No check (the first bytes are still not required to be TLS).
    Off,
}

/// What happens to a tunnel whose first bytes are a ClientHello without SNI, or are not TLS at
/// all on one of `tls.ports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WithoutSni {
    /// Always refuse (`sni-mismatch`).
    Refuse,
    /// Allow only when the target is an IP literal that an allow entry names explicitly (an IP or
    /// CIDR entry); refuse otherwise.
    #[default]
    ExplicitIp,
    /// Allow.
    Allow,
}

impl SniCheck {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::Policy => "policy",
            Self::Off => "off",
        }
    }
}

impl WithoutSni {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Refuse => "refuse",
            Self::ExplicitIp => "explicit-ip",
            Self::Allow => "allow",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    pub protocols: ListenerProtocols,
    /// Connections start with a PROXY protocol header (v1 or v2) from a load balancer in one
    /// of these networks, naming the real client; `None`: no header is read.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Clients of this listener recognised by neither login nor network are this identity
    /// (an `identities` key; checked at load).
    pub identity: Option<String>,
}

impl Listener {
    /// A listener speaking `protocols` on `address`, without the PROXY protocol.
    pub fn plain(address: SocketAddr, protocols: ListenerProtocols) -> Self {
        Self {
            address,
            protocols,
            proxy_protocol: None,
            identity: None,
        }
    }
}

/// `proxy_protocol: true` on a listener: whom the header is believed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// Peers allowed to speak for clients (the load balancers); any other peer is closed
    /// before a byte is read, since whoever sends the header chooses the client's address,
    /// and with it its network identity.
    pub trusted: Vec<ipnet::IpNet>,
}

/// What a listener speaks. `Mixed` tells SOCKS5 from HTTP by the first byte (0x05).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerProtocols {
    Mixed,
    Http,
    Socks5,
    /// `redirect://`: connections redirected here by the firewall (nftables/iptables
    /// `REDIRECT`); each is named by its SNI or `Host` header and must go to its original
    /// destination.
    Redirect,
    /// `tproxy://`: the same for connections diverted by nftables `tproxy` (the listener sets
    /// `IP_TRANSPARENT`; a connection's local address is its original destination).
    Tproxy,
}

impl ListenerProtocols {
    /// Whether this listener takes intercepted connections (transparent mode).
    pub const fn intercepts(self) -> bool {
        matches!(self, Self::Redirect | Self::Tproxy)
    }
}

impl ListenerProtocols {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mixed => "http+socks5",
            Self::Http => "http",
            Self::Socks5 => "socks5",
            Self::Redirect => "redirect",
            Self::Tproxy => "tproxy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent client connections across all listeners; beyond it: 503 / SOCKS5 0x01.
    pub max_connections: usize,
    /// Largest request head (request line + headers) accepted; beyond it: 431.
    pub max_request_head_bytes: usize,
    /// Concurrent connections from one client IP address; beyond it: 503 / SOCKS5 0x01. Keeps
    /// one greedy or slow client from taking the whole `max_connections`.
    pub max_connections_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_request_head_bytes: 32 * 1024,
            max_connections_per_client: 512,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From accept (or from the end of the previous keep-alive request) to a complete head.
    pub request_head: Duration,
    /// A whole SOCKS5 negotiation: greeting, auth and request.
    pub handshake: Duration,
    /// Establishing the TCP connection to the destination.
    pub dial: Duration,
    /// A tunnel or keep-alive connection with no bytes in either direction is closed.
    pub idle: Duration,
    /// After SIGTERM/SIGINT, how long open connections may drain before the process exits.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request_head: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
            dial: Duration::from_secs(10),
            idle: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}
