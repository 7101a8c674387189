//! The PROXY protocol (HAProxy's, v1 text and v2 binary): a load balancer in front of a listener
//! starts each connection with a header naming the client it accepted, so that client addresses,
//! per-client caps and network identities survive the hop.
//!
//! Written here rather than taken from a crate: only the source address is needed, and the
//! header must be read with exact reads off the socket (never a byte past it: what follows is
//! the client's own HTTP or SOCKS5, which `detect` reads from the same `TcpStream`); the parsers
//! found on crates.io parse a buffer already read, which would leave bytes to hand back.
//!
//! Bounds: a v1 line is at most 107 bytes (the spec's maximum), a v2 header at most
//! `MAX_V2_BODY` bytes after its 16-byte preamble (addresses plus TLVs, which are skipped), and
//! the whole header must arrive within the request-head timeout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature: the 12 bytes every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line the spec allows, CRLF included.
pub const MAX_V1: usize = 107;
/// The longest v2 body accepted: IPv6 addresses (36 bytes) plus room for a load balancer's TLVs
/// (AWS and GCP send a few dozen bytes). The spec allows 65,535; nobody honest sends that.
pub const MAX_V2_BODY: usize = 1024;

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A client's connection relayed: its source address.
    Proxied(SocketAddr),
    /// The load balancer's own connection (v2 `LOCAL`: a health check): the peer is the client.
    Local,
}

/// Why a header was not accepted; the connection is closed (nothing after it can be trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Neither the v1 `PROXY ` nor the v2 signature: not a PROXY protocol client.
    Signature,
    /// The connection ended inside the header.
    Truncated,
    /// Longer than the bounds above.
    TooLong,
    /// A field that does not parse, or a length that does not fit the addresses.
    Malformed,
    /// A relayed client egress cannot place (`UNKNOWN`, `UNSPEC`, a Unix socket, UDP): without
    /// an address it would get the load balancer's, and with it the balancer's network
    /// identity, so it is refused.
    Unplaceable,
    /// Not complete within the time allowed.
    Timeout,
}

impl Error {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "no PROXY protocol signature",
            Self::Truncated => "truncated PROXY protocol header",
            Self::TooLong => "over-long PROXY protocol header",
            Self::Malformed => "malformed PROXY protocol header",
            Self::Unplaceable => "PROXY protocol header without a TCP client address",
            Self::Timeout => "PROXY protocol header not sent in time",
        }
    }
}

/// Reads one header off `io` within `wait`, exactly (not a byte more).
pub async fn read<R: AsyncRead + Unpin>(io: &mut R, wait: Duration) -> Result<Header, Error> {
    tokio::time::timeout(wait, read_header(io))
        .await
        .unwrap_or(Err(Error::Timeout))
}

async fn read_header<R: AsyncRead + Unpin>(io: &mut R) -> Result<Header, Error> {
    // 8 bytes tell the versions apart and are in every header of either (v1's shortest,
    // `PROXY UNKNOWN\r\n`, has 15).
    let mut start = [0u8; 16];
    exact(io, &mut start[..8]).await?;
    if start[..8] == V2_SIGNATURE[..8] {
        exact(io, &mut start[8..]).await?;
        if start[..12] != V2_SIGNATURE {
            return Err(Error::Signature);
        }
        let length = usize::from(u16::from_be_bytes([start[14], start[15]]));
        if length > MAX_V2_BODY {
            return Err(Error::TooLong);
        }
        let mut body = vec![0u8; length];
        exact(io, &mut body).await?;
        return parse_v2(&start, &body);
    }
    if !start.starts_with(b"PROXY ") {
        return Err(Error::Signature);
    }
    let mut line = start[..8].to_vec();
    // Byte by byte: the line's end is not known before it is seen, and reading past it would
    // take the client's first bytes.
    while !line.ends_with(b"\r\n") {
        if line.len() >= MAX_V1 {
            return Err(Error::TooLong);
        }
        let mut byte = [0u8; 1];
        exact(io, &mut byte).await?;
        line.push(byte[0]);
    }
    parse_v1(&line)
}

async fn exact<R: AsyncRead + Unpin>(io: &mut R, buf: &mut [u8]) -> Result<(), Error> {
    io.read_exact(buf)
        .await
        .map(drop)
        .map_err(|_| Error::Truncated)
}

/// A v1 line, CRLF included: `PROXY TCP4 SRC DST SPORT DPORT\r\n` (or `TCP6`, or `UNKNOWN …`).
pub fn parse_v1(line: &[u8]) -> Result<Header, Error> {
    if line.len() > MAX_V1 {
        return Err(Error::TooLong);
    }
    let text = line
        .strip_suffix(b"\r\n")
        .and_then(|l| l.strip_prefix(b"PROXY "))
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or(Error::Malformed)?;
    let fields: Vec<&str> = text.split(' ').collect();
    match fields.as_slice() {
        ["UNKNOWN", ..] => Err(Error::Unplaceable),
        [family @ ("TCP4" | "TCP6"), source, destination, source_port, destination_port] => {
            let v4 = *family == "TCP4";
            let address = |text: &str| -> Result<IpAddr, Error> {
                let ip: IpAddr = text.parse().map_err(|_| Error::Malformed)?;
                (ip.is_ipv4() == v4).then_some(ip).ok_or(Error::Malformed)
            };
            let source = address(source)?;
            address(destination)?;
            let source_port = port(source_port)?;
            port(destination_port)?;
            Ok(Header::Proxied(SocketAddr::new(source, source_port)))
        }
        _ => Err(Error::Malformed),
    }
}

/// A decimal port as the spec writes it: digits only, no sign, no leading zero.
fn port(text: &str) -> Result<u16, Error> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(Error::Malformed);
    }
    text.parse().map_err(|_| Error::Malformed)
}

/// A v2 header: the 16-byte preamble and its body (addresses, then TLVs, which are skipped).
pub fn parse_v2(preamble: &[u8; 16], body: &[u8]) -> Result<Header, Error> {
    if preamble[..12] != V2_SIGNATURE {
        return Err(Error::Signature);
    }
    if usize::from(u16::from_be_bytes([preamble[14], preamble[15]])) != body.len() {
        return Err(Error::Malformed);
    }
    let (version, command) = (preamble[12] >> 4, preamble[12] & 0x0F);
    if version != 2 {
        return Err(Error::Malformed);
    }
    match command {
        // LOCAL: the balancer speaking for itself; whatever addresses follow are ignored.
        0x0 => return Ok(Header::Local),
        0x1 => {}
        _ => return Err(Error::Malformed),
    }
    let (family, transport) = (preamble[13] >> 4, preamble[13] & 0x0F);
    const STREAM: u8 = 0x1;
    match (family, transport) {
        (0x1, STREAM) => {
            let a = body.get(..12).ok_or(Error::Malformed)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[8], a[9]]);
            Ok(Header::Proxied(SocketAddr::new(ip.into(), port)))
        }
        (0x2, STREAM) => {
            let a = body.get(..36).ok_or(Error::Malformed)?;
            let octets: [u8; 16] = a[..16].try_into().map_err(|_| Error::Malformed)?;
            let port = u16::from_be_bytes([a[32], a[33]]);
            Ok(Header::Proxied(SocketAddr::new(
                Ipv6Addr::from(octets).into(),
                port,
            )))
        }
        // UNSPEC, Unix sockets, datagrams, and families the spec does not define.
        (0x0..=0x3, _) => Err(Error::Unplaceable),
        _ => Err(Error::Malformed),
    }
}

#[cfg(test)]
mod tests;
