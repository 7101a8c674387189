//! The embedded proxy's door where it needs a port (macOS: Seatbelt filters by address, so the
//! sandbox reaches the proxy on host loopback). Any local process can connect to a loopback
//! port, as the user or not, and the proxy would serve it with the run's policy and parent
//! credentials: so every connection must first show this run's random credential, which only
//! the sandboxed command is given (in its proxy variables and `connect::CREDENTIAL_ENV`).
//!
//! The check looks at the request head without consuming it (`peek`), then hands the untouched
//! connection to the proxy, which removes `Proxy-Authorization` before anything goes on. HTTP
//! only: a SOCKS5 client's credentials come after the server has answered, too late to hand
//! the connection over untouched, so SOCKS5 is refused here and the sandbox's `ALL_PROXY` is an
//! `http://` URL. Written for every platform, so that it is tested here on Linux.

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::connect::{basic, CREDENTIAL_ENV};

/// The user name of the credential; the token is what is secret.
const USER: &str = "egress-run";

/// The longest head looked at, and how long a client may take to send it.
const HEAD_LIMIT: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections whose head is awaited or refused at once. The command's own clients
/// send their head at once, so it is never near.
const CHECKED_AT_ONCE: usize = 64;

/// A run's credential: 128 random bits, as hex (nothing in it needs escaping in a URL).
#[derive(Clone)]
pub struct Credential {
    token: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(***)")
    }
}

impl Credential {
    pub fn random() -> io::Result<Self> {
        Ok(Self::from_token(random_hex(16)?))
    }

    fn from_token(token: String) -> Self {
        Self { token }
    }

    /// `USER:TOKEN`, as URLs and `CREDENTIAL_ENV` carry it.
    pub fn user_token(&self) -> String {
        format!("{USER}:{}", self.token)
    }

    /// The value of a `Proxy-Authorization` header that carries it.
    pub fn header_value(&self) -> String {
        basic(&self.user_token())
    }
}

/// `bytes` random bytes from the system, as hex.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The sandbox's proxy variables with the credential in every URL of the proxy at `port`, and
/// SOCKS5 URLs turned into HTTP ones (see the module's notes); `CREDENTIAL_ENV` added.
pub fn with_credential(
    vars: Vec<(String, String)>,
    port: u16,
    credential: &Credential,
) -> Vec<(String, String)> {
    let plain = format!("127.0.0.1:{port}");
    let with = format!("{}@127.0.0.1:{port}", credential.user_token());
    let mut out: Vec<(String, String)> = vars
        .into_iter()
        .map(|(name, value)| {
            let value = value
                .replace(&format!("socks5h://{plain}"), &format!("http://{plain}"))
                .replace(&format!("socks5://{plain}"), &format!("http://{plain}"))
                .replace(&format!("http://{plain}"), &format!("http://{with}"));
            (name, value)
        })
        .collect();
    out.push((CREDENTIAL_ENV.to_string(), credential.user_token()));
    out
}

