//! The hostile-input suite for destination safety: names that resolve to private and metadata
//! addresses (from a DNS server of the test's own), every spelling of the metadata address, IPv4
//! hidden in IPv6, TLS ClientHellos whose SNI fronts for another host, request-smuggling shapes and
//! broken targets. Every case asserts its exact answer; they all run at once while a good client
//! keeps being served. Nothing leaves the machine: refused destinations are never dialed, and the
//! allowed ones are local servers.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::dns::DnsServer;
use support::origin::Servers;
use support::{assert_served, curl, header, message, Proxy, WAIT};

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";
const ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31];
const SOCKS_OK_UNBOUND: &[u8] = &[5, 0, 0, 1, 0, 0, 0, 0, 0, 0];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A TCP server that only counts: connections accepted and bytes received. Stands where a
/// destination would be, to prove that a refused tunnel never reached it (or sent it nothing).
/// Each connection's byte total is also reported when the connection ends.
struct Sink {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
    totals: Mutex<mpsc::Receiver<usize>>,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicUsize::new(0));
        let (a, r) = (accepted.clone(), received.clone());
        let (totals_tx, totals) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                a.fetch_add(1, Ordering::SeqCst);
                let (r, totals_tx) = (r.clone(), totals_tx.clone());
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut total = 0;
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        total += n;
                        r.fetch_add(n, Ordering::SeqCst);
                    }
                    let _ = totals_tx.send(total);
                });
            }
        });
        Sink {
            addr,
            accepted,
            received,
            totals: Mutex::new(totals),
        }
    }

    /// The byte total of the next connection to end.
    fn next_total(&self) -> usize {
        self.totals
            .lock()
            .unwrap()
            .recv_timeout(WAIT)
            .expect("a sink connection ended")
    }
}

/// A syntactically valid TLS 1.2/1.3 ClientHello record with the given raw server_name (or none),
/// built by hand so that invalid names can be sent too.
fn hello(server_name: Option<&[u8]>) -> Vec<u8> {
    hello_in_records(server_name, 0, usize::MAX)
}

