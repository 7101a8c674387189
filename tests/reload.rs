//! Hot reload: a changed file takes effect for new connections, an open tunnel keeps the rules it
//! started with, and a broken file is rejected while the old rules stay. A file is applied only
//! once complete: writers that leave it cut short or empty for a while never decide a request,
//! and an idle proxy never opens it.

mod support;

#[path = "reload/partial.rs"]
mod partial;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::origin::Servers;
use support::{assert_served, curl, header, message, Proxy, WAIT};

fn open_tunnel(proxy: std::net::SocketAddr, target: &str) -> TcpStream {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
    let expected = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let mut answer = vec![0u8; expected.len()];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(answer, expected);
    s
}

fn ping(tunnel: &mut TcpStream, text: &[u8]) {
    tunnel.write_all(text).unwrap();
    let mut back = vec![0u8; text.len()];
    tunnel.read_exact(&mut back).unwrap();
    assert_eq!(back, text);
}

#[test]
fn a_changed_file_applies_to_new_connections_and_open_tunnels_keep_theirs() {
    let servers = Servers::new();
    let echo = servers.echo();
    let target = format!("127.0.0.1:{}", echo.port());
    let proxy = Proxy::start(&format!("allow: [\"{target}\"]\n"));
    let mut tunnel = open_tunnel(proxy.addr, &target);
    ping(&mut tunnel, b"before");

    proxy.replace_policy(&format!("allow: [github.com]\ndeny: [\"{target}\"]\n"));
    let event = proxy.wait_for_log("the reload", |v| message(v) == "policy reloaded");
    assert_eq!(event["deny"], 1);

    let r = curl(&["-x", &proxy.url(), "-D", "-", &format!("http://{target}/")]);
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("blocked-by-denylist"),
        "{r:?}"
    );
    // The tunnel opened under the old rules still works.
    ping(&mut tunnel, b"after the reload");
}

#[test]
fn a_broken_file_is_rejected_and_the_old_rules_stay() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&format!("allow: [\"localhost:{port}\"]\n"));
    proxy.replace_policy("allow:\n  - \"*\"\n");
    let event = proxy.wait_for_log("the rejection", |v| message(v) == "policy reload rejected");
    let error = event["error"].as_str().unwrap();
    assert!(
        error.contains("policy.yaml:3:5"),
        "names line and column: {error}"
    );
    let r = curl(&[
        "-x",
        &proxy.url(),
        &format!("http://localhost:{port}/hello"),
    ]);
    assert_served(&r);
}

#[test]
fn sighup_reloads_even_an_unchanged_file() {
    let proxy = Proxy::start("allow: [github.com]\n");
    proxy.signal("HUP");
    let event = proxy.wait_for_log("the reload", |v| message(v) == "policy reloaded");
    assert_eq!(event["allow"], 1);
}

fn reloaded(v: &Value) -> bool {
    message(v) == "policy reloaded"
}

/// One rewrite under test: the proxy, its file, the text to write, and the client asking.
struct Rewrite<'a> {
    proxy: &'a Proxy,
    path: PathBuf,
    text: String,
    client: &'a partial::Client,
}

impl Rewrite<'_> {
    fn writing(&self) -> &AtomicBool {
        self.client.writing()
    }

    /// Lets the client ask, in the state the file is in now, a few times.
    fn client_asks(&self) {
        self.client.asks(ASKS);
    }
}

/// Pairs of requests the client asks at each incomplete state a test holds the file in.
const ASKS: usize = 10;

