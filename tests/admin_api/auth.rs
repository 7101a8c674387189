//! The gate: who may call, from where, and how.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::client::{call, get, post_json};
use super::support::{message, proxy_binary, Proxy};
use super::{start, Admin};

const TEST: &str = "/api/v1/policy/test";
const TEST_BODY: &str = r#"{"host":"example.com"}"#;

#[test]
fn the_probes_stay_open_and_everything_else_needs_a_token() {
    let (_proxy, admin) = start("", "");
    for (path, body) in [("/livez", "ok\n"), ("/readyz", "ready\n")] {
        let r = call(&admin, "GET", path, &[], None);
        assert_eq!((r.status, r.body.as_str()), (200, body), "{path}");
    }
    assert_eq!(call(&admin, "GET", "/metrics", &[], None).status, 200);
    for path in [
        "/",
        "/api/v1/session",
        "/api/v1/events",
        "/api/v1/policy",
        "/api/v1/openapi.json",
    ] {
        let r = call(&admin, "GET", path, &[], None);
        let message = r.refused(401, "token-missing");
        assert!(message.contains("Authorization: Bearer"), "{message}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"egress-admin\"")
        );
        // A strict CSP on refusals too.
        assert!(r
            .header("content-security-policy")
            .unwrap()
            .starts_with("default-src 'none'"));
    }
    let r = call(
        &admin,
        "POST",
        TEST,
        &["Content-Type: application/json"],
        Some(TEST_BODY),
    );
    r.refused(401, "token-missing");
    // With the token, the same calls are served, still under the CSP.
    let r = get(&admin, "/api/v1/session");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["role"], "admin");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[test]
fn a_wrong_token_is_refused_alike_whatever_it_resembles() {
    let (_proxy, admin) = start("", "");
    let token = admin.token.clone();
    let near = [
        format!("Authorization: Bearer {}x", token),
        format!("Authorization: Bearer {}", &token[..token.len() - 1]),
        format!("Authorization: Bearer {}", token.to_uppercase()),
        "Authorization: Bearer ".to_string(),
        "Authorization: Bearer wrong-token-0123456789".to_string(),
        format!("Authorization: Basic {token}"),
        format!("Authorization: Token {token}"),
        format!("Authorization: {token}"),
    ];
    for header in &near {
        let r = call(&admin, "GET", "/api/v1/session", &[header], None);
        assert_eq!(
            r.refused(401, "token-invalid"),
            "the token or login code is not valid"
        );
        assert!(!r.head.contains(&token) && !r.body.contains(&token));
    }
    // A session cookie nobody issued.
    let r = call(
        &admin,
        "GET",
        "/api/v1/session",
        &["Cookie: egress_session=0123456789abcdef"],
        None,
    );
    r.refused(401, "session-invalid");
}

#[test]
fn a_request_not_addressed_to_the_admin_address_is_refused_even_with_the_token() {
    let (_proxy, admin) = start("", "");
    let port = admin.addr.port();
    let hosts = [
        format!("Host: evil.example:{port}"),
        format!("Host: localhost.evil.example:{port}"),
        format!("Host: 127.0.0.1:{}", port.wrapping_add(1)),
        format!("Host: 127.0.0.2:{port}"),
        "Host: 127.0.0.1".to_string(),
        "Host:".to_string(),
    ];
    for host in &hosts {
        let r = call(
            &admin,
            "GET",
            "/api/v1/session",
            &[&admin.bearer(), host],
            None,
        );
        assert!(
            r.refused(403, "host-not-admin").contains("Host header"),
            "{host}"
        );
        let r = call(&admin, "GET", "/login?code=x", &[host], None);
        r.refused(403, "host-not-admin");
    }
    // The names that do name it.
    for host in [
        format!("Host: localhost:{port}"),
        format!("Host: 127.0.0.1:{port}"),
    ] {
        assert_eq!(
            call(
                &admin,
                "GET",
                "/api/v1/session",
                &[&admin.bearer(), &host],
                None
            )
            .status,
            200
        );
    }
}

