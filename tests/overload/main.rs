//! Overload, tried as an operator would: many more connections than the caps, half HTTP (CONNECT)
//! and half SOCKS5, each client checking exactly what it got. Every connection ends one of three
//! ways — served, refused with its documented answer (`503 too-many-connections` / SOCKS5 0x01),
//! or closed and counted in `egress_connections_refused_unanswered_total` — and the metrics agree
//! with the clients, protocol by protocol. Meanwhile `/metrics` answers and (under the per-client
//! cap) a client from another address is served; afterwards everything recovers.
//!
//! Counts stay in the hundreds, so both processes fit in the usual 1024 descriptors; one proxy
//! runs with 256, which sizes its refusers. `clients`: the flood's clients and their tally.

#[path = "../support/mod.rs"]
mod support;

mod clients;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use clients::{flood, use_and_release, Tally, PROTOCOLS};
use support::origin::Servers;
use support::{assert_served, curl, message, wait, Proxy, WAIT};

/// The proxy's metrics, in the classic text format.
fn scrape(admin: SocketAddr) -> String {
    let r = curl(&[&format!("http://{admin}/metrics")]);
    assert_eq!(r.code, 0, "/metrics did not answer: {r:?}");
    r.stdout
}

/// The value of one series (`name{labels}` exactly as exported).
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
        .parse::<f64>()
        .unwrap() as u64
}

fn too_many(metrics: &str, protocol: &str) -> u64 {
    sample(
        metrics,
        &format!(
            "egress_decisions_total{{protocol=\"{protocol}\",decision=\"deny\",reason=\"too-many-connections\",identity=\"anonymous\"}}"
        ),
    )
}

/// Refusals closed unanswered, for `cause` (busy, silent).
fn unanswered(metrics: &str, cause: &str) -> u64 {
    sample(
        metrics,
        &format!("egress_connections_refused_unanswered_total{{cause=\"{cause}\"}}"),
    )
}

fn active(metrics: &str) -> u64 {
    ["http-connect", "http-forward", "socks5"]
        .iter()
        .map(|p| {
            sample(
                metrics,
                &format!("egress_active_connections{{protocol=\"{p}\"}}"),
            )
        })
        .sum()
}

/// What the metrics counted between `before` and `after` must be what the clients saw; `silent`
/// more clients connected and never spoke.
fn assert_metrics_agree(before: &str, after: &str, tally: &Tally, silent: u64) {
    for speaks in PROTOCOLS {
        let counted = too_many(after, speaks.label()) - too_many(before, speaks.label());
        assert_eq!(
            counted, tally.refused[speaks as usize] as u64,
            "{speaks:?} refusals counted vs answered; {tally:?}"
        );
    }
    // No SOCKS5 or CONNECT client is labelled http-forward, nor is a silent one guessed at.
    let forward = too_many(after, "http-forward") - too_many(before, "http-forward");
    assert_eq!(forward, 0, "http-forward refusals");
    let closed = tally.closed.iter().sum::<usize>() as u64;
    let [busy, quiet] = ["busy", "silent"].map(|c| unanswered(after, c) - unanswered(before, c));
    assert_eq!(
        busy + quiet,
        closed + silent,
        "unanswered refusals counted (busy {busy}, silent {quiet}) vs closed; {tally:?}"
    );
    // The flood's clients speak at once: they are closed for lack of a refuser, if at all
    // (a client stalled for a second in a loaded test would count as silent, and still add up).
    assert!(quiet >= silent, "silent {quiet}");
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `check` over and over on its own thread until the returned guard is dropped; the guard's
/// `finish` returns how many times it ran (each run asserts for itself).
struct Throughout {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Throughout {
    fn start(check: impl Fn() + Send + 'static) -> Throughout {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut runs = 0;
            // Bounded: the flood it watches ends well within WAIT.
            let deadline = std::time::Instant::now() + WAIT;
            while runs == 0 || !flag.load(Ordering::SeqCst) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the check outlived the flood"
                );
                check();
                runs += 1;
            }
            runs
        });
        Throughout {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().unwrap().join() {
            Ok(runs) => runs,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

fn policy(port: u16, limits: &str) -> String {
    format!(
        "admin: 127.0.0.1:0\n\
         allow: [\"127.0.0.1:{port}\"]\n\
         limits: {limits}\n"
    )
}

fn proxy_with(port: u16, limits: &str) -> Proxy {
    Proxy::start(&policy(port, limits))
}

/// The proxy with its open-descriptor limit set to `open_files` (the shell's `ulimit`, then
/// exec): its refusers are sized from that limit.
fn proxy_with_open_files(port: u16, limits: &str, open_files: u64) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let file = format!("listen: 127.0.0.1:0\n{}", policy(port, limits));
    std::fs::write(&path, file).unwrap();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\""))
        .arg(support::proxy_binary())
        .arg("--config")
        .arg(&path)
        .args(["--log-format", "json", "--log-level", "debug"]);
    Proxy::spawn(command, dir)
}

