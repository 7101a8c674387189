//! Connections per client address, so one greedy or slow client (a slowloris) cannot take all of
//! `max_connections` and starve everyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Live connection counts by client IP. A short critical section per accept and per close; the
/// map only holds addresses with open connections, so it cannot grow past `max_connections`.
#[derive(Debug, Default)]
pub struct ClientCounts {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; dropping it gives the slot back.
#[derive(Debug)]
pub struct ClientSlot {
    counts: Arc<ClientCounts>,
    ip: IpAddr,
}

impl ClientCounts {
    /// A slot for `ip` if it has fewer than `max` connections open, else `None`.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            counts: Arc::clone(self),
            ip,
        })
    }

    pub fn open_for(&self, ip: IpAddr) -> usize {
        let open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_at_most_max_slots_and_gets_them_back() {
        let counts = Arc::new(ClientCounts::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = counts.try_acquire(a, 2).unwrap();
        let _second = counts.try_acquire(a, 2).unwrap();
        assert!(
            counts.try_acquire(a, 2).is_none(),
            "third slot for the same client"
        );
        assert!(
            counts.try_acquire(b, 2).is_some(),
            "another client is not affected"
        );
        drop(first);
        assert_eq!(counts.open_for(a), 1);
        assert!(counts.try_acquire(a, 2).is_some());
    }

    #[test]
    fn closed_clients_leave_no_entry() {
        let counts = Arc::new(ClientCounts::default());
        let a: IpAddr = "::1".parse().unwrap();
        drop(counts.try_acquire(a, 1));
        assert!(counts.open.lock().unwrap().is_empty());
    }
}
