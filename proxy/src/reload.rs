//! Hot reload: on SIGHUP, and when the policy file changes on disk. The file's directory is
//! watched, not the file, so atomic replacement (rename over) and Kubernetes ConfigMaps (a
//! symlink swap) are seen. A change is taken only once the file is complete: no writer holds it
//! open, it has stayed the same for the settle time, and two reads that far apart agree
//! (see `settle`). Even then a file that does not load is rejected, and one that would take away
//! every allow entry is held until SIGHUP; either way the old policy stays. While nothing changes,
//! the file is not touched at all.

mod events;
mod file;
mod settle;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::state::{ProxyState, Snapshot};
use events::{Note, Watch};
use file::{Fingerprint, Read};
use settle::{Settle, Step};

/// A SIGHUP that finds the file changing while read tries again this often, this far apart.
const SIGHUP_TRIES: u32 = 10;
const SIGHUP_RETRY: Duration = Duration::from_millis(50);

/// Watches the policy file and SIGHUP. Built before the proxy says it is listening, so neither a
/// change nor a SIGHUP that arrives right after start is missed (SIGHUP's default would kill us).
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    listeners: Vec<egress_config::Listener>,
    notes: mpsc::Receiver<Note>,
    watch: Option<Watch>,
    hangup: Option<tokio::signal::unix::Signal>,
    settle: Settle,
    /// A SIGHUP came while a writer held the file open: reload when it closes it.
    sighup_waits: bool,
    /// The file last read to a conclusion (applied, rejected or held). A change whose stat still
    /// shows this version needs no read; the same text again is not reloaded.
    last: Seen,
    /// Where reloads are counted: the metrics of the proxy `run` serves.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

#[derive(Debug)]
struct Seen {
    /// `None` when the version is not known to tell apart every later one (read at start or on
    /// SIGHUP, maybe within a clock tick of a write): the next change then reads the file.
    fingerprint: Option<Fingerprint>,
    /// The text's SHA-256: a million-entry file is ~40 MB, kept for no other use.
    digest: [u8; 32],
}

/// The SHA-256 of a policy file's text: how the reloader tells versions apart, and the metrics'
/// `egress_policy_info{sha256}`.
pub fn digest(text: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(text).into()
}

/// Why a file is being applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    Change,
    Sighup,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Change => "file-change",
            Trigger::Sighup => "sighup",
        }
    }
}

