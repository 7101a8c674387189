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
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use egress_config::Audit;
use tracing::{info, warn};

use sink::{Batch, Sink};

/// The queue to the writer thread, and how far the writer has got.
struct Writer {
    queue: SyncSender<String>,
    /// Lines accepted into the queue so far.
    queued: AtomicU64,
    /// Lines the writer has finished with (written, or counted as lost), for `flush`.
    handled: Mutex<u64>,
    progress: Condvar,
}

static WRITER: OnceLock<Writer> = OnceLock::new();
static REOPEN: AtomicBool = AtomicBool::new(false);

/// Starts the writer (once per process). The file is opened now, so a bad path fails the start.
pub fn install(settings: &Audit) -> io::Result<()> {
    let sink = Sink::open(settings.path.clone())?;
    let (tx, rx) = mpsc::sync_channel(settings.buffer);
    let writer = Writer {
        queue: tx,
        queued: AtomicU64::new(0),
        handled: Mutex::new(0),
        progress: Condvar::new(),
    };
    if WRITER.set(writer).is_err() {
        return Ok(()); // already running (an embedding started it)
    }
    std::thread::Builder::new()
        .name("egress-audit".into())
        .spawn(move || write_loop(sink, rx))?;
    Ok(())
}

/// Asks the writer to reopen its file before the next line (SIGUSR1).
pub fn reopen() {
    REOPEN.store(true, Ordering::Relaxed);
}

/// Queues one line; never waits.
pub fn write(line: String) {
    if let Some(writer) = WRITER.get() {
        if offer(&writer.queue, line) {
            writer.queued.fetch_add(1, Ordering::Release);
        }
    }
}

/// Hands `line` to the writer if its queue has room; otherwise drops it and counts the drop.
/// Returns whether the line was queued.
fn offer(queue: &SyncSender<String>, line: String) -> bool {
    match queue.try_send(line) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            crate::metrics::audit_dropped();
            false
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

/// Whether audit lines are being written at all (callers skip building them otherwise).
pub fn enabled() -> bool {
    WRITER.get().is_some()
}

/// Waits until every line queued before this call has been written (or counted as lost), for
/// at most `within`. Returns how many were still waiting when time ran out (0: all done).
pub fn flush(within: Duration) -> u64 {
    let Some(writer) = WRITER.get() else { return 0 };
    let target = writer.queued.load(Ordering::Acquire);
    let deadline = Instant::now() + within;
    let mut handled = writer.handled.lock().unwrap_or_else(|e| e.into_inner());
    while *handled < target {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return target - *handled;
        }
        handled = match writer.progress.wait_timeout(handled, left) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
    0
}

/// Under load, how long the writer lets lines gather before it drains them.
const BATCH: Duration = Duration::from_millis(50);

fn write_loop(mut sink: Sink, lines: Receiver<String>) {
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
            if REOPEN.swap(false, Ordering::Relaxed) {
                sink.reopen();
            }
            let written = sink.write(&batch);
            outage.note(batch.len() - written.lines, written.error);
            handled(batch.len() as u64);
            batch.clear();
            std::thread::sleep(BATCH);
            lines.try_iter().for_each(|line| batch.push(&line));
            if batch.is_empty() {
                break; // quiet again: block for the next line
            }
        }
    }
}

/// Tells `flush` that `n` more lines are done with.
fn handled(n: u64) {
    if let Some(writer) = WRITER.get() {
        *writer.handled.lock().unwrap_or_else(|e| e.into_inner()) += n;
        writer.progress.notify_all();
    }
}

/// A spell of failed writes: logged when it starts and when it ends, not once per batch.
#[derive(Debug, Default)]
struct Outage {
    /// Lines lost since the writes started failing; `None` while they succeed.
    lost: Option<usize>,
}

impl Outage {
    fn note(&mut self, lost: usize, error: Option<io::Error>) {
        if lost > 0 {
            crate::metrics::audit_dropped_by(lost as u64);
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
        assert!(offer(&tx, "one".into()));
        assert!(offer(&tx, "two".into()));
        // Were offer to wait for room, this would hang: nobody will ever make room.
        assert!(!offer(&tx, "three".into()), "dropped, not queued");
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["one", "two"]);
        assert!(
            offer(&tx, "four".into()),
            "room again once the writer caught up"
        );
    }
}
