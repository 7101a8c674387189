//! Running the accept loops, and stopping: stop accepting, let open connections drain for the
//! grace period, then return.

use std::future::Future;
use std::sync::Arc;

use tracing::{info, warn};

use crate::state::{BoundListener, ProxyState};
use crate::{listener, parent};

/// Serves `listeners` until `shutdown` completes, then drains for `timeouts.shutdown_grace`.
/// Returns whether every connection finished within the grace period.
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
            state.clone(),
        )));
    }
    // Ends by itself when shutdown begins.
    tokio::spawn(parent::health::probe_loop(state.clone()));
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
                "grace period over; closing the rest"
            );
            false
        }
    }
}
