//! The audit log: one JSON line per decision, for SIEMs and for answering "who tried to reach
//! what". Lines are handed to a writer thread through a bounded queue; when the queue is full
//! the line is dropped and counted (`egress_audit_lines_dropped_total`) — a slow disk must never
//! slow down connections. SIGUSR1 reopens the file, for logrotate.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

use egress_config::Audit;
use tracing::{info, warn};

static QUEUE: OnceLock<SyncSender<String>> = OnceLock::new();
static REOPEN: AtomicBool = AtomicBool::new(false);

/// Starts the writer (once per process). The file is opened now, so a bad path fails the start.
pub fn install(settings: &Audit) -> io::Result<()> {
    let sink = Sink::open(settings.path.clone())?;
    let (tx, rx) = mpsc::sync_channel(settings.buffer);
    if QUEUE.set(tx).is_err() {
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
    if let Some(queue) = QUEUE.get() {
        offer(queue, line);
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
    QUEUE.get().is_some()
}

enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File { path: PathBuf, out: BufWriter<File> },
}

impl Sink {
    fn open(path: Option<PathBuf>) -> io::Result<Sink> {
        Ok(match path {
            None => Sink::Stdout(BufWriter::new(io::stdout())),
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                Sink::File {
                    path,
                    out: BufWriter::new(file),
                }
            }
        })
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => writeln!(out, "{line}"),
            Sink::File { out, .. } => writeln!(out, "{line}"),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File { out, .. } => out.flush(),
        }
    }

    fn reopen(&mut self) {
        if let Sink::File { path, out } = self {
            let _ = out.flush();
            match OpenOptions::new().create(true).append(true).open(&*path) {
                Ok(file) => {
                    *out = BufWriter::new(file);
                    info!(file = %path.display(), "audit log reopened");
                }
                Err(error) => {
                    warn!(%error, file = %path.display(), "cannot reopen the audit log; writing to the old file")
                }
            }
        }
    }
}

/// Under load, how long the writer lets lines gather before it drains them.
const BATCH: Duration = Duration::from_millis(50);

fn write_loop(mut sink: Sink, lines: Receiver<String>) {
    // Idle, the writer blocks for the next line. Busy, it drains whatever is queued, writes it
    // with one flush, and then sleeps for `BATCH` instead of blocking, so senders find it awake
    // and never pay a wake-up per line: a burst of tunnels costs a few syscalls per batch, not
    // several per line. A line is on disk at most `BATCH` after it was queued.
    loop {
        let first = match lines.recv() {
            Ok(line) => line,
            Err(_) => return,
        };
        let mut batch = vec![first];
        loop {
            batch.extend(lines.try_iter());
            if REOPEN.swap(false, Ordering::Relaxed) {
                sink.reopen();
            }
            let result = batch
                .drain(..)
                .try_for_each(|line| sink.write_line(&line))
                .and_then(|()| sink.flush());
            if let Err(error) = result {
                warn!(%error, "cannot write the audit log");
            }
            std::thread::sleep(BATCH);
            batch.extend(lines.try_iter());
            if batch.is_empty() {
                break; // quiet again: block for the next line
            }
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
