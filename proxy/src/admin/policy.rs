//! The policy, read-only: `GET /api/v1/policy` (the file's text with an `ETag`, passwords
//! written inside upstream URLs masked) and `POST /api/v1/policy/test` (what the policy in force
//! says about a destination, and which entry decides it).

use std::hash::BuildHasher;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use egress_config::{Host, Protocol, Request};
use serde::Deserialize;

use super::error::ApiError;
use super::Console;

/// The `ETag` of a policy text. Keyed with this process's random key: the tag of a text holding
/// a password says nothing about the password to someone who can guess the rest of the text.
pub fn etag_of(console: &Console, text: &str) -> String {
    format!("\"{:016x}\"", console.etag_key.hash_one(text))
}

/// The policy file's text (the embedded default without one) with its `ETag`.
pub async fn get_policy(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let text = match &console.policy_path {
        Some(path) => match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            Err(e) => {
                return ApiError::Internal(format!("cannot read {}: {e}", path.display()))
                    .into_response()
            }
        },
        None => egress_config::DEFAULT_POLICY_YAML.to_string(),
    };
    let etag = etag_of(&console, &text);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let (shown, masked) = mask_url_passwords(&text);
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
            shown,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if masked {
        headers.insert(
            "x-egress-masked",
            HeaderValue::from_static("upstream-passwords"),
        );
    }
    response
}

/// The text with the password of every `scheme://user:password@host` replaced by `***`, and
/// whether there was one. Passwords belong in `password_env`/`password_file`; one written in a
/// URL is still never served.
pub fn mask_url_passwords(text: &str) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut masked = false;
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(after.len());
        let token = &after[..end];
        // The userinfo ends at the authority's last '@' (an '@' in a password is %-escaped).
        let authority_end = token.find(['/', '?', '#']).unwrap_or(token.len());
        match token[..authority_end].rfind('@') {
            Some(at_sign) if token[..at_sign].contains(':') => {
                let colon = token[..at_sign].find(':').unwrap_or(at_sign);
                out.push_str(&token[..=colon]);
                out.push_str("***");
                out.push_str(&token[at_sign..]);
                masked = true;
            }
            _ => out.push_str(token),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    (out, masked)
}

/// `POST /api/v1/policy/test`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    host: String,
    /// The protocol's default port (443, or 80 for plain HTTP) when absent.
    #[serde(default)]
    port: Option<u16>,
    /// `http-connect` when absent.
    #[serde(default)]
    protocol: Option<String>,
}

/// What the policy in force decides for the destination, and the entry that decides it.
pub async fn test_destination(
    State(console): State<Arc<Console>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let asked: TestRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(format!("{e}")))?;
    let protocol = match asked.protocol.as_deref() {
        None => Protocol::HttpConnect,
        Some(name) => Protocol::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| ApiError::Unprocessable {
                code: "bad-protocol",
                message: format!(
                    "unknown protocol {name:?}; one of http-connect, http-forward, socks5"
                ),
            })?,
    };
    let host = Host::parse(&asked.host).map_err(|e| ApiError::Unprocessable {
        code: "bad-host",
        message: format!("invalid host {:?}: {e}", asked.host),
    })?;
    let port = asked.port.unwrap_or(protocol.default_port());
    if port == 0 {
        return Err(ApiError::Unprocessable {
            code: "bad-port",
            message: "port 0 is no destination".into(),
        });
    }
    let snapshot = console.state.snapshot();
    let verdict = snapshot.policy.decide(&Request {
        host: &host,
        port,
        protocol,
    });
    let mut decision = verdict.decision();
    let mut reason = verdict.reason().map(|r| r.as_str());
    let mut rule = verdict.rule;
    // An address the guard refuses is refused at connect time whatever the lists say, unless
    // its allow entry names the address itself. Names are only known after DNS, at connect.
    if let (Host::Ip(ip), true) = (&host, verdict.permits() && !verdict.explicit_address) {
        if snapshot.guard.check(*ip).is_err() {
            decision = "deny";
            reason = Some(egress_config::DenyReason::PrivateAddress.as_str());
            rule = None;
        }
    }
    Ok(Json(serde_json::json!({
        "host": host.to_string(),
        "port": port,
        "protocol": protocol.as_str(),
        "decision": decision,
        "reason": reason,
        "rule": rule,
        "via": verdict.via,
        "mode": snapshot.policy.mode().as_str(),
        "source": snapshot.source,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked_and_nothing_else_changes() {
        let cases = [
            (
                "url: http://corp:s3cret@squid:3128\n",
                "url: http://corp:***@squid:3128\n",
                true,
            ),
            (
                "{ url: \"http://u:p%40ss@h:1\" }",
                "{ url: \"http://u:***@h:1\" }",
                true,
            ),
            (
                "url: socks5://u:a:b@h:1080 # x\n",
                "url: socks5://u:***@h:1080 # x\n",
                true,
            ),
            (
                "url: http://user@squid:3128\n",
                "url: http://user@squid:3128\n",
                false,
            ),
            (
                "allow: [example.com]\n# see https://x.example/a:b@c\n",
                "allow: [example.com]\n# see https://x.example/a:b@c\n",
                false,
            ),
            (
                "a: http://u:p@h:1\nb: http://v:q@h:2",
                "a: http://u:***@h:1\nb: http://v:***@h:2",
                true,
            ),
        ];
        for (text, shown, masked) in cases {
            assert_eq!(
                mask_url_passwords(text),
                (shown.to_string(), masked),
                "{text}"
            );
        }
    }
}
