//! TLS to the parent proxy (`url: https://…`), against a real Squid on an `https_port` with
//! certificates from a throwaway CA: the parent's certificate and name are verified, a client
//! certificate is presented when the parent asks for one, and every failure is a
//! `502 upstream-tls-failed` whose log line says why. CONNECT and forwarded requests travel
//! inside the TLS session; Squid's access.log is the witness that they arrived.

mod support;

use support::origin::Servers;
use support::pki::{Ca, Issued};
use support::squid::{HttpsPort, Squid, SquidOptions};
use support::stunnel::Stunnel;
use support::{assert_served, curl, header, message, Proxy};

const HOSTS: &[(&str, &str)] = &[("allowed.test", "127.0.0.1")];

fn tls_squid(server: &Issued) -> Squid {
    Squid::start(&SquidOptions {
        hosts: HOSTS,
        https: Some(HttpsPort {
            cert: &server.cert,
            key: &server.key,
        }),
        ..SquidOptions::default()
    })
}

/// egress whose only parent is `https://localhost:<squid's TLS port>` with `extra` keys.
fn egress_via_tls(squid: &Squid, extra: &str) -> Proxy {
    egress_via_tls_port(squid.https_addr.expect("https_port").port(), extra)
}

fn egress_via_tls_port(port: u16, extra: &str) -> Proxy {
    Proxy::start_with(
        &format!(
            "listen: 127.0.0.1:0\n\
             allow: [\"allowed.test:*\"]\n\
             upstreams:\n  corp:\n    url: https://localhost:{port}\n{extra}\
             route:\n  default: corp\n"
        ),
        &[],
    )
}

fn ca_key(ca: &Ca) -> String {
    format!("    ca_file: {}\n", ca.cert.display())
}

/// The client's view of a refusal through a tunnel and as a forwarded request: 502 and
/// `upstream-tls-failed` both ways; egress's log says why in words containing `why`.
#[track_caller]
fn assert_tls_failed(egress: &Proxy, url: &str, why: &str) {
    for tunnel in [false, true] {
        let mut args = vec!["-s", "-D", "-", "-x", egress.url().leak()];
        if tunnel {
            args.push("-p");
        }
        args.push(url);
        let r = curl(&args);
        assert!(r.stdout.starts_with("HTTP/1.1 502 "), "{r:?}");
        assert_eq!(
            header(&r.stdout, "x-egress-error"),
            Some("upstream-tls-failed"),
            "tunnel={tunnel} {r:?}"
        );
    }
    let log = egress.log_text();
    assert!(
        log.contains(why),
        "egress's log does not say {why:?}:\n{log}"
    );
}

#[test]
fn connect_and_forwarded_requests_travel_inside_tls_to_a_verified_parent() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "parent");
    let squid = tls_squid(&ca.server("squid", &["localhost"]));
    let egress = egress_via_tls(&squid, &ca_key(&ca));

    let url = format!("http://allowed.test:{port}/hello");
    assert_served(&curl(&["-x", &egress.url(), &url]));
    assert_served(&curl(&["-p", "-x", &egress.url(), &url]));
    // Kept alive inside the session: two forwarded requests on one client connection.
    let r = curl(&["-x", &egress.url(), &url, &url]);
    assert_eq!(r.stdout, "hello from origin\n".repeat(2), "{r:?}");
    // A SOCKS5 client's connection is a CONNECT inside the TLS session too.
    let socks = egress.addr.to_string();
    assert_served(&curl(&["--socks5-hostname", &socks, &url]));

    let log = squid.wait_for_entries(5);
    let seen: Vec<(&str, u16)> = log.iter().map(|e| (e.method.as_str(), e.status)).collect();
    assert_eq!(
        seen,
        [
            ("GET", 200),
            ("CONNECT", 200),
            ("GET", 200),
            ("GET", 200),
            ("CONNECT", 200)
        ]
    );
}

