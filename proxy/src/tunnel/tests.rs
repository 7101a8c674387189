use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A connected pair of loopback sockets.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (a.unwrap(), b.unwrap().0)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Client ⇄ [relay] ⇄ upstream, returning the outer ends, the relay task and its live counts.
async fn tunnel(
    early: &'static [u8],
) -> (
    TcpStream,
    TcpStream,
    tokio::task::JoinHandle<io::Result<Transferred>>,
    std::sync::Arc<Moved>,
) {
    let (client_outer, client_inner) = pair().await;
    let (upstream_inner, upstream_outer) = pair().await;
    let moved = std::sync::Arc::new(Moved::default());
    let counts = moved.clone();
    let relay = tokio::spawn(async move {
        relay(
            &client_inner,
            &upstream_inner,
            early,
            Duration::from_secs(30),
            &counts,
        )
        .await
    });
    (client_outer, upstream_outer, relay, moved)
}

#[tokio::test]
async fn bulk_both_ways_at_once_arrives_intact_and_is_counted() {
    // Large enough to leave the small-buffer phase and run through splice on Linux.
    let up_bytes = pattern(8 << 20, 1);
    let down_bytes = pattern(5 << 20, 7);
    let (client, upstream, relay, live) = tunnel(b"early:").await;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let send_up = {
        let bytes = up_bytes.clone();
        tokio::spawn(async move {
            client_write.write_all(&bytes).await.unwrap();
            client_write.shutdown().await.unwrap();
        })
    };
    let send_down = {
        let bytes = down_bytes.clone();
        tokio::spawn(async move {
            upstream_write.write_all(&bytes).await.unwrap();
            upstream_write.shutdown().await.unwrap();
        })
    };
    let mut got_up = Vec::new();
    let mut got_down = Vec::new();
    let (a, b) = tokio::join!(
        upstream_read.read_to_end(&mut got_up),
        client_read.read_to_end(&mut got_down)
    );
    a.unwrap();
    b.unwrap();
    send_up.await.unwrap();
    send_down.await.unwrap();
    assert_eq!(&got_up[..6], b"early:");
    assert!(
        got_up[6..] == up_bytes[..],
        "upstream received the client's bytes in order"
    );
    assert!(
        got_down == down_bytes,
        "client received the upstream's bytes in order"
    );
    let moved = relay.await.unwrap().unwrap();
    assert_eq!(moved.client_to_upstream, up_bytes.len() as u64 + 6);
    assert_eq!(moved.upstream_to_client, down_bytes.len() as u64);
    // The live counts (what a tunnel cut at shutdown is accounted with) agree, splice included.
    assert_eq!(live.so_far(), moved);
}

#[tokio::test]
async fn a_half_close_is_passed_on_and_the_reply_still_arrives() {
    let (mut client, mut upstream, relay, _) = tunnel(b"").await;
    client.write_all(b"question").await.unwrap();
    client.shutdown().await.unwrap();
    let mut question = Vec::new();
    upstream.read_to_end(&mut question).await.unwrap(); // ends: the EOF was passed on
    assert_eq!(question, b"question");
    let answer = pattern(1 << 20, 3);
    upstream.write_all(&answer).await.unwrap();
    upstream.shutdown().await.unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert!(got == answer);
    relay.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_tunnel_times_out() {
    let (client_outer, client_inner) = pair().await;
    let (upstream_inner, _upstream_outer) = pair().await;
    let result = relay(
        &client_inner,
        &upstream_inner,
        b"",
        Duration::from_secs(5),
        &Moved::default(),
    )
    .await;
    assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
    drop(client_outer);
}
