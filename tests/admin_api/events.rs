//! `GET /api/v1/events` with real traffic through the proxy.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::client::{call, through, Stream};
use super::start;

/// The bound: a denied request shows within 2 s.
const SHOWN_WITHIN: Duration = Duration::from_secs(2);

#[test]
fn a_denied_request_is_on_the_stream_within_2s_with_its_reason_and_rule() {
    let (proxy, admin) = start("", "");
    let stream = Stream::open(&admin, "", &[]);
    let r = through(&proxy, "blocked.example");
    assert_ne!(r.code, 0, "{r:?}");
    let sent = Instant::now();
    let event = stream.next_named("outcome", SHOWN_WITHIN);
    assert!(sent.elapsed() <= SHOWN_WITHIN);
    let record = event.json();
    assert_eq!(record["decision"], "deny", "{record}");
    assert_eq!(record["reason"], "blocked-by-denylist");
    assert_eq!(record["rule"], "blocked.example");
    assert_eq!(record["host"], "blocked.example");
    assert_eq!(record["port"], 443);
    assert_eq!(record["protocol"], "http-connect");
    assert!(record["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(event.id.is_some());
    // Not allowlisted: the mode's default decides, no rule.
    through(&proxy, "elsewhere.example");
    let record = stream.next_named("outcome", SHOWN_WITHIN).json();
    assert_eq!(
        (record["reason"].as_str(), record["rule"].as_str()),
        (Some("not-allowlisted"), None)
    );
}

#[test]
fn a_new_stream_starts_with_the_recent_events_and_last_event_id_resumes_after_one() {
    let (proxy, admin) = start("", "");
    let first = Stream::open(&admin, "", &[]);
    let hosts = [
        "a.blocked.example",
        "b.blocked.example",
        "c.blocked.example",
    ];
    let mut ids = Vec::new();
    for host in hosts {
        through(&proxy, host);
        let event = first.next_named("outcome", SHOWN_WITHIN);
        assert_eq!(event.json()["host"], host);
        ids.push(event.id.expect("an id"));
    }
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    // A new stream sees what just happened at once, oldest first.
    let fresh = Stream::open(&admin, "", &[]);
    for (host, id) in hosts.iter().zip(&ids) {
        let event = fresh.next_named("outcome", SHOWN_WITHIN);
        assert_eq!(
            (event.json()["host"].as_str(), event.id),
            (Some(*host), Some(*id))
        );
    }
    // `recent=1`: only the newest.
    let newest = Stream::open(&admin, "recent=1", &[]);
    assert_eq!(newest.next_named("outcome", SHOWN_WITHIN).id, Some(ids[2]));
    // Resuming after the first: the second and third, then what comes next.
    let resumed = Stream::open(&admin, "", &[&format!("Last-Event-ID: {}", ids[0])]);
    assert_eq!(resumed.next_named("outcome", SHOWN_WITHIN).id, Some(ids[1]));
    assert_eq!(resumed.next_named("outcome", SHOWN_WITHIN).id, Some(ids[2]));
    through(&proxy, "d.blocked.example");
    let next = resumed.next_named("outcome", SHOWN_WITHIN);
    assert_eq!(
        (next.id, next.json()["host"].as_str()),
        (Some(ids[2] + 1), Some("d.blocked.example"))
    );
    // An id from an earlier run: told so, then the recent events.
    let restarted = Stream::open(&admin, "", &["Last-Event-ID: 999999"]);
    assert_eq!(restarted.next_within(SHOWN_WITHIN).event, "reset");
    assert_eq!(
        restarted.next_named("outcome", SHOWN_WITHIN).id,
        Some(ids[0])
    );
    let r = call(
        &admin,
        "GET",
        "/api/v1/events",
        &[&admin.bearer(), "Last-Event-ID: soon"],
        None,
    );
    r.refused(400, "bad-last-event-id");
}

#[test]
fn a_resuming_stream_behind_the_ring_is_told_how_many_it_missed() {
    let (proxy, admin) = start("  events_ring: 3\n", "");
    let watcher = Stream::open(&admin, "", &[]);
    let mut ids = Vec::new();
    for n in 0..6 {
        through(&proxy, &format!("h{n}.blocked.example"));
        ids.push(watcher.next_named("outcome", SHOWN_WITHIN).id.unwrap());
    }
    // The ring keeps the last 3; resuming after the first missed the 2nd and the 3rd.
    let resumed = Stream::open(&admin, "", &[&format!("Last-Event-ID: {}", ids[0])]);
    let missed = resumed.next_within(SHOWN_WITHIN);
    assert_eq!(
        (missed.event.as_str(), missed.json()["missed"].as_u64()),
        ("missed", Some(2))
    );
    assert_eq!(resumed.next_named("outcome", SHOWN_WITHIN).id, Some(ids[3]));
}

#[test]
fn filters_are_applied_on_the_server() {
    let origin = super::support::origin::Servers::new();
    let http = origin.http_origin();
    let (proxy, admin) = start(
        "",
        &format!("allow: [\"{http}\"]\nidentities:\n  ci: {{networks: [127.0.0.2/32]}}\n"),
    );
    let allowed_url = format!("http://{http}/hello");
    let deny_only = Stream::open(&admin, "decision=deny", &[]);
    let allow_only = Stream::open(&admin, "decision=allow&protocol=http-forward", &[]);
    let by_host = Stream::open(&admin, "host=B.BLOCKED", &[]);
    let by_client = Stream::open(&admin, "client=127.0.0.2", &[]);
    let by_identity = Stream::open(&admin, "identity=ci", &[]);
    // First what some filters drop, then what they keep: the first event each gets is the kept one.
    let served = super::support::curl(&["-x", &proxy.url(), &allowed_url]);
    super::support::assert_served(&served);
    through(&proxy, "a.blocked.example");
    through(&proxy, "b.blocked.example");
    let curl_from = |source: &str, host: &str| {
        super::support::curl(&[
            "--interface",
            source,
            "-x",
            &proxy.url(),
            &format!("https://{host}/"),
        ])
    };
    curl_from("127.0.0.2", "c.blocked.example");
    assert_eq!(
        deny_only.next_named("outcome", SHOWN_WITHIN).json()["host"],
        "a.blocked.example"
    );
    let allowed = allow_only.next_named("outcome", SHOWN_WITHIN).json();
    assert_eq!(
        (allowed["decision"].as_str(), allowed["protocol"].as_str()),
        (Some("allow"), Some("http-forward"))
    );
    assert_eq!(
        by_host.next_named("outcome", SHOWN_WITHIN).json()["host"],
        "b.blocked.example"
    );
    assert_eq!(
        by_client.next_named("outcome", SHOWN_WITHIN).json()["host"],
        "c.blocked.example"
    );
    let ci = by_identity.next_named("outcome", SHOWN_WITHIN).json();
    assert_eq!(
        (ci["host"].as_str(), ci["identity"].as_str()),
        (Some("c.blocked.example"), Some("ci"))
    );
    for (query, says) in [
        ("decison=deny", "unknown filter"),
        ("decision=nope", "unknown decision"),
        ("protocol=ftp", "unknown protocol"),
    ] {
        let r = call(
            &admin,
            "GET",
            &format!("/api/v1/events?{query}"),
            &[&admin.bearer()],
            None,
        );
        assert!(r.refused(400, "bad-filter").contains(says), "{query}");
    }
}

/// `n` CONNECTs to a denied host on fresh connections, from 4 clients at once; how long they
/// took.
fn denied_connects(proxy: std::net::SocketAddr, n: usize, host: &str) -> Duration {
    let started = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let request = format!("CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n");
            std::thread::spawn(move || {
                for _ in 0..n / 4 {
                    let mut s = std::net::TcpStream::connect(proxy).expect("connect");
                    s.set_read_timeout(Some(super::support::WAIT)).unwrap();
                    s.write_all(request.as_bytes()).unwrap();
                    let mut answer = Vec::new();
                    let _ = s.read_to_end(&mut answer);
                    assert!(
                        answer.starts_with(b"HTTP/1.1 403"),
                        "{}",
                        String::from_utf8_lossy(&answer)
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    started.elapsed()
}

#[test]
fn a_stream_that_does_not_read_slows_no_connection_and_later_learns_what_it_missed() {
    let (proxy, admin) = start("  events_ring: 64\n", "");
    // Long names make big events, so the stalled stream's socket buffers fill sooner.
    let label = "x".repeat(60);
    let host = format!("{label}.{label}.{label}.blocked.example");
    // About 470 bytes each: more than the socket buffers between the proxy and the client hold.
    let n = 12_000;
    let without = denied_connects(proxy.addr, n, &host);
    // A client that asks for the stream with a tiny receive window and then never reads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stalled = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(admin.addr).await.unwrap();
        let request = format!(
            "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\n{}\r\n\r\n",
            admin.addr,
            admin.bearer()
        );
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
            .await
            .unwrap();
        stream.into_std().unwrap()
    });
    let with = denied_connects(proxy.addr, n, &host);
    println!("{n} denied CONNECTs: {without:?} without a stream, {with:?} with a stalled one");
    // Bounded: the stalled stream costs the connections nothing they would notice.
    assert!(
        with < without * 2 + Duration::from_secs(2),
        "{with:?} vs {without:?}"
    );
    // Now it reads: somewhere in what it gets, a `missed` event with a count.
    stalled.set_nonblocking(false).unwrap();
    stalled
        .set_read_timeout(Some(super::support::WAIT))
        .unwrap();
    let mut reader = std::io::BufReader::new(stalled);
    let deadline = Instant::now() + super::support::WAIT;
    let mut line = String::new();
    let mut saw_missed = false;
    let mut bytes = 0;
    while Instant::now() < deadline {
        line.clear();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
            break;
        }
        bytes += line.len();
        if line.starts_with("event: missed") {
            saw_missed = true;
            break;
        }
    }
    assert!(
        saw_missed,
        "the stalled stream was never told it missed events ({bytes} bytes read)"
    );
}
