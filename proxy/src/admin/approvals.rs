//! `GET /api/v1/approvals` (the pending asks of ask mode) and `POST /api/v1/approvals/{id}`
//! (an answer). Once, for a while and deny once are answered in memory (role approver); the
//! "always" answers add an entry to the policy file through the same path as the editor, so
//! they are versioned and audited (role admin), and then release every pending ask the new
//! policy decides — not only the one answered.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use egress_config::admin::Role;
use egress_config::{Action as PolicyAction, Request};
use serde::Deserialize;

use super::access::Principal;
use super::entries::{self, List};
use super::error::ApiError;
use super::Console;
use crate::ask::{Action, Answer, Pending};

/// The longest `allow-for`: a day.
const MAX_MINUTES: u64 = 24 * 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answering {
    action: String,
    #[serde(default)]
    minutes: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    with_port: bool,
    #[serde(default)]
    note: Option<String>,
}

pub async fn list(State(console): State<Arc<Console>>) -> Json<serde_json::Value> {
    let pending: Vec<_> = console.asks.pending().iter().map(Pending::json).collect();
    Json(serde_json::Value::Array(pending))
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code,
        message: message.into(),
    }
}

pub async fn answer(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let asked: Answering =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(format!("{e}")))?;
    let action = match asked.action.as_str() {
        "allow-once" => Some(Action::AllowOnce),
        "deny-once" => Some(Action::DenyOnce),
        "allow-for" => {
            let minutes = asked.minutes.ok_or_else(|| {
                unprocessable("bad-minutes", "allow-for needs \"minutes\" (1 to 1440)")
            })?;
            if !(1..=MAX_MINUTES).contains(&minutes) {
                return Err(unprocessable(
                    "bad-minutes",
                    format!("minutes must be 1 to {MAX_MINUTES}, not {minutes}"),
                ));
            }
            Some(Action::AllowFor(Duration::from_secs(minutes * 60)))
        }
        "allow-always" | "deny-always" => None,
        other => {
            return Err(unprocessable(
                "bad-action",
                format!("unknown action {other:?}; one of allow-once, allow-for, allow-always, deny-once, deny-always"),
            ))
        }
    };
    let domain = match asked.scope.as_deref() {
        None | Some("host") => false,
        Some("domain") => true,
        Some(other) => {
            return Err(unprocessable(
                "bad-scope",
                format!("unknown scope {other:?}; host or domain"),
            ))
        }
    };
    let missing = || ApiError::Missing {
        code: "approval-not-found",
        message: format!(
            "no pending approval {id:?}: answered, expired, withdrawn, or never asked"
        ),
    };
    if let Some(action) = action {
        let pending = console
            .asks
            .answer(&id, action, &who.name)
            .ok_or_else(missing)?;
        return Ok(Json(serde_json::json!({
            "id": pending.id,
            "action": asked.action,
            "released": [pending.id],
        }))
        .into_response());
    }
    // "Always": the policy file changes, which needs the admin role.
    if who.role < Role::Admin {
        return Err(ApiError::RoleInsufficient {
            name: who.name,
            role: who.role.as_str(),
            needs: Role::Admin.as_str(),
        });
    }
    let pending = console
        .asks
        .pending()
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(missing)?;
    let list = if asked.action == "allow-always" {
        List::Allow
    } else {
        List::Deny
    };
    let entry = entries::entry_for(
        &pending.key.host.to_string(),
        pending.key.port,
        pending.protocol.default_port(),
        domain,
        asked.with_port,
    );
    let note = asked
        .note
        .unwrap_or_else(|| format!("{} {entry} (approval {id})", asked.action));
    let applied = super::revise::add_entry(&console, &who, list, &entry, &note).await?;
    let released = console.asks.release_where(&who.name, |p| {
        let policy = applied.config.policy_for(&p.identity);
        let verdict = policy.decide(&Request {
            host: &p.key.host,
            port: p.key.port,
            protocol: p.protocol,
        });
        match verdict.action {
            PolicyAction::Allow | PolicyAction::Report(_) => Some(Answer::Allow),
            PolicyAction::Deny(_) => Some(Answer::Deny),
            PolicyAction::Ask(_) => None,
        }
    });
    Ok(Json(serde_json::json!({
        "id": id,
        "action": asked.action,
        "entry": entry,
        "version": applied.version,
        "released": released,
    }))
    .into_response())
}
