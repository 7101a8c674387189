//! Reading one HTTP/1.x message head, with a size cap and a deadline, and parsing it.
//!
//! httparse does the tokenising (strict, fast, well kept); this module owns where a head ends, how
//! big it may be and how long it may take, because those are the proxy's own security limits.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use egress_config::DenyReason;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::answer::Refusal;

/// Headers beyond this count are refused as too large (431).
pub const MAX_HEADERS: usize = 128;
const READ_CHUNK: usize = 16 * 1024;

/// A reader plus what has been read from it but not consumed yet (pipelined bytes, body bytes
/// that arrived with the head).
#[derive(Debug)]
pub struct Buffered<R> {
    pub io: R,
    pub buf: BytesMut,
}

/// Why no head was read.
#[derive(Debug)]
pub enum HeadError {
    /// The peer closed before sending a byte of this head (a normal end of keep-alive).
    Closed,
    /// The peer closed in the middle of a head.
    Truncated,
    /// The deadline passed; `partial` says whether any byte of the head had arrived.
    Timeout {
        partial: bool,
    },
    /// The head grew past the cap.
    TooLarge,
    Io(io::Error),
}

impl<R: AsyncRead + Unpin> Buffered<R> {
    pub fn new(io: R) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Reads until a complete head is buffered and returns it (including the blank line),
    /// leaving any following bytes in `buf`.
    pub async fn read_head(&mut self, max: usize, deadline: Instant) -> Result<Bytes, HeadError> {
        let mut scanned = 0;
        loop {
            skip_leading_blank_lines(&mut self.buf);
            if let Some(end) = find_head_end(&self.buf, scanned) {
                if end > max {
                    return Err(HeadError::TooLarge);
                }
                return Ok(self.buf.split_to(end).freeze());
            }
            if self.buf.len() >= max {
                return Err(HeadError::TooLarge);
            }
            // Re-scan the last three bytes: a terminator may straddle two reads.
            scanned = self.buf.len().saturating_sub(3);
            self.buf.reserve(READ_CHUNK);
            let read = tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf)).await;
            match read {
                Err(_) => {
                    return Err(HeadError::Timeout {
                        partial: !self.buf.is_empty(),
                    })
                }
                Ok(Err(error)) => return Err(HeadError::Io(error)),
                Ok(Ok(0)) if self.buf.is_empty() => return Err(HeadError::Closed),
                Ok(Ok(0)) => return Err(HeadError::Truncated),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Reads one CRLF-terminated line (for chunked framing), at most `max` bytes long.
    pub async fn read_line(&mut self, max: usize, idle: std::time::Duration) -> io::Result<Bytes> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[scanned..]) {
                return Ok(self.buf.split_to(scanned + pos + 1).freeze());
            }
            if self.buf.len() >= max {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            scanned = self.buf.len();
            self.fill(idle).await?;
        }
    }

    /// Reads more bytes into `buf`; EOF is an error here because callers expect more.
    pub async fn fill(&mut self, idle: std::time::Duration) -> io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        match tokio::time::timeout(idle, self.io.read_buf(&mut self.buf)).await {
            Ok(Ok(0)) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "peer idle")),
        }
    }
}

/// RFC 9112 §2.2: a server SHOULD ignore empty lines before a request line (some clients send a
/// stray CRLF after a body).
fn skip_leading_blank_lines(buf: &mut BytesMut) {
    let blank = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if blank > 0 {
        buf.advance(blank);
    }
}

/// The index just past the blank line that ends a head (`\n\r\n` or `\n\n`), scanning from
/// `from`. Bare-LF line ends are tolerated as RFC 9112 allows; httparse validates the rest.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    for nl in memchr::memchr_iter(b'\n', &buf[from..]).map(|i| i + from) {
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => {}
        }
    }
    None
}

/// One header, pointing into the head's bytes (no copy).
#[derive(Debug, Clone)]
pub struct Header {
    pub name: Bytes,
    pub value: Bytes,
}

impl Header {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

#[derive(Debug)]
pub struct RequestHead {
    pub method: Bytes,
    pub target: Bytes,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<Header>,
}

impl RequestHead {
    pub fn method_str(&self) -> &str {
        std::str::from_utf8(&self.method).unwrap_or("")
    }

    pub fn target_str(&self) -> &str {
        std::str::from_utf8(&self.target).unwrap_or("")
    }
}

#[derive(Debug)]
pub struct ResponseHead {
    pub code: u16,
    pub reason: Bytes,
    pub minor_version: u8,
    pub headers: Vec<Header>,
}

/// Values of every header named `name`, in order.
pub fn values<'h>(headers: &'h [Header], name: &'h str) -> impl Iterator<Item = &'h Header> + 'h {
    headers.iter().filter(move |h| h.is(name))
}

pub fn parse_request(head: &Bytes) -> Result<RequestHead, Refusal> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(Refusal::new(
                DenyReason::BadRequest,
                "incomplete request head",
            ))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(
                DenyReason::HeaderTooLarge,
                format!("more than {MAX_HEADERS} headers"),
            ))
        }
        Err(error) => {
            return Err(Refusal::new(
                DenyReason::BadRequest,
                format!("malformed request head: {error}"),
            ))
        }
    }
    let (Some(method), Some(target), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        return Err(Refusal::new(
            DenyReason::BadRequest,
            "incomplete request line",
        ));
    };
    Ok(RequestHead {
        method: head.slice_ref(method.as_bytes()),
        target: head.slice_ref(target.as_bytes()),
        minor_version,
        headers: collect_headers(head, request.headers),
    })
}

/// `Ok(None)` when the bytes are not a valid response head.
pub fn parse_response(head: &Bytes) -> Option<ResponseHead> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    Some(ResponseHead {
        code: response.code?,
        reason: head.slice_ref(response.reason?.as_bytes()),
        minor_version: response.version?,
        headers: collect_headers(head, response.headers),
    })
}

fn collect_headers(head: &Bytes, parsed: &[httparse::Header<'_>]) -> Vec<Header> {
    parsed
        .iter()
        .map(|h| Header {
            name: head.slice_ref(h.name.as_bytes()),
            value: head.slice_ref(h.value),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_with_crlf_or_bare_lf() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody", 0),
            Some(24)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nA: b\n\nbody", 0), Some(21));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn request_fields_point_into_the_head() {
        let head =
            Bytes::from_static(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n");
        let req = parse_request(&head).unwrap();
        assert_eq!(req.method_str(), "CONNECT");
        assert_eq!(req.target_str(), "example.com:443");
        assert_eq!(req.minor_version, 1);
        assert!(req.headers[0].is("host"));
    }

    #[test]
    fn a_request_line_without_version_is_bad() {
        let head = Bytes::from_static(b"GET /\r\n\r\n");
        assert_eq!(
            parse_request(&head).unwrap_err().reason,
            DenyReason::BadRequest
        );
    }
}
