//! Message bodies: how long one is (framing) and copying it through, byte for byte.
//!
//! Chunked bodies are passed on verbatim, but every chunk-size line is parsed and checked, so the
//! proxy always knows where a message ends and cannot be desynchronised from the client or the
//! destination (request smuggling).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::head::{values, Buffered, Header};

/// A chunk-size line, extensions included, longer than this is refused.
const MAX_CHUNK_LINE: usize = 4096;
/// All trailer lines together.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    Length(u64),
    Chunked,
    /// The body ends when the sender closes (responses only).
    UntilClose,
}

/// Why a message's framing headers were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError(pub &'static str);

/// The framing of a request body. Ambiguous shapes, which two parsers could read differently,
/// are refused rather than guessed. `minor_version` is 0 for HTTP/1.0, which has no chunked
/// coding: RFC 9112 §6.1 calls such a request's framing faulty.
pub fn request_framing(minor_version: u8, headers: &[Header]) -> Result<Framing, FramingError> {
    if headers.iter().any(|h| {
        h.name.contains(&b'_')
            && ["content-length", "transfer-encoding"]
                .iter()
                .any(|framing| same_but_underscores(&h.name, framing))
    }) {
        // Some servers (CGI, WSGI) read `_` as `-`: a second framing header in disguise.
        return Err(FramingError(
            "a framing header spelled with underscores (Content_Length, Transfer_Encoding)",
        ));
    }
    let mut te = values(headers, "transfer-encoding");
    let lengths = content_length(headers)?;
    if let Some(first) = te.next() {
        if minor_version == 0 {
            return Err(FramingError("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if te.next().is_some() {
            return Err(FramingError("repeated Transfer-Encoding"));
        }
        if lengths.is_some() {
            return Err(FramingError("both Content-Length and Transfer-Encoding"));
        }
        let chunked = trim_ows(&first.value).eq_ignore_ascii_case(b"chunked");
        return if chunked {
            Ok(Framing::Chunked)
        } else {
            Err(FramingError(
                "unsupported Transfer-Encoding (only chunked is accepted)",
            ))
        };
    }
    Ok(match lengths {
        Some(0) | None => Framing::Empty,
        Some(n) => Framing::Length(n),
    })
}

/// The framing of a response to `method` with status `code` (RFC 9112 §6.3). Responses are read
/// a little more leniently than requests, as the destination was chosen by the client.
pub fn response_framing(
    method: &[u8],
    code: u16,
    headers: &[Header],
) -> Result<Framing, FramingError> {
    // Three digits, the first 1 to 5 (RFC 9110 §15): "020" parses as 20, which no client reads
    // as a status line once written back.
    if !(100..=599).contains(&code) {
        return Err(FramingError("invalid status code"));
    }
    // Methods are case-sensitive (RFC 9110 §9.1): `head` is not HEAD, and has a body.
    if method == b"HEAD" || (100..200).contains(&code) || code == 204 || code == 304 {
        return Ok(Framing::Empty);
    }
    let te: Vec<&Header> = values(headers, "transfer-encoding").collect();
    if !te.is_empty() {
        let codings: Vec<&[u8]> = te
            .iter()
            .flat_map(|h| h.value.split(|b| *b == b','))
            .map(trim_ows)
            .collect();
        // A coding that is no token ("chunked\u{a0}") is read as chunked by some and not by
        // others: refused rather than guessed.
        if codings
            .iter()
            .any(|c| c.is_empty() || !c.iter().all(|b| is_tchar(*b)))
        {
            return Err(FramingError("invalid Transfer-Encoding"));
        }
        let last_is_chunked = codings
            .last()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        return Ok(if last_is_chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    Ok(match content_length(headers)? {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// `bytes` without the optional white space of RFC 9110 §5.6.3 (SP and HTAB only: Unicode
/// spaces are not white space to other parsers).
pub fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = bytes.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(start), Some(end)) => &bytes[start..=end],
        _ => &[],
    }
}

/// A token character (RFC 9110 §5.6.2).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `name` equals `framing` when underscores are read as dashes.
fn same_but_underscores(name: &[u8], framing: &str) -> bool {
    name.len() == framing.len()
        && name
            .iter()
            .zip(framing.bytes())
            .all(|(n, f)| n.to_ascii_lowercase() == f || (*n == b'_' && f == b'-'))
}

/// The one Content-Length, if any. Repeated headers and comma lists are refused even when the
/// values agree: a downstream parser might not.
fn content_length(headers: &[Header]) -> Result<Option<u64>, FramingError> {
    let mut found = None;
    for header in values(headers, "content-length") {
        if found.is_some() {
            return Err(FramingError("repeated Content-Length"));
        }
        let digits = header.value.trim_ascii();
        if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(FramingError("invalid Content-Length"));
        }
        let value = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        found = Some(value);
    }
    Ok(found)
}

/// Copies a body of the given framing from `src` to `dst`. Reads and writes each wait at most
/// `idle`. Returns the bytes written.
pub async fn copy<R, W>(
    src: &mut Buffered<R>,
    dst: &mut W,
    framing: Framing,
    idle: Duration,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match framing {
        Framing::Empty => Ok(0),
        Framing::Length(n) => copy_exact(src, dst, n, idle).await,
        Framing::Chunked => copy_chunked(src, dst, idle).await,
        Framing::UntilClose => copy_until_close(src, dst, idle).await,
    }
}

async fn write<W: AsyncWrite + Unpin>(dst: &mut W, bytes: &[u8], idle: Duration) -> io::Result<()> {
    match tokio::time::timeout(idle, dst.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "peer stopped reading",
        )),
    }
}

async fn copy_exact<R, W>(
    src: &mut Buffered<R>,
    dst: &mut W,
    mut left: u64,
    idle: Duration,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let total = left;
    while left > 0 {
        if src.buf.is_empty() {
            src.fill(idle).await?;
        }
        let take = src
            .buf
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let piece = src.buf.split_to(take);
        write(dst, &piece, idle).await?;
        left -= take as u64;
    }
    Ok(total)
}

async fn copy_until_close<R, W>(
    src: &mut Buffered<R>,
    dst: &mut W,
    idle: Duration,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut total = 0;
    loop {
        if !src.buf.is_empty() {
            let piece = src.buf.split();
            write(dst, &piece, idle).await?;
            total += piece.len() as u64;
        }
        match src.fill(idle).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(total),
            Err(e) => return Err(e),
        }
    }
}

