//! `PUT /api/v1/policy` (role admin): a new policy text, applied only when it was written
//! against the text on disk now (`If-Match` with its `ETag`, else `409`), loads with the same
//! loader as a reload (else `422` with file:line:column, the file untouched), and holds no
//! masked password. It is written atomically next to the file (write, fsync, rename over), and
//! the reloader applies it as it applies any change of the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::access::Principal;
use super::error::ApiError;
use super::history::diff;
use super::policy::{etag_of, mask_url_passwords};
use super::token_file::random_hex;
use super::Console;
use crate::observe::Notice;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPolicy {
    /// The whole YAML text.
    text: String,
    /// Why, for the history and the audit.
    #[serde(default)]
    note: Option<String>,
}

pub async fn put_policy(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let asked: NewPolicy =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(format!("{e}")))?;
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::IfMatchRequired)?
        .trim()
        .to_string();
    let path = policy_file(&console)?;
    if asked.text.contains(":***@") {
        return Err(ApiError::Unprocessable {
            code: "masked-password",
            message: "the text holds a password masked as *** (as GET shows it); write the password with password_env or password_file instead".into(),
        });
    }
    // One edit at a time: the check of the ETag and the write are one step.
    let _one_writer = console.edit_lock.lock().await;
    let current = read(&path).await?;
    if if_match != etag_of(&console, &current) {
        return Err(ApiError::Conflict {
            code: "etag-stale",
            message:
                "the policy changed since that ETag: GET it again, redo the edit on the new text"
                    .into(),
        });
    }
    let note = asked.note.unwrap_or_else(|| "edited".to_string());
    let applied = apply(&console, &who, &current, asked.text, &note, "edit").await?;
    Ok(applied.response())
}

/// The policy file, or `409` when the proxy runs the embedded default.
pub fn policy_file(console: &Console) -> Result<PathBuf, ApiError> {
    console.policy_path.clone().ok_or_else(|| ApiError::Conflict {
        code: "no-policy-file",
        message: "the proxy runs the embedded default policy; there is no file to write (start it with --config FILE)".into(),
    })
}

pub async fn read(path: &Path) -> Result<String, ApiError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read {}: {e}", path.display())))
}

/// A text the API applied.
pub struct Applied {
    pub etag: String,
    pub version: u64,
    /// The configuration the text loads to (what the reload will put in force).
    pub config: egress_config::Config,
}

impl Applied {
    pub fn response(&self) -> Response {
        let mut response =
            Json(serde_json::json!({"etag": self.etag, "version": self.version})).into_response();
        if let Ok(value) = HeaderValue::from_str(&self.etag) {
            response.headers_mut().insert(header::ETAG, value);
        }
        response
    }
}

/// Applies `text` in place of `current` (the caller holds the edit lock and read `current`
/// under it): loads it with the reload's loader (else `422` with where it is wrong), writes it
/// atomically, keeps it in the history, and reports it — one audit line and one `policy` event
/// with the diff (passwords masked). Every change of the API goes through here: the editor, a
/// revert, an entry added from the console, an "always" answer to an approval.
pub async fn apply(
    console: &Console,
    who: &Principal,
    current: &str,
    text: String,
    note: &str,
    how: &str,
) -> Result<Applied, ApiError> {
    let path = policy_file(console)?;
    let origin = path.display().to_string();
    let checked = {
        let text = text.clone();
        tokio::task::spawn_blocking(move || {
            egress_config::load_str(&text, &origin).map_err(Box::new)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
    };
    let config = checked.map_err(|e| ApiError::PolicyInvalid {
        message: e.to_string(),
        line: e.line,
        column: e.column,
        path: e.path.clone(),
    })?;
    let written = path.clone();
    let body = text.clone();
    tokio::task::spawn_blocking(move || write_atomically(&written, &body))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("cannot write {}: {e}", path.display())))?;
    tracing::info!(name = %who.name, path = %path.display(), how, "policy written through the admin API");
    let version = console.history.push(&who.name, note, &text);
    let (diff, _) = mask_url_passwords(&diff(current, &text));
    console.state.observer.notice(Notice::new(
        "policy",
        serde_json::json!({
            "action": how,
            "who": who.name,
            "role": who.role.as_str(),
            "note": note,
            "version": version,
            "diff": diff,
        }),
    ));
    Ok(Applied {
        etag: etag_of(console, &text),
        version,
        config,
    })
}

/// Writes `text` to a new file beside `path` with `path`'s permissions, syncs it, and renames it
/// over `path`: a reader sees the old file or the new one, never a part.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = random_hex(6).map_err(std::io::Error::other)?;
    let next = dir.join(format!(".{name}.{suffix}.tmp"));
    let permissions = std::fs::metadata(path)?.permissions();
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&next)?;
        file.write_all(text.as_bytes())?;
        file.set_permissions(permissions)?;
        file.sync_all()?;
        std::fs::rename(&next, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&next);
    }
    result
}
