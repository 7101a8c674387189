//! The tunnel workloads: bulk transfers and new-tunnel rate, and the bounded driver every
//! rate workload shares.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use crate::contenders::Contender;
use crate::IO_TIMEOUT;

/// A connection to `target`, through the contender's CONNECT when it is a proxy.
pub fn open(contender: &Contender, target: SocketAddr) -> anyhow::Result<TcpStream> {
    let via = contender.addr();
    let mut stream = TcpStream::connect(via.unwrap_or(target))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    if via.is_some() {
        let login = contender
            .login()
            .map(|l| format!("Proxy-Authorization: {l}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{login}\r\n"
        )?;
        // Read the answer head byte by byte so no tunnel byte is consumed with it.
        let mut head = Vec::with_capacity(128);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream
                .read_exact(&mut byte)
                .context("reading the CONNECT answer")?;
            head.push(byte[0]);
            ensure!(head.len() < 8192, "CONNECT answer too long");
        }
        if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
            bail!(
                "{} refused CONNECT: {}",
                contender.name(),
                String::from_utf8_lossy(&head)
            );
        }
    }
    Ok(stream)
}

/// One tunnel carrying `bytes` from the source server; MiB/s from connect to the last byte.
pub fn bulk(contender: &Contender, source: SocketAddr, bytes: u64) -> anyhow::Result<f64> {
    bulk_parallel(contender, source, bytes, 1)
}

/// `tunnels` tunnels at once, each carrying `bytes` from the source server; aggregate MiB/s from
/// the first connect to the last byte of the last tunnel.
pub fn bulk_parallel(
    contender: &Contender,
    source: SocketAddr,
    bytes: u64,
    tunnels: usize,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let deadline = start + MEASURE_DEADLINE;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..tunnels)
            .map(|_| scope.spawn(|| receive_all(contender, source, bytes, deadline)))
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("bulk client panicked"))
    })?;
    let total = bytes * tunnels as u64;
    Ok(total as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64())
}

/// Reads one tunnel from the source to its end; all of `bytes` must arrive before `deadline`.
fn receive_all(
    contender: &Contender,
    source: SocketAddr,
    bytes: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut stream = open(contender, source)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
        ensure!(
            Instant::now() < deadline,
            "{}: bulk transfer past its deadline",
            contender.name()
        );
    }
    ensure!(
        got == bytes,
        "{}: received {got} of {bytes} bytes",
        contender.name()
    );
    Ok(())
}

/// Up to `count` tunnels from `clients` threads, each opened, used for a one-byte echo and
/// closed; tunnels per second.
pub fn tunnel_rate(
    contender: &Contender,
    echo: SocketAddr,
    count: usize,
    clients: usize,
) -> anyhow::Result<f64> {
    operations_per_second(
        clients,
        count,
        || Ok(()),
        |_| {
            let mut byte = [0u8; 1];
            let mut stream = open(contender, echo)?;
            stream.write_all(b"x")?;
            stream.read_exact(&mut byte)?;
            ensure!(byte == *b"x", "{}: echo changed the byte", contender.name());
            Ok(())
        },
    )
}

/// How long one measurement may take: a contender that slows to a crawl ends its run with what
/// it completed by then (counted as such), rather than holding up the benchmark.
pub const MEASURE_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `operation` up to `count` times in all, from `clients` threads (each with its own
/// `state`, built by `init`), until done or `MEASURE_DEADLINE`; completed operations per second.
/// Any failed operation fails the measurement: an error is not speed.
pub fn operations_per_second<S>(
    clients: usize,
    count: usize,
    init: impl Fn() -> anyhow::Result<S> + Sync,
    operation: impl Fn(&mut S) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<f64> {
    let claimed = AtomicUsize::new(0);
    let start = Instant::now();
    let deadline = start + MEASURE_DEADLINE;
    let done = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<usize> {
                    let mut state = init()?;
                    let mut done = 0;
                    while Instant::now() < deadline
                        && claimed.fetch_add(1, Ordering::Relaxed) < count
                    {
                        operation(&mut state)?;
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread panicked"))
            .sum::<anyhow::Result<usize>>()
    })?;
    Ok(done as f64 / start.elapsed().as_secs_f64())
}
