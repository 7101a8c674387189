//! Which file-system events mean the policy file's content may have changed. The directory is
//! watched (so a rename over the file and a ConfigMap's `..data` symlink swap are seen), and only
//! events on the names the file is reached through count: opens, reads and closes after reading
//! (the reloader's own reads among them) and metadata changes are dropped where they arrive, so a
//! read never causes another read and an idle proxy never looks at the file.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Symlinks followed from the file's name to find the names in its directory that lead to it.
const MAX_HOPS: usize = 8;

/// What an event says about the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Bytes were written in place; more may follow until the writer closes the file.
    Writing,
    /// A writer closed the file.
    Closed,
    /// The name was created, renamed or removed: it may now lead to another file.
    Replaced,
    /// Events may have been lost: nothing known about writers holds any more.
    Rescan,
}

/// One event that matters, on one of the names that lead to the file (none for `Rescan`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub change: Change,
    pub name: Option<OsString>,
}

/// The directory watch; dropping it stops the events.
#[derive(Debug)]
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    names: Arc<ArcSwap<HashSet<OsString>>>,
    /// Set when a note could not be queued: the reloader then treats it as a rescan.
    lost: Arc<AtomicBool>,
}

impl Watch {
    /// Watches `path`'s directory; notes arrive on the returned channel.
    pub fn start(path: &Path) -> notify::Result<(Watch, mpsc::Receiver<Note>)> {
        let (tx, rx) = mpsc::channel(64);
        let names = Arc::new(ArcSwap::from_pointee(names(path)));
        let lost = Arc::new(AtomicBool::new(false));
        let (seen, dropped) = (names.clone(), lost.clone());
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let notes = match event {
                Ok(event) => notes_for(&event, &seen.load()),
                Err(_) => vec![Note {
                    change: Change::Rescan,
                    name: None,
                }],
            };
            for note in notes {
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(note) {
                    dropped.store(true, Ordering::Release);
                }
            }
        })?;
        watcher.watch(&watched_dir(path), RecursiveMode::NonRecursive)?;
        Ok((
            Watch {
                _watcher: watcher,
                names,
                lost,
            },
            rx,
        ))
    }

    /// Looks again at which names lead to the file (a symlink may have been swapped).
    pub fn refresh(&self, path: &Path) {
        self.names.store(Arc::new(names(path)));
    }

    /// Whether a note was dropped since the last call.
    pub fn take_lost(&self) -> bool {
        self.lost.swap(false, Ordering::AcqRel)
    }
}

/// The directory watched for `path`.
pub fn watched_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// What an event means, or `None` when it cannot have changed the file's content.
pub fn classify(event: &Event) -> Option<Change> {
    if event.need_rescan() {
        return Some(Change::Rescan);
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Change::Closed),
        // Opens, reads, closes after reading: the reloader's own reads are among them.
        EventKind::Access(_) => None,
        // Permissions, owner, timestamps, link count.
        EventKind::Modify(ModifyKind::Metadata(_)) => None,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Create(_) | EventKind::Remove(_) => {
            Some(Change::Replaced)
        }
        EventKind::Modify(_) => Some(Change::Writing),
        // A backend's event of no known kind: look again, without forgetting the writers.
        EventKind::Any | EventKind::Other => Some(Change::Replaced),
    }
}

/// The notes an event gives, given the names that lead to the file.
pub fn notes_for(event: &Event, names: &HashSet<OsString>) -> Vec<Note> {
    match classify(event) {
        None => Vec::new(),
        Some(Change::Rescan) => vec![Note {
            change: Change::Rescan,
            name: None,
        }],
        Some(change) => event
            .paths
            .iter()
            .filter_map(|p| p.file_name())
            .filter(|name| names.contains(*name))
            .map(|name| Note {
                change,
                name: Some(name.to_owned()),
            })
            .collect(),
    }
}

/// The names in the watched directory that lead to the file: its own, and those its symlinks
/// pass through (`..data` for a Kubernetes ConfigMap, whose `policy.yaml -> ..data/policy.yaml`).
pub fn names(path: &Path) -> HashSet<OsString> {
    let dir = watched_dir(path);
    let canonical_dir = std::fs::canonicalize(&dir).ok();
    let mut names = HashSet::new();
    let Some(name) = path.file_name() else {
        return names;
    };
    names.insert(name.to_owned());
    let mut link = dir.join(name);
    for _ in 0..MAX_HOPS {
        let Ok(target) = std::fs::read_link(&link) else {
            break;
        };
        // An absolute target replaces the base in `join`.
        let resolved = link.parent().unwrap_or(&dir).join(target);
        let within = resolved
            .strip_prefix(&dir)
            .ok()
            .or_else(|| resolved.strip_prefix(canonical_dir.as_ref()?).ok());
        if let Some(Component::Normal(first)) = within.and_then(|r| r.components().next()) {
            names.insert(first.to_owned());
        }
        link = resolved;
    }
    names
}

#[cfg(test)]
mod tests;
