//! The loopback servers every contender reaches: a source of bytes, a one-byte echo and a
//! plain-HTTP origin.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;

/// Sends `bytes` bytes to each connection, then closes.
pub fn source(bytes: u64) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let chunk = vec![0x5a_u8; 256 * 1024];
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if stream.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    left -= n as u64;
                }
            });
        }
    });
    Ok(addr)
}

/// Echoes what it reads until the client closes.
pub fn echo() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_nodelay(true);
                let mut buf = [0u8; 512];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// The body of every answer of the plain-HTTP origin: short, so a forwarded request costs what
/// the proxy does per request rather than per byte.
pub const ORIGIN_BODY: &[u8] = b"egress-bench origin: a short answer\n";

/// A plain-HTTP/1.1 origin: answers every request head with a 200 and `ORIGIN_BODY`, keeping the
/// connection open until the client closes it.
pub fn origin() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let answer = [
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            ORIGIN_BODY.len()
        )
        .as_bytes(),
        ORIGIN_BODY,
    ]
    .concat();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = std::io::BufReader::new(&stream);
                let mut writer = &stream;
                let mut line = Vec::with_capacity(256);
                loop {
                    // One request head (requests carry no body here), then the answer.
                    loop {
                        line.clear();
                        match std::io::BufRead::read_until(&mut reader, b'\n', &mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == b"\r\n" || line == b"\n" => break,
                            Ok(_) => {}
                        }
                    }
                    if writer.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}
