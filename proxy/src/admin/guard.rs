//! The gate in front of everything but the probes: the request must be addressed to this
//! listener (`Host`, against DNS rebinding), must not come from another site (`Origin`,
//! `Sec-Fetch-Site`, against cross-site requests), must carry a token or a session, and a
//! state-changing call must be JSON and, from a browser session, carry the session's CSRF
//! header. Every answer from behind the gate carries a strict CSP and no-store.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use egress_config::admin::Role;
use subtle::ConstantTimeEq;

use super::access::Principal;
use super::error::ApiError;
use super::Console;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "egress_session";
/// The header a browser session's state-changing calls carry.
pub const CSRF_HEADER: &str = "x-egress-csrf";

/// What the gate of a group of routes requires.
#[derive(Clone)]
pub struct Gate {
    pub console: Arc<Console>,
    pub needs: Role,
}

/// The addresses a request may name as its `Host` and `Origin`: the listener's own IP, and
/// `localhost` when it listens on loopback. No other name: a name is what DNS rebinding points
/// at this listener.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub listen: SocketAddr,
}

impl Site {
    /// Whether `authority` (`host[:port]`) names this listener.
    pub fn names_us(&self, authority: &str) -> bool {
        let (host, port) = match split_authority(authority) {
            Some(parts) => parts,
            None => return false,
        };
        if port != self.listen.port() {
            return false;
        }
        let ours = self.listen.ip();
        if host.eq_ignore_ascii_case("localhost") {
            return ours.is_loopback() || ours.is_unspecified();
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => ip == ours || ours.is_unspecified(),
            Err(_) => false,
        }
    }

    /// Whether `origin` (`scheme://authority`) is this listener's own.
    pub fn is_own_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|authority| self.names_us(authority))
    }
}

/// `host:port`, `[v6]:port`, or either without a port (80).
fn split_authority(authority: &str) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => 80,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok()?)),
        None => Some((authority, 80)),
    }
}

/// The `Host` and `Origin` checks, for every route behind the gate and for the login routes.
pub fn check_site(site: &Site, headers: &HeaderMap) -> Result<(), ApiError> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(|h| site.names_us(h)) {
        return Err(ApiError::HostNotAdmin);
    }
    for origin in headers.get_all(header::ORIGIN) {
        if !origin.to_str().is_ok_and(|o| site.is_own_origin(o)) {
            return Err(ApiError::OriginForeign);
        }
    }
    // Browsers say where a request comes from even where they send no Origin (a GET).
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return Err(ApiError::OriginForeign);
    }
    Ok(())
}

/// A call that may change something: anything but GET, HEAD and OPTIONS.
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the body is declared JSON (`application/json`, parameters allowed).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The session cookie's value, if sent.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value)
        })
}

/// Who is asking, from the bearer token, else the session cookie.
async fn authenticate(console: &Console, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(authorization) = headers.get(header::AUTHORIZATION) {
        let token = authorization
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        return match token.and_then(|t| console.access.by_token(t)) {
            Some(principal) => Ok(principal),
            None => {
                console.access.failed().await;
                Err(ApiError::TokenInvalid)
            }
        };
    }
    match session_cookie(headers) {
        Some(id) => match console.access.by_session(id) {
            Some(principal) => Ok(principal),
            None => {
                console.access.failed().await;
                Err(ApiError::SessionInvalid)
            }
        },
        None => Err(ApiError::TokenMissing),
    }
}

/// Everything the gate checks, in order; the principal when all pass.
async fn admit(gate: &Gate, method: &Method, headers: &HeaderMap) -> Result<Principal, ApiError> {
    check_site(&gate.console.site, headers)?;
    let principal = authenticate(&gate.console, headers).await?;
    if changes_state(method) {
        if !is_json(headers) {
            return Err(ApiError::ContentTypeNotJson);
        }
        if let Some(expected) = &principal.csrf {
            let sent = headers.get(CSRF_HEADER).ok_or(ApiError::CsrfMissing)?;
            if !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(ApiError::CsrfInvalid);
            }
        }
    }
    if principal.role < gate.needs {
        return Err(ApiError::RoleInsufficient {
            name: principal.name,
            role: principal.role.as_str(),
            needs: gate.needs.as_str(),
        });
    }
    Ok(principal)
}

/// The middleware: admit, or answer the refusal; harden either answer.
pub async fn gate(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let response = match admit(&gate, request.method(), request.headers()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        // A browser opening the console without a session gets the page, which asks it to
        // log in; the page holds no data.
        Err(ApiError::TokenMissing | ApiError::SessionInvalid)
            if super::console::wants_page(request.uri().path(), request.headers()) =>
        {
            super::console::index(axum::http::StatusCode::UNAUTHORIZED)
        }
        Err(refusal) => refusal.into_response(),
    };
    harden(response)
}

/// The middleware of the login routes: the site checks only (they take a code or a token).
pub async fn site_only(
    State(console): State<Arc<Console>>,
    request: Request,
    next: Next,
) -> Response {
    let response = match check_site(&console.site, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    };
    harden(response)
}

/// No scripts, styles, frames or forms from anywhere but this listener (none at all yet), no
/// framing by others, no referrer (a login URL must never leak), never cached.
pub fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    // The console's page and assets set their own (still strict) policy.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        );
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_address_and_localhost_name_this_listener() {
        let site = Site {
            listen: "127.0.0.1:9090".parse().unwrap(),
        };
        for ok in ["127.0.0.1:9090", "localhost:9090", "LOCALHOST:9090"] {
            assert!(site.names_us(ok), "{ok}");
        }
        for bad in [
            "127.0.0.1:9091",
            "127.0.0.1",
            "evil.example:9090",
            "localhost.evil.example:9090",
            "127.0.0.2:9090",
            "[::1]:9090",
            "127.0.0.1:9090:1",
            "",
            "2130706433:9090",
        ] {
            assert!(!site.names_us(bad), "{bad}");
        }
        let v6 = Site {
            listen: "[::1]:80".parse().unwrap(),
        };
        assert!(v6.names_us("[::1]") && v6.names_us("[::1]:80") && v6.names_us("localhost"));
        assert!(!v6.names_us("[::2]:80"));
        let any = Site {
            listen: "0.0.0.0:9090".parse().unwrap(),
        };
        assert!(any.names_us("10.1.2.3:9090") && !any.names_us("host.internal:9090"));
    }

    #[test]
    fn only_our_own_http_origin_is_ours() {
        let site = Site {
            listen: "127.0.0.1:9090".parse().unwrap(),
        };
        assert!(site.is_own_origin("http://127.0.0.1:9090"));
        assert!(site.is_own_origin("http://localhost:9090"));
        for foreign in [
            "null",
            "https://127.0.0.1:9090",
            "http://127.0.0.1:8080",
            "http://evil.example",
            "http://127.0.0.1:9090.evil.example",
            "http://127.0.0.1:9090/",
        ] {
            assert!(!site.is_own_origin(foreign), "{foreign}");
        }
    }

    #[test]
    fn json_means_application_json_with_or_without_parameters() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("multipart/form-data; boundary=x", false),
            ("application/jsonp", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_json(&headers), json, "{value}");
        }
    }
}
