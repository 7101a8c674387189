//! The gate on real loopback sockets, in front of a recorder and in front of the real proxy.

use std::io::{Read, Write};
use std::net::TcpStream as StdStream;

use tokio::io::AsyncReadExt;

use super::*;

fn credential() -> Credential {
    Credential::from_token("00112233445566778899aabbccddeeff".into())
}

#[test]
fn the_proxy_variables_carry_the_credential_and_socks_becomes_http() {
    let vars = vec![
        (
            "HTTPS_PROXY".to_string(),
            "http://127.0.0.1:49152".to_string(),
        ),
        ("ALL_PROXY".into(), "socks5h://127.0.0.1:49152".into()),
        ("npm_config_proxy".into(), "http://127.0.0.1:49152/".into()),
        ("NO_PROXY".into(), "".into()),
        ("OTHER".into(), "http://127.0.0.1:8080".into()),
    ];
    let user = "egress-run:00112233445566778899aabbccddeeff";
    assert_eq!(
        with_credential(vars, 49152, &credential()),
        [
            (
                "HTTPS_PROXY".to_string(),
                format!("http://{user}@127.0.0.1:49152")
            ),
            ("ALL_PROXY".into(), format!("http://{user}@127.0.0.1:49152")),
            (
                "npm_config_proxy".into(),
                format!("http://{user}@127.0.0.1:49152/")
            ),
            ("NO_PROXY".into(), "".into()),
            ("OTHER".into(), "http://127.0.0.1:8080".into()),
            (CREDENTIAL_ENV.into(), user.into()),
        ]
    );
}

#[test]
fn credentials_are_random_and_never_printed() {
    let (a, b) = (Credential::random().unwrap(), Credential::random().unwrap());
    assert_ne!(a.user_token(), b.user_token());
    assert_eq!(a.user_token().len(), "egress-run:".len() + 32);
    assert_eq!(format!("{a:?}"), "Credential(***)");
    assert_eq!(
        credential().header_value(),
        "Basic ZWdyZXNzLXJ1bjowMDExMjIzMzQ0NTU2Njc3ODg5OWFhYmJjY2RkZWVmZg=="
    );
}

#[test]
fn a_head_passes_only_with_the_exact_credential() {
    let good = credential().header_value();
    let head =
        |auth: &str| format!("CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n{auth}\r\n");
    let passes = [
        format!("Proxy-Authorization: {good}\r\n"),
        format!("proxy-authorization:{good}  \r\n"),
        format!("PROXY-AUTHORIZATION: basic {}\r\n", &good[6..]),
        format!("User-Agent: x\r\nProxy-Authorization: {good}\r\n"),
    ];
    for auth in &passes {
        assert_eq!(
            judge_head(head(auth).as_bytes(), &good),
            Some(Verdict::Pass),
            "{auth}"
        );
    }
    let wrong = credential().header_value().replace("ZWdy", "ZXdy");
    let refused = [
        String::new(),
        format!("Proxy-Authorization: {wrong}\r\n"),
        format!("Proxy-Authorization: Bearer {}\r\n", &good[6..]),
        format!("Proxy-Authorization: {good}x\r\n"),
        format!("Authorization: {good}\r\n"),
        format!("X-Proxy-Authorization: {good}\r\n"),
    ];
    for auth in &refused {
        assert_eq!(
            judge_head(head(auth).as_bytes(), &good),
            Some(Verdict::Refuse(NEEDS_CREDENTIAL)),
            "{auth:?}"
        );
    }
    // Not complete yet: no verdict.
    assert_eq!(judge_head(b"CONNECT a.test:443 HTTP/1.1\r\n", &good), None);
    // The refusal's length is right, and its body ends with a newline.
    let text = String::from_utf8_lossy(NEEDS_CREDENTIAL);
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert!(body.ends_with('\n'));
}

/// A gate on real loopback listeners whose admitted connections send back what they read
/// first: what the proxy would get.
async fn echo_gate() -> (u16, Refused) {
    let listeners = bind_loopback().await.unwrap();
    let port = listeners[0].local_addr().unwrap().port();
    for listener in &listeners {
        assert_eq!(listener.local_addr().unwrap().port(), port);
    }
    let refused = Refused::default();
    tokio::spawn(serve(
        listeners,
        credential(),
        refused.clone(),
        |mut stream, _| {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap();
                use tokio::io::AsyncWriteExt;
                stream.write_all(b"admitted:").await.unwrap();
                stream.write_all(&buf[..n]).await.unwrap();
            });
        },
    ));
    (port, refused)
}

/// Sends `parts` one write each, and reads the answer to its end.
fn exchange(addr: (&str, u16), parts: &[&[u8]]) -> Vec<u8> {
    try_exchange(addr, parts).unwrap()
}

