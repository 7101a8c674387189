//! The approvals' bookkeeping, behind one lock held only briefly (never across an await):
//! pending approvals with their waiting counts, temporary grants (`allow-for`), and each
//! client's recent asks for the rate limit.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use egress_config::{Host, Protocol};
use tokio::sync::watch;

use super::{Answer, AnswerRx, ASKS_PER_MINUTE, MAX_PENDING_PER_CLIENT};

/// What one approval is for: a client address, a host, a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub client: IpAddr,
    pub host: Host,
    pub port: u16,
}

impl Key {
    pub fn of(client: SocketAddr, host: &Host, port: u16) -> Key {
        Key {
            client: client.ip(),
            host: host.clone(),
            port,
        }
    }
}

/// One pending approval.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub key: Key,
    /// The first waiting connection's address.
    pub client: SocketAddr,
    pub identity: String,
    pub protocol: Protocol,
    /// Connections waiting on it.
    pub waiting: usize,
    pub deadline: Instant,
    pub expires_at: SystemTime,
    answer: Arc<watch::Sender<Option<Answer>>>,
}

impl Pending {
    /// Releases every connection waiting on it.
    pub fn release(&self, answer: Answer) {
        self.answer.send_replace(Some(answer));
    }

    /// The API's and the event stream's view (no secret in it).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "client": self.client.ip().to_string(),
            "identity": self.identity,
            "host": self.key.host.to_string(),
            "port": self.key.port,
            "protocol": self.protocol.as_str(),
            "waiting": self.waiting,
            "expires_at": humantime::format_rfc3339_seconds(self.expires_at).to_string(),
        })
    }
}

#[derive(Debug, Default)]
pub struct Book {
    pending: HashMap<Key, Pending>,
    grants: HashMap<Key, Instant>,
    opened: HashMap<IpAddr, VecDeque<Instant>>,
    next_id: u64,
}

impl Book {
    pub fn pending_list(&self) -> Vec<Pending> {
        let mut list: Vec<Pending> = self.pending.values().cloned().collect();
        list.sort_by_key(|p| p.deadline);
        list
    }

    /// Whether an `allow-for` grant covers `key` now (expired grants are dropped).
    pub fn granted(&mut self, key: &Key, now: Instant) -> bool {
        self.grants.retain(|_, until| *until > now);
        self.grants.contains_key(key)
    }

    pub fn grant(&mut self, key: Key, until: Instant) {
        self.grants.insert(key, until);
    }

    /// One more connection waiting on the pending approval for `key`, if there is one.
    pub fn join(&mut self, key: &Key) -> Option<(AnswerRx, Instant)> {
        let pending = self.pending.get_mut(key)?;
        pending.waiting += 1;
        Some((pending.answer.subscribe(), pending.deadline))
    }

    /// Whether `client` may open one more approval now; counts it when it may.
    pub fn admit(&mut self, client: SocketAddr, now: Instant) -> Result<(), String> {
        let ip = client.ip();
        let open = self.pending.keys().filter(|k| k.client == ip).count();
        if open >= MAX_PENDING_PER_CLIENT {
            return Err(format!(
                "{ip} has {open} approvals pending (at most {MAX_PENDING_PER_CLIENT})"
            ));
        }
        let recent = self.opened.entry(ip).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            recent.pop_front();
        }
        if recent.len() >= ASKS_PER_MINUTE {
            return Err(format!(
                "{ip} asked for {ASKS_PER_MINUTE} approvals in the last minute"
            ));
        }
        recent.push_back(now);
        // Forget clients that asked nothing for a minute, so the map stays small.
        self.opened.retain(|_, times| !times.is_empty());
        Ok(())
    }

    /// A new pending approval with one waiting connection.
    pub fn open(
        &mut self,
        key: Key,
        client: SocketAddr,
        identity: &str,
        protocol: Protocol,
        deadline: Instant,
        expires_at: SystemTime,
    ) -> (Pending, AnswerRx, Instant) {
        self.next_id += 1;
        let (sender, receiver) = watch::channel(None);
        let pending = Pending {
            id: format!("a{}", self.next_id),
            key: key.clone(),
            client,
            identity: identity.to_string(),
            protocol,
            waiting: 1,
            deadline,
            expires_at,
            answer: Arc::new(sender),
        };
        self.pending.insert(key, pending.clone());
        (pending, receiver, deadline)
    }

    /// Takes the pending approval `id` out of the book, to answer it.
    pub fn take(&mut self, id: &str) -> Option<Pending> {
        let key = self.pending.values().find(|p| p.id == id)?.key.clone();
        self.pending.remove(&key)
    }

    /// Takes out every pending approval `pick` answers.
    pub fn take_where<T>(&mut self, mut pick: impl FnMut(&Pending) -> Option<T>) -> Vec<T> {
        let mut taken = Vec::new();
        self.pending.retain(|_, p| match pick(p) {
            Some(t) => {
                taken.push(t);
                false
            }
            None => true,
        });
        taken
    }

    /// Takes out the approval for `key` if it is the one that expires at `deadline`.
    pub fn expire(&mut self, key: &Key, deadline: Instant) -> Option<Pending> {
        let same = self
            .pending
            .get(key)
            .is_some_and(|p| p.deadline == deadline);
        same.then(|| self.pending.remove(key)).flatten()
    }

    /// A waiting connection went away unanswered; the last one withdraws the approval.
    pub fn leave(&mut self, key: &Key) -> Option<Pending> {
        let pending = self.pending.get_mut(key)?;
        pending.waiting = pending.waiting.saturating_sub(1);
        if pending.waiting == 0 {
            return self.pending.remove(key);
        }
        None
    }
}
