//! The ClientHello/SNI reader sees untrusted bytes before anything is dialed. Beyond "no panic":
//! a name it returns is printable ASCII of at most 255 bytes, and a prefix of input that yields
//! a hello never yields a different answer (only "need more" or the same hello).
#![no_main]

use egress_proxy::client_hello::{sniff, Sniffed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = sniff(data);
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
});
