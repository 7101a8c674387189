//! Kerberos (`auth: negotiate`) to the parent proxy, against a real MIT KDC for a test realm
//! and a real Squid that requires Negotiate (`negotiate_kerberos_auth` with the HTTP service's
//! keytab). Squid's access.log names the principal each request was authenticated as; the
//! KDC's log shows which tickets were issued. Failures (a wrong keytab, a KDC that is down)
//! are `502 upstream-auth-failed` with GSSAPI's reason in egress's log, and never a ticket or
//! a token anywhere egress writes.

mod support;

use support::kdc::{Kdc, REALM};
use support::origin::Servers;
use support::squid::{NegotiateAuth, Squid, SquidOptions};
use support::{assert_served, curl, header, message, Proxy};

const HOSTS: &[(&str, &str)] = &[("allowed.test", "127.0.0.1")];
/// The parent's service principal; Squid is reached as `localhost`.
const SERVICE: &str = "HTTP/localhost";

/// A realm with Squid's service and egress's service account, and a Squid requiring Negotiate.
struct Realm {
    kdc: Kdc,
    squid: Squid,
    /// egress's keytab (principal `egress`).
    keytab: std::path::PathBuf,
}

fn realm() -> Realm {
    let kdc = Kdc::start();
    kdc.add_principal(SERVICE);
    kdc.add_principal("egress");
    let service_keytab = kdc.keytab(SERVICE, "http.keytab");
    let keytab = kdc.keytab("egress", "egress.keytab");
    let krb5_config = kdc.krb5_config();
    let squid = Squid::start(&SquidOptions {
        hosts: HOSTS,
        negotiate: Some(NegotiateAuth {
            keytab: &service_keytab,
            krb5_config: &krb5_config,
        }),
        ..SquidOptions::default()
    });
    Realm { kdc, squid, keytab }
}

/// egress whose parent `corp` is the Kerberos Squid (by the name `localhost`), with `extra`
/// keys for it and `more` after it (other upstreams).
fn egress(realm: &Realm, extra: &str, more: &str, env: &[(String, String)]) -> Proxy {
    let port = realm.squid.addr.port();
    let policy = format!(
        "listen: 127.0.0.1:0\n\
         allow: [\"allowed.test:*\"]\n\
         upstreams:\n  corp:\n    url: http://localhost:{port}\n    auth: negotiate\n{extra}{more}\
         route:\n  default: corp\n"
    );
    let mut all = realm.kdc.env();
    all.extend(env.iter().cloned());
    let env: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Proxy::start_with_env(&policy, &[], &env)
}

fn keytab_key(path: &std::path::Path) -> String {
    format!("    keytab: {}\n", path.display())
}

/// Nothing egress wrote holds a Negotiate token or a ticket.
#[track_caller]
fn assert_no_token_in(egress: &Proxy) {
    let log = egress.log_text();
    assert!(
        !log.contains("Negotiate "),
        "a token in egress's log:\n{log}"
    );
    // A SPNEGO token starts with an ASN.1 application tag: `YII` in base64.
    assert!(!log.contains("YII"), "a token in egress's log:\n{log}");
}

#[test]
fn connect_and_forwarded_requests_reach_the_origin_as_the_keytabs_principal() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let realm = realm();
    let egress = egress(&realm, &keytab_key(&realm.keytab), "", &[]);

    let url = format!("http://allowed.test:{port}/hello");
    // The parent really demands Kerberos: a client without a ticket gets its 407.
    let r = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-x",
        &realm.squid.addr.to_string(),
        &url,
    ]);
    assert_eq!(r.stdout, "407", "{r:?}");
    assert_served(&curl(&["-x", &egress.url(), &url]));
    assert_served(&curl(&["-p", "-x", &egress.url(), &url]));
    // Two requests on one client connection: the parent connection stays authenticated.
    let r = curl(&["-x", &egress.url(), &url, &url]);
    assert_eq!(r.stdout, "hello from origin\n".repeat(2), "{r:?}");
    // A SOCKS5 client's connection becomes a Kerberos-authenticated CONNECT too.
    let socks = egress.addr.to_string();
    assert_served(&curl(&["--socks5-hostname", &socks, &url]));

    let log = realm.squid.wait_for_entries(6);
    let log = &log[1..];
    let principal = format!("egress@{REALM}");
    let seen: Vec<(&str, &str, u16)> = log
        .iter()
        .map(|e| (e.method.as_str(), e.user.as_str(), e.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", principal.as_str(), 200),
            ("CONNECT", principal.as_str(), 200),
            ("GET", principal.as_str(), 200),
            ("GET", principal.as_str(), 200),
            ("CONNECT", principal.as_str(), 200),
        ]
    );
    assert_no_token_in(&egress);
    // One ticket from the keytab served every request.
    assert_eq!(
        initial_tickets_for_egress(&realm.kdc),
        1,
        "{}",
        realm.kdc.log()
    );
}

