//! Hot reload: on SIGHUP, and when the policy file changes on disk. The file's directory is
//! watched, not the file, so atomic replacement (rename over) and Kubernetes ConfigMaps (a
//! symlink swap) are seen. A file that does not load is rejected and the old policy stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::state::{ProxyState, Snapshot};

/// Editors and ConfigMap updates write in several steps; changes this close together are one.
const SETTLE: Duration = Duration::from_millis(100);

/// Watches the policy file and SIGHUP. Built before the proxy says it is listening, so neither a
/// change nor a SIGHUP that arrives right after start is missed (SIGHUP's default would kill us).
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    listeners: Vec<egress_config::Listener>,
    changes: mpsc::Receiver<()>,
    _watcher: Option<notify::RecommendedWatcher>,
    hangup: Option<tokio::signal::unix::Signal>,
    last_text: Option<Vec<u8>>,
}

impl Reloader {
    /// Starts watching `path`. `listeners` are the addresses the file asked for at start, to warn
    /// when a reload asks for different ones (they need a restart). Call within the runtime.
    pub fn start(path: PathBuf, listeners: Vec<egress_config::Listener>) -> Reloader {
        let (tx, changes) = mpsc::channel::<()>(16);
        let watched_dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.try_send(());
            }
        })
        .and_then(|mut w| {
            w.watch(&watched_dir, RecursiveMode::NonRecursive)
                .map(|()| w)
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, dir = %watched_dir.display(), "cannot watch the policy directory; reload on SIGHUP only");
                None
            }
        };
        let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGHUP");
                None
            }
        };
        let last_text = std::fs::read(&path).ok();
        Reloader {
            path,
            listeners,
            changes,
            _watcher: watcher,
            hangup,
            last_text,
        }
    }

    /// Reloads on every change or SIGHUP until shutdown.
    pub async fn run(mut self, state: Arc<ProxyState>) {
        loop {
            let hangup = async {
                match self.hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            let forced = tokio::select! {
                () = state.shutdown.cancelled() => return,
                Some(()) = self.changes.recv() => false,
                Some(()) = hangup => true,
            };
            if !forced {
                tokio::time::sleep(SETTLE).await;
                while self.changes.try_recv().is_ok() {}
            }
            let text = match tokio::fs::read(&self.path).await {
                Ok(text) => text,
                Err(e) => {
                    // Mid-replacement the file may be briefly absent; the next event retries.
                    warn!(error = %e, file = %self.path.display(), "policy file unreadable; keeping the current policy");
                    continue;
                }
            };
            if !forced && self.last_text.as_deref() == Some(&text[..]) {
                continue; // another file in the directory changed, or a no-op write
            }
            apply(&self.path, &text, &state, &self.listeners);
            self.last_text = Some(text);
        }
    }
}

fn apply(path: &Path, text: &[u8], state: &ProxyState, listeners: &[egress_config::Listener]) {
    let origin = path.display().to_string();
    let loaded = std::str::from_utf8(text)
        .map_err(|_| format!("{origin}: the file is not UTF-8"))
        .and_then(|text| egress_config::load_str(text, &origin).map_err(|e| e.to_string()));
    match loaded {
        Ok(config) => {
            if config.listeners != listeners {
                warn!("listen addresses changed in the file; they take effect after a restart");
            }
            let policy = &config.policy;
            info!(
                source = %origin,
                mode = policy.mode().as_str(),
                allow = policy.allow().len(),
                deny = policy.deny().len(),
                "policy reloaded"
            );
            state.replace(Snapshot::from_config(&config, &state.parent_health));
            crate::metrics::reload(true);
        }
        Err(e) => {
            error!(error = %e, kept = "the current policy", "policy reload rejected");
            crate::metrics::reload(false);
        }
    }
}
