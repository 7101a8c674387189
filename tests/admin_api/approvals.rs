//! Ask mode with real curl through the proxy: a destination no entry decides is held until a
//! person answers through the API (CONNECT, plain HTTP and SOCKS5 alike), times out, or is
//! refused at once when nobody able to answer is watching. Deny entries and private addresses
//! are never asked. "Always" writes the policy file and releases every waiting client it covers.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::client::{get, post_json, Stream};
use super::support::origin::Servers;
use super::support::wait;
use super::support::{message, Proxy, WAIT};
use super::{start, Admin};

/// A proxy in ask mode that may reach the loopback origin (the guard allows 127.0.0.1 only).
fn ask_proxy(timeout: &str, extra_admin: &str) -> (Proxy, Admin) {
    start(
        extra_admin,
        &format!(
            "mode: ask\nask: {{ timeout: {timeout} }}\nallow: [\"localhost:1\"]\n\
             address_guard: {{ allow_networks: [127.0.0.1/32] }}\n"
        ),
    )
}

/// A curl through the proxy running in the background; `how` picks the protocol.
struct Held(Child);

fn held(proxy: &Proxy, how: &str, url: &str, interface: Option<&str>) -> Held {
    let mut command = Command::new("curl");
    command.args(["-sS", "-i", "--max-time", "30", "--noproxy", ""]);
    match how {
        "forward" => command.args(["-x", &proxy.url()]),
        "connect" => command.args(["-p", "-x", &proxy.url()]),
        _ => command.args(["--socks5-hostname", &proxy.addr.to_string()]),
    };
    if let Some(interface) = interface {
        command.args(["--interface", interface]);
    }
    let child = command
        .arg(url)
        .env_remove("http_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    Held(child)
}

impl Held {
    /// Curl's whole output once it ended.
    fn output(self) -> String {
        let out = self.0.wait_with_output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

fn pending(admin: &Admin) -> Vec<serde_json::Value> {
    let r = get(admin, "/api/v1/approvals");
    assert_eq!(r.status, 200, "{r:?}");
    r.json().as_array().cloned().unwrap_or_default()
}

/// Waits until the pending approvals satisfy `pred`; returns them.
fn pending_when(
    admin: &Admin,
    what: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let mut last = Vec::new();
    wait::until(what, || {
        last = pending(admin);
        pred(&last)
    });
    last
}

fn answer(admin: &Admin, id: &str, body: &str) -> super::client::Answer {
    post_json(admin, &format!("/api/v1/approvals/{id}"), body)
}

#[test]
fn a_held_request_goes_on_after_allow_once_over_every_protocol() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let (proxy, admin) = ask_proxy("30s", "");
    let stream = Stream::open(&admin, "", &[]);
    let url = format!("http://{origin}/hello");
    for how in ["forward", "connect", "socks5"] {
        let curl = held(&proxy, how, &url, None);
        let event = stream.next_named("approval", WAIT);
        let v = event.json();
        assert_eq!(v["state"], "pending", "{v}");
        let list = pending_when(&admin, "one approval", |l| l.len() == 1);
        let card = &list[0];
        assert_eq!(
            (
                card["host"].as_str(),
                card["port"].as_u64(),
                card["client"].as_str(),
                card["waiting"].as_u64(),
                card["identity"].as_str()
            ),
            (
                Some("127.0.0.1"),
                Some(u64::from(origin.port())),
                Some("127.0.0.1"),
                Some(1),
                Some("anonymous")
            ),
            "{card}"
        );
        assert!(card["expires_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        let id = card["id"].as_str().unwrap();
        let r = answer(&admin, id, r#"{"action":"allow-once"}"#);
        assert_eq!(r.status, 200, "{r:?}");
        let out = curl.output();
        assert!(out.contains("hello from origin"), "{how}: {out}");
        // Once is once: the answer is gone, and the event says who gave it.
        assert!(pending(&admin).is_empty());
        let answered = stream.next_named("approval", WAIT).json();
        assert_eq!(
            (
                answered["state"].as_str(),
                answered["action"].as_str(),
                answered["who"].as_str()
            ),
            (Some("answered"), Some("allow-once"), Some("admin")),
            "{answered}"
        );
    }
    // Asked again after "once"; a person's denial is approval-denied.
    let curl = held(&proxy, "forward", &url, None);
    let list = pending_when(&admin, "asked again", |l| l.len() == 1);
    let r = answer(
        &admin,
        list[0]["id"].as_str().unwrap(),
        r#"{"action":"deny-once"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let out = curl.output();
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(out.contains("X-Egress-Error: approval-denied"), "{out}");
}

#[test]
fn nobody_answering_is_a_timeout_and_allow_for_lasts() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let (proxy, admin) = ask_proxy("1s", "");
    let stream = Stream::open(&admin, "", &[]);
    let url = format!("http://{origin}/hello");
    let out = held(&proxy, "forward", &url, None).output();
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(out.contains("X-Egress-Error: approval-timeout"), "{out}");
    let states: Vec<String> = (0..2)
        .map(|_| {
            stream.next_named("approval", WAIT).json()["state"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(states, ["pending", "expired"]);
    assert!(pending(&admin).is_empty());
    // allow-for: the next requests of this client pass without asking.
    let curl = held(&proxy, "forward", &url, None);
    let list = pending_when(&admin, "asked", |l| l.len() == 1);
    let r = answer(
        &admin,
        list[0]["id"].as_str().unwrap(),
        r#"{"action":"allow-for","minutes":5}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(curl.output().contains("hello from origin"));
    for _ in 0..2 {
        let out = held(&proxy, "forward", &url, None).output();
        assert!(out.contains("hello from origin"), "{out}");
    }
    assert!(pending(&admin).is_empty());
}

#[test]
fn with_nobody_able_to_answer_the_request_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let viewer = super::support::write_file(dir.path(), "viewer", "viewer-token-0123456789\n");
    let tokens = format!(
        "  tokens:\n    alice: {{ role: viewer, token_file: {} }}\n",
        viewer.display()
    );
    let servers = Servers::new();
    let origin = servers.http_origin();
    let (proxy, admin) = ask_proxy("30s", &tokens);
    let url = format!("http://{origin}/hello");
    let unattended = |what: &str| {
        let started = std::time::Instant::now();
        let out = held(&proxy, "forward", &url, None).output();
        assert!(out.starts_with("HTTP/1.1 403"), "{what}: {out}");
        assert!(
            out.contains("X-Egress-Error: approval-unattended"),
            "{what}: {out}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: not at once"
        );
    };
    unattended("no stream");
    // A viewer watching cannot answer: still unattended.
    let as_viewer = Admin {
        addr: admin.addr,
        token: "viewer-token-0123456789".into(),
    };
    let viewing = Stream::open(&as_viewer, "", &[]);
    unattended("a viewer's stream");
    // An admin's stream makes it attended; closing it makes it unattended again.
    let watching = Stream::open(&admin, "", &[]);
    let curl = held(&proxy, "forward", &url, None);
    pending_when(&admin, "asked", |l| l.len() == 1);
    drop(curl);
    drop(watching);
    wait::until("the admin's stream closed", || {
        let out = held(&proxy, "forward", &url, None).output();
        out.contains("approval-unattended")
    });
    drop(viewing);
}

#[test]
fn deny_entries_and_private_addresses_are_never_asked() {
    let (proxy, admin) = ask_proxy("30s", "");
    let _stream = Stream::open(&admin, "", &[]);
    for (url, reason) in [
        ("http://blocked.example/", "blocked-by-denylist"),
        ("http://10.1.2.3/", "private-address"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "private-address",
        ),
        ("http://127.0.0.2:9/", "private-address"),
        ("http://[::1]:9/", "private-address"),
    ] {
        let out = held(&proxy, "forward", url, None).output();
        assert!(
            out.contains(&format!("X-Egress-Error: {reason}")),
            "{url}: {out}"
        );
    }
    assert!(pending(&admin).is_empty());
}

#[test]
fn always_allow_writes_the_policy_and_releases_every_waiting_client() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let (proxy, admin) = ask_proxy("30s", "");
    let stream = Stream::open(&admin, "", &[]);
    let url = format!("http://{origin}/hello");
    // Two clients (two source addresses) and a second connection of the first: two cards.
    let first = held(&proxy, "forward", &url, None);
    let second = held(&proxy, "socks5", &url, Some("127.0.0.2"));
    let third = held(&proxy, "forward", &url, None);
    let list = pending_when(&admin, "two cards, three waiting", |l| {
        l.len() == 2
            && l.iter()
                .map(|c| c["waiting"].as_u64().unwrap())
                .sum::<u64>()
                == 3
    });
    let clients: Vec<&str> = list.iter().map(|c| c["client"].as_str().unwrap()).collect();
    assert!(
        clients.contains(&"127.0.0.1") && clients.contains(&"127.0.0.2"),
        "{clients:?}"
    );
    let id = list[0]["id"].as_str().unwrap();
    let r = answer(&admin, id, r#"{"action":"allow-always","scope":"host"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    let entry = format!("127.0.0.1:{}", origin.port());
    assert_eq!(v["entry"], entry.as_str(), "{v}");
    assert_eq!(v["released"].as_array().unwrap().len(), 2, "{v}");
    for curl in [first, second, third] {
        let out = curl.output();
        assert!(out.contains("hello from origin"), "{out}");
    }
    let text = std::fs::read_to_string(proxy.policy_path()).unwrap();
    assert!(text.contains(&format!("\"{entry}\"")), "{text}");
    // Versioned (who, note) and on the stream with its diff.
    let history = get(&admin, "/api/v1/policy/history").json();
    assert_eq!(history[0]["who"], "admin", "{history}");
    assert!(history[0]["note"].as_str().unwrap().contains(&entry));
    let policy = stream.next_named("policy", WAIT).json();
    assert!(
        policy["diff"]
            .as_str()
            .unwrap()
            .contains(&format!("+allow: [\"localhost:1\", \"{entry}\"]")),
        "{policy}"
    );
    // Once reloaded, the same request passes without asking.
    proxy.wait_for_log("the reload", |v| message(v) == "policy reloaded");
    let out = held(&proxy, "forward", &url, None).output();
    assert!(out.contains("hello from origin"), "{out}");
    assert!(pending(&admin).is_empty());
}

#[test]
fn answers_are_checked_and_always_needs_the_admin_role() {
    let dir = tempfile::tempdir().unwrap();
    let approver =
        super::support::write_file(dir.path(), "approver", "approver-token-0123456789\n");
    let tokens = format!(
        "  tokens:\n    bot: {{ role: approver, token_file: {} }}\n",
        approver.display()
    );
    let servers = Servers::new();
    let origin = servers.http_origin();
    let (proxy, admin) = ask_proxy("30s", &tokens);
    let _stream = Stream::open(&admin, "", &[]);
    answer(&admin, "a999", r#"{"action":"allow-once"}"#).refused(404, "approval-not-found");
    let curl = held(&proxy, "forward", &format!("http://{origin}/hello"), None);
    let list = pending_when(&admin, "asked", |l| l.len() == 1);
    let id = list[0]["id"].as_str().unwrap();
    for (body, status, code) in [
        (r#"{"action":"allow-maybe"}"#, 422, "bad-action"),
        (r#"{"action":"allow-for"}"#, 422, "bad-minutes"),
        (r#"{"action":"allow-for","minutes":0}"#, 422, "bad-minutes"),
        (
            r#"{"action":"allow-for","minutes":100000}"#,
            422,
            "bad-minutes",
        ),
        (
            r#"{"action":"allow-always","scope":"planet"}"#,
            422,
            "bad-scope",
        ),
        (r#"{"action":"allow-once","extra":1}"#, 400, "bad-json"),
        ("nonsense", 400, "bad-json"),
    ] {
        answer(&admin, id, body).refused(status, code);
    }
    let bot = Admin {
        addr: admin.addr,
        token: "approver-token-0123456789".into(),
    };
    answer(&bot, id, r#"{"action":"allow-always"}"#).refused(403, "role-insufficient");
    assert_eq!(
        pending(&admin).len(),
        1,
        "a refused answer leaves the ask pending"
    );
    let r = answer(&bot, id, r#"{"action":"allow-once"}"#);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(curl.output().contains("hello from origin"));
}

#[test]
fn the_approvals_command_lists_and_answers_through_the_api() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let (proxy, admin) = ask_proxy("30s", "");
    let _stream = Stream::open(&admin, "", &[]);
    let cli = |args: &[&str], env_token: bool| {
        let mut command = Command::new(super::support::proxy_binary());
        // The file's admin.listen is port 0 here: the bound address is passed.
        command
            .args(["approvals", "--admin", &admin.addr.to_string(), "--config"])
            .arg(proxy.policy_path())
            .args(args);
        command.env_remove("EGRESS_ADMIN_TOKEN");
        if env_token {
            command.env("EGRESS_ADMIN_TOKEN", &admin.token);
        }
        let out = command.output().expect("egress-proxy");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = cli(&["list"], false);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "no pending approvals\n"),
        "{err}"
    );
    let curl = held(&proxy, "forward", &format!("http://{origin}/hello"), None);
    pending_when(&admin, "asked", |l| l.len() == 1);
    let (code, out, err) = cli(&["list"], true);
    assert_eq!(code, Some(0), "{err}");
    let line = out.lines().nth(1).expect("one approval");
    assert!(
        line.contains(&format!("127.0.0.1:{}", origin.port())),
        "{out}"
    );
    let id = line.split('\t').next().unwrap();
    let (code, _, err) = cli(&["allow", id], false);
    assert_eq!(code, Some(0), "{err}");
    assert!(curl.output().contains("hello from origin"));
    let (code, _, err) = cli(&["deny", id], false);
    assert_eq!(code, Some(1));
    assert!(err.contains("404 approval-not-found"), "{err}");
    // A wrong token is refused, and the token never appears in what the command prints.
    let mut command = Command::new(super::support::proxy_binary());
    let out = command
        .args(["approvals", "--admin", &admin.addr.to_string(), "list"])
        .env("EGRESS_ADMIN_TOKEN", "wrong-token-0123456789")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401 token-invalid") && !err.contains("wrong-token"),
        "{err}"
    );
}

#[test]
fn a_held_request_is_refused_when_shutdown_begins_not_held_through_the_drain() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let (mut proxy, admin) = ask_proxy("60s", "");
    let _stream = Stream::open(&admin, "", &[]);
    let curl = held(&proxy, "forward", &format!("http://{origin}/hello"), None);
    pending_when(&admin, "asked", |l| l.len() == 1);
    let started = std::time::Instant::now();
    proxy.signal("TERM");
    let out = curl.output();
    assert!(
        out.contains("X-Egress-Error: shutting-down"),
        "{out}\n{}",
        proxy.log_text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    proxy.wait_exit();
}
