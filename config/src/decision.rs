//! The vocabulary of a decision: what is asked (`Request`) and what the policy answers (`Verdict`).

use crate::{DenyReason, Host};

/// How the client reached the proxy; decides the default port of a pattern without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    HttpConnect,
    HttpForward,
    Socks5,
    /// A connection intercepted on a `redirect://` listener, named by its SNI or `Host` header.
    Transparent,
    /// A question to egress's DNS responder (`dns_server`): may this name be answered at all?
    /// Decided without a port: a name any allow entry covers, on any port, is answered (its
    /// connections are decided with their ports when they come).
    Dns,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Self::HttpConnect,
        Self::HttpForward,
        Self::Socks5,
        Self::Transparent,
        Self::Dns,
    ];

    /// Stable name: log field and (later) metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HttpConnect => "http-connect",
            Self::HttpForward => "http-forward",
            Self::Socks5 => "socks5",
            Self::Transparent => "transparent",
            Self::Dns => "dns",
        }
    }

    /// The one port a pattern without `:port` allows: 80 for plain HTTP, 443 for tunnels
    /// (Squid's safe default, so `allow: [github.com]` does not open SSH or SMTP).
    pub const fn default_port(self) -> u16 {
        match self {
            Self::HttpForward => 80,
            Self::HttpConnect | Self::Socks5 | Self::Transparent | Self::Dns => 443,
        }
    }

    /// Whether a pattern without `:port` allows `port`. An intercepted connection carries plain
    /// HTTP or TLS, so both defaults apply to it: `allow: [example.com]` lets a program that
    /// ignores proxy settings reach `http://example.com/` and `https://example.com/` alike.
    pub const fn allows_by_default(self, port: u16) -> bool {
        match self {
            Self::Transparent => port == 80 || port == 443,
            Self::Dns => true,
            other => port == other.default_port(),
        }
    }
}

/// One question to the policy. The host is already normalised.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub host: &'a Host,
    pub port: u16,
    pub protocol: Protocol,
}

/// The policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny(DenyReason),
    /// `report` mode: the policy would have denied this, but lets it through and says so.
    Report(DenyReason),
    /// `ask` mode: no entry decides this; a person is asked (the proxy's decider holds the
    /// request, and refuses it when nobody can answer). The reason is what enforce would say.
    Ask(DenyReason),
}

/// An action plus the rule that produced it, as written in the policy file, for logs and audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict<'p> {
    pub action: Action,
    /// The pattern text that matched (`None` when no rule matched: the mode's default).
    pub rule: Option<&'p str>,
    /// The allow entry names the target's address itself (an IP or CIDR entry) or `localhost`:
    /// the one exception to the address guard that needs no `address_guard.allow_networks`.
    pub explicit_address: bool,
    /// The route the allow entry names (`via:`): an upstream's name or `direct`.
    pub via: Option<&'p str>,
}

impl Verdict<'_> {
    /// Whether the connection may go on to the decider (allowed, reported in report mode, or
    /// to be asked in ask mode).
    pub fn permits(&self) -> bool {
        !matches!(self.action, Action::Deny(_))
    }

    /// Whether a person must answer before the connection may proceed.
    pub fn asks(&self) -> bool {
        matches!(self.action, Action::Ask(_))
    }

    /// The decision label: `allow`, `deny`, `report` or `ask`.
    pub fn decision(&self) -> &'static str {
        match self.action {
            Action::Allow => "allow",
            Action::Deny(_) => "deny",
            Action::Report(_) => "report",
            Action::Ask(_) => "ask",
        }
    }

    /// The refusal reason for deny and report, none for allow.
    pub fn reason(&self) -> Option<DenyReason> {
        match self.action {
            Action::Allow => None,
            Action::Deny(r) | Action::Report(r) | Action::Ask(r) => Some(r),
        }
    }
}
