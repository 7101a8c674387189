//! Failed logins per client address: each failure lengthens the wait before that client's next
//! password check, and a client's checks run one at a time, so guessing is slow for the guesser
//! and costs everyone else nothing (their checks do not queue behind it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

/// Waits double from `FIRST_DELAY` with each failure, up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// A client without a failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Addresses tracked; past it, idle entries are dropped.
const TRACKED: usize = 4096;

#[derive(Debug, Default)]
pub struct Failures {
    clients: Mutex<HashMap<IpAddr, Client>>,
}

#[derive(Debug, Default)]
struct Client {
    failures: u32,
    last: Option<Instant>,
    /// Held while one of this client's checks runs.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Failures {
    /// Waits for this client's turn to check a password, then for its failures' delay.
    pub async fn turn(&self, ip: IpAddr) -> OwnedMutexGuard<()> {
        let gate = self.lock_entry(ip, |c| c.turn.clone());
        let guard = gate.lock_owned().await;
        let delay = self.lock_entry(ip, |c| delay(c.failures));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        guard
    }

    pub fn failed(&self, ip: IpAddr) {
        self.lock_entry(ip, |c| {
            c.failures = c.failures.saturating_add(1);
            c.last = Some(Instant::now());
        });
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.lock_entry(ip, |c| c.failures = 0);
    }

    /// How many hold or wait for `ip`'s turn (tests: to know checks are queued).
    #[cfg(test)]
    pub fn queued(&self, ip: IpAddr) -> usize {
        self.lock_entry(ip, |c| Arc::strong_count(&c.turn) - 1)
    }

    fn lock_entry<T>(&self, ip: IpAddr, f: impl FnOnce(&mut Client) -> T) -> T {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= TRACKED && !clients.contains_key(&ip) {
            clients.retain(|_, c| Arc::strong_count(&c.turn) > 1 || c.recent());
        }
        let client = clients.entry(ip).or_default();
        if !client.recent() {
            client.failures = 0;
        }
        f(client)
    }
}

impl Client {
    fn recent(&self) -> bool {
        self.last.is_some_and(|t| t.elapsed() < FORGET_AFTER)
    }
}

/// The wait before the next check of a client with `failures` recent failures.
pub fn delay(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => FIRST_DELAY
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(MAX_DELAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_its_cap() {
        assert_eq!(delay(0), Duration::ZERO);
        assert_eq!(delay(1), FIRST_DELAY);
        assert_eq!(delay(2), FIRST_DELAY * 2);
        assert_eq!(delay(6), MAX_DELAY.min(FIRST_DELAY * 32));
        assert_eq!(delay(1000), MAX_DELAY);
        assert_eq!(delay(u32::MAX), MAX_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_delay_only_their_own_client() {
        let failures = Failures::default();
        let guesser: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..5 {
            failures.failed(guesser);
        }
        let started = tokio::time::Instant::now();
        drop(failures.turn(other).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
        drop(failures.turn(guesser).await);
        assert_eq!(started.elapsed(), delay(5));
        failures.succeeded(guesser);
        let started = tokio::time::Instant::now();
        drop(failures.turn(guesser).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
