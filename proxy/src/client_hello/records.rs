//! The record layer as it streams in: the first byte says whether the stream is TLS, then the
//! ClientHello handshake message is collected from consecutive handshake records. Each byte is
//! taken once (a ClientHello in 1-byte records costs what it costs in one record, not the
//! square of its length), and both the message size and the number of records are bounded.

use super::message;
use super::{
    is_record_type, Hello, Sniffed, CONTENT_ALERT, CONTENT_APPLICATION_DATA,
    CONTENT_CHANGE_CIPHER_SPEC, CONTENT_HANDSHAKE, CONTENT_HEARTBEAT, MAX_HELLO, MAX_RECORDS,
    RECORD_HEADER,
};

/// TLS plaintext records carry at most 2^14 bytes (RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
/// A handshake message starts with its type and a 24-bit length.
const MESSAGE_HEADER: usize = 4;
/// SSLv2 record header (2 bytes, high bit set), then the message type: 1 is CLIENT-HELLO.
const SSLV2_HEADER_AND_TYPE: usize = 3;
const SSLV2_CLIENT_HELLO: u8 = 1;

/// Reads a client's first bytes as they arrive, until it can say what they are.
#[derive(Debug)]
pub struct HelloReader {
    phase: Phase,
    /// The record header being read (or the first bytes of an SSLv2 header).
    header: [u8; RECORD_HEADER],
    header_len: usize,
    /// Bytes of the current record's body still to come.
    body_left: usize,
    /// Record headers read so far.
    records: usize,
    /// The handshake message so far: at most its header and `MAX_HELLO` bytes of body.
    message: Vec<u8>,
    /// The message's whole size, known once its header is in.
    message_len: Option<usize>,
    /// Bytes of the stream taken so far (none past the end of the ClientHello).
    consumed: usize,
    /// Steps taken, in bytes looked at: what the reader's cost is measured by.
    work: usize,
}

#[derive(Debug)]
enum Phase {
    /// Nothing yet: the first byte decides what the stream is.
    Start,
    /// A first byte with the high bit set: an SSLv2-format ClientHello if its third byte says so.
    Sslv2,
    Header,
    Body,
    /// Decided; the same verdict is given for any further bytes, which are not looked at.
    Done(Sniffed),
}

impl Default for HelloReader {
    fn default() -> Self {
        Self::new()
    }
}

impl HelloReader {
    pub fn new() -> Self {
        Self {
            phase: Phase::Start,
            header: [0; RECORD_HEADER],
            header_len: 0,
            body_left: 0,
            records: 0,
            message: Vec::new(),
            message_len: None,
            consumed: 0,
            work: 0,
        }
    }