/// Runs `rewrite` `times` times against a proxy whose file is `partial::whole`, with a client
/// asking all along; each rewrite must end in exactly one reload, of the whole file. Returns the
/// reloads' log events.
fn rewrites_decide_nothing_by_a_partial_file(
    times: usize,
    rewrite: impl Fn(&Rewrite<'_>),
) -> Vec<Value> {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start_with(&partial::whole(port, 0), &[]);
    let client = partial::Client::start(proxy.addr, port);
    for version in 1..=times {
        rewrite(&Rewrite {
            proxy: &proxy,
            path: proxy.policy_path(),
            text: partial::whole(port, version),
            client: &client,
        });
        let event = proxy.wait_for_log(&format!("the reload of version {version}"), reloaded);
        assert_eq!((&event["allow"], &event["deny"]), (&2.into(), &1.into()));
    }
    let tally = client.finish();
    assert!(tally.wrong.is_empty(), "{:#?}", tally.wrong);
    // The client did ask while the file was incomplete, or this proved nothing.
    assert!(tally.while_writing >= ASKS * times, "{tally:?}");
    let reloads: Vec<Value> = proxy.logs().into_iter().filter(reloaded).collect();
    assert_eq!(
        reloads.len(),
        times,
        "one reload per rewrite, none of a partial file: {reloads:#?}"
    );
    reloads
}

#[test]
fn a_slow_writer_that_stalls_before_the_deny_list_never_lets_the_denied_host_through() {
    rewrites_decide_nothing_by_a_partial_file(3, |r| {
        partial::in_place(&r.path, &r.text, r.writing(), || {
            // The writer's stall (not a synchronisation): longer than the proxy's settle time.
            std::thread::sleep(partial::STALL);
            r.client_asks();
        });
    });
}

#[test]
fn a_sighup_while_the_file_is_being_written_waits_for_the_writer() {
    let reloads = rewrites_decide_nothing_by_a_partial_file(2, |r| {
        partial::in_place(&r.path, &r.text, r.writing(), || {
            r.proxy.signal("HUP");
            r.proxy.wait_for_log("the SIGHUP to wait", |v| {
                message(v) == "SIGHUP reload waits for the policy file's writer to close it"
            });
            r.client_asks();
        });
    });
    // Each reload was the SIGHUP's, once the file was whole; the change itself then found
    // nothing new.
    for event in reloads {
        assert_eq!(event["trigger"], "sighup", "{event}");
    }
}

#[test]
fn a_file_truncated_then_written_is_never_applied_empty() {
    rewrites_decide_nothing_by_a_partial_file(3, |r| {
        partial::truncate_then_write(&r.path, &r.text, r.writing(), || {
            // The empty file was looked at, and held rather than applied.
            let held = r.proxy.wait_for_log("the empty file to be held", |v| {
                message(v) == "policy reload held"
            });
            assert_eq!(held["allow_now"], 2);
            r.client_asks();
        });
    });
}

#[test]
fn a_file_appended_line_by_line_is_applied_only_whole() {
    rewrites_decide_nothing_by_a_partial_file(3, |r| {
        let gap = partial::line_by_line(&r.path, &r.text, r.writing(), || r.client_asks());
        // The proxy takes a file once it has been quiet for its settle time (200 ms) and two
        // reads that far apart agree: a writer pausing twice that long could be caught.
        assert!(
            gap < Duration::from_millis(400),
            "the writer itself paused {gap:?}: this run cannot tell"
        );
    });
}

#[test]
fn a_file_that_allows_nothing_is_held_until_sighup() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let admin = "admin: 127.0.0.1:0\n";
    let proxy = Proxy::start(&format!("{admin}allow: [\"127.0.0.1:{port}\"]\n"));
    let admin_addr = proxy.admin_addr();
    let failures = || {
        let metrics = curl(&[&format!("http://{admin_addr}/metrics")]).stdout;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(r#"egress_config_reloads_total{result="failure"} "#))
            .map(str::to_string)
    };
    let hello = format!("http://127.0.0.1:{port}/hello");

    // Replaced atomically, but with no allow entry: an empty list, and no list at all.
    for (i, text) in [
        format!("{admin}allow: []\ndeny: [evil.example]\n"),
        admin.to_string(),
    ]
    .iter()
    .enumerate()
    {
        proxy.replace_policy(text);
        let held = proxy.wait_for_log("the hold", |v| message(v) == "policy reload held");
        assert_eq!(held["allow_now"], 1);
        assert_eq!(failures().as_deref(), Some(&*(i + 1).to_string()));
        assert_served(&curl(&["-x", &proxy.url(), &hello]));
    }

    // The operator means it.
    proxy.signal("HUP");
    let event = proxy.wait_for_log("the forced reload", reloaded);
    assert_eq!(
        (&event["allow"], &event["trigger"]),
        (&0.into(), &"sighup".into())
    );
    let r = curl(&["-x", &proxy.url(), "-D", "-", &hello]);
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("not-allowlisted"),
        "{r:?}"
    );
}

