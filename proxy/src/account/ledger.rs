//! A connection's ledger: the request it is serving — decided, not yet recorded — and the bytes
//! that request has moved so far. It makes "every request is recorded once" hold however the
//! connection ends: the step that ends a request records it, as always; a request still open
//! when its connection's task returns is recorded then; and when shutdown cuts the connection
//! at the end of the grace period, the request is recorded with the bytes moved until then and
//! `cut: true` (a connection cut before any request was decided gets a line of its own).
//!
//! The running connection's ledger is a task-local set where the connection starts
//! (`detect::serve`), so `decide` can open the entry and `record` close it wherever in the flow
//! they are called, without every step in between passing the ledger on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use egress_config::{DenyReason, Host, Protocol, Verdict};
use tracing::warn;

use super::Outcome;
use crate::tunnel::Moved;

tokio::task_local! {
    static LEDGER: Arc<Ledger>;
}

#[derive(Debug)]
pub struct Ledger {
    client: SocketAddr,
    opened: Instant,
    /// Bytes the request in flight has moved (tunnels count as they copy).
    moved: Arc<Moved>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// What the connection speaks, as far as known (the request's protocol once decided).
    protocol: Protocol,
    in_flight: Option<InFlight>,
    /// A request of this connection was recorded already.
    recorded: bool,
}

/// A request the policy let through that has not been recorded yet.
#[derive(Debug)]
struct InFlight {
    protocol: Protocol,
    host: Host,
    port: u16,
    decision: &'static str,
    reason: Option<DenyReason>,
    rule: Option<String>,
    started: Instant,
}

impl Ledger {
    /// A fresh ledger for the connection from `client`, which is thought to speak `protocol`.
    pub fn new(client: SocketAddr, protocol: Protocol) -> Arc<Self> {
        Arc::new(Self {
            client,
            opened: Instant::now(),
            moved: Arc::default(),
            state: Mutex::new(State {
                protocol,
                in_flight: None,
                recorded: false,
            }),
        })
    }

    /// Runs `serve` (the connection) with this ledger as its current one.
    pub async fn scope<F: std::future::Future>(self: &Arc<Self>, serve: F) -> F::Output {
        LEDGER.scope(self.clone(), serve).await
    }

    /// The connection's task returned: a request it left open (its client left before it was
    /// answered, a response broken midway) is recorded now, with the bytes it moved.
    pub fn close(&self) {
        let left = self.lock().in_flight.take();
        if let Some(request) = left {
            self.record(&request, false);
        }
    }

    /// Shutdown cut the connection at the end of the grace period: records the request in
    /// flight, or, when none was ever decided, the connection itself, and counts the cut.
    pub fn cut(&self) {
        let (protocol, in_flight, recorded) = {
            let mut state = self.lock();
            (state.protocol, state.in_flight.take(), state.recorded)
        };
        crate::metrics::connection_cut(protocol);
        match &in_flight {
            Some(request) => {
                warn!(protocol = protocol.as_str(), host = %request.host, port = request.port, "connection cut: the shutdown grace period is over");
                self.record(request, true);
            }
            None => {
                warn!(
                    protocol = protocol.as_str(),
                    "connection cut: the shutdown grace period is over"
                );
                if !recorded {
                    super::audit_cut_connection(self.client, protocol, self.opened.elapsed());
                }
            }
        }
    }

    fn record(&self, request: &InFlight, cut: bool) {
        let moved = self.moved.so_far();
        super::record(&Outcome {
            client: Some(self.client),
            protocol: request.protocol,
            target: Some((&request.host, request.port)),
            decision: request.decision,
            reason: request.reason,
            rule: request.rule.as_deref(),
            upload: moved.client_to_upstream,
            download: moved.upstream_to_client,
            duration: request.started.elapsed(),
            cut,
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The current connection turned out to speak `protocol` (before any request is decided).
pub fn speaks(protocol: Protocol) {
    let _ = LEDGER.try_with(|ledger| ledger.lock().protocol = protocol);
}

/// The policy let this request through: it is in flight until recorded.
pub fn decided(protocol: Protocol, host: &Host, port: u16, verdict: &Verdict<'_>) {
    let _ = LEDGER.try_with(|ledger| {
        ledger.moved.reset();
        let mut state = ledger.lock();
        state.protocol = protocol;
        state.in_flight = Some(InFlight {
            protocol,
            host: host.clone(),
            port,
            decision: verdict.decision(),
            reason: verdict.reason(),
            rule: verdict.rule.map(str::to_string),
            started: Instant::now(),
        });
    });
}

/// The current connection's request was recorded (whichever step recorded it).
pub(super) fn recorded() {
    let _ = LEDGER.try_with(|ledger| {
        let mut state = ledger.lock();
        state.in_flight = None;
        state.recorded = true;
    });
}

/// Where a tunnel of the current connection counts its bytes (a private counter outside a
/// connection, e.g. in tests).
pub fn moved() -> Arc<Moved> {
    LEDGER
        .try_with(|ledger| ledger.moved.clone())
        .unwrap_or_default()
}
