//! The hostile suite for the first-bytes check of tunnels (issue 12): a stream that starts like
//! TLS is TLS until its ClientHello, on every port. Records of any type put before the hello
//! (alert, change_cipher_spec, empty records, application data, heartbeat), an SSLv2-format
//! hello, and a hello in 196 KB of 1-byte records, each through CONNECT and SOCKS5, to a port in
//! `tls.ports` (checked before dialing) and to one outside it (dialed first, bytes held back).
//!
//! The destination is a real TLS server (rustls) that reports every connection: for each refusal
//! it must never have been dialed (TLS port), or have received no byte and completed no
//! handshake (other ports); the honest client is served the same ways.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};

use serde_json::Value;
use support::dns::DnsServer;
use support::squid::{Squid, SquidOptions};
use support::tls_witness::{tls_through, Attempt, TlsWitness, Visit};
use support::{message, Proxy, WAIT};

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";
/// What rustls reports for the proxy's access_denied alert.
const ACCESS_DENIED: &str = "received fatal alert: AccessDenied";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Connect,
    Socks5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// Listed in `tls.ports`: the hello is judged before the destination is dialed.
    Tls,
    /// Not listed: the destination is dialed first, the client's bytes held until judged.
    Other,
}

const EVERY_WAY: [(Via, Port); 4] = [
    (Via::Connect, Port::Tls),
    (Via::Connect, Port::Other),
    (Via::Socks5, Port::Tls),
    (Via::Socks5, Port::Other),
];

/// The proxy, its DNS and one TLS destination per kind of port, all serving the same names.
struct World {
    _dns: DnsServer,
    proxy: Proxy,
    tls: TlsWitness,
    other: TlsWitness,
}

impl World {
    fn start() -> World {
        Self::start_with("")
    }

    /// With a parent proxy: every tunnel is opened through it, and its first bytes are held
    /// back by egress as on a direct one.
    fn start_via(parent: &Squid) -> World {
        Self::start_with(&format!(
            "upstreams: {{ corp: {{ url: \"http://{}\" }} }}\nroute: {{ default: corp }}\n",
            parent.addr
        ))
    }

    fn start_with(extra: &str) -> World {
        let names = ["allowed.test", "evil.test", "127.0.0.1"];
        let tls = TlsWitness::start(&names);
        let other = TlsWitness::start(&names);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let dns = DnsServer::start(&[("allowed.test", &[loopback]), ("evil.test", &[loopback])]);
        // evil.test is not allowed: a hello naming it into an allowed.test tunnel is fronting.
        let proxy = Proxy::start(&format!(
            "allow: [\"allowed.test:*\", \"127.0.0.1:*\"]\n\
             dns: {{ nameservers: [\"{dns}\"], timeout: 3s }}\n\
             address_guard: {{ allow_networks: [127.0.0.1/32] }}\n\
             tls: {{ ports: [{tls_port}] }}\n\
             timeouts: {{ request_head: 10s, dial: 5s }}\n{extra}",
            dns = dns.addr,
            tls_port = tls.port(),
        ));
        World {
            _dns: dns,
            proxy,
            tls,
            other,
        }
    }

    fn witness(&self, port: Port) -> &TlsWitness {
        match port {
            Port::Tls => &self.tls,
            Port::Other => &self.other,
        }
    }

    /// A tunnel to `host` on the witness for `port`, opened and answered as a success.
    fn tunnel(&self, via: Via, host: &str, port: Port) -> TcpStream {
        let port = self.witness(port).port();
        let mut s = TcpStream::connect(self.proxy.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        match via {
            Via::Connect => {
                let target = format!("{host}:{port}");
                s.write_all(
                    format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
                )
                .unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    s.read_exact(&mut byte).expect("the CONNECT answer");
                    head.push(byte[0]);
                }
                assert_eq!(head, ESTABLISHED, "{}", String::from_utf8_lossy(&head));
            }
            Via::Socks5 => {
                s.write_all(&[5, 1, 0]).unwrap();
                let mut choice = [0u8; 2];
                s.read_exact(&mut choice).unwrap();
                assert_eq!(choice, [5, 0]);
                let mut request = vec![5, 1, 0];
                match host.parse::<IpAddr>() {
                    Ok(IpAddr::V4(v4)) => {
                        request.push(1);
                        request.extend_from_slice(&v4.octets());
                    }
                    _ => {
                        request.extend_from_slice(&[3, host.len() as u8]);
                        request.extend_from_slice(host.as_bytes());
                    }
                }
                request.extend_from_slice(&port.to_be_bytes());
                s.write_all(&request).unwrap();
                let mut reply = [0u8; 10];
                s.read_exact(&mut reply).expect("the SOCKS5 reply");
                assert_eq!(reply[..2], [5, 0], "SOCKS5 success: {reply:?}");
            }
        }
        s
    }

