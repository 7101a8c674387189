//! Chaining to a corporate parent proxy, against a real Squid started by the harness (Basic auth
//! with an htpasswd file, a `dstdomain` denial, its own hosts file so it reaches the local
//! origins by name). Squid's access.log is the witness: what egress allows arrives there as
//! `CONNECT hostname:port` or an absolute-form request with egress's user; what egress denies
//! never appears there.

mod support;

use std::net::{SocketAddr, TcpListener};

use support::origin::Servers;
use support::squid::{Squid, SquidOptions};
use support::{assert_served, curl, header, message, Proxy};

const USER: &str = "egress";
const PASSWORD: &str = "parent-pa55-7731";
const PASSWORD_ENV: &str = "EGRESS_TEST_PARENT_PASSWORD";

/// Names Squid resolves from its hosts file to the local origins.
const HOSTS: &[(&str, &str)] = &[
    ("allowed.test", "127.0.0.1"),
    ("x.denied-by-squid.test", "127.0.0.1"),
    ("blocked.test", "127.0.0.1"),
];

fn squid() -> Squid {
    Squid::start(&SquidOptions {
        users: &[(USER, PASSWORD)],
        deny_domains: &[".denied-by-squid.test"],
        hosts: HOSTS,
        ..SquidOptions::default()
    })
}

/// egress with one parent `corp` at `parent`, allowed destinations routed through it unless
/// `allow_extra` (more allow entries) or `route_extra` (more `route:` keys) say otherwise.
fn egress_via(parent: SocketAddr, password: &str, allow_extra: &str, route_extra: &str) -> Proxy {
    let policy = format!(
        "listen: 127.0.0.1:0\n\
         allow: [\"allowed.test:*\", \"x.denied-by-squid.test:*\"{allow_extra}]\n\
         deny: [blocked.test]\n\
         upstreams:\n  corp:\n    url: http://{USER}@{parent}\n    password_env: {PASSWORD_ENV}\n\
         route:\n  default: corp\n{route_extra}"
    );
    Proxy::start_with_env(&policy, &[], &[(PASSWORD_ENV, password)])
}

#[test]
fn allowed_traffic_reaches_squid_by_name_with_egress_credentials() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let dir = tempfile::tempdir().unwrap();
    let tls = servers.tls_origin_for(dir.path(), &["allowed.test"]);
    let squid = squid();
    let egress = egress_via(squid.addr, PASSWORD, "", "");

    // Plain HTTP: an absolute-form request at the parent.
    let url = format!("http://allowed.test:{port}/hello");
    assert_served(&curl(&["-x", &egress.url(), &url]));
    // A CONNECT tunnel (curl -p), an HTTPS request, and a SOCKS5 client: CONNECT by name.
    assert_served(&curl(&["-p", "-x", &egress.url(), &url]));
    let https = format!("https://allowed.test:{}/hello", tls.addr.port());
    let ca = tls.ca_path.to_str().unwrap();
    assert_served(&curl(&["-x", &egress.url(), "--cacert", ca, &https]));
    assert_served(&curl(&[
        "--socks5-hostname",
        &egress.addr.to_string(),
        &url,
    ]));

    let log = squid.wait_for_entries(4);
    let seen: Vec<(&str, &str, &str, u16)> = log
        .iter()
        .map(|e| (e.method.as_str(), e.url.as_str(), e.user.as_str(), e.status))
        .collect();
    let tunnel = format!("allowed.test:{port}");
    let tls_tunnel = format!("allowed.test:{}", tls.addr.port());
    assert_eq!(
        seen,
        [
            ("GET", url.as_str(), USER, 200),
            ("CONNECT", tunnel.as_str(), USER, 200),
            ("CONNECT", tls_tunnel.as_str(), USER, 200),
            ("CONNECT", tunnel.as_str(), USER, 200),
        ]
    );
    assert!(
        !egress.log_text().contains(PASSWORD),
        "the parent's password is in egress's log"
    );
}

