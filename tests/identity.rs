//! Identities against the real binary and real clients: users made with `egress-proxy passwd`,
//! curl logging in over HTTP (`-U`), CONNECT (`-p -U`) and SOCKS5 (`socks5h://user:pass@`),
//! clients recognised by their source network, each identity under its own policy; the
//! identity on audit lines and metric labels; credentials never passed on; hostile logins.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::origin::Servers;
use support::squid::{Squid, SquidOptions};
use support::{assert_served, curl, header, message, proxy_binary, raw_exchange, Proxy};

const ALICE: &str = "alice:wonder-land-42";
const BOB: &str = "bob:b0b:with:colons";

/// Adds or changes `user` in `file` with `egress-proxy passwd`, the password on stdin.
fn passwd(file: &Path, user: &str, password: &str) -> (i32, String) {
    let mut child = Command::new(proxy_binary())
        .args(["passwd", file.to_str().unwrap(), user])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A users file with alice and bob.
fn users(dir: &Path) -> PathBuf {
    let file = dir.join("users.htpasswd");
    for login in [ALICE, BOB] {
        let (user, password) = login.split_once(':').unwrap();
        let (code, stderr) = passwd(&file, user, password);
        assert_eq!(code, 0, "{stderr}");
    }
    file
}

/// alice (group a) may reach origin `a`, bob (group b) origin `b`; everyone may reach `shared`.
fn team_policy(
    users: &Path,
    a: SocketAddr,
    b: SocketAddr,
    shared: SocketAddr,
    extra: &str,
) -> String {
    format!(
        "allow: [\"{shared}\"]\n\
         auth: {{users_file: {users}, required: true, realm: team-egress}}\n\
         identities:\n  alice: {{groups: [a]}}\n  bob: {{groups: [b]}}\n\
         groups:\n  a: {{allow: [\"{a}\"]}}\n  b: {{allow: [\"{b}\"]}}\n{extra}",
        users = users.display()
    )
}

#[test]
fn passwd_adds_and_changes_users_from_stdin_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = users(dir.path());
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("alice:$2y$12$") && lines[1].starts_with("bob:$2y$12$"));
    assert!(!text.contains("wonder"), "the password is hashed");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a new users file is private");
    // Changing a password replaces the line in place.
    let (code, stderr) = passwd(&file, "alice", "new-secret");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("changed user alice"), "{stderr}");
    let changed = std::fs::read_to_string(&file).unwrap();
    assert_eq!(changed.lines().count(), 2);
    assert_ne!(changed.lines().next(), Some(lines[0]));
    assert_eq!(changed.lines().nth(1), Some(lines[1]));
    // Refused: an empty password, a bad name, a reserved name; the file is untouched.
    for (user, password, why) in [
        ("carol", "", "empty"),
        ("bad name", "pw", "invalid identity name"),
        ("anonymous", "pw", "reserved"),
    ] {
        let (code, stderr) = passwd(&file, user, password);
        assert_eq!(code, 1, "{user}");
        assert!(stderr.contains(why), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), changed);
    // The password is never an argument: there is no way to give it one.
    let (code, _) = {
        let out = Command::new(proxy_binary())
            .args(["passwd", file.to_str().unwrap(), "carol", "pw"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), ())
    };
    assert_eq!(code, 2, "an extra argument is a usage error");
}