fn try_exchange(addr: (&str, u16), parts: &[&[u8]]) -> std::io::Result<Vec<u8>> {
    let mut client = StdStream::connect(addr)?;
    for part in parts {
        client.write_all(part)?;
    }
    client.shutdown(std::net::Shutdown::Write)?;
    let mut answer = Vec::new();
    client.read_to_end(&mut answer)?;
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_credential_gets_through_untouched_on_both_loopbacks() {
    let (port, refused) = echo_gate().await;
    let good = format!(
        "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nProxy-Authorization: {}\r\n\r\n",
        credential().header_value()
    );
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let hosts: &[&str] = if v6 {
        &["127.0.0.1", "::1"]
    } else {
        &["127.0.0.1"]
    };
    tokio::task::spawn_blocking({
        let good = good.clone();
        let hosts = hosts.to_vec();
        move || {
            for host in hosts {
                let answer = exchange((host, port), &[good.as_bytes()]);
                assert_eq!(answer, format!("admitted:{good}").as_bytes(), "{host}");
                // In pieces: the gate waits for the whole head.
                let (a, b) = good.split_at(20);
                let answer = exchange((host, port), &[a.as_bytes(), b.as_bytes()]);
                assert_eq!(answer, format!("admitted:{good}").as_bytes(), "{host}");
                let bare = exchange(
                    (host, port),
                    &[b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"],
                );
                assert_eq!(bare, NEEDS_CREDENTIAL, "{host}");
                let socks = exchange((host, port), &[&[0x05, 0x01, 0x00]]);
                assert_eq!(socks, NO_SOCKS, "{host}");
                let socks4 = exchange((host, port), &[&[0x04, 0x01, 0x01, 0xbb, 1, 2, 3, 4, 0]]);
                assert_eq!(socks4, NO_SOCKS, "{host}");
            }
        }
    })
    .await
    .unwrap();
    // Three refused per loopback, each counted before its answer goes out.
    assert_eq!(refused.count(), 3 * hosts.len() as u64);
    assert!(refused.paragraph().unwrap().starts_with(&format!(
        "egress-run: {} connection(s) to the proxy came without this run's credential",
        3 * hosts.len()
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_too_long_to_hold_the_credential_is_refused() {
    let (port, _) = echo_gate().await;
    let long = format!(
        "GET http://a.test/ HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(HEAD_LIMIT)
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut client = StdStream::connect(("127.0.0.1", port)).unwrap();
        // The gate answers before reading all of it: the write may fail, the answer is there.
        let _ = client.write_all(long.as_bytes());
        let mut answer = vec![0u8; NEEDS_CREDENTIAL.len()];
        client.read_exact(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert_eq!(answer, NEEDS_CREDENTIAL);
}

/// Behind the gate, the real proxy: an admitted request gets the proxy's own answer (here a
/// denial with its reason), never the gate's 407.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_proxy_answers_what_the_gate_lets_through() {
    let config = crate::policy::build(None, &["allowed.test".into()], &[], false).unwrap();
    let state = egress_proxy::ProxyState::new(&config);
    let admission = egress_proxy::listener::Admission::new(
        state,
        egress_config::ListenerProtocols::Mixed,
        None,
    );
    let listeners = bind_loopback().await.unwrap();
    let port = listeners[0].local_addr().unwrap().port();
    let refused = Refused::default();
    tokio::spawn(serve(
        listeners,
        credential(),
        refused.clone(),
        move |s, p| admission.admit(s, p),
    ));
    let head = format!(
        "CONNECT denied.test:443 HTTP/1.1\r\nHost: denied.test:443\r\nProxy-Authorization: {}\r\n\r\n",
        credential().header_value()
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut client = StdStream::connect(("127.0.0.1", port)).unwrap();
        client.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("X-Egress-Error: "), "{answer}");
    assert_eq!(refused.count(), 0);
    assert_eq!(refused.paragraph(), None);
}

/// Silent connections are bounded: past the bound a new one is closed at once, and once they
/// go, the run's own clients get through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_cannot_pile_up() {
    let (port, _) = echo_gate().await;
    let good = format!(
        "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nProxy-Authorization: {}\r\n\r\n",
        credential().header_value()
    );
    tokio::task::spawn_blocking(move || {
        let silent: Vec<StdStream> = (0..CHECKED_AT_ONCE)
            .map(|_| StdStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        // Each silent one holds a slot once accepted; wait until the gate closes a new one.
        let over = closed_at_once(port);
        assert!(over, "a connection past the bound is closed");
        drop(silent);
        // The slots come back as the gate sees each close; the run's client gets through.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Until then a connection is closed unread, which may reset it.
        loop {
            let answer = try_exchange(("127.0.0.1", port), &[good.as_bytes()]);
            if answer.as_deref().ok() == Some(format!("admitted:{good}").as_bytes()) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{answer:?}");
        }
    })
    .await
    .unwrap();
}

/// Whether the gate closes a new silent connection at once (within a second; otherwise it
/// waits ten for a head): tried again while connections still get a slot (the silent ones may
/// not all be accepted yet), each kept open, for at most ten seconds.
fn closed_at_once(port: u16) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut holding = Vec::new();
    while std::time::Instant::now() < deadline {
        let mut extra = StdStream::connect(("127.0.0.1", port)).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        match extra.read(&mut [0u8; 1]) {
            Ok(0) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            _ => holding.push(extra),
        }
    }
    false
}
