//! The DNS stub the sandbox's `/etc/resolv.conf` points at (port 53 anywhere is redirected to it,
//! see `capture`). It runs in the outer half, on the UDP socket the inner half bound and passed
//! out, and answers from the policy alone: a name the policy allows (on any port) gets its
//! stand-in address (see `names`), every other name `NXDOMAIN`, counted in the exit summary
//! with the policy's reason. Nothing is forwarded to a real resolver: the sandbox learns no real
//! address, and a query cannot carry data out.
//!
//! Only what resolvers ask is understood: one question, standard query. `A` (and `ANY`) get the
//! stand-in, every other type of an allowed name an empty answer (so clients use IPv4).

use std::net::Ipv4Addr;
use std::sync::Arc;

use egress_config::{DenyReason, Host, Protocol, Request};
use egress_proxy::ProxyState;

use super::names::Names;
use crate::summary::Blocked;

const TTL: u32 = 300;
const TYPE_A: u16 = 1;
const TYPE_ANY: u16 = 255;
const NOERROR: u8 = 0;
const FORMERR: u8 = 1;
const SERVFAIL: u8 = 2;
const NXDOMAIN: u8 = 3;
const NOTIMP: u8 = 4;

/// Answers queries on `socket` until the runtime ends.
pub async fn serve(
    socket: std::net::UdpSocket,
    state: Arc<ProxyState>,
    names: Arc<Names>,
    blocked: Blocked,
) {
    if socket.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(socket) = tokio::net::UdpSocket::from_std(socket) else {
        return;
    };
    let mut buf = [0u8; 1500];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let answer = answer(&buf[..len], &|name: &str, counted: bool| {
            let verdict = decide(&state, name);
            if let (Err(reason), true) = (&verdict, counted) {
                blocked.dns_refused(name, reason.as_str());
            }
            match verdict {
                Ok(host) => names.address_for(&host).ok_or(SERVFAIL),
                Err(_) => Err(NXDOMAIN),
            }
        });
        if let Some(answer) = answer {
            // A full socket buffer drops this answer: the client asks again.
            let _ = socket.try_send_to(&answer, from);
        }
    }
}

/// Whether the policy lets `name` be reached at all: allowed on the usual port, or named by an
/// allow entry for other ports (`port-not-allowed`: the connection decides the port).
fn decide(state: &ProxyState, name: &str) -> Result<Host, DenyReason> {
    let host = Host::parse(name).map_err(|_| DenyReason::BadRequest)?;
    if matches!(host, Host::Ip(_)) {
        // A query for an address written as a name: not a name.
        return Err(DenyReason::BadRequest);
    }
    let snapshot = state.snapshot();
    let verdict = snapshot
        .policy_for(egress_config::ANONYMOUS)
        .decide(&Request {
            host: &host,
            port: Protocol::HttpConnect.default_port(),
            protocol: Protocol::HttpConnect,
        });
    match verdict.reason() {
        _ if verdict.permits() => Ok(host),
        Some(DenyReason::PortNotAllowed) => Ok(host),
        Some(reason) => Err(reason),
        None => Ok(host),
    }
}

/// The answer to `query`, or `None` for something that is no query at all. `lookup` gives the
/// stand-in for a name, or the response code; its flag says whether a refusal is to be counted
/// (once per lookup: for the `A` query, not again for the `AAAA` beside it).
fn answer(query: &[u8], lookup: &dyn Fn(&str, bool) -> Result<Ipv4Addr, u8>) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let opcode = (query[2] >> 3) & 0x0f;
    let questions = u16::from_be_bytes([query[4], query[5]]);
    if opcode != 0 {
        return Some(reply(query, 12, NOTIMP, None));
    }
    let Some((name, end)) = question(query).filter(|_| questions == 1) else {
        return Some(reply(query, 12, FORMERR, None));
    };
    let qtype = u16::from_be_bytes([query[end - 4], query[end - 3]]);
    let wants_address = qtype == TYPE_A || qtype == TYPE_ANY;
    Some(match lookup(&name, wants_address) {
        Ok(address) if wants_address => reply(query, end, NOERROR, Some(address)),
        Ok(_) => reply(query, end, NOERROR, None),
        Err(code) => reply(query, end, code, None),
    })
}

