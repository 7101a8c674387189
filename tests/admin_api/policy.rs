//! The policy endpoints: the text with its ETag (passwords masked), a destination test against
//! the policy in force, and a guarded edit.

use super::client::{call, get, post_json};
use super::start;
use super::support::message;

#[test]
fn the_policy_test_names_the_entry_that_decides() {
    let (_proxy, admin) = start("", "allow: [\".github.com\", \"pypi.org:443,8443\"]\n");
    let cases = [
        (
            r#"{"host":"api.github.com"}"#,
            "allow",
            None,
            Some(".github.com"),
            443,
        ),
        (
            r#"{"host":"PyPI.org.","port":8443,"protocol":"socks5"}"#,
            "allow",
            None,
            Some("pypi.org:443,8443"),
            8443,
        ),
        (
            r#"{"host":"pypi.org","port":22}"#,
            "deny",
            Some("port-not-allowed"),
            Some("pypi.org:443,8443"),
            22,
        ),
        (
            r#"{"host":"blocked.example"}"#,
            "deny",
            Some("blocked-by-denylist"),
            Some("blocked.example"),
            443,
        ),
        (
            r#"{"host":"github.com","protocol":"http-forward"}"#,
            "allow",
            None,
            Some(".github.com"),
            80,
        ),
        (
            r#"{"host":"10.0.0.1"}"#,
            "deny",
            Some("not-allowlisted"),
            None,
            443,
        ),
    ];
    for (body, decision, reason, rule, port) in cases {
        let r = post_json(&admin, "/api/v1/policy/test", body);
        assert_eq!(r.status, 200, "{r:?}");
        let v = r.json();
        assert_eq!(
            (
                v["decision"].as_str(),
                v["reason"].as_str(),
                v["rule"].as_str(),
                v["port"].as_u64()
            ),
            (Some(decision), reason, rule, Some(port)),
            "{body}: {v}"
        );
        assert_eq!(v["mode"], "enforce");
    }
    for (body, status, code) in [
        (r#"{"host":"exa mple.com"}"#, 422, "bad-host"),
        (
            r#"{"host":"example.com","protocol":"ftp"}"#,
            422,
            "bad-protocol",
        ),
        (r#"{"host":"example.com","port":0}"#, 422, "bad-port"),
        (r#"{"host":"example.com","port":70000}"#, 400, "bad-json"),
        (r#"{"host":"example.com","identity":"x"}"#, 400, "bad-json"),
        (r#"{"hots":"example.com"}"#, 400, "bad-json"),
        ("not json", 400, "bad-json"),
    ] {
        post_json(&admin, "/api/v1/policy/test", body).refused(status, code);
    }
}

#[test]
fn a_private_address_is_refused_by_the_guard_unless_an_entry_names_it() {
    let (_proxy, admin) = start("", "mode: report\nallow: [\"10.0.0.0/8\"]\n");
    let test = |host: &str| {
        post_json(
            &admin,
            "/api/v1/policy/test",
            &format!("{{\"host\":\"{host}\"}}"),
        )
        .json()
    };
    let v = test("10.1.2.3");
    assert_eq!(
        (v["decision"].as_str(), v["rule"].as_str()),
        (Some("allow"), Some("10.0.0.0/8"))
    );
    // Report mode lets unknown destinations through, but never to a private address.
    for private in ["192.168.1.1", "169.254.169.254", "127.0.0.1", "[::1]"] {
        let v = test(private);
        assert_eq!(
            (v["decision"].as_str(), v["reason"].as_str()),
            (Some("deny"), Some("private-address")),
            "{private}"
        );
    }
    let v = test("93.184.216.34");
    assert_eq!(
        (v["decision"].as_str(), v["reason"].as_str()),
        (Some("report"), Some("not-allowlisted"))
    );
}

#[test]
fn the_policy_text_comes_with_an_etag_and_never_with_a_password() {
    let upstream = "upstreams:\n  corp: { url: \"http://egress:s3cret-pass@127.0.0.1:3128\" }\nroute: { default: corp }\n";
    let (proxy, admin) = start("", upstream);
    let r = get(&admin, "/api/v1/policy");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/yaml; charset=utf-8")
    );
    assert!(
        !r.body.contains("s3cret-pass") && !r.head.contains("s3cret-pass"),
        "{r:?}"
    );
    assert!(
        r.body.contains("http://egress:***@127.0.0.1:3128"),
        "{}",
        r.body
    );
    assert!(r.body.contains("deny: [blocked.example]"));
    assert_eq!(r.header("x-egress-masked"), Some("upstream-passwords"));
    let etag = r.header("etag").expect("an ETag").to_string();
    let again = call(
        &admin,
        "GET",
        "/api/v1/policy",
        &[&admin.bearer(), &format!("If-None-Match: {etag}")],
        None,
    );
    assert_eq!(again.status, 304);
    // Putting the masked text back is refused: it would write *** as the password.
    let body = serde_json::json!({"text": r.body}).to_string();
    let put = call(
        &admin,
        "PUT",
        "/api/v1/policy",
        &[
            &admin.bearer(),
            "Content-Type: application/json",
            &format!("If-Match: {etag}"),
        ],
        Some(&body),
    );
    put.refused(422, "masked-password");
    assert!(std::fs::read_to_string(proxy.policy_path())
        .unwrap()
        .contains("s3cret-pass"));
}

#[test]
fn a_policy_edit_needs_the_current_etag_and_a_valid_text_and_is_then_applied() {
    let (proxy, admin) = start("", "");
    let path = proxy.policy_path();
    let before = std::fs::read_to_string(&path).unwrap();
    let etag = get(&admin, "/api/v1/policy")
        .header("etag")
        .unwrap()
        .to_string();
    let put = |if_match: Option<&str>, text: &str| {
        let body = serde_json::json!({"text": text}).to_string();
        let mut headers = vec![admin.bearer(), "Content-Type: application/json".to_string()];
        if let Some(tag) = if_match {
            headers.push(format!("If-Match: {tag}"));
        }
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        call(&admin, "PUT", "/api/v1/policy", &headers, Some(&body))
    };
    let next = format!("{before}allow: [new.example]\n");
    put(None, &next).refused(428, "if-match-required");
    put(Some("\"0000000000000000\""), &next).refused(409, "etag-stale");
    // Broken: line and column, and the file is untouched.
    let broken = format!("{before}allow: [new.example\n");
    let r = put(Some(&etag), &broken);
    assert_eq!(r.status, 422, "{r:?}");
    let v = r.json();
    assert_eq!(v["error"], "policy-invalid");
    assert!(
        v["line"].as_u64().is_some() && v["column"].as_u64().is_some(),
        "{v}"
    );
    let r = put(Some(&etag), &format!("{before}alow: [x.example]\n"));
    assert_eq!(
        (r.status, r.json()["path"].as_str()),
        (422, Some("alow")),
        "{r:?}"
    );
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("did you mean `allow`?"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    // Valid: written, reloaded, in force.
    let r = put(Some(&etag), &next);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), next);
    proxy.wait_for_log("the reload", |v| message(v) == "policy reloaded");
    let v = post_json(&admin, "/api/v1/policy/test", r#"{"host":"new.example"}"#).json();
    assert_eq!(
        (v["decision"].as_str(), v["rule"].as_str()),
        (Some("allow"), Some("new.example"))
    );
    // The old ETag is stale now.
    put(Some(&etag), &before).refused(409, "etag-stale");
    assert!(proxy
        .logs()
        .iter()
        .any(|v| message(v) == "policy written through the admin API" && v["name"] == "admin"));
}

#[test]
fn the_openapi_document_describes_every_route_and_each_is_served() {
    let (_proxy, admin) = start("", "");
    let r = get(&admin, "/api/v1/openapi.json");
    assert_eq!(r.status, 200);
    let doc = r.json();
    for (method, path) in egress_proxy::admin::API_ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} undescribed"
        );
        if path.ends_with("/events") {
            continue; // a stream: served, as the events tests show
        }
        let body = Some("{}").filter(|_| *method != "get");
        let answer = call(
            &admin,
            &method.to_uppercase(),
            path,
            &[&admin.bearer(), "Content-Type: application/json"],
            body,
        );
        // Served: whatever the answer to an empty body, not "no such endpoint" or a 405.
        assert!(
            ![404, 405].contains(&answer.status),
            "{method} {path}: {answer:?}"
        );
    }
    call(&admin, "GET", "/api/v1/nothing", &[&admin.bearer()], None).refused(404, "not-found");
}
