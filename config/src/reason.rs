//! `DenyReason`: the one stable name for every refusal, shared by the `X-Egress-Error` header,
//! log fields, (later) metric labels and audit records.

use std::fmt;

/// Why a request was refused or failed. The string form (`as_str`) is public interface: users
/// script against it, dashboards group by it. Never rename a value; add new ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DenyReason {
    // --- policy: the request was understood and refused on purpose ---
    /// The target matched a `deny` entry.
    BlockedByDenylist,
    /// The target matched no `allow` entry.
    NotAllowlisted,
    /// The host is allowed, but not on this port.
    PortNotAllowed,
    /// The target address is private, loopback, link-local or a metadata endpoint.
    PrivateAddress,
    /// The TLS SNI of a CONNECT tunnel does not match the CONNECT host.
    SniMismatch,
    /// The `Host` header disagrees with the absolute-form request target.
    HostMismatch,
    /// `ask` mode: nobody answered the request's approval in time.
    ApprovalTimeout,
    /// `ask` mode: a person denied the request's approval.
    ApprovalDenied,
    /// `ask` mode: nobody able to answer (an approver or admin with the console or event
    /// stream open) is there, so the request is refused at once rather than held.
    ApprovalUnattended,
    /// `ask` mode: this client has too many approvals pending or asked too often.
    ApprovalRateLimited,
    // --- client: the request could not be understood ---
    /// Malformed request line, header, or SOCKS5 message.
    BadRequest,
    /// The request head exceeded the configured size.
    HeaderTooLarge,
    /// The client did not send a complete request head in time.
    RequestTimeout,
    /// A request addressed to the proxy itself (origin-form) rather than through it.
    NotAProxyRequest,
    /// A method or SOCKS5 command the proxy does not serve.
    UnsupportedMethod,
    /// `auth.required`: the client sent no proxy login and is no network identity.
    AuthRequired,
    /// The proxy login (user and password) is wrong, or the header carrying it is malformed.
    AuthFailed,
    // --- proxy capacity ---
    /// The connection cap was reached.
    TooManyConnections,
    /// The proxy is shutting down: a request on a kept-alive connection during the drain.
    ShuttingDown,
    // --- upstream: the destination (or the way to it) failed ---
    /// The destination name did not resolve.
    DnsFailed,
    /// The destination refused the connection.
    UpstreamRefused,
    /// The destination could not be reached (no route, network unreachable, reset).
    UpstreamUnreachable,
    /// The destination did not accept the connection in time.
    UpstreamTimeout,
    /// The destination answered with something that is not valid HTTP.
    UpstreamBadResponse,
    /// The parent proxy refused the destination (its own policy, e.g. Squid's `dstdomain`).
    UpstreamDenied,
    /// The parent proxy rejected egress's credentials (407), or egress could not get any
    /// (no Kerberos ticket for the parent).
    UpstreamAuthFailed,
    /// The TLS session to an `https://` parent could not be set up (certificate, name, CA,
    /// client certificate).
    UpstreamTlsFailed,
}

/// Who caused a refusal; decides the status family (4xx for client and policy, 5xx otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Policy,
    Client,
    Capacity,
    Upstream,
}

impl DenyReason {
    /// Every value, for tests and for registering metric label values up front.
    pub const ALL: [DenyReason; 27] = [
        Self::BlockedByDenylist,
        Self::NotAllowlisted,
        Self::PortNotAllowed,
        Self::PrivateAddress,
        Self::SniMismatch,
        Self::HostMismatch,
        Self::ApprovalTimeout,
        Self::ApprovalDenied,
        Self::ApprovalUnattended,
        Self::ApprovalRateLimited,
        Self::BadRequest,
        Self::HeaderTooLarge,
        Self::RequestTimeout,
        Self::NotAProxyRequest,
        Self::UnsupportedMethod,
        Self::AuthRequired,
        Self::AuthFailed,
        Self::TooManyConnections,
        Self::ShuttingDown,
        Self::DnsFailed,
        Self::UpstreamRefused,
        Self::UpstreamUnreachable,
        Self::UpstreamTimeout,
        Self::UpstreamBadResponse,
        Self::UpstreamDenied,
        Self::UpstreamAuthFailed,
        Self::UpstreamTlsFailed,
    ];