/// The client's view of a refusal through a tunnel and as a forwarded request.
#[track_caller]
fn assert_refused(egress: &Proxy, url: &str, reason: &str) {
    for tunnel in [false, true] {
        let proxy = egress.url();
        let mut args = vec!["-s", "-D", "-", "-x", proxy.as_str()];
        if tunnel {
            args.push("-p");
        }
        args.push(url);
        let r = curl(&args);
        assert!(r.stdout.starts_with("HTTP/1.1 502 "), "{r:?}");
        assert_eq!(header(&r.stdout, "x-egress-error"), Some(reason), "{r:?}");
    }
}

#[test]
fn a_wrong_keytab_is_upstream_auth_failed_with_gssapi_saying_why() {
    let servers = Servers::new();
    let url = format!("http://allowed.test:{}/hello", servers.http_origin().port());
    let realm = realm();
    // A key the KDC no longer has (the principal was given a new one since)...
    let stale = realm.kdc.keytab("egress", "stale.keytab");
    realm.kdc.keytab("egress", "current.keytab");
    // ...and the key of a principal the realm no longer knows.
    realm.kdc.add_principal("ghost");
    let ghost = realm.kdc.keytab("ghost", "ghost.keytab");
    realm.kdc.delete_principal("ghost");

    let missing = realm.kdc.dir().join("no-such.keytab");
    for (keytab, why) in [
        (&stale, "Decrypt integrity check failed"),
        (&ghost, "not found in Kerberos database"),
        (&missing, "no-such.keytab: No such file or directory"),
    ] {
        let egress = egress(&realm, &keytab_key(keytab), "", &[]);
        assert_refused(&egress, &url, "upstream-auth-failed");
        let log = egress.log_text();
        assert!(
            log.contains(why),
            "egress's log does not say {why:?}:\n{log}"
        );
        assert_no_token_in(&egress);
    }
    // Nothing reached the parent: without a ticket there was nothing to send.
    assert!(
        realm.squid.access_log().is_empty(),
        "{:?}",
        realm.squid.access_log()
    );
}

#[test]
fn a_token_the_parent_rejects_is_upstream_auth_failed() {
    let servers = Servers::new();
    let url = format!("http://allowed.test:{}/hello", servers.http_origin().port());
    let realm = realm();
    // The service gets a new key that Squid's keytab does not hold: egress's ticket is good in
    // the realm, and Squid cannot read it, so it answers 407 again.
    realm.kdc.keytab(SERVICE, "rotated-http.keytab");
    let egress = egress(&realm, &keytab_key(&realm.keytab), "", &[]);
    assert_refused(&egress, &url, "upstream-auth-failed");
    let log = egress.log_text();
    assert!(log.contains("rejected egress's credentials"), "{log}");
    assert_no_token_in(&egress);
    let seen: Vec<u16> = realm
        .squid
        .wait_for_entries(2)
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(seen, [407, 407]);
}

