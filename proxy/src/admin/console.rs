//! The console's page and assets, compiled into the binary (no CDN, no build step, works
//! offline): one HTML page, one stylesheet, one script. `GET /` needs a session or a token like
//! the API; a browser without one gets the same page with `401`, and the page shows its login
//! form. The assets are static code with no data in them, served to anyone who passes the site
//! checks. Their CSP allows this listener's own script, style and connections, nothing inline.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

const INDEX: &str = include_str!("console/index.html");
const CSS: &str = include_str!("console/console.css");
const JS: &str = include_str!("console/console.js");

/// The console's CSP: only this listener's own script, style and connections.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn with_csp(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// `GET /` for a logged-in browser or a token holder.
pub async fn page() -> Response {
    index(StatusCode::OK)
}

pub fn index(status: StatusCode) -> Response {
    with_csp(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            INDEX,
        )
            .into_response(),
    )
}

/// Whether a refused `GET /` comes from a browser, which should see the login form rather
/// than the API's JSON refusal.
pub fn wants_page(path: &str, headers: &HeaderMap) -> bool {
    path == "/"
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return ApiError::NotFound.into_response(),
    };
    with_csp(([(header::CONTENT_TYPE, kind)], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets_and_has_no_inline_script_or_style() {
        assert!(INDEX.contains("src=\"/assets/console.js\""));
        assert!(INDEX.contains("href=\"/assets/console.css\""));
        for forbidden in [
            "<script>", "style=", "onclick=", "onload=", "http://", "https://",
        ] {
            let allowed = forbidden.starts_with("http") && INDEX.contains("www.w3.org");
            assert!(!INDEX.contains(forbidden) || allowed, "{forbidden}");
        }
        assert!(
            !JS.contains("innerHTML"),
            "text goes in as text, never as markup"
        );
        assert!(!JS.contains("eval("));
    }
}
