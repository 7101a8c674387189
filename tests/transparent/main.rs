//! Transparent mode on a real gateway made of network namespaces (see `gateway`): programs in
//! the client namespace that know nothing of a proxy (`curl --noproxy '*'`, `openssl
//! s_client`, Python's urllib, a static Go binary, `ssh`, a raw socket) are redirected by nftables to egress's `redirect://` listener,
//! named by their SNI or `Host` header, decided by the policy, and held to the address they
//! were really going to. Every case names what the client sees and the reason egress counted.

#[path = "../support/mod.rs"]
mod support;

mod dns;
mod gateway;
mod identities;

use gateway::{Gateway, BOTH, GATEWAY_INSIDE, ORIGIN, ORIGIN6, ORIGIN6_OTHER, ORIGIN_OTHER};
use support::{header, wait, Curl};

/// The gateway's `/etc/hosts`: what egress's own lookup says each name is.
const HOSTS: &str = "127.0.0.1 localhost\n\
                     198.18.2.2 allowed.test\n\
                     198.18.2.2 denied.test\n\
                     2001:2:0:2::2 allowed6.test\n\
                     2001:2:0:2::2 denied6.test\n\
                     198.18.2.2 multi.test\n\
                     198.18.2.3 multi.test\n\
                     198.18.1.1 gateway.test\n\
                     10.0.0.5 private.test\n\
                     198.18.2.2 mixed.test\n\
                     10.0.0.6 mixed.test\n";

/// Names are allowed on their default ports (80 and 443 for intercepted connections); one
/// address is allowed by an IP entry; the benchmarking ranges the namespaces use are let past
/// the address guard (as a site's own networks would be).
const POLICY: &str = "admin: 127.0.0.1:0\n\
                      allow: [allowed.test, allowed6.test, multi.test, gateway.test, private.test, mixed.test, \"198.18.2.3:443\"]\n\
                      dns: { timeout: 1s }\n\
                      address_guard: { allow_networks: [198.18.0.0/15, \"2001:2::/48\"] }\n";

/// Runs `case` on a fresh gateway of each kind: REDIRECT, then TPROXY.
fn on_both(case: impl Fn(&Gateway)) {
    for diversion in BOTH {
        let gw = Gateway::start(diversion, POLICY, HOSTS);
        case(&gw);
    }
}

/// `curl https://NAME/` from the client, to `address` (what the client's own DNS said).
fn https(gw: &Gateway, name: &str, address: &str) -> Curl {
    let address = bracketed(address);
    gw.curl(&[
        "-k",
        "--resolve",
        &format!("{name}:443:{address}"),
        &format!("https://{name}/"),
    ])
}

/// `curl http://NAME/` from the client, to `address`, with the response head.
fn http(gw: &Gateway, name: &str, address: &str, extra: &[&str]) -> Curl {
    let address = bracketed(address);
    let resolve = format!("{name}:80:{address}");
    let url = format!("http://{name}/");
    let mut args = vec!["-D", "-", "--resolve", &resolve, &url];
    args.extend_from_slice(extra);
    gw.curl(&args)
}

