//! A tiny authoritative DNS server on loopback for the end-to-end tests.
//!
//! The proxy resolves every destination itself, so tests that exercise name-based policy, resolution
//! failures or DNS rebinding need names that resolve to addresses the test chooses, without touching
//! the internet or the machine's own resolver. This server answers A and AAAA queries from a fixed
//! table, over UDP and TCP on the same port (the resolver falls back to TCP on truncation), and
//! counts the queries it sees so tests can tell whether the proxy cached or asked again.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::{HashMap, HashSet};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use hickory_proto::op::{Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// How long a blocked read waits before looking at the stop flag again; short enough that a dropped
/// server's threads go away promptly, long enough not to spin.
const POLL: Duration = Duration::from_millis(100);

/// A running server; it stops accepting when dropped.
#[derive(Debug)]
pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    stop: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Zone {
    ttl: u32,
    records: HashMap<String, Vec<IpAddr>>,
    rebinds: HashMap<String, Rebind>,
    queries: HashMap<String, usize>,
}

#[derive(Debug)]
struct Rebind {
    first: Vec<IpAddr>,
    then: Vec<IpAddr>,
    /// Record types already answered with `first`. Kept per type because a resolver asks for A and
    /// AAAA separately (often in parallel), and both belong to the same first "round".
    answered: HashSet<RecordType>,
}

impl DnsServer {
    /// Serves `records` (name -> addresses; IPv4 go in A answers, IPv6 in AAAA answers) with the given TTL.
    pub fn start_with_ttl(records: &[(&str, &[IpAddr])], ttl: u32) -> DnsServer {
        let mut table: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, addrs) in records {
            let slot = table.entry(normalize(name)).or_default();
            slot.extend_from_slice(addrs);
        }
        let zone = Arc::new(Mutex::new(Zone {
            ttl,
            records: table,
            rebinds: HashMap::new(),
            queries: HashMap::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (udp, tcp) = bind_pair();
        let addr = udp.local_addr().expect("udp local addr");

        udp.set_read_timeout(Some(POLL)).expect("udp read timeout");
        {
            let (zone, stop) = (zone.clone(), stop.clone());
            thread::Builder::new()
                .name("test-dns-udp".into())
                .spawn(move || serve_udp(&udp, &zone, &stop))
                .expect("spawn udp thread");
        }
        {
            let (zone, stop) = (zone.clone(), stop.clone());
            thread::Builder::new()
                .name("test-dns-tcp".into())
                .spawn(move || accept_tcp(&tcp, &zone, &stop))
                .expect("spawn tcp thread");
        }
        DnsServer { addr, zone, stop }
    }

    /// Convenience: ttl 300.
    pub fn start(records: &[(&str, &[IpAddr])]) -> DnsServer {
        Self::start_with_ttl(records, 300)
    }

    /// Makes `name` answer `first` to the first query-round and `then` to every later one. A round is
    /// counted per (name, record type): the first A query gets first's IPv4 addresses, later A queries
    /// get then's; the same independently for AAAA.
    pub fn rebind(&self, name: &str, first: &[IpAddr], then: &[IpAddr]) {
        let rebind = Rebind {
            first: first.to_vec(),
            then: then.to_vec(),
            answered: HashSet::new(),
        };
        lock(&self.zone).rebinds.insert(normalize(name), rebind);
    }

    /// How many queries for `name` have arrived so far (all types, UDP and TCP together).
    /// A query is counted before it is answered, so once a lookup has returned its query shows here.
    pub fn queries(&self, name: &str) -> usize {
        let zone = lock(&self.zone);
        zone.queries.get(&normalize(name)).copied().unwrap_or(0)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The accept loop blocks without a timeout; one connection wakes it to see the flag. Failure
        // only means the thread lingers until the process ends.
        let _ = TcpStream::connect_timeout(&self.addr, POLL);
    }
}

/// Lowercase, without the trailing dot, so lookups ignore case and absolute/relative spelling.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A panic elsewhere while holding the lock must not take the server down with it.
fn lock(zone: &Mutex<Zone>) -> MutexGuard<'_, Zone> {
    zone.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// UDP and TCP on one port number, as a resolver expects of a nameserver. The port is chosen by UDP
/// and may already be taken for TCP by someone else, so try again with a fresh one.
fn bind_pair() -> (UdpSocket, TcpListener) {
    let mut last_error = None;
    for _ in 0..64 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind udp on loopback");
        let addr = udp.local_addr().expect("udp local addr");
        match TcpListener::bind(addr) {
            Ok(tcp) => return (udp, tcp),
            Err(e) => last_error = Some(e),
        }
    }
    panic!("no loopback port free for both UDP and TCP: {last_error:?}");
}

fn serve_udp(socket: &UdpSocket, zone: &Mutex<Zone>, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            // A timeout is only a chance to look at the stop flag; other errors (an ICMP port
            // unreachable for a reply to a client that has gone away) concern one client, not the server.
            Err(_) => continue,
        };
        let Ok(request) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let Some(mut response) = answer(&request, zone) else {
            continue;
        };
        let limit = usize::from(request.max_payload());
        let Ok(mut bytes) = response.to_vec() else {
            continue;
        };
        if bytes.len() > limit {
            // Too big for the client's buffer: tell it to ask again over TCP.
            response = response.truncate();
            let Ok(truncated) = response.to_vec() else {
                continue;
            };
            bytes = truncated;
        }
        let _ = socket.send_to(&bytes, peer);
    }
}