    /// A TLS client for `server_name` through a tunnel to `host`, its hello shaped by `shape`.
    fn attempt(
        &self,
        via: Via,
        port: Port,
        host: &str,
        server_name: &str,
        shape: impl FnOnce(&[u8]) -> Vec<Vec<u8>>,
    ) -> Attempt {
        let stream = self.tunnel(via, host, port);
        tls_through(stream, &self.witness(port).cert, server_name, shape)
    }

    /// The proxy's log line for the next refused tunnel.
    fn next_refusal(&self) -> Value {
        self.proxy
            .wait_for_log("a refused tunnel", |v| message(v) == "tunnel refused")
    }

    /// A refused attempt reached nothing: on another port the destination was dialed but got no
    /// byte and completed no handshake. (A TLS port's witness is checked by count at the end.)
    fn assert_untouched(&self, port: Port, what: &str) {
        if port == Port::Other {
            let visit = self.other.next_visit();
            assert_eq!(
                visit,
                Visit {
                    received: 0,
                    handshake: None
                },
                "{what}: bytes reached the destination"
            );
        }
    }

    /// A served attempt reached the destination, which saw a handshake for `name`.
    fn assert_served(&self, port: Port, name: Option<&str>, what: &str) {
        let visit = self.witness(port).next_visit();
        assert_eq!(
            visit.handshake,
            Some(name.map(str::to_owned)),
            "{what}: {visit:?}"
        );
    }
}

/// The bytes before the hello, then the hello, in one write.
fn after(prefix: &'static [u8]) -> impl FnOnce(&[u8]) -> Vec<Vec<u8>> {
    move |hello| vec![[prefix, hello].concat()]
}

/// The bytes before the hello one per segment, then the hello.
fn after_byte_by_byte(prefix: &'static [u8]) -> impl FnOnce(&[u8]) -> Vec<Vec<u8>> {
    move |hello| {
        let mut writes: Vec<Vec<u8>> = prefix.iter().map(|b| vec![*b]).collect();
        writes.push(hello.to_vec());
        writes
    }
}

/// The hello as it is.
fn plain(hello: &[u8]) -> Vec<Vec<u8>> {
    vec![hello.to_vec()]
}

/// The hello's handshake bytes cut again into records of `size` bytes, one segment each.
fn recut(size: usize) -> impl FnOnce(&[u8]) -> Vec<Vec<u8>> {
    move |mut records| {
        let mut message = Vec::new();
        while !records.is_empty() {
            assert_eq!(records[0], 0x16, "rustls wrote a handshake record");
            let len = usize::from(u16::from_be_bytes([records[3], records[4]]));
            message.extend_from_slice(&records[5..5 + len]);
            records = &records[5 + len..];
        }
        message
            .chunks(size)
            .map(|part| {
                let mut record = vec![0x16, 0x03, 0x01];
                record.extend_from_slice(&(part.len() as u16).to_be_bytes());
                record.extend_from_slice(part);
                record
            })
            .collect()
    }
}