impl Reloader {
    /// Starts watching `path`. `listeners` are the addresses the file asked for at start, to warn
    /// when a reload asks for different ones (they need a restart); `loaded` is the `digest` of
    /// the text the proxy started with. Call within the runtime.
    pub fn start(
        path: PathBuf,
        listeners: Vec<egress_config::Listener>,
        loaded: [u8; 32],
    ) -> Reloader {
        let (watch, notes) = match Watch::start(&path) {
            Ok((watch, notes)) => (Some(watch), notes),
            Err(e) => {
                let dir = events::watched_dir(&path);
                warn!(error = %e, dir = %dir.display(), "cannot watch the policy directory; reload on SIGHUP only");
                (None, mpsc::channel(1).1)
            }
        };
        let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGHUP");
                None
            }
        };
        let now = Instant::now();
        let mut settle = Settle::new(now);
        // The file may have changed between the load at start and the watch: if it now reads
        // differently, that change is handled like any other.
        let unchanged = matches!(
            file::read_whole(&path),
            Ok(Read::Whole { text, .. }) if digest(&text) == loaded
        );
        if !unchanged {
            settle.note(events::Change::Rescan, None, now);
        }
        Reloader {
            path,
            listeners,
            notes,
            watch,
            hangup,
            settle,
            sighup_waits: false,
            last: Seen {
                fingerprint: None,
                digest: loaded,
            },
            metrics: None,
        }
    }

    /// Reloads on every completed change and every SIGHUP until shutdown.
    pub async fn run(mut self, state: Arc<ProxyState>) {
        self.metrics = state.observer.metrics().cloned();
        loop {
            let next = self.settle.next();
            let wake = async {
                match next {
                    Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let hangup = async {
                match self.hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                Some(note) = self.notes.recv() => {
                    self.note(note);
                    if self.sighup_waits && !self.settle.writing() {
                        self.sighup_waits = false;
                        self.sighup(&state).await;
                    }
                }
                Some(()) = hangup => {
                    if self.settle.writing() {
                        // Read now, the file would be cut wherever its writer is.
                        self.sighup_waits = true;
                        info!(file = %self.path.display(), "SIGHUP reload waits for the policy file's writer to close it");
                    } else {
                        self.sighup(&state).await;
                    }
                }
                () = wake => match next.map(|(_, step)| step) {
                    Some(Step::Look) => self.look().await,
                    Some(Step::Verify) => self.verify(&state).await,
                    Some(Step::WarnWriter) => {
                        warn!(file = %self.path.display(), open_for = ?settle::WRITER_WARNING, retry = "when its writer closes it (SIGHUP too waits for that)", "policy file still being written");
                        self.settle.warned();
                    }
                    None => {}
                },
            }
        }
    }

    fn note(&mut self, note: Note) {
        let now = Instant::now();
        if self.watch.as_ref().is_some_and(Watch::take_lost) {
            self.settle.note(events::Change::Rescan, None, now);
        }
        if note.change == events::Change::Replaced {
            // A symlink may now lead elsewhere: writes to its new target count from here on.
            self.refresh_names();
        }
        let was_writing = self.settle.writing();
        self.settle.note(note.change, note.name.as_deref(), now);
        if self.settle.writing() && !was_writing {
            debug!(file = %self.path.display(), "policy file being written in place; waiting for its writer to close it");
        }
    }

    /// The settle time passed since the last change: read the file if it is another version.
    async fn look(&mut self) {
        self.refresh_names();
        let path = self.path.clone();
        let known = self.last.fingerprint;
        // A stat, never an open, while the version is the one concluded last.
        let seen = blocking(move || match file::fingerprint(&path) {
            Ok(now) if Some(now) == known => Ok(None),
            Ok(_) => file::read_whole(&path).map(Some),
            Err(e) => Err(e),
        })
        .await;
        match seen {
            Ok(None) => self.settle.concluded(),
            Ok(Some(Read::Whole { fingerprint, text })) => {
                self.settle.first_read(fingerprint, text, Instant::now());
            }
            Ok(Some(Read::Changing)) => self.unstable(),
            Err(e) => self.unreadable(&e),
        }
    }

    /// The settle time passed since the first read with no change seen: read again; apply only
    /// if both reads found the same version and the same bytes.
    async fn verify(&mut self, state: &ProxyState) {
        let Some(first) = self.settle.take_first() else {
            return;
        };
        let path = self.path.clone();
        match blocking(move || file::read_whole(&path)).await {
            Ok(Read::Whole { fingerprint, text })
                if fingerprint == first.fingerprint && text == first.text =>
            {
                self.settle.concluded();
                self.conclude(text, Some(fingerprint), Trigger::Change, state)
                    .await;
            }
            Ok(_) => self.unstable(),
            Err(e) => self.unreadable(&e),
        }
    }

    /// An operator's explicit reload: read now (once a writer known to hold the file has closed
    /// it; a read that overlaps a write is retried), and apply whatever loads, even a file that
    /// allows nothing.
    async fn sighup(&mut self, state: &ProxyState) {
        self.refresh_names();
        for _ in 0..SIGHUP_TRIES {
            let path = self.path.clone();
            match blocking(move || file::read_whole(&path)).await {
                Ok(Read::Whole { text, .. }) => {
                    // Read within a clock tick of a write, maybe: not trusted to tell versions.
                    self.conclude(text, None, Trigger::Sighup, state).await;
                    return;
                }
                Ok(Read::Changing) => tokio::time::sleep(SIGHUP_RETRY).await,
                Err(e) => {
                    warn!(error = %e, file = %self.path.display(), "policy file unreadable; keeping the current policy");
                    return;
                }
            }
        }
        self.reject("the file kept changing while it was read");
    }

    fn unstable(&mut self) {
        if self.settle.unstable(Instant::now()) {
            debug!(file = %self.path.display(), "policy file changed while read; looking again after the settle time");
        } else {
            self.reject("the file kept changing while it was read; it is looked at again at its next change");
        }
    }

    fn unreadable(&mut self, e: &std::io::Error) {
        // Mid-replacement the name may briefly lead nowhere; the next change looks again.
        warn!(error = %e, file = %self.path.display(), "policy file unreadable; keeping the current policy");
        self.settle.concluded();
    }

    fn refresh_names(&self) {
        if let Some(watch) = &self.watch {
            watch.refresh(&self.path);
        }
    }

    /// A whole, settled text (or one read on SIGHUP): apply it unless it is the same as last
    /// time, does not load, or would take away every allow entry without an operator asking.
    async fn conclude(
        &mut self,
        text: Vec<u8>,
        fingerprint: Option<Fingerprint>,
        trigger: Trigger,
        state: &ProxyState,
    ) {
        // Hashing and loading a large policy take CPU for a while (about 0.8 s for a million
        // entries): on a blocking thread, so the runtime's workers (one, under a one-CPU quota)
        // keep serving. The text goes there and is freed once parsed: no copy of a file that may
        // be tens of MB.
        let path = self.path.clone();
        let last = self.last.digest;
        let applied = tokio::task::spawn_blocking(move || {
            let read = digest(&text);
            if trigger == Trigger::Change && read == last {
                return (read, None);
            }
            (read, Some(load(&path, text)))
        })
        .await;
        let (read, loaded) = match applied {
            Ok(done) => done,
            Err(e) => return self.reject(&format!("the policy could not be loaded: {e}")),
        };
        let Some(loaded) = loaded else {
            // Rewritten with the same bytes, or another name in the directory changed.
            self.last.fingerprint = fingerprint;
            return;
        };
        self.last = Seen {
            fingerprint,
            digest: read,
        };
        let config = match loaded {
            Ok(config) => config,
            Err(e) => return self.reject(&e),
        };
        let allowed_now = state.snapshot().policy.allow().len();
        if trigger == Trigger::Change && config.policy.allow().is_empty() && allowed_now > 0 {
            // Most often a file caught empty or cut short by a writer that truncates first.
            // Counted before it is logged: whoever reads the log finds the count already there.
            self.counted(false);
            warn!(
                file = %self.path.display(),
                reason = "the new file allows nothing",
                allow_now = allowed_now,
                kept = "the current policy",
                retry = "when the file changes again; SIGHUP applies it as it is",
                "policy reload held"
            );
            return;
        }
        if config.listeners != self.listeners {
            warn!("listen addresses changed in the file; they take effect after a restart");
        }
        // In force and counted before it is logged: a client that waits for the log line and
        // then connects gets the new policy.
        state.replace(Snapshot::from_config(&config, &state.parent_health));
        self.counted(true);
        if let Some(metrics) = &self.metrics {
            metrics.policy_loaded(&self.last.digest);
        }
        let policy = &config.policy;
        info!(
            source = %config.source,
            trigger = trigger.as_str(),
            mode = policy.mode().as_str(),
            allow = policy.allow().len(),
            deny = policy.deny().len(),
            "policy reloaded"
        );
    }

    /// Counts a reload that succeeded or failed, when the proxy keeps metrics.
    fn counted(&self, success: bool) {
        if let Some(metrics) = &self.metrics {
            metrics.reload(success);
        }
    }

    fn reject(&self, error: &str) {
        self.counted(false);
        error!(error = %error, file = %self.path.display(), kept = "the current policy", "policy reload rejected");
    }
}

fn load(path: &Path, text: Vec<u8>) -> Result<egress_config::Config, String> {
    let origin = path.display().to_string();
    String::from_utf8(text)
        .map_err(|_| format!("{origin}: the file is not UTF-8"))
        .and_then(|text| egress_config::load_owned(text, &origin).map_err(|e| e.to_string()))
}

/// File system calls off the runtime's threads (the file may sit on a slow mount).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}