#[test]
fn what_egress_denies_never_reaches_squid_and_squids_denial_reaches_the_client() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let squid = squid();
    let egress = egress_via(squid.addr, PASSWORD, "", "");

    let blocked = format!("http://blocked.test:{port}/");
    assert_refused_both_ways(&egress, &blocked, Some(403), "blocked-by-denylist");
    // Squid's own refusal: 403 upstream-denied, Squid's error name passed on.
    let url = format!("http://x.denied-by-squid.test:{port}/");
    let r = curl(&["-x", &egress.url(), "-s", "-D", "-", &url]);
    assert!(r.stdout.starts_with("HTTP/1.1 403 "), "{r:?}");
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("upstream-denied"),
        "{r:?}"
    );
    let squid_error = header(&r.stdout, "x-squid-error").unwrap_or_default();
    assert!(squid_error.starts_with("ERR_ACCESS_DENIED"), "{r:?}");
    // The same through a tunnel: curl reports the proxy's CONNECT answer.
    let r = curl(&["-p", "-x", &egress.url(), "-s", "-D", "-", &url]);
    assert!(r.stdout.starts_with("HTTP/1.1 403 "), "{r:?}");
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("upstream-denied"),
        "{r:?}"
    );

    let log = squid.wait_for_entries(2);
    assert!(
        log.iter().all(|e| !e.url.contains("blocked.test")),
        "{log:?}"
    );
    assert!(
        log.iter().all(|e| e.status == 403 && e.user == USER),
        "{log:?}"
    );
    let refusal = egress.wait_for_log("the refusal", |v| v["reason"] == "upstream-denied");
    assert!(
        refusal.to_string().contains("ERR_ACCESS_DENIED"),
        "{refusal}"
    );
}

#[test]
fn a_wrong_parent_password_is_502_upstream_auth_failed() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let squid = squid();
    let egress = egress_via(squid.addr, "not-the-password", "", "");
    let url = format!("http://allowed.test:{port}/hello");
    assert_refused_both_ways(&egress, &url, Some(502), "upstream-auth-failed");
    let r = curl(&["--socks5-hostname", &egress.addr.to_string(), &url]);
    assert_eq!(r.code, 97, "SOCKS5 general failure: {r:?}");
    assert!(r.stderr.contains("(1)"), "{r:?}");
    assert!(!egress.log_text().contains("not-the-password"));
}

/// A loopback port with nothing listening (bound once to pick it, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_dead_first_parent_fails_over_and_comes_back_when_it_answers() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let backup = squid();
    let first_port = free_port();
    let policy = format!(
        "listen: 127.0.0.1:0\n\
         allow: [\"allowed.test:*\"]\n\
         upstreams:\n\
         \x20 first:\n    url: http://{USER}@127.0.0.1:{first_port}\n    password_env: {PASSWORD_ENV}\n    fallback: [backup]\n    health_check: 500ms\n\
         \x20 backup:\n    url: http://{USER}@{backup}\n    password_env: {PASSWORD_ENV}\n\
         route:\n  default: first\n",
        backup = backup.addr,
    );
    let egress = Proxy::start_with_env(&policy, &[], &[(PASSWORD_ENV, PASSWORD)]);
    let url = format!("http://allowed.test:{port}/hello");
    for args in [vec![], vec!["-p"]] {
        assert_served(&curl(&[&args[..], &["-x", &egress.url(), &url]].concat()));
    }
    let down = egress.wait_for_log("first marked down", |v| {
        message(v) == "upstream down" && v["upstream"] == "first"
    });
    assert!(!down.to_string().contains(PASSWORD), "{down}");
    assert_eq!(backup.wait_for_entries(2).len(), 2);

    // The first parent comes alive on its port: the probe brings it back, and it gets traffic.
    let first = Squid::start(&SquidOptions {
        users: &[(USER, PASSWORD)],
        hosts: HOSTS,
        port: Some(first_port),
        ..SquidOptions::default()
    });
    egress.wait_for_log("first back up", |v| {
        message(v) == "upstream up" && v["upstream"] == "first"
    });
    assert_served(&curl(&["-x", &egress.url(), &url]));
    let entries = first.wait_for_entries(1);
    assert_eq!(
        (entries[0].method.as_str(), entries[0].url.as_str()),
        ("GET", url.as_str())
    );
    assert_eq!(backup.access_log().len(), 2, "the backup got nothing more");
}