fn accept_tcp(listener: &TcpListener, zone: &Arc<Mutex<Zone>>, stop: &Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            continue;
        };
        let (zone, stop) = (zone.clone(), stop.clone());
        let _ = thread::Builder::new()
            .name("test-dns-conn".into())
            .spawn(move || serve_tcp(stream, &zone, &stop));
    }
}

/// Several length-prefixed queries may arrive on one connection; any error or malformed message
/// ends it.
fn serve_tcp(mut stream: TcpStream, zone: &Mutex<Zone>, stop: &AtomicBool) {
    if stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    loop {
        let mut prefix = [0u8; 2];
        match read_full(&mut stream, &mut prefix, stop) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        if !matches!(read_full(&mut stream, &mut request, stop), Ok(true)) {
            return;
        }
        let Ok(request) = Message::from_vec(&request) else {
            return;
        };
        let Some(bytes) = answer(&request, zone).and_then(|response| response.to_vec().ok()) else {
            return;
        };
        let Ok(len) = u16::try_from(bytes.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}

/// Fills `buf`, riding out read timeouts (which exist only so the stop flag is noticed) without
/// losing a partly read message. `Ok(false)` means the peer closed the connection.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// The response to one request, or `None` when it is not a query at all (a stray response), which
/// the caller drops.
fn answer(request: &Message, zone: &Mutex<Zone>) -> Option<Message> {
    if request.message_type() != MessageType::Query {
        return None;
    }

    let mut header = Header::response_from_request(request.header());
    header.set_authoritative(true).set_recursion_available(true);
    let mut response = Message::new();
    response.set_header(header);

    let [query] = request.queries() else {
        response.add_queries(request.queries().iter().cloned());
        response.set_response_code(ResponseCode::FormErr);
        return Some(response);
    };
    response.add_query(query.clone());
    if request.op_code() != OpCode::Query {
        response.set_response_code(ResponseCode::NotImp);
        return Some(response);
    }

    let name = query.name();
    let key = normalize(&name.to_ascii());
    let mut zone = lock(zone);
    *zone.queries.entry(key.clone()).or_default() += 1;
    let ttl = zone.ttl;
    let query_type = query.query_type();

    let addrs: Vec<IpAddr> = if let Some(rebind) = zone.rebinds.get_mut(&key) {
        // Other query types find no matching addresses in either list, so tracking them is harmless.
        if rebind.answered.insert(query_type) {
            rebind.first.clone()
        } else {
            rebind.then.clone()
        }
    } else if let Some(addrs) = zone.records.get(&key) {
        addrs.clone()
    } else {
        response.set_response_code(ResponseCode::NXDomain);
        response.add_name_server(negative_ttl(ttl));
        return Some(response);
    };
    drop(zone);

    // Answers carry the name exactly as asked, so a resolver checking the echoed case is satisfied.
    for addr in addrs {
        if let Some(answer) = record(name, ttl, query_type, addr) {
            response.add_answer(answer);
        }
    }
    if response.answers().is_empty() {
        response.add_name_server(negative_ttl(ttl));
    }
    Some(response)
}

/// An SOA in the authority section, as real authoritative servers send with NXDOMAIN and empty
/// answers: it is what lets a resolver cache the negative answer (RFC 2308), so the tests see
/// the proxy's cache and not an artefact of this server.
fn negative_ttl(ttl: u32) -> Record {
    let soa = SOA::new(Name::root(), Name::root(), 1, 3600, 600, 86400, ttl);
    Record::from_rdata(Name::root(), ttl, RData::SOA(soa))
}

fn record(name: &Name, ttl: u32, query_type: RecordType, addr: IpAddr) -> Option<Record> {
    let rdata = match (query_type, addr) {
        (RecordType::A, IpAddr::V4(v4)) => RData::A(A(v4)),
        (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(name.clone(), ttl, rdata))
}
