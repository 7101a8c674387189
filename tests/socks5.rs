//! SOCKS5 through the real binary: curl with `--socks5-hostname` and `--socks5`, and raw clients
//! for the message shapes curl never sends.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use support::origin::Servers;
use support::{assert_served, curl, message, Proxy, WAIT};

#[test]
fn socks5_hostname_reaches_an_allowed_tls_origin() {
    let servers = Servers::new();
    let dir = tempfile::tempdir().unwrap();
    let origin = servers.tls_origin(dir.path());
    let port = origin.addr.port();
    let proxy = Proxy::start(&format!("allow: [\"localhost:{port}\"]\n"));
    let r = curl(&[
        "--socks5-hostname",
        &proxy.addr.to_string(),
        "--cacert",
        origin.ca_path.to_str().unwrap(),
        &format!("https://localhost:{port}/hello"),
    ]);
    assert_served(&r);
    let event = proxy.wait_for_log("the decision", |v| message(v) == "decision");
    assert_eq!(
        (event["protocol"].as_str(), event["decision"].as_str()),
        (Some("socks5"), Some("allow"))
    );
}

#[test]
fn socks5_with_an_ip_address_and_password_auth() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&format!("allow: [\"127.0.0.1:{port}\"]\n"));
    let r = curl(&[
        "-x",
        &format!("socks5://agent:pa55word-xyz@{}", proxy.addr),
        &format!("http://127.0.0.1:{port}/hello"),
    ]);
    assert_served(&r);
    assert!(
        !proxy.log_text().contains("pa55word-xyz"),
        "password in the log"
    );
}

#[test]
fn socks5_to_a_denied_host_gets_not_allowed() {
    let proxy = Proxy::start("allow: [github.com]\n");
    let r = curl(&[
        "--socks5-hostname",
        &proxy.addr.to_string(),
        "https://example.org/",
    ]);
    assert_eq!(r.code, 97, "curl reports a SOCKS failure: {r:?}");
    // curl prints the reply code: 2 is "connection not allowed by ruleset".
    assert!(r.stderr.contains("connection to example.org. (2)"), "{r:?}");
    let event = proxy.wait_for_log("the deny decision", |v| message(v) == "decision");
    assert_eq!(event["reason"], "not-allowlisted");
    // The same on the wire, byte for byte.
    assert_eq!(
        socks_connect_domain(proxy.addr, "example.org", 443)[1],
        0x02
    );
}

/// Greeting (no-auth), then CONNECT to `name:port`; returns the request's reply.
fn socks_connect_domain(proxy: SocketAddr, name: &str, port: u16) -> Vec<u8> {
    let mut request = vec![5, 1, 0, 3, name.len() as u8];
    request.extend_from_slice(name.as_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    socks_request(proxy, &request)
}

fn socks_request(proxy: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&[5, 1, 0]).unwrap();
    let mut method = [0u8; 2];
    s.read_exact(&mut method).unwrap();
    assert_eq!(method, [5, 0]);
    s.write_all(request).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    reply
}

#[test]
fn ipv6_address_type_is_normalised_and_tunnels_work() {
    let servers = Servers::new();
    let echo = servers.echo();
    let proxy = Proxy::start(&format!("allow: [\"127.0.0.1:{}\"]\n", echo.port()));
    // ::ffff:127.0.0.1 is 127.0.0.1 to the policy.
    let mut request = vec![5, 1, 0, 4];
    request.extend_from_slice(
        &"::ffff:127.0.0.1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    request.extend_from_slice(&echo.port().to_be_bytes());
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&[5, 1, 0]).unwrap();
    let mut method = [0u8; 2];
    s.read_exact(&mut method).unwrap();
    s.write_all(&request).unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(
        &reply[..4],
        &[5, 0, 0, 1],
        "succeeded with an IPv4 bound address"
    );
    s.write_all(b"ping through socks").unwrap();
    let mut echoed = [0u8; 18];
    s.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ping through socks");
}

#[test]
fn bind_udp_and_unknown_address_types_get_their_codes() {
    let proxy = Proxy::start("allow: [github.com]\n");
    let bind = socks_request(proxy.addr, &[5, 2, 0, 1, 127, 0, 0, 1, 0, 80]);
    assert_eq!(&bind[..2], &[5, 0x07]);
    let udp = socks_request(proxy.addr, &[5, 3, 0, 1, 127, 0, 0, 1, 0, 80]);
    assert_eq!(&udp[..2], &[5, 0x07]);
    let atyp = socks_request(proxy.addr, &[5, 1, 0, 9, 127, 0, 0, 1, 0, 80]);
    assert_eq!(&atyp[..2], &[5, 0x08]);
}

#[test]
fn a_refused_destination_gets_connection_refused() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = Proxy::start(&format!("allow: [\"127.0.0.1:{closed}\"]\n"));
    let mut request = vec![5, 1, 0, 1, 127, 0, 0, 1];
    request.extend_from_slice(&closed.to_be_bytes());
    assert_eq!(&socks_request(proxy.addr, &request)[..2], &[5, 0x05]);
}