/// Records put before a ClientHello, with the refusal detail each earns.
const PREFIXES: &[(&str, &[u8], &str)] = &[
    (
        "a warning alert (Go and rustls skip it)",
        &[0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x5a],
        "an alert record before the ClientHello",
    ),
    (
        "a fatal alert",
        &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
        "an alert record before the ClientHello",
    ),
    (
        "an alert of record version 0.0 (Go takes versions below 0x1000)",
        &[0x15, 0x00, 0x00, 0x00, 0x02, 0x01, 0x5a],
        "an alert record before the ClientHello",
    ),
    (
        "two warning alerts",
        &[
            0x15, 0x03, 0x01, 0x00, 0x02, 0x01, 0x5a, 0x15, 0x03, 0x01, 0x00, 0x02, 0x01, 0x5a,
        ],
        "an alert record before the ClientHello",
    ),
    (
        "an empty alert",
        &[0x15, 0x03, 0x03, 0x00, 0x00],
        "an alert record before the ClientHello",
    ),
    (
        "a change_cipher_spec",
        &[0x14, 0x03, 0x03, 0x00, 0x01, 0x01],
        "a change_cipher_spec record before the ClientHello",
    ),
    (
        "an empty handshake record (OpenSSL skips it)",
        &[0x16, 0x03, 0x01, 0x00, 0x00],
        "empty TLS record",
    ),
    (
        "application data",
        &[0x17, 0x03, 0x03, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o'],
        "an application_data record before the ClientHello",
    ),
    (
        "empty application data",
        &[0x17, 0x03, 0x03, 0x00, 0x00],
        "an application_data record before the ClientHello",
    ),
    (
        "a heartbeat",
        &[0x18, 0x03, 0x03, 0x00, 0x03, 0x01, 0x00, 0x00],
        "a heartbeat record before the ClientHello",
    ),
];

fn assert_refused(w: &World, what: &str, attempt: Attempt, reason: &str, detail: &str) {
    assert_eq!(attempt, Attempt::Failed(ACCESS_DENIED.into()), "{what}");
    let event = w.next_refusal();
    assert_eq!(event["reason"], reason, "{what}: {event}");
    let logged = event["detail"].as_str().unwrap_or("");
    assert!(logged.contains(detail), "{what}: {event}");
}

#[test]
fn records_before_the_hello_are_refused_on_every_port_and_protocol() {
    let w = World::start();
    for (via, port) in EVERY_WAY {
        for (name, prefix, detail) in PREFIXES {
            // A denied name behind the prefix: the bypass of issue 12. An allowed one: no
            // client sends a record before its hello, so the prefix alone is refused.
            for sni in ["evil.test", "allowed.test"] {
                let what = format!("{name}, then a hello for {sni}, {via:?} to {port:?}");
                let attempt = w.attempt(via, port, "allowed.test", sni, after(prefix));
                assert_refused(&w, &what, attempt, "bad-request", detail);
                w.assert_untouched(port, &what);
            }
        }
        // The same prefix arriving a byte per segment: the first byte already decides.
        let what = format!("an alert a byte per segment, {via:?} to {port:?}");
        let attempt = w.attempt(
            via,
            port,
            "allowed.test",
            "evil.test",
            after_byte_by_byte(PREFIXES[0].1),
        );
        assert_ne!(attempt, Attempt::Served, "{what}");
        let event = w.next_refusal();
        assert_eq!(event["reason"], "bad-request", "{what}: {event}");
        w.assert_untouched(port, &what);
    }
    assert_eq!(w.tls.accepted(), 0, "a TLS-port destination was dialed");
}

#[test]
fn the_honest_client_is_served_every_way_and_fronting_is_still_refused() {
    let w = World::start();
    for (via, port) in EVERY_WAY {
        let what = format!("{via:?} to {port:?}");
        let attempt = w.attempt(via, port, "allowed.test", "allowed.test", plain);
        assert_eq!(attempt, Attempt::Served, "{what}");
        w.assert_served(port, Some("allowed.test"), &what);
        // Its hello cut into 1-byte records, each its own segment: still one ClientHello.
        let attempt = w.attempt(via, port, "allowed.test", "allowed.test", recut(1));
        assert_eq!(attempt, Attempt::Served, "1-byte records, {what}");
        w.assert_served(port, Some("allowed.test"), &what);

        let attempt = w.attempt(via, port, "allowed.test", "evil.test", plain);
        assert_refused(&w, &what, attempt, "sni-mismatch", "asks for evil.test");
        w.assert_untouched(port, &what);
        let attempt = w.attempt(via, port, "allowed.test", "evil.test", recut(3));
        assert_refused(&w, &what, attempt, "sni-mismatch", "asks for evil.test");
        w.assert_untouched(port, &what);
    }
    assert_eq!(
        w.tls.accepted(),
        4,
        "only the served tunnels dialed the TLS port"
    );
}

#[test]
fn a_prefix_earns_no_pass_to_an_address_the_policy_names() {
    // `without_sni: explicit-ip` lets a hello without SNI (or plain bytes on a TLS port) through
    // to an IP an allow entry names: what "not TLS" was worth before.
    let w = World::start();
    for (via, port) in EVERY_WAY {
        let what = format!("{via:?} to {port:?}");
        // rustls sends no SNI for an IP address.
        let attempt = w.attempt(via, port, "127.0.0.1", "127.0.0.1", plain);
        assert_eq!(attempt, Attempt::Served, "{what}");
        w.assert_served(port, None, &what);
        for sni in ["evil.test", "127.0.0.1"] {
            let what = format!("an alert, then a hello for {sni}, {via:?} to {port:?}");
            let attempt = w.attempt(via, port, "127.0.0.1", sni, after(PREFIXES[0].1));
            let detail = "an alert record before the ClientHello";
            assert_refused(&w, &what, attempt, "bad-request", detail);
            w.assert_untouched(port, &what);
        }
    }
    assert_eq!(
        w.tls.accepted(),
        2,
        "only the served tunnels dialed the TLS port"
    );
}

/// Sends `bytes` into a fresh tunnel and reads the answer until the proxy closes.
fn raw(w: &World, via: Via, port: Port, bytes: &[u8]) -> Vec<u8> {
    let mut s = w.tunnel(via, "allowed.test", port);
    // The proxy may refuse before it has read everything: a failed write is part of the answer.
    let _ = s.write_all(bytes);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

#[test]
fn an_sslv2_format_hello_is_a_hello_without_a_name() {
    // An SSLv2 record header (2 bytes, high bit set), CLIENT-HELLO, version 3.1, 3 cipher
    // specs, no session id, a 16-byte challenge. It has no room for SNI; OpenSSL still answers
    // it, so it must not pass as "not TLS".
    let mut v2 = vec![
        0x80, 0x1a, 0x01, 0x03, 0x01, 0x00, 0x09, 0x00, 0x00, 0x00, 0x10,
    ];
    v2.extend_from_slice(&[0x00, 0x00, 0x2f, 0x00, 0x00, 0x35, 0x00, 0x00, 0x0a]);
    v2.extend_from_slice(&[0x42; 16]);
    let w = World::start();
    for (via, port) in EVERY_WAY {
        let what = format!("{via:?} to {port:?}");
        let answer = raw(&w, via, port, &v2);
        assert_eq!(answer, [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31], "{what}");
        let event = w.next_refusal();
        assert_eq!(event["reason"], "sni-mismatch", "{what}: {event}");
        assert!(
            event["detail"]
                .as_str()
                .unwrap()
                .contains("names no server"),
            "{what}: {event}"
        );
        w.assert_untouched(port, &what);
    }
    assert_eq!(w.tls.accepted(), 0, "a TLS-port destination was dialed");
}

#[test]
fn a_hello_in_196_kb_of_one_byte_records_is_refused_at_the_record_cap() {
    // Issue 12's cost attack: a 32 KiB ClientHello sent as 1-byte records. The proxy stops at
    // 4096 records (bounded work, see client_hello's unit tests for the count) and says why.
    let mut message = vec![0x01, 0x00, 0x7f, 0xfc, 0x03, 0x03];
    message.resize(32 * 1024, 0);
    let mut stream = Vec::with_capacity(message.len() * 6);
    for byte in &message {
        stream.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x01, *byte]);
    }
    assert!(stream.len() > 196_000);
    let w = World::start();
    for (via, port) in EVERY_WAY {
        let what = format!("{via:?} to {port:?}");
        let _ = raw(&w, via, port, &stream);
        let event = w.next_refusal();
        assert_eq!(event["reason"], "bad-request", "{what}: {event}");
        let detail = event["detail"].as_str().unwrap();
        assert!(
            detail.contains("more than 4096 TLS records"),
            "{what}: {event}"
        );
        w.assert_untouched(port, &what);
        // And the proxy goes on serving.
        let attempt = w.attempt(via, port, "allowed.test", "allowed.test", plain);
        assert_eq!(attempt, Attempt::Served, "{what}");
        w.assert_served(port, Some("allowed.test"), &what);
    }
    assert_eq!(
        w.tls.accepted(),
        2,
        "only the served tunnels dialed the TLS port"
    );
}

#[test]
fn through_a_parent_proxy_the_same_records_are_refused_before_a_byte_passes() {
    // A real Squid as the parent: it dials the destination once egress's CONNECT is answered,
    // on every port, so the witness is dialed every time and must still get nothing.
    let squid = Squid::start(&SquidOptions {
        hosts: &[("allowed.test", "127.0.0.1"), ("evil.test", "127.0.0.1")],
        ..SquidOptions::default()
    });
    let w = World::start_via(&squid);
    for (via, port) in EVERY_WAY {
        for (name, prefix, detail) in [PREFIXES[0], PREFIXES[5], PREFIXES[6]] {
            let what = format!("{name}, then a hello for evil.test, {via:?} to {port:?}");
            let attempt = w.attempt(via, port, "allowed.test", "evil.test", after(prefix));
            assert_refused(&w, &what, attempt, "bad-request", detail);
            let visit = w.witness(port).next_visit();
            assert_eq!(visit.received, 0, "{what}: {visit:?}");
        }
        let what = format!("{via:?} to {port:?}");
        let attempt = w.attempt(via, port, "allowed.test", "allowed.test", plain);
        assert_eq!(attempt, Attempt::Served, "{what}");
        w.assert_served(port, Some("allowed.test"), &what);
    }
}