fn bracketed(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

fn assert_origin_answered(r: &Curl, at: &str, sni: &str) {
    assert_eq!(r.code, 0, "curl failed: {r:?}");
    assert!(
        r.stdout.contains(&format!("origin at={at} ")) && r.stdout.contains(&format!("sni={sni}")),
        "not the origin's answer for {at} / {sni}: {r:?}"
    );
}

/// The TLS client was refused with egress's `access_denied` alert (not a reset, not served).
fn assert_tls_refused(r: &Curl) {
    assert_ne!(r.code, 0, "served: {r:?}");
    assert!(
        r.stderr.contains("access denied"),
        "expected a TLS access_denied alert: {r:?}"
    );
    assert!(!r.stdout.contains("origin"), "the origin answered: {r:?}");
}

fn assert_http_refused(r: &Curl, status: u16, reason: &str) {
    assert!(
        r.stdout.starts_with(&format!("HTTP/1.1 {status} ")),
        "expected {status}: {r:?}"
    );
    assert_eq!(header(&r.stdout, "X-Egress-Error"), Some(reason), "{r:?}");
    assert!(
        !r.stdout.contains("origin at="),
        "the origin answered: {r:?}"
    );
}

/// The `egress_decisions_total` samples of protocol `transparent` with `decision` and `reason`.
fn decisions(gw: &Gateway, decision: &str, reason: &str) -> f64 {
    let admin = gw.admin();
    let r = gw.curl_on_gateway(&[&format!("http://{admin}/metrics")]);
    assert_eq!(r.code, 0, "metrics: {r:?}");
    r.stdout
        .lines()
        .filter(|l| l.starts_with("egress_decisions_total{"))
        .filter(|l| l.contains("protocol=\"transparent\""))
        .filter(|l| l.contains(&format!("decision=\"{decision}\"")))
        .filter(|l| l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `n` intercepted requests were counted with `decision` and `reason`.
fn wait_counted(gw: &Gateway, decision: &str, reason: &str, n: f64) {
    wait::until(&format!("{n} transparent {decision} {reason}"), || {
        decisions(gw, decision, reason) >= n
    });
    assert_eq!(decisions(gw, decision, reason), n, "{decision} {reason}");
}

/// `openssl s_client` from the client to `address:443`, sending `sni` (verbatim: an IP, a
/// trailing dot, capitals) and one HTTP request.
fn s_client(gw: &Gateway, address: &str, sni: &str) -> Curl {
    let connect = format!("{}:443", bracketed(address));
    gw.run_in_client(
        &[
            "openssl",
            "s_client",
            "-quiet",
            "-connect",
            &connect,
            "-servername",
            sni,
        ],
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
    )
}

#[test]
fn allowed_names_are_served_over_https_and_http_on_both_families() {
    on_both(|gw| {
        assert_origin_answered(&https(gw, "allowed.test", ORIGIN), ORIGIN, "allowed.test");
        assert_origin_answered(
            &https(gw, "allowed6.test", ORIGIN6),
            ORIGIN6,
            "allowed6.test",
        );
        let r = http(gw, "allowed.test", ORIGIN, &[]);
        assert!(r.stdout.starts_with("HTTP/1.1 200 "), "{r:?}");
        assert_origin_answered(&r, ORIGIN, "None");
        assert!(r.stdout.contains("host=allowed.test"), "{r:?}");
        assert_origin_answered(&http(gw, "allowed6.test", ORIGIN6, &[]), ORIGIN6, "None");
        // A name resolving to several addresses: any of them.
        assert_origin_answered(&https(gw, "multi.test", ORIGIN), ORIGIN, "multi.test");
        assert_origin_answered(
            &https(gw, "multi.test", ORIGIN_OTHER),
            ORIGIN_OTHER,
            "multi.test",
        );
        // The name is normalised as everywhere else: capitals and a trailing dot name the same host.
        // Python's urllib with no proxy variables, resolving the name itself.
        let fetch = "import ssl, urllib.request\n\
                     context = ssl._create_unverified_context()\n\
                     print(urllib.request.urlopen('https://allowed.test/', context=context).read().decode())";
        let r = gw.run_in_client_with_hosts("198.18.2.2 allowed.test\n", &["python3", "-c", fetch]);
        assert_origin_answered(&r, ORIGIN, "allowed.test");
        let r = s_client(gw, ORIGIN, "ALLOWED.Test.");
        assert!(r.stdout.contains(&format!("origin at={ORIGIN} ")), "{r:?}");
        wait_counted(gw, "allow", "none", 8.0);
    });
}

/// tests/clients/programs/direct.go built with CGO_ENABLED=0 into `dir`: a statically linked Go
/// program with its own transport (`Proxy: nil`) and its own resolver, which reads /etc/hosts
/// and never looks at a proxy variable.
fn static_go_client(dir: &std::path::Path) -> std::path::PathBuf {
    let binary = dir.join("direct");
    let source = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/clients/programs/direct.go"
    );
    let out = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(source)
        .env("CGO_ENABLED", "0")
        .env("GO111MODULE", "off")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .output()
        .expect("go (tests/run.sh installs golang-go)");
    assert!(out.status.success(), "go build: {out:?}");
    let linked = std::process::Command::new("ldd")
        .arg(&binary)
        .output()
        .unwrap();
    let linked = String::from_utf8_lossy(&linked.stdout).into_owned()
        + &String::from_utf8_lossy(&linked.stderr);
    assert!(linked.contains("not a dynamic executable"), "{linked}");
    binary
}

#[test]
fn a_static_go_program_with_its_own_transport_is_filtered_too() {
    let dir = tempfile::tempdir().unwrap();
    let go = static_go_client(dir.path());
    let go = go.to_str().unwrap();
    let hosts = "198.18.2.2 allowed.test\n198.18.2.2 denied.test\n";
    on_both(|gw| {
        // Go verifies the origin's certificate (SSL_CERT_FILE: its own trust store, no C library).
        let trust = format!("SSL_CERT_FILE={}", gw.origin_cert().display());
        let get = |url: &str| gw.run_in_client_with_hosts(hosts, &["env", &trust, go, url]);
        let r = get("https://allowed.test/");
        assert_origin_answered(&r, ORIGIN, "allowed.test");
        let r = get("http://allowed.test/");
        assert_origin_answered(&r, ORIGIN, "None");
        assert!(r.stdout.contains("host=allowed.test"), "{r:?}");
        let r = get("https://denied.test/");
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stdout.contains("remote error: tls: access denied"),
            "{r:?}"
        );
        let r = get("http://denied.test/");
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (1, "403 Forbidden by egress: not-allowlisted\n"),
            "{r:?}"
        );
        wait_counted(gw, "allow", "none", 2.0);
        wait_counted(gw, "deny", "not-allowlisted", 2.0);
    });
}

