//! Sequences of TLS records, built from the fuzz input, fed to the streaming ClientHello reader
//! in pieces the input also picks. A ClientHello (its name, its size) is cut into handshake
//! records of chosen sizes and versions; records of other kinds (any type but handshake, empty
//! ones, ones with a bad version) may be put before or inside it; any bytes may follow it.
//!
//! The oracle: with nothing put in, the verdict is the hello's name (or a refusal its name or
//! size earns); with anything put in, it is a refusal, never a hello nor "not TLS". Whole or in
//! pieces, the verdict and the bytes taken are the same, and stay within the reader's bounds.
#![no_main]

use egress_proxy::client_hello::{
    sniff, Hello, HelloReader, Sniffed, MAX_HELLO, MAX_RECORDS, MAX_WIRE_BYTES,
};
use libfuzzer_sys::fuzz_target;

/// The fuzz input, read from the front; past its end, `None`.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }
}

/// A ClientHello handshake message: SNI `name` (none if empty), then padding.
fn hello_message(name: &[u8], padding: usize) -> Vec<u8> {
    let mut extensions = Vec::new();
    if !name.is_empty() {
        let mut list = vec![0u8];
        list.extend_from_slice(&(name.len() as u16).to_be_bytes());
        list.extend_from_slice(name);
        extensions.extend_from_slice(&[0, 0]);
        extensions.extend_from_slice(&(list.len() as u16 + 2).to_be_bytes());
        extensions.extend_from_slice(&(list.len() as u16).to_be_bytes());
        extensions.extend_from_slice(&list);
    }
    extensions.extend_from_slice(&[0, 21]);
    extensions.extend_from_slice(&(padding as u16).to_be_bytes());
    extensions.resize(extensions.len() + padding, 0);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut message = vec![0x01];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    message
}

fn record(out: &mut Vec<u8>, content: u8, version: [u8; 2], payload: &[u8]) {
    out.push(content);
    out.extend_from_slice(&version);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A record that must stop a ClientHello wherever it stands: another type, or a handshake record
/// that is empty or has a version other than 3.0–3.4.
fn foreign_record(out: &mut Vec<u8>, input: &mut Input) {
    let kind = input.byte().unwrap_or(0);
    let len = usize::from(input.byte().unwrap_or(0) % 8);
    let payload = input.take(len).to_vec();
    match kind % 4 {
        0 => record(
            out,
            [20, 21, 23, 24][usize::from(kind >> 2) % 4],
            [3, kind >> 4],
            &payload,
        ),
        1 => record(out, 22, [3, 3], &[]),
        2 => record(out, 22, [kind >> 2 & 0x3f, 3], &payload),
        _ => record(out, 22, [3, 5 + (kind >> 2)], &payload),
    }
    if kind % 4 == 2 && kind >> 2 & 0x3f == 3 {
        // Version 3.3 after all: make it empty so it is still refused.
        out.truncate(out.len() - payload.len());
        let at = out.len() - 2;
        out[at..].copy_from_slice(&[0, 0]);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let name_len = usize::from(input.byte().unwrap_or(0)) * 2;
    let name = input.take(name_len).to_vec();
    let padding = usize::from(u16::from_be_bytes([
        input.byte().unwrap_or(0),
        input.byte().unwrap_or(0),
    ])) % (MAX_HELLO + 256);
    let message = hello_message(&name, padding);

    let mut stream = Vec::new();
    let mut foreign = false;
    let mut records = 0;
    let mut rest = &message[..];
    while !rest.is_empty() {
        // Past the input's end: whole records, so the run stays short.
        let op = input.byte();
        if op.is_some_and(|op| op & 0x80 != 0) {
            foreign_record(&mut stream, &mut input);
            foreign = true;
        }
        let size = match op {
            Some(op) => 1 + usize::from(op & 0x7f).pow(2),
            None => 1 << 14,
        };
        let (part, tail) = rest.split_at(size.min(1 << 14).min(rest.len()));
        let version = [[3, 1], [3, 3], [3, 0], [3, 4]][records % 4];
        record(&mut stream, 22, version, part);
        records += 1;
        rest = tail;
    }
    let hello_end = stream.len();
    let after = usize::from(input.byte().unwrap_or(0));
    stream.extend_from_slice(input.take(after));

    let mut whole_reader = HelloReader::new();
    let whole = whole_reader.feed(&stream);
    assert_eq!(whole, sniff(&stream));
    if foreign {
        assert!(matches!(whole, Sniffed::Malformed(_)), "{whole:?}");
    } else {
        let body = message.len() - 4;
        let valid_name = name.len() <= 255 && name.iter().all(u8::is_ascii_graphic);
        if body > MAX_HELLO || records > MAX_RECORDS || !valid_name {
            assert!(matches!(whole, Sniffed::Malformed(_)), "{whole:?}");
        } else {
            let server_name = (!name.is_empty()).then(|| String::from_utf8(name.clone()).unwrap());
            assert_eq!(whole, Sniffed::Hello(Hello { server_name }));
            assert_eq!(
                whole_reader.consumed(),
                hello_end,
                "nothing past the hello is taken"
            );
        }
    }

    // In pieces whose sizes cycle through what is left of the input (or 1, 2, 3...).
    let sizes: Vec<usize> = input.0.iter().map(|&b| usize::from(b) * 7 + 1).collect();
    let mut reader = HelloReader::new();
    let mut verdict = reader.feed(&[]);
    let mut left = &stream[..];
    let mut i = 0;
    while !left.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(i % 5 + 1)
            .min(left.len());
        verdict = reader.feed(&left[..n]);
        left = &left[n..];
        i += 1;
    }
    assert_eq!(verdict, whole);
    assert_eq!(reader.consumed(), whole_reader.consumed());
    for r in [&reader, &whole_reader] {
        assert!(r.consumed() <= MAX_WIRE_BYTES);
        assert!(
            r.work() <= 3 * r.consumed() + 8,
            "work {} for {}",
            r.work(),
            r.consumed()
        );
    }
});
