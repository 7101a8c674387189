use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use std::sync::Arc;

use super::*;
use crate::metrics::Metrics;
use crate::state::ProxyState;

/// A destination that sends to whoever connects until they go away.
async fn endless_origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move { while stream.write_all(&[b'x'; 4096]).await.is_ok() {} });
        }
    });
    port
}

/// A proxy serving on a fresh port whose outcomes are counted in `metrics`, allowing only
/// `127.0.0.1:{origin}`, with a grace period of `grace`; its state, and the task returning
/// `run`'s answer once `stop` fires.
async fn serving(
    origin: u16,
    grace: &str,
    metrics: &Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> (
    std::net::SocketAddr,
    Arc<ProxyState>,
    tokio::task::JoinHandle<bool>,
) {
    let text =
        format!("allow: [\"127.0.0.1:{origin}\"]\ntimeouts: {{ shutdown_grace: {grace} }}\n");
    let config = egress_config::load_str(&text, "test").unwrap();
    let observer = crate::observe::Observer::new(Some(metrics.clone()), None);
    let state = ProxyState::with_observer(&config, Arc::new(observer));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bound = vec![BoundListener {
        listener,
        protocols: egress_config::ListenerProtocols::Mixed,
        proxy_protocol: None,
        identity: None,
    }];
    let run = tokio::spawn(run(bound, state.clone(), stop));
    (addr, state, run)
}

/// `serving`, stopped by the returned trigger.
async fn proxy(
    origin: u16,
    grace: &str,
    metrics: &Arc<Metrics>,
) -> (
    std::net::SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<bool>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let (addr, _, run) = serving(origin, grace, metrics, async move {
        let _ = stopped.await;
    })
    .await;
    (addr, stop, run)
}

fn cut_count(metrics: &Metrics, protocol: &str) -> u64 {
    let text = metrics.encode();
    let series = format!("egress_connections_cut_total{{protocol=\"{protocol}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&series)).unwrap();
    line[series.len()..].parse().unwrap()
}

#[tokio::test]
async fn a_tunnel_open_at_the_end_of_the_grace_period_is_cut_and_counted() {
    let metrics = Arc::new(Metrics::new(10));
    let origin = endless_origin().await;
    let (addr, stop, run) = proxy(origin, "200ms", &metrics).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    let connect = format!("CONNECT 127.0.0.1:{origin} HTTP/1.1\r\nHost: x\r\n\r\n");
    client.write_all(connect.as_bytes()).await.unwrap();
    // The destination speaks first on this port: bytes arrive once the tunnel is up.
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0;
    while received < 64 * 1024 {
        received += client.read(&mut buf).await.unwrap();
    }

    stop.send(()).unwrap();
    let drained = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run returns after grace + cut")
        .unwrap();
    assert!(!drained, "a connection had to be cut");
    assert_eq!(cut_count(&metrics, "http-connect"), 1);
    // The client sees its connection closed, not left hanging.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the cut connection was closed");
}

#[tokio::test]
async fn with_nothing_open_the_drain_is_clean() {
    let origin = endless_origin().await;
    let (_addr, stop, run) = proxy(origin, "10s", &Arc::new(Metrics::new(10))).await;
    stop.send(()).unwrap();
    let drained = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("no wait for the grace period when nothing is open")
        .unwrap();
    assert!(drained);
}

/// A proxy on a fresh port with its own metrics, allowing only `127.0.0.1:{origin}`.
async fn observed_proxy(origin: u16) -> (std::net::SocketAddr, Arc<ProxyState>) {
    let metrics = Arc::new(Metrics::new(10));
    let (addr, state, _) = serving(origin, "1s", &metrics, std::future::pending()).await;
    (addr, state)
}

fn decisions(state: &ProxyState, decision: &str, reason: &str) -> u64 {
    let text = state.observer.metrics().unwrap().encode();
    let series = format!(
        "egress_decisions_total{{protocol=\"http-connect\",decision=\"{decision}\",reason=\"{reason}\",identity=\"anonymous\"}} "
    );
    let line = text.lines().find(|l| l.starts_with(&series)).unwrap();
    line[series.len()..].parse().unwrap()
}

/// Sends a CONNECT to `target` and reads the status line.
async fn connect_status(proxy: std::net::SocketAddr, target: &str) -> String {
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        assert_eq!(client.read(&mut byte).await.unwrap(), 1, "answer cut short");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn two_proxies_in_one_process_count_apart_and_stream_their_own_records() {
    let origin = endless_origin().await;
    let (first, first_state) = observed_proxy(origin).await;
    let (_second, second_state) = observed_proxy(origin).await;
    let mut first_events = first_state.observer.subscribe();
    let mut second_events = second_state.observer.subscribe();

    let status = connect_status(first, "denied.example:443").await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");

    // The record reaches the first proxy's subscriber, typed and whole.
    let next = tokio::time::timeout(Duration::from_secs(10), first_events.next())
        .await
        .expect("the denial is streamed");
    let Some(crate::observe::Next::Event(crate::observe::Event::Outcome(record))) = next else {
        panic!("expected an outcome record, got {next:?}");
    };
    assert_eq!(record.kind, Some(crate::account::Kind::Denied));
    assert_eq!(
        record.reason,
        Some(egress_config::DenyReason::NotAllowlisted)
    );
    assert_eq!(
        record.target.as_ref().unwrap().0.to_string(),
        "denied.example"
    );
    assert_eq!(record.target.as_ref().unwrap().1, 443);
    assert_eq!(record.protocol, egress_config::Protocol::HttpConnect);
    assert!(record.client.unwrap().ip().is_loopback());
    assert_eq!(record.identity.as_deref(), Some("anonymous"));

    // Counted once, by the proxy that refused it; the other one saw nothing.
    assert_eq!(decisions(&first_state, "deny", "not-allowlisted"), 1);
    assert_eq!(decisions(&second_state, "deny", "not-allowlisted"), 0);
    assert!(second_events.try_next().is_none());
}

/// A connection's future is built, moved into the ledger's scope and spawned: each move copies
/// it whole. Kept small by boxing the protocol handlers and keeping buffers off it (an 8 KiB
/// array in `linger` once made it 21 KiB and cost ~60,000 instructions of copying per tunnel).
#[tokio::test]
async fn a_connections_future_stays_small() {
    let config = egress_config::load_str("allow: [\"a.test\"]\n", "test").unwrap();
    let state = ProxyState::new(&config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (stream, peer) = listener.accept().await.unwrap();
    let serve = crate::detect::serve(
        stream,
        peer,
        egress_config::ListenerProtocols::Mixed,
        None,
        state.snapshot(),
        crate::context::Shared::of(&state),
    );
    let size = std::mem::size_of_val(&serve);
    assert!(size <= 4096, "detect::serve's future is {size} bytes");
}