/// After the load is gone: gauges back to 0, and new clients of both protocols served.
fn assert_recovered(
    proxy: &Proxy,
    admin: SocketAddr,
    origin: SocketAddr,
    rt: &tokio::runtime::Runtime,
    cap: usize,
) {
    wait::until("every connection gauge is back to 0", || {
        active(&scrape(admin)) == 0
    });
    let via = ["-x", &proxy.url()].map(str::to_string);
    let socks = ["-x", &format!("socks5://{}", proxy.addr)].map(str::to_string);
    for from in ["127.0.0.1", "127.0.0.2"] {
        for proxy_args in [&via, &socks] {
            let mut args: Vec<&str> = proxy_args.iter().map(String::as_str).collect();
            let url = format!("http://{origin}/hello");
            args.extend(["--interface", from, &url]);
            assert_served(&curl(&args));
        }
    }
    // The whole allowance is usable again: the caps' counts were given back.
    let tally = rt.block_on(flood(proxy.addr, ip("127.0.0.1"), cap / 2, origin));
    assert_eq!(tally.served.len(), cap, "{tally:?}");
    rt.block_on(use_and_release(tally.served, origin));
    wait::until("the gauges are back to 0 again", || {
        active(&scrape(admin)) == 0
    });
}

#[test]
fn a_flood_beyond_the_per_client_cap_is_answered_or_counted_while_others_are_served() {
    const PER_CLIENT: usize = 16;
    const PER_PROTOCOL: usize = 120;
    let servers = Servers::new();
    let origin = servers.http_origin();
    let proxy = proxy_with(
        origin.port(),
        &format!("{{ max_connections: 64, max_connections_per_client: {PER_CLIENT} }}"),
    );
    let admin = proxy.admin_addr();
    let before = scrape(admin);
    let rt = runtime();

    // Throughout the flood: /metrics answers, and a client from another address is served.
    let url = proxy.url();
    let target = format!("http://{origin}/hello");
    let others = Throughout::start(move || {
        scrape(admin);
        assert_served(&curl(&["--interface", "127.0.0.2", "-x", &url, &target]));
    });
    let tally = rt.block_on(flood(proxy.addr, ip("127.0.0.1"), PER_PROTOCOL, origin));
    // And while the flood's winners still hold every slot of their address.
    scrape(admin);
    assert_served(&curl(&[
        "--interface",
        "127.0.0.2",
        "-x",
        &proxy.url(),
        &format!("http://{origin}/hello"),
    ]));
    let runs = others.finish();

    assert!(tally.wrong.is_empty(), "{:#?}", tally.wrong);
    assert_eq!(tally.served.len(), PER_CLIENT, "the cap held: {tally:?}");
    for speaks in PROTOCOLS {
        let i = speaks as usize;
        assert_eq!(
            tally.served(speaks) + tally.refused[i] + tally.closed[i],
            PER_PROTOCOL,
            "{speaks:?}: served + answered + unanswered = attempted"
        );
    }
    let after = scrape(admin);
    assert_metrics_agree(&before, &after, &tally, 0);
    proxy.wait_for_log("a refusal logged with its protocol", |v| {
        message(v) == "connection refused"
            && v["limit"] == "this client's connection limit"
            && v["protocol"] == "socks5"
    });
    eprintln!(
        "per-client flood: {} served, {:?} answered, {:?} unanswered; others checked {runs} times",
        tally.served.len(),
        tally.refused,
        tally.closed
    );

    rt.block_on(use_and_release(tally.served, origin));
    assert_recovered(&proxy, admin, origin, &rt, PER_CLIENT);
}

