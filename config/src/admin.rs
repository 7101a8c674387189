//! The admin listener's settings: where it listens, who may use it (the admin token and named
//! tokens with a role), and how much of the event stream it keeps. The tokens themselves are
//! secrets: named tokens are read from a file or an environment variable by `secrets` (never
//! written in the policy file, whose text the admin API serves); the admin token's file is
//! created by the proxy at start when it is missing.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::upstream::Secret;

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// A loopback address unless `allow_remote` is set.
    pub listen: SocketAddr,
    /// `allow_remote: true`: the operator chose to serve beyond loopback (without TLS for now).
    pub allow_remote: bool,
    /// Distinct registrable domains labelled in `egress_blocked_domains_total`; the rest are
    /// counted as `other`.
    pub blocked_domains_cap: usize,
    /// `token_file`: the admin token's file as written; `None` picks the default place (next to
    /// the policy file, or the state directory).
    pub token_file: Option<PathBuf>,
    /// `tokens`: named tokens with a role, for a team.
    pub tokens: Vec<NamedToken>,
    /// `events_ring`: how many recent events the event stream keeps for new and resuming
    /// subscribers.
    pub events_ring: usize,
}

/// The default `events_ring`.
pub const DEFAULT_EVENTS_RING: usize = 1024;

/// The name the admin token (from `token_file`) goes by; no named token may take it.
pub const ADMIN_TOKEN_NAME: &str = "admin";

/// What a token may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read: the event stream, the policy, statistics.
    Viewer,
    /// Read, and answer approvals.
    Approver,
    /// Everything, including policy changes.
    Admin,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

/// A token of `admin.tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedToken {
    /// Who holds it: the name shown in logs and the audit, never the token.
    pub name: String,
    pub role: Role,
    /// The token, read from its file or variable.
    pub token: Secret,
}

/// Tokens shorter than this are refused: a guessable admin token is no token.
pub const MIN_TOKEN_LEN: usize = 16;
