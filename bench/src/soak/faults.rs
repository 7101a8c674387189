//! The fault schedule, run while the load runs: the policy file replaced every 5 s alternating A
//! and B (atomic rename), SIGHUP every 7 s, a broken file every 60 s (kept for 3 s, with a SIGHUP
//! while it is there, then fixed), an in-place slow rewrite every 90 s. The first broken file and
//! the first slow rewrite come at 30 s and 45 s, or sooner in a short run, so that every run
//! has at least one of each. One thread writes the
//! file, so writes never overlap each other; SIGHUP has its own clock and lands where it lands,
//! including in the middle of a slow rewrite, as an operator's would.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::journal::Journal;
use crate::policy::{PolicyFile, Variant};
use crate::proxy::signal;

const RENAME_EVERY: f64 = 5.0;
const SIGHUP_EVERY: f64 = 7.0;
const BROKEN_FIRST: f64 = 30.0;
const BROKEN_EVERY: f64 = 60.0;
const BROKEN_FOR: Duration = Duration::from_secs(3);
const SLOW_FIRST: f64 = 45.0;
const SLOW_EVERY: f64 = 90.0;
/// Longer than the proxy's settle delay, so each partial state is on disk long enough to be seen.
const SLOW_GAP: Duration = Duration::from_millis(150);
const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
pub struct FaultCounts {
    pub renames: AtomicU64,
    pub sighups: AtomicU64,
    pub broken: AtomicU64,
    pub slow: AtomicU64,
    pub write_errors: AtomicU64,
}

pub struct Schedule {
    pub file: PolicyFile,
    pub pid: u32,
    pub start: Instant,
    pub deadline: Instant,
    pub stop: Arc<AtomicBool>,
    pub journal: Arc<Journal>,
    pub counts: Arc<FaultCounts>,
}

impl Schedule {
    fn running(&self) -> bool {
        Instant::now() < self.deadline && !self.stop.load(Ordering::Relaxed)
    }

    fn at(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn hup(&self, why: &str) {
        match signal(self.pid, "HUP") {
            Ok(()) => {
                self.counts.sighups.fetch_add(1, Ordering::Relaxed);
                self.journal.line(&format!("SIGHUP ({why})"));
            }
            Err(e) => self.journal.line(&format!("SIGHUP failed: {e}")),
        }
    }

    fn wrote(&self, what: &str, result: std::io::Result<()>, count: &AtomicU64) {
        match result {
            Ok(()) => {
                count.fetch_add(1, Ordering::Relaxed);
                self.journal.line(what);
            }
            Err(e) => {
                self.counts.write_errors.fetch_add(1, Ordering::Relaxed);
                self.journal.line(&format!("{what} FAILED: {e}"));
            }
        }
    }

    /// The file writer: runs until the deadline. The file starts as variant A.
    pub fn run_writer(&self) {
        let mut variant = Variant::A;
        let mut next_rename = RENAME_EVERY;
        let span = (self.deadline - self.start).as_secs_f64();
        let mut next_broken = BROKEN_FIRST.min(span * 0.25);
        let mut next_slow = SLOW_FIRST.min(span * 0.5);
        while self.running() {
            let now = self.at();
            if now >= next_broken {
                next_broken += BROKEN_EVERY;
                let c = &self.counts;
                self.wrote(
                    "broken file (invalid YAML) renamed in",
                    self.file.replace(&self.file.broken_text()),
                    &c.broken,
                );
                std::thread::sleep(BROKEN_FOR / 2);
                self.hup("while the file is broken");
                std::thread::sleep(BROKEN_FOR / 2);
                variant = variant.other();
                self.wrote(
                    &format!("fixed: variant {variant:?} renamed in"),
                    self.file.replace(&self.file.text(variant)),
                    &c.renames,
                );
            } else if now >= next_slow {
                next_slow += SLOW_EVERY;
                variant = variant.other();
                let pieces = self.file.pieces(variant);
                self.journal.line(&format!(
                    "slow rewrite to variant {variant:?} starts: truncate, {} pieces {} ms apart",
                    pieces.len(),
                    SLOW_GAP.as_millis()
                ));
                self.wrote(
                    &format!("slow rewrite to variant {variant:?} done"),
                    self.file.rewrite_slowly(&pieces, SLOW_GAP),
                    &self.counts.slow,
                );
            } else if now >= next_rename {
                variant = variant.other();
                self.wrote(
                    &format!("variant {variant:?} renamed in"),
                    self.file.replace(&self.file.text(variant)),
                    &self.counts.renames,
                );
            } else {
                std::thread::sleep(TICK);
                continue;
            }
            // Whatever ran, the next rename is a full period after it.
            next_rename = self.at() + RENAME_EVERY;
        }
    }

    /// SIGHUP on its own clock.
    pub fn run_hangups(&self) {
        let mut next = SIGHUP_EVERY;
        while self.running() {
            if self.at() >= next {
                next += SIGHUP_EVERY;
                self.hup("every 7 s");
            }
            std::thread::sleep(TICK);
        }
    }
}