/// The same, with a key_share extension of `key_share` bytes (X25519MLKEM768 sends 1216) and the
/// handshake message cut into records of at most `record` bytes.
fn hello_in_records(server_name: Option<&[u8]>, key_share: usize, record: usize) -> Vec<u8> {
    let mut extensions = Vec::new();
    if let Some(name) = server_name {
        let mut list = vec![0u8];
        list.extend_from_slice(&(name.len() as u16).to_be_bytes());
        list.extend_from_slice(name);
        let mut ext = (list.len() as u16).to_be_bytes().to_vec();
        ext.extend_from_slice(&list);
        extensions.extend_from_slice(&[0, 0]);
        extensions.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        extensions.extend_from_slice(&ext);
    }
    // supported_versions: TLS 1.3, TLS 1.2
    extensions.extend_from_slice(&[0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03]);
    if key_share > 0 {
        // One entry: group X25519MLKEM768 (0x11ec), `key_share` bytes of key.
        let mut entry = vec![0x11, 0xec];
        entry.extend_from_slice(&(key_share as u16).to_be_bytes());
        entry.extend(std::iter::repeat_n(0x5a, key_share));
        let mut data = (entry.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&entry);
        extensions.extend_from_slice(&[0x00, 0x33]);
        extensions.extend_from_slice(&(data.len() as u16).to_be_bytes());
        extensions.extend_from_slice(&data);
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut records = Vec::new();
    for part in handshake.chunks(record.min(16384)) {
        records.extend_from_slice(&[0x16, 0x03, 0x01]);
        records.extend_from_slice(&(part.len() as u16).to_be_bytes());
        records.extend_from_slice(part);
    }
    records
}

fn connect_with(target: &str, first: &[u8]) -> Vec<u8> {
    let mut out = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").into_bytes();
    out.extend_from_slice(first);
    out
}

fn socks_with(name: &str, port: u16, first: &[u8]) -> Vec<u8> {
    let mut out = vec![5, 1, 0, 5, 1, 0, 3, name.len() as u8];
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(first);
    out
}

fn socks_ip(address: IpAddr, port: u16) -> Vec<u8> {
    let mut out = vec![5, 1, 0, 5, 1, 0];
    match address {
        IpAddr::V4(v4) => {
            out.push(1);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(4);
            out.extend_from_slice(&v6.octets());
        }
    }
    out.extend_from_slice(&port.to_be_bytes());
    out
}

fn then(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

enum Expect {
    /// An HTTP answer: status line start and `X-Egress-Error`.
    Http(&'static str, &'static str),
    /// Exactly these bytes, then close.
    Bytes(Vec<u8>),
}

struct Case {
    name: String,
    send: Vec<u8>,
    expect: Expect,
}

fn http(
    name: impl Into<String>,
    send: impl Into<Vec<u8>>,
    status: &'static str,
    reason: &'static str,
) -> Case {
    Case {
        name: name.into(),
        send: send.into(),
        expect: Expect::Http(status, reason),
    }
}

fn bytes(name: impl Into<String>, send: impl Into<Vec<u8>>, answer: impl Into<Vec<u8>>) -> Case {
    Case {
        name: name.into(),
        send: send.into(),
        expect: Expect::Bytes(answer.into()),
    }
}

/// Everything the cases need: the proxy, its DNS, a TLS origin and the counting sinks.
struct World {
    _servers: Servers,
    dns: DnsServer,
    proxy: Proxy,
    origin_port: u16,
    tls_port: u16,
    tls_sink: Sink,
    plain_sink: Sink,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

const NAMES: &[(&str, &[&str])] = &[
    ("allowed.test", &["127.0.0.1"]),
    ("other.test", &["127.0.0.1"]),
    ("loop.test", &["127.0.0.2"]),
    ("ten.test", &["10.1.2.3"]),
    ("meta.test", &["169.254.169.254"]),
    ("azure.test", &["168.63.129.16"]),
    ("alibaba.test", &["100.100.100.200"]),
    ("v6loop.test", &["::1"]),
    ("mapped.test", &["::ffff:127.0.0.2"]),
    ("sixtofour.test", &["2002:a9fe:a9fe::1"]),
    ("nat64.test", &["64:ff9b::a9fe:a9fe"]),
    ("ec2v6.test", &["fd00:ec2::254"]),
    ("zero.test", &["0.0.0.0"]),
    ("mixed.test", &["1.1.1.1", "10.0.0.1"]),
    ("linklocal6.test", &["fe80::1"]),
    ("cgnat.test", &["100.64.0.1"]),
    // A black-holed first address (excepted from the guard), then the origin's.
    ("fallback.test", &["127.0.0.3", "127.0.0.1"]),
];

impl World {
    fn start(ttl: u32) -> World {
        let servers = Servers::new();
        let dir = tempfile::tempdir().unwrap();
        let origin_port = servers.http_origin().port();
        let tls = servers.tls_origin_for(dir.path(), &["allowed.test", "other.test", "localhost"]);
        let tls_sink = Sink::start();
        let plain_sink = Sink::start();
        let records: Vec<(&str, Vec<IpAddr>)> = NAMES
            .iter()
            .map(|(name, addrs)| (*name, addrs.iter().map(|a| ip(a)).collect()))
            .collect();
        let borrowed: Vec<(&str, &[IpAddr])> =
            records.iter().map(|(n, a)| (*n, a.as_slice())).collect();
        let dns = DnsServer::start_with_ttl(&borrowed, ttl);
        dns.rebind("rebind.test", &[ip("127.0.0.1")], &[ip("127.0.0.2")]);
        let mut allow: Vec<String> = NAMES
            .iter()
            .map(|(name, _)| format!("\"{name}:*\""))
            .collect();
        allow.extend(["\"rebind.test:*\"".into(), "\"nx.test:*\"".into()]);
        // Address entries that span public space: they allow IP literals but, not naming a private
        // range, they do not exempt private addresses from the guard.
        allow.extend(["\"0.0.0.0/0:*\"".into(), "\"[::/0]:*\"".into()]);
        let policy = format!(
            "allow: [{allow}]\n\
             dns:\n  nameservers: [\"{dns}\"]\n  timeout: 3s\n\
             address_guard:\n  allow_networks: [127.0.0.1/32, 127.0.0.3/32]\n\
             tls:\n  ports: [{tls_port}, {sink_port}]\n\
             timeouts: {{ request_head: 2s, handshake: 2s, dial: 3s }}\n",
            allow = allow.join(", "),
            dns = dns.addr,
            tls_port = tls.addr.port(),
            sink_port = tls_sink.addr.port(),
        );
        let proxy = Proxy::start(&policy);
        World {
            _servers: servers,
            dns,
            proxy,
            origin_port,
            tls_port: tls.addr.port(),
            tls_sink,
            plain_sink,
            ca: tls.ca_path,
            _dir: dir,
        }
    }
}

fn cases(w: &World) -> Vec<Case> {
    let origin = w.origin_port;
    let sink = w.tls_sink.addr.port();
    let plain = w.plain_sink.addr.port();
    let denied_tunnel = |what: &str| format!("CONNECT to a name resolving to {what}");
    let mut cases = Vec::new();

    // Names that resolve to special addresses: refused before any dial, on every protocol.
    for (name, what) in [
        ("loop.test", "127.0.0.2 (loopback)"),
        ("ten.test", "10.1.2.3 (RFC 1918)"),
        ("meta.test", "169.254.169.254 (metadata)"),
        ("azure.test", "168.63.129.16 (Azure metadata)"),
        ("alibaba.test", "100.100.100.200 (Alibaba metadata)"),
        ("v6loop.test", "::1"),
        ("mapped.test", "::ffff:127.0.0.2 (IPv4-mapped loopback)"),
        ("sixtofour.test", "6to4 of 169.254.169.254"),
        ("nat64.test", "NAT64 of 169.254.169.254"),
        ("ec2v6.test", "fd00:ec2::254 (EC2 IPv6 metadata)"),
        ("zero.test", "0.0.0.0"),
        ("mixed.test", "one public and one private address"),
        ("linklocal6.test", "fe80::1"),
        ("cgnat.test", "100.64.0.1 (CGNAT)"),
    ] {
        cases.push(http(
            denied_tunnel(what),
            connect_with(&format!("{name}:{origin}"), b""),
            "HTTP/1.1 403",
            "private-address",
        ));
    }
    cases.push(http(
        "plain HTTP to a name resolving to metadata",
        "GET http://meta.test/latest/meta-data/ HTTP/1.1\r\nHost: meta.test\r\n\r\n".to_string(),
        "HTTP/1.1 403",
        "private-address",
    ));
    cases.push(bytes(
        "SOCKS5 to a name resolving to RFC 1918",
        socks_with("ten.test", 443, b""),
        [&[5u8, 0][..], &[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]].concat(),
    ));

    // The metadata address in every spelling, as an IP literal under a 0.0.0.0/0 allow entry.
    for spelling in [
        "169.254.169.254",
        "0xa9.0xfe.0xa9.0xfe",
        "0xa9fea9fe",
        "2852039166",
        "0251.0376.0251.0376",
        "169.254.43518",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:a9fe:a9fe::]",
    ] {
        cases.push(http(
            format!("CONNECT to metadata spelled {spelling}"),
            connect_with(&format!("{spelling}:80"), b""),
            "HTTP/1.1 403",
            "private-address",
        ));
    }
    cases.push(bytes(
        "SOCKS5 IPv6 address type carrying mapped metadata",
        socks_ip(ip("::ffff:169.254.169.254"), 80),
        [&[5u8, 0][..], &[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]].concat(),
    ));
    cases.push(http(
        "CONNECT to this host's loopback, not excepted",
        connect_with("127.0.0.2:22", b""),
        "HTTP/1.1 403",
        "private-address",
    ));

    // DNS failure.
    cases.push(http(
        "CONNECT to a name that does not exist",
        connect_with(&format!("nx.test:{origin}"), b""),
        "HTTP/1.1 502",
        "dns-failed",
    ));
    cases.push(bytes(
        "SOCKS5 to a name that does not exist",
        socks_with("nx.test", 443, b""),
        [&[5u8, 0][..], &[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]].concat(),
    ));

    // SNI: fronting and broken ClientHellos, into a TLS port (checked before dialing).
    let tls_target = format!("allowed.test:{sink}");
    for (name, first) in [
        (
            "SNI naming another host (domain fronting)",
            hello(Some(b"other.test")),
        ),
        ("SNI naming a denied host", hello(Some(b"evil.example"))),
        (
            "SNI with the CONNECT host as a suffix",
            hello(Some(b"xallowed.test")),
        ),
        (
            "SNI with the CONNECT host as a prefix",
            hello(Some(b"allowed.test.evil.example")),
        ),
        ("ClientHello without SNI to a name", hello(None)),
        ("SNI with a NUL byte", hello(Some(b"allowed.test\0.evil"))),
        ("SNI with a percent sign", hello(Some(b"allowed%2etest"))),
        (
            "SNI with a control character",
            hello(Some(b"allowed\x01test")),
        ),
        ("oversized SNI", hello(Some(&[b'a'; 300]))),
        ("empty SNI", hello(Some(b""))),
    ] {
        cases.push(bytes(
            name,
            connect_with(&tls_target, &first),
            then(ESTABLISHED, ALERT),
        ));
    }
    let fronted = hello(Some(b"other.test"));
    cases.push(bytes(
        "truncated ClientHello, then close",
        connect_with(&tls_target, &fronted[..40]),
        // The client's half-close cuts the hello short; its read side still gets the alert.
        [ESTABLISHED, ALERT].concat(),
    ));
    cases.push(bytes(
        "plain text into a TLS port",
        connect_with(&tls_target, b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n"),
        ESTABLISHED,
    ));
    cases.push(bytes(
        "SOCKS5 tunnel with a fronted SNI",
        socks_with("allowed.test", sink, &fronted),
        [&[5u8, 0][..], SOCKS_OK_UNBOUND, ALERT].concat(),
    ));
    // On other ports the destination is dialed first, but the fronted hello never reaches it.
    let mut gated = format!("CONNECT allowed.test:{plain} HTTP/1.1\r\n\r\n").into_bytes();
    gated.extend_from_slice(&fronted);
    cases.push(Case {
        name: "fronted SNI on a non-TLS port".into(),
        send: gated,
        expect: Expect::Bytes(then(ESTABLISHED, ALERT)),
    });

    // Broken targets.
    for (name, target) in [
        ("CONNECT with a NUL in the host", "allo\0wed.test:443"),
        (
            "CONNECT with a control character in the host",
            "allo\x07wed.test:443",
        ),
        ("CONNECT with an IPv6 zone id", "[fe80::1%25eth0]:443"),
        ("CONNECT with port 0", "allowed.test:0"),
        ("CONNECT with port 99999", "allowed.test:99999"),
        ("CONNECT with an empty label", "allowed..test:443"),
        ("CONNECT with a percent-encoded host", "%61llowed.test:443"),
        ("CONNECT with userinfo", "user@allowed.test:443"),
    ] {
        cases.push(http(
            name,
            connect_with(target, b""),
            "HTTP/1.1 400",
            "bad-request",
        ));
    }

    // Request smuggling shapes on plain-HTTP forwarding.
    let a = format!("allowed.test:{origin}");
    let post = |headers: &str, body: &str| {
        format!("POST http://{a}/echo HTTP/1.1\r\nHost: {a}\r\n{headers}\r\n{body}")
    };
    for (name, request) in [
        (
            "Content-Length and Transfer-Encoding",
            post(
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "repeated Content-Length",
            post("Content-Length: 4\r\nContent-Length: 4\r\n", "abcd"),
        ),
        (
            "Content-Length list",
            post("Content-Length: 4, 4\r\n", "abcd"),
        ),
        (
            "signed Content-Length",
            post("Content-Length: +4\r\n", "abcd"),
        ),
        (
            "Transfer-Encoding gzip",
            post("Transfer-Encoding: gzip\r\n", ""),
        ),
        (
            "Transfer-Encoding chunked twice",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "Transfer-Encoding with a suffix",
            post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"),
        ),
        (
            "invalid chunk size",
            post("Transfer-Encoding: chunked\r\n", "zz\r\nabcd\r\n0\r\n\r\n"),
        ),
        (
            "chunk size overflow",
            post(
                "Transfer-Encoding: chunked\r\n",
                "fffffffffffffffffff\r\nabcd\r\n0\r\n\r\n",
            ),
        ),
        (
            "obs-fold header",
            post("X-Folded: a\r\n b\r\nContent-Length: 0\r\n", ""),
        ),
        (
            "bare CR in a header",
            post("X-Bad: a\rb\r\nContent-Length: 0\r\n", ""),
        ),
        (
            "NUL in a header value",
            post("X-Bad: a\0b\r\nContent-Length: 0\r\n", ""),
        ),
        (
            "space before the colon",
            post("Content-Length : 4\r\n", "abcd"),
        ),
    ] {
        cases.push(http(
            format!("smuggling: {name}"),
            request,
            "HTTP/1.1 400",
            "bad-request",
        ));
    }
    cases.push(http(
        "Host header naming another host",
        format!("GET http://{a}/hello HTTP/1.1\r\nHost: other.test\r\n\r\n"),
        "HTTP/1.1 400",
        "host-mismatch",
    ));
    cases.push(http(
        "two Host headers",
        format!("GET http://{a}/hello HTTP/1.1\r\nHost: {a}\r\nHost: other.test\r\n\r\n"),
        "HTTP/1.1 400",
        "bad-request",
    ));
    cases
}

fn run(proxy: SocketAddr, case: &Case) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(&case.send).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn check(case: &Case, answer: &[u8]) -> Result<(), String> {
    match &case.expect {
        Expect::Http(status, reason) => {
            let text = String::from_utf8_lossy(answer);
            if text.starts_with(status) && header(&text, "x-egress-error") == Some(reason) {
                Ok(())
            } else {
                Err(format!(
                    "{}: expected {status} {reason}, got {text:?}",
                    case.name
                ))
            }
        }
        Expect::Bytes(expected) if answer == &expected[..] => Ok(()),
        Expect::Bytes(expected) => Err(format!(
            "{}: expected {expected:?}, got {answer:?}",
            case.name
        )),
    }
}

#[test]
fn hostile_inputs_get_exact_answers_while_a_good_client_is_served() {
    let w = World::start(60);
    let cases = cases(&w);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let addr = w.proxy.addr;
    let proxy_url = w.proxy.url();
    let good_url = format!("http://allowed.test:{}/hello", w.origin_port);
    let failures = thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|case| scope.spawn(move || check(case, &run(addr, case))))
            .collect();
        // The good client, served again and again while the hostile cases run.
        let good = scope.spawn(|| {
            for _ in 0..20 {
                let r = curl(&["-x", &proxy_url, &good_url]);
                assert_served(&r);
            }
        });
        let failures: Vec<String> = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap().err())
            .collect();
        good.join().unwrap();
        failures
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Refused TLS tunnels never reached the destination; the gated one got no byte.
    assert_eq!(
        w.tls_sink.accepted.load(Ordering::SeqCst),
        0,
        "a TLS-port destination was dialed"
    );
    assert_eq!(
        w.plain_sink.received.load(Ordering::SeqCst),
        0,
        "fronted bytes reached the destination"
    );
    assert!(w.plain_sink.accepted.load(Ordering::SeqCst) <= 1);
    w.proxy
        .wait_for_count("sni-mismatch refusals logged", 5, |v| {
            message(v) == "tunnel refused" && v["reason"] == "sni-mismatch"
        });
    // Every line logged while refusing them is one whole JSON object: no input, however it
    // quoted, escaped or broke lines, split a log line or forged a field in one.
    let logs = w.proxy.logs();
    let broken: Vec<_> = logs.iter().filter(|line| !line.is_object()).collect();
    assert!(
        broken.is_empty(),
        "log lines that are not JSON objects: {broken:?}"
    );
    assert!(logs.iter().any(|line| line["span"]["client"].is_string()));
}

#[test]
fn fronting_with_connect_to_is_refused_and_the_honest_request_works() {
    let w = World::start(60);
    let allowed = format!("https://allowed.test:{}/hello", w.tls_port);
    let ca = w.ca.to_str().unwrap();
    let r = curl(&["-x", &w.proxy.url(), "--cacert", ca, &allowed]);
    assert_served(&r);
    // curl asks the proxy for allowed.test but tells TLS it wants other.test.
    let fronted = format!("https://other.test:{}/hello", w.tls_port);
    let connect_to = format!("other.test:{0}:allowed.test:{0}", w.tls_port);
    let r = curl(&[
        "-x",
        &w.proxy.url(),
        "--cacert",
        ca,
        "--connect-to",
        &connect_to,
        &fronted,
    ]);
    assert_eq!(r.code, 35, "TLS handshake refused: {r:?}");
    let event = w
        .proxy
        .wait_for_log("the refusal", |v| message(v) == "tunnel refused");
    assert_eq!(event["reason"], "sni-mismatch");
    assert!(
        event["detail"].as_str().unwrap().contains("other.test"),
        "{event}"
    );
    // SOCKS5 with the name resolved by the proxy: the same check.
    let r = curl(&[
        "--socks5-hostname",
        &w.proxy.addr.to_string(),
        "--cacert",
        ca,
        &allowed,
    ]);
    assert_served(&r);
}

#[test]
fn a_name_is_resolved_once_per_connection_so_rebinding_fails() {
    // TTL 0: every connection asks again. The first answer is the (excepted) origin address, the
    // next a loopback address that is not excepted.
    let w = World::start(0);
    let url = format!("http://rebind.test:{}/hello", w.origin_port);
    let r = curl(&["-x", &w.proxy.url(), "-D", "-", &url]);
    assert!(
        r.stdout.ends_with("hello from origin\n"),
        "first connection uses the first answer: {r:?}"
    );
    let first_queries = w.dns.queries("rebind.test");
    assert!(
        (1..=2).contains(&first_queries),
        "one lookup (A and AAAA) per connection: {first_queries}"
    );
    let r = curl(&["-x", &w.proxy.url(), "-D", "-", &url]);
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("private-address"),
        "{r:?}"
    );
}

#[test]
fn dns_answers_are_cached_for_their_ttl() {
    let w = World::start(300);
    let url = format!("http://allowed.test:{}/hello", w.origin_port);
    for _ in 0..3 {
        let r = curl(&["-x", &w.proxy.url(), &url]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let queries = w.dns.queries("allowed.test");
    assert!(
        (1..=2).contains(&queries),
        "cached after the first lookup: {queries}"
    );
}

#[test]
fn a_slowloris_battery_cannot_starve_another_client() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&format!(
        "allow: [\"127.0.0.1:{port}\"]\n\
         limits: {{ max_connections: 400, max_connections_per_client: 300 }}\n\
         timeouts: {{ request_head: 20s }}\n"
    ));
    // 300 connections from 127.0.0.1 (its whole allowance), each dribbling header bytes.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(proxy.addr).unwrap();
        let _ = s.write_all(b"GET http://127.0.0.1/ HTTP/1.1\r\nX-Slow: ");
        slow.push(s);
    }
    for s in &mut slow {
        let _ = s.write_all(b"a");
    }
    // One more from the same address, with a whole request, is beyond its limit and told so.
    let mut extra = TcpStream::connect(proxy.addr).unwrap();
    extra.set_read_timeout(Some(WAIT)).unwrap();
    extra
        .write_all(
            format!("GET http://127.0.0.1:{port}/hello HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert_eq!(
        header(&answer, "x-egress-error"),
        Some("too-many-connections"),
        "{answer}"
    );
    proxy.wait_for_log("the refusal", |v| {
        message(v) == "connection refused" && v["limit"] == "this client's connection limit"
    });
    // Another client (another loopback address) is served promptly.
    let started = Instant::now();
    let r = curl(&[
        "--interface",
        "127.0.0.2",
        "-x",
        &proxy.url(),
        &format!("http://127.0.0.1:{port}/hello"),
    ]);
    assert_served(&r);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served in {:?}",
        started.elapsed()
    );
    drop(slow);
}

