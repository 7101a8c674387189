//! The two measured workloads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

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
    let start = Instant::now();
    let mut stream = open(contender, source)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    ensure!(
        got == bytes,
        "{}: received {got} of {bytes} bytes",
        contender.name()
    );
    Ok(bytes as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64())
}

/// `count` tunnels, each opened, used for a one-byte echo and closed; tunnels per second.
pub fn tunnel_rate(
    contender: &Contender,
    echo: SocketAddr,
    count: usize,
    workers: usize,
) -> anyhow::Result<f64> {
    let per_worker = count.div_ceil(workers);
    let start = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut byte = [0u8; 1];
                    for _ in 0..per_worker {
                        let mut stream = open(contender, echo)?;
                        stream.write_all(b"x")?;
                        stream.read_exact(&mut byte)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("worker panicked"))
    })?;
    Ok((per_worker * workers) as f64 / start.elapsed().as_secs_f64())
}