#[test]
fn denied_names_are_refused_in_their_own_protocol() {
    on_both(|gw| {
        assert_tls_refused(&https(gw, "denied.test", ORIGIN));
        assert_tls_refused(&https(gw, "denied6.test", ORIGIN6));
        assert_http_refused(
            &http(gw, "denied.test", ORIGIN, &[]),
            403,
            "not-allowlisted",
        );
        assert_http_refused(
            &http(gw, "denied6.test", ORIGIN6, &[]),
            403,
            "not-allowlisted",
        );
        // The Host header is what names a plain HTTP request, whatever the URL said.
        let r = http(gw, "allowed.test", ORIGIN, &["-H", "Host: denied.test"]);
        assert_http_refused(&r, 403, "not-allowlisted");
        wait_counted(gw, "deny", "not-allowlisted", 5.0);
        let line = gw.proxy.wait_for_log("the decision on denied.test", |v| {
            support::message(v) == "decision" && v["host"] == "denied.test"
        });
        assert_eq!(line["protocol"], "transparent", "{line}");
        assert_eq!(line["reason"], "not-allowlisted", "{line}");
    });
}

#[test]
fn every_request_on_a_kept_alive_connection_is_named_anew() {
    on_both(|gw| {
        // Two pipelined requests on one connection: the second switches to a denied Host.
        let script = format!(
            "import socket\n\
             s = socket.create_connection(('{ORIGIN}', 80), timeout=10)\n\
             s.sendall(b'GET /1 HTTP/1.1\\r\\nHost: allowed.test\\r\\n\\r\\n'\n\
                       b'GET /2 HTTP/1.1\\r\\nHost: denied.test\\r\\n\\r\\n')\n\
             out = b''\n\
             while True:\n\
             \x20   chunk = s.recv(65536)\n\
             \x20   if not chunk: break\n\
             \x20   out += chunk\n\
             print(out.decode(errors='replace'))\n"
        );
        let r = gw.run_in_client(&["python3", "-c", &script], b"");
        assert_eq!(r.code, 0, "{r:?}");
        let first = r
            .stdout
            .find("HTTP/1.1 200 ")
            .expect("the first request served");
        let second = r
            .stdout
            .find("HTTP/1.1 403 ")
            .expect("the second request refused");
        assert!(first < second, "{r:?}");
        assert!(
            r.stdout.contains("X-Egress-Error: not-allowlisted"),
            "{r:?}"
        );
        assert_eq!(r.stdout.matches("origin at=").count(), 1, "{r:?}");
    });
}

