//! What a forwarded message loses and gains on its way through: hop-by-hop headers are removed
//! (RFC 9110 §7.6.1), `Via` is added, and the head is written out again.

use std::io::Write as _;

use super::head::{values, Header};

/// Headers that describe one hop and must not be passed on. `host` is rewritten from the target;
/// `proxy-authorization` carries credentials meant for this proxy, never for the destination.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
];

pub const VIA: &str = "1.1 egress";

/// Headers that a `Connection` (or `Proxy-Connection`) option may not name. Listing a header in
/// `Connection` makes every hop remove it; for these the removal would change how the next hop
/// frames or routes the message while this proxy framed or routed it with the header in place —
/// the next hop would then read part of a body as another message (request smuggling, response
/// splitting), or lose the credentials or target this proxy chose. Refused, never guessed:
/// `Upgrade` too, since no protocol switch is relayed on plain-HTTP forwarding (use CONNECT);
/// `TE` too, although RFC 9110 has a sender of `TE: trailers` list it, because forwarding without
/// `TE` is no safer than refusing and no client seen here sends it to a proxy.
const FORBIDDEN_CONNECTION_OPTIONS: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "host",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "expect",
];

/// The first header name a `Connection` or `Proxy-Connection` option names that would make this
/// proxy and the next hop disagree about a message (see `FORBIDDEN_CONNECTION_OPTIONS`).
pub fn forbidden_connection_option(headers: &[Header]) -> Option<String> {
    connection_tokens(headers)
        .into_iter()
        .find(|t| FORBIDDEN_CONNECTION_OPTIONS.contains(&t.as_str()))
}

/// The header names listed in `Connection` (and the legacy `Proxy-Connection`), lowercased.
fn connection_tokens(headers: &[Header]) -> Vec<String> {
    values(headers, "connection")
        .chain(values(headers, "proxy-connection"))
        .filter_map(Header::value_str)
        .flat_map(|v| v.split(','))
        .map(|t| t.trim_matches([' ', '\t']).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether the client asked to close after this exchange. HTTP/1.0 closes unless it asks for
/// keep-alive.
pub fn wants_close(minor_version: u8, headers: &[Header]) -> bool {
    let tokens = connection_tokens(headers);
    if tokens.iter().any(|t| t == "close") {
        return true;
    }
    minor_version == 0 && !tokens.iter().any(|t| t == "keep-alive")
}

/// Writes `headers` minus the hop-by-hop ones and minus those named in `also_drop`.
fn write_end_to_end(out: &mut Vec<u8>, headers: &[Header], also_drop: &[&str]) {
    let listed = connection_tokens(headers);
    for header in headers {
        let name = &header.name;
        let hop = HOP_BY_HOP
            .iter()
            .chain(also_drop)
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
            || listed
                .iter()
                .any(|t| name.eq_ignore_ascii_case(t.as_bytes()));
        if !hop {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&header.value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The request head for the destination: origin-form target, `Host` from the URL authority.
pub fn request_head(method: &[u8], path: &str, authority: &str, headers: &[Header]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method);
    let _ = write!(out, " {path} HTTP/1.1\r\nHost: {authority}\r\n");
    write_end_to_end(&mut out, headers, &[]);
    let _ = write!(out, "Via: {VIA}\r\n\r\n");
    out
}

/// The request head for an HTTP parent proxy: absolute-form target, the parent's own
/// credentials (`authorization`, a whole header line) in place of the client's.
pub fn parent_request_head(
    method: &[u8],
    path: &str,
    authority: &str,
    headers: &[Header],
    authorization: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method);
    let slash = if path.starts_with('/') { "" } else { "/" };
    let _ = write!(
        out,
        " http://{authority}{slash}{path} HTTP/1.1\r\nHost: {authority}\r\n{}",
        authorization.unwrap_or("")
    );
    write_end_to_end(&mut out, headers, &[]);
    let _ = write!(out, "Via: {VIA}\r\n\r\n");
    out
}

/// How a response reaches the client; decided together with the response's framing, so that
/// what the client is told matches how the body is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The connection closes after this response: `Connection: close`.
    pub close: bool,
    /// The body is sent without its chunked coding (to an HTTP/1.0 client), so the
    /// `Transfer-Encoding` header is left out and the body ends at close.
    pub dechunk: bool,
    /// An HTTP/1.0 client is told that the connection stays open: `Connection: keep-alive`
    /// (without it, a 1.0 client takes the connection to close after the response).
    pub announce_keep_alive: bool,
}

/// The response head for the client. With `Transfer-Encoding` present a `Content-Length` is
/// left out (RFC 9112 §6.3: the coding frames the message, and a client that read the length
/// instead would take the rest of the body as the next response).
pub fn response_head(code: u16, reason: &[u8], headers: &[Header], delivery: Delivery) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let _ = write!(out, "HTTP/1.1 {code} ");
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    let coded = values(headers, "transfer-encoding").next().is_some();
    let drop: &[&str] = match (coded, delivery.dechunk) {
        (true, true) => &["content-length", "transfer-encoding"],
        (true, false) => &["content-length"],
        (false, _) => &[],
    };
    write_end_to_end(&mut out, headers, drop);
    let _ = write!(out, "Via: {VIA}\r\n");
    if delivery.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if delivery.announce_keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn h(n: &'static str, v: &'static str) -> Header {
        Header {
            name: Bytes::from_static(n.as_bytes()),
            value: Bytes::from_static(v.as_bytes()),
        }
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_and_via_added() {
        let headers = [
            h("Host", "wrong"),
            h("Connection", "keep-alive, X-Secret-Hop"),
            h("X-Secret-Hop", "1"),
            h("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            h("Accept", "*/*"),
            h("Transfer-Encoding", "chunked"),
        ];
        let head =
            String::from_utf8(request_head(b"POST", "/p?q", "example.com:8080", &headers)).unwrap();
        assert_eq!(
            head,
            "POST /p?q HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\
             Transfer-Encoding: chunked\r\nVia: 1.1 egress\r\n\r\n"
        );
    }

    #[test]
    fn close_follows_version_and_connection_header() {
        assert!(!wants_close(1, &[]));
        assert!(wants_close(1, &[h("Connection", "Close")]));
        assert!(wants_close(0, &[]));
        assert!(!wants_close(0, &[h("Proxy-Connection", "keep-alive")]));
    }
}
