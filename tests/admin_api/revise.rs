//! The policy's history, revert and one-entry additions, statistics, and the audit of every
//! change and login: each a JSON line with who, what and when, and an event on the stream.

use super::client::{call, get, post_json, Stream};
use super::support::{message, wait, WAIT};
use super::{start, Admin};

/// The changed lines of a diff (context lines left out).
fn changes(diff: &serde_json::Value) -> Vec<String> {
    diff.as_str()
        .expect("a diff")
        .lines()
        .filter(|l| l.starts_with(['+', '-']))
        .map(str::to_string)
        .collect()
}

fn put(admin: &Admin, etag: &str, text: &str, note: &str) -> super::client::Answer {
    let body = serde_json::json!({"text": text, "note": note}).to_string();
    call(
        admin,
        "PUT",
        "/api/v1/policy",
        &[
            &admin.bearer(),
            "Content-Type: application/json",
            &format!("If-Match: {etag}"),
        ],
        Some(&body),
    )
}

/// The audit file's lines of `event`, once at least `n` are there.
fn audited(path: &std::path::Path, event: &str, n: usize) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    wait::until(&format!("{n} {event} audit lines"), || {
        lines = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect();
        lines.len() >= n
    });
    lines
}

#[test]
fn every_applied_version_is_kept_and_a_revert_is_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let (proxy, admin) = start("", &format!("audit: {{ path: {} }}\n", audit.display()));
    let stream = Stream::open(&admin, "", &[]);
    let path = proxy.policy_path();
    let original = std::fs::read_to_string(&path).unwrap();
    let history = get(&admin, "/api/v1/policy/history").json();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(
        (history[0]["who"].as_str(), history[0]["text"].as_str()),
        (Some("startup"), Some(original.as_str()))
    );
    let first = history[0]["version"].as_u64().unwrap();
    let etag = get(&admin, "/api/v1/policy")
        .header("etag")
        .unwrap()
        .to_string();
    let edited = format!("{original}allow: [new.example]\n");
    let r = put(&admin, &etag, &edited, "let new.example in");
    assert_eq!(r.status, 200, "{r:?}");
    let event = stream.next_named("policy", WAIT).json();
    assert_eq!(
        (
            event["action"].as_str(),
            event["who"].as_str(),
            event["note"].as_str()
        ),
        (Some("edit"), Some("admin"), Some("let new.example in")),
        "{event}"
    );
    assert_eq!(changes(&event["diff"]), ["+allow: [new.example]"]);
    let history = get(&admin, "/api/v1/policy/history").json();
    assert_eq!(history[0]["note"], "let new.example in");
    assert_eq!(history[0]["text"], edited.as_str());
    // Revert: the first text is written again, as a new version.
    let r = post_json(
        &admin,
        "/api/v1/policy/revert",
        &format!("{{\"version\":{first}}}"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    let history = get(&admin, "/api/v1/policy/history").json();
    assert_eq!(history.as_array().unwrap().len(), 3);
    assert_eq!(history[0]["note"], format!("revert to version {first}"));
    let event = stream.next_named("policy", WAIT).json();
    assert_eq!(event["action"], "revert");
    assert_eq!(changes(&event["diff"]), ["-allow: [new.example]"]);
    // Audited: one line per change, with who and the diff.
    let lines = audited(&audit, "policy", 2);
    assert_eq!(lines[0]["who"], "admin");
    assert_eq!(lines[1]["action"], "revert");
    assert!(lines[1]["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    // Errors.
    post_json(&admin, "/api/v1/policy/revert", r#"{"version":999}"#)
        .refused(404, "version-not-found");
    post_json(&admin, "/api/v1/policy/revert", r#"{"v":1}"#).refused(400, "bad-json");
}

#[test]
fn an_entry_is_shown_before_it_is_added_and_added_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let viewer = super::support::write_file(dir.path(), "viewer", "viewer-token-0123456789\n");
    let tokens = format!(
        "  tokens:\n    alice: {{ role: viewer, token_file: {} }}\n",
        viewer.display()
    );
    let (proxy, admin) = start(&tokens, "# our list\nallow: [github.com] # keep\n");
    let path = proxy.policy_path();
    let before = std::fs::read_to_string(&path).unwrap();
    let ask = r#"{"host":"registry.npmjs.org","scope":"domain","dry_run":true}"#;
    let r = post_json(&admin, "/api/v1/policy/entries", ask);
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["entry"], ".npmjs.org");
    assert_eq!(
        changes(&v["diff"]),
        [
            "-allow: [github.com] # keep",
            "+allow: [github.com, \".npmjs.org\"] # keep"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        before,
        "a dry run writes nothing"
    );
    let alice = Admin {
        addr: admin.addr,
        token: "viewer-token-0123456789".into(),
    };
    post_json(
        &alice,
        "/api/v1/policy/entries",
        &ask.replace(",\"dry_run\":true", ""),
    )
    .refused(403, "role-insufficient");
    let r = post_json(
        &admin,
        "/api/v1/policy/entries",
        r#"{"host":"pypi.org","port":8443,"protocol":"socks5"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["entry"], "pypi.org:8443");
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(
        after.contains("# our list\nallow: [github.com, \"pypi.org:8443\"] # keep\n"),
        "{after}"
    );
    proxy.wait_for_log("the reload", |v| message(v) == "policy reloaded");
    let v = post_json(
        &admin,
        "/api/v1/policy/test",
        r#"{"host":"pypi.org","port":8443,"protocol":"socks5"}"#,
    )
    .json();
    assert_eq!(v["rule"], "pypi.org:8443", "{v}");
    for (body, status, code) in [
        (
            r#"{"entry":"a.example","host":"a.example"}"#,
            422,
            "bad-entry",
        ),
        (r#"{}"#, 422, "bad-entry"),
        (r#"{"entry":"exa mple"}"#, 422, "bad-entry"),
        (r#"{"list":"maybe","entry":"a.example"}"#, 422, "bad-list"),
        (r#"{"host":"a.example","scope":"planet"}"#, 422, "bad-scope"),
        (
            r#"{"host":"a.example","protocol":"ftp"}"#,
            422,
            "bad-protocol",
        ),
        (r#"{"host":"a.example","colour":"red"}"#, 400, "bad-json"),
    ] {
        post_json(&admin, "/api/v1/policy/entries", body).refused(status, code);
    }
}

#[test]
fn a_list_written_over_several_lines_is_left_to_the_editor() {
    let (proxy, admin) = start("", "allow: [a.example,\n  b.example]\n");
    let before = std::fs::read_to_string(proxy.policy_path()).unwrap();
    post_json(&admin, "/api/v1/policy/entries", r#"{"entry":"c.example"}"#)
        .refused(409, "policy-layout");
    assert_eq!(
        std::fs::read_to_string(proxy.policy_path()).unwrap(),
        before
    );
}

#[test]
fn stats_count_what_went_through_and_a_login_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let (proxy, admin) = start("", &format!("audit: {{ path: {} }}\n", audit.display()));
    for _ in 0..3 {
        super::client::through(&proxy, "x.blocked.example");
    }
    super::client::through(&proxy, "other.invalid");
    let mut stats = serde_json::Value::Null;
    wait::until("four denials counted", || {
        stats = get(&admin, "/api/v1/stats").json();
        stats["5m"]["totals"]["deny"] == 4
    });
    for window in ["5m", "1h", "24h"] {
        assert_eq!(stats[window]["totals"]["deny"], 4, "{stats}");
        assert_eq!(stats[window]["top_blocked"][0]["count"], 3, "{stats}");
        assert_eq!(stats[window]["top_clients"][0]["client"], "127.0.0.1");
    }
    assert_eq!(stats["series"].as_array().unwrap().len(), 60);
    let r = call(
        &admin,
        "POST",
        "/login",
        &["Content-Type: application/json"],
        Some(&format!("{{\"token\":\"{}\"}}", admin.token)),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let lines = audited(&audit, "login", 1);
    assert_eq!(
        (
            lines[0]["who"].as_str(),
            lines[0]["role"].as_str(),
            lines[0]["how"].as_str()
        ),
        (Some("admin"), Some("admin"), Some("token"))
    );
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains(&admin.token), "no token in the audit log");
}
