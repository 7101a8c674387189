//! HTTP CONNECT and plain-HTTP forwarding through the real binary, with curl as the client.

mod support;

use support::origin::Servers;
use support::{assert_served, curl, header, message, Proxy};

fn tls_fixture() -> (Servers, tempfile::TempDir, support::origin::TlsOrigin) {
    let servers = Servers::new();
    let dir = tempfile::tempdir().unwrap();
    let origin = servers.tls_origin(dir.path());
    (servers, dir, origin)
}

#[test]
fn https_through_connect_reaches_an_allowed_origin() {
    let (_servers, _dir, origin) = tls_fixture();
    let port = origin.addr.port();
    let proxy = Proxy::start(&format!("allow: [\"localhost:{port}\"]\n"));
    let ca = origin.ca_path.to_str().unwrap();
    let r = curl(&[
        "-x",
        &proxy.url(),
        "--cacert",
        ca,
        &format!("https://localhost:{port}/hello"),
    ]);
    assert_served(&r);
    let event = proxy.wait_for_log("the allow decision", |v| message(v) == "decision");
    assert_eq!(event["decision"], "allow");
    assert_eq!(event["protocol"], "http-connect");
    assert_eq!(event["rule"], format!("localhost:{port}"));
}

/// curl's `-D -` prints the CONNECT response head too, so the reason header is visible.
fn denied_connect(policy: &str, url: &str, reason: &str) {
    let proxy = Proxy::start(policy);
    let r = curl(&["-x", &proxy.url(), "-D", "-", url]);
    assert_eq!(r.code, 56, "curl fails the CONNECT: {r:?}");
    let status = format!("HTTP/1.1 403 Forbidden by egress: {reason}\r\n");
    assert!(r.stdout.starts_with(&status), "{r:?}");
    assert_eq!(header(&r.stdout, "x-egress-error"), Some(reason), "{r:?}");
    let event = proxy.wait_for_log("the deny decision", |v| message(v) == "decision");
    assert_eq!(
        (event["decision"].as_str(), event["reason"].as_str()),
        (Some("deny"), Some(reason))
    );
}

#[test]
fn connect_to_a_denylisted_host_is_refused() {
    denied_connect(
        "allow: [\".example.com\"]\ndeny: [evil.example.com]\n",
        "https://EVIL.example.com./",
        "blocked-by-denylist",
    );
}

#[test]
fn connect_to_an_unlisted_host_is_refused() {
    denied_connect(
        "allow: [github.com]\n",
        "https://example.org/",
        "not-allowlisted",
    );
}

#[test]
fn connect_to_an_allowed_host_on_an_unnamed_port_is_refused() {
    denied_connect(
        "allow: [github.com]\n",
        "https://github.com:8443/",
        "port-not-allowed",
    );
}

#[test]
fn plain_http_is_forwarded_with_via_and_without_hop_by_hop_headers() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let port = origin.port();
    let proxy = Proxy::start(&format!("allow: [\"localhost:{port}\"]\n"));
    let r = curl(&[
        "-x",
        &proxy.url(),
        "--proxy-user",
        "agent:s3cret-token",
        "-H",
        "Connection: X-Drop-Me",
        "-H",
        "X-Drop-Me: 1",
        "-H",
        "X-Keep-Me: 2",
        &format!("http://localhost:{port}/headers"),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let seen = r.stdout.to_ascii_lowercase();
    assert!(
        seen.starts_with("get /headers\n"),
        "origin-form path sent: {seen}"
    );
    assert!(
        seen.contains(&format!("host: localhost:{port}\n")),
        "{seen}"
    );
    assert!(seen.contains("via: 1.1 egress\n"), "{seen}");
    assert!(seen.contains("x-keep-me: 2\n"), "{seen}");
    assert!(!seen.contains("x-drop-me"), "listed in Connection: {seen}");
    assert!(
        !seen.contains("proxy-authorization"),
        "proxy credentials leaked: {seen}"
    );
    assert!(
        !proxy.log_text().contains("s3cret-token"),
        "secret in the log"
    );
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&format!("allow: [\"localhost:{port}\"]\n"));
    let url = format!("http://localhost:{port}/hello");
    let r = curl(&["-v", "-x", &proxy.url(), &url, &url, &url]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "hello from origin\n".repeat(3));
    assert_eq!(
        r.stderr.matches("Re-using existing connection").count(),
        2,
        "{}",
        r.stderr
    );
    // Log lines are written off the connection's thread: wait for them rather than count a
    // snapshot taken while the writer may still be behind.
    proxy.wait_for_count("a forwarded line per request", 3, |v| {
        message(v) == "forwarded"
    });
}