#[test]
fn a_request_from_another_site_is_refused_even_with_the_token() {
    let (_proxy, admin) = start("", "");
    let port = admin.addr.port();
    let foreign = [
        "Origin: http://evil.example".to_string(),
        "Origin: null".to_string(),
        format!("Origin: http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("Origin: https://127.0.0.1:{port}"),
        format!("Origin: http://127.0.0.1:{port}.evil.example"),
        "Sec-Fetch-Site: cross-site".to_string(),
        "Sec-Fetch-Site: same-site".to_string(),
    ];
    for origin in &foreign {
        for (method, headers) in [
            ("GET", vec![admin.bearer(), origin.clone()]),
            (
                "POST",
                vec![
                    admin.bearer(),
                    origin.clone(),
                    "Content-Type: application/json".into(),
                ],
            ),
        ] {
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            let path = if method == "GET" {
                "/api/v1/session"
            } else {
                TEST
            };
            let r = call(
                &admin,
                method,
                path,
                &headers,
                Some(TEST_BODY).filter(|_| method == "POST"),
            );
            r.refused(403, "origin-foreign");
        }
        let r = call(
            &admin,
            "POST",
            "/login",
            &[origin, "Content-Type: application/json"],
            Some("{\"token\":\"x\"}"),
        );
        r.refused(403, "origin-foreign");
    }
    // Its own pages are fine.
    let own = format!("Origin: http://127.0.0.1:{port}");
    let r = call(
        &admin,
        "POST",
        TEST,
        &[
            &admin.bearer(),
            &own,
            "Content-Type: application/json",
            "Sec-Fetch-Site: same-origin",
        ],
        Some(TEST_BODY),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn a_state_changing_call_needs_json_and_a_browser_session_needs_its_csrf_header() {
    let (proxy, admin) = start("", "");
    // With a bearer token: JSON is needed, a CSRF header is not.
    for content_type in [
        "Content-Type: text/plain",
        "Content-Type: application/x-www-form-urlencoded",
        "Content-Type: multipart/form-data; boundary=x",
        "Content-Type:",
    ] {
        let r = call(
            &admin,
            "POST",
            TEST,
            &[&admin.bearer(), content_type],
            Some(TEST_BODY),
        );
        assert!(
            r.refused(415, "content-type-not-json")
                .contains("application/json"),
            "{content_type}"
        );
    }
    assert_eq!(post_json(&admin, TEST, TEST_BODY).status, 200);
    // A browser session, from the login link.
    let (cookie, csrf) = login(&proxy, &admin);
    let json = "Content-Type: application/json";
    let r = call(&admin, "POST", TEST, &[&cookie, json], Some(TEST_BODY));
    assert!(r.refused(403, "csrf-missing").contains("X-Egress-CSRF"));
    let r = call(
        &admin,
        "POST",
        TEST,
        &[&cookie, json, "X-Egress-CSRF: 00"],
        Some(TEST_BODY),
    );
    r.refused(403, "csrf-invalid");
    let wrong_case = format!("X-Egress-CSRF: {}", csrf.to_uppercase());
    call(
        &admin,
        "POST",
        TEST,
        &[&cookie, json, &wrong_case],
        Some(TEST_BODY),
    )
    .refused(403, "csrf-invalid");
    let right = format!("X-Egress-CSRF: {csrf}");
    let r = call(
        &admin,
        "POST",
        TEST,
        &[&cookie, "Content-Type: text/plain", &right],
        Some(TEST_BODY),
    );
    r.refused(415, "content-type-not-json");
    let r = call(
        &admin,
        "POST",
        TEST,
        &[&cookie, json, &right],
        Some(TEST_BODY),
    );
    assert_eq!(r.status, 200, "{r:?}");
    // A GET needs neither.
    assert_eq!(
        call(&admin, "GET", "/api/v1/session", &[&cookie], None).status,
        200
    );
    // Logout ends the session.
    let r = call(
        &admin,
        "POST",
        "/api/v1/logout",
        &[&cookie, json, &right],
        Some("{}"),
    );
    assert_eq!(r.status, 204, "{r:?}");
    call(&admin, "GET", "/api/v1/session", &[&cookie], None).refused(401, "session-invalid");
}

/// The login link's URL, from the log line `Admin::of` waited for.
fn login_url(proxy: &Proxy) -> String {
    let logs = proxy.logs();
    let link = logs
        .iter()
        .find(|v| message(v).starts_with("admin console login link"))
        .expect("the login link was logged");
    link["url"].as_str().expect("url field").to_string()
}

/// Logs in through the link the proxy logged; the `Cookie:` header and the session's CSRF value.
pub fn login(proxy: &Proxy, admin: &Admin) -> (String, String) {
    let url = login_url(proxy);
    let path = url
        .strip_prefix(&format!("http://{}", admin.addr))
        .expect("the link names the admin address");
    let r = call(admin, "GET", path, &[], None);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/"));
    let set = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = format!("Cookie: {}", set.split(';').next().unwrap());
    let session = call(admin, "GET", "/api/v1/session", &[&cookie], None);
    assert_eq!(session.status, 200, "{session:?}");
    let csrf = session.json()["csrf"].as_str().expect("csrf").to_string();
    (cookie, csrf)
}

#[test]
fn the_login_link_works_once_and_no_token_is_ever_logged_or_answered() {
    let (proxy, admin) = start("", "");
    let url = login_url(&proxy);
    let (cookie, _) = login(&proxy, &admin);
    let home = call(&admin, "GET", "/", &[&cookie], None);
    assert_eq!(home.status, 200);
    assert!(
        home.body.contains("<title>egress console</title>"),
        "{home:?}"
    );
    // The link is used up.
    let path = url.strip_prefix(&format!("http://{}", admin.addr)).unwrap();
    call(&admin, "GET", path, &[], None).refused(401, "token-invalid");
    call(&admin, "GET", "/login", &[], None).refused(401, "token-missing");
    // A token login, by a page, with JSON.
    let body = format!("{{\"token\":\"{}\"}}", admin.token);
    let r = call(
        &admin,
        "POST",
        "/login",
        &["Content-Type: application/json"],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("set-cookie").unwrap().contains("HttpOnly"));
    call(
        &admin,
        "POST",
        "/login",
        &["Content-Type: text/plain"],
        Some(&body),
    )
    .refused(415, "content-type-not-json");
    call(
        &admin,
        "POST",
        "/login",
        &["Content-Type: application/json"],
        Some("{\"token\":\"nope-0123456789abcdef\"}"),
    )
    .refused(401, "token-invalid");
    // The token is in no log line; the code only in the one line that is the link.
    let logs = proxy.log_text();
    assert!(!logs.contains(&admin.token), "the token was logged");
    let code = url.rsplit('=').next().unwrap();
    assert_eq!(
        logs.lines().filter(|l| l.contains(code)).count(),
        1,
        "{logs}"
    );
    assert!(proxy
        .logs()
        .iter()
        .any(|v| message(v) == "admin login" && v["name"] == "admin"));
}

#[test]
fn a_viewer_reads_an_approver_too_and_only_admin_changes_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let viewer = super::support::write_file(dir.path(), "viewer", "viewer-token-0123456789\n");
    let approver =
        super::support::write_file(dir.path(), "approver", "approver-token-0123456789\n");
    let tokens = format!(
        "  tokens:\n    alice: {{ role: viewer, token_file: {} }}\n    bot: {{ role: approver, token_file: {} }}\n",
        viewer.display(),
        approver.display()
    );
    let (proxy, admin) = start(&tokens, "");
    let policy = get(&admin, "/api/v1/policy");
    let etag = format!("If-Match: {}", policy.header("etag").unwrap());
    let body = serde_json::json!({"text": std::fs::read_to_string(proxy.policy_path()).unwrap()})
        .to_string();
    for (name, token, role) in [
        ("alice", "viewer-token-0123456789", "viewer"),
        ("bot", "approver-token-0123456789", "approver"),
    ] {
        let bearer = format!("Authorization: Bearer {token}");
        let r = call(&admin, "GET", "/api/v1/session", &[&bearer], None);
        assert_eq!(
            (r.json()["name"].as_str(), r.json()["role"].as_str()),
            (Some(name), Some(role))
        );
        assert_eq!(
            call(&admin, "GET", "/api/v1/policy", &[&bearer], None).status,
            200
        );
        let r = call(
            &admin,
            "POST",
            TEST,
            &[&bearer, "Content-Type: application/json"],
            Some(TEST_BODY),
        );
        assert_eq!(r.status, 200);
        let r = call(
            &admin,
            "PUT",
            "/api/v1/policy",
            &[&bearer, "Content-Type: application/json", &etag],
            Some(&body),
        );
        let message = r.refused(403, "role-insufficient");
        assert_eq!(
            message,
            format!("token \"{name}\" has role {role}; this call needs admin")
        );
    }
    // The admin token may.
    let r = call(
        &admin,
        "PUT",
        "/api/v1/policy",
        &[&admin.bearer(), "Content-Type: application/json", &etag],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn repeated_bad_tokens_are_slowed_down_and_the_right_token_still_works() {
    let (_proxy, admin) = start("", "");
    let bad = "Authorization: Bearer not-the-token-0123456789";
    for _ in 0..5 {
        call(&admin, "GET", "/api/v1/session", &[bad], None).refused(401, "token-invalid");
    }
    // The 6th to 8th recent failures wait 100, 200 and 400 ms.
    let started = Instant::now();
    for _ in 0..3 {
        call(&admin, "GET", "/api/v1/session", &[bad], None).refused(401, "token-invalid");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    // Two guesses at once are answered one after the other: the second waits out both delays.
    let started = Instant::now();
    let guesses: Vec<_> = (0..2)
        .map(|_| {
            let admin = Admin {
                addr: admin.addr,
                token: admin.token.clone(),
            };
            std::thread::spawn(move || call(&admin, "GET", "/api/v1/session", &[bad], None).status)
        })
        .collect();
    for guess in guesses {
        assert_eq!(guess.join().unwrap(), 401);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(800 + 1600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(get(&admin, "/api/v1/session").status, 200);
}

#[test]
fn the_token_file_is_created_private_and_a_readable_one_stops_the_start() {
    let (proxy, admin) = start("", "");
    let path = proxy.dir.path().join("admin.token");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(admin.token.len(), 64);
    assert!(admin.token.bytes().all(|b| b.is_ascii_hexdigit()));
    // Others may read it: the proxy refuses to start, naming the file, not the token.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(proxy_binary())
        .arg("--config")
        .arg(proxy.policy_path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("may be read by others") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(!stderr.contains(&admin.token));
    // A configured place is used as given.
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("sub/my.token");
    let other = Proxy::start(&format!(
        "admin: {{ listen: 127.0.0.1:0, token_file: {} }}\n",
        own.display()
    ));
    other.wait_for_log("the login link", |v| {
        message(v).starts_with("admin console login link")
    });
    let mode = std::fs::metadata(&own).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!other.dir.path().join("admin.token").exists());
}

#[test]
fn a_remote_admin_address_needs_allow_remote() {
    let dir = tempfile::tempdir().unwrap();
    let policy =
        super::support::write_file(dir.path(), "p.yaml", "admin: { listen: 0.0.0.0:9090 }\n");
    let out = Command::new(proxy_binary())
        .arg("check")
        .arg(&policy)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("must be on loopback") && said.contains("allow_remote"),
        "{said}"
    );
    let policy = super::support::write_file(
        dir.path(),
        "q.yaml",
        "admin: { listen: 0.0.0.0:9090, allow_remote: true }\n",
    );
    let out = Command::new(proxy_binary())
        .arg("check")
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
