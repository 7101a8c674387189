//! The pool of refusers: how many connections refused at a cap may be answered at once, sized
//! once at start from the descriptor limit. What a refuser does with a connection is
//! `listener::refuse`; this module only hands out the places (and rate-limits the warning when
//! none is free), so the proxy state can own the pool without depending on the listener.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use egress_config::DenyReason;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::warn;

/// The pool's bounds. Every refuser holds one descriptor and a small task, for at most the
/// refuser's answer wait and linger (with prompt clients, a round trip or two).
const MOST: usize = 1024;
const FEWEST: usize = 16;
/// Descriptors left to everything but connections: listeners, admin, DNS, audit, splice pipes.
const RESERVED_DESCRIPTORS: u64 = 128;
/// Unanswered refusals are logged at most this often (they are counted every time).
const WARN_EVERY: Duration = Duration::from_secs(1);

/// The refusers, shared by every listener of the process.
#[derive(Debug)]
pub struct Refusers {
    permits: Arc<Semaphore>,
    size: usize,
    /// When an unanswered refusal was last logged, and how many went unlogged since.
    last_warning: Mutex<(Option<Instant>, u64)>,
}

impl Refusers {
    /// A pool sized for `max_connections`: at most `MOST`, and no more than half of the
    /// descriptors that the served connections (two each) and `RESERVED_DESCRIPTORS` leave, so
    /// that answering refusals leaves served connections the descriptors their dials need.
    pub fn new(max_connections: usize) -> Self {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let size = pool_size(max_connections, limit);
        tracing::info!(
            refusers = size,
            descriptor_limit = limit,
            "connections refused at a cap are answered by at most this many refusers at once"
        );
        Self::sized(size)
    }

    pub(crate) fn sized(size: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
            last_warning: Mutex::new((None, 0)),
        }
    }

    /// A free refuser's place, held while it answers; `None` when every refuser is busy.
    pub fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// One warning per `WARN_EVERY` at most, with the number closed since the last one: a flood
    /// must not also flood the log.
    pub fn warn_unanswered(&self, limit: &'static str) {
        let now = Instant::now();
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (when, unlogged) = &mut *last;
        *unlogged += 1;
        if when.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return;
        }
        warn!(
            reason = DenyReason::TooManyConnections.as_str(),
            limit,
            closed = *unlogged,
            refusers = self.size,
            "connection refused unanswered: every refuser is busy"
        );
        *when = Some(now);
        *unlogged = 0;
    }
}

/// `MOST`, or less when the descriptor limit (`None`: unlimited) leaves less room.
fn pool_size(max_connections: usize, descriptor_limit: Option<u64>) -> usize {
    let Some(limit) = descriptor_limit else {
        return MOST;
    };
    let served = (max_connections as u64).saturating_mul(2);
    let spare = limit.saturating_sub(served.saturating_add(RESERVED_DESCRIPTORS));
    usize::try_from(spare / 2)
        .unwrap_or(MOST)
        .clamp(FEWEST, MOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_leaves_the_served_connections_their_descriptors() {
        assert_eq!(pool_size(4096, None), MOST, "no limit");
        assert_eq!(pool_size(256, Some(20_000)), MOST);
        // 1024 - 2 * 256 - 128 = 384 spare, half of it.
        assert_eq!(pool_size(256, Some(1024)), 192);
        // The served connections alone overrun the limit: a few refusers still answer.
        assert_eq!(pool_size(4096, Some(1024)), FEWEST);
        assert_eq!(pool_size(usize::MAX, Some(u64::MAX)), FEWEST);
    }
}
