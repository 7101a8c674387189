//! The console's page and assets as served: a browser without a session gets the page (which
//! asks it to log in) with 401, a script gets the API's refusal; the assets come with a CSP
//! that allows only this listener's own script and style; the status the page shows.

use super::client::{call, get};
use super::start;

#[test]
fn a_browser_without_a_session_gets_the_login_page_and_a_script_the_refusal() {
    let (_proxy, admin) = start("", "");
    let browser = call(
        &admin,
        "GET",
        "/",
        &["Accept: text/html,application/xhtml+xml"],
        None,
    );
    assert_eq!(browser.status, 401, "{browser:?}");
    assert!(browser.body.contains("id=\"login-form\""));
    let csp = browser.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self'; style-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    call(&admin, "GET", "/", &[], None).refused(401, "token-missing");
    // Another page than `/` is never answered with the page.
    call(
        &admin,
        "GET",
        "/api/v1/policy",
        &["Accept: text/html"],
        None,
    )
    .refused(401, "token-missing");
    // A foreign Host gets no page either.
    call(
        &admin,
        "GET",
        "/",
        &["Accept: text/html", "Host: evil.example:80"],
        None,
    )
    .refused(403, "host-not-admin");
    for (name, kind) in [
        ("console.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
    ] {
        let r = call(&admin, "GET", &format!("/assets/{name}"), &[], None);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some(kind));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    call(&admin, "GET", "/assets/secret.txt", &[], None).refused(404, "not-found");
    call(
        &admin,
        "GET",
        "/assets/console.js",
        &["Origin: http://evil.example"],
        None,
    )
    .refused(403, "origin-foreign");
    let page = get(&admin, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>egress console</title>"));
}

#[test]
fn the_status_names_version_mode_and_parents() {
    let (_proxy, admin) = start(
        "",
        "mode: ask\nupstreams:\n  corp: { url: \"http://u:s3cret@127.0.0.1:9\" }\nroute: { default: corp }\n",
    );
    let r = get(&admin, "/api/v1/status");
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["mode"], "ask");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["parents"][0]["name"], "corp", "{v}");
    assert_eq!(v["attended"], false);
    assert_eq!(v["ask_timeout_s"], 60);
    assert!(!r.body.contains("s3cret"));
}
