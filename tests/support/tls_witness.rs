//! A real TLS origin (rustls, a certificate made for the test) that reports what reached it:
//! each connection's bytes and, if its handshake completed, the server name the client asked
//! for. Tests that must prove a tunnel was refused wait for these reports instead of guessing.
//! Plus a rustls client that can put raw bytes on the wire before its own ClientHello.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::WAIT;

/// What one connection to the witness amounted to, reported when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// Bytes the witness read from the connection.
    pub received: usize,
    /// The handshake completed: with this server name (`Some(None)`: without SNI).
    pub handshake: Option<Option<String>>,
}

pub struct TlsWitness {
    pub addr: SocketAddr,
    pub cert: CertificateDer<'static>,
    accepted: Arc<AtomicUsize>,
    visits: Mutex<mpsc::Receiver<Visit>>,
}

impl TlsWitness {
    /// Listens on 127.0.0.1:0 with a certificate for `names` (DNS names or IP addresses).
    pub fn start(names: &[&str]) -> TlsWitness {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        let key_der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key_der)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, visits) = mpsc::channel();
        let count = accepted.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let (config, tx) = (config.clone(), tx.clone());
                thread::spawn(move || {
                    let _ = tx.send(serve(stream, config));
                });
            }
        });
        TlsWitness {
            addr,
            cert: der,
            accepted,
            visits: Mutex::new(visits),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The next connection to end (bounded wait).
    pub fn next_visit(&self) -> Visit {
        self.visits
            .lock()
            .unwrap()
            .recv_timeout(WAIT)
            .expect("a connection to the TLS witness ended")
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Counts what is read through it.
struct Counted {
    inner: TcpStream,
    received: usize,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.received += n;
        Ok(n)
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Handshakes, greets, closes; reports what happened once the client is gone.
fn serve(stream: TcpStream, config: Arc<rustls::ServerConfig>) -> Visit {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut io = Counted {
        inner: stream,
        received: 0,
    };
    let mut conn = rustls::ServerConnection::new(config).unwrap();
    let mut handshake = None;
    while conn.is_handshaking() {
        match conn.complete_io(&mut io) {
            Ok((0, 0)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if !conn.is_handshaking() {
        handshake = Some(conn.server_name().map(str::to_owned));
        let _ = conn.writer().write_all(b"hello from the witness\n");
        conn.send_close_notify();
        let _ = conn.complete_io(&mut io);
    }
    // Read on to the client's end, so every byte that reached us is counted.
    let mut rest = [0u8; 4096];
    while matches!(io.read(&mut rest), Ok(n) if n > 0) {}
    Visit {
        received: io.received,
        handshake,
    }
}

/// How a TLS client attempt through the proxy ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The handshake completed and the witness's greeting arrived.
    Served,
    /// The handshake failed; rustls's error, or the I/O error.
    Failed(String),
}

/// Runs a rustls client for `server_name` (a DNS name, or an IP address: then no SNI) over
/// `stream`, an open tunnel. Its ClientHello (as records) goes through `shape`, which returns the
/// writes to make (with Nagle off, so each is its own segment): put bytes before it, cut it up.
pub fn tls_through(
    mut stream: TcpStream,
    cert: &CertificateDer<'static>,
    server_name: &str,
    shape: impl FnOnce(&[u8]) -> Vec<Vec<u8>>,
) -> Attempt {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    for piece in shape(&hello) {
        if let Err(e) = stream.write_all(&piece) {
            return Attempt::Failed(format!("writing: {e}"));
        }
    }
    while conn.is_handshaking() {
        match conn.complete_io(&mut stream) {
            Ok((0, 0)) => return Attempt::Failed("closed during the handshake".into()),
            Ok(_) => {}
            Err(e) => return Attempt::Failed(e.to_string()),
        }
    }
    let mut text = String::new();
    let mut tls = rustls::Stream::new(&mut conn, &mut stream);
    match tls.read_to_string(&mut text) {
        Ok(_) if text == "hello from the witness\n" => Attempt::Served,
        Ok(_) => Attempt::Failed(format!("unexpected greeting {text:?}")),
        Err(e) => Attempt::Failed(e.to_string()),
    }
}
