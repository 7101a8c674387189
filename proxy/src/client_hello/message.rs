//! The ClientHello body, once reassembled: its fields checked, its server name extracted.

use super::Hello;

pub(super) const EXTENSION_SERVER_NAME: u16 = 0;
pub(super) const NAME_TYPE_HOST_NAME: u8 = 0;
/// RFC 6066: HostName is at most 255 bytes (a DNS name).
const MAX_HOST_NAME: usize = 255;

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

pub(super) fn parse_client_hello(body: &[u8]) -> Result<Hello, &'static str> {
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