#[test]
fn a_name_must_resolve_to_the_address_the_client_was_going_to() {
    on_both(|gw| {
        // An allowed SNI or Host, sent to an address egress's lookup does not give for it.
        assert_tls_refused(&https(gw, "allowed.test", ORIGIN_OTHER));
        assert_tls_refused(&https(gw, "allowed6.test", ORIGIN6_OTHER));
        assert_tls_refused(&https(gw, "allowed6.test", ORIGIN)); // the other family
        assert_tls_refused(&https(gw, "multi.test", "198.18.2.4")); // none of its addresses
        assert_tls_refused(&https(gw, "allowed.test", "10.9.9.9")); // a private address
        assert_http_refused(
            &http(gw, "allowed.test", ORIGIN_OTHER, &[]),
            400,
            "host-mismatch",
        );
        assert_http_refused(
            &http(gw, "allowed6.test", ORIGIN6_OTHER, &[]),
            400,
            "host-mismatch",
        );
        // An IP literal as SNI names that address, and only that one: 198.18.2.3 is allowed by
        // an IP entry, but the connection went to 198.18.2.2.
        let r = s_client(gw, ORIGIN, ORIGIN_OTHER);
        assert!(!r.stdout.contains("origin at="), "{r:?}");
        wait_counted(gw, "deny", "host-mismatch", 8.0);
        // A name that resolves to a private address is refused by the address guard, as through
        // the explicit proxy.
        assert_tls_refused(&https(gw, "private.test", "10.0.0.5"));
        // So is a name with a private address among its public ones, even when the client went to
        // the public one: mixed answers are how DNS rebinding starts.
        assert_tls_refused(&https(gw, "mixed.test", ORIGIN));
        wait_counted(gw, "deny", "private-address", 2.0);
    });
}

#[test]
fn a_connection_without_a_name_needs_an_ip_entry() {
    on_both(|gw| {
        // https://IP/ sends no SNI: decided on the original address.
        assert_tls_refused(&https(gw, ORIGIN, ORIGIN));
        assert_origin_answered(&https(gw, ORIGIN_OTHER, ORIGIN_OTHER), ORIGIN_OTHER, "None");
        // HTTP/1.0 without a Host header: the same.
        let r = gw.curl(&["-D", "-", "-0", "-H", "Host:", &format!("http://{ORIGIN}/")]);
        assert_http_refused(&r, 403, "not-allowlisted");
        // Neither TLS nor HTTP: closed without a byte.
        let script = format!(
            "import socket\n\
             s = socket.create_connection(('{ORIGIN}', 443), timeout=10)\n\
             s.sendall(b'\\x00\\x01 not a protocol')\n\
             try:\n\
             \x20   print(len(s.recv(100)))\n\
             except ConnectionResetError:\n\
             \x20   print('reset')\n"
        );
        let r = gw.run_in_client(&["python3", "-c", &script], b"");
        assert!(matches!(r.stdout.trim(), "0" | "reset"), "{r:?}");
        wait_counted(gw, "deny", "not-allowlisted", 3.0);
    });
}

