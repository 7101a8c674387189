//! Logging in and out: the one-time link logged at start (`GET /login?code=…`) and a token
//! posted by a page (`POST /login`) each become an HttpOnly, SameSite=Strict session cookie;
//! the link answers with a redirect to a URL without the code. `GET /api/v1/session` says who
//! the session is and gives its CSRF value; `POST /api/v1/logout` ends it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::access::{Principal, SESSION_TTL};
use super::error::ApiError;
use super::guard::{is_json, session_cookie, SESSION_COOKIE};
use super::Console;

/// The cookie that carries session `id` (`Secure` comes with TLS).
fn session_cookie_header(id: &str) -> HeaderValue {
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Opens a session for `who` and logs the login (the name, never the token or code).
fn open(console: &Console, who: &Principal, how: &str) -> Result<HeaderValue, ApiError> {
    let id = console
        .access
        .open_session(who)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(name = %who.name, role = who.role.as_str(), how, "admin login");
    console.state.observer.notice(crate::observe::Notice::new(
        "login",
        serde_json::json!({"who": who.name, "role": who.role.as_str(), "how": how}),
    ));
    Ok(session_cookie_header(&id))
}

/// `GET /login?code=CODE`: the link logged at start, usable once.
pub async fn login_link(
    State(console): State<Arc<Console>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let code = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or(ApiError::TokenMissing)?;
    let Some(who) = console.access.use_login_code(&code) else {
        console.access.failed().await;
        return Err(ApiError::TokenInvalid);
    };
    let cookie = open(&console, &who, "login link")?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, HeaderValue::from_static("/")),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenLogin {
    token: String,
}

/// `POST /login` with `{"token": "…"}`: a page's login with a named token.
pub async fn login_token(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !is_json(&headers) {
        return Err(ApiError::ContentTypeNotJson);
    }
    let asked: TokenLogin =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadJson(format!("{e}")))?;
    let Some(who) = console.access.by_token(&asked.token) else {
        console.access.failed().await;
        return Err(ApiError::TokenInvalid);
    };
    let cookie = open(&console, &who, "token")?;
    let session = serde_json::json!({"name": who.name, "role": who.role.as_str()});
    Ok(([(header::SET_COOKIE, cookie)], Json(session)).into_response())
}

/// `GET /api/v1/session`: who is asking, and (for a browser session) the CSRF header's value.
pub async fn session(Extension(who): Extension<Principal>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": who.name,
        "role": who.role.as_str(),
        "csrf": who.csrf,
    }))
}

/// `POST /api/v1/logout`: ends the browser session (a bearer token has none to end).
pub async fn logout(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        console.access.close_session(id);
    }
    let expired = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
