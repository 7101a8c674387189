//! The event stream: every outcome record (and, later, approvals and policy changes) to whoever
//! subscribed — the admin console, the launcher's summary. A bounded broadcast: sending never
//! waits, so a slow subscriber cannot slow a connection; it falls behind, loses the oldest
//! events, and is told how many it missed.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::outcome::Record;

/// How many events a subscriber may fall behind before it starts missing some.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Something that happened in the proxy.
#[derive(Debug, Clone)]
pub enum Event {
    /// A request ended (or a connection was cut before any request of it was decided).
    Outcome(Arc<Record>),
    /// Something a person did or must do: an approval, a policy change, a login.
    Notice(Arc<Notice>),
}

/// An event that is not an outcome: its kind (the stream's event name: `approval`, `policy`,
/// `login`) and its JSON, the same text as its audit line.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: &'static str,
    pub json: String,
}

impl Notice {
    /// `fields` (a JSON object) with `time` and `event` first.
    pub fn new(kind: &'static str, fields: serde_json::Value) -> Notice {
        let mut line = serde_json::Map::new();
        line.insert(
            "time".into(),
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
                .to_string()
                .into(),
        );
        line.insert("event".into(), kind.into());
        if let serde_json::Value::Object(fields) = fields {
            line.extend(fields);
        }
        Notice {
            kind,
            json: serde_json::Value::Object(line).to_string(),
        }
    }
}

/// The sending side, owned by the proxy's [`Observer`](super::Observer).
#[derive(Debug)]
pub struct Events {
    sender: broadcast::Sender<Event>,
}

impl Events {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// Whether anybody listens: without subscribers no event is built at all.
    pub fn wanted(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Hands `event` to every subscriber; never waits.
    pub fn send(&self, event: Event) {
        // An error only says nobody listens, which is fine.
        let _ = self.sender.send(event);
    }

    /// A new subscriber, seeing the events sent from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            receiver: self.sender.subscribe(),
        }
    }
}

/// One subscriber's view of the stream.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<Event>,
}

/// What a subscriber gets next.
#[derive(Debug, Clone)]
pub enum Next {
    Event(Event),
    /// The subscriber fell behind and this many events were dropped for it; the ones after them
    /// follow.
    Missed(u64),
}

impl Subscription {
    /// The next event, waiting for one; `None` once the proxy that sends them is gone.
    pub async fn next(&mut self) -> Option<Next> {
        match self.receiver.recv().await {
            Ok(event) => Some(Next::Event(event)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Next::Missed(missed)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Next> {
        match self.receiver.try_recv() {
            Ok(event) => Some(Next::Event(event)),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => Some(Next::Missed(missed)),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Kind, Record};

    fn record(n: u64) -> Event {
        let mut record = Record::connection(None, egress_config::Protocol::Socks5);
        record.kind = Some(Kind::Denied);
        record.upload = n;
        Event::Outcome(Arc::new(record))
    }

    fn upload(next: Option<Next>) -> u64 {
        match next {
            Some(Next::Event(Event::Outcome(record))) => record.upload,
            other => panic!("expected an outcome, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_how_many_it_missed() {
        let events = Events::new(4);
        let mut slow = events.subscribe();
        let mut keeping_up = events.subscribe();
        for n in 0..10 {
            events.send(record(n));
            // The other subscriber reads each as it comes and misses nothing.
            assert_eq!(upload(keeping_up.next().await), n);
        }
        // Sending never waited for the slow one: it lost the oldest six of ten.
        match slow.next().await {
            Some(Next::Missed(6)) => {}
            other => panic!("expected Missed(6), got {other:?}"),
        }
        for n in 6..10 {
            assert_eq!(upload(slow.next().await), n);
        }
        assert!(slow.try_next().is_none());
    }

    #[tokio::test]
    async fn without_subscribers_nothing_is_wanted_and_the_stream_ends_with_its_sender() {
        let events = Events::new(4);
        assert!(!events.wanted());
        let mut subscriber = events.subscribe();
        assert!(events.wanted());
        drop(events);
        assert!(subscriber.next().await.is_none());
    }
}