#[test]
fn every_parent_down_is_502_upstream_unreachable_not_a_hang() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let dead = free_port();
    let direct = ", { host: \"127.0.0.1:*\", via: direct }";
    let egress = egress_via(
        format!("127.0.0.1:{dead}").parse().unwrap(),
        PASSWORD,
        direct,
        "",
    );
    let url = format!("http://allowed.test:{port}/hello");
    assert_refused_both_ways(&egress, &url, Some(502), "upstream-unreachable");
    let r = curl(&[
        "--socks5-hostname",
        &egress.addr.to_string(),
        "--max-time",
        "20",
        &url,
    ]);
    assert_eq!(r.code, 97, "{r:?}");
    assert!(
        r.stderr.contains("(3)"),
        "SOCKS5 network unreachable: {r:?}"
    );
    // And egress still serves a direct route.
    assert_served(&curl(&[
        "-x",
        &egress.url(),
        "--max-time",
        "20",
        &format!("http://127.0.0.1:{port}/hello"),
    ]));
}

#[test]
fn direct_routes_and_per_entry_routes_bypass_the_parent() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let squid = squid();
    let egress = egress_via(
        squid.addr,
        PASSWORD,
        ", { host: \"127.0.0.1:*\", via: direct }, \"localhost:*\"",
        "  direct: [localhost]\n",
    );
    // An entry's own `via: direct`, and a `route.direct` entry: both dialed by egress itself.
    assert_served(&curl(&[
        "-x",
        &egress.url(),
        &format!("http://127.0.0.1:{port}/hello"),
    ]));
    assert_served(&curl(&[
        "-p",
        "-x",
        &egress.url(),
        &format!("http://localhost:{port}/hello"),
    ]));
    // The default route still goes through Squid.
    let url = format!("http://allowed.test:{port}/hello");
    assert_served(&curl(&["-x", &egress.url(), &url]));
    let log = squid.wait_for_entries(1);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].url, url);
}

#[test]
fn the_claude_code_example_serves_http_and_socks5_on_one_port_through_squid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/claude-code");
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("settings.json")).unwrap())
            .unwrap();
    let network = &settings["sandbox"]["network"];
    assert_eq!(settings["sandbox"]["enabled"], true);
    assert_eq!(
        network["httpProxyPort"], network["socksProxyPort"],
        "one mixed port serves both"
    );
    let example = std::fs::read_to_string(root.join("policy.yaml")).unwrap();
    assert!(
        example.contains(&format!("listen: 127.0.0.1:{}", network["httpProxyPort"])),
        "{example}"
    );

    // The example as written, but on an ephemeral port, with the test's Squid as the parent and
    // the test's origin allowed.
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let squid = Squid::start(&SquidOptions {
        users: &[("claude-code", PASSWORD)],
        hosts: HOSTS,
        ..SquidOptions::default()
    });
    let policy = example
        .replace("listen: 127.0.0.1:3128", "listen: 127.0.0.1:0")
        .replace("squid.corp.example:3128", &squid.addr.to_string())
        .replace("allow:\n", "allow:\n  - \"allowed.test:*\"\n");
    let egress = Proxy::start_with_env(&policy, &[], &[("CORP_PROXY_PASSWORD", PASSWORD)]);
    let url = format!("http://allowed.test:{port}/hello");
    // What Claude Code's sandbox sets: HTTP(S)_PROXY to the HTTP port, ALL_PROXY to the SOCKS one.
    assert_served(&curl(&[
        "-x",
        &format!("http://localhost:{}", egress.addr.port()),
        &url,
    ]));
    assert_served(&curl(&[
        "-x",
        &format!("socks5h://localhost:{}", egress.addr.port()),
        &url,
    ]));
    let r = curl(&["-x", &egress.url(), "-s", "-D", "-", "http://example.org/"]);
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("not-allowlisted"),
        "{r:?}"
    );
    let log = squid.wait_for_entries(2);
    let tunnel = format!("allowed.test:{port}");
    assert_eq!(
        log.iter()
            .map(|e| (e.method.as_str(), e.url.as_str(), e.user.as_str()))
            .collect::<Vec<_>>(),
        [
            ("GET", url.as_str(), "claude-code"),
            ("CONNECT", tunnel.as_str(), "claude-code")
        ]
    );
}

