//! Everything in the file besides the rules: where to listen, limits and timeouts.

use std::net::SocketAddr;
use std::time::Duration;

use crate::Policy;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    pub protocols: ListenerProtocols,
}

/// What a listener speaks. `Mixed` tells SOCKS5 from HTTP by the first byte (0x05).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerProtocols {
    Mixed,
    Http,
    Socks5,
}

impl ListenerProtocols {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mixed => "http+socks5",
            Self::Http => "http",
            Self::Socks5 => "socks5",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent client connections across all listeners; beyond it: 503 / SOCKS5 0x01.
    pub max_connections: usize,
    /// Largest request head (request line + headers) accepted; beyond it: 431.
    pub max_request_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_request_head_bytes: 32 * 1024,
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
