//! Egress's DNS responder on the gateway: clients ask it (their resolver is the gateway), it
//! answers only names their policy allows, from egress's own resolver (the outside DNS server
//! here), never hands out an address the guard refuses, and never even asks about a denied
//! name. DNS to any other server goes nowhere. What it hands a client is what that client's
//! nameless connections (SSH) may reach.

use super::gateway::{Diversion, Gateway, BOTH, GATEWAY_INSIDE, ORIGIN, ORIGIN6};
use super::{assert_origin_answered, decisions};
use crate::support::wait;

/// The gateway's own `/etc/hosts` lists none of the names: they all go to the outside server.
const HOSTS: &str = "127.0.0.1 localhost\n";

const ZONE: &str = "dnsok.test 198.18.2.2\n\
                    dnsok.test 2001:2:0:2::2\n\
                    dnsok.test https\n\
                    sshok.test 198.18.2.3\n\
                    sshok.test 2001:2:0:2::3\n\
                    denied-dns.test 198.18.2.2\n\
                    private-dns.test 10.0.0.7\n\
                    metadata-dns.test 169.254.169.254\n";

const POLICY: &str = "admin: 127.0.0.1:0\n\
                      allow: [dnsok.test, \"sshok.test:22\", private-dns.test, metadata-dns.test]\n\
                      dns: { nameservers: [\"198.18.2.2:53\"], timeout: 2s }\n\
                      dns_server: { listen: \"[::]:53\" }\n\
                      address_guard: { allow_networks: [198.18.0.0/15, \"2001:2::/48\"] }\n";

fn start(diversion: Diversion) -> Gateway {
    let gw = Gateway::start_with_dns(diversion, POLICY, HOSTS, ZONE);
    gw.proxy.wait_for_log("the DNS responder", |v| {
        crate::support::message(v) == "DNS responder listening (UDP and TCP)"
    });
    gw
}

/// `dns_ask.py` from the client: the answer's summary line.
fn ask(gw: &Gateway, server: &str, name: &str, kind: &str, tcp: bool) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/transparent/dns_ask.py"
    );
    let mut args = vec!["python3", script, server, name, kind];
    if tcp {
        args.push("tcp");
    }
    let r = gw.run_in_client(&args, b"");
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.trim().to_string()
}

/// Checks an answer of one address, whose TTL is the outside server's (30 s) or a little less
/// (the resolver's cache counts it down).
fn assert_one_address(answer: &str, expected: &str) {
    let (head, ttl) = answer.rsplit_once(" ttl=").expect(answer);
    assert_eq!(head, format!("rcode=0 {expected}"), "{answer}");
    let ttl: u32 = ttl.parse().expect(answer);
    assert!((25..=30).contains(&ttl), "{answer}");
}

fn audited(gw: &Gateway, protocol: &str, host: &str, decision: &str, reason: Option<&str>) -> bool {
    gw.audit().iter().any(|l| {
        l["protocol"] == protocol
            && l["host"] == host
            && l["decision"] == decision
            && reason.is_none_or(|r| l["reason"] == r)
    })
}

