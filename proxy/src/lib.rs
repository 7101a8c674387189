//! egress-proxy: an egress-filtering proxy for HTTP CONNECT, plain-HTTP forwarding and SOCKS5.
//!
//! A connection's way through this crate, one module per step:
//!
//! ```text
//! listener ─► detect ─► http::{head,connect,forward} | socks5 ─► decide ─► resolve ─► dial ─► tunnel
//! ```
//!
//! - [`listener`]: accept, the connection cap, accept-error backoff, one span per connection.
//! - [`detect`]: the first byte picks the protocol (0x05 = SOCKS5, else HTTP/1.x).
//! - [`http`]: request heads, `CONNECT` tunnels and absolute-form forwarding.
//! - [`socks5`]: RFC 1928 with RFC 1929 username/password.
//! - [`decide`]: asks the policy snapshot and logs the one decision event.
//! - [`resolve`], [`dial`]: name to addresses, addresses to a connected socket, with timeouts.
//! - [`tunnel`]: copies bytes both ways until both sides are done or the tunnel idles out.
//! - [`answer`]: every refusal's status line, body and SOCKS5 reply code, in one place.
//! - [`reload`], [`shutdown`]: policy hot reload; stop accepting and drain.
//!
//! [`run`] takes already-bound listeners, so tests bind `127.0.0.1:0` and the launcher can embed
//! the proxy in-process.

pub mod account;
pub mod admin;
pub mod answer;
pub mod audit;
pub mod client_hello;
pub mod decide;
pub mod destination;
pub mod detect;
pub mod dial;
pub mod establish;
pub mod http;
pub mod inspect;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod parent;
pub mod per_client;
pub mod reload;
pub mod resolve;
pub mod shutdown;
pub mod socks5;
pub mod state;
pub mod tunnel;

pub use shutdown::run;
pub use state::{BoundListener, ProxyState, Snapshot};
