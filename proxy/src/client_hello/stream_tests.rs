//! The streaming side: what counts as TLS, records before the ClientHello, any chunking giving
//! the same verdict, and the cost of reading staying linear and bounded.

use super::tests::{hello_message, records, rustls_client_hello, sni};
use super::*;

fn hello(name: &str) -> Sniffed {
    Sniffed::Hello(Hello {
        server_name: Some(name.into()),
    })
}

fn malformed(why: &'static str) -> Sniffed {
    Sniffed::Malformed(why)
}

/// Feeds `bytes` in pieces of `chunk` bytes, as reads from a socket would bring them.
fn fed_in(bytes: &[u8], chunk: usize) -> (Sniffed, HelloReader) {
    let mut reader = HelloReader::new();
    let mut verdict = reader.feed(&[]);
    for piece in bytes.chunks(chunk) {
        verdict = reader.feed(piece);
    }
    (verdict, reader)
}

/// A ClientHello message of about `size` bytes (a padding extension fills it), for `name`.
fn hello_of_size(name: &[u8], size: usize) -> Vec<u8> {
    let base = hello_message(&[sni(name), (21, Vec::new())]).len();
    hello_message(&[sni(name), (21, vec![0; size.saturating_sub(base)])])
}

#[test]
fn each_record_type_before_the_hello_is_refused_whatever_follows() {
    let good = records(&hello_message(&[sni(b"allowed.example")]), 16384);
    let cases: [(&str, &[u8], &str); 9] = [
        (
            "warning alert",
            &[0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x5a],
            "an alert record before the ClientHello",
        ),
        (
            "alert with version 0.0 (Go takes it)",
            &[0x15, 0x00, 0x00, 0x00, 0x02, 0x01, 0x5a],
            "an alert record before the ClientHello",
        ),
        (
            "empty alert",
            &[0x15, 0x03, 0x03, 0x00, 0x00],
            "an alert record before the ClientHello",
        ),
        (
            "change_cipher_spec",
            &[0x14, 0x03, 0x03, 0x00, 0x01, 0x01],
            "a change_cipher_spec record before the ClientHello",
        ),
        (
            "application_data",
            &[0x17, 0x03, 0x03, 0x00, 0x03, 1, 2, 3],
            "an application_data record before the ClientHello",
        ),
        (
            "empty application_data",
            &[0x17, 0x03, 0x03, 0x00, 0x00],
            "an application_data record before the ClientHello",
        ),
        (
            "heartbeat",
            &[0x18, 0x03, 0x03, 0x00, 0x03, 1, 0, 0],
            "a heartbeat record before the ClientHello",
        ),
        (
            "empty handshake record (OpenSSL skips it)",
            &[0x16, 0x03, 0x01, 0x00, 0x00],
            "empty TLS record",
        ),
        (
            "handshake record of version 0.0",
            &[0x16, 0x00, 0x00, 0x00, 0x01, 0x01],
            "unknown TLS record version",
        ),
    ];
    for (what, prefix, why) in cases {
        let bytes = [prefix, &good].concat();
        for chunk in [1, 2, 5, 7, bytes.len()] {
            assert_eq!(
                fed_in(&bytes, chunk).0,
                malformed(why),
                "{what}, chunk {chunk}"
            );
        }
    }
}

#[test]
fn a_non_handshake_first_byte_is_refused_at_once_without_waiting() {
    for first in [0x14, 0x15, 0x17, 0x18] {
        assert!(
            matches!(sniff(&[first]), Sniffed::Malformed(_)),
            "first byte {first:#x}"
        );
    }
    assert!(matches!(sniff(&[0x16]), Sniffed::NeedMore { .. }));
}

#[test]
fn every_first_byte_is_classified_tls_or_not_by_one_rule() {
    // Whatever follows, a stream starting with one of the five record types is never "not TLS";
    // a high first byte is an SSLv2 hello exactly when its third byte is 1; nothing else is TLS.
    let tails: [&[u8]; 4] = [
        &[0x03, 0x03, 0x00, 0x02, 0x01, 0x5a],
        &[0x00, 0x01, 0x03, 0x01],
        b"ET / HTTP/1.1\r\n",
        &[0xff; 8],
    ];
    for first in 0..=u8::MAX {
        for tail in tails {
            let bytes = [&[first][..], tail].concat();
            let verdict = sniff(&bytes);
            let expected_tls = (20..=24).contains(&first) || (first & 0x80 != 0 && bytes[2] == 1);
            assert_eq!(
                verdict != Sniffed::NotTls,
                expected_tls,
                "{bytes:02x?}: {verdict:?}"
            );
            assert_eq!(starts_tls(&bytes), expected_tls, "{bytes:02x?}");
        }
    }
}

#[test]
fn an_sslv2_format_hello_is_a_hello_without_a_name() {
    // SSLv2 header (length 0x2e), CLIENT-HELLO, version 3.1, then cipher specs and challenge.
    let mut v2 = vec![
        0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
    ];
    v2.extend([0x11; 0x15 + 0x10]);
    assert_eq!(sniff(&v2[..1]), Sniffed::NeedMore { needed: 2 });
    assert_eq!(sniff(&v2[..2]), Sniffed::NeedMore { needed: 1 });
    assert_eq!(sniff(&v2), Sniffed::Hello(Hello { server_name: None }));
    assert_eq!(
        fed_in(&v2, 1).0,
        Sniffed::Hello(Hello { server_name: None })
    );
}

