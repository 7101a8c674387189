//! `GET /api/v1/status`: what the console's status page shows — version, the policy in force,
//! parents up or down, approvals, the policy's versions.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::Console;

pub async fn status(State(console): State<Arc<Console>>) -> Json<serde_json::Value> {
    let snapshot = console.state.snapshot();
    let parents: Vec<_> = snapshot
        .parents
        .iter()
        .map(|(upstream, health)| serde_json::json!({"name": upstream.name, "up": health.is_up()}))
        .collect();
    let history = console.history.list();
    let last = history.first().map(|v| {
        format!(
            "{} by {} ({})",
            humantime::format_rfc3339_seconds(v.time),
            v.who,
            v.note
        )
    });
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "mode": snapshot.policy.mode().as_str(),
        "source": snapshot.source,
        "allow": snapshot.policy.allow().len(),
        "deny": snapshot.policy.deny().len(),
        "ask_timeout_s": snapshot.ask.timeout.as_secs(),
        "parents": parents,
        "pending_approvals": console.asks.pending().len(),
        "attended": console.asks.attended(),
        "versions": history.len(),
        "last_change": last,
        "admin": console.site.listen.to_string(),
    }))
}
