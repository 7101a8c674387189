//! The policy's history and the changes made from it or from the console's buttons:
//! `GET /api/v1/policy/history`, `POST /api/v1/policy/revert` (back to a version, as a new
//! version) and `POST /api/v1/policy/entries` (add one allow or deny entry, with a dry run that
//! shows the exact entry and diff first). All of them write through `edit::apply`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use egress_config::{Host, Protocol};
use serde::Deserialize;

use super::access::Principal;
use super::edit::{self, Applied};
use super::entries::{self, List};
use super::error::ApiError;
use super::history::diff;
use super::policy::mask_url_passwords;
use super::Console;

pub async fn history(State(console): State<Arc<Console>>) -> Json<serde_json::Value> {
    let versions: Vec<_> = console
        .history
        .list()
        .into_iter()
        .map(|v| {
            serde_json::json!({
                "version": v.id,
                "time": humantime::format_rfc3339_seconds(v.time).to_string(),
                "who": v.who,
                "note": v.note,
                "text": mask_url_passwords(&v.text).0,
            })
        })
        .collect();
    Json(serde_json::Value::Array(versions))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revert {
    version: u64,
    #[serde(default)]
    note: Option<String>,
}

pub async fn revert(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let asked: Revert =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(format!("{e}")))?;
    let version = console
        .history
        .get(asked.version)
        .ok_or_else(|| ApiError::Missing {
            code: "version-not-found",
            message: format!(
                "no version {} in the history (it keeps the last {})",
                asked.version,
                super::history::KEPT
            ),
        })?;
    let path = edit::policy_file(&console)?;
    let _one_writer = console.edit_lock.lock().await;
    let current = edit::read(&path).await?;
    let note = asked
        .note
        .unwrap_or_else(|| format!("revert to version {}", version.id));
    let applied = edit::apply(&console, &who, &current, version.text, &note, "revert").await?;
    Ok(applied.response())
}

/// Adds `entry` to `list` in the policy file, under the edit lock.
pub async fn add_entry(
    console: &Console,
    who: &Principal,
    list: List,
    entry: &str,
    note: &str,
) -> Result<Applied, ApiError> {
    let path = edit::policy_file(console)?;
    let _one_writer = console.edit_lock.lock().await;
    let current = edit::read(&path).await?;
    let text = entries::add(&current, list, entry).map_err(|message| ApiError::Conflict {
        code: "policy-layout",
        message,
    })?;
    edit::apply(console, who, &current, text, note, "entry").await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    /// `allow` (default) or `deny`.
    #[serde(default)]
    list: Option<String>,
    /// The entry as written; or, instead, the request it must cover:
    #[serde(default)]
    entry: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    protocol: Option<String>,
    /// `host` (default) or `domain` (the registrable domain, as `.domain`).
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    with_port: bool,
    #[serde(default)]
    note: Option<String>,
    /// Only say what would be added, and the diff.
    #[serde(default)]
    dry_run: bool,
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code,
        message: message.into(),
    }
}

pub async fn entries(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let asked: NewEntry =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(format!("{e}")))?;
    let list = match asked.list.as_deref() {
        None | Some("allow") => List::Allow,
        Some("deny") => List::Deny,
        Some(other) => {
            return Err(unprocessable(
                "bad-list",
                format!("unknown list {other:?}; allow or deny"),
            ))
        }
    };
    let entry = match (&asked.entry, &asked.host) {
        (Some(entry), None) => {
            egress_config::Pattern::parse(entry)
                .map_err(|e| unprocessable("bad-entry", format!("{entry:?}: {e}")))?;
            entry.clone()
        }
        (None, Some(host)) => {
            let protocol = match asked.protocol.as_deref() {
                None => Protocol::HttpConnect,
                Some(name) => Protocol::ALL
                    .into_iter()
                    .find(|p| p.as_str() == name)
                    .ok_or_else(|| {
                        unprocessable("bad-protocol", format!("unknown protocol {name:?}"))
                    })?,
            };
            let host = Host::parse(host)
                .map_err(|e| unprocessable("bad-host", format!("invalid host {host:?}: {e}")))?;
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
            let port = asked.port.unwrap_or(protocol.default_port());
            entries::entry_for(
                &host.to_string(),
                port,
                protocol.default_port(),
                domain,
                asked.with_port,
            )
        }
        _ => {
            return Err(unprocessable(
                "bad-entry",
                "send either \"entry\" or \"host\" (with port, protocol, scope)",
            ))
        }
    };
    if asked.dry_run {
        let path = edit::policy_file(&console)?;
        let current = edit::read(&path).await?;
        let text = entries::add(&current, list, &entry).map_err(|message| ApiError::Conflict {
            code: "policy-layout",
            message,
        })?;
        return Ok(Json(serde_json::json!({
            "list": list.key(),
            "entry": entry,
            "diff": mask_url_passwords(&diff(&current, &text)).0,
        }))
        .into_response());
    }
    let note = asked
        .note
        .unwrap_or_else(|| format!("{} {entry}", list.key()));
    let applied = add_entry(&console, &who, list, &entry, &note).await?;
    let mut response = applied.response();
    let body = serde_json::json!({
        "list": list.key(),
        "entry": entry,
        "etag": applied.etag,
        "version": applied.version,
    });
    *response.body_mut() = axum::body::Body::from(body.to_string());
    Ok(response)
}
