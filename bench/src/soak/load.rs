//! The client loops: CONNECT tunnels, plain-HTTP keep-alive sessions (GET and POST) and SOCKS5,
//! to the allowed, denied and flip targets. Every answer is checked against what any policy the
//! soak writes must give:
//! - allowed: served, by the right origin, with the right body;
//! - denied: `403` with `X-Egress-Error: blocked-by-denylist` (SOCKS5: reply `0x02`);
//! - flip: either served or `403 port-not-allowed` (SOCKS5: `0x02`), see `policy`;
//!
//! anything else (another status or reason, a connection closed or silent where an answer was
//! due, a kept-alive connection closed under the next request, stray bytes) is a wrong answer,
//! logged with its details.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::journal::Journal;
use crate::origin::answer_body;
use crate::policy::{Targets, FLIP_REFUSAL};
use crate::wire::{Conn, Head};

mod forward;
mod tunnel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Connect,
    Forward,
    Socks5,
}

impl Proto {
    pub const ALL: [Proto; 3] = [Proto::Connect, Proto::Forward, Proto::Socks5];

    /// The `protocol` label the proxy's metrics and audit log use.
    pub fn label(self) -> &'static str {
        match self {
            Proto::Connect => "http-connect",
            Proto::Forward => "http-forward",
            Proto::Socks5 => "socks5",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Allowed,
    Denied,
    Flip,
}

/// (protocol, decision, reason) as the proxy labels them.
pub type Key = (&'static str, &'static str, &'static str);

/// What one loop saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Answers the client recognised, as the proxy should have counted them.
    pub seen: BTreeMap<Key, u64>,
    /// Requests sent, per protocol (one per CONNECT, per SOCKS5 connect, per plain-HTTP request).
    pub requests: BTreeMap<&'static str, u64>,
    /// HTTP requests carried inside tunnels (CONNECT and SOCKS5).
    pub inner: u64,
    pub wrong: BTreeMap<String, u64>,
    pub wrong_by_proto: BTreeMap<&'static str, u64>,
    /// Our own side failing (no local port free), not the proxy's answer.
    pub local_errors: u64,
}

impl Tally {
    pub fn merge(&mut self, other: &Tally) {
        for (k, v) in &other.seen {
            *self.seen.entry(*k).or_default() += v;
        }
        for (k, v) in &other.requests {
            *self.requests.entry(k).or_default() += v;
        }
        for (k, v) in &other.wrong {
            *self.wrong.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.wrong_by_proto {
            *self.wrong_by_proto.entry(k).or_default() += v;
        }
        self.inner += other.inner;
        self.local_errors += other.local_errors;
    }

    pub fn wrong_total(&self) -> u64 {
        self.wrong.values().sum()
    }
}

/// Shared by all loops: live counters for progress lines, the stop flag, the wrong-answer log.
#[derive(Debug)]
pub struct Shared {
    pub proxy: SocketAddr,
    pub targets: Targets,
    pub deadline: Instant,
    pub stop: Arc<AtomicBool>,
    pub timeout: Duration,
    pub max_actions: u64,
    pub requests: AtomicU64,
    pub wrong: AtomicU64,
    /// Wrong answers per second of the run, to set against faults.log.
    pub wrong_at: Mutex<BTreeMap<u64, u64>>,
    pub journal: Arc<Journal>,
}

impl Shared {
    /// Past the deadline, or told to stop (the proxy is gone).
    fn over(&self) -> bool {
        Instant::now() >= self.deadline || self.stop.load(Ordering::Relaxed)
    }
}

struct Loop<'a> {
    id: usize,
    seq: u64,
    rng: u64,
    shared: &'a Shared,
    tally: Tally,
}

/// Runs one client loop until the deadline, the stop flag or `max_actions`.
pub fn run(id: usize, seed: u64, shared: &Shared) -> Tally {
    let mut l = Loop {
        id,
        seq: 0,
        rng: seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        shared,
        tally: Tally::default(),
    };
    let mut actions = 0;
    while actions < shared.max_actions && !shared.over() {
        actions += 1;
        // Weights: mostly allowed traffic, every protocol denied and flipping now and then.
        match l.below(18) {
            0..=3 => l.tunnel(Proto::Connect, Kind::Allowed),
            4..=7 => l.tunnel(Proto::Socks5, Kind::Allowed),
            8..=11 => l.forward_session(),
            12 => l.tunnel(Proto::Connect, Kind::Denied),
            13 => l.tunnel(Proto::Socks5, Kind::Denied),
            14 => l.tunnel(Proto::Connect, Kind::Flip),
            15 => l.tunnel(Proto::Socks5, Kind::Flip),
            16 => l.forward_one(Kind::Denied),
            _ => l.forward_one(Kind::Flip),
        }
    }
    l.tally
}

/// Why an exchange could not be checked.
enum Trouble {
    /// Our side (no free local port): not the proxy's fault.
    Local(io::Error),
    Io(&'static str, io::Error),
}

impl<'a> Loop<'a> {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*: reproducible per seed, no dependency.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn target(&self, kind: Kind) -> SocketAddrV4 {
        let t = &self.shared.targets;
        match kind {
            Kind::Allowed => t.allowed,
            Kind::Denied => t.denied,
            Kind::Flip => t.flip,
        }
    }

