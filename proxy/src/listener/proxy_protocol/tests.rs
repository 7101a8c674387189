use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::*;

const WAIT: Duration = Duration::from_secs(5);

/// Reads a header from `bytes`, and returns it with what is left for the client's protocol.
fn read_all(bytes: &[u8]) -> (Result<Header, Error>, Vec<u8>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut io = bytes;
        let header = read(&mut io, WAIT).await;
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        (header, rest)
    })
}

fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn v4_body(tlvs: &[u8]) -> Vec<u8> {
    let mut body = vec![192, 0, 2, 7, 10, 0, 0, 1];
    body.extend_from_slice(&51234u16.to_be_bytes());
    body.extend_from_slice(&3128u16.to_be_bytes());
    body.extend_from_slice(tlvs);
    body
}

#[test]
fn v1_names_the_client_and_leaves_its_bytes_unread() {
    let (header, rest) = read_all(b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 3128\r\nCONNECT a:443");
    assert_eq!(
        header,
        Ok(Header::Proxied("192.0.2.7:51234".parse().unwrap()))
    );
    assert_eq!(rest, b"CONNECT a:443");
    let (header, rest) = read_all(b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 3128\r\n\x05\x01\x00");
    assert_eq!(
        header,
        Ok(Header::Proxied("[2001:db8::7]:65535".parse().unwrap()))
    );
    assert_eq!(rest, b"\x05\x01\x00");
}

#[test]
fn v2_names_the_client_skips_tlvs_and_leaves_its_bytes_unread() {
    // A PP2_TYPE_UNIQUE_ID and a PP2_TYPE_AUTHORITY TLV after the addresses.
    let tlvs = [0x05, 0x00, 0x03, b'a', b'b', b'c', 0x02, 0x00, 0x01, b'x'];
    let mut bytes = v2(0x1, 0x11, &v4_body(&tlvs));
    bytes.extend_from_slice(b"GET http://a/ HTTP/1.1\r\n");
    let (header, rest) = read_all(&bytes);
    assert_eq!(
        header,
        Ok(Header::Proxied("192.0.2.7:51234".parse().unwrap()))
    );
    assert_eq!(rest, b"GET http://a/ HTTP/1.1\r\n");
    let mut body = Vec::new();
    body.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
    body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    body.extend_from_slice(&[0x1F, 0x90, 0x0C, 0x38]);
    let (header, rest) = read_all(&v2(0x1, 0x21, &body));
    assert_eq!(
        header,
        Ok(Header::Proxied("[2001:db8::7]:8080".parse().unwrap()))
    );
    assert!(rest.is_empty());
}

#[test]
fn a_v2_local_command_is_the_balancers_own_connection() {
    // Health checks: LOCAL with no addresses, or with some that are ignored.
    assert_eq!(read_all(&v2(0x0, 0x00, &[])).0, Ok(Header::Local));
    assert_eq!(read_all(&v2(0x0, 0x11, &v4_body(&[]))).0, Ok(Header::Local));
}

#[test]
fn clients_without_a_tcp_address_are_refused_not_given_the_balancers() {
    assert_eq!(read_all(b"PROXY UNKNOWN\r\n").0, Err(Error::Unplaceable));
    assert_eq!(
        read_all(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").0,
        Err(Error::Unplaceable)
    );
    // v2 UNSPEC, a Unix socket (216 bytes of paths), UDP over IPv4.
    assert_eq!(read_all(&v2(0x1, 0x00, &[])).0, Err(Error::Unplaceable));
    assert_eq!(
        read_all(&v2(0x1, 0x31, &[0u8; 216])).0,
        Err(Error::Unplaceable)
    );
    assert_eq!(
        read_all(&v2(0x1, 0x12, &v4_body(&[]))).0,
        Err(Error::Unplaceable)
    );
}

#[test]
fn truncated_headers_are_refused() {
    let whole_v1 = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 3128\r\n";
    let whole_v2 = v2(0x1, 0x11, &v4_body(&[]));
    for cut in [1, 7, 8, 20, whole_v1.len() - 1] {
        assert_eq!(
            read_all(&whole_v1[..cut]).0,
            Err(Error::Truncated),
            "v1 cut at {cut}"
        );
    }
    for cut in [3, 8, 12, 15, 16, whole_v2.len() - 1] {
        assert_eq!(
            read_all(&whole_v2[..cut]).0,
            Err(Error::Truncated),
            "v2 cut at {cut}"
        );
    }
    // A v2 length longer than its addresses need is fine (TLVs); shorter is not.
    assert_eq!(
        read_all(&v2(0x1, 0x11, &[192, 0, 2, 7])).0,
        Err(Error::Malformed)
    );
    assert_eq!(
        read_all(&v2(0x1, 0x21, &[0u8; 35])).0,
        Err(Error::Malformed)
    );
}

#[test]
fn over_long_headers_are_refused_without_reading_them_whole() {
    let mut long = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 3128".to_vec();
    long.extend(std::iter::repeat_n(b' ', 100));
    long.extend_from_slice(b"\r\n");
    assert_eq!(read_all(&long).0, Err(Error::TooLong));
    // No CRLF at all, ever.
    assert_eq!(read_all(&[b'P'; 4096]).0, Err(Error::Signature));
    let mut endless = b"PROXY ".to_vec();
    endless.extend(std::iter::repeat_n(b'9', 4096));
    let (header, rest) = read_all(&endless);
    assert_eq!(header, Err(Error::TooLong));
    assert_eq!(rest.len(), endless.len() - MAX_V1, "stopped at the bound");
    // v2 announcing 65,535 bytes: refused from the preamble alone.
    let mut huge = v2(0x1, 0x11, &[]);
    huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    let (header, rest) = read_all(&huge);
    assert_eq!(header, Err(Error::TooLong));
    assert!(rest.is_empty());
}

#[test]
fn wrong_signatures_and_malformed_fields_are_refused() {
    for bytes in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"proxy TCP4 192.0.2.7 10.0.0.1 1 2\r\n",
        b"\x05\x01\x00\x00\x00\x00\x00\x00",
        b"\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c",
    ] {
        let (header, _) = read_all(bytes);
        assert!(
            matches!(header, Err(Error::Signature | Error::Truncated)),
            "{bytes:?}: {header:?}"
        );
    }
    let mut bad_sig = v2(0x1, 0x11, &v4_body(&[]));
    bad_sig[11] = b'X';
    assert_eq!(read_all(&bad_sig).0, Err(Error::Signature));
    for line in [
        &b"PROXY TCP4 192.0.2.7 10.0.0.1 51234\r\n"[..],
        b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 3128 extra\r\n",
        b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
        b"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 +1 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 01 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n",
        b"PROXY TCP4 192.0.2.7  10.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n\r\n",
        b"PROXY TCP5 192.0.2.7 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.\xff 10.0.0.1 1 2\r\n",
    ] {
        assert_eq!(read_all(line).0, Err(Error::Malformed), "{line:?}");
    }
    // v2: version 1, an undefined command, an undefined family.
    let mut version = v2(0x1, 0x11, &v4_body(&[]));
    version[12] = 0x11;
    assert_eq!(read_all(&version).0, Err(Error::Malformed));
    assert_eq!(
        read_all(&v2(0x7, 0x11, &v4_body(&[]))).0,
        Err(Error::Malformed)
    );
    assert_eq!(
        read_all(&v2(0x1, 0x41, &v4_body(&[]))).0,
        Err(Error::Malformed)
    );
}

#[tokio::test(start_paused = true)]
async fn a_header_that_does_not_come_times_out() {
    let (mut client, mut server) = tokio::io::duplex(64);
    tokio::io::AsyncWriteExt::write_all(&mut client, b"PROXY TCP4 192.0.2.7")
        .await
        .unwrap();
    assert_eq!(read(&mut server, WAIT).await, Err(Error::Timeout));
    drop(client);
}