/// Listeners on 127.0.0.1 and [::1] with the same port (the profile's `localhost` admits
/// both, and clients try either). A port taken on ::1 is tried again with another; a machine
/// without IPv6 loopback gets 127.0.0.1 alone.
pub async fn bind_loopback() -> io::Result<Vec<TcpListener>> {
    let mut last = None;
    for _ in 0..16 {
        let v4 = TcpListener::bind("127.0.0.1:0").await?;
        let port = v4.local_addr()?.port();
        match TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await {
            Ok(v6) => return Ok(vec![v4, v6]),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(_) => return Ok(vec![v4]),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

/// Accepts on every listener for as long as the runtime runs; each connection that shows
/// `credential` goes to `admit` untouched, any other gets its answer and is closed.
pub async fn serve(
    listeners: Vec<TcpListener>,
    credential: Credential,
    refused: Refused,
    admit: impl Fn(TcpStream, SocketAddr) + Clone + Send + Sync + 'static,
) {
    let expected = Arc::new(credential.header_value());
    let checking = Arc::new(tokio::sync::Semaphore::new(CHECKED_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        let (expected, admit, refused) = (expected.clone(), admit.clone(), refused.clone());
        let checking = checking.clone();
        tasks.spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    // Out of descriptors, most likely: give the others a moment to close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // Connections that send nothing must not pile up (a local process can open
                // many): beyond the bound, a new one is closed at once.
                let Ok(slot) = checking.clone().try_acquire_owned() else {
                    continue;
                };
                let (expected, admit, refused) = (expected.clone(), admit.clone(), refused.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HEAD_TIMEOUT, verdict(&stream, &expected)).await {
                        Ok(Verdict::Pass) => admit(stream, peer),
                        Ok(Verdict::Refuse(answer)) => {
                            refused.0.fetch_add(1, Ordering::Relaxed);
                            refuse(stream, answer).await
                        }
                        Err(_) | Ok(Verdict::Gone) => {}
                    }
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// How many connections the gate refused: told at exit, since a tool that fails with 407 (or a
/// SOCKS5 refusal) says little about why.
#[derive(Debug, Clone, Default)]
pub struct Refused(Arc<AtomicU64>);

impl Refused {
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The paragraph for the user, if any was refused.
    pub fn paragraph(&self) -> Option<String> {
        let n = self.count();
        (n > 0).then(|| {
            format!(
                "egress-run: {n} connection(s) to the proxy came without this run's credential \
                 and were refused: a SOCKS5 client, a client that ignores the credential in its \
                 proxy URL (Java's), or a process outside the sandbox"
            )
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Pass,
    Refuse(&'static [u8]),
    /// Closed or broken before a whole head came.
    Gone,
}

/// What a client that did not show the credential is told.
const NEEDS_CREDENTIAL: &[u8] = b"HTTP/1.1 407 Proxy Authentication Required\r\n\
Proxy-Authenticate: Basic realm=\"egress-run\"\r\nContent-Type: text/plain\r\n\
Content-Length: 83\r\nConnection: close\r\n\r\n\
this proxy serves one egress-run sandbox; its proxy variables carry the credential\n";
/// SOCKS5 "no acceptable methods".
const NO_SOCKS: &[u8] = &[0x05, 0xFF];

/// Looks at the head as it arrives, without consuming it.
async fn verdict(stream: &TcpStream, expected: &str) -> Verdict {
    let mut buf = vec![0u8; HEAD_LIMIT];
    let mut seen = 0;
    loop {
        let n = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return Verdict::Gone,
            Ok(n) => n,
        };
        if buf[0] == 0x05 || buf[0] == 0x04 {
            return Verdict::Refuse(NO_SOCKS);
        }
        match judge_head(&buf[..n], expected) {
            Some(verdict) => return verdict,
            None if n == HEAD_LIMIT => return Verdict::Refuse(NEEDS_CREDENTIAL),
            None => {}
        }
        // A peek returns what is there at once, again and again: wait a little for the rest
        // of a head that came in pieces (rare: clients write a head at once).
        if n == seen {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = n;
    }
}

/// The verdict on a head once it is complete (`None` before): the credential must be in a
/// `Proxy-Authorization` header, exactly.
fn judge_head(bytes: &[u8], expected: &str) -> Option<Verdict> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let shown = head.split("\r\n").skip(1).any(|line| {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        name.eq_ignore_ascii_case("proxy-authorization") && same(value.trim(), expected)
    });
    Some(if shown {
        Verdict::Pass
    } else {
        Verdict::Refuse(NEEDS_CREDENTIAL)
    })
}

/// Equal, with the scheme's case ignored, and in a time that does not depend on where the
/// first difference lies.
fn same(shown: &str, expected: &str) -> bool {
    let (Some((scheme, value)), Some((_, wanted))) =
        (shown.split_once(' '), expected.split_once(' '))
    else {
        return false;
    };
    let value = value.trim().as_bytes();
    let wanted = wanted.as_bytes();
    scheme.eq_ignore_ascii_case("basic")
        && value.len() == wanted.len()
        && value
            .iter()
            .zip(wanted)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn refuse(mut stream: TcpStream, answer: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.write_all(answer).await;
    let _ = stream.shutdown().await;
    // What the client sent is still unread: closing now would reset the connection, and the
    // client might lose the answer. Read it away first, within bounds.
    let mut sink = vec![0u8; HEAD_LIMIT];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut total = 0;
        while total < 4 * HEAD_LIMIT {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests;
