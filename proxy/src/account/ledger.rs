//! A connection's ledger: the request it is serving — decided, not yet recorded — the bytes
//! that request has moved so far, and the proxy's `Observer` its records go to. It makes
//! "every request is recorded once" hold however the connection ends: the step that ends a
//! request says so (`account::refused`, `account::served`); a request still open when its
//! connection's task returns is recorded then; and when shutdown cuts the connection at the end
//! of the grace period, the request is recorded with the bytes moved until then and `cut:
//! true` (a connection cut before any request was decided gets a record of its own). Every
//! `Record` is built here, in `Ledger::end`, and nowhere else.
//!
//! The running connection's ledger is a task-local set where the connection starts
//! (`detect::serve`, or the refuser answering an over-cap client), so `decide` can open the
//! entry and the ending step close it wherever in the flow they are, without every step in
//! between passing the ledger on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use egress_config::{DenyReason, Host, Protocol, Verdict};
use tracing::warn;

use super::{Ending, Kind, Record};
use crate::metrics::ActiveGuard;
use crate::observe::Observer;
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
    observer: Arc<Observer>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// What the connection speaks, as far as known (the request's protocol once decided).
    protocol: Protocol,
    in_flight: Option<InFlight>,
    /// A request of this connection was recorded already.
    recorded: bool,
    /// Who the client is, once `identify` knew (a configured name or `anonymous`).
    identity: Option<Arc<str>>,
    /// What the connection counts as in `egress_active_connections`. Held by the ledger, whose
    /// owner lets it go only after the connection's caps are given back: a gauge at 0 means
    /// the room is free again.
    active: Option<ActiveGuard>,
}

/// A request the policy let through that has not been recorded yet.
#[derive(Debug)]
struct InFlight {
    protocol: Protocol,
    host: Host,
    port: u16,
    kind: Kind,
    reason: Option<DenyReason>,
    rule: Option<String>,
    started: Instant,
}

impl Ledger {
    /// A fresh ledger for the connection from `client`, which is thought to speak `protocol`;
    /// its records go to `observer`.
    pub fn new(client: SocketAddr, protocol: Protocol, observer: Arc<Observer>) -> Arc<Self> {
        Arc::new(Self {
            client,
            opened: Instant::now(),
            moved: Arc::default(),
            observer,
            state: Mutex::new(State {
                protocol,
                in_flight: None,
                recorded: false,
                identity: None,
                active: None,
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
            self.end_in_flight(&request, false);
        }
    }

    /// Shutdown cut the connection at the end of the grace period: records the request in
    /// flight, or, when none was ever decided, the connection itself, and counts the cut.
    pub fn cut(&self) {
        let (protocol, in_flight, recorded) = {
            let mut state = self.lock();
            (state.protocol, state.in_flight.take(), state.recorded)
        };
        if let Some(metrics) = self.observer.metrics() {
            metrics.connection_cut(protocol);
        }
        match &in_flight {
            Some(request) => {
                warn!(protocol = protocol.as_str(), host = %request.host, port = request.port, "connection cut: the shutdown grace period is over");
                self.end_in_flight(request, true);
            }
            None => {
                warn!(
                    protocol = protocol.as_str(),
                    "connection cut: the shutdown grace period is over"
                );
                if !recorded {
                    // No decision, no target: only the audit log and subscribers hear of it
                    // (the decision metrics count decisions, and there was none).
                    let mut record = Record::connection(Some(self.client), protocol);
                    record.identity = self.lock().identity.as_deref().map(str::to_string);
                    record.duration = self.opened.elapsed();
                    record.cut = true;
                    self.observer.record(record);
                }
            }
        }
    }

    fn end_in_flight(&self, request: &InFlight, cut: bool) {
        let moved = self.moved.so_far();
        self.end(
            Ending {
                protocol: request.protocol,
                target: Some((&request.host, request.port)),
                kind: request.kind,
                reason: request.reason,
                rule: request.rule.as_deref(),
                bytes: (moved.client_to_upstream, moved.upstream_to_client),
                duration: request.started.elapsed(),
            },
            cut,
        );
    }

    /// The request ended as `ending` says: the one place an outcome record is made.
    fn end(&self, ending: Ending<'_>, cut: bool) {
        let identity = {
            let mut state = self.lock();
            state.in_flight = None;
            state.recorded = true;
            state.identity.clone()
        };
        self.observer.record(Record {
            time: SystemTime::now(),
            client: Some(self.client),
            identity: identity.map(|i| i.to_string()),
            protocol: ending.protocol,
            target: ending.target.map(|(host, port)| (host.clone(), port)),
            kind: Some(ending.kind),
            reason: ending.reason,
            rule: ending.rule.map(str::to_string),
            upload: ending.bytes.0,
            download: ending.bytes.1,
            duration: ending.duration,
            cut,
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The current connection's request ended as `ending` says (no-op outside a connection).
pub(super) fn end(ending: Ending<'_>) {
    let _ = LEDGER.try_with(|ledger| ledger.end(ending, false));
}

/// The metrics of the proxy serving the current connection, if it keeps any.
pub(super) fn metrics() -> Option<Arc<crate::metrics::Metrics>> {
    LEDGER
        .try_with(|ledger| ledger.observer.metrics().cloned())
        .ok()
        .flatten()
}

/// The current connection is open as a `protocol` one: counted as such in the active
/// connections (once, whatever it was counted as before).
pub fn open_as(protocol: Protocol) {
    let _ = LEDGER.try_with(|ledger| {
        let Some(metrics) = ledger.observer.metrics() else {
            return;
        };
        let mut state = ledger.lock();
        if state.active.as_ref().map(ActiveGuard::protocol) != Some(protocol.as_str()) {
            state.active = Some(metrics.connection(protocol));
        }
    });
}

/// The current connection's client is `identity` (from its latest request on: a keep-alive
/// connection may log in again). Its span says so too.
pub fn identified(identity: &Arc<str>) {
    tracing::Span::current().record("identity", &**identity);
    let _ = LEDGER.try_with(|ledger| ledger.lock().identity = Some(identity.clone()));
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
            kind: Kind::of_verdict(verdict),
            reason: verdict.reason(),
            rule: verdict.rule.map(str::to_string),
            started: Instant::now(),
        });
    });
}

/// Where a tunnel of the current connection counts its bytes (a private counter outside a
/// connection, e.g. in tests).
pub fn moved() -> Arc<Moved> {
    LEDGER
        .try_with(|ledger| ledger.moved.clone())
        .unwrap_or_default()
}
