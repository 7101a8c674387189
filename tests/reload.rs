//! Hot reload: a changed file takes effect for new connections, an open tunnel keeps the rules it
//! started with, and a broken file is rejected while the old rules stay.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use support::origin::Servers;
use support::{assert_served, curl, header, message, Proxy, WAIT};

fn open_tunnel(proxy: std::net::SocketAddr, target: &str) -> TcpStream {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
    let expected = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let mut answer = vec![0u8; expected.len()];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(answer, expected);
    s
}

fn ping(tunnel: &mut TcpStream, text: &[u8]) {
    tunnel.write_all(text).unwrap();
    let mut back = vec![0u8; text.len()];
    tunnel.read_exact(&mut back).unwrap();
    assert_eq!(back, text);
}

#[test]
fn a_changed_file_applies_to_new_connections_and_open_tunnels_keep_theirs() {
    let servers = Servers::new();
    let echo = servers.echo();
    let target = format!("127.0.0.1:{}", echo.port());
    let proxy = Proxy::start(&format!("allow: [\"{target}\"]\n"));
    let mut tunnel = open_tunnel(proxy.addr, &target);
    ping(&mut tunnel, b"before");

    proxy.replace_policy(&format!("allow: [github.com]\ndeny: [\"{target}\"]\n"));
    let event = proxy.wait_for_log("the reload", |v| message(v) == "policy reloaded");
    assert_eq!(event["deny"], 1);

    let r = curl(&["-x", &proxy.url(), "-D", "-", &format!("http://{target}/")]);
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("blocked-by-denylist"),
        "{r:?}"
    );
    // The tunnel opened under the old rules still works.
    ping(&mut tunnel, b"after the reload");
}

#[test]
fn a_broken_file_is_rejected_and_the_old_rules_stay() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&format!("allow: [\"localhost:{port}\"]\n"));
    proxy.replace_policy("allow:\n  - \"*\"\n");
    let event = proxy.wait_for_log("the rejection", |v| message(v) == "policy reload rejected");
    let error = event["error"].as_str().unwrap();
    assert!(
        error.contains("policy.yaml:3:5"),
        "names line and column: {error}"
    );
    let r = curl(&[
        "-x",
        &proxy.url(),
        &format!("http://localhost:{port}/hello"),
    ]);
    assert_served(&r);
}

#[test]
fn sighup_reloads_even_an_unchanged_file() {
    let proxy = Proxy::start("allow: [github.com]\n");
    proxy.signal("HUP");
    let event = proxy.wait_for_log("the reload", |v| message(v) == "policy reloaded");
    assert_eq!(event["allow"], 1);
}
