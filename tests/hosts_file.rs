//! `/etc/hosts` is final for the names it lists, for both address families, as with glibc: the
//! proxy answers such a name from the file at once, and never asks a nameserver about it (not
//! even for the family the file does not give). The proxy runs in a mount namespace of its own
//! where the test's file is bind-mounted over `/etc/hosts`, so the real path is what is read.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use support::dns::DnsServer;
use support::origin::Servers;
use support::{curl, header, Proxy};

/// The test's hosts file: one name per family shape.
const HOSTS: &str = "127.0.0.1 localhost\n\
                     127.0.0.1 four.test\n\
                     ::1 six.test\n\
                     127.0.0.1 both.test\n\
                     ::1 both.test\n";

/// The proxy with `HOSTS` as its `/etc/hosts` and `nameserver` as its only DNS server, allowed
/// to reach the names above on loopback; the DNS deadline is 1 s.
fn proxy_with_hosts(dir: &std::path::Path, nameserver: std::net::SocketAddr) -> Proxy {
    let hosts = support::write_file(dir, "hosts", HOSTS);
    let policy = format!(
        "listen: 127.0.0.1:0\n\
         allow: [\"four.test:*\", \"six.test:*\", \"both.test:*\", \"dns-only.test:*\"]\n\
         dns: {{ nameservers: [\"{nameserver}\"], timeout: 1s }}\n\
         address_guard: {{ allow_networks: [127.0.0.1/32, \"::1/128\"] }}\n"
    );
    Proxy::start_after_mount(
        &policy,
        "mount --bind \"$0\" /etc/hosts",
        hosts.to_str().unwrap(),
    )
}

/// Fetches `http://{host}:{port}/hello` through the proxy and says how long it took.
fn fetch(proxy: &Proxy, host: &str, port: u16) -> (support::Curl, Duration) {
    let started = Instant::now();
    let r = curl(&[
        "-x",
        &proxy.url(),
        "-D",
        "-",
        "--max-time",
        "20",
        &format!("http://{host}:{port}/hello"),
    ]);
    (r, started.elapsed())
}

#[test]
fn hosts_names_are_answered_at_once_when_the_nameserver_is_dead() {
    // Bound but never read: every query goes unanswered until the 1 s deadline.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let servers = Servers::new();
    // The origin listens on IPv4 and IPv6 loopback alike through one port per family.
    let v4 = servers.http_origin().port();
    let proxy = proxy_with_hosts(dir.path(), silent.local_addr().unwrap());
    for host in ["four.test", "both.test"] {
        let (r, took) = fetch(&proxy, host, v4);
        assert_served_with_head(&r);
        // Waiting for the missing AAAA answer would take the whole second and then fail.
        assert!(took < Duration::from_millis(900), "{host}: {took:?}");
    }
    // A name the file does not list still goes to DNS, and fails there at the deadline.
    let (r, took) = fetch(&proxy, "dns-only.test", v4);
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("dns-failed"),
        "{r:?}"
    );
    assert!(took >= Duration::from_secs(1), "{took:?}");
}

#[test]
fn an_ipv6_only_hosts_name_is_not_completed_from_dns() {
    let dir = tempfile::tempdir().unwrap();
    // A live nameserver with other answers for the same names: the file must win, unasked.
    let dns = DnsServer::start(&[
        ("six.test", &[ip("127.0.0.1")]),
        ("four.test", &[ip("::1")]),
        ("dns-only.test", &[ip("127.0.0.1")]),
    ]);
    let proxy = proxy_with_hosts(dir.path(), dns.addr);
    // six.test is ::1 only in the file; nothing listens there on this port, so reaching
    // 127.0.0.1 (DNS's answer) would be served, while the file's answer is refused.
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let (r, _) = fetch(&proxy, "six.test", port);
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("upstream-refused"),
        "{r:?}"
    );
    let (r, _) = fetch(&proxy, "four.test", port);
    assert_served_with_head(&r);
    assert_eq!(dns.queries("six.test"), 0);
    assert_eq!(dns.queries("four.test"), 0);
    // The server is really asked for names the file does not list.
    let (r, _) = fetch(&proxy, "dns-only.test", port);
    assert_served_with_head(&r);
    assert!(dns.queries("dns-only.test") > 0);
}

fn assert_served_with_head(r: &support::Curl) {
    assert!(
        r.stdout.starts_with("HTTP/1.1 200 ") && r.stdout.ends_with("\r\n\r\nhello from origin\n"),
        "{r:?}"
    );
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}