/// Copies a chunked body as the bare data it carries (chunk lines, CRLFs and trailers are read,
/// checked and left out), for an HTTP/1.0 client, which cannot read chunked coding: it gets a
/// body that ends when the connection closes. Returns the data bytes written.
pub async fn copy_dechunked<R, W>(
    src: &mut Buffered<R>,
    dst: &mut W,
    idle: Duration,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    chunked(src, dst, idle, Coding::Strip).await
}

async fn copy_chunked<R, W>(src: &mut Buffered<R>, dst: &mut W, idle: Duration) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    chunked(src, dst, idle, Coding::Keep).await
}

/// Whether the chunked coding itself is passed on or only the data it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Keep,
    Strip,
}

async fn chunked<R, W>(
    src: &mut Buffered<R>,
    dst: &mut W,
    idle: Duration,
    coding: Coding,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let keep = coding == Coding::Keep;
    let mut total = 0;
    loop {
        let line = src.read_line(MAX_CHUNK_LINE, idle).await?;
        let size = parse_chunk_size(&line)?;
        if keep {
            write(dst, &line, idle).await?;
            total += line.len() as u64;
        }
        if size == 0 {
            return Ok(total + trailers(src, dst, idle, coding).await?);
        }
        total += copy_exact(src, dst, size, idle).await?;
        let end = src.read_line(2, idle).await?;
        if &end[..] != b"\r\n" {
            return Err(invalid("chunk data not followed by CRLF"));
        }
        if keep {
            write(dst, &end, idle).await?;
            total += 2;
        }
    }
}

async fn trailers<R, W>(
    src: &mut Buffered<R>,
    dst: &mut W,
    idle: Duration,
    coding: Coding,
) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut total = 0u64;
    loop {
        let line = src.read_line(MAX_CHUNK_LINE, idle).await?;
        if !line.ends_with(b"\r\n") {
            return Err(invalid("trailer line not ended by CRLF"));
        }
        total += line.len() as u64;
        if total > MAX_TRAILERS as u64 {
            return Err(invalid("trailers too large"));
        }
        if &line[..] != b"\r\n" && !is_field_line(&line[..line.len() - 2]) {
            return Err(invalid("malformed trailer line"));
        }
        if coding == Coding::Keep {
            write(dst, &line, idle).await?;
        }
        if &line[..] == b"\r\n" {
            return Ok(if coding == Coding::Keep { total } else { 0 });
        }
    }
}

/// A header field line as strict as a head's: a token name, a colon, then a value without
/// control characters (HTAB allowed) — so no trailer can pass for a status or request line, and
/// no bare CR can end a line for a laxer parser.
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    !name.is_empty()
        && name.iter().all(|b| is_tchar(*b))
        && value
            .iter()
            .all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f))
}

