//! Malformed and hostile input: each gets its precise answer, within a bounded time, while a good
//! client keeps being served by the same proxy.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;

use support::origin::Servers;
use support::{assert_served, curl, header, raw_exchange, Proxy, WAIT};

/// Short timeouts so the slow-client cases answer quickly.
fn policy(port: u16) -> String {
    format!(
        "allow: [\"localhost:{port}\"]\n\
         timeouts: {{ request_head: 1s, handshake: 1s }}\n"
    )
}

/// What a case expects back.
enum Expect {
    /// An HTTP answer with this status line start and `X-Egress-Error`.
    Http(&'static str, &'static str),
    /// Exactly these bytes, then close.
    Bytes(&'static [u8]),
}

struct Case {
    name: &'static str,
    send: Vec<u8>,
    /// Keep the write side open (a client that stalls) instead of half-closing after sending.
    stall: bool,
    expect: Expect,
}

fn case(name: &'static str, send: &[u8], stall: bool, expect: Expect) -> Case {
    Case {
        name,
        send: send.to_vec(),
        stall,
        expect,
    }
}

fn cases(origin_port: u16) -> Vec<Case> {
    let mut huge = b"GET http://localhost/ HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 40_000));
    huge.extend_from_slice(b"\r\n\r\n");
    let mismatch =
        format!("GET http://localhost:{origin_port}/ HTTP/1.1\r\nHost: evil.example.com\r\n\r\n");
    let smuggle = format!(
        "POST http://localhost:{origin_port}/echo HTTP/1.1\r\nHost: localhost:{origin_port}\r\n\
         Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    use Expect::*;
    vec![
        case(
            "TLS bytes on the plain port",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            false,
            Http("HTTP/1.1 400", "bad-request"),
        ),
        case(
            "binary garbage",
            b"\x00\xff\xfe garbage\r\n\r\n",
            false,
            Http("HTTP/1.1 400", "bad-request"),
        ),
        case(
            "request line without version",
            b"GET /\r\n\r\n",
            false,
            Http("HTTP/1.1 400", "bad-request"),
        ),
        case(
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            false,
            Http("HTTP/1.1 400", "bad-request"),
        ),
        case(
            "oversized head",
            &huge,
            true,
            Http("HTTP/1.1 431", "header-too-large"),
        ),
        case(
            "origin-form request to the proxy",
            b"GET / HTTP/1.1\r\nHost: proxy\r\n\r\n",
            false,
            Http("HTTP/1.1 400", "not-a-proxy-request"),
        ),
        case(
            "CONNECT without a port",
            b"CONNECT example.com HTTP/1.1\r\n\r\n",
            false,
            Http("HTTP/1.1 400", "bad-request"),
        ),
        case(
            "CONNECT to a NUL host",
            b"CONNECT exa\x00mple.com:443 HTTP/1.1\r\n\r\n",
            false,
            Http("HTTP/1.1 400", "bad-request"),
        ),
        case(
            "Host header disagrees with the URL",
            mismatch.as_bytes(),
            false,
            Http("HTTP/1.1 400", "host-mismatch"),
        ),
        case(
            "Content-Length with Transfer-Encoding",
            smuggle.as_bytes(),
            false,
            Http("HTTP/1.1 400", "bad-request"),
        ),
        case(
            "silent client",
            b"",
            true,
            Http("HTTP/1.1 408", "request-timeout"),
        ),
        case(
            "half a request head, then silence",
            b"GET http://localhost/ HTTP/1.1\r\nHo",
            true,
            Http("HTTP/1.1 408", "request-timeout"),
        ),
        case(
            "SOCKS5 greeting with zero methods",
            b"\x05\x00",
            false,
            Bytes(b"\x05\xff"),
        ),
        case(
            "SOCKS5 offering only GSSAPI",
            b"\x05\x01\x01",
            false,
            Bytes(b"\x05\xff"),
        ),
        case(
            "SOCKS4 request",
            b"\x04\x01\x00\x50\x7f\x00\x00\x01user\x00",
            false,
            Bytes(b"\x00\x5b\x00\x00\x00\x00\x00\x00"),
        ),
        case(
            "SOCKS5 request with a wrong version",
            b"\x05\x01\x00\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x50",
            false,
            Bytes(b"\x05\x00\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00"),
        ),
        case(
            "truncated SOCKS5 greeting, then close",
            b"\x05\x02\x00",
            false,
            Bytes(b""),
        ),
        case(
            "truncated SOCKS5 request, then silence",
            b"\x05\x01\x00\x05\x01\x00\x03\x0bexample",
            true,
            Bytes(b"\x05\x00"),
        ),
        case(
            "SOCKS5 domain with a control character",
            b"\x05\x01\x00\x05\x01\x00\x03\x04a\x01bc\x01\xbb",
            false,
            Bytes(b"\x05\x00\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00"),
        ),
    ]
}

fn run_case(proxy: std::net::SocketAddr, case: &Case) -> Vec<u8> {
    if !case.stall {
        return raw_exchange(proxy, &case.send);
    }
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(&case.send).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let _ = stream.shutdown(Shutdown::Both);
    answer
}

#[test]
fn hostile_inputs_get_precise_answers_while_a_good_client_is_served() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&policy(port));
    let addr = proxy.addr;
    let url = format!("http://localhost:{port}/hello");
    let good = thread::spawn(move || {
        // Bounded: a fixed number of requests, each with curl's own time limit.
        (0..15)
            .map(|_| curl(&["-x", &format!("http://{addr}"), &url]))
            .collect::<Vec<_>>()
    });
    let handles: Vec<_> = cases(port)
        .into_iter()
        .map(|case| thread::spawn(move || (run_case(addr, &case), case)))
        .collect();
    let mut failures = Vec::new();
    for handle in handles {
        let (answer, case) = handle.join().unwrap();
        let text = String::from_utf8_lossy(&answer);
        let ok = match case.expect {
            Expect::Http(status, reason) => {
                text.starts_with(status) && header(&text, "x-egress-error") == Some(reason)
            }
            Expect::Bytes(bytes) => answer == bytes,
        };
        if !ok {
            failures.push(format!("{}: got {:?}", case.name, text));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    for r in good.join().unwrap() {
        assert_served(&r);
    }
}

#[test]
fn over_the_connection_cap_http_gets_503_and_socks5_gets_general_failure() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&format!(
        "{}limits: {{ max_connections: 2 }}\n",
        policy(port)
    ));
    // Two clients hold both permits: each has sent half a head (the server is waiting on them).
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(proxy.addr).unwrap();
            s.write_all(b"GET http://localhost/ HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    // The held connections are accepted in order; a third is over the cap.
    proxy.wait_for_count("both connections accepted", 2, |v| {
        support::message(v) == "accepted"
    });
    let answer = String::from_utf8(raw_exchange(
        proxy.addr,
        b"GET http://localhost/ HTTP/1.1\r\n\r\n",
    ))
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert_eq!(
        header(&answer, "x-egress-error"),
        Some("too-many-connections")
    );
    let socks = raw_exchange(
        proxy.addr,
        b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50",
    );
    assert_eq!(socks, b"\x05\x00\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00");
    held.clear();
}
