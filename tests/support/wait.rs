//! Waiting for a condition that no event announces (a file another process appends to, a
//! process gone, text on a terminal, a port accepting): checked every few milliseconds, bounded,
//! and failing with what was awaited. Never a bare sleep standing in for "long enough".

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine; every wait ends as soon as its condition holds.
pub const BOUND: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// Returns once `condition` holds; panics naming `what` after `BOUND`.
pub fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(POLL);
    }
}

/// Returns once something accepts connections at `addr`.
pub fn listening(addr: impl std::net::ToSocketAddrs + Copy, what: &str) {
    until(what, || std::net::TcpStream::connect(addr).is_ok());
}
