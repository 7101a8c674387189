use std::sync::Arc;

use super::message::{EXTENSION_SERVER_NAME, NAME_TYPE_HOST_NAME};
use super::*;

const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;

/// A ClientHello handshake message (header + body) with these extensions.
pub(super) fn hello_message(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend([7u8; 32]);
    body.push(32);
    body.extend([9u8; 32]);
    body.extend([0x00, 0x04, 0x13, 0x01, 0x13, 0x02]);
    body.extend([0x01, 0x00]);
    let mut ext = Vec::new();
    for (kind, data) in extensions {
        ext.extend(kind.to_be_bytes());
        ext.extend((data.len() as u16).to_be_bytes());
        ext.extend(data);
    }
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut message = vec![HANDSHAKE_CLIENT_HELLO];
    message.extend(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend(body);
    message
}

pub(super) fn sni(name: &[u8]) -> (u16, Vec<u8>) {
    let mut entry = vec![NAME_TYPE_HOST_NAME];
    entry.extend((name.len() as u16).to_be_bytes());
    entry.extend(name);
    let mut data = (entry.len() as u16).to_be_bytes().to_vec();
    data.extend(entry);
    (EXTENSION_SERVER_NAME, data)
}

/// Wraps a handshake message into records of at most `chunk` bytes each.
pub(super) fn records(message: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in message.chunks(chunk) {
        out.extend([CONTENT_HANDSHAKE, 0x03, 0x01]);
        out.extend((part.len() as u16).to_be_bytes());
        out.extend(part);
    }
    out
}

fn name_of(bytes: &[u8]) -> Sniffed {
    sniff(bytes)
}

fn hello(name: &str) -> Sniffed {
    Sniffed::Hello(Hello {
        server_name: Some(name.into()),
    })
}

/// A real TLS 1.3 ClientHello, as rustls writes it.
pub(super) fn rustls_client_hello(server: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

#[test]
fn a_real_tls13_client_hello_names_its_server() {
    let bytes = rustls_client_hello("api.example.com");
    assert_eq!(sniff(&bytes), hello("api.example.com"));
}

#[test]
fn every_prefix_of_a_hello_asks_for_more_and_never_misreads() {
    let bytes = rustls_client_hello("api.example.com");
    for cut in 1..bytes.len() {
        match sniff(&bytes[..cut]) {
            Sniffed::NeedMore { needed } => assert!(needed > 0, "cut {cut}"),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn a_hello_split_across_records_is_reassembled() {
    // A post-quantum hybrid key share (X25519MLKEM768: 1216 bytes) pushes hellos past one MTU;
    // some clients also split the handshake message over several records.
    let message = hello_message(&[(51, vec![0x11; 1250]), sni(b"big.example")]);
    for chunk in [1, 3, 4, 100, 1000, 16384] {
        let bytes = records(&message, chunk);
        assert_eq!(sniff(&bytes), hello("big.example"), "records of {chunk}");
        assert!(
            matches!(sniff(&bytes[..bytes.len() - 1]), Sniffed::NeedMore { .. }),
            "chunk {chunk}"
        );
    }
}

#[test]
fn bytes_after_the_hello_are_left_alone() {
    let mut bytes = records(&hello_message(&[sni(b"a.example")]), 16384);
    bytes.extend([0x17, 0x03, 0x03, 0x00, 0x01, 0xff]);
    assert_eq!(sniff(&bytes), hello("a.example"));
}

#[test]
fn no_sni_and_no_extensions_are_hellos_without_a_name() {
    let none = Sniffed::Hello(Hello { server_name: None });
    assert_eq!(
        sniff(&records(&hello_message(&[(10, vec![0, 2, 0, 29])]), 16384)),
        none
    );
    // Extensions absent altogether (pre-TLS 1.3 form).
    let mut message = hello_message(&[]);
    message.truncate(message.len() - 2);
    let body_len = (message.len() - 4) as u32;
    message[1..4].copy_from_slice(&body_len.to_be_bytes()[1..]);
    assert_eq!(sniff(&records(&message, 16384)), none);
}

#[test]
fn plain_text_is_not_tls() {
    assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniffed::NotTls);
    assert_eq!(sniff(b"SSH-2.0-OpenSSH_9.6\r\n"), Sniffed::NotTls);
    assert_eq!(
        sniff(&[0x80, 0x2e, 0x02]),
        Sniffed::NotTls,
        "SSLv2-style header, but not a hello"
    );
    assert_eq!(
        sniff(&[]),
        Sniffed::NeedMore {
            needed: RECORD_HEADER
        }
    );
}

#[test]
fn malformed_hellos_are_refused_with_a_reason() {
    let good = hello_message(&[sni(b"a.example")]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bad record version",
            vec![0x16, 0x02, 0x00],
            "unknown TLS record version",
        ),
        (
            "record minor 9",
            vec![0x16, 0x03, 0x09],
            "unknown TLS record version",
        ),
        (
            "empty record",
            vec![0x16, 0x03, 0x01, 0x00, 0x00],
            "empty TLS record",
        ),
        (
            "oversized record",
            vec![0x16, 0x03, 0x01, 0x40, 0x01],
            "TLS record longer than 2^14 bytes",
        ),
        (
            "server hello first",
            records(&[0x02, 0, 0, 1, 0], 100),
            "the first handshake message is not a ClientHello",
        ),
        (
            "huge hello",
            records(&[0x01, 0x01, 0x00, 0x00], 100),
            "ClientHello larger than 32 KiB",
        ),
        (
            "alert in the middle",
            {
                let mut b = records(&good[..10], 100);
                b.extend([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
                b
            },
            "a ClientHello continues in a record that is not a handshake",
        ),
        (
            "two server names",
            {
                let mut entries = Vec::new();
                for name in [&b"a.example"[..], b"b.example"] {
                    entries.push(NAME_TYPE_HOST_NAME);
                    entries.extend((name.len() as u16).to_be_bytes());
                    entries.extend(name);
                }
                let mut data = (entries.len() as u16).to_be_bytes().to_vec();
                data.extend(entries);
                records(&hello_message(&[(0, data)]), 16384)
            },
            "more than one server name",
        ),
        (
            "two SNI extensions",
            records(
                &hello_message(&[sni(b"a.example"), sni(b"b.example")]),
                16384,
            ),
            "the same extension twice in a ClientHello",
        ),
        (
            "empty name",
            records(&hello_message(&[sni(b"")]), 16384),
            "empty server name",
        ),
        (
            "long name",
            records(&hello_message(&[sni(&[b'a'; 256])]), 16384),
            "server name longer than 255 bytes",
        ),
        (
            "NUL in name",
            records(&hello_message(&[sni(b"a.example\0.evil")]), 16384),
            "server name with a byte that is not printable ASCII",
        ),
        (
            "UTF-8 in name",
            records(&hello_message(&[sni("bücher.example".as_bytes())]), 16384),
            "server name with a byte that is not printable ASCII",
        ),
        (
            "other name type",
            records(&hello_message(&[(0, vec![0, 4, 1, 0, 1, b'a'])]), 16384),
            "server_name entry that is not a host name",
        ),
        (
            "SNI length past its extension",
            records(&hello_message(&[(0, vec![0, 9, 0, 0, 1, b'a'])]), 16384),
            "server_name extension truncated",
        ),
        (
            "extension past the list",
            {
                let mut m = hello_message(&[sni(b"a.example")]);
                let n = m.len();
                m[n - 16] = 0xff; // the SNI extension's length, now past the end
                records(&m, 16384)
            },
            "extension truncated in its data",
        ),
    ];
    for (what, bytes, expected) in cases {
        assert_eq!(name_of(&bytes), Sniffed::Malformed(expected), "{what}");
    }
}

#[test]
fn garbage_after_extensions_and_odd_suites_are_refused() {
    let mut message = hello_message(&[sni(b"a.example")]);
    message.push(0);
    let body_len = (message.len() - 4) as u32;
    message[1..4].copy_from_slice(&body_len.to_be_bytes()[1..]);
    assert_eq!(
        sniff(&records(&message, 16384)),
        Sniffed::Malformed("bytes after the ClientHello extensions")
    );

    let mut odd = hello_message(&[]);
    odd[4 + 2 + 32 + 1 + 32 + 1] = 3; // cipher suite list length 3
    assert!(matches!(
        sniff(&records(&odd, 16384)),
        Sniffed::Malformed(_)
    ));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic sweep; the fuzz target `client_hello` does this properly.
    let base = records(&hello_message(&[(51, vec![1; 40]), sni(b"x.example")]), 50);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..20_000 {
        let mut bytes = base.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state as usize) % bytes.len();
            bytes[at] = (state >> 32) as u8;
        }
        let _ = sniff(&bytes);
    }
}
