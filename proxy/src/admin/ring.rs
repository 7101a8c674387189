//! The recent events, kept for the event stream's subscribers: a bounded ring with ids that
//! only grow, fed by one subscriber of the proxy's event broadcast. A new stream starts from the
//! ring, a resuming one (`Last-Event-ID`) continues from it, and a stream that fell behind the
//! ring's oldest entry learns how many it missed. Connections only ever send to the broadcast;
//! nothing here can make them wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::observe::{Event, Next, Observer};
use crate::outcome::Record;

/// One entry of the ring.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    pub what: What,
}

#[derive(Debug, Clone)]
pub enum What {
    /// An outcome record and its JSON (the audit line's fields), made once for all streams.
    Outcome { record: Arc<Record>, json: Arc<str> },
    /// An approval, policy or login event: its stream event name and JSON.
    Notice(Arc<crate::observe::Notice>),
    /// The ring's own feed fell behind the broadcast and this many events were lost to all.
    Lost(u64),
}

#[derive(Debug)]
struct Inner {
    entries: VecDeque<Entry>,
    capacity: usize,
    /// The id the next entry gets; ids start at 1, so 0 means "before everything".
    next_id: u64,
}

/// The ring, shared by its feed and every stream.
#[derive(Debug)]
pub struct Ring {
    inner: Mutex<Inner>,
    /// The newest id, for streams waiting for more.
    newest: watch::Sender<u64>,
}

/// What a stream reads from `after`: the entries, and how many it missed before them.
#[derive(Debug, Default)]
pub struct Batch {
    pub missed: u64,
    pub entries: Vec<Entry>,
}

impl Ring {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                entries: VecDeque::with_capacity(capacity.min(4096)),
                capacity: capacity.max(1),
                next_id: 1,
            }),
            newest: watch::Sender::new(0),
        })
    }

    /// Subscribes to `observer` now (so nothing sent after this returns is missed) and feeds the
    /// ring from it until the observer goes away.
    pub fn feed_from(self: &Arc<Self>, observer: &Observer) {
        let mut subscription = observer.subscribe();
        let ring = self.clone();
        tokio::spawn(async move {
            while let Some(next) = subscription.next().await {
                match next {
                    Next::Event(Event::Outcome(record)) => ring.push_outcome(record),
                    Next::Event(Event::Notice(notice)) => ring.push(What::Notice(notice)),
                    Next::Missed(n) => ring.push(What::Lost(n)),
                }
            }
        });
    }

    pub fn push_outcome(&self, record: Arc<Record>) {
        let json = Arc::from(record.audit_line());
        self.push(What::Outcome { record, json });
    }

    fn push(&self, what: What) {
        let id = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let id = inner.next_id;
            inner.next_id += 1;
            if inner.entries.len() == inner.capacity {
                inner.entries.pop_front();
            }
            inner.entries.push_back(Entry { id, what });
            id
        };
        self.newest.send_replace(id);
    }

    /// The newest id so far (0 before the first entry).
    pub fn newest(&self) -> u64 {
        *self.newest.borrow()
    }

    /// A receiver that changes whenever an entry is added.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    /// Up to `limit` entries after id `after`, oldest first, and how many entries after `after`
    /// are no longer in the ring.
    pub fn read_after(&self, after: u64, limit: usize) -> Batch {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = inner.entries.front().map_or(inner.next_id, |e| e.id);
        let missed = oldest.saturating_sub(after.saturating_add(1));
        let skip = after.saturating_add(1).saturating_sub(oldest) as usize;
        Batch {
            missed,
            entries: inner
                .entries
                .iter()
                .skip(skip)
                .take(limit)
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Arc<Record> {
        let mut record = Record::connection(None, egress_config::Protocol::Socks5);
        record.upload = n;
        Arc::new(record)
    }

    fn ids(batch: &Batch) -> Vec<u64> {
        batch.entries.iter().map(|e| e.id).collect()
    }

    #[test]
    fn ids_grow_and_a_reader_continues_where_it_left_off() {
        let ring = Ring::new(4);
        assert_eq!((ring.newest(), ids(&ring.read_after(0, 10))), (0, vec![]));
        for n in 0..3 {
            ring.push_outcome(record(n));
        }
        let batch = ring.read_after(0, 10);
        assert_eq!((batch.missed, ids(&batch)), (0, vec![1, 2, 3]));
        assert_eq!(ids(&ring.read_after(2, 10)), [3]);
        assert_eq!(ids(&ring.read_after(3, 10)), Vec::<u64>::new());
        assert_eq!(ids(&ring.read_after(0, 2)), [1, 2]);
    }

    #[test]
    fn a_reader_behind_the_oldest_entry_is_told_how_many_it_missed() {
        let ring = Ring::new(4);
        for n in 0..10 {
            ring.push_outcome(record(n));
        }
        // Entries 7..=10 are kept; a reader at 2 missed 3..=6.
        let batch = ring.read_after(2, 10);
        assert_eq!((batch.missed, ids(&batch)), (4, vec![7, 8, 9, 10]));
        let batch = ring.read_after(0, 10);
        assert_eq!((batch.missed, ids(&batch)), (6, vec![7, 8, 9, 10]));
        // An id from the future (another run) reads nothing and misses nothing.
        let batch = ring.read_after(99, 10);
        assert_eq!((batch.missed, ids(&batch)), (0, vec![]));
    }

    #[tokio::test]
    async fn the_feed_takes_every_outcome_the_observer_records() {
        let ring = Ring::new(16);
        let observer = Observer::default();
        ring.feed_from(&observer);
        let mut newest = ring.watch();
        let mut record = Record::connection(None, egress_config::Protocol::HttpConnect);
        record.kind = Some(crate::outcome::Kind::Denied);
        observer.record(record);
        newest.wait_for(|id| *id == 1).await.unwrap();
        let batch = ring.read_after(0, 10);
        match &batch.entries[0].what {
            What::Outcome { json, .. } => assert!(json.contains("\"decision\":\"deny\""), "{json}"),
            other => panic!("{other:?}"),
        }
    }
}