#[test]
fn a_clock_far_from_the_kdcs_is_corrected_or_refused_saying_so() {
    let servers = Servers::new();
    let url = format!("http://allowed.test:{}/hello", servers.http_origin().port());
    let realm = realm();
    let port = realm.squid.addr.port();
    let policy = format!(
        "listen: 127.0.0.1:0\n\
         allow: [\"allowed.test:*\"]\n\
         upstreams:\n  corp:\n    url: http://localhost:{port}\n    auth: negotiate\n{}\
         route:\n  default: corp\n",
        keytab_key(&realm.keytab)
    );
    // egress (and so its Kerberos agent) 15 minutes ahead of the KDC, through libfaketime.
    // Preloaded directly rather than through the `faketime` command, which would fork and leave
    // egress behind when the test ends it.
    let preload = libfaketime();
    let skewed = |krb5_config: &std::path::Path| {
        let config = krb5_config.display().to_string();
        Proxy::start_with_env(
            &policy,
            &[],
            &[
                ("KRB5_CONFIG", config.as_str()),
                ("LD_PRELOAD", preload.as_str()),
                ("FAKETIME", "+15m"),
            ],
        )
    };
    // MIT krb5 learns the KDC's time from its skew error and corrects for it (kdc_timesync,
    // on by default): the request is served.
    let corrected = skewed(&realm.kdc.krb5_config());
    assert_served(&curl(&["-x", &corrected.url(), &url]));
    assert_eq!(realm.squid.wait_for_entries(1).len(), 1);
    // Where that correction is turned off, the failure says what is wrong.
    let strict = realm.kdc.dir().join("krb5-strict.conf");
    let text = std::fs::read_to_string(realm.kdc.krb5_config()).unwrap();
    std::fs::write(
        &strict,
        text.replace("[libdefaults]\n", "[libdefaults]\n\tkdc_timesync = 0\n"),
    )
    .unwrap();
    let refused = skewed(&strict);
    assert_refused(&refused, &url, "upstream-auth-failed");
    let log = refused.log_text();
    assert!(log.contains("Clock skew too great"), "{log}");
    assert_eq!(
        realm.squid.access_log().len(),
        1,
        "{:?}",
        realm.squid.access_log()
    );
}

#[test]
fn a_kdc_that_is_down_is_a_clear_failure_and_the_next_parent_takes_over() {
    let servers = Servers::new();
    let url = format!("http://allowed.test:{}/hello", servers.http_origin().port());
    let mut realm = realm();
    realm.kdc.stop();
    let backup = Squid::start(&SquidOptions {
        hosts: HOSTS,
        ..SquidOptions::default()
    });

    // Alone, the Kerberos parent cannot be used: 502 upstream-auth-failed, and why.
    let alone = egress(&realm, &keytab_key(&realm.keytab), "", &[]);
    assert_refused(&alone, &url, "upstream-auth-failed");
    let log = alone.log_text();
    assert!(log.contains("Cannot contact any KDC"), "{log}");

    // With a fallback, the request goes there instead.
    let fallback = format!(
        "{}    fallback: [backup]\n    health_check: 200ms\n",
        keytab_key(&realm.keytab)
    );
    let backup_url = format!("  backup:\n    url: http://{}\n", backup.addr);
    let with_backup = egress(&realm, &fallback, &backup_url, &[]);
    // For several health-check periods: every request is served by the backup, and the
    // Kerberos parent stays down (its probe asks for a ticket too, so it does not come back up
    // only to fail the next request's ticket again).
    let started = std::time::Instant::now();
    let mut served = 0;
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        let mut args = vec!["-x", with_backup.url().leak()];
        if served % 2 == 1 {
            args.push("-p");
        }
        args.push(url.as_str());
        assert_served(&curl(&args));
        served += 1;
    }
    assert_eq!(backup.wait_for_entries(served).len(), served);
    assert!(
        realm.squid.access_log().is_empty(),
        "{:?}",
        realm.squid.access_log()
    );
    let changes = |what: &str| {
        with_backup
            .logs()
            .iter()
            .filter(|v| message(v) == what && v["upstream"] == "corp")
            .count()
    };
    assert_eq!((changes("upstream down"), changes("upstream up")), (1, 0));

    // Once the KDC is back, the Kerberos parent serves again: at once where nothing marked it
    // down, and after its probe got a ticket where something did.
    realm.kdc.restart();
    assert_served(&curl(&["-x", &alone.url(), &url]));
    with_backup.wait_for_log("corp up again", |v| {
        message(v) == "upstream up" && v["upstream"] == "corp"
    });
    assert_served(&curl(&["-x", &with_backup.url(), &url]));
    let principal = format!("egress@{REALM}");
    let users: Vec<String> = realm
        .squid
        .wait_for_entries(2)
        .iter()
        .map(|e| e.user.clone())
        .collect();
    assert_eq!(users, [principal.clone(), principal]);
}