#[test]
fn a_large_hello_split_over_records_and_segments_reaches_the_destination_whole() {
    let w = World::start(60);
    // A post-quantum sized key share, the handshake cut into two records, and the bytes written
    // 64 at a time with Nagle off, so the proxy sees the ClientHello arrive in many segments.
    let hello = hello_in_records(Some(b"allowed.test"), 1216, 700);
    assert!(hello.len() > 1300);
    let mut stream = TcpStream::connect(w.proxy.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let target = format!("allowed.test:{}", w.tls_sink.addr.port());
    stream.write_all(&connect_with(&target, b"")).unwrap();
    let mut answer = vec![0u8; ESTABLISHED.len()];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(answer, ESTABLISHED);
    for piece in hello.chunks(64) {
        stream.write_all(piece).unwrap();
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(
        w.tls_sink.next_total(),
        hello.len(),
        "every byte of the hello passed, once"
    );
}

#[test]
fn a_silent_nameserver_gives_dns_failed_and_the_proxy_keeps_serving() {
    // Bound but never read: queries go unanswered, as with a dead resolver.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&format!(
        "allow: [\"silent.test:*\", \"127.0.0.1:{port}\"]\n\
         dns: {{ nameservers: [\"{dns}\"], timeout: 1s }}\n",
        dns = silent.local_addr().unwrap(),
    ));
    let r = curl(&[
        "-x",
        &proxy.url(),
        "-D",
        "-",
        "--max-time",
        "20",
        &format!("http://silent.test:{port}/"),
    ]);
    assert!(r.stdout.starts_with("HTTP/1.1 502"), "{r:?}");
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("dns-failed"),
        "{r:?}"
    );
    let socks = curl(&[
        "--socks5-hostname",
        &proxy.addr.to_string(),
        "--max-time",
        "20",
        &format!("http://silent.test:{port}/"),
    ]);
    assert_eq!(
        socks.code, 97,
        "SOCKS5 reply 0x04 (host unreachable): {socks:?}"
    );
    assert!(
        socks.stderr.contains("connection to silent.test. (4)"),
        "{socks:?}"
    );
    let r = curl(&[
        "-x",
        &proxy.url(),
        &format!("http://127.0.0.1:{port}/hello"),
    ]);
    assert_served(&r);
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so a connect to it hangs
/// as one to a black-holed address does, without sending anything off the machine.
fn black_hole(addr: SocketAddr) -> Vec<Box<dyn std::any::Any>> {
    use rustix::net::{bind, listen, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &addr).unwrap();
    listen(&fd, 0).unwrap();
    let mut keep: Vec<Box<dyn std::any::Any>> = vec![Box::new(fd)];
    // Fill the queue until a connect goes unanswered (bounded: the queue holds one or two).
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => keep.push(Box::new(stream)),
            Err(_) => return keep,
        }
    }
    panic!("the accept queue of {addr} never filled");
}

#[test]
fn a_black_holed_first_address_leaves_time_for_the_next() {
    let w = World::start(60);
    let _hole = black_hole(SocketAddr::new(ip("127.0.0.3"), w.origin_port));
    // dial: 3s; each of the two addresses gets at most half, so the second is reached in time.
    let url = format!("http://fallback.test:{}/hello", w.origin_port);
    let r = curl(&["-x", &w.proxy.url(), "--max-time", "20", &url]);
    assert_served(&r);
}
