//! The console's form view of the policy: `GET /api/v1/policy/entries` (the `allow` and `deny`
//! entries of the file as it is now) and `POST /api/v1/policy/edit-preview` (role admin: one
//! entry added to or removed from a text the caller holds, the new text and its lists back,
//! nothing written). The form puts that text in the editor, so a change made in the form is previewed
//! and applied exactly as a change typed there: one path to the file, `PUT /api/v1/policy`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::edit;
use super::entries::{self, List};
use super::error::ApiError;
use super::policy::mask_url_passwords;
use super::Console;

pub async fn current(State(console): State<Arc<Console>>) -> Result<Json<Value>, ApiError> {
    let text = match &console.policy_path {
        Some(path) => edit::read(path).await?,
        None => egress_config::DEFAULT_POLICY_YAML.to_string(),
    };
    Ok(Json(lists(&mask_url_passwords(&text).0)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    /// The text to change (the editor's, which may hold edits not yet applied).
    text: String,
    /// `allow` or `deny`.
    list: String,
    /// The entry to add, or the one to remove.
    #[serde(default)]
    add: Option<String>,
    #[serde(default)]
    remove: Option<String>,
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code,
        message: message.into(),
    }
}

pub async fn edit_preview(body: Bytes) -> Result<Json<Value>, ApiError> {
    let asked: Change =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(format!("{e}")))?;
    let list = match asked.list.as_str() {
        "allow" => List::Allow,
        "deny" => List::Deny,
        other => {
            return Err(unprocessable(
                "bad-list",
                format!("unknown list {other:?}; allow or deny"),
            ))
        }
    };
    let text = match (asked.add.as_deref(), asked.remove.as_deref()) {
        (Some(entry), None) => {
            let entry = entry.trim();
            egress_config::Pattern::parse(entry)
                .map_err(|e| unprocessable("bad-entry", format!("{entry:?}: {e}")))?;
            entries::add(&asked.text, list, entry)
        }
        (None, Some(entry)) => entries::remove(&asked.text, list, entry),
        // Neither: the lists of the text as it is (the editor's text, for the form).
        (None, None) => Ok(asked.text),
        _ => {
            return Err(unprocessable(
                "bad-entry",
                "send \"add\" or \"remove\", not both",
            ))
        }
    }
    .map_err(|message| unprocessable("policy-layout", message))?;
    let mut answer = lists(&text)?;
    answer["text"] = Value::String(text);
    Ok(Json(answer))
}

/// The top-level `allow` and `deny` items of `text`, each as written when it is a plain entry
/// (an item with options shows as its JSON); `422` for a text that is not YAML, rather than
/// lists that look empty.
fn lists(text: &str) -> Result<Value, ApiError> {
    let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| unprocessable("policy-unreadable", format!("not YAML: {e}")))?;
    let items = |key: &str| -> Vec<Value> {
        document
            .get(key)
            .and_then(|v| v.as_sequence())
            .map(|items| {
                items
                    .iter()
                    .map(|item| match item.as_str() {
                        Some(entry) => Value::String(entry.to_string()),
                        None => Value::String(
                            serde_json::to_string(item).unwrap_or_else(|e| e.to_string()),
                        ),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(json!({"allow": items("allow"), "deny": items("deny")}))
}