#[test]
fn a_parent_that_never_answers_is_504_upstream_timeout() {
    // Accepts and holds every connection without a word, like a wedged proxy.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let parent = hung.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hung.incoming().flatten() {
            held.push(stream);
        }
    });
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let egress = egress_via(parent, PASSWORD, "", "timeouts: { dial: 1s, idle: 1s }\n");
    let url = format!("http://allowed.test:{port}/hello");
    assert_refused_both_ways(&egress, &url, Some(504), "upstream-timeout");
}

/// Asks through `egress` for `url` as plain HTTP and as a CONNECT tunnel (curl -p), and checks
/// the status (when given) and the `X-Egress-Error` reason of both answers.
fn assert_refused_both_ways(egress: &Proxy, url: &str, status: Option<u16>, reason: &str) {
    for args in [vec![], vec!["-p"]] {
        let r = curl(
            &[
                &args[..],
                &[
                    "-x",
                    &egress.url(),
                    "-s",
                    "-D",
                    "-",
                    "--max-time",
                    "20",
                    url,
                ],
            ]
            .concat(),
        );
        if let Some(status) = status {
            assert!(
                r.stdout.starts_with(&format!("HTTP/1.1 {status} ")),
                "{r:?}"
            );
        }
        assert_eq!(header(&r.stdout, "x-egress-error"), Some(reason), "{r:?}");
    }
}

/// One GET on a kept-alive client connection; the body, read by its Content-Length.
fn get_kept_alive(reader: &mut std::io::BufReader<std::net::TcpStream>, url: &str) -> String {
    use std::io::{BufRead, Read, Write};
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    reader
        .get_mut()
        .write_all(format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the proxy closed");
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

/// A client that keeps its proxy connection open across a parent's death and return: its
/// requests move to the fallback when the first parent dies, and back to the first parent once
/// it answers again, on the same client connection.
#[test]
fn kept_alive_clients_fail_over_and_move_back_to_the_first_parent() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let backup = squid();
    let first_port = free_port();
    let start_first = || {
        Squid::start(&SquidOptions {
            users: &[(USER, PASSWORD)],
            hosts: HOSTS,
            port: Some(first_port),
            ..SquidOptions::default()
        })
    };
    let first = start_first();
    let policy = format!(
        "listen: 127.0.0.1:0\n\
         allow: [\"allowed.test:*\"]\n\
         upstreams:\n\
         \x20 first:\n    url: http://{USER}@127.0.0.1:{first_port}\n    password_env: {PASSWORD_ENV}\n    fallback: [backup]\n    health_check: 300ms\n\
         \x20 backup:\n    url: http://{USER}@{backup}\n    password_env: {PASSWORD_ENV}\n\
         route:\n  default: first\n",
        backup = backup.addr,
    );
    let egress = Proxy::start_with_env(&policy, &[], &[(PASSWORD_ENV, PASSWORD)]);
    let url = format!("http://allowed.test:{port}/hello");
    let stream = std::net::TcpStream::connect(egress.addr).unwrap();
    stream.set_read_timeout(Some(support::WAIT)).unwrap();
    let mut client = std::io::BufReader::new(stream);

    assert_eq!(get_kept_alive(&mut client, &url), "hello from origin\n");
    assert_eq!(first.wait_for_entries(1).len(), 1);
    drop(first);
    assert_eq!(get_kept_alive(&mut client, &url), "hello from origin\n");
    assert_eq!(
        backup.wait_for_entries(1).len(),
        1,
        "served by the fallback"
    );

    let first = start_first();
    egress.wait_for_log("first back up", |v| {
        message(v) == "upstream up" && v["upstream"] == "first"
    });
    assert_eq!(get_kept_alive(&mut client, &url), "hello from origin\n");
    assert_eq!(
        first.wait_for_entries(1).len(),
        1,
        "back on the first parent"
    );
    assert_eq!(
        backup.access_log().len(),
        1,
        "the fallback got nothing more"
    );
}