    fn count_request(&mut self, proto: Proto) {
        *self.tally.requests.entry(proto.label()).or_default() += 1;
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn seen(&mut self, proto: Proto, decision: &'static str, reason: &'static str) {
        *self
            .tally
            .seen
            .entry((proto.label(), decision, reason))
            .or_default() += 1;
    }

    fn wrong(&mut self, proto: Proto, kind: Kind, what: &str, detail: &str) {
        *self.tally.wrong.entry(what.to_string()).or_default() += 1;
        *self.tally.wrong_by_proto.entry(proto.label()).or_default() += 1;
        self.shared.wrong.fetch_add(1, Ordering::Relaxed);
        *self
            .shared
            .wrong_at
            .lock()
            .unwrap()
            .entry(self.shared.journal.now() as u64)
            .or_default() += 1;
        self.shared.journal.line(&format!(
            "WRONG loop={} proto={} target={kind:?} {what}: {detail}",
            self.id,
            proto.label()
        ));
    }

    fn trouble(&mut self, proto: Proto, kind: Kind, trouble: Trouble) {
        match trouble {
            Trouble::Local(e) => {
                self.tally.local_errors += 1;
                self.shared
                    .journal
                    .line(&format!("local error (not counted as wrong): {e}"));
                // No local port free: give TIME_WAIT a moment instead of spinning.
                std::thread::sleep(Duration::from_millis(20));
            }
            Trouble::Io(step, e) => {
                let what = match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "no answer in time",
                    io::ErrorKind::UnexpectedEof => "closed mid-answer",
                    io::ErrorKind::ConnectionReset => "connection reset",
                    io::ErrorKind::ConnectionRefused => "proxy refused the connection",
                    io::ErrorKind::InvalidData => "malformed answer",
                    _ => "i/o error",
                };
                self.wrong(proto, kind, what, &format!("{step}: {e}"));
            }
        }
    }

    fn dial(&self) -> Result<Conn, Trouble> {
        let stream = TcpStream::connect_timeout(&self.shared.proxy, self.shared.timeout).map_err(
            |e| match e.kind() {
                io::ErrorKind::AddrNotAvailable => Trouble::Local(e),
                _ => Trouble::Io("connecting to the proxy", e),
            },
        )?;
        let io = |e| Trouble::Io("socket options", e);
        stream
            .set_read_timeout(Some(self.shared.timeout))
            .map_err(io)?;
        stream
            .set_write_timeout(Some(self.shared.timeout))
            .map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        Ok(Conn::new(stream))
    }

    /// A request for the origin: (method, path, body).
    fn next_request(&mut self) -> (&'static str, String, Vec<u8>) {
        self.seq += 1;
        let path = format!("/soak/{}/{}", self.id, self.seq);
        if self.below(2) == 0 {
            ("GET", path, Vec::new())
        } else {
            let len = 1 + self.below(4096) as usize;
            let body = (0..len)
                .map(|i| b'a' + ((i as u64 + self.seq) % 26) as u8)
                .collect();
            ("POST", path, body)
        }
    }

    /// Checks a served answer: 200 from the right origin for this request. `false` when wrong.
    pub(super) fn check_served(
        &mut self,
        proto: Proto,
        kind: Kind,
        target: SocketAddrV4,
        (method, path, body): (&str, &str, &[u8]),
        head: &Head,
        got: &[u8],
    ) -> bool {
        let expected = answer_body(method, path, target.port(), body);
        if head.status() != Some(200) || got != expected.as_bytes() {
            self.wrong(
                proto,
                kind,
                "wrong answer to a served request",
                &format!(
                    "{method} {path}: {} | body {:?} | expected {:?}",
                    head.start_line,
                    String::from_utf8_lossy(&got[..got.len().min(200)]),
                    expected
                ),
            );
            return false;
        }
        true
    }

    /// A refusal (anything but 200) to a CONNECT or a plain-HTTP request, checked against `kind`.
    pub(super) fn check_refusal(&mut self, proto: Proto, kind: Kind, head: &Head, body: &[u8]) {
        let reason = head.header("x-egress-error").unwrap_or("");
        let expected = match kind {
            Kind::Allowed => None,
            Kind::Denied => Some("blocked-by-denylist"),
            Kind::Flip => Some(FLIP_REFUSAL),
        };
        match expected {
            Some(want) if head.status() == Some(403) && reason == want => {
                self.seen(proto, "deny", want);
            }
            _ => self.wrong(
                proto,
                kind,
                &format!("refused: {} {reason}", head.status().unwrap_or(0)),
                &format!(
                    "{} | {}",
                    head.start_line,
                    String::from_utf8_lossy(&body[..body.len().min(200)]).replace('\n', " ")
                ),
            ),
        }
    }
}

/// An HTTP/1.1 request; `target` is the origin-form path or the absolute URL.
fn http_request(method: &str, target: &str, host: &str, body: &[u8], close: bool) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
    if !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}
