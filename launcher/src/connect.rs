//! `egress-run connect HOST PORT`: the `ProxyCommand` for ssh (and so git over ssh) inside the
//! sandbox — a CONNECT tunnel through the proxy on stdin/stdout, instead of nc or socat.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use anyhow::{bail, Context};
use base64::Engine as _;

/// Where this helper finds the credential (`USER:TOKEN`) of a proxy that needs one (macOS, see
/// `gate`): an environment variable, never its command line, which other processes can read.
pub const CREDENTIAL_ENV: &str = "EGRESS_RUN_PROXY_CREDENTIAL";

/// `Basic …` for `USER:TOKEN`, as `Proxy-Authorization` carries it.
pub fn basic(user_token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_token)
    )
}

pub fn run(host: &str, port: u16, proxy_port: u16) -> anyhow::Result<ExitCode> {
    let mut proxy =
        TcpStream::connect(("127.0.0.1", proxy_port)).context("cannot reach the proxy")?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    // Where the proxy has a port any local process can reach (macOS), the run's credential.
    let credential = std::env::var(CREDENTIAL_ENV)
        .map(|c| format!("Proxy-Authorization: {}\r\n", basic(&c)))
        .unwrap_or_default();
    write!(
        proxy,
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{credential}\r\n"
    )?;
    let mut reader = BufReader::new(proxy.try_clone()?);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        headers.push(line);
    }
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        let reason = headers
            .iter()
            .find_map(|h| h.strip_prefix("X-Egress-Error:").map(str::trim))
            .unwrap_or("unknown");
        // egress names the reason in its status line already; say it once.
        let status = status.trim();
        if status.ends_with(&format!(": {reason}")) {
            bail!("the proxy refused {authority}: {status}");
        }
        bail!("the proxy refused {authority}: {status} ({reason})");
    }
    // Whatever the reader buffered past the head belongs to the tunnel.
    let early = reader.buffer().to_vec();
    std::io::stdout().write_all(&early)?;
    std::io::stdout().flush()?;
    let mut upload = proxy.try_clone()?;
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut upload);
        let _ = upload.shutdown(std::net::Shutdown::Write);
    });
    let mut download = reader.into_inner();
    let mut buf = [0u8; 16 * 1024];
    let mut out = std::io::stdout().lock();
    loop {
        let n = download.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
    drop(up);
    Ok(ExitCode::SUCCESS)
}