/// The question's name (lower case, dotted) and where the question ends.
fn question(query: &[u8]) -> Option<(String, usize)> {
    let mut at = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (0xc0) have no place in a question; longer labels do not exist.
        if len > 63 {
            return None;
        }
        let label = query.get(at..at + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
    }
    let name = labels.join(".");
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let end = at + 4;
    (end <= query.len()).then_some((name, end))
}

/// A response: the query's header and question (up to `end`), `code`, and `address` as the one
/// answer.
fn reply(query: &[u8], end: usize, code: u8, address: Option<Ipv4Addr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(end + 16);
    out.extend_from_slice(&query[..2]);
    // QR, the query's opcode and RD; RA; the code.
    out.push(0x80 | (query[2] & 0x79));
    out.push(0x80 | code);
    let questions: u16 = if end > 12 { 1 } else { 0 };
    out.extend_from_slice(&questions.to_be_bytes());
    out.extend_from_slice(&u16::from(address.is_some()).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..end]);
    if let Some(address) = address {
        // The name: a pointer to the question's.
        out.extend_from_slice(&[0xc0, 12]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&address.octets());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        // An EDNS OPT record, as glibc and Go send: ignored.
        q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        q
    }

    fn lookup(name: &str, _counted: bool) -> Result<Ipv4Addr, u8> {
        match name {
            "allowed.example" => Ok(Ipv4Addr::new(198, 18, 0, 1)),
            _ => Err(NXDOMAIN),
        }
    }

    #[test]
    fn an_allowed_name_gets_its_stand_in_and_others_nxdomain() {
        let a = answer(&query("Allowed.Example", TYPE_A), &lookup).unwrap();
        assert_eq!(&a[..2], &[0x12, 0x34], "the query's id");
        assert_eq!(a[2] & 0x80, 0x80, "a response");
        assert_eq!(a[3] & 0x0f, NOERROR);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
        assert_eq!(&a[a.len() - 4..], &[198, 18, 0, 1]);
        let aaaa = answer(&query("allowed.example", 28), &lookup).unwrap();
        assert_eq!((aaaa[3] & 0x0f, aaaa[7]), (NOERROR, 0), "no IPv6 stand-in");
        let denied = answer(&query("evil.example", TYPE_A), &lookup).unwrap();
        assert_eq!((denied[3] & 0x0f, denied[7]), (NXDOMAIN, 0));
    }

    #[test]
    fn what_is_not_a_plain_query_gets_no_name_looked_up() {
        let never = |_: &str, _: bool| -> Result<Ipv4Addr, u8> { panic!("looked up") };
        assert_eq!(answer(&[0; 5], &never), None, "too short");
        let mut response = query("allowed.example", TYPE_A);
        response[2] |= 0x80;
        assert_eq!(
            answer(&response, &never),
            None,
            "a response is not answered"
        );
        let mut two = query("allowed.example", TYPE_A);
        two[5] = 2;
        assert_eq!(answer(&two, &never).unwrap()[3] & 0x0f, FORMERR);
        let mut cut = query("allowed.example", TYPE_A);
        cut.truncate(20);
        assert_eq!(answer(&cut, &never).unwrap()[3] & 0x0f, FORMERR);
        let mut pointer = query("allowed.example", TYPE_A);
        pointer[12] = 0xc0;
        assert_eq!(answer(&pointer, &never).unwrap()[3] & 0x0f, FORMERR);
        let mut update = query("allowed.example", TYPE_A);
        update[2] = 5 << 3;
        assert_eq!(answer(&update, &never).unwrap()[3] & 0x0f, NOTIMP);
    }
}