#[test]
fn a_parent_certificate_for_another_name_is_refused() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "parent");
    let squid = tls_squid(&ca.server("squid", &["squid.elsewhere.test"]));
    let egress = egress_via_tls(&squid, &ca_key(&ca));
    let url = format!("http://allowed.test:{port}/hello");
    assert_tls_failed(&egress, &url, "certificate not valid for name");
    assert!(squid.access_log().is_empty(), "{:?}", squid.access_log());

    // With a fallback, the next parent serves; the refused one stays down through its probes
    // (they shake hands too) instead of coming up and failing the next request's handshake.
    let backup = Squid::start(&SquidOptions {
        hosts: HOSTS,
        ..SquidOptions::default()
    });
    let extra = format!(
        "{}    fallback: [backup]\n    health_check: 200ms\n  backup:\n    url: http://{}\n",
        ca_key(&ca),
        backup.addr
    );
    let with_backup = egress_via_tls(&squid, &extra);
    let proxy = with_backup.url();
    let started = std::time::Instant::now();
    let mut served = 0;
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        let tunnel = if served % 2 == 1 { "-p" } else { "-s" };
        assert_served(&curl(&[tunnel, "-x", &proxy, &url]));
        served += 1;
    }
    assert_eq!(backup.wait_for_entries(served).len(), served);
    let changes = |what: &str| {
        with_backup
            .logs()
            .iter()
            .filter(|v| message(v) == what && v["upstream"] == "corp")
            .count()
    };
    assert_eq!((changes("upstream down"), changes("upstream up")), (1, 0));
}

#[test]
fn a_parent_certificate_from_an_untrusted_ca_is_refused() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "parent");
    let other = Ca::new(dir.path(), "other");
    let squid = tls_squid(&ca.server("squid", &["localhost"]));
    let url = format!("http://allowed.test:{port}/hello");
    // Neither the system roots alone nor another CA vouch for the parent.
    for extra in [String::new(), ca_key(&other)] {
        let egress = egress_via_tls(&squid, &extra);
        assert_tls_failed(&egress, &url, "UnknownIssuer");
    }
    assert!(squid.access_log().is_empty(), "{:?}", squid.access_log());
}

#[test]
fn a_parent_that_requires_a_client_certificate_gets_the_configured_one() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "parent");
    let clients = Ca::new(dir.path(), "clients");
    let strangers = Ca::new(dir.path(), "strangers");
    // The parent's TLS is stunnel's, verifying clients; behind it a plain Squid.
    let squid = Squid::start(&SquidOptions {
        hosts: HOSTS,
        ..SquidOptions::default()
    });
    let server = ca.server("stunnel", &["localhost"]);
    let stunnel = Stunnel::start(&server.cert, &server.key, &clients.cert, squid.addr);
    let parent_port = stunnel.addr.port();
    let url = format!("http://allowed.test:{port}/hello");

    let with_cert = |issued: &Issued| {
        format!(
            "{}    client_cert: {}\n    client_key: {}\n",
            ca_key(&ca),
            issued.cert.display(),
            issued.key.display()
        )
    };
    let egress = egress_via_tls_port(parent_port, &with_cert(&clients.client("egress", "egress")));
    assert_served(&curl(&["-x", &egress.url(), &url]));
    assert_served(&curl(&["-p", "-x", &egress.url(), &url]));
    assert_eq!(squid.wait_for_entries(2).len(), 2);

    // Without a certificate, or with one the parent does not trust: refused, and said so.
    let egress = egress_via_tls_port(parent_port, &ca_key(&ca));
    assert_tls_failed(&egress, &url, "received fatal alert");
    let egress = egress_via_tls_port(
        parent_port,
        &with_cert(&strangers.client("stranger", "stranger")),
    );
    assert_tls_failed(&egress, &url, "received fatal alert");
    assert_eq!(squid.access_log().len(), 2, "{:?}", squid.access_log());
}
