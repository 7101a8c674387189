//! The ClientHello/SNI reader sees untrusted bytes before anything is dialed. Beyond "no panic":
//! a name it returns is printable ASCII of at most 255 bytes; a prefix of input that yields a
//! hello never yields a different answer (only "need more" or the same hello); fed in pieces of
//! any size (the first input byte picks them), the streaming reader gives the verdict the whole
//! input gives and takes the same bytes; and what it takes and does stays within its bounds.
#![no_main]

use egress_proxy::client_hello::{sniff, HelloReader, Sniffed, MAX_WIRE_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut whole_reader = HelloReader::new();
    let whole = whole_reader.feed(data);
    assert_eq!(whole, sniff(data));
    check_bounds(&whole_reader);
    if let Sniffed::NeedMore { needed } = whole {
        assert!(needed > 0);
    }
    if let Sniffed::Hello(hello) = &whole {
        if let Some(name) = &hello.server_name {
            assert!(!name.is_empty() && name.len() <= 255);
            assert!(name.bytes().all(|b| b.is_ascii_graphic()));
        }
        let half = &data[..data.len() / 2];
        match sniff(half) {
            Sniffed::NeedMore { .. } => {}
            Sniffed::Hello(h) => assert_eq!(&h, hello),
            other => panic!("the first half of a hello was judged {other:?}"),
        }
    }
    // The same bytes in pieces: sizes cycle through 1..=k with k from the first byte.
    let k = usize::from(data.first().copied().unwrap_or(1) % 32) + 1;
    let mut reader = HelloReader::new();
    let mut verdict = reader.feed(&[]);
    let mut rest = data;
    let mut size = 1;
    while !rest.is_empty() {
        let n = size.min(rest.len());
        verdict = reader.feed(&rest[..n]);
        rest = &rest[n..];
        size = size % k + 1;
    }
    assert_eq!(verdict, whole, "fed in pieces of up to {k}");
    assert_eq!(reader.consumed(), whole_reader.consumed());
    check_bounds(&reader);
});

fn check_bounds(reader: &HelloReader) {
    assert!(reader.consumed() <= MAX_WIRE_BYTES);
    assert!(
        reader.work() <= 3 * reader.consumed() + 8,
        "work {} for {} bytes",
        reader.work(),
        reader.consumed()
    );
}
