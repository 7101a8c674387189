//! Behind a load balancer: listeners that read the PROXY protocol (v1 and v2) from trusted
//! peers only, so client addresses and network identities survive the hop; and several
//! replicas behind a real HAProxy, scraped by a real Prometheus, counting every request once
//! with the right identity and showing the same policy digest.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use support::origin::Servers;
use support::prometheus::Prometheus;
use support::{wait, Proxy, WAIT};

/// A proxy whose one listener takes the PROXY protocol from `trusted`; `ci` is whoever comes
/// from 198.18.0.0/15 or 127.0.0.2 and may reach `origin`; nobody else may reach anything.
fn behind_balancer(trusted: &str, origin: SocketAddr, extra: &str) -> Proxy {
    Proxy::start_with(
        &format!(
            "listen:\n  - {{address: \"127.0.0.1:0\", proxy_protocol: true, trusted: [{trusted}]}}\n\
             identities:\n  ci: {{networks: [198.18.0.0/15, 127.0.0.2], groups: [ci]}}\n\
             groups:\n  ci: {{allow: [\"{origin}\"]}}\n{extra}"
        ),
        &[],
    )
}

/// Sends `bytes` on a new connection and returns everything the proxy answers until it closes.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(origin: SocketAddr) -> String {
    format!("GET http://{origin}/hello HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n")
}

fn v1(source: &str) -> Vec<u8> {
    format!("PROXY TCP4 {source} 127.0.0.1 40000 3128\r\n").into_bytes()
}

fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x20 | command, family]);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A v2 PROXY header for TCP over IPv4 from `source`, with a TLV after the addresses.
fn v2_from(source: [u8; 4]) -> Vec<u8> {
    let mut body = source.to_vec();
    body.extend_from_slice(&[127, 0, 0, 1, 0x9c, 0x40, 0x0c, 0x38]);
    body.extend_from_slice(&[0x05, 0x00, 0x02, b'i', b'd']);
    v2(0x1, 0x11, &body)
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_trusted_balancer_names_the_client_and_its_network_identity_applies() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let proxy = behind_balancer(
        "127.0.0.1",
        origin,
        &format!("audit: {{path: \"{}\"}}\n", audit.display()),
    );
    let served = |bytes: &[u8]| exchange(proxy.addr, bytes);
    let with = |header: Vec<u8>| [header, get(origin).into_bytes()].concat();
    // v1 and v2 from ci's network: ci's policy; from elsewhere: anonymous, who may not.
    let ci_v1 = served(&with(v1("198.18.0.9")));
    assert!(ci_v1.ends_with("hello from origin\n"), "{ci_v1}");
    let ci_v2 = served(&with(v2_from([198, 19, 255, 1])));
    assert!(ci_v2.ends_with("hello from origin\n"), "{ci_v2}");
    let stranger = served(&with(v1("192.0.2.1")));
    assert!(stranger.starts_with("HTTP/1.1 403"), "{stranger}");
    // A health check (v2 LOCAL) is the balancer's own connection: 127.0.0.1, anonymous.
    let local = served(&with(v2(0x0, 0x00, &[])));
    assert!(local.starts_with("HTTP/1.1 403"), "{local}");
    // The audit lines carry the client the balancer named, and its identity.
    wait::until("four audit lines", || audit_lines(&audit).len() >= 4);
    let seen: Vec<(String, String)> = audit_lines(&audit)
        .iter()
        .map(|l| {
            let client = l["client"].as_str().unwrap_or("");
            let ip = client.rsplit_once(':').map_or(client, |(ip, _)| ip);
            (
                ip.to_string(),
                l["identity"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let pairs = |ip: &str, who: &str| (ip.to_string(), who.to_string());
    assert_eq!(
        seen,
        [
            pairs("198.18.0.9", "ci"),
            pairs("198.19.255.1", "ci"),
            pairs("192.0.2.1", "anonymous"),
            pairs("127.0.0.1", "anonymous"),
        ]
    );

    // Hostile or broken headers: closed without an answer (nothing after a bad header can be
    // trusted to be the client's), and the proxy keeps serving the next client.
    let mut long_v1 = b"PROXY TCP4 198.18.0.9 127.0.0.1 40000 3128".to_vec();
    long_v1.extend([b' '; 200]);
    let mut huge_v2 = v2_from([198, 18, 0, 9]);
    huge_v2[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    let unix = v2(0x1, 0x31, &[0u8; 216]);
    for (what, bytes) in [
        ("no header", get(origin).into_bytes()),
        ("a SOCKS5 greeting", b"\x05\x01\x00".to_vec()),
        ("truncated v1", b"PROXY TCP4 198.18".to_vec()),
        ("truncated v2", v2_from([198, 18, 0, 9])[..20].to_vec()),
        ("over-long v1", with(long_v1)),
        ("over-long v2", with(huge_v2)),
        (
            "wrong v2 signature",
            with(b"\r\n\r\n\0\r\nQUIZ\n\x21\x11\x00\x00".to_vec()),
        ),
        ("UNKNOWN", with(b"PROXY UNKNOWN\r\n".to_vec())),
        ("a unix socket", with(unix)),
        ("a v6 address in TCP4", with(v1("2001:db8::1"))),
    ] {
        assert_eq!(served(&bytes), "", "{what}");
        let after = served(&with(v1("198.18.0.9")));
        assert!(
            after.ends_with("hello from origin\n"),
            "after {what}: {after}"
        );
    }
}

#[test]
fn a_peer_outside_trusted_is_closed_whatever_it_sends() {
    let servers = Servers::new();
    let origin = servers.http_origin();
    let proxy = behind_balancer("192.0.2.0/24", origin, "");
    for bytes in [
        [v1("198.18.0.9"), get(origin).into_bytes()].concat(),
        [v2_from([198, 18, 0, 9]), get(origin).into_bytes()].concat(),
        get(origin).into_bytes(),
    ] {
        assert_eq!(exchange(proxy.addr, &bytes), "");
    }
    proxy.wait_for_log("the refusal", |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a trusted PROXY protocol peer"))
    });
}

/// Debian's HAProxy in TCP mode on an ephemeral port, round-robin over `backends`, sending the
/// PROXY protocol v2 to the first and v1 to the second.
struct Haproxy {
    addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(backends: [SocketAddr; 2]) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n  maxconn 4000\n\
                 defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
                 frontend egress\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
                 backend replicas\n  balance roundrobin\n\
                 \x20 server a {} send-proxy-v2\n  server b {} send-proxy\n",
                backends[0], backends[1]
            ),
        )
        .unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn haproxy (is the haproxy package installed?)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait::listening(addr, "HAProxy listens");
        Haproxy {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request through `via` from `source` (127.0.0.2 is ci's network), served.
fn request_from(
    runtime: &tokio::runtime::Runtime,
    via: SocketAddr,
    source: &str,
    origin: SocketAddr,
) {
    let answer = runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let mut stream = tokio::time::timeout(WAIT, socket.connect(via))
            .await
            .unwrap()
            .unwrap();
        stream.write_all(get(origin).as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        answer
    });
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.ends_with("hello from origin\n"),
        "from {source}: {answer}"
    );
}

#[test]
fn two_replicas_behind_haproxy_count_every_request_once_with_its_identity() {
    const REQUESTS: usize = 1000;
    let servers = Servers::new();
    let origin = servers.http_origin();
    // Everyone may reach the origin; ci is told apart by its address (127.0.0.2).
    let policy = |version: &str| {
        format!(
            "# {version}\n\
             listen:\n  - {{address: \"127.0.0.1:0\", proxy_protocol: true, trusted: [127.0.0.1]}}\n\
             admin: 127.0.0.1:0\n\
             allow: [\"{origin}\"]\n\
             identities:\n  ci: {{networks: [127.0.0.2]}}\n"
        )
    };
    let replicas = [
        Proxy::start_with(&policy("first"), &[]),
        Proxy::start_with(&policy("first"), &[]),
    ];
    let haproxy = Haproxy::start([replicas[0].addr, replicas[1].addr]);
    let admins = [replicas[0].admin_addr(), replicas[1].admin_addr()];
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/alerts.yml");
    let prometheus = Prometheus::start_scraping(&admins, &rules);

    // Bounded: REQUESTS requests, each with its own timeout; 3 of 5 from ci's address.
    for i in 0..REQUESTS {
        let source = if i % 5 < 3 { "127.0.0.2" } else { "127.0.0.1" };
        request_from(&servers.runtime, haproxy.addr, source, origin);
    }
    let total = REQUESTS as f64;
    prometheus.wait_until(
        "Prometheus has scraped every request from both replicas",
        || prometheus.value("sum(egress_decisions_total)") == Some(total),
    );
    let by_identity = |who: &str| {
        prometheus.value(&format!(
            "sum(egress_decisions_total{{identity=\"{who}\"}})"
        ))
    };
    assert_eq!(by_identity("ci"), Some(total * 3.0 / 5.0));
    assert_eq!(by_identity("anonymous"), Some(total * 2.0 / 5.0));
    // Each replica served both identities (round robin), and nothing was refused.
    for admin in admins {
        for who in ["ci", "anonymous"] {
            let served = prometheus
                .value(&format!(
                    "sum(egress_decisions_total{{instance=\"{admin}\",identity=\"{who}\",decision=\"allow\"}})"
                ))
                .unwrap_or(0.0);
            assert!(served > 0.0, "{admin} served no {who}");
        }
    }
    assert_eq!(
        prometheus.value("sum(egress_decisions_total{decision!=\"allow\"})"),
        Some(0.0)
    );

    // One policy everywhere, then another: both replicas show the same digest each time.
    let digests = || {
        let mut seen: Vec<String> = prometheus
            .query("egress_policy_info")
            .iter()
            .map(|s| s["metric"]["sha256"].as_str().unwrap().to_string())
            .collect();
        seen.sort();
        seen
    };
    let sha256 = |text: &str| {
        let out = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().unwrap().write_all(text.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        String::from_utf8_lossy(&out.stdout)[..64].to_string()
    };
    let first = sha256(&policy("first"));
    prometheus.wait_until("both replicas report the first policy", || {
        digests() == [first.clone(), first.clone()]
    });
    for replica in &replicas {
        let next = replica.dir.path().join(".next");
        std::fs::write(&next, policy("second")).unwrap();
        std::fs::rename(&next, replica.policy_path()).unwrap();
        replica.wait_for_log("the reload", |v| v["message"] == "policy reloaded");
    }
    let second = sha256(&policy("second"));
    assert_ne!(first, second);
    prometheus.wait_until(
        "both replicas report the second policy, and only it",
        || digests() == [second.clone(), second.clone()],
    );
}
