//! The audit log: one JSON line per decision, for SIEMs and for answering "who tried to reach
//! what". Lines are handed to a writer thread through a bounded queue, so a slow disk never
//! slows down connections. Every line is either written whole or counted in
//! `egress_audit_lines_dropped_total`: dropped when the queue is full, or not written because
//! the file refused it (a full disk). The writer keeps trying with each new batch, so lines flow
//! again as soon as there is room. SIGUSR1 reopens the file, for logrotate; `flush` lets the
//! process write what is queued before it exits.

mod sink;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use egress_config::Audit;
use tracing::{info, warn};

use crate::metrics::Metrics;
use sink::{Batch, Sink};

/// A proxy's audit log: a handle to its writer thread, owned by the proxy's `Observer`. The
/// thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

/// The queue to the writer thread; only handles hold it, so the writer sees it close.
struct Inner {
    queue: SyncSender<String>,
    /// Lines accepted into the queue so far.
    queued: AtomicU64,
    progress: Arc<Progress>,
}

/// What the writer thread and the handles share.
struct Progress {
    /// Lines the writer has finished with (written, or counted as lost), for `flush`.
    handled: Mutex<u64>,
    advanced: Condvar,
    /// SIGUSR1 asked for the file to be reopened before the next line.
    reopen: AtomicBool,
    /// Where lost lines are counted.
    metrics: Option<Arc<Metrics>>,
}

impl Progress {
    fn lost(&self, n: u64) {
        if let Some(metrics) = &self.metrics {
            metrics.audit_dropped(n);
        }
    }

    /// Tells `flush` that `n` more lines are done with.
    fn handled(&self, n: u64) {
        *self.handled.lock().unwrap_or_else(|e| e.into_inner()) += n;
        self.advanced.notify_all();
    }
}

impl AuditLog {
    /// Starts the writer. The file is opened now, so a bad path fails the start; lost lines
    /// are counted in `metrics`.
    pub fn start(settings: &Audit, metrics: Option<Arc<Metrics>>) -> io::Result<Self> {
        let sink = Sink::open(settings.path.clone())?;
        let (tx, rx) = mpsc::sync_channel(settings.buffer);
        let progress = Arc::new(Progress {
            handled: Mutex::new(0),
            advanced: Condvar::new(),
            reopen: AtomicBool::new(false),
            metrics,
        });
        let writer = progress.clone();
        std::thread::Builder::new()
            .name("egress-audit".into())
            .spawn(move || write_loop(sink, rx, &writer))?;
        Ok(Self {
            inner: Arc::new(Inner {
                queue: tx,
                queued: AtomicU64::new(0),
                progress,
            }),
        })
    }

    /// Asks the writer to reopen its file before the next line (SIGUSR1).
    pub fn reopen(&self) {
        self.inner.progress.reopen.store(true, Ordering::Relaxed);
    }

    /// Queues one line; never waits.
    pub fn write(&self, line: String) {
        if offer(&self.inner.queue, line, &self.inner.progress) {
            self.inner.queued.fetch_add(1, Ordering::Release);
        }
    }

    /// Waits until every line queued before this call has been written (or counted as lost),
    /// for at most `within`. Returns how many were still waiting when time ran out (0: all
    /// done).
    pub fn flush(&self, within: Duration) -> u64 {
        let target = self.inner.queued.load(Ordering::Acquire);
        let progress = &self.inner.progress;
        let deadline = Instant::now() + within;
        let mut handled = progress.handled.lock().unwrap_or_else(|e| e.into_inner());
        while *handled < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return target - *handled;
            }
            handled = match progress.advanced.wait_timeout(handled, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        0
    }
}

/// Hands `line` to the writer if its queue has room; otherwise drops it and counts the drop.
/// Returns whether the line was queued.
fn offer(queue: &SyncSender<String>, line: String, progress: &Progress) -> bool {
    match queue.try_send(line) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            progress.lost(1);
            false
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

/// Under load, how long the writer lets lines gather before it drains them.
const BATCH: Duration = Duration::from_millis(50);

fn write_loop(mut sink: Sink, lines: Receiver<String>, progress: &Progress) {
    // Idle, the writer blocks for the next line. Busy, it drains whatever is queued, writes it
    // with one write, and then sleeps for `BATCH` instead of blocking, so senders find it awake
    // and never pay a wake-up per line: a burst of tunnels costs a few syscalls per batch, not
    // several per line. A line is on disk at most `BATCH` after it was queued.
    let mut batch = Batch::default();
    let mut outage = Outage::default();
    loop {
        let Ok(first) = lines.recv() else { return };
        batch.push(&first);
        loop {
            lines.try_iter().for_each(|line| batch.push(&line));
            if progress.reopen.swap(false, Ordering::Relaxed) {
                sink.reopen();
            }
            let written = sink.write(&batch);
            outage.note(batch.len() - written.lines, written.error, progress);
            progress.handled(batch.len() as u64);
            batch.clear();
            std::thread::sleep(BATCH);
            lines.try_iter().for_each(|line| batch.push(&line));
            if batch.is_empty() {
                break; // quiet again: block for the next line
            }
        }
    }
}

/// A spell of failed writes: logged when it starts and when it ends, not once per batch.
#[derive(Debug, Default)]
struct Outage {
    /// Lines lost since the writes started failing; `None` while they succeed.
    lost: Option<usize>,
}

impl Outage {
    fn note(&mut self, lost: usize, error: Option<io::Error>, progress: &Progress) {
        if lost > 0 {
            progress.lost(lost as u64);
        }
        match (error, &mut self.lost) {
            (Some(error), None) => {
                warn!(%error, lost, "cannot write the audit log; lines are counted in egress_audit_lines_dropped_total until it can be written again");
                self.lost = Some(lost);
            }
            (Some(_), Some(total)) => *total += lost,
            (None, Some(total)) => {
                info!(lost = *total, "the audit log is written again");
                self.lost = None;
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_line_instead_of_waiting() {
        // A writer that has fallen behind: nobody drains this queue of two.
        let (tx, rx) = mpsc::sync_channel(2);
        let metrics = Arc::new(Metrics::new(1));
        let progress = Progress {
            handled: Mutex::new(0),
            advanced: Condvar::new(),
            reopen: AtomicBool::new(false),
            metrics: Some(metrics.clone()),
        };
        assert!(offer(&tx, "one".into(), &progress));
        assert!(offer(&tx, "two".into(), &progress));
        // Were offer to wait for room, this would hang: nobody will ever make room.
        assert!(
            !offer(&tx, "three".into(), &progress),
            "dropped, not queued"
        );
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["one", "two"]);
        assert!(
            offer(&tx, "four".into(), &progress),
            "room again once the writer caught up"
        );
        assert!(
            metrics
                .encode()
                .contains("egress_audit_lines_dropped_total 1\n"),
            "the dropped line is counted"
        );
    }
}