#[test]
fn with_every_refuser_busy_refusals_are_closed_and_counted_and_the_proxy_recovers() {
    const CAP: usize = 8;
    const PER_PROTOCOL: usize = 20;
    const OPEN_FILES: u64 = 256;
    let servers = Servers::new();
    let origin = servers.http_origin();
    let proxy = proxy_with_open_files(
        origin.port(),
        &format!("{{ max_connections: {CAP}, max_connections_per_client: 1000 }}"),
        OPEN_FILES,
    );
    let admin = proxy.admin_addr();
    let refusers = proxy.wait_for_log("the refusers' pool size", |v| v["refusers"].is_u64())
        ["refusers"]
        .as_u64()
        .unwrap() as usize;
    // Half of what the served connections (two descriptors each) and the 128 kept for the rest
    // leave: answering refusals cannot take the descriptors that serving needs.
    assert_eq!(refusers, (OPEN_FILES as usize - 2 * CAP - 128) / 2);
    let rt = runtime();

    // The cap is taken by served tunnels of both protocols.
    let held = rt.block_on(flood(proxy.addr, ip("127.0.0.1"), CAP / 2, origin));
    assert_eq!(held.served.len(), CAP, "{held:?}");
    let before = scrape(admin);

    // Clients that connect and say nothing hold every refuser for its whole wait; the flood
    // right behind them finds none free.
    let silent: Vec<TcpStream> = rt.block_on(async {
        let mut silent = Vec::with_capacity(refusers);
        for _ in 0..refusers {
            silent.push(TcpStream::connect(proxy.addr).await.unwrap());
        }
        silent
    });
    let metrics_during = Throughout::start(move || {
        scrape(admin);
    });
    let tally = rt.block_on(flood(proxy.addr, ip("127.0.0.1"), PER_PROTOCOL, origin));
    scrape(admin);
    let runs = metrics_during.finish();
    assert!(tally.wrong.is_empty(), "{:#?}", tally.wrong);
    assert!(
        tally.served.is_empty(),
        "over the cap, yet served: {tally:?}"
    );
    assert!(
        tally.closed.iter().sum::<usize>() > 0,
        "the refusers were never all busy: {tally:?}"
    );
    for speaks in PROTOCOLS {
        let i = speaks as usize;
        assert_eq!(
            tally.refused[i] + tally.closed[i],
            PER_PROTOCOL,
            "{speaks:?}"
        );
    }

    // Each silent client is closed when its wait ends: nothing says which protocol to answer in.
    let silent_answers = rt.block_on(async {
        let mut answers = JoinSet::new();
        for mut stream in silent {
            answers.spawn(async move {
                let mut got = Vec::new();
                let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut got));
                let _ = read.await;
                got
            });
        }
        answers.join_all().await
    });
    for got in &silent_answers {
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(got));
    }
    let after = scrape(admin);
    assert_metrics_agree(&before, &after, &tally, refusers as u64);
    // Counted every time, logged once a second at most.
    let warnings = proxy
        .logs()
        .iter()
        .filter(|v| message(v).starts_with("connection refused unanswered"))
        .count();
    assert!((1..=5).contains(&warnings), "{warnings} warnings");
    eprintln!(
        "refusers busy: {refusers} silent closed, {:?} answered, {:?} unanswered; /metrics answered {runs} times",
        tally.refused, tally.closed
    );

    rt.block_on(use_and_release(held.served, origin));
    assert_recovered(&proxy, admin, origin, &rt, CAP);
}
