//! The soak's origins: one small HTTP/1.1 server per target port, keep-alive, thread per
//! connection. Each answer names the method, path, port and (for a body) its length and hash,
//! so a client can tell a right answer from one served by the wrong origin or for the wrong
//! request. Each origin counts what reached it: the denied one must never see a connection.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::wire::Conn;

/// An origin that kept-alive connections may idle on (the proxy's pool) is given this long.
const IDLE: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
pub struct Counts {
    pub connections: AtomicU64,
    pub open: AtomicU64,
    pub requests: AtomicU64,
}

#[derive(Debug)]
pub struct Origin {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
}

impl Origin {
    pub fn start() -> io::Result<Origin> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counts = shared.clone();
                counts.connections.fetch_add(1, Ordering::Relaxed);
                counts.open.fetch_add(1, Ordering::Relaxed);
                thread::spawn(move || {
                    let _ = serve(stream, addr.port(), &counts);
                    counts.open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        Ok(Origin { addr, counts })
    }
}

/// The body the origin answers `method path` with; clients compute the same to check.
pub fn answer_body(method: &str, path: &str, port: u16, body: &[u8]) -> String {
    if body.is_empty() {
        format!("{method} {path} port {port}\n")
    } else {
        format!(
            "{method} {path} port {port} len {} fnv {:016x}\n",
            body.len(),
            fnv(body)
        )
    }
}

pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn serve(stream: TcpStream, port: u16, counts: &Counts) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    stream.set_write_timeout(Some(IDLE))?;
    stream.set_nodelay(true)?;
    let mut conn = Conn::new(stream);
    loop {
        let Some(head) = conn.read_head_or_eof()? else {
            return Ok(());
        };
        let mut parts = head.start_line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let body = conn.read_body(&head, false)?;
        counts.requests.fetch_add(1, Ordering::Relaxed);
        let answer = answer_body(&method, &path, port, &body);
        let close = head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{answer}",
            answer.len(),
            if close { "Connection: close\r\n" } else { "" },
        );
        conn.stream().write_all(response.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}
