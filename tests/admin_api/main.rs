//! The admin API against the real binary, with real curl as its client and real traffic through
//! the proxy: every refusal of the gate (no token, wrong token, wrong role, wrong Host, foreign
//! Origin, missing CSRF header, wrong content type) with its exact status and code, the login
//! link, the event stream (live, resumed, filtered, slow), and the policy endpoints.
//!
//! `client`: calls to the admin listener and an SSE reader; `auth`, `events`, `policy`: the
//! cases.

#[path = "../support/mod.rs"]
mod support;

mod approvals;
mod auth;
mod client;
mod console;
mod events;
mod form;
mod policy;
mod revise;

use support::{message, Proxy};

/// A proxy with the admin listener on, denying `blocked.example` by rule, allowing `origin`.
pub(crate) fn start(extra_admin: &str, rest: &str) -> (Proxy, Admin) {
    let proxy = Proxy::start(&format!(
        "admin:\n  listen: 127.0.0.1:0\n{extra_admin}deny: [blocked.example]\n{rest}"
    ));
    let admin = Admin::of(&proxy);
    (proxy, admin)
}

/// The admin listener of a running proxy and its admin token.
#[derive(Debug)]
pub(crate) struct Admin {
    pub addr: std::net::SocketAddr,
    pub token: String,
}

impl Admin {
    pub fn of(proxy: &Proxy) -> Admin {
        let addr = proxy.admin_addr();
        // The login link is logged once the token file exists.
        proxy.wait_for_log("the login link", |v| {
            message(v).starts_with("admin console login link")
        });
        let token = std::fs::read_to_string(proxy.dir.path().join("admin.token"))
            .expect("the admin token file next to the policy")
            .trim_end()
            .to_string();
        Admin { addr, token }
    }

    pub fn bearer(&self) -> String {
        format!("Authorization: Bearer {}", self.token)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}
