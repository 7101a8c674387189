//! The request workloads: plain-HTTP requests forwarded to the origin, and CONNECTs the proxy
//! must refuse. Every answer is checked; one wrong answer fails the measurement.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, ensure, Context};

use crate::contenders::Contender;
use crate::servers::ORIGIN_BODY;
use crate::workloads::operations_per_second;
use crate::IO_TIMEOUT;

/// A name on no allow list (and, being `.invalid`, in no DNS): every proxy must refuse it.
pub const DENIED: &str = "denied.invalid:443";

/// Client connections opened by the last `forward_rate` (to tell keep-alive proxies apart from
/// those closing after each answer).
pub static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Up to `count` `GET`s from `clients` threads, each on a keep-alive connection to the contender
/// (absolute-form `GET http://origin/...` through a proxy, origin-form direct), reconnecting only
/// when the answer says the connection closes; requests per second. Each answer must be a 200
/// carrying the origin's whole body.
pub fn forward_rate(
    contender: &Contender,
    origin: SocketAddr,
    count: usize,
    clients: usize,
) -> anyhow::Result<f64> {
    CONNECTIONS.store(0, Ordering::Relaxed);
    let request = match contender.addr() {
        Some(_) => format!("GET http://{origin}/bench HTTP/1.1\r\nHost: {origin}\r\n\r\n"),
        None => format!("GET /bench HTTP/1.1\r\nHost: {origin}\r\n\r\n"),
    };
    operations_per_second(
        clients,
        count,
        || Ok(None),
        |connection: &mut Option<BufReader<TcpStream>>| {
            // A connection kept from the previous answer may have been closed without a word
            // (tinyproxy closes after each answer without `Connection: close`): like any HTTP
            // client, send the GET again once on a new connection.
            let mut head = None;
            for _attempt in 0..2 {
                let reused = connection.is_some();
                let reader = match connection {
                    Some(reader) => reader,
                    None => {
                        let stream = connect(contender.addr().unwrap_or(origin))?;
                        CONNECTIONS.fetch_add(1, Ordering::Relaxed);
                        connection.insert(BufReader::new(stream))
                    }
                };
                let sent = reader.get_mut().write_all(request.as_bytes());
                match sent
                    .map_err(anyhow::Error::from)
                    .and_then(|()| read_head(reader))
                {
                    Ok(Some(answer)) => {
                        head = Some(answer);
                        break;
                    }
                    Ok(None) | Err(_) if reused => *connection = None,
                    Ok(None) => bail!("{}: closed before answering a GET", contender.name()),
                    Err(e) => return Err(e.context(format!("{}: GET", contender.name()))),
                }
            }
            let head = head.with_context(|| format!("{}: no answer to a GET", contender.name()))?;
            let reader = connection.as_mut().expect("answered on a connection");
            ensure!(
                head.status == 200,
                "{}: GET answered {}",
                contender.name(),
                head.status
            );
            let length = head
                .content_length
                .with_context(|| format!("{}: answer without Content-Length", contender.name()))?;
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            ensure!(
                body == ORIGIN_BODY,
                "{}: the body is not the origin's",
                contender.name()
            );
            if head.close {
                *connection = None;
            }
            Ok(())
        },
    )
}

/// Up to `count` CONNECTs to `DENIED`, each on a new connection, from `clients` threads;
/// refusals per second. Each must be answered 403.
pub fn deny_rate(contender: &Contender, count: usize, clients: usize) -> anyhow::Result<f64> {
    let proxy = contender.addr().context("denials need a proxy")?;
    let request = format!("CONNECT {DENIED} HTTP/1.1\r\nHost: {DENIED}\r\n\r\n");
    operations_per_second(
        clients,
        count,
        || Ok(()),
        |_| {
            let mut reader = BufReader::new(connect(proxy)?);
            reader.get_mut().write_all(request.as_bytes())?;
            let head = read_head(&mut reader)
                .with_context(|| format!("{}: CONNECT", contender.name()))?
                .with_context(|| {
                    format!("{}: closed before answering CONNECT", contender.name())
                })?;
            ensure!(
                head.status == 403,
                "{}: CONNECT {DENIED} answered {}, not 403",
                contender.name(),
                head.status
            );
            Ok(())
        },
    )
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// What the benchmark needs of an answer's head.
struct Head {
    status: u16,
    content_length: Option<usize>,
    /// The connection ends after this answer (`Connection: close`, or HTTP/1.0 without
    /// keep-alive).
    close: bool,
}

/// The answer's head; `None` when the connection closed before its first byte.
fn read_head(reader: &mut BufReader<TcpStream>) -> anyhow::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let version = words.next().unwrap_or_default().to_string();
    let Some(status) = words.next().and_then(|s| s.parse().ok()) else {
        bail!("not an HTTP status line: {line:?}");
    };
    let (mut content_length, mut connection) = (None, None::<String>);
    for _ in 0..100 {
        line.clear();
        ensure!(reader.read_line(&mut line)? > 0, "closed within the head");
        let Some((name, value)) = line.trim_end().split_once(':') else {
            let close = match connection {
                Some(value) => value.contains("close"),
                None => version == "HTTP/1.0",
            };
            return Ok(Some(Head {
                status,
                content_length,
                close,
            }));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse()?);
        } else if name.eq_ignore_ascii_case("connection") {
            connection = Some(value.to_ascii_lowercase());
        }
    }
    bail!("an answer head of more than 100 lines")
}
