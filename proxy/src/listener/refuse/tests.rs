use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use tracing::Span;

use super::*;

/// A connected pair: (the client's end, the proxy's end).
async fn pair() -> (TcpStream, TcpStream, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    (client, server, peer)
}

/// Sends `request` through a refuser of `refusers` and returns everything the client received.
async fn refused(refusers: &Refusers, protocols: ListenerProtocols, request: &[u8]) -> Vec<u8> {
    let tracker = TaskTracker::new();
    let (mut client, server, peer) = pair().await;
    client.write_all(request).await.unwrap();
    refuse_test_connection(refusers, &tracker, server, peer, protocols);
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer));
    read.await.expect("answered in time").expect("read");
    answer
}

fn http_refusal(answer: &[u8]) -> String {
    let text = String::from_utf8(answer.to_vec()).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable by egress: too-many-connections\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nX-Egress-Error: too-many-connections\r\n"),
        "{text}"
    );
    text
}

/// Hands `server` (from `peer`, on a listener speaking `protocols`) to `refusers`, as the
/// accept loop does at a cap.
fn refuse_test_connection(
    refusers: &Refusers,
    tracker: &TaskTracker,
    server: TcpStream,
    peer: std::net::SocketAddr,
    protocols: ListenerProtocols,
) {
    let connection = Refused {
        stream: server,
        peer,
        protocols,
        limit: "test",
    };
    refuse(refusers, connection, tracker, Span::none(), &Arc::default());
}

#[tokio::test]
async fn http_clients_get_503_whatever_the_listener_lets_them_speak() {
    let refusers = Refusers::sized(4);
    for protocols in [ListenerProtocols::Mixed, ListenerProtocols::Http] {
        for request in [
            &b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
            b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
        ] {
            http_refusal(&refused(&refusers, protocols, request).await);
        }
    }
}

/// What `sniff` makes of `sent` (written in the given pieces) on a `protocols` listener.
async fn sniffed(protocols: ListenerProtocols, pieces: &[&[u8]]) -> Speaks {
    let (mut client, mut server, _) = pair().await;
    let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
    let writer = tokio::spawn(async move {
        for piece in pieces {
            client.write_all(&piece).await.unwrap();
            // Pacing, so the pieces arrive as separate segments (the answer must not depend
            // on it either way).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client
    });
    let deadline = Instant::now() + Duration::from_millis(500);
    let speaks = sniff(&mut server, protocols, deadline).await;
    drop(writer.await.unwrap());
    speaks
}

#[tokio::test]
async fn the_first_bytes_pick_the_protocol_label() {
    use ListenerProtocols::{Http, Mixed, Socks5};
    let connect = Speaks::Http(Protocol::HttpConnect);
    let forward = Speaks::Http(Protocol::HttpForward);
    let cases: [(ListenerProtocols, &[&[u8]], Speaks); 9] = [
        (Mixed, &[b"\x05\x01\x00"], Speaks::Socks5),
        (Mixed, &[b"\x04\x01"], Speaks::Socks4),
        (Mixed, &[b"CONNECT a:443 HTTP/1.1\r\n"], connect),
        // "CONNECT " split over segments is still a CONNECT.
        (Mixed, &[b"CON", b"NECT a:443"], connect),
        (Http, &[b"GET http://a/ HTTP/1.1\r\n"], forward),
        (Http, &[b"CONNEXION"], forward),
        (Http, &[b"\x05\x01\x00"], forward),
        (Mixed, &[], Speaks::Silent),
        (Socks5, &[], Speaks::Socks5),
    ];
    for (protocols, pieces, expected) in cases {
        assert_eq!(
            sniffed(protocols, pieces).await,
            expected,
            "{protocols:?} {pieces:?}"
        );
    }
    let (client, mut server, _) = pair().await;
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    assert_eq!(sniff(&mut server, Mixed, deadline).await, Speaks::Gone);
}

#[tokio::test]
async fn socks5_clients_get_the_method_reply_then_general_failure() {
    let refusers = Refusers::sized(4);
    let greeting_and_request = b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x01\xbb";
    let expected = b"\x05\x00\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00";
    for protocols in [ListenerProtocols::Mixed, ListenerProtocols::Socks5] {
        let answer = refused(&refusers, protocols, greeting_and_request).await;
        assert_eq!(answer, expected, "{protocols:?}");
    }
    // A malformed request is refused for capacity all the same.
    let bind = b"\x05\x01\x00\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50";
    let answer = refused(&refusers, ListenerProtocols::Mixed, bind).await;
    assert_eq!(answer, expected);
}

#[tokio::test]
async fn a_socks4_client_gets_socks4s_rejection() {
    let refusers = Refusers::sized(1);
    let request = b"\x04\x01\x00\x50\x7f\x00\x00\x01user\x00";
    let answer = refused(&refusers, ListenerProtocols::Mixed, request).await;
    assert_eq!(answer, SOCKS4_REJECTED);
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_wait_unless_it_can_only_be_http() {
    let refusers = Refusers::sized(2);
    let started = Instant::now();
    let closed = refused(&refusers, ListenerProtocols::Mixed, b"").await;
    assert!(closed.is_empty(), "{:?}", String::from_utf8_lossy(&closed));
    assert!(started.elapsed() >= ANSWER_WAIT);
    // SOCKS5 clients that stop in the negotiation are not guessed at either: they had the
    // method reply, and nothing more.
    let stalled = refused(&refusers, ListenerProtocols::Socks5, b"\x05\x01\x00").await;
    assert_eq!(stalled, b"\x05\x00");
    let http_only = refused(&refusers, ListenerProtocols::Http, b"").await;
    http_refusal(&http_only);
}

#[tokio::test]
async fn with_every_refuser_busy_the_connection_is_closed_at_once() {
    let refusers = Refusers::sized(1);
    let tracker = TaskTracker::new();
    // A silent client holds the only refuser for `ANSWER_WAIT`.
    let (mut silent, server, peer) = pair().await;
    let protocols = ListenerProtocols::Mixed;
    refuse_test_connection(&refusers, &tracker, server, peer, protocols);
    let (mut next, server, peer) = pair().await;
    next.write_all(b"GET http://example.com/ HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    refuse_test_connection(&refusers, &tracker, server, peer, protocols);
    let mut answer = Vec::new();
    // Closed with the request unread: a reset, or an end of stream. Either way, no answer.
    let _ = next.read_to_end(&mut answer).await;
    assert!(answer.is_empty(), "{answer:?}");
    assert!(started.elapsed() < ANSWER_WAIT, "closed at once");
    // The refuser is free again once it has given up on the silent client.
    let mut first = Vec::new();
    let _ = silent.read_to_end(&mut first).await;
    assert!(first.is_empty());
    tracker.close();
    tracker.wait().await;
    let again = refused(
        &refusers,
        protocols,
        b"GET http://example.com/ HTTP/1.1\r\n\r\n",
    )
    .await;
    http_refusal(&again);
}
