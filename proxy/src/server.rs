//! Running the accept loops, and stopping: stop accepting, let open connections drain for the
//! grace period, then cut the ones still open (each is recorded as cut) and return.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::state::{BoundListener, ProxyState};
use crate::{listener, parent};

/// How long cut connections get to record their lines and end; they do so at once, this only
/// bounds the wait.
const CUT_WAIT: Duration = Duration::from_secs(1);

/// Serves `listeners` until `shutdown` completes, then drains for `timeouts.shutdown_grace`.
/// Returns whether every connection finished within the grace period (`false`: some were cut).
/// (Answers to over-cap clients still under way then are left to finish: they are not cut.)
pub async fn run(
    listeners: Vec<BoundListener>,
    state: Arc<ProxyState>,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let mut accepting = Vec::with_capacity(listeners.len());
    for bound in listeners {
        accepting.push(tokio::spawn(listener::accept_loop(
            bound.listener,
            bound.protocols,
            bound.proxy_protocol,
            bound.identity,
            state.clone(),
        )));
    }
    // Ends by itself when shutdown begins.
    let current = state.clone();
    tokio::spawn(parent::health::probe_loop(
        state.shutdown.clone(),
        move || current.snapshot(),
    ));
    tokio::select! {
        () = shutdown => {}
        () = state.shutdown.cancelled() => {}
    }
    state.shutdown.cancel();
    for task in accepting {
        let _ = task.await;
    }
    state.tracker.close();
    let grace = state.snapshot().timeouts.shutdown_grace;
    let open = state.tracker.len();
    info!(
        open_connections = open,
        grace_ms = grace.as_millis() as u64,
        "stopped accepting; draining"
    );
    match tokio::time::timeout(grace, state.tracker.wait()).await {
        Ok(()) => {
            info!("drained");
            true
        }
        Err(_) => {
            warn!(
                open_connections = state.tracker.len(),
                "grace period over; cutting the connections still open"
            );
            state.cut.cancel();
            if tokio::time::timeout(CUT_WAIT, state.tracker.wait())
                .await
                .is_err()
            {
                warn!(
                    open_connections = state.tracker.len(),
                    "connections still open after the cut"
                );
            }
            let cut = state.cut_count.load(Ordering::Relaxed);
            warn!(
                connections = cut,
                "the grace period ended with connections cut"
            );
            cut == 0
        }
    }
}

#[cfg(test)]
mod tests;
