//! egress-proxy: an egress-filtering proxy for HTTP CONNECT, plain-HTTP forwarding and SOCKS5.
//!
//! A connection's way through this crate, one module per step:
//!
//! ```text
//! listener ─► detect ─► http::{connect,forward} | socks5 ─► decide (+ decider) ─► outbound
//!          (destination ─► dial | parent) ─► inspect ─► establish/tunnel | http::relay ─► account
//! ```
//!
//! - [`context`]: what a connection carries through the flow (client, snapshot, shutdown,
//!   decider).
//! - [`h1`]: HTTP/1.x heads, bodies and rewriting, shared by the client side and the parent
//!   client.
//! - [`listener`]: accept, the global and per-client caps, accept-error backoff, one span each;
//!   connections refused at a cap are answered by the bounded pool of [`refusers`].
//! - [`detect`]: the first byte picks the protocol (0x05 = SOCKS5, else HTTP/1.x).
//! - [`http`]: request heads, `CONNECT` tunnels and absolute-form forwarding.
//! - [`socks5`]: RFC 1928 with RFC 1929 username/password.
//! - [`identify`]: who the client is (proxy login, source network, else `anonymous`).
//! - [`decide`]: asks the policy snapshot and logs the one decision event; then the
//!   [`decider`], the one asynchronous step that may hold a request before its dial.
//! - [`destination`], [`resolve`]: resolve once, check every address with the address guard.
//! - [`outbound`]: the one way out for tunnels and forwarding: route, address checks, then
//!   [`dial`] to checked addresses or [`parent`] (through a parent proxy, with failover).
//! - [`inspect`], [`client_hello`]: the client's first bytes; the SNI must match the tunnel.
//! - [`establish`], [`tunnel`]: open the tunnel in the right order; copy (splice) both ways.
//! - [`account`]: each request's outcome, once, as one [`outcome`] record; [`observe`] hands
//!   it to the [`metrics`], the [`audit`] log and the event stream's subscribers.
//! - [`transparent`]: connections intercepted on `redirect://` and `tproxy://` listeners,
//!   named by SNI or `Host` and held to their original destination; [`dns_server`], the DNS
//!   responder that answers only allowed names, and [`handed`], what it handed each client.
//! - [`answer`]: every refusal's status line, body and SOCKS5 reply code, in one place.
//! - [`server`]: the entry point ([`run`]): accept loops, then the drain and cut at shutdown.
//! - [`admin`], [`reload`]: `/metrics` and health; hot reload.
//!
//! [`run`] takes already-bound listeners, so tests bind `127.0.0.1:0` and the launcher can embed
//! the proxy in-process.

pub mod account;
pub mod admin;
pub mod answer;
pub mod ask;
pub mod audit;
pub mod client_hello;
pub mod context;
pub mod decide;
pub mod decider;
pub mod destination;
pub mod detect;
pub mod dial;
pub mod dns_server;
pub mod establish;
pub mod h1;
pub mod handed;
pub mod http;
pub mod identify;
pub mod inspect;
pub mod listener;
pub mod logging;
pub mod metrics;
#[cfg(test)]
mod module_graph;
pub mod notify;
pub mod observe;
pub mod outbound;
pub mod outcome;
pub mod parent;
pub mod per_client;
pub mod refusers;
pub mod reload;
pub mod resolve;
pub mod server;
pub mod socks5;
pub mod stand_ins;
pub mod state;
pub mod transparent;
pub mod tunnel;

pub use server::run;
pub use state::{BoundListener, ProxyState, Snapshot};