    /// Takes the stream's next bytes (only ones not fed before) and judges what has arrived so
    /// far. Once the answer is not `NeedMore` it no longer changes.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Sniffed {
        loop {
            if let Phase::Done(verdict) = &self.phase {
                return verdict.clone();
            }
            let Some(&byte) = bytes.first() else {
                return Sniffed::NeedMore {
                    needed: self.needed(),
                };
            };
            self.work += 1;
            // Each step takes at least one byte or ends in `Done`, so this loop ends.
            let taken = match self.phase {
                Phase::Start => self.start(byte),
                Phase::Sslv2 => self.sslv2(byte),
                Phase::Header => self.header_byte(byte),
                Phase::Body => self.body(bytes),
                Phase::Done(_) => 0,
            };
            self.consumed += taken;
            bytes = &bytes[taken..];
        }
    }

    /// Bytes of the stream taken so far; never more than `MAX_WIRE_BYTES`.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Bytes looked at so far, counting each copy and the final parse: linear in `consumed`.
    pub fn work(&self) -> usize {
        self.work
    }

    fn start(&mut self, byte: u8) -> usize {
        if is_record_type(byte) {
            self.phase = Phase::Header;
            return self.header_byte(byte);
        }
        if byte & 0x80 != 0 {
            self.header[0] = byte;
            self.header_len = 1;
            self.phase = Phase::Sslv2;
            return 1;
        }
        self.phase = Phase::Done(Sniffed::NotTls);
        0
    }

    fn sslv2(&mut self, byte: u8) -> usize {
        self.header[self.header_len] = byte;
        self.header_len += 1;
        if self.header_len == SSLV2_HEADER_AND_TYPE {
            self.phase = Phase::Done(if is_sslv2_hello(self.header[0], byte) {
                // SSLv2 framing has no room for extensions: no server name.
                Sniffed::Hello(Hello { server_name: None })
            } else {
                Sniffed::NotTls
            });
        }
        1
    }

    /// One byte of a record header, checked as soon as it arrives so that garbage is refused at
    /// once rather than after a length it claims.
    fn header_byte(&mut self, byte: u8) -> usize {
        let refusal = match self.header_len {
            0 if byte != CONTENT_HANDSHAKE => Some(self.not_handshake(byte)),
            1 if byte != 3 => Some("unknown TLS record version"),
            // 3.0 (some clients' first record) up to 3.4; TLS 1.3 still says 3.1 or 3.3 here.
            2 if byte > 4 => Some("unknown TLS record version"),
            _ => None,
        };
        if let Some(why) = refusal {
            self.phase = Phase::Done(Sniffed::Malformed(why));
            return 1;
        }
        self.header[self.header_len] = byte;
        self.header_len += 1;
        if self.header_len < RECORD_HEADER {
            return 1;
        }
        self.header_len = 0;
        self.records += 1;
        let length = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
        let refusal = if length == 0 {
            Some("empty TLS record")
        } else if length > MAX_RECORD {
            Some("TLS record longer than 2^14 bytes")
        } else if self.records > MAX_RECORDS {
            Some("ClientHello spread over more than 4096 TLS records")
        } else {
            None
        };
        self.phase = match refusal {
            Some(why) => Phase::Done(Sniffed::Malformed(why)),
            None => {
                self.body_left = length;
                Phase::Body
            }
        };
        1
    }

    /// The record before the ClientHello has begun, or one in its middle, is not a handshake.
    fn not_handshake(&self, content: u8) -> &'static str {
        if self.records > 0 {
            return "a ClientHello continues in a record that is not a handshake";
        }
        match content {
            CONTENT_CHANGE_CIPHER_SPEC => "a change_cipher_spec record before the ClientHello",
            CONTENT_ALERT => "an alert record before the ClientHello",
            CONTENT_APPLICATION_DATA => "an application_data record before the ClientHello",
            CONTENT_HEARTBEAT => "a heartbeat record before the ClientHello",
            _ => "a TLS record that is not a handshake before the ClientHello",
        }
    }

    /// Takes as much of `bytes` as belongs to this record and to the message, never past the
    /// end of the ClientHello: what follows it is the destination's business.
    fn body(&mut self, bytes: &[u8]) -> usize {
        let want = match self.message_len {
            None => MESSAGE_HEADER - self.message.len(),
            Some(total) => total - self.message.len(),
        };
        let n = bytes.len().min(self.body_left).min(want);
        self.message.extend_from_slice(&bytes[..n]);
        self.work += n;
        self.body_left -= n;
        if self.message_len.is_none() && self.message.len() == MESSAGE_HEADER {
            if let Err(why) = self.check_message_header() {
                self.phase = Phase::Done(Sniffed::Malformed(why));
                return n;
            }
        }
        if self.message_len == Some(self.message.len()) {
            self.work += self.message.len();
            let verdict = match message::parse_client_hello(&self.message[MESSAGE_HEADER..]) {
                Ok(hello) => Sniffed::Hello(hello),
                Err(why) => Sniffed::Malformed(why),
            };
            self.message = Vec::new();
            self.phase = Phase::Done(verdict);
        } else if self.body_left == 0 {
            self.phase = Phase::Header;
        }
        n
    }

    /// The handshake message header: a ClientHello whose size is refused above `MAX_HELLO`
    /// before any of its body is taken.
    fn check_message_header(&mut self) -> Result<(), &'static str> {
        if self.message[0] != HANDSHAKE_CLIENT_HELLO {
            return Err("the first handshake message is not a ClientHello");
        }
        let body_len = usize::from(self.message[1]) << 16
            | usize::from(self.message[2]) << 8
            | usize::from(self.message[3]);
        if body_len > MAX_HELLO {
            return Err("ClientHello larger than 32 KiB");
        }
        self.message_len = Some(MESSAGE_HEADER + body_len);
        Ok(())
    }

    /// At least this many more bytes before anything changes (a hint for the read buffer).
    fn needed(&self) -> usize {
        match self.phase {
            Phase::Start => RECORD_HEADER,
            Phase::Sslv2 => SSLV2_HEADER_AND_TYPE - self.header_len,
            Phase::Header => RECORD_HEADER - self.header_len,
            Phase::Body => self.body_left.min(match self.message_len {
                None => MESSAGE_HEADER - self.message.len(),
                Some(total) => total - self.message.len(),
            }),
            Phase::Done(_) => 1,
        }
    }
}

/// The first byte of an SSLv2 record header has its high bit set, and the third is the message
/// type: what OpenSSL, which still answers such hellos, looks at.
pub(super) fn is_sslv2_hello(first: u8, kind: u8) -> bool {
    first & 0x80 != 0 && kind == SSLV2_CLIENT_HELLO
}
