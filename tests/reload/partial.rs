//! Writers that leave the policy file incomplete for a while, and a client that checks, while
//! they write, that every request is still decided by a whole policy.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::wait::until;
use crate::support::{header, WAIT};

/// The writers' pace. Sleeping here is not synchronisation: it is the shape of the writer under
/// test (the soak's slow writer wrote in small pieces, and stalled).
const PIECE: usize = 20;
const BETWEEN_PIECES: Duration = Duration::from_millis(30);
/// A stall with the file open and cut before its deny list: three times the proxy's settle time,
/// so a reloader that only waits for quiet would take the cut file.
pub const STALL: Duration = Duration::from_millis(600);
/// Bounds the client however long the writers take.
const MAX_PAIRS: usize = 20_000;

/// The whole policy: the origin allowed as `127.0.0.1` and as `localhost`, and `localhost`
/// denied. Every prefix of it that loads answers one of the two differently: it allows nothing,
/// or only `127.0.0.1` (`localhost` is then `not-allowlisted`), or lets `localhost` through.
pub fn whole(port: u16, version: usize) -> String {
    format!(
        "listen: 127.0.0.1:0\n\
         # version {version}\n\
         allow:\n  - \"127.0.0.1:{port}\"\n  - \"localhost:{port}\"\n\
         deny:\n  - \"localhost:{port}\"\n"
    )
}

/// Rewrites the file in place through one open handle (as `cat > file` or an editor does): it
/// is truncated, written in small pieces, and left cut before `deny:` while `stall` runs.
pub fn in_place(path: &Path, text: &str, writing: &AtomicBool, stall: impl FnOnce()) {
    writing.store(true, Ordering::SeqCst);
    let mut file = File::create(path).expect("truncate");
    let cut = text.find("deny:").expect("a deny list");
    write_pieces(&mut file, &text[..cut]);
    stall();
    write_pieces(&mut file, &text[cut..]);
    drop(file);
    writing.store(false, Ordering::SeqCst);
}

/// Truncates the file and closes it, runs `between` with the file empty, then writes the text
/// in one piece through a second open.
pub fn truncate_then_write(path: &Path, text: &str, writing: &AtomicBool, between: impl FnOnce()) {
    writing.store(true, Ordering::SeqCst);
    drop(File::create(path).expect("truncate"));
    between();
    let mut file = OpenOptions::new().append(true).open(path).expect("open");
    file.write_all(text.as_bytes()).expect("write");
    drop(file);
    writing.store(false, Ordering::SeqCst);
}

/// Truncates (and runs `emptied`), then appends one line at a time, each through its own open
/// and close (as a shell script's `echo … >> file` lines do). Returns the longest gap between two
/// closes: the proxy can only be expected to wait out short ones.
pub fn line_by_line(
    path: &Path,
    text: &str,
    writing: &AtomicBool,
    emptied: impl FnOnce(),
) -> Duration {
    writing.store(true, Ordering::SeqCst);
    drop(File::create(path).expect("truncate"));
    emptied();
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    for line in text.split_inclusive('\n') {
        std::thread::sleep(BETWEEN_PIECES);
        let mut file = OpenOptions::new().append(true).open(path).expect("open");
        file.write_all(line.as_bytes()).expect("write");
        drop(file);
        longest = longest.max(last.elapsed());
        last = Instant::now();
    }
    writing.store(false, Ordering::SeqCst);
    longest
}

fn write_pieces(file: &mut File, text: &str) {
    for piece in text.as_bytes().chunks(PIECE) {
        file.write_all(piece).expect("write");
        std::thread::sleep(BETWEEN_PIECES);
    }
}

/// How the proxy decided a plain-HTTP request: status code and `X-Egress-Error`.
pub fn decided(proxy: SocketAddr, authority: &str) -> (u16, Option<String>) {
    let request = format!(
        "GET http://{authority}/hello HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = Vec::new();
    // A refused connection is a wrong answer too (status 0), not a panic in the client thread.
    if let Ok(mut stream) = TcpStream::connect(proxy) {
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read_to_end(&mut answer);
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, header(&text, "x-egress-error").map(str::to_string))
}

/// What the client saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Pairs of requests (allowed host, denied host) sent.
    pub pairs: usize,
    /// Of them, those sent while a writer had the file incomplete.
    pub while_writing: usize,
    /// Every answer a whole policy would not have given.
    pub wrong: Vec<String>,
}

/// A client asking, in a loop, for the allowed and the denied host until stopped (or
/// `MAX_PAIRS`).
pub struct Client {
    stop: Arc<AtomicBool>,
    /// Set by the writers while the file is incomplete.
    writing: Arc<AtomicBool>,
    /// Pairs asked so far.
    asked: Arc<AtomicUsize>,
    handle: JoinHandle<Tally>,
}

impl Client {
    pub fn start(proxy: SocketAddr, port: u16) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let writing = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(AtomicUsize::new(0));
        let (stopped, incomplete, count) = (stop.clone(), writing.clone(), asked.clone());
        let handle = std::thread::spawn(move || {
            let mut tally = Tally::default();
            let allowed = format!("127.0.0.1:{port}");
            let denied = format!("localhost:{port}");
            while !stopped.load(Ordering::SeqCst) && tally.pairs < MAX_PAIRS {
                let during = incomplete.load(Ordering::SeqCst);
                let a = decided(proxy, &allowed);
                if a != (200, None) {
                    tally.wrong.push(format!("{allowed} (allowed) got {a:?}"));
                }
                let d = decided(proxy, &denied);
                if d != (403, Some("blocked-by-denylist".to_string())) {
                    tally.wrong.push(format!("{denied} (denied) got {d:?}"));
                }
                tally.pairs += 1;
                tally.while_writing += usize::from(during);
                count.store(tally.pairs, Ordering::SeqCst);
            }
            eprintln!(
                "client: {} pairs, {} while the file was incomplete, {} wrong",
                tally.pairs,
                tally.while_writing,
                tally.wrong.len()
            );
            tally
        });
        Client {
            stop,
            writing,
            asked,
            handle,
        }
    }

    /// The flag the writers set while the file is incomplete.
    pub fn writing(&self) -> &AtomicBool {
        &self.writing
    }

    /// Returns once the client has asked `n` more pairs (so some were asked in the state the
    /// file is in now).
    pub fn asks(&self, n: usize) {
        let target = self.asked.load(Ordering::SeqCst) + n;
        until(&format!("the client to ask {n} more times"), || {
            self.asked.load(Ordering::SeqCst) >= target
        });
    }

    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("client thread")
    }
}