    /// The stable kebab-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BlockedByDenylist => "blocked-by-denylist",
            Self::NotAllowlisted => "not-allowlisted",
            Self::PortNotAllowed => "port-not-allowed",
            Self::PrivateAddress => "private-address",
            Self::SniMismatch => "sni-mismatch",
            Self::HostMismatch => "host-mismatch",
            Self::ApprovalTimeout => "approval-timeout",
            Self::ApprovalDenied => "approval-denied",
            Self::ApprovalUnattended => "approval-unattended",
            Self::ApprovalRateLimited => "approval-rate-limited",
            Self::BadRequest => "bad-request",
            Self::HeaderTooLarge => "header-too-large",
            Self::RequestTimeout => "request-timeout",
            Self::NotAProxyRequest => "not-a-proxy-request",
            Self::UnsupportedMethod => "unsupported-method",
            Self::AuthRequired => "auth-required",
            Self::AuthFailed => "auth-failed",
            Self::TooManyConnections => "too-many-connections",
            Self::ShuttingDown => "shutting-down",
            Self::DnsFailed => "dns-failed",
            Self::UpstreamRefused => "upstream-refused",
            Self::UpstreamUnreachable => "upstream-unreachable",
            Self::UpstreamTimeout => "upstream-timeout",
            Self::UpstreamBadResponse => "upstream-bad-response",
            Self::UpstreamDenied => "upstream-denied",
            Self::UpstreamAuthFailed => "upstream-auth-failed",
            Self::UpstreamTlsFailed => "upstream-tls-failed",
        }
    }

    pub const fn fault(self) -> Fault {
        match self {
            Self::BlockedByDenylist
            | Self::NotAllowlisted
            | Self::PortNotAllowed
            | Self::PrivateAddress
            | Self::SniMismatch
            | Self::HostMismatch
            | Self::ApprovalTimeout
            | Self::ApprovalDenied
            | Self::ApprovalUnattended
            | Self::UpstreamDenied => Fault::Policy,
            Self::BadRequest
            | Self::HeaderTooLarge
            | Self::RequestTimeout
            | Self::NotAProxyRequest
            | Self::UnsupportedMethod
            | Self::AuthRequired
            | Self::AuthFailed => Fault::Client,
            Self::TooManyConnections | Self::ShuttingDown | Self::ApprovalRateLimited => {
                Fault::Capacity
            }
            Self::DnsFailed
            | Self::UpstreamRefused
            | Self::UpstreamUnreachable
            | Self::UpstreamTimeout
            | Self::UpstreamBadResponse
            | Self::UpstreamAuthFailed
            | Self::UpstreamTlsFailed => Fault::Upstream,
        }
    }

    /// One sentence a person or an AI agent can act on.
    pub const fn explanation(self) -> &'static str {
        match self {
            Self::BlockedByDenylist => "the destination is on the proxy's deny list",
            Self::NotAllowlisted => "the destination is not on the proxy's allow list",
            Self::PortNotAllowed => "the destination host is allowed, but not on this port",
            Self::PrivateAddress => {
                "the destination is a private, loopback, link-local or metadata address"
            }
            Self::SniMismatch => "the TLS server name does not match the CONNECT host",
            Self::HostMismatch => "the Host header does not match the request target",
            Self::ApprovalTimeout => {
                "the destination needs a person's approval, and nobody answered in time"
            }
            Self::ApprovalDenied => "a person denied the approval for this destination",
            Self::ApprovalUnattended => {
                "the destination needs a person's approval, and nobody is watching the admin console to give it"
            }
            Self::ApprovalRateLimited => {
                "this client has asked for too many approvals; wait for the pending ones to be answered"
            }
            Self::BadRequest => "the request is malformed",
            Self::HeaderTooLarge => "the request head is larger than the proxy accepts",
            Self::RequestTimeout => "the request head did not arrive in time",
            Self::NotAProxyRequest => {
                "this is a proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port"
            }
            Self::UnsupportedMethod => "the proxy does not serve this method or command",
            Self::AuthRequired => {
                "this proxy requires a login: send the proxy user and password (Proxy-Authorization: Basic, or SOCKS5 user/password)"
            }
            Self::AuthFailed => "the proxy user or password is wrong",
            Self::TooManyConnections => "the proxy is at its connection limit; try again shortly",
            Self::ShuttingDown => "the proxy is shutting down; send the request again on a new connection",
            Self::DnsFailed => "the destination name could not be resolved",
            Self::UpstreamRefused => "the destination refused the connection",
            Self::UpstreamUnreachable => "the destination could not be reached",
            Self::UpstreamTimeout => "the destination did not answer in time",
            Self::UpstreamBadResponse => "the destination sent an invalid HTTP response",
            Self::UpstreamDenied => {
                "the parent proxy refused this destination; its own error is in the response headers"
            }
            Self::UpstreamAuthFailed => {
                "the parent proxy rejected egress's credentials; the proxy's operator must fix them"
            }
            Self::UpstreamTlsFailed => {
                "the TLS connection to the parent proxy failed; the proxy's operator must fix its certificates"
            }
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for r in DenyReason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "duplicate {s}");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{s}"
            );
        }
    }
}
