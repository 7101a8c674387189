//! `egress-proxy health [ADDR]`: asks a running proxy's admin listener for `/livez` and exits 0
//! when it answers 200. For health checks where no HTTP client exists (a `FROM scratch` image's
//! HEALTHCHECK, a compose file).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// Connect, send and read, each within this.
const WAIT: Duration = Duration::from_secs(3);

pub fn run(admin: SocketAddr) -> ExitCode {
    match live(admin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("egress-proxy: not live at {admin}: {why}");
            ExitCode::FAILURE
        }
    }
}

fn live(admin: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&admin, WAIT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET /livez HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    // The status line is all that is needed; a bounded read.
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    let status = String::from_utf8_lossy(&head[..read]);
    if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "answered {:?}",
            status.lines().next().unwrap_or_default()
        ))
    }
}
