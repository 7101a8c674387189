//! Clients that honour no proxy variable, under egress-run with capture (on by default): every
//! proxy variable is removed inside the sandbox before each runs (`Setup::Captured`). Each one
//! reaches the allowed origin by name over TLS with the test CA — its lookup answered by the
//! sandbox's DNS stub, its connection captured and decided by egress — and is refused the name
//! the policy does not allow at its lookup: `NXDOMAIN`, told in the exit summary with the
//! policy's reason. A connection whose name (SNI, `Host`) disagrees with where it goes is
//! refused `host-mismatch`, whether it goes to a stand-in address or a literal one.

use super::cases::shows_in_order;
use super::{run, world, Setup};

/// What egress-run's summary says of the refused lookup.
const DNS_REFUSED: &str = "egress-run: dns: denied.test NXDOMAIN (not-allowlisted).";

/// `fetch` (a script using `$URL`) gets the origin's `/hello`; with `$URL` on the denied name it
/// fails showing `refused`, and the summary names the refused lookup.
fn reaches_the_origin_and_is_refused_the_denied_name(client: &str, fetch: &str, refused: &str) {
    reaches(client, fetch, refused, true)
}

/// As above; `plain`: over plain HTTP too.
fn reaches(client: &str, fetch: &str, refused: &str, plain: bool) {
    let w = world();
    let bases = [(&w.origin, "TLS"), (&w.plain, "plain HTTP")];
    for (base, what) in &bases[..if plain { 2 } else { 1 }] {
        let script = format!("URL={base}/hello; {fetch}");
        let (ok, shown) = run(Setup::Captured, &script, &[]);
        assert!(
            ok && shown.contains("hello from origin"),
            "{client} ({what}) reaches the origin through capture:\n{shown}"
        );
        assert!(!shown.contains("egress-run: blocked"), "{shown}");
    }
    let script = format!("URL={}/hello; {fetch}", w.denied);
    let (ok, shown) = run(Setup::Captured, &script, &[]);
    assert!(!ok, "{client} is refused denied.test:\n{shown}");
    assert!(
        shows_in_order(&shown, refused),
        "{client} shows `{refused}`:\n{shown}"
    );
    assert!(
        shown.contains(DNS_REFUSED),
        "{client}: the summary:\n{shown}"
    );
}

#[test]
fn curl_with_noproxy() {
    reaches_the_origin_and_is_refused_the_denied_name(
        "curl --noproxy '*'",
        r#"curl -sS --noproxy '*' "$URL""#,
        "Could not resolve host: denied.test",
    );
}

#[test]
fn python_urllib_with_an_empty_proxy_handler() {
    reaches_the_origin_and_is_refused_the_denied_name(
        "Python urllib, ProxyHandler({})",
        r#"/usr/bin/python3 -c 'import sys, urllib.request as u
try:
    print(u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=30).read().decode())
except Exception as e:
    print(e); sys.exit(1)' "$URL""#,
        "Name or service not known",
    );
}

#[test]
fn go_with_its_own_transport_statically_linked() {
    // The program is a static binary (CGO_ENABLED=0): it reads /etc/resolv.conf and asks the
    // nameserver itself, without the C library.
    let (_, shown) = run(Setup::Captured, r#"ldd "$BUILT/direct" 2>&1"#, &[]);
    assert!(shown.contains("not a dynamic executable"), "{shown}");
    reaches_the_origin_and_is_refused_the_denied_name(
        "Go, Transport{Proxy: nil}",
        r#""$BUILT/direct" "$URL""#,
        "lookup denied.test…no such host",
    );
}

#[test]
fn node_https_get() {
    reaches_the_origin_and_is_refused_the_denied_name(
        "Node https.get",
        r#"node "$PROGRAMS/https_get.js" "$URL""#,
        "ENOTFOUND: getaddrinfo ENOTFOUND denied.test",
    );
}

#[test]
fn node_fetch() {
    reaches_the_origin_and_is_refused_the_denied_name(
        "Node fetch",
        r#"node "$PROGRAMS/fetch.js" "$URL""#,
        "fetch failed: getaddrinfo ENOTFOUND denied.test",
    );
}

#[test]
fn java_http_client_without_proxy_properties() {
    // Over TLS only: to an http:// URL, HttpClient (HTTP/2 by default) asks for an h2c upgrade
    // (`Connection: Upgrade, HTTP2-Settings`), which egress refuses as it would from a proxy
    // client (bad-request); not something capture changes.
    reaches(
        "Java HttpClient",
        r#"java -cp "$BUILT" Get client "$URL""#,
        "java.net.ConnectException",
        false,
    );
}

#[test]
fn getent_answers_allowed_names_with_stand_ins_and_hosts_entries_still_work() {
    let (ok, shown) = run(
        Setup::Captured,
        "getent hosts origin.test && getent hosts localhost",
        &[],
    );
    assert!(ok, "{shown}");
    assert!(shown.starts_with("198.18.0."), "a stand-in: {shown}");
    assert!(shown.contains("origin.test"), "{shown}");
    // /etc/hosts comes first, as on the host.
    assert!(shown.contains("localhost"), "{shown}");
    assert!(!shown.contains("egress-run: dns"), "{shown}");
    let (ok, shown) = run(Setup::Captured, "getent hosts denied.test", &[]);
    assert!(!ok, "{shown}");
    assert!(shown.contains(DNS_REFUSED), "{shown}");
}

#[test]
fn a_name_that_disagrees_with_where_the_connection_goes_is_host_mismatch() {
    let w = world();
    let port = w.origin.rsplit(':').next().unwrap();
    let plain_port = w.plain.rsplit(':').next().unwrap();
    let blocked = format!("egress-run: blocked origin.test:{port} (host-mismatch).");
    // An allowed SNI towards an address that name does not resolve to (egress's own lookup
    // gives 127.0.0.1): a literal address, captured and named by its SNI.
    let literal = format!(
        r#"curl -sS --noproxy '*' --connect-to origin.test:{port}:10.9.9.9:{port} "$ORIGIN/hello""#
    );
    let (ok, shown) = run(Setup::Captured, &literal, &[]);
    assert!(!ok, "{shown}");
    assert!(shown.contains(&blocked), "{shown}");
    // Another name's SNI towards origin.test's stand-in.
    let stand_in = format!(
        r#"a=$(getent hosts origin.test | cut -d' ' -f1)
           curl -sS --noproxy '*' --resolve denied.test:{port}:$a https://denied.test:{port}/hello"#
    );
    let (ok, shown) = run(Setup::Captured, &stand_in, &[]);
    assert!(!ok, "{shown}");
    assert!(
        shown.contains(&format!("denied.test:{port} (host-mismatch)")),
        "{shown}"
    );
    // The same in plain HTTP: another name in the Host header.
    let host =
        format!(r#"curl -sS --noproxy '*' -H 'Host: denied.test:{plain_port}' "$PLAIN/hello""#);
    let (ok, shown) = run(Setup::Captured, &format!("{host} -f"), &[]);
    assert!(!ok, "{shown}");
    assert!(
        shown.contains(&format!("denied.test:{plain_port} (host-mismatch)")),
        "{shown}"
    );
}

#[test]
fn udp_other_than_dns_cannot_leave() {
    let (ok, shown) = run(
        Setup::Captured,
        r#"/usr/bin/python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
try:
    s.sendto(b"x", ("10.9.9.9", 443)); s.recv(10); print("answered")
except OSError as e:
    print("refused", e)'"#,
        &[],
    );
    assert!(ok, "{shown}");
    assert!(shown.starts_with("refused"), "{shown}");
}
