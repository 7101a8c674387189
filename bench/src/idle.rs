//! Memory per idle tunnel: hold N CONNECT tunnels open through a proxy, each having carried one
//! byte each way, and divide the growth of the proxy's resident set by N.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};

use crate::contenders::Contender;

/// Tunnels opened (and kept) before the baseline is read, so that the runtime's threads, their
/// allocator arenas and the first pages of each pool count as start-up, not as per-tunnel cost.
const WARM_UP: usize = 200;

/// An origin that sends one byte to each connection and keeps it open, unread, until
/// `release`. One thread, whatever the number of connections.
pub struct HoldOrigin {
    pub addr: SocketAddr,
    release: Arc<AtomicBool>,
}

impl HoldOrigin {
    pub fn start() -> std::io::Result<HoldOrigin> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let release = Arc::new(AtomicBool::new(false));
        let releasing = release.clone();
        thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                if releasing.swap(false, Ordering::SeqCst) {
                    held.clear(); // closes every held connection
                    continue; // the connection that woke us
                }
                let mut stream = stream;
                if stream.write_all(b"o").is_ok() {
                    held.push(stream);
                }
            }
        });
        Ok(HoldOrigin { addr, release })
    }

    /// Closes every connection held so far (the accept loop sees the flag at the next one).
    pub fn release(&self) {
        self.release.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Resident set size of a process, in KiB (from /proc).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

/// Reads RSS until two readings 200 ms apart agree (at most 5 s): the proxy may still be
/// finishing the last tunnels' set-up when the client has its answers.
fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = rss_kib(pid)?;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200)); // sampling interval, not a sync
        let now = rss_kib(pid)?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(last)
}

/// One tunnel through `contender` to `origin`, with one byte each way, left open.
fn open_idle(contender: &Contender, origin: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut stream = crate::workloads::open(contender, origin)?;
    stream.write_all(b"c")?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    ensure!(
        &byte == b"o",
        "{}: wrong byte through the tunnel",
        contender.name()
    );
    Ok(stream)
}

/// Bytes of proxy RSS per tunnel held, with `count` tunnels held after a warm-up.
pub fn per_tunnel(contender: &Contender, origin: SocketAddr, count: usize) -> anyhow::Result<f64> {
    let pid = contender
        .pid()
        .context("idle memory needs a proxy in its own process")?;
    let mut held = Vec::with_capacity(WARM_UP + count);
    for _ in 0..WARM_UP {
        held.push(open_idle(contender, origin)?);
    }
    let before = settled_rss(pid)?;
    for i in 0..count {
        held.push(
            open_idle(contender, origin)
                .with_context(|| format!("{}: tunnel {}", contender.name(), WARM_UP + i))?,
        );
    }
    let after = settled_rss(pid)?;
    eprintln!(
        "{:<16} RSS {} KiB with {} tunnels, {} KiB with {}",
        contender.name(),
        before,
        WARM_UP,
        after,
        WARM_UP + count
    );
    Ok((after.saturating_sub(before) * 1024) as f64 / count as f64)
}