/// `1a2b;ext=1\r\n` → 0x1a2b. Strict: hex digits, optional extensions, CRLF; no sign, no spaces
/// before the digits, no overflow.
pub fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(invalid("chunk-size line not ended by CRLF"));
    };
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at(digits_end);
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid("invalid chunk size"));
    }
    let rest = rest.trim_ascii_start();
    if !(rest.is_empty() || rest.starts_with(b";"))
        || rest.iter().any(|b| *b == b'\r' || *b == b'\n')
    {
        return Err(invalid("invalid chunk extension"));
    }
    Ok(digits.iter().fold(0u64, |n, d| {
        let v = (*d as char).to_digit(16).unwrap_or(0);
        (n << 4) | u64::from(v)
    }))
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn headers(list: &[(&'static str, &'static str)]) -> Vec<Header> {
        list.iter()
            .map(|(n, v)| Header {
                name: Bytes::from_static(n.as_bytes()),
                value: Bytes::from_static(v.as_bytes()),
            })
            .collect()
    }

    #[test]
    fn request_framing_refuses_ambiguous_shapes() {
        let f = |l: &[(&'static str, &'static str)]| request_framing(1, &headers(l));
        assert_eq!(f(&[]), Ok(Framing::Empty));
        assert_eq!(f(&[("Content-Length", "12")]), Ok(Framing::Length(12)));
        assert_eq!(f(&[("Transfer-Encoding", "chunked")]), Ok(Framing::Chunked));
        assert!(f(&[("Content-Length", "1"), ("Transfer-Encoding", "chunked")]).is_err());
        assert!(f(&[("Content-Length", "1"), ("Content-Length", "1")]).is_err());
        assert!(f(&[("Content-Length", "-1")]).is_err());
        assert!(f(&[("Content-Length", "1,1")]).is_err());
        assert!(f(&[("Transfer-Encoding", "gzip")]).is_err());
        assert!(f(&[
            ("Transfer-Encoding", "chunked"),
            ("Transfer-Encoding", "chunked")
        ])
        .is_err());
    }

    #[test]
    fn an_http_1_0_request_cannot_be_chunked() {
        let chunked = headers(&[("Transfer-Encoding", "chunked")]);
        assert!(request_framing(0, &chunked).is_err());
        assert_eq!(request_framing(1, &chunked), Ok(Framing::Chunked));
        let length = headers(&[("Content-Length", "3")]);
        assert_eq!(request_framing(0, &length), Ok(Framing::Length(3)));
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let f =
            |m: &[u8], c, l: &[(&'static str, &'static str)]| response_framing(m, c, &headers(l));
        assert_eq!(
            f(b"HEAD", 200, &[("Content-Length", "5")]),
            Ok(Framing::Empty)
        );
        assert_eq!(f(b"GET", 204, &[]), Ok(Framing::Empty));
        assert!(f(b"GET", 20, &[]).is_err());
        assert!(f(b"GET", 600, &[]).is_err());
        assert_eq!(
            f(b"GET", 304, &[("Content-Length", "5")]),
            Ok(Framing::Empty)
        );
        assert_eq!(f(b"GET", 200, &[]), Ok(Framing::UntilClose));
        assert_eq!(
            f(b"GET", 200, &[("Transfer-Encoding", "gzip, chunked")]),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            f(b"GET", 200, &[("Content-Length", "7")]),
            Ok(Framing::Length(7))
        );
    }

    #[test]
    fn chunk_sizes_are_strict() {
        assert_eq!(parse_chunk_size(b"1a\r\n").unwrap(), 0x1a);
        assert_eq!(parse_chunk_size(b"0\r\n").unwrap(), 0);
        assert_eq!(parse_chunk_size(b"10;name=value\r\n").unwrap(), 16);
        for bad in [
            &b"\r\n"[..],
            b"-1\r\n",
            b"+1\r\n",
            b" 1\r\n",
            b"1x\r\n",
            b"1\n",
            b"1000000000000000\r\n",
        ] {
            assert!(
                parse_chunk_size(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn chunked_bodies_pass_verbatim_and_stop_at_the_end() {
        let wire = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nTrailer: 1\r\n\r\nNEXT".to_vec();
        let mut src = Buffered::new(&wire[..]);
        let mut out = Vec::new();
        let n = copy(&mut src, &mut out, Framing::Chunked, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(out, &wire[..wire.len() - 4]);
        assert_eq!(n as usize, out.len());
        assert_eq!(&src.buf[..], b"NEXT");
    }

    #[tokio::test]
    async fn dechunking_passes_only_the_data_and_stops_at_the_end() {
        let wire = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nTrailer: 1\r\n\r\nNEXT".to_vec();
        let mut src = Buffered::new(&wire[..]);
        let mut out = Vec::new();
        let n = copy_dechunked(&mut src, &mut out, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(out, b"Wikipedia");
        assert_eq!(n, 9);
        assert_eq!(&src.buf[..], b"NEXT");
    }

    #[tokio::test]
    async fn truncated_chunked_body_is_an_error() {
        let wire = b"ff\r\nshort".to_vec();
        let mut src = Buffered::new(&wire[..]);
        let mut out = Vec::new();
        assert!(
            copy(&mut src, &mut out, Framing::Chunked, Duration::from_secs(1))
                .await
                .is_err()
        );
    }
}
