//! How many threads serve connections: one per CPU this process may run on — its affinity mask
//! and its cgroup's CPU quota, as `std::thread::available_parallelism` reads them on Linux, so a
//! container limited to one CPU gets one worker, not one per CPU of the host — or the number
//! `--workers` fixes.

use std::num::NonZeroUsize;

/// The worker count and where it came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workers {
    pub count: usize,
    pub from: &'static str,
}

/// `requested` when given, else the CPUs available (1 when that cannot be told).
pub fn choose(requested: Option<NonZeroUsize>) -> Workers {
    match requested {
        Some(n) => Workers {
            count: n.get(),
            from: "--workers",
        },
        None => Workers {
            count: std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            from: "available CPUs",
        },
    }
}

/// A multi-threaded runtime with `workers` worker threads, named `egress-worker`.
pub fn runtime(workers: Workers) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.count)
        // Its blocking pool's threads (file reads, lookups) are named alike.
        .thread_name("egress-worker")
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_count_wins_and_the_default_is_at_least_one() {
        let fixed = choose(NonZeroUsize::new(3));
        assert_eq!((fixed.count, fixed.from), (3, "--workers"));
        assert!(choose(None).count >= 1);
    }
}
