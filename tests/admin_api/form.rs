//! The console's form view: the policy's lists for every role, and an edit of a given text
//! (one entry added or removed, comments kept) that writes nothing and needs the admin role,
//! JSON and, from a browser session, the CSRF header — as `PUT /api/v1/policy` does.

use super::auth::login;
use super::client::{call, get, post_json};
use super::start;

const PREVIEW: &str = "/api/v1/policy/edit-preview";

#[test]
fn the_lists_are_read_and_an_edit_keeps_the_rest_of_the_text_and_writes_nothing() {
    let (proxy, admin) = start(
        "",
        "# ours\nallow:\n  - a.example # why\n  - 'b.example:80,443'\n",
    );
    let lists = get(&admin, "/api/v1/policy/entries");
    assert_eq!(lists.status, 200, "{lists:?}");
    assert_eq!(
        lists.json(),
        serde_json::json!({"allow": ["a.example", "b.example:80,443"], "deny": ["blocked.example"]})
    );
    let before = std::fs::read_to_string(proxy.policy_path()).unwrap();
    let body = serde_json::json!({"text": before, "list": "allow", "add": "c.example:8443"});
    let added = post_json(&admin, PREVIEW, &body.to_string());
    assert_eq!(added.status, 200, "{added:?}");
    let text = added.json()["text"].as_str().unwrap().to_string();
    assert_eq!(
        text,
        before.replace(
            "  - 'b.example:80,443'\n",
            "  - 'b.example:80,443'\n  - \"c.example:8443\"\n"
        )
    );
    assert_eq!(
        added.json()["allow"],
        serde_json::json!(["a.example", "b.example:80,443", "c.example:8443"])
    );
    let body = serde_json::json!({"text": text, "list": "allow", "remove": "b.example:80,443"});
    let removed = post_json(&admin, PREVIEW, &body.to_string());
    assert_eq!(removed.status, 200, "{removed:?}");
    let text = removed.json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("# ours\n") && text.contains("  - a.example # why\n"),
        "{text}"
    );
    assert!(!text.contains("b.example"), "{text}");
    let body = serde_json::json!({"text": text, "list": "deny", "remove": "blocked.example"});
    let removed = post_json(&admin, PREVIEW, &body.to_string());
    assert_eq!(removed.json()["deny"], serde_json::json!([]), "{removed:?}");
    // Nothing was written: the file and the history are as they were.
    assert_eq!(
        std::fs::read_to_string(proxy.policy_path()).unwrap(),
        before
    );
    let history = get(&admin, "/api/v1/policy/history").json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
}

#[test]
fn a_bad_entry_or_list_is_refused_with_a_message() {
    let (_proxy, admin) = start("", "allow: [a.example]\n");
    let text = "allow: [a.example]\n";
    for (change, code, says) in [
        (
            serde_json::json!({"add": "exa mple.com"}),
            "bad-entry",
            "exa mple.com",
        ),
        (
            serde_json::json!({"add": "a.example:99999"}),
            "bad-entry",
            "a.example:99999",
        ),
        (
            serde_json::json!({"remove": "z.example"}),
            "policy-layout",
            "no entry \"z.example\"",
        ),
        (
            serde_json::json!({"add": "x.example", "remove": "a.example"}),
            "bad-entry",
            "not both",
        ),
        (
            serde_json::json!({"list": "maybe", "add": "x.example"}),
            "bad-list",
            "maybe",
        ),
    ] {
        let mut body = serde_json::json!({"text": text, "list": "allow"});
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = post_json(&admin, PREVIEW, &body.to_string());
        let message = r.refused(422, code);
        assert!(message.contains(says), "{body}: {message}");
    }
    post_json(&admin, PREVIEW, r#"{"text":"","list":"allow","extra":1}"#).refused(400, "bad-json");
    // A text that is not YAML has no lists to show: said so, not shown as empty ones.
    let broken = serde_json::json!({"text": "allow: [a.example\n", "list": "allow"});
    let message = post_json(&admin, PREVIEW, &broken.to_string()).refused(422, "policy-unreadable");
    assert!(message.starts_with("not YAML"), "{message}");
}

#[test]
fn a_viewer_reads_the_lists_but_cannot_edit_and_a_session_needs_its_csrf_header() {
    let dir = tempfile::tempdir().unwrap();
    let viewer = super::support::write_file(dir.path(), "viewer", "viewer-token-0123456789\n");
    let tokens = format!(
        "  tokens:\n    alice: {{ role: viewer, token_file: {} }}\n",
        viewer.display()
    );
    let (proxy, admin) = start(&tokens, "allow: [a.example]\n");
    let bearer = "Authorization: Bearer viewer-token-0123456789";
    let json = "Content-Type: application/json";
    let r = call(&admin, "GET", "/api/v1/policy/entries", &[bearer], None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["allow"], serde_json::json!(["a.example"]));
    let body = r#"{"text":"allow: [a.example]\n","list":"allow","add":"b.example"}"#;
    let message = call(&admin, "POST", PREVIEW, &[bearer, json], Some(body))
        .refused(403, "role-insufficient");
    assert!(message.contains("needs admin"), "{message}");
    // No token at all.
    call(&admin, "GET", "/api/v1/policy/entries", &[], None).refused(401, "token-missing");
    // The admin's browser session: the CSRF header is needed.
    let (cookie, csrf) = login(&proxy, &admin);
    call(&admin, "POST", PREVIEW, &[&cookie, json], Some(body)).refused(403, "csrf-missing");
    let right = format!("X-Egress-CSRF: {csrf}");
    let r = call(
        &admin,
        "POST",
        PREVIEW,
        &[&cookie, json, &right],
        Some(body),
    );
    assert_eq!(r.status, 200, "{r:?}");
    call(
        &admin,
        "POST",
        PREVIEW,
        &[&admin.bearer(), "Content-Type: text/plain"],
        Some(body),
    )
    .refused(415, "content-type-not-json");
}