#[test]
fn allowed_names_are_answered_and_the_rest_is_nxdomain_without_asking_outside() {
    let gw = start(Diversion::Redirect);
    assert_one_address(
        &ask(&gw, GATEWAY_INSIDE, "dnsok.test", "A", false),
        "a=198.18.2.2",
    );
    assert_one_address(
        &ask(&gw, GATEWAY_INSIDE, "DNSOK.test", "AAAA", false),
        "aaaa=2001:2:0:2::2",
    );
    assert_one_address(
        &ask(&gw, GATEWAY_INSIDE, "dnsok.test", "A", true),
        "a=198.18.2.2",
    );
    // Denied: NXDOMAIN, over UDP and TCP, and the outside server never hears of it.
    assert_eq!(
        ask(&gw, GATEWAY_INSIDE, "denied-dns.test", "A", false),
        "rcode=3"
    );
    assert_eq!(
        ask(&gw, GATEWAY_INSIDE, "denied-dns.test", "AAAA", true),
        "rcode=3"
    );
    assert_eq!(
        ask(&gw, GATEWAY_INSIDE, "x.denied-dns.test", "HTTPS", false),
        "rcode=3"
    );
    // Allowed, but resolving to a private or metadata address: REFUSED, nothing handed out.
    assert_eq!(
        ask(&gw, GATEWAY_INSIDE, "private-dns.test", "A", false),
        "rcode=5"
    );
    assert_eq!(
        ask(&gw, GATEWAY_INSIDE, "metadata-dns.test", "A", false),
        "rcode=5"
    );
    // Firefox's canary: NXDOMAIN, so it keeps its DNS-over-HTTPS off.
    assert_eq!(
        ask(&gw, GATEWAY_INSIDE, "use-application-dns.net", "A", false),
        "rcode=3"
    );
    // HTTPS records lose h3 (no QUIC attempts), ech and the address hints.
    let r = ask(&gw, GATEWAY_INSIDE, "dnsok.test", "HTTPS", false);
    assert_eq!(r, "rcode=0 https-alpn=h2 https-keys=1", "{r}");
    let log = gw.outside_dns_log();
    assert!(
        log.contains("dnsok.test 1\n") && log.contains("private-dns.test"),
        "{log}"
    );
    assert!(
        !log.contains("denied-dns"),
        "a denied name was asked outside: {log}"
    );
    assert!(!log.contains("use-application-dns"), "{log}");
    // DNS to any other server than the responder: no answer at all.
    assert_eq!(ask(&gw, ORIGIN, "dnsok.test", "A", false), "timeout");
    assert_eq!(ask(&gw, "198.18.9.9", "dnsok.test", "A", false), "timeout");
    // Each refusal is accounted under protocol dns with its reason.
    wait::until("the DNS refusals in the audit log", || {
        audited(
            &gw,
            "dns",
            "denied-dns.test",
            "deny",
            Some("not-allowlisted"),
        ) && audited(
            &gw,
            "dns",
            "private-dns.test",
            "deny",
            Some("private-address"),
        ) && audited(&gw, "dns", "dnsok.test", "allow", None)
    });
    let admin = gw.admin();
    let metrics = gw.curl_on_gateway(&[&format!("http://{admin}/metrics")]);
    let dns_denials: f64 = metrics
        .stdout
        .lines()
        .filter(|l| {
            l.starts_with("egress_decisions_total{")
                && l.contains("protocol=\"dns\"")
                && l.contains("reason=\"not-allowlisted\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(dns_denials, 3.0, "{metrics:?}");
    assert_eq!(
        decisions(&gw, "allow", "none"),
        0.0,
        "no intercepted connection yet"
    );
}

/// The gateway's inside address of each family: the client's DNS server over that family.
const GATEWAY_INSIDE6: &str = "2001:2:0:1::1";

#[test]
fn the_responder_answers_over_ipv6_too() {
    let gw = start(Diversion::Tproxy);
    assert_one_address(
        &ask(&gw, GATEWAY_INSIDE6, "dnsok.test", "AAAA", false),
        "aaaa=2001:2:0:2::2",
    );
    assert_one_address(
        &ask(&gw, GATEWAY_INSIDE6, "dnsok.test", "A", true),
        "a=198.18.2.2",
    );
    assert_eq!(
        ask(&gw, GATEWAY_INSIDE6, "denied-dns.test", "AAAA", false),
        "rcode=3"
    );
    assert_eq!(
        ask(&gw, "2001:2:0:2::2", "dnsok.test", "AAAA", false),
        "timeout"
    );
    assert!(!gw.outside_dns_log().contains("denied-dns"));
}

#[test]
fn a_nameless_connection_goes_only_where_the_responder_sent_this_client() {
    // Each family with its own DNS server address: a client is its address, so the answers
    // that hold for its connections over a family are those it asked for over that family.
    let families = [
        (GATEWAY_INSIDE, "-4", ORIGIN),
        (GATEWAY_INSIDE6, "-6", ORIGIN6),
    ];
    for diversion in BOTH {
        let gw = start(diversion);
        for (nameserver, family, origin) in families {
            nameless_case(&gw, nameserver, family, origin);
        }
    }
}

fn nameless_case(gw: &Gateway, nameserver: &str, family: &str, origin: &str) {
    let key = gw.ssh_key();
    let ssh = |target: &str| {
        gw.run_in_client_resolving(
            nameserver,
            &[
                "ssh",
                family,
                "-i",
                key.to_str().unwrap(),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                &format!("root@{target}"),
                "echo",
                "over-ssh",
            ],
        )
    };
    // Straight to the address, with no answer from the responder: nothing allows it.
    let r = ssh(origin);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("over-ssh"), "{r:?}");
    // Through the name the responder answered, allowed on port 22: a real login.
    let r = ssh("sshok.test");
    assert_eq!(r.stdout.trim(), "over-ssh", "{family}: {r:?}");
    // A name allowed on 80 and 443 only, at another address: not on 22. (A nameless
    // connection is known by its address only: had sshok.test been handed the same
    // address, this would pass as sshok.test.)
    let r = ssh("dnsok.test");
    assert_ne!(r.code, 0, "{r:?}");
    // A program resolving through the responder and connecting by name, as any would.
    let r = gw.run_in_client_resolving(
        nameserver,
        &[
            "curl",
            "-sS",
            "-k",
            "--max-time",
            "10",
            "--noproxy",
            "*",
            family,
            "https://dnsok.test/",
        ],
    );
    assert_origin_answered(&r, origin, "dnsok.test");
    let origin = origin.to_string();
    wait::until("the SSH decisions in the audit log", || {
        audited(gw, "transparent", "sshok.test", "allow", None)
            && audited(
                gw,
                "transparent",
                "dnsok.test",
                "deny",
                Some("port-not-allowed"),
            )
            && audited(gw, "transparent", &origin, "deny", Some("not-allowlisted"))
    });
}