#[test]
fn a_configmap_symlink_swap_reloads() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let proxy = Proxy::start(&format!("allow: [\"127.0.0.1:{port}\"]\n"));
    let dir = proxy.dir.path();
    let version = |name: &str, policy: &str| {
        std::fs::create_dir(dir.join(name)).unwrap();
        std::fs::write(
            dir.join(name).join("policy.yaml"),
            format!("listen: 127.0.0.1:0\n{policy}"),
        )
        .unwrap();
    };
    let swap_data_to = |name: &str| {
        std::os::unix::fs::symlink(name, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    };

    // The kubelet's layout: policy.yaml -> ..data/policy.yaml, ..data -> ..<timestamp>.
    version(
        "..2024_01_01_00_00_00.1",
        &format!("allow: [\"127.0.0.1:{port}\", \"localhost:{port}\"]\n"),
    );
    swap_data_to("..2024_01_01_00_00_00.1");
    std::os::unix::fs::symlink("..data/policy.yaml", dir.join(".policy.yaml.link")).unwrap();
    std::fs::rename(dir.join(".policy.yaml.link"), proxy.policy_path()).unwrap();
    let event = proxy.wait_for_log("the reload through the link", reloaded);
    assert_eq!((&event["allow"], &event["deny"]), (&2.into(), &0.into()));

    // An update: a new timestamped directory, `..data` swapped to it, the old one removed.
    version(
        "..2024_01_01_00_01_00.2",
        &format!(
            "allow: [\"127.0.0.1:{port}\", \"localhost:{port}\"]\ndeny: [\"localhost:{port}\"]\n"
        ),
    );
    swap_data_to("..2024_01_01_00_01_00.2");
    std::fs::remove_dir_all(dir.join("..2024_01_01_00_00_00.1")).unwrap();
    let event = proxy.wait_for_log("the reload of the swapped version", reloaded);
    assert_eq!(event["deny"], 1);
    let r = curl(&[
        "-x",
        &proxy.url(),
        "-D",
        "-",
        &format!("http://localhost:{port}/hello"),
    ]);
    assert_eq!(
        header(&r.stdout, "x-egress-error"),
        Some("blocked-by-denylist"),
        "{r:?}"
    );
}

#[test]
fn an_idle_proxy_never_opens_its_policy_file() {
    let proxy = Proxy::start("allow: [github.com]\n");
    // Both ways of reloading first: a reload must not lead to more reads once it is done.
    proxy.replace_policy("allow: [github.com, example.com]\n");
    proxy.wait_for_log("the reload", reloaded);
    proxy.signal("HUP");
    proxy.wait_for_log("the forced reload", reloaded);

    // Every open of the file from here on (the proxy's reads were all done before it logged).
    let (tx, opens) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let open = matches!(
            event.kind,
            notify::EventKind::Access(notify::event::AccessKind::Open(_))
        );
        if open && event.paths.iter().any(|p| p.ends_with("policy.yaml")) {
            let _ = tx.send(event);
        }
    })
    .unwrap();
    notify::Watcher::watch(
        &mut watcher,
        proxy.dir.path(),
        notify::RecursiveMode::NonRecursive,
    )
    .unwrap();

    // Activity beside the file and on its metadata is no reason to read it.
    std::fs::write(proxy.dir.path().join("other.txt"), "x").unwrap();
    std::fs::rename(
        proxy.dir.path().join("other.txt"),
        proxy.dir.path().join("other2.txt"),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(proxy.policy_path())
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o640);
    std::fs::set_permissions(proxy.policy_path(), permissions).unwrap();

    // A bounded window in which nothing may happen: this waits for no event, it asserts that
    // none comes (the old watcher reread the file ten times a second).
    let window = Duration::from_secs(2);
    if let Ok(event) = opens.recv_timeout(window) {
        panic!("the idle proxy opened its policy file: {event:?}");
    }

    // The watch does see opens: the test's own.
    drop(std::fs::File::open(proxy.policy_path()).unwrap());
    opens
        .recv_timeout(WAIT)
        .expect("the test's own open is seen");
}
