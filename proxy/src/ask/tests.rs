use std::net::SocketAddr;

use egress_config::{Host, Protocol};

use super::book::Book;
use super::*;

fn client(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 40000))
}

fn key(n: u8, host: &str) -> Key {
    Key::of(client(n), &Host::parse(host).unwrap(), 443)
}

#[test]
fn a_client_gets_a_bounded_number_of_pending_asks_and_asks_per_minute() {
    let mut book = Book::default();
    let now = Instant::now();
    let later = now + Duration::from_secs(60);
    for i in 0..MAX_PENDING_PER_CLIENT {
        book.admit(client(1), now).unwrap();
        let k = key(1, &format!("h{i}.example"));
        book.open(
            k,
            client(1),
            "anonymous",
            Protocol::HttpConnect,
            later,
            SystemTime::now(),
        );
    }
    let refused = book.admit(client(1), now).unwrap_err();
    assert!(refused.contains("approvals pending"), "{refused}");
    // Another client is not limited by the first one's asks.
    book.admit(client(2), now).unwrap();
    // Answered asks free their place; the per-minute count still holds.
    book.take_where(|p| (p.key.client == client(1).ip()).then_some(()));
    for _ in MAX_PENDING_PER_CLIENT..ASKS_PER_MINUTE {
        book.admit(client(1), now).unwrap();
    }
    let refused = book.admit(client(1), now).unwrap_err();
    assert!(refused.contains("in the last minute"), "{refused}");
    book.admit(client(1), now + Duration::from_secs(61))
        .unwrap();
}

#[test]
fn connections_join_one_approval_and_the_last_to_leave_withdraws_it() {
    let mut book = Book::default();
    let later = Instant::now() + Duration::from_secs(60);
    let k = key(1, "example.org");
    book.open(
        k.clone(),
        client(1),
        "anonymous",
        Protocol::Socks5,
        later,
        SystemTime::now(),
    );
    assert!(book.join(&k).is_some());
    assert!(
        book.join(&key(2, "example.org")).is_none(),
        "another client asks on its own"
    );
    assert_eq!(book.pending_list()[0].waiting, 2);
    assert!(book.leave(&k).is_none());
    assert!(book.leave(&k).is_some());
    assert!(book.pending_list().is_empty());
}

#[test]
fn a_grant_lasts_until_its_end() {
    let mut book = Book::default();
    let now = Instant::now();
    book.grant(key(1, "example.org"), now + Duration::from_secs(60));
    assert!(book.granted(&key(1, "example.org"), now));
    assert!(!book.granted(&key(2, "example.org"), now));
    assert!(!book.granted(&key(1, "example.org"), now + Duration::from_secs(61)));
}