/// Debian's libfaketime (package `faketime`), wherever the architecture puts it.
fn libfaketime() -> String {
    std::fs::read_dir("/usr/lib")
        .unwrap()
        .flatten()
        .map(|dir| dir.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.exists())
        .expect("libfaketime is installed (tests/run.sh installs faketime)")
        .display()
        .to_string()
}

/// Initial tickets (AS requests) the KDC issued to egress's principal so far.
fn initial_tickets_for_egress(kdc: &Kdc) -> usize {
    kdc.log()
        .lines()
        .filter(|l| l.contains("AS_REQ") && l.contains("ISSUE") && l.contains("egress@"))
        .count()
}

#[test]
fn a_ticket_that_expires_is_renewed_without_a_failed_request() {
    let servers = Servers::new();
    let url = format!("http://allowed.test:{}/hello", servers.http_origin().port());
    let realm = realm();
    // Tickets for egress live a minute (MIT krb5 renews a keytab's ticket at half its life;
    // with less than about a minute it fetches one for every token instead, which would not
    // show renewal).
    realm.kdc.max_life("egress", "60 seconds");
    let egress = egress(&realm, &keytab_key(&realm.keytab), "", &[]);
    let proxy = egress.url();

    let started = std::time::Instant::now();
    let mut served = 0;
    // Requests, tunnels and forwarded ones in turn, until the first ticket has expired and
    // the KDC has issued egress a third one; every one of them must be served. Each waits for
    // the parent to have logged the one before. Bounded: a ticket that is never renewed fails
    // the test within 100 s.
    while started.elapsed() < std::time::Duration::from_secs(65)
        || initial_tickets_for_egress(&realm.kdc) < 3
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(100),
            "no renewal in 100 s:\n{}",
            realm.kdc.log()
        );
        let mut args = vec!["-x", proxy.as_str()];
        if served % 2 == 1 {
            args.push("-p");
        }
        args.push(&url);
        assert_served(&curl(&args));
        served += 1;
        realm.squid.wait_for_entries(served);
    }
    let log = realm.squid.wait_for_entries(served);
    let principal = format!("egress@{REALM}");
    assert!(
        log.iter().all(|e| e.status == 200 && e.user == principal),
        "{log:?}"
    );
    // Renewed at half life, not fetched for every request.
    assert!(
        initial_tickets_for_egress(&realm.kdc) <= 4,
        "{served} requests, {} tickets",
        initial_tickets_for_egress(&realm.kdc)
    );
}

#[test]
fn the_users_own_ticket_is_used_when_no_keytab_is_given() {
    let servers = Servers::new();
    let url = format!("http://allowed.test:{}/hello", servers.http_origin().port());
    let realm = realm();
    realm.kdc.add_user("alice", "alice-pw-5521");
    let cache = realm.kdc.dir().join("alice.ccache");
    let ccache = format!("FILE:{}", cache.display());
    let mut kinit = std::process::Command::new("kinit")
        .arg("alice")
        .env("KRB5_CONFIG", realm.kdc.krb5_config())
        .env("KRB5CCNAME", &ccache)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kinit");
    use std::io::Write as _;
    kinit
        .stdin
        .take()
        .unwrap()
        .write_all(b"alice-pw-5521\n")
        .unwrap();
    assert!(kinit.wait().unwrap().success());

    let egress = egress(&realm, "", "", &[("KRB5CCNAME".into(), ccache.clone())]);
    assert_served(&curl(&["-x", &egress.url(), &url]));
    assert_served(&curl(&["-p", "-x", &egress.url(), &url]));
    let log = realm.squid.wait_for_entries(2);
    assert!(
        log.iter().all(|e| e.user == format!("alice@{REALM}")),
        "{log:?}"
    );
    // What klist shows the user afterwards: the parent's service ticket next to the TGT.
    let klist = std::process::Command::new("klist")
        .env("KRB5_CONFIG", realm.kdc.krb5_config())
        .env("KRB5CCNAME", &ccache)
        .output()
        .unwrap();
    let klist = String::from_utf8_lossy(&klist.stdout);
    assert!(
        klist.contains(&format!("HTTP/localhost@{REALM}")),
        "{klist}"
    );
    assert_no_token_in(&egress);
}
