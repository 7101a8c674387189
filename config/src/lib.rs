//! egress-config: the policy file, from YAML text to a compiled, immutable matcher.
//!
//! The way through this crate is `raw` (serde structs, strict) → `load` (validation with
//! file:line:column errors) → `secrets` (the environment variables and files the valid file
//! names, read in one step) → `Policy` (compiled patterns; `decide()` is a pure function).
//! No I/O runtime lives here, so the proxy, the launcher and `egress-proxy check` share it.

pub mod admin;
pub mod decision;
pub mod guard;
pub mod host;
pub mod identity;
mod load;
mod matcher;
pub mod pattern;
mod policy;
mod raw;
pub mod reason;
mod secrets;
pub mod settings;
pub mod upstream;

pub use decision::{Action, Protocol, Request, Verdict};
pub use host::{parse_authority, Host, HostError};
pub use identity::{Auth, Identities, ANONYMOUS};
pub use load::{
    default_config, load_file, load_owned, load_str, read_file, ConfigError, DEFAULT_POLICY_YAML,
};
pub use pattern::{Pattern, PatternError, PortSet};
pub use policy::{Mode, Policy};
pub use reason::{DenyReason, Fault};
pub use settings::{
    AddressGuardSettings, Admin, Ask, Audit, Config, Dns, DnsServer, Limits, Listener,
    ListenerProtocols, ProxyProtocol, SniCheck, Timeouts, TlsInspection, WithoutSni,
};
pub use upstream::{
    AuthScheme, Negotiate, ParentTls, RouteChoice, Routing, Secret, Upstream, UpstreamKind,
};
