//! A strict, bounded reader of the TLS ClientHello a client sends first into a tunnel: just
//! enough of RFC 8446 §4.1.2 and RFC 6066 §3 to find the server name (SNI).
//!
//! Hand-written rather than taken from rustls or tls-parser: this runs on bytes from an untrusted
//! client before anything is dialed, so it must never allocate past a fixed bound, never panic,
//! reassemble a ClientHello split across records and TCP segments (large post-quantum key shares
//! do that), and refuse every ambiguity a lenient parser would accept (two SNI entries, two
//! extensions of one type, trailing garbage) — an ambiguity is where the proxy and the
//! destination could read different names.

/// The largest ClientHello accepted (handshake body). Real ones, post-quantum hybrid key shares
/// and all, stay under 4 KiB; this leaves room for padding and many extensions.
pub const MAX_HELLO: usize = 32 * 1024;

/// TLS plaintext records carry at most 2^14 bytes (RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;

const RECORD_HEADER: usize = 5;
const CONTENT_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const EXTENSION_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST_NAME: u8 = 0;
/// RFC 6066: HostName is at most 255 bytes (a DNS name).
const MAX_HOST_NAME: usize = 255;

/// What the buffered first bytes are.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// A ClientHello has started but is not complete: at least `needed` more bytes.
    NeedMore {
        needed: usize,
    },
    /// Not TLS at all (e.g. a plain-text protocol).
    NotTls,
    Hello(Hello),
    /// TLS, but not a ClientHello this proxy will pass on; the reason is for logs.
    Malformed(&'static str),
}

/// The part of a ClientHello the proxy judges.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Hello {
    /// The `host_name` entry of the server_name extension, as sent (ASCII, not yet normalised).
    pub server_name: Option<String>,
}

/// Judges `buf`, the client's first bytes so far. Never reads past the first ClientHello.
pub fn sniff(buf: &[u8]) -> Sniffed {
    let Some(&first) = buf.first() else {
        return Sniffed::NeedMore {
            needed: RECORD_HEADER,
        };
    };
    if first != CONTENT_HANDSHAKE {
        return Sniffed::NotTls;
    }
    match reassemble(buf) {
        Ok(body) => match parse_client_hello(&body) {
            Ok(hello) => Sniffed::Hello(hello),
            Err(why) => Sniffed::Malformed(why),
        },
        Err(Assembly::NeedMore(needed)) => Sniffed::NeedMore { needed },
        Err(Assembly::Malformed(why)) => Sniffed::Malformed(why),
    }
}

enum Assembly {
    /// At least this many more bytes (a hint for the read buffer, never 0).
    NeedMore(usize),
    Malformed(&'static str),
}

/// Collects the first handshake message from consecutive handshake records and returns its body
/// once complete. The message grows by at most one record past the ClientHello's declared size,
/// and that size is refused above `MAX_HELLO` as soon as its header is in.
fn reassemble(buf: &[u8]) -> Result<Vec<u8>, Assembly> {
    let mut message: Vec<u8> = Vec::new();
    let mut rest = buf;
    loop {
        // Checked before waiting for a whole header, so garbage is refused at once.
        check_record_prefix(rest)?;
        if rest.len() < RECORD_HEADER {
            return Err(Assembly::NeedMore(RECORD_HEADER - rest.len()));
        }
        let length = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if length == 0 {
            return Err(Assembly::Malformed("empty TLS record"));
        }
        if length > MAX_RECORD {
            return Err(Assembly::Malformed("TLS record longer than 2^14 bytes"));
        }
        let available = (rest.len() - RECORD_HEADER).min(length);
        message.extend_from_slice(&rest[RECORD_HEADER..RECORD_HEADER + available]);
        if message.len() >= 4 {
            if message[0] != HANDSHAKE_CLIENT_HELLO {
                return Err(Assembly::Malformed(
                    "the first handshake message is not a ClientHello",
                ));
            }
            let body_len = usize::from(message[1]) << 16
                | usize::from(message[2]) << 8
                | usize::from(message[3]);
            if body_len > MAX_HELLO {
                return Err(Assembly::Malformed("ClientHello larger than 32 KiB"));
            }
            if message.len() >= 4 + body_len {
                message.truncate(4 + body_len);
                return Ok(message.split_off(4));
            }
        }
        if available < length {
            return Err(Assembly::NeedMore(length - available));
        }
        rest = &rest[RECORD_HEADER + length..];
        if rest.is_empty() {
            // This record is complete but the message goes on in the next one.
            return Err(Assembly::NeedMore(RECORD_HEADER + 1));
        }
    }
}

/// The bytes of a record header seen so far must be a handshake record of TLS 1.x.
fn check_record_prefix(header: &[u8]) -> Result<(), Assembly> {
    if let Some(&content) = header.first() {
        if content != CONTENT_HANDSHAKE {
            return Err(Assembly::Malformed(
                "a ClientHello continues in a record that is not a handshake",
            ));
        }
    }
    if let Some(&major) = header.get(1) {
        if major != 3 {
            return Err(Assembly::Malformed("unknown TLS record version"));
        }
    }
    if let Some(&minor) = header.get(2) {
        // 3.0 (some clients' first record) up to 3.4; TLS 1.3 still says 3.1 or 3.3 here.
        if minor > 4 {
            return Err(Assembly::Malformed("unknown TLS record version"));
        }
    }
    Ok(())
}

/// Bounds-checked reading over a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], &'static str> {
        if self.bytes.len() < n {
            return Err(what);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, &'static str> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, &'static str> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one- or two-byte length prefix.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], &'static str> {
        let n = self.u8(what)?;
        self.take(usize::from(n), what)
    }

    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], &'static str> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