#[test]
fn any_chunking_gives_the_same_verdict_as_the_whole() {
    let good = rustls_client_hello("api.example.com");
    let split = records(
        &hello_message(&[(51, vec![0x11; 1250]), sni(b"big.example")]),
        7,
    );
    let mut after = split.clone();
    after.extend([0x17, 0x03, 0x03, 0x00, 0x01, 0xff]);
    let mut alert_mid = records(&hello_message(&[sni(b"a.example")])[..10], 3);
    alert_mid.extend([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
    let inputs: [(&[u8], Sniffed); 5] = [
        (&good, hello("api.example.com")),
        (&split, hello("big.example")),
        (&after, hello("big.example")),
        (
            &alert_mid,
            malformed("a ClientHello continues in a record that is not a handshake"),
        ),
        (b"SSH-2.0-OpenSSH_9.6\r\n", Sniffed::NotTls),
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for (bytes, expected) in inputs {
        assert_eq!(sniff(bytes), expected);
        for chunk in 1..=17 {
            assert_eq!(fed_in(bytes, chunk).0, expected, "chunk {chunk}");
        }
        // Random chunkings, as TCP segments might cut them.
        for _ in 0..200 {
            let mut reader = HelloReader::new();
            let mut rest = bytes;
            let mut verdict = reader.feed(&[]);
            while !rest.is_empty() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let n = 1 + (state as usize) % rest.len().min(64);
                verdict = reader.feed(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(verdict, expected);
        }
    }
}

#[test]
fn nothing_past_the_hello_is_taken() {
    let hello_bytes = records(&hello_message(&[sni(b"a.example")]), 50);
    let mut bytes = hello_bytes.clone();
    bytes.extend([0x17, 0x03, 0x03, 0x00, 0x01, 0xff]);
    for chunk in [1, 4, bytes.len()] {
        let (verdict, reader) = fed_in(&bytes, chunk);
        assert_eq!(verdict, hello("a.example"));
        assert_eq!(reader.consumed(), hello_bytes.len(), "chunk {chunk}");
    }
}

#[test]
fn the_number_of_records_is_capped() {
    // The most records allowed still make a hello; one more is refused as soon as its header is
    // in, however small the hello.
    let message = hello_of_size(b"a.example", MAX_RECORDS);
    assert_eq!(message.len(), MAX_RECORDS);
    assert_eq!(sniff(&records(&message, 1)), hello("a.example"));
    let message = hello_of_size(b"a.example", MAX_RECORDS + 1);
    let bytes = records(&message, 1);
    let (verdict, reader) = fed_in(&bytes, 1000);
    assert_eq!(
        verdict,
        malformed("ClientHello spread over more than 4096 TLS records")
    );
    assert_eq!(reader.consumed(), MAX_RECORDS * 6 + RECORD_HEADER);
}

/// The attack of issue 12: a 32 KiB ClientHello in 1-byte records (196 KB), arriving a byte at a
/// time. The reader refuses it after `MAX_RECORDS` records, having looked at each byte once.
#[test]
fn a_hello_in_one_byte_records_is_refused_after_bounded_linear_work() {
    let message = hello_of_size(b"a.example", MAX_HELLO);
    let bytes = records(&message, 1);
    assert!(bytes.len() > 196_000);
    let (verdict, reader) = fed_in(&bytes, 1);
    assert_eq!(
        verdict,
        malformed("ClientHello spread over more than 4096 TLS records")
    );
    assert!(reader.consumed() <= MAX_WIRE_BYTES);
    assert!(reader.work() <= 3 * reader.consumed() + 8, "{reader:?}");
}

#[test]
fn the_work_grows_linearly_with_the_input() {
    // The same hello shape at n and 4n bytes, in 1-byte records fed a byte at a time (the worst
    // case: one step per read). A reader that re-read what it had would do 16 times the work.
    let work = |size: usize| {
        let bytes = records(&hello_of_size(b"a.example", size), 1);
        let (verdict, reader) = fed_in(&bytes, 1);
        assert_eq!(verdict, hello("a.example"), "size {size}");
        assert_eq!(reader.consumed(), bytes.len());
        assert!(
            reader.work() <= 3 * bytes.len() + 8,
            "size {size}: {reader:?}"
        );
        reader.work()
    };
    let (small, large) = (work(1000), work(4000));
    assert!(large <= 5 * small, "{small} then {large}");
    // In one record the same: the final parse is counted too.
    let bytes = records(&hello_of_size(b"a.example", 16000), 16384);
    let (_, reader) = fed_in(&bytes, 1);
    assert!(reader.work() <= 3 * bytes.len() + 8, "{reader:?}");
}

#[test]
fn the_bytes_taken_never_exceed_the_bound() {
    // Largest hellos in the largest records, in 1-byte records, and a huge declared size.
    let big = hello_of_size(b"a.example", MAX_HELLO + 4);
    for bytes in [
        records(&big, 16384),
        records(&big, 1),
        records(&big, 8),
        records(&[0x01, 0xff, 0xff, 0xff], 1),
    ] {
        let (_, reader) = fed_in(&bytes, 333);
        assert!(reader.consumed() <= MAX_WIRE_BYTES, "{}", reader.consumed());
    }
}
