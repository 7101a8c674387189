//! The flood's clients: each opens one connection, asks for a tunnel in HTTP (CONNECT) or SOCKS5,
//! and reports exactly what it got; the served ones are held open until the test lets go.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use crate::support::{self, WAIT};

const SOCKS_REFUSED: &[u8] = b"\x05\x00\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00";
pub const PROTOCOLS: [Speaks; 2] = [Speaks::Http, Speaks::Socks5];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    /// `CONNECT` to the origin, held open once established.
    Http,
    /// SOCKS5 CONNECT to the origin, held open once established.
    Socks5,
}

impl Speaks {
    pub fn label(self) -> &'static str {
        match self {
            Speaks::Http => "http-connect",
            Speaks::Socks5 => "socks5",
        }
    }
}

/// What one client got.
#[derive(Debug)]
pub enum Got {
    /// The tunnel is open; held until the test lets go.
    Served(TcpStream),
    /// Exactly the documented refusal, then the end of the stream.
    Refused,
    /// Closed (end of stream or reset) before a single byte.
    Closed,
    /// Anything else: a failure of the test.
    Wrong(String),
}

/// Opens a connection from `from` and asks for a tunnel to `origin` in `speaks`.
pub async fn attempt(proxy: SocketAddr, from: IpAddr, speaks: Speaks, origin: SocketAddr) -> Got {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = match tokio::time::timeout(WAIT, socket.connect(proxy)).await {
        Ok(Ok(stream)) => stream,
        other => return Got::Wrong(format!("connect: {other:?}")),
    };
    let request = match speaks {
        Speaks::Http => format!("CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n").into_bytes(),
        Speaks::Socks5 => {
            let IpAddr::V4(v4) = origin.ip() else {
                unreachable!()
            };
            let mut r = vec![5, 1, 0, 5, 1, 0, 1];
            r.extend_from_slice(&v4.octets());
            r.extend_from_slice(&origin.port().to_be_bytes());
            r
        }
    };
    if let Err(e) = stream.write_all(&request).await {
        return Got::Wrong(format!("send: {e}"));
    }
    match tokio::time::timeout(WAIT, answer(&mut stream, speaks)).await {
        Ok(Answer::Served) => Got::Served(stream),
        Ok(Answer::Refused) => Got::Refused,
        Ok(Answer::Closed) => Got::Closed,
        Ok(Answer::Wrong(what)) => Got::Wrong(what),
        Err(_) => Got::Wrong("no answer in time".into()),
    }
}

enum Answer {
    Served,
    Refused,
    Closed,
    Wrong(String),
}

/// Reads until the answer can be judged: the tunnel's opening, or a refusal up to the end.
async fn answer(stream: &mut TcpStream, speaks: Speaks) -> Answer {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let ended = loop {
        if let Some(verdict) = judge_open(&got, speaks) {
            return verdict;
        }
        match stream.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Some(e),
        }
    };
    if got.is_empty() {
        return Answer::Closed;
    }
    let refused = match speaks {
        Speaks::Socks5 => got == SOCKS_REFUSED,
        Speaks::Http => is_http_refusal(&got),
    };
    match (refused, ended) {
        (true, None) => Answer::Refused,
        (_, error) => Answer::Wrong(format!(
            "{:?} then {error:?}",
            String::from_utf8_lossy(&got)
        )),
    }
}

/// `Some(Served)` once the tunnel is open; `None` while the answer may still be a refusal.
fn judge_open(got: &[u8], speaks: Speaks) -> Option<Answer> {
    match speaks {
        Speaks::Http if got.starts_with(b"HTTP/1.1 200 ") && got.ends_with(b"\r\n\r\n") => {
            Some(Answer::Served)
        }
        Speaks::Socks5 if got.len() >= 12 && got.starts_with(b"\x05\x00\x05\x00") => {
            Some(Answer::Served)
        }
        _ => None,
    }
}

/// The whole documented refusal: 503, the reason header, and exactly `Content-Length` of body.
fn is_http_refusal(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    text.starts_with("HTTP/1.1 503 Service Unavailable by egress: too-many-connections\r\n")
        && support::header(&text, "x-egress-error") == Some("too-many-connections")
        && support::header(&text, "content-length") == Some(&body.len().to_string())
        && head.contains("\r\nConnection: close")
}

/// Every client's result, by protocol.
#[derive(Debug, Default)]
pub struct Tally {
    pub served: Vec<(Speaks, TcpStream)>,
    pub refused: [usize; 2],
    pub closed: [usize; 2],
    pub wrong: Vec<String>,
}

impl Tally {
    fn add(&mut self, speaks: Speaks, got: Got) {
        let i = speaks as usize;
        match got {
            Got::Served(stream) => self.served.push((speaks, stream)),
            Got::Refused => self.refused[i] += 1,
            Got::Closed => self.closed[i] += 1,
            Got::Wrong(what) => self.wrong.push(format!("{speaks:?}: {what}")),
        }
    }

    pub fn served(&self, speaks: Speaks) -> usize {
        self.served.iter().filter(|(s, _)| *s == speaks).count()
    }
}

/// `per_protocol` clients of each protocol from `from`, all at once.
pub async fn flood(
    proxy: SocketAddr,
    from: IpAddr,
    per_protocol: usize,
    origin: SocketAddr,
) -> Tally {
    let mut clients = JoinSet::new();
    for _ in 0..per_protocol {
        for speaks in PROTOCOLS {
            clients.spawn(async move { (speaks, attempt(proxy, from, speaks, origin).await) });
        }
    }
    let mut tally = Tally::default();
    while let Some(joined) = clients.join_next().await {
        let (speaks, got) = joined.unwrap();
        tally.add(speaks, got);
    }
    tally
}

/// Proves every held tunnel really reaches the origin, then closes them all.
pub async fn use_and_release(served: Vec<(Speaks, TcpStream)>, origin: SocketAddr) {
    let mut uses = JoinSet::new();
    for (_, mut stream) in served {
        uses.spawn(async move {
            let request =
                format!("GET /hello HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = Vec::new();
            let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut response));
            read.await.expect("origin answered in time").unwrap();
            String::from_utf8_lossy(&response).into_owned()
        });
    }
    while let Some(response) = uses.join_next().await {
        let response = response.unwrap();
        assert!(response.ends_with("hello from origin\n"), "{response}");
    }
}
