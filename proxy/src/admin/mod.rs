//! The admin listener. Open to anyone who can reach it: the probes `/metrics`, `/livez` and
//! `/readyz`, which keep answering through the whole drain (a probe then gets "draining", never
//! a refused connection). Behind a token (see `guard`): the console's place at `/` and the API
//! under `/api/v1/` — the event stream, the policy and its test, the OpenAPI description.
//!
//! - `access`: tokens, sessions, the one-time login code, slowing bad guesses.
//! - `token_file`: the admin token's file, created private when missing.
//! - `guard`: Host, Origin, token, CSRF, content type and role checks; security headers.
//! - `login`: the login link and token login, the session, logout.
//! - `ring`, `events`: recent events and the Server-Sent Events stream; `stats`: totals and
//!   top lists over 5 minutes, an hour and a day.
//! - `policy`: the policy's text and a destination test; `edit`: writing a new text (every
//!   change goes through its `apply`); `entries`: adding one entry to the text as written;
//!   `history`, `revise`: the applied versions, revert, and the console's "allow this" entries.
//! - `approvals`: ask mode's pending asks and their answers (the decider is `crate::ask`).
//! - `console`: the console's page and assets; `status`: the status page's facts.
//! - `openapi`: the API's description.
//! - `error`: every refusal's code, status and message.

mod access;
mod approvals;
mod console;
mod edit;
mod entries;
mod error;
mod events;
mod form;
mod guard;
mod history;
mod login;
mod openapi;
mod policy;
mod probe;
mod revise;
mod ring;
mod stats;
mod status;
mod token_file;

use std::collections::hash_map::RandomState;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use egress_config::admin::Role;
use egress_config::Admin;
use tokio::net::TcpListener;

use crate::ask::Asks;
use crate::state::ProxyState;
use access::Access;
use guard::{Gate, Site};
use ring::Ring;

pub use error::ApiError;
pub use openapi::API_ROUTES;
pub use token_file::location as token_location;

/// What the API's handlers share.
#[derive(Debug)]
pub struct Console {
    state: Arc<ProxyState>,
    access: Access,
    ring: Arc<Ring>,
    site: Site,
    /// The policy file the API serves (`None`: the embedded default).
    policy_path: Option<PathBuf>,
    /// Keys the policy text's `ETag` (see `policy`).
    etag_key: RandomState,
    /// Held by a policy edit from its `If-Match` check to its write.
    edit_lock: tokio::sync::Mutex<()>,
    /// The policy versions applied (and the one at start).
    history: history::History,
    /// Ask mode's approvals (the same value is the proxy's decider).
    asks: Arc<Asks>,
    /// Totals and top lists for `GET /api/v1/stats`.
    stats: Arc<stats::Stats>,
}

/// The admin listener, ready to serve.
#[derive(Debug)]
pub struct Listening {
    listener: TcpListener,
    console: Arc<Console>,
}

/// Prepares the admin listener on `listener` for `state`: reads (or creates) the admin token,
/// starts keeping recent events, and logs the one-time login link — the one log line that
/// carries a secret, a code that works once, for 15 minutes, and is not the token.
pub fn prepare(
    listener: TcpListener,
    settings: &Admin,
    policy_path: Option<PathBuf>,
    state: Arc<ProxyState>,
    asks: Arc<Asks>,
) -> anyhow::Result<Listening> {
    let address = listener.local_addr()?;
    let token_path = token_file::location(settings.token_file.as_deref(), policy_path.as_deref())?;
    let (token, created) = token_file::load_or_create(&token_path)?;
    if created {
        tracing::info!(path = %token_path.display(), "admin token created");
    }
    let ring = Ring::new(settings.events_ring);
    ring.feed_from(&state.observer);
    let stats = stats::Stats::new();
    stats.feed_from(&state.observer);
    let history = history::History::default();
    let at_start = match &policy_path {
        Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
        None => egress_config::DEFAULT_POLICY_YAML.to_string(),
    };
    history.push("startup", "the policy at start", &at_start);
    let console = Arc::new(Console {
        access: Access::new(token, &settings.tokens),
        ring,
        site: Site { listen: address },
        policy_path,
        etag_key: RandomState::new(),
        edit_lock: tokio::sync::Mutex::new(()),
        history,
        asks,
        stats,
        state,
    });
    let code = console.access.new_login_code()?;
    let shown = if address.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
    } else {
        address
    };
    tracing::info!(
        url = %format!("http://{shown}/login?code={code}"),
        token_file = %token_path.display(),
        "admin console login link (works once, for 15 minutes; API clients send Authorization: Bearer with the token file's content)"
    );
    if !address.ip().is_loopback() {
        tracing::warn!(%address, "admin listener beyond loopback (allow_remote), without TLS: tokens cross the network in clear");
    }
    Ok(Listening { listener, console })
}

/// Serves the admin endpoints for as long as the process runs.
pub async fn serve(listening: Listening) {
    let app = router(listening.console);
    if let Err(error) = axum::serve(listening.listener, app).await {
        tracing::warn!(%error, "admin listener failed");
    }
}

fn router(console: Arc<Console>) -> Router {
    let probes = Router::new()
        .route("/metrics", get(probe::metrics_text))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(probe::ready))
        .with_state(console.state.clone());
    let login = Router::new()
        .route("/login", get(login::login_link).post(login::login_token))
        .route("/assets/{name}", get(console::asset))
        .route_layer(from_fn_with_state(console.clone(), guard::site_only))
        .with_state(console.clone());
    let viewer = Gate {
        console: console.clone(),
        needs: Role::Viewer,
    };
    let read = Router::new()
        .route("/", get(console::page))
        .route("/api/v1/session", get(login::session))
        .route("/api/v1/logout", post(login::logout))
        .route("/api/v1/events", get(events::stream_events))
        .route("/api/v1/policy", get(policy::get_policy))
        .route("/api/v1/policy/test", post(policy::test_destination))
        .route("/api/v1/policy/history", get(revise::history))
        .route("/api/v1/policy/entries", get(form::current))
        .route("/api/v1/approvals", get(approvals::list))
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/status", get(status::status))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route_layer(from_fn_with_state(viewer, guard::gate))
        .with_state(console.clone());
    let approver = Gate {
        console: console.clone(),
        needs: Role::Approver,
    };
    let answer = Router::new()
        .route("/api/v1/approvals/{id}", post(approvals::answer))
        .route_layer(from_fn_with_state(approver, guard::gate))
        .with_state(console.clone());
    let admin = Gate {
        console: console.clone(),
        needs: Role::Admin,
    };
    let change = Router::new()
        .route("/api/v1/policy", put(edit::put_policy))
        .route("/api/v1/policy/revert", post(revise::revert))
        .route("/api/v1/policy/entries", post(revise::entries))
        .route("/api/v1/policy/edit-preview", post(form::edit_preview))
        .route_layer(from_fn_with_state(admin, guard::gate))
        .with_state(console.clone());
    probes
        .merge(change)
        .merge(answer)
        .merge(login)
        .merge(read)
        .fallback(|| async { guard::harden(ApiError::NotFound.into_response()) })
}
