use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::*;
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

/// The proxy serving on a fresh port with a grace period of `grace`; the shutdown trigger and
/// the task returning `run`'s answer.
async fn proxy(
    origin: u16,
    grace: &str,
) -> (
    std::net::SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<bool>,
) {
    let text =
        format!("allow: [\"127.0.0.1:{origin}\"]\ntimeouts: {{ shutdown_grace: {grace} }}\n");
    let config = egress_config::load_str(&text, "test").unwrap();
    let state = ProxyState::new(&config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bound = vec![BoundListener {
        listener,
        protocols: egress_config::ListenerProtocols::Mixed,
    }];
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(run(bound, state, async move {
        let _ = stopped.await;
    }));
    (addr, stop, run)
}

fn cut_count(protocol: &str) -> u64 {
    let text = crate::metrics::get().unwrap().encode();
    let series = format!("egress_connections_cut_total{{protocol=\"{protocol}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&series)).unwrap();
    line[series.len()..].parse().unwrap()
}

#[tokio::test]
async fn a_tunnel_open_at_the_end_of_the_grace_period_is_cut_and_counted() {
    crate::metrics::install(10);
    let before = cut_count("http-connect");
    let origin = endless_origin().await;
    let (addr, stop, run) = proxy(origin, "200ms").await;
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
    assert_eq!(cut_count("http-connect") - before, 1);
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
    let (_addr, stop, run) = proxy(origin, "10s").await;
    stop.send(()).unwrap();
    let drained = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("no wait for the grace period when nothing is open")
        .unwrap();
    assert!(drained);
}
