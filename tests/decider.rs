//! The decider seam, with the proxy embedded in-process (as the launcher embeds it): a request
//! the policy let through can be held by the decider and answered later while other clients are
//! served, or refused with the decider's own answer. Every protocol passes through it. The
//! decider here is the test's own (the binary's is the pass-through); clients are real curl.

mod support;

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use egress_config::{DenyReason, ListenerProtocols};
use egress_proxy::answer::Refusal;
use egress_proxy::decider::{Asking, Decider, Deciding, Decision};
use egress_proxy::state::{BoundListener, ProxyState};
use support::origin::Servers;
use support::{assert_served, curl};
use tokio::sync::Notify;

const HOLD: std::time::Duration = std::time::Duration::from_secs(2);

/// Holds every request for port `held` until `release`, refuses port `refused`, passes the rest;
/// records who asked.
#[derive(Debug)]
struct Gate {
    held: u16,
    refused: u16,
    release: Notify,
    asked: Mutex<Vec<String>>,
    waiting: Mutex<Option<mpsc::Sender<()>>>,
}

impl Decider for Gate {
    fn decide<'a>(&'a self, asking: Asking<'a>) -> Deciding<'a> {
        self.asked
            .lock()
            .unwrap()
            .push(format!("{} {}", asking.protocol.as_str(), asking.port));
        Box::pin(async move {
            if asking.port == self.refused {
                return Decision::Refuse(Refusal::new(
                    DenyReason::NotAllowlisted,
                    "a person said no",
                ));
            }
            if asking.port == self.held {
                // Held for two seconds at least, and until the test releases it.
                let two_seconds = tokio::time::sleep(HOLD);
                let released = self.release.notified();
                if let Some(waiting) = self.waiting.lock().unwrap().take() {
                    let _ = waiting.send(());
                }
                tokio::join!(two_seconds, released);
            }
            Decision::Proceed
        })
    }
}

/// The proxy, embedded on a runtime of its own, with `gate` as its decider.
fn embedded(policy: &str, gate: Arc<Gate>) -> (tokio::runtime::Runtime, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = egress_config::load_str(policy, "test").unwrap();
    let addr = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = ProxyState::with_decider(&config, gate);
        let bound = BoundListener {
            listener,
            protocols: ListenerProtocols::Mixed,
            proxy_protocol: None,
            identity: None,
        };
        tokio::spawn(egress_proxy::run(
            vec![bound],
            state,
            std::future::pending::<()>(),
        ));
        addr
    });
    (runtime, addr)
}

#[test]
fn a_held_decision_waits_while_other_clients_are_served() {
    let servers = Servers::new();
    let held = servers.http_origin().port();
    let free = servers.http_origin().port();
    let (waiting_tx, waiting) = mpsc::channel();
    let gate = Arc::new(Gate {
        held,
        refused: 0,
        release: Notify::new(),
        asked: Mutex::default(),
        waiting: Mutex::new(Some(waiting_tx)),
    });
    let policy = format!("allow: [\"127.0.0.1:{held}\", \"127.0.0.1:{free}\"]\n");
    let (_runtime, addr) = embedded(&policy, gate.clone());
    let proxy = format!("http://{addr}");

    let (done_tx, done) = mpsc::channel();
    let held_proxy = proxy.clone();
    thread::spawn(move || {
        let started = std::time::Instant::now();
        let r = curl(&["-x", &held_proxy, &format!("http://127.0.0.1:{held}/hello")]);
        let _ = done_tx.send((r, started.elapsed()));
    });
    waiting
        .recv_timeout(support::WAIT)
        .expect("the held request reached the decider");

    // Held: every protocol to the other origin is served meanwhile.
    let url = format!("http://127.0.0.1:{free}/hello");
    for _ in 0..3 {
        assert_served(&curl(&["-x", &proxy, &url]));
        assert_served(&curl(&["-p", "-x", &proxy, &url]));
        assert_served(&curl(&["--socks5", &addr.to_string(), &url]));
    }
    assert!(
        done.try_recv().is_err(),
        "the held request is still waiting"
    );

    gate.release.notify_one();
    let (held_answer, took) = done
        .recv_timeout(support::WAIT)
        .expect("answered once released");
    assert_served(&held_answer);
    assert!(took >= HOLD, "held for {took:?}");
    let asked = gate.asked.lock().unwrap().clone();
    for protocol in ["http-forward", "http-connect", "socks5"] {
        assert!(
            asked.contains(&format!("{protocol} {free}")),
            "{protocol} asked the decider: {asked:?}"
        );
    }
}

#[test]
fn a_decider_refusal_is_the_clients_answer_in_every_protocol() {
    let servers = Servers::new();
    let refused = servers.http_origin().port();
    let gate = Arc::new(Gate {
        held: 0,
        refused,
        release: Notify::new(),
        asked: Mutex::default(),
        waiting: Mutex::default(),
    });
    let policy = format!("allow: [\"127.0.0.1:{refused}\"]\n");
    let (_runtime, addr) = embedded(&policy, gate);
    let proxy = format!("http://{addr}");
    let url = format!("http://127.0.0.1:{refused}/hello");
    let forward = curl(&["-s", "-D", "-", "-x", &proxy, &url]);
    assert!(forward.stdout.starts_with("HTTP/1.1 403"), "{forward:?}");
    assert!(forward.stdout.contains("a person said no"), "{forward:?}");
    let tunnel = curl(&["-s", "-D", "-", "-p", "-x", &proxy, &url]);
    assert!(tunnel.stdout.starts_with("HTTP/1.1 403"), "{tunnel:?}");
    let socks = curl(&["--socks5", &addr.to_string(), &url]);
    assert_eq!(socks.code, 97, "SOCKS5 reply 0x02: {socks:?}");
}
