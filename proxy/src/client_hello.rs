//! A strict, bounded, incremental reader of the TLS ClientHello a client sends first into a
//! tunnel: just enough of RFC 8446 §4.1.2, §5.1 and RFC 6066 §3 to find the server name (SNI).
//!
//! Hand-written rather than taken from rustls or tls-parser: this runs on bytes from an untrusted
//! client before anything is dialed, so it must never allocate past a fixed bound, never panic,
//! reassemble a ClientHello split across records and TCP segments (large post-quantum key shares
//! do that) while looking at each byte once, and refuse every ambiguity a lenient parser would
//! accept (two SNI entries, two extensions of one type, trailing garbage) — an ambiguity is where
//! the proxy and the destination could read different names.
//!
//! What counts as TLS is decided by the first byte, and errs towards TLS: a stream that any TLS
//! server could take for the start of a handshake must not pass as "not TLS", or the name check
//! is skipped. Servers differ in what they skip before a ClientHello: Go drops warning alerts
//! (of any record version below 0x1000), rustls drops warning alerts, OpenSSL drops empty
//! handshake records. So every record type of TLS 1.x (change_cipher_spec, alert, handshake,
//! application_data, heartbeat: 20–24) starts TLS, and nothing may come before the ClientHello:
//! no client sends a record before it (TLS 1.3's compatibility change_cipher_spec and 0-RTT data
//! come after it). An SSLv2-format ClientHello (OpenSSL still answers one) cannot carry
//! extensions, so it is a hello without a server name.

mod message;
mod records;

pub use records::HelloReader;

/// The largest ClientHello accepted (handshake body). Real ones, post-quantum hybrid key shares
/// and all, stay under 4 KiB; this leaves room for padding and many extensions.
pub const MAX_HELLO: usize = 32 * 1024;

/// The most records a ClientHello may be spread over. Clients use one or two; tools that split
/// hellos to evade middleboxes use a few. 4096 still admits a 4 KiB hello sent in 1-byte records.
pub const MAX_RECORDS: usize = 4096;

const RECORD_HEADER: usize = 5;

/// The most bytes the reader takes from a client before its verdict: the handshake message, a
/// record header for each of at most `MAX_RECORDS` records and the header of the one refused
/// past them (about 53 KB, against 196 KB with 1-byte records and no cap on their number).
pub const MAX_WIRE_BYTES: usize = 4 + MAX_HELLO + (MAX_RECORDS + 1) * RECORD_HEADER;

/// The record content types of TLS 1.x (RFC 8446 §5.1, RFC 6520 for heartbeat).
const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_APPLICATION_DATA: u8 = 23;
const CONTENT_HEARTBEAT: u8 = 24;

/// What the client's first bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Judges `buf`, a client's first bytes so far, all at once. Never reads past the first
/// ClientHello. A caller that reads a stream in pieces feeds a [`HelloReader`] instead, so each
/// byte is looked at once.
pub fn sniff(buf: &[u8]) -> Sniffed {
    HelloReader::new().feed(buf)
}

/// Whether a stream starting with `first` was judged TLS: a record of one of the five types, or
/// an SSLv2-format ClientHello. Picks who gets a TLS alert when refused.
pub fn starts_tls(first: &[u8]) -> bool {
    match first {
        [b, ..] if is_record_type(*b) => true,
        [b, _, kind, ..] => records::is_sslv2_hello(*b, *kind),
        _ => false,
    }
}

fn is_record_type(byte: u8) -> bool {
    (CONTENT_CHANGE_CIPHER_SPEC..=CONTENT_HEARTBEAT).contains(&byte)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod stream_tests;