fn parse_client_hello(body: &[u8]) -> Result<Hello, &'static str> {
    let mut r = Reader { bytes: body };
    let version = r.u16("ClientHello truncated in its version")?;
    if version >> 8 != 3 {
        return Err("ClientHello with an unknown legacy version");
    }
    r.take(32, "ClientHello truncated in its random")?;
    let session_id = r.vec8("ClientHello truncated in its session id")?;
    if session_id.len() > 32 {
        return Err("ClientHello session id longer than 32 bytes");
    }
    let suites = r.vec16("ClientHello truncated in its cipher suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err("ClientHello cipher suite list is empty or odd-sized");
    }
    let compression = r.vec8("ClientHello truncated in its compression methods")?;
    if compression.is_empty() {
        return Err("ClientHello without compression methods");
    }
    if r.is_empty() {
        // Extensions are optional before TLS 1.3: a hello without them has no SNI.
        return Ok(Hello { server_name: None });
    }
    let extensions = r.vec16("ClientHello truncated in its extensions")?;
    if !r.is_empty() {
        return Err("bytes after the ClientHello extensions");
    }
    parse_extensions(extensions)
}

fn parse_extensions(extensions: &[u8]) -> Result<Hello, &'static str> {
    let mut r = Reader { bytes: extensions };
    // Extension types seen, to refuse duplicates (RFC 8446 §4.2) without allocating: at most
    // a few dozen extensions fit in a hello, so a linear scan of this small stack list is cheap.
    let mut seen: [u16; 64] = [0; 64];
    let mut count = 0;
    let mut server_name = None;
    while !r.is_empty() {
        let kind = r.u16("extension truncated in its type")?;
        let data = r.vec16("extension truncated in its data")?;
        if seen[..count].contains(&kind) {
            return Err("the same extension twice in a ClientHello");
        }
        if count == seen.len() {
            return Err("more than 64 extensions in a ClientHello");
        }
        seen[count] = kind;
        count += 1;
        if kind == EXTENSION_SERVER_NAME {
            server_name = Some(parse_server_name(data)?);
        }
    }
    Ok(Hello { server_name })
}

fn parse_server_name(data: &[u8]) -> Result<String, &'static str> {
    let mut outer = Reader { bytes: data };
    let list = outer.vec16("server_name extension truncated")?;
    if !outer.is_empty() {
        return Err("bytes after the server_name list");
    }
    let mut r = Reader { bytes: list };
    let name_type = r.u8("server_name list is empty")?;
    if name_type != NAME_TYPE_HOST_NAME {
        return Err("server_name entry that is not a host name");
    }
    let name = r.vec16("server_name entry truncated")?;
    if !r.is_empty() {
        // RFC 6066 allows one name per type and defines only one type: two names is ambiguity.
        return Err("more than one server name");
    }
    if name.is_empty() {
        return Err("empty server name");
    }
    if name.len() > MAX_HOST_NAME {
        return Err("server name longer than 255 bytes");
    }
    if !name.iter().all(|b| b.is_ascii_graphic()) {
        return Err("server name with a byte that is not printable ASCII");
    }
    // Checked ASCII just above, so this cannot fail; the error path keeps it panic-free anyway.
    String::from_utf8(name.to_vec()).map_err(|_| "server name is not ASCII")
}

#[cfg(test)]
mod tests;
