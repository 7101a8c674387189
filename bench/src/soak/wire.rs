//! Just enough HTTP/1.1 and SOCKS5 on a blocking socket, for both the clients and the origins:
//! a buffered connection that reads a head, then exactly its body, and leaves what follows for
//! the next message (keep-alive).

use std::io::{self, Read, Write};
use std::net::{SocketAddrV4, TcpStream};

/// Longest head either side accepts.
const MAX_HEAD: usize = 64 * 1024;
/// Longest body a client keeps (refusal bodies are short; origin answers shorter still).
const MAX_BODY: usize = 1 << 20;

#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the bytes in `buf` not yet consumed.
    pos: usize,
}

#[derive(Debug, Clone)]
pub struct Head {
    pub start_line: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The status code of a response head.
    pub fn status(&self) -> Option<u16> {
        let mut parts = self.start_line.split(' ');
        let version = parts.next()?;
        if !version.starts_with("HTTP/1.") {
            return None;
        }
        parts.next()?.parse().ok()
    }

    /// Whether the server promised to keep the connection open after this response.
    pub fn keeps_alive(&self) -> bool {
        let close = self
            .header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        self.start_line.starts_with("HTTP/1.1") && !close
    }
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
            pos: 0,
        }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Bytes received but not consumed: a server must not send any after its answer until asked.
    pub fn unread(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads more into the buffer; `Ok(0)` at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// One message head, or `None` when the peer closed before sending any byte of it.
    pub fn read_head_or_eof(&mut self) -> io::Result<Option<Head>> {
        loop {
            let pending = &self.buf[self.pos..];
            if let Some(end) = find(pending, b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&pending[..end]).into_owned();
                self.pos += end + 4;
                return parse_head(&text).map(Some);
            }
            if pending.len() > MAX_HEAD {
                return Err(invalid("head too long"));
            }
            let had = pending.len();
            if self.fill()? == 0 {
                return if had == 0 {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("closed after {had} bytes of a head"),
                    ))
                };
            }
        }
    }

    /// The body that follows `head`: by Content-Length, chunked, or (a response without
    /// either, `until_close`) up to EOF.
    pub fn read_body(&mut self, head: &Head, until_close: bool) -> io::Result<Vec<u8>> {
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            return self.read_chunked();
        }
        if let Some(len) = head.header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| invalid("bad content-length"))?;
            if len > MAX_BODY {
                return Err(invalid("body too long"));
            }
            return self.take(len);
        }
        if !until_close {
            return Ok(Vec::new());
        }
        while self.fill()? > 0 {
            if self.unread() > MAX_BODY {
                return Err(invalid("body too long"));
            }
        }
        let body = self.buf[self.pos..].to_vec();
        self.pos = self.buf.len();
        Ok(body)
    }

    fn take(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.unread() < len {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("closed after {} of {len} body bytes", self.unread()),
                ));
            }
        }
        let body = self.buf[self.pos..self.pos + len].to_vec();
        self.pos += len;
        Ok(body)
    }

    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf[self.pos..], b"\r\n") {
                let line =
                    String::from_utf8_lossy(&self.buf[self.pos..self.pos + end]).into_owned();
                self.pos += end + 2;
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed in a chunk line",
                ));
            }
        }
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size_line = self.line()?;
            let size = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("body too long"));
            }
            body.extend(self.take(size)?);
            if !self.line()?.is_empty() {
                return Err(invalid("chunk not followed by CRLF"));
            }
        }
    }

    /// Exactly `n` raw bytes (SOCKS5 replies).
    pub fn read_raw(&mut self, n: usize) -> io::Result<Vec<u8>> {
        self.take(n)
    }
}

/// SOCKS5 greeting (no authentication) and CONNECT to an IPv4 address; the reply code.
pub fn socks5_connect(conn: &mut Conn, target: SocketAddrV4) -> io::Result<u8> {
    conn.stream().write_all(&[5, 1, 0])?;
    let choice = conn.read_raw(2)?;
    if choice != [5, 0] {
        return Err(invalid(&format!("SOCKS5 method choice {choice:?}")));
    }
    let mut request = vec![5, 1, 0, 1];
    request.extend_from_slice(&target.ip().octets());
    request.extend_from_slice(&target.port().to_be_bytes());
    conn.stream().write_all(&request)?;
    let reply = conn.read_raw(4)?;
    if reply[0] != 5 || reply[2] != 0 {
        return Err(invalid(&format!("SOCKS5 reply {reply:?}")));
    }
    let rest = match reply[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => usize::from(conn.read_raw(1)?[0]) + 2,
        other => return Err(invalid(&format!("SOCKS5 reply address type {other}"))),
    };
    conn.read_raw(rest)?;
    Ok(reply[1])
}

fn parse_head(text: &str) -> io::Result<Head> {
    let mut lines = text.split("\r\n");
    let start_line = lines.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(&format!("header line without a colon: {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Head {
        start_line,
        headers,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}
