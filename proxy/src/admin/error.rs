//! Every refusal of the admin API, in one place: a stable code (the `error` field and the
//! `X-Egress-Error` header, like the proxy's own refusals), its status, and a message a person
//! can act on. Never a token or another secret in either.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Why the admin API refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The `Host` header is not the admin listener's address (DNS rebinding).
    HostNotAdmin,
    /// The `Origin` (or `Sec-Fetch-Site`) says another site sent it (cross-site requests).
    OriginForeign,
    /// No bearer token and no session cookie.
    TokenMissing,
    /// A bearer token, login code or session that matches none.
    TokenInvalid,
    /// A session cookie that is unknown or expired.
    SessionInvalid,
    /// A state-changing call from a cookie session without the CSRF header.
    CsrfMissing,
    /// A CSRF header that is not the session's.
    CsrfInvalid,
    /// A state-changing call whose body is not `application/json`.
    ContentTypeNotJson,
    /// The token's role may not do this.
    RoleInsufficient {
        name: String,
        role: &'static str,
        needs: &'static str,
    },
    /// The body is not the JSON this call takes (message says what is wrong).
    BadJson(String),
    /// A query parameter or header value this call does not take.
    BadRequest {
        code: &'static str,
        message: String,
    },
    /// A value that is well-formed JSON but cannot be used (a host that does not parse).
    Unprocessable {
        code: &'static str,
        message: String,
    },
    /// The call conflicts with the current state (a stale `If-Match`, no file to write).
    Conflict {
        code: &'static str,
        message: String,
    },
    /// A change without `If-Match`: it could overwrite a change its author has not seen.
    IfMatchRequired,
    /// Something on the proxy's side (a file it cannot read).
    Internal(String),
    NotFound,
    /// A thing the path names does not exist (an approval, a history version).
    Missing {
        code: &'static str,
        message: String,
    },
    /// A policy text the loader refuses: where, as file:line:column.
    PolicyInvalid {
        message: String,
        line: Option<usize>,
        column: Option<usize>,
        path: String,
    },
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::HostNotAdmin => "host-not-admin",
            ApiError::OriginForeign => "origin-foreign",
            ApiError::TokenMissing => "token-missing",
            ApiError::TokenInvalid => "token-invalid",
            ApiError::SessionInvalid => "session-invalid",
            ApiError::CsrfMissing => "csrf-missing",
            ApiError::CsrfInvalid => "csrf-invalid",
            ApiError::ContentTypeNotJson => "content-type-not-json",
            ApiError::RoleInsufficient { .. } => "role-insufficient",
            ApiError::BadJson(_) => "bad-json",
            ApiError::BadRequest { code, .. } | ApiError::Unprocessable { code, .. } => code,
            ApiError::Conflict { code, .. } => code,
            ApiError::IfMatchRequired => "if-match-required",
            ApiError::Internal(_) => "internal",
            ApiError::NotFound => "not-found",
            ApiError::Missing { code, .. } => code,
            ApiError::PolicyInvalid { .. } => "policy-invalid",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::HostNotAdmin
            | ApiError::OriginForeign
            | ApiError::CsrfMissing
            | ApiError::CsrfInvalid
            | ApiError::RoleInsufficient { .. } => StatusCode::FORBIDDEN,
            ApiError::TokenMissing | ApiError::TokenInvalid | ApiError::SessionInvalid => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::ContentTypeNotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadJson(_) | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } | ApiError::PolicyInvalid { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Missing { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::IfMatchRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotFound => StatusCode::NOT_FOUND,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::HostNotAdmin => "the Host header is not this admin listener's address; use the address it listens on".into(),
            ApiError::OriginForeign => "the request comes from another site (Origin / Sec-Fetch-Site); the admin API answers only its own pages and non-browser clients".into(),
            ApiError::TokenMissing => "a token is needed: send Authorization: Bearer TOKEN, or open the login link the proxy logged at start".into(),
            ApiError::TokenInvalid => "the token or login code is not valid".into(),
            ApiError::SessionInvalid => "the session is unknown or expired; log in again".into(),
            ApiError::CsrfMissing => "a state-changing call from a browser session needs the X-Egress-CSRF header (its value is in GET /api/v1/session)".into(),
            ApiError::CsrfInvalid => "the X-Egress-CSRF header is not this session's".into(),
            ApiError::ContentTypeNotJson => "a state-changing call needs Content-Type: application/json".into(),
            ApiError::RoleInsufficient { name, role, needs } => {
                format!("token {name:?} has role {role}; this call needs {needs}")
            }
            ApiError::BadJson(message)
            | ApiError::BadRequest { message, .. }
            | ApiError::Unprocessable { message, .. }
            | ApiError::Conflict { message, .. }
            | ApiError::Missing { message, .. }
            | ApiError::PolicyInvalid { message, .. }
            | ApiError::Internal(message) => message.clone(),
            ApiError::IfMatchRequired => "send If-Match with the ETag of the text you edited (GET /api/v1/policy)".into(),
            ApiError::NotFound => "no such endpoint".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({"error": self.code(), "message": self.message()});
        if let ApiError::PolicyInvalid {
            line, column, path, ..
        } = &self
        {
            body["line"] = (*line).into();
            body["column"] = (*column).into();
            body["path"] = path.as_str().into();
        }
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, "application/json")],
            format!("{body}\n"),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert("x-egress-error", HeaderValue::from_static(self.code()));
        if self.status() == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"egress-admin\""),
            );
        }
        response
    }
}