#[test]
fn request_bodies_stream_with_length_and_chunked() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&format!("allow: [\"localhost:{port}\"]\n"));
    let dir = tempfile::tempdir().unwrap();
    let body: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let file = support::write_file(dir.path(), "body.txt", &body);
    let data = format!("@{}", file.display());
    let url = format!("http://localhost:{port}/echo");
    // Content-Length, with curl's automatic `Expect: 100-continue` for a large body.
    let r = curl(&["-x", &proxy.url(), "--data-binary", &data, &url]);
    assert_eq!((r.code, r.stdout.len()), (0, body.len()), "{}", r.stderr);
    assert!(r.stdout == body);
    let r = curl(&[
        "-x",
        &proxy.url(),
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &data,
        &url,
    ]);
    assert_eq!((r.code, r.stdout.len()), (0, body.len()), "{}", r.stderr);
    assert!(r.stdout == body);
}

#[test]
fn chunked_and_large_responses_arrive_whole() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&format!("allow: [\"localhost:{port}\"]\n"));
    let r = curl(&[
        "-x",
        &proxy.url(),
        &format!("http://localhost:{port}/chunked"),
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "first,second,third\n"),
        "{r:?}"
    );
    let r = curl(&[
        "-x",
        &proxy.url(),
        &format!("http://localhost:{port}/bytes/3000000"),
    ]);
    assert_eq!((r.code, r.stdout.len()), (0, 3_000_000), "{}", r.stderr);
}

#[test]
fn plain_http_to_a_denied_host_gets_403_with_the_reason() {
    let proxy = Proxy::start("allow: [github.com]\ndeny: [evil.example.com]\n");
    let r = curl(&[
        "-x",
        &proxy.url(),
        "-D",
        "-",
        "-o",
        "/dev/null",
        "http://evil.example.com/x",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .starts_with("HTTP/1.1 403 Forbidden by egress: blocked-by-denylist\r\n"),
        "{r:?}"
    );
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("blocked-by-denylist")
    );
    let r = curl(&["-x", &proxy.url(), "http://example.org/"]);
    assert!(
        r.stdout.contains("blocked example.org:80 via http-forward"),
        "{r:?}"
    );
    assert!(r.stdout.contains("not-allowlisted"), "{r:?}");
    assert!(r.stdout.contains("will not work"), "{r:?}");
}

#[test]
fn an_unreachable_destination_gets_502_with_the_reason() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = Proxy::start(&format!("allow: [\"localhost:{closed}\"]\n"));
    let r = curl(&[
        "-x",
        &proxy.url(),
        "-D",
        "-",
        &format!("http://localhost:{closed}/"),
    ]);
    assert!(
        r.stdout
            .starts_with("HTTP/1.1 502 Bad Gateway by egress: upstream-refused\r\n"),
        "{r:?}"
    );
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("upstream-refused")
    );
    let r = curl(&[
        "-x",
        &proxy.url(),
        "-D",
        "-",
        &format!("https://localhost:{closed}/"),
    ]);
    assert_eq!(r.code, 56, "{r:?}");
    assert!(
        r.stdout
            .starts_with("HTTP/1.1 502 Bad Gateway by egress: upstream-refused\r\n"),
        "{r:?}"
    );
}