#[test]
fn each_login_gets_its_own_policy_over_http_connect_and_socks5() {
    let servers = Servers::new();
    let (a, b, shared) = (
        servers.http_origin(),
        servers.http_origin(),
        servers.http_origin(),
    );
    let dir = tempfile::tempdir().unwrap();
    let users = users(dir.path());
    let audit = dir.path().join("audit.jsonl");
    let extra = format!(
        "admin: 127.0.0.1:0\naudit: {{path: \"{}\"}}\n",
        audit.display()
    );
    let proxy = Proxy::start(&team_policy(&users, a, b, shared, &extra));
    let url = |addr: SocketAddr| format!("http://{addr}/hello");
    let via = proxy.url();

    // HTTP forwarding: each user reaches the base list and their group's, not the other's.
    assert_served(&curl(&["-x", &via, "-U", ALICE, &url(a)]));
    assert_served(&curl(&["-x", &via, "-U", ALICE, &url(shared)]));
    assert_served(&curl(&["-x", &via, "-U", BOB, &url(b)]));
    let refused = curl(&["-x", &via, "-U", ALICE, "-i", &url(b)]);
    assert!(refused.stdout.starts_with("HTTP/1.1 403"), "{refused:?}");
    // All origins are on 127.0.0.1: another user's origin is another port of an allowed host.
    assert_eq!(
        header(&refused.stdout, "X-Egress-Error"),
        Some("port-not-allowed")
    );

    // CONNECT tunnels (curl -p) log in on the CONNECT request.
    assert_served(&curl(&["-x", &via, "-p", "-U", ALICE, &url(a)]));
    let tunnel = curl(&["-x", &via, "-p", "-U", BOB, &url(a)]);
    assert_eq!(tunnel.code, 56, "{tunnel:?}");
    assert!(tunnel.stderr.contains("403"), "{tunnel:?}");

    // SOCKS5 with RFC 1929 user/password.
    let socks = |login: &str| format!("socks5h://{login}@{}", proxy.addr);
    assert_served(&curl(&["-x", &socks(ALICE), &url(a)]));
    assert_served(&curl(&["-x", &socks(BOB), &url(b)]));
    assert_ne!(curl(&["-x", &socks(BOB), &url(a)]).code, 0);

    // Audit lines name who asked.
    support::wait::until("the audit lines", || {
        std::fs::read_to_string(&audit).is_ok_and(|t| t.lines().count() >= 9)
    });
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let who = |decision: &str, port: u16| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["decision"] == decision && l["port"] == port)
            .map(|l| l["identity"].as_str().unwrap_or("-").to_string())
            .collect()
    };
    assert_eq!(who("allow", a.port()), ["alice", "alice", "alice"]);
    assert_eq!(who("allow", b.port()), ["bob", "bob"]);
    assert_eq!(who("deny", b.port()), ["alice"]);
    assert_eq!(who("deny", a.port()), ["bob", "bob"]);

    // Metrics: the identity label, only configured names.
    let metrics = curl(&["-sS", &format!("http://{}/metrics", proxy.admin_addr())]).stdout;
    let count = |needle: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("egress_decisions_total{") && l.contains(needle))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .sum()
    };
    assert_eq!(
        count(r#"decision="allow",reason="none",identity="alice""#),
        4
    );
    assert_eq!(count(r#"decision="allow",reason="none",identity="bob""#), 2);
    assert_eq!(
        count(r#"decision="deny",reason="port-not-allowed",identity="bob""#),
        2
    );
    assert!(
        metrics.contains(r#"egress_blocked_domains_total{domain="127.0.0.1",identity="alice"} 1"#),
        "{metrics}"
    );
}

#[test]
fn unrecognised_clients_must_log_in_and_wrong_logins_are_refused() {
    let servers = Servers::new();
    let a = servers.http_origin();
    let dir = tempfile::tempdir().unwrap();
    let users = users(dir.path());
    let proxy = Proxy::start(&team_policy(&users, a, a, a, ""));
    let url = format!("http://{a}/hello");
    let via = proxy.url();
    for (login, reason) in [
        (None, "auth-required"),
        (Some("alice:wrong"), "auth-failed"),
        (Some("mallory:wonder-land-42"), "auth-failed"),
        (Some("ALICE:wonder-land-42"), "auth-failed"),
    ] {
        for connect in [false, true] {
            let mut args = vec!["-x", via.as_str(), "-i", &url];
            if connect {
                args.push("-p");
            }
            if let Some(login) = login {
                args.extend(["-U", login]);
            }
            let answer = curl(&args);
            // CONNECT: curl prints the proxy's answer head with -i and fails.
            assert!(
                answer
                    .stdout
                    .contains("HTTP/1.1 407 Proxy Authentication Required by egress: ")
                    || answer.stderr.contains("407"),
                "{login:?} {connect}: {answer:?}"
            );
            if !connect {
                assert_eq!(header(&answer.stdout, "X-Egress-Error"), Some(reason));
                assert_eq!(
                    header(&answer.stdout, "Proxy-Authenticate"),
                    Some("Basic realm=\"team-egress\"")
                );
            }
        }
    }
    // curl's --proxy-anyauth answers the challenge with the login: a normal client flow.
    assert_served(&curl(&[
        "-x",
        &proxy.url(),
        "--proxy-anyauth",
        "-U",
        ALICE,
        &url,
    ]));

    // SOCKS5: a client offering no user/password method gets 0xFF; a wrong password status 1.
    let answer = raw_exchange(proxy.addr, &[5, 1, 0]);
    assert_eq!(answer, [5, 0xFF]);
    let mut wrong = vec![5, 1, 2, 1, 5];
    wrong.extend_from_slice(b"alice");
    wrong.push(5);
    wrong.extend_from_slice(b"wrong");
    assert_eq!(raw_exchange(proxy.addr, &wrong), [5, 2, 1, 1]);
    assert!(proxy.log_text().contains("auth-failed"));
    // Never a password in the logs.
    let logs = proxy.log_text();
    assert!(
        !logs.contains("wonder-land") && !logs.contains("wrong\""),
        "{logs}"
    );
    assert!(
        !logs.contains("mallory"),
        "an unknown user name is not logged"
    );
}

#[test]
fn clients_from_an_identity_network_need_no_login() {
    let servers = Servers::new();
    let (a, b, shared) = (
        servers.http_origin(),
        servers.http_origin(),
        servers.http_origin(),
    );
    let dir = tempfile::tempdir().unwrap();
    let users = users(dir.path());
    // Everything on loopback comes from 127.0.0.1 here, except what binds 127.0.0.2.
    let policy = team_policy(&users, a, b, shared, "").replace(
        "  bob: {groups: [b]}\n",
        "  bob: {groups: [b]}\n  runner: {networks: [127.0.0.2/32], groups: [b]}\n",
    );
    let proxy = Proxy::start(&policy);
    let url = |addr: SocketAddr| format!("http://{addr}/hello");
    let from_runner = |target: SocketAddr| {
        curl(&[
            "--interface",
            "127.0.0.2",
            "-x",
            &proxy.url(),
            "-i",
            &url(target),
        ])
    };
    assert!(
        from_runner(b).stdout.ends_with("hello from origin\n"),
        "{:?}",
        from_runner(b)
    );
    let refused = from_runner(a);
    assert!(refused.stdout.starts_with("HTTP/1.1 403"), "{refused:?}");
    // A login still wins over the network.
    assert_served(&curl(&[
        "--interface",
        "127.0.0.2",
        "-x",
        &proxy.url(),
        "-U",
        ALICE,
        &url(a),
    ]));
    // Elsewhere, no login: 407.
    let other = curl(&["-x", &proxy.url(), "-i", &url(b)]);
    assert!(other.stdout.starts_with("HTTP/1.1 407"), "{other:?}");
}

#[test]
fn clients_of_a_listener_with_an_identity_need_no_login_there() {
    let servers = Servers::new();
    let (a, b, shared) = (
        servers.http_origin(),
        servers.http_origin(),
        servers.http_origin(),
    );
    let dir = tempfile::tempdir().unwrap();
    let users = users(dir.path());
    // A second port for the build containers: they are `builder` (group b) without a password.
    let policy = team_policy(&users, a, b, shared, "").replace(
        "  bob: {groups: [b]}\n",
        "  bob: {groups: [b]}\n  builder: {groups: [b]}\n",
    );
    let proxy = Proxy::start_with(
        &format!(
            "listen:\n  - 127.0.0.1:0\n  - {{address: \"127.0.0.2:0\", identity: builder}}\n{policy}"
        ),
        &[],
    );
    proxy.wait_for_count("both listeners", 1, |v| message(v) == "listening");
    let builders: SocketAddr = proxy
        .logs()
        .iter()
        .filter(|v| message(v) == "listening")
        .nth(1)
        .expect("the second listener")["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let via = format!("http://{builders}");
    let url = |addr: SocketAddr| format!("http://{addr}/hello");
    assert_served(&curl(&["-x", &via, &url(b)]));
    assert_served(&curl(&[
        "-x",
        &via,
        "--socks5-hostname",
        &builders.to_string(),
        &url(b),
    ]));
    let refused = curl(&["-x", &via, "-i", &url(a)]);
    assert!(refused.stdout.starts_with("HTTP/1.1 403"), "{refused:?}");
    assert!(
        refused.stdout.contains("for identity builder"),
        "{refused:?}"
    );
    // A login still wins there; the other port still requires one.
    assert_served(&curl(&["-x", &via, "-U", ALICE, &url(a)]));
    let other = curl(&["-x", &proxy.url(), "-i", &url(b)]);
    assert!(other.stdout.starts_with("HTTP/1.1 407"), "{other:?}");
}

#[test]
fn credentials_reach_neither_the_destination_nor_the_parent() {
    const PARENT_USER: &str = "egress-parent";
    const PARENT_PASSWORD: &str = "parent-only-9371";
    let servers = Servers::new();
    let origin = servers.http_origin();
    let dir = tempfile::tempdir().unwrap();
    let users = users(dir.path());
    // Directly: the destination's view of the request's headers.
    let direct = Proxy::start(&team_policy(&users, origin, origin, origin, ""));
    let seen = curl(&[
        "-x",
        &direct.url(),
        "-U",
        ALICE,
        &format!("http://{origin}/headers"),
    ]);
    assert!(seen.stdout.starts_with("GET "), "{seen:?}");
    for secret in ["roxy-authorization", "alice", "d29uZGVy", "YWxpY2"] {
        assert!(
            !seen.stdout.to_lowercase().contains(&secret.to_lowercase()),
            "{secret}: {}",
            seen.stdout
        );
    }
    // Through a parent Squid: it sees egress's own user, never the client's.
    let squid = Squid::start(&SquidOptions {
        users: &[(PARENT_USER, PARENT_PASSWORD)],
        hosts: &[("allowed.test", "127.0.0.1")],
        ..SquidOptions::default()
    });
    let policy = format!(
        "listen: 127.0.0.1:0\nallow: [\"allowed.test:*\"]\n\
         auth: {{users_file: {}, required: true}}\n\
         upstreams:\n  corp:\n    url: http://{PARENT_USER}@{}\n    password_env: EGRESS_TEST_PARENT_PASSWORD\n\
         route:\n  default: corp\n",
        users.display(),
        squid.addr
    );
    let proxy = Proxy::start_with_env(
        &policy,
        &[],
        &[("EGRESS_TEST_PARENT_PASSWORD", PARENT_PASSWORD)],
    );
    let url = format!("http://allowed.test:{}/headers", origin.port());
    let forwarded = curl(&["-x", &proxy.url(), "-U", ALICE, &url]);
    assert!(forwarded.stdout.starts_with("GET "), "{forwarded:?}");
    assert!(
        !forwarded.stdout.to_lowercase().contains("authorization"),
        "{}",
        forwarded.stdout
    );
    assert_eq!(curl(&["-x", &proxy.url(), "-p", "-U", BOB, &url]).code, 0);
    let entries = squid.wait_for_entries(2);
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in entries {
        assert_eq!(entry.user, PARENT_USER, "{entry:?}");
    }
}

#[test]
fn hostile_logins_get_exact_answers_and_others_are_still_served() {
    let servers = Servers::new();
    let a = servers.http_origin();
    let dir = tempfile::tempdir().unwrap();
    let users = users(dir.path());
    let proxy = Proxy::start(&team_policy(&users, a, a, a, ""));
    let request = |auth: &str| -> String {
        let head = format!("GET http://{a}/hello HTTP/1.1\r\nHost: {a}\r\n{auth}\r\n");
        String::from_utf8_lossy(&raw_exchange(proxy.addr, head.as_bytes())).into_owned()
    };
    let long_user = format!("{}:x", "u".repeat(5000));
    let long_token = base64_encode(long_user.as_bytes());
    for auth in [
        "Proxy-Authorization: Basic\r\n".to_string(),
        "Proxy-Authorization: Basic not*base64\r\n".to_string(),
        "Proxy-Authorization: Basic YWxpY2U=\r\n".to_string(), // no colon
        format!(
            "Proxy-Authorization: Basic {}\r\nProxy-Authorization: Basic {}\r\n",
            base64_encode(ALICE.as_bytes()),
            base64_encode(ALICE.as_bytes())
        ),
        format!("Proxy-Authorization: Basic {long_token}\r\n"),
    ] {
        let answer = request(&auth);
        assert!(answer.starts_with("HTTP/1.1 407 "), "{auth:.60}: {answer}");
        assert_eq!(
            header(&answer, "X-Egress-Error"),
            Some("auth-failed"),
            "{auth:.60}"
        );
    }
    // A scheme other than Basic is no login: the client is asked for one.
    let answer = request("Proxy-Authorization: Negotiate YIIB\r\n");
    assert_eq!(
        header(&answer, "X-Egress-Error"),
        Some("auth-required"),
        "{answer}"
    );

    // RFC 1929 sub-negotiations: wrong version, truncated lengths.
    let socks = |bytes: &[u8]| raw_exchange(proxy.addr, bytes);
    assert_eq!(socks(&[5, 1, 2, 9, 1, b'a', 1, b'b']), [5, 2, 1, 1]);
    assert_eq!(socks(&[5, 1, 2, 1, 5, b'a']), [5, 2]);
    assert_eq!(socks(&[5, 1, 2, 1, 1, b'a', 200, b'b']), [5, 2]);

    // A guessing client: 40 wrong logins at once from 127.0.0.1. Its checks queue behind each
    // other with growing delays; a client from another address logs in meanwhile, quickly.
    let started = Instant::now();
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let addr = proxy.addr;
            std::thread::spawn(move || {
                let token = base64_encode(format!("alice:guess-{i}").as_bytes());
                let head = format!("GET http://{a}/hello HTTP/1.1\r\nHost: {a}\r\nProxy-Authorization: Basic {token}\r\n\r\n");
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                stream.write_all(head.as_bytes()).unwrap();
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
                answer
            })
        })
        .collect();
    support::wait::until("the guesser's first failures", || {
        proxy
            .logs()
            .iter()
            .filter(|v| message(v) == "proxy login failed")
            .count()
            >= 3
    });
    let honest = Instant::now();
    assert_served(&curl(&[
        "--interface",
        "127.0.0.2",
        "-x",
        &proxy.url(),
        "-U",
        BOB,
        &format!("http://{a}/hello"),
    ]));
    assert!(
        honest.elapsed() < Duration::from_secs(3),
        "the honest client waited {:?}",
        honest.elapsed()
    );
    let answered: Vec<Vec<u8>> = guesses.into_iter().map(|t| t.join().unwrap()).collect();
    let failed = answered
        .iter()
        .filter(|a| a.starts_with(b"HTTP/1.1 407"))
        .count();
    // Within 5 s the delays (50 ms doubling to 2 s) let only a handful of guesses be checked.
    assert!(
        (3..=12).contains(&failed),
        "{failed} guesses checked in {:?}",
        started.elapsed()
    );
    // And the proxy still serves (the guesser's queued checks hold only its own address).
    assert_served(&curl(&[
        "--interface",
        "127.0.0.3",
        "-x",
        &proxy.url(),
        "-U",
        BOB,
        &format!("http://{a}/hello"),
    ]));
}

#[test]
fn the_users_file_is_reloaded_with_the_policy_and_a_broken_one_keeps_the_old_users() {
    let servers = Servers::new();
    let a = servers.http_origin();
    let dir = tempfile::tempdir().unwrap();
    let users = users(dir.path());
    let proxy = Proxy::start(&team_policy(&users, a, a, a, ""));
    let url = format!("http://{a}/hello");
    assert_served(&curl(&["-x", &proxy.url(), "-U", ALICE, &url]));
    // A new password for alice, then SIGHUP.
    assert_eq!(passwd(&users, "alice", "second-pw").0, 0);
    proxy.signal("HUP");
    proxy.wait_for_log("the reload", |v| message(v) == "policy reloaded");
    assert_served(&curl(&["-x", &proxy.url(), "-U", "alice:second-pw", &url]));
    assert_ne!(curl(&["-x", &proxy.url(), "-U", ALICE, &url, "-f"]).code, 0);
    // A broken line: the reload is rejected with the line, and the users stay.
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str("carol:$apr1$weak$hash\n");
    std::fs::write(&users, text).unwrap();
    proxy.signal("HUP");
    let rejected = proxy.wait_for_log("the rejection", |v| message(v) == "policy reload rejected");
    let error = rejected.to_string();
    assert!(
        error.contains("users.htpasswd:3") && error.contains("unsupported hash"),
        "{error}"
    );
    assert_served(&curl(&["-x", &proxy.url(), "-U", "alice:second-pw", &url]));
}

#[test]
fn check_decides_for_one_identity() {
    let dir = tempfile::tempdir().unwrap();
    let users = users(dir.path());
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "allow: [base.example]\nauth: {{users_file: {}}}\n\
             identities:\n  alice: {{groups: [web]}}\n\
             groups:\n  web: {{allow: [.npmjs.org], deny: [bad.npmjs.org]}}\n",
            users.display()
        ),
    )
    .unwrap();
    let check = |args: &[&str]| {
        let out = Command::new(proxy_binary())
            .arg("check")
            .arg(&policy)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(
        check(&["--as", "alice", "registry.npmjs.org"]).1,
        "alice -> registry.npmjs.org:443: allow, rule \".npmjs.org\", mode enforce"
    );
    assert_eq!(
        check(&["--as", "alice", "bad.npmjs.org:443"]).1,
        "alice -> bad.npmjs.org:443: deny (blocked-by-denylist), rule \"bad.npmjs.org\", mode enforce"
    );
    assert_eq!(
        check(&["--as", "bob", "registry.npmjs.org"]).1,
        "bob -> registry.npmjs.org:443: deny (not-allowlisted), no rule matched, mode enforce"
    );
    assert_eq!(
        check(&["registry.npmjs.org"]).1,
        "anonymous -> registry.npmjs.org:443: deny (not-allowlisted), no rule matched, mode enforce"
    );
    let (code, _, stderr) = check(&["--as", "mallory", "x.example"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown identity \"mallory\" (configured: alice, bob)"),
        "{stderr}"
    );
    let (code, summary, _) = check(&[]);
    assert_eq!(code, 0);
    assert!(
        summary.contains("(2 users)") && summary.contains("identities: alice, bob"),
        "{summary}"
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn python_requests_and_git_log_in_with_credentials_in_the_proxy_url() {
    let servers = Servers::new();
    let (a, b) = (servers.http_origin(), servers.http_origin());
    let dir = tempfile::tempdir().unwrap();
    let users = users(dir.path());
    let audit = dir.path().join("audit.jsonl");
    let extra = format!("audit: {{path: \"{}\"}}\n", audit.display());
    let proxy = Proxy::start(&team_policy(&users, a, b, b, &extra));
    let with = |login: &str| format!("http://{login}@{}", proxy.addr);
    // Python requests: the proxy URL's credentials become Proxy-Authorization.
    let script = "import sys, requests\n\
                  r = requests.get(sys.argv[2], proxies={'http': sys.argv[1]}, timeout=20)\n\
                  print(r.status_code, r.headers.get('X-Egress-Error'), r.text.strip() if r.ok else '')\n";
    let python = |proxy_url: &str, url: &str| {
        let out = Command::new("/usr/bin/python3")
            .args(["-c", script, proxy_url, url])
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let hello = format!("http://{a}/hello");
    assert_eq!(python(&with(ALICE), &hello), "200 None hello from origin");
    assert_eq!(python(&with("alice:nope"), &hello), "407 auth-failed");
    // A password with colons, percent-encoded in the URL as it must be.
    assert_eq!(
        python(&with("bob:b0b%3Awith%3Acolons"), &hello),
        "403 port-not-allowed"
    );
    // git, with http.proxy credentials: its requests arrive as alice (the origin has no repository:
    // a 404 passed through is enough to see who asked).
    let git = Command::new("git")
        .args([
            "-c",
            &format!("http.proxy={}", with(ALICE)),
            "ls-remote",
            &format!("http://{a}/repo.git"),
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&git.stderr).contains("404")
            || String::from_utf8_lossy(&git.stderr).contains("not found"),
        "{git:?}"
    );
    support::wait::until("git's audit line", || {
        std::fs::read_to_string(&audit).is_ok_and(|t| t.lines().count() >= 5)
    });
    let text = std::fs::read_to_string(&audit).unwrap();
    let identities: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|l| {
            format!(
                "{}:{}",
                l["identity"].as_str().unwrap_or("-"),
                l["decision"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        identities,
        // git asks without credentials first (libcurl waits for the challenge), then as alice.
        ["alice:allow", "-:deny", "bob:deny", "-:deny", "alice:allow"],
        "{text}"
    );
}
