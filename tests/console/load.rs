//! The live view under a flood: thousands of denials in a few seconds reach one browser page
//! whole (no event missed with a ring big enough), the page keeps at most 500 rows and answers
//! at once meanwhile. Prints the rate the stream delivered to the page.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::browser::Browser;
use super::Console;

/// Denials sent; at 10,000 a minute this is more than a minute's worth of a busy proxy.
const DENIALS: usize = 12_000;
const CLIENTS: usize = 4;

fn deny_many(proxy: std::net::SocketAddr, n: usize) {
    for _ in 0..n {
        let mut stream = TcpStream::connect(proxy).unwrap();
        stream
            .write_all(b"CONNECT blocked.example:443 HTTP/1.1\r\nHost: blocked.example:443\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 403"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
}

#[test]
fn a_flood_of_denials_reaches_the_page_whole_and_the_page_stays_responsive() {
    let console = Console::start("  events_ring: 20000\n", "");
    let browser = Browser::start(false);
    console.log_in(&browser);
    browser.goto(&console.url("/#/live"));
    browser.until(
        "the stream is open",
        "return document.getElementById('live-state').textContent === 'connected'",
    );
    let proxy = console.proxy.addr;
    let started = Instant::now();
    let senders: Vec<_> = (0..CLIENTS)
        .map(|_| std::thread::spawn(move || deny_many(proxy, DENIALS / CLIENTS)))
        .collect();
    // While they flood: the page keeps answering scripts. The bound catches a page that hangs
    // (one that renders every event as it comes); how fast it answers is
    // printed, not asserted: the suite's other tests share these two cores.
    let mut slowest = Duration::ZERO;
    while senders.iter().any(|s| !s.is_finished()) {
        let asked = Instant::now();
        browser.run(
            "return document.querySelectorAll('#live-rows tr').length",
            vec![],
        );
        slowest = slowest.max(asked.elapsed());
        std::thread::sleep(Duration::from_millis(200)); // sampling interval, not a sync
    }
    for sender in senders {
        sender.join().unwrap();
    }
    let sent = started.elapsed();
    browser.until(
        "every denial reached the page",
        &format!("return window.egressConsole.received >= {DENIALS}"),
    );
    let received = started.elapsed();
    let rows = browser.run(
        "return document.querySelectorAll('#live-rows tr').length",
        vec![],
    );
    assert_eq!(
        rows,
        serde_json::json!(500),
        "the view keeps the newest 500 rows"
    );
    let state = browser.run(
        "return document.getElementById('live-state').textContent",
        vec![],
    );
    assert_eq!(state, "connected", "nothing missed");
    println!(
        "{DENIALS} denials sent in {sent:?} ({:.0}/s), all on the page after {received:?} ({:.0} events/s delivered); slowest page answer meanwhile {slowest:?}",
        DENIALS as f64 / sent.as_secs_f64(),
        DENIALS as f64 / received.as_secs_f64()
    );
    assert!(
        slowest < Duration::from_secs(5),
        "the page stalled for {slowest:?}"
    );
}