#[test]
fn the_proxy_host_itself_is_never_a_destination() {
    on_both(|gw| {
        // Redirected to the gateway's own address (allowed by name and by allow_networks alike):
        // egress would reach its own host's services.
        assert_tls_refused(&https(gw, "gateway.test", GATEWAY_INSIDE));
        let r = http(gw, "gateway.test", GATEWAY_INSIDE, &[]);
        assert_http_refused(&r, 403, "private-address");
        // Straight to the listener, not redirected: its original destination is itself.
        let port = gw.proxy.addr.port();
        let r = gw.curl(&[
            "-D",
            "-",
            "-H",
            "Host: allowed.test",
            &format!("http://{GATEWAY_INSIDE}:{port}/"),
        ]);
        assert_http_refused(&r, 403, "private-address");
        // The same over IPv6, and as TLS (which gets its alert).
        let r = gw.curl(&[
            "-D",
            "-",
            "-H",
            "Host: allowed.test",
            &format!("http://[2001:2:0:1::1]:{port}/"),
        ]);
        assert_http_refused(&r, 403, "private-address");
        let r = s_client(gw, GATEWAY_INSIDE, "gateway.test");
        assert!(!r.stdout.contains("origin at="), "{r:?}");
        wait_counted(gw, "deny", "private-address", 5.0);
    });
}

#[test]
fn the_explicit_proxy_on_the_same_gateway_shares_the_policy_and_the_accounts() {
    on_both(|gw| {
        let r = gw.curl_via_proxy(&["-k", "https://allowed.test/"]);
        assert_origin_answered(&r, ORIGIN, "allowed.test");
        let r = gw.curl_via_proxy(&["-D", "-", "http://denied.test/"]);
        assert_http_refused(&r, 403, "not-allowlisted");
        assert_origin_answered(&https(gw, "allowed.test", ORIGIN), ORIGIN, "allowed.test");
        assert_tls_refused(&https(gw, "denied.test", ORIGIN));
        wait_counted(gw, "allow", "none", 1.0);
        wait_counted(gw, "deny", "not-allowlisted", 1.0);
        // One audit line per request, each under its own protocol.
        let seen = |protocol: &str, host: &str, decision: &str| {
            gw.audit().iter().any(|l| {
                l["protocol"] == protocol && l["host"] == host && l["decision"] == decision
            })
        };
        wait::until("the four audit lines", || {
            seen("http-connect", "allowed.test", "allow")
                && seen("http-forward", "denied.test", "deny")
                && seen("transparent", "allowed.test", "allow")
                && seen("transparent", "denied.test", "deny")
        });
        let denied = gw
            .audit()
            .into_iter()
            .find(|l| l["protocol"] == "transparent" && l["decision"] == "deny")
            .unwrap();
        assert_eq!(denied["reason"], "not-allowlisted", "{denied}");
        assert_eq!(denied["port"], 443, "{denied}");
    });
}

#[test]
fn the_printed_rules_reject_quic_and_drop_what_they_do_not_intercept() {
    on_both(|gw| {
        // UDP 443 (QUIC) is rejected at once, so clients fall back to TCP.
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.settimeout(10)\n\
             s.connect(('{ORIGIN}', 443))\n\
             s.send(b'quic?')\n\
             try:\n\
             \x20   s.recv(100)\n\
             \x20   print('answered')\n\
             except ConnectionRefusedError:\n\
             \x20   print('rejected')\n"
        );
        let r = gw.run_in_client(&["python3", "-c", &script], b"");
        assert_eq!(r.stdout.trim(), "rejected", "{r:?}");
        // TCP to a port that is not intercepted never reaches the origin (which would reset it:
        // nothing listens there): dropped, so the connect times out.
        let r = gw.curl(&["--connect-timeout", "1", &format!("http://{ORIGIN}:22/")]);
        assert_eq!(r.code, 28, "expected a connect timeout (dropped): {r:?}");
    });
}
