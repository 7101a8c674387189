//! When to look at the file after it changed: not while a writer holds it open, not until no
//! change has been seen for the settle time, and then twice, the settle time apart, so that only
//! a file left alone for that long is taken. Pure bookkeeping: the reloader reads, this decides
//! when.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::time::{Duration, Instant};

use super::events::Change;
use super::file::Fingerprint;

/// Editors, writers and ConfigMap updates change a file in several steps; a file counts as
/// complete only after this long without a change, seen by two reads this far apart.
pub const SETTLE: Duration = Duration::from_millis(200);

/// How often a file found changing while read is looked at again before the reload is given up
/// until the next change (a file that never stops changing is not worth spinning on).
pub const TRIES: u32 = 20;

/// After this long with a writer holding the file open, the reloader says it is waiting.
pub const WRITER_WARNING: Duration = Duration::from_secs(10);

/// Only Linux (inotify) reports a writer's close; elsewhere a write only restarts the settle time.
const CLOSE_REPORTED: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// What to do at the next wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Stat the file; read it if it is another version than the last one concluded.
    Look,
    /// Read it again and compare with the first read.
    Verify,
    /// Say that a writer has held the file open for long.
    WarnWriter,
}

/// The first of the two reads.
#[derive(Debug)]
pub struct FirstRead {
    pub fingerprint: Fingerprint,
    pub text: Vec<u8>,
    at: Instant,
}

#[derive(Debug)]
pub struct Settle {
    /// A change was seen and not yet concluded.
    dirty: bool,
    last_change: Instant,
    /// Names written in place and not yet closed, and since when one has been.
    writers: HashSet<OsString>,
    writing_since: Option<Instant>,
    warned: bool,
    first: Option<FirstRead>,
    /// Reads in a row that found the file changing.
    unstable: u32,
}

impl Settle {
    pub fn new(now: Instant) -> Self {
        Self {
            dirty: false,
            last_change: now,
            writers: HashSet::new(),
            writing_since: None,
            warned: false,
            first: None,
            unstable: 0,
        }
    }

    /// Records a change to `name` (one of the names leading to the file).
    pub fn note(&mut self, change: Change, name: Option<&OsStr>, now: Instant) {
        match (change, name) {
            (Change::Rescan, _) => self.writers.clear(),
            (Change::Writing, Some(name)) if CLOSE_REPORTED => {
                self.writers.insert(name.to_owned());
                self.writing_since.get_or_insert(now);
            }
            // A close ends that writer; a new file under the name has no writer we know of yet.
            (Change::Closed | Change::Replaced, Some(name)) => {
                self.writers.remove(name);
            }
            _ => {}
        }
        if self.writers.is_empty() {
            self.writing_since = None;
            self.warned = false;
        }
        self.dirty = true;
        self.first = None;
        self.last_change = now;
    }

    /// When to wake next, and for what; `None` while idle or waiting for a writer to close.
    pub fn next(&self) -> Option<(Instant, Step)> {
        if !self.dirty {
            return None;
        }
        if let Some(since) = self.writing_since {
            return (!self.warned).then_some((since + WRITER_WARNING, Step::WarnWriter));
        }
        match &self.first {
            Some(first) => Some((first.at, Step::Verify)),
            None => Some((self.last_change + SETTLE, Step::Look)),
        }
    }

    /// Whether a writer holds the file open.
    pub fn writing(&self) -> bool {
        self.writing_since.is_some()
    }

    pub fn warned(&mut self) {
        self.warned = true;
    }

    /// The first read is done; verify it after the settle time.
    pub fn first_read(&mut self, fingerprint: Fingerprint, text: Vec<u8>, now: Instant) {
        self.first = Some(FirstRead {
            fingerprint,
            text,
            at: now + SETTLE,
        });
    }

    pub fn take_first(&mut self) -> Option<FirstRead> {
        self.first.take()
    }

    /// The file was found changing; look again after the settle time. `false` when it has been
    /// found so too often: the caller gives up until the next change.
    pub fn unstable(&mut self, now: Instant) -> bool {
        self.first = None;
        self.last_change = now;
        self.unstable += 1;
        if self.unstable >= TRIES {
            self.concluded();
            return false;
        }
        true
    }

    /// Nothing more to do until the next change.
    pub fn concluded(&mut self) {
        self.dirty = false;
        self.first = None;
        self.unstable = 0;
    }
}

#[cfg(test)]
mod tests;
