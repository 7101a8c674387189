//! `GET /api/v1/stats`: totals, the most blocked registrable domains and the busiest clients
//! over the last 5 minutes, hour and day, and a per-minute series of the last hour for
//! sparklines. Fed by its own subscription to the event stream; memory is bounded: 60 minute
//! buckets and 24 hour buckets, each counting at most `NAMES` distinct domains and clients (the
//! rest go to `other`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::Json;

use super::Console;
use crate::metrics::registrable_domain;
use crate::observe::{Event, Next, Observer};
use crate::outcome::{Kind, Record};

/// Distinct names one bucket counts.
const NAMES: usize = 256;
/// Entries of each top list.
const TOP: usize = 10;
const KINDS: [Kind; 4] = [Kind::Allowed, Kind::Reported, Kind::Denied, Kind::Failed];

#[derive(Debug, Default, Clone)]
struct Bucket {
    /// The bucket's start, in minutes or hours since the epoch.
    at: u64,
    totals: [u64; 4],
    blocked: HashMap<String, u64>,
    clients: HashMap<IpAddr, u64>,
    other_blocked: u64,
    other_clients: u64,
}

impl Bucket {
    fn count(&mut self, kind: Kind, domain: Option<&str>, client: Option<IpAddr>) {
        self.totals[KINDS.iter().position(|k| *k == kind).unwrap_or(0)] += 1;
        if let Some(domain) = domain {
            let room = self.blocked.len() < NAMES;
            match self.blocked.get_mut(domain) {
                Some(n) => *n += 1,
                None if room => {
                    self.blocked.insert(domain.to_string(), 1);
                }
                None => self.other_blocked += 1,
            }
        }
        if let Some(ip) = client {
            let room = self.clients.len() < NAMES;
            match self.clients.get_mut(&ip) {
                Some(n) => *n += 1,
                None if room => {
                    self.clients.insert(ip, 1);
                }
                None => self.other_clients += 1,
            }
        }
    }
}

/// A ring of buckets of `width` seconds.
#[derive(Debug)]
struct Buckets {
    width: u64,
    slots: Vec<Bucket>,
}

impl Buckets {
    fn new(width: u64, count: usize) -> Self {
        Self {
            width,
            slots: vec![Bucket::default(); count],
        }
    }

    fn slot(&mut self, now: u64) -> &mut Bucket {
        let at = now / self.width;
        let len = self.slots.len() as u64;
        let slot = &mut self.slots[(at % len) as usize];
        if slot.at != at {
            *slot = Bucket {
                at,
                ..Bucket::default()
            };
        }
        slot
    }

    /// The buckets of the last `n` widths up to `now`.
    fn last(&self, now: u64, n: u64) -> impl Iterator<Item = &Bucket> {
        let at = now / self.width;
        self.slots
            .iter()
            .filter(move |b| b.at + n > at && b.at <= at && b.at != 0)
    }
}

#[derive(Debug)]
pub struct Stats {
    inner: Mutex<(Buckets, Buckets)>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

impl Stats {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new((Buckets::new(60, 60), Buckets::new(3600, 24))),
        })
    }

    /// Counts every outcome `observer` records from now on.
    pub fn feed_from(self: &Arc<Self>, observer: &Observer) {
        let mut subscription = observer.subscribe();
        let stats = self.clone();
        tokio::spawn(async move {
            while let Some(next) = subscription.next().await {
                if let Next::Event(Event::Outcome(record)) = next {
                    stats.count(&record, now_secs());
                }
            }
        });
    }

    pub fn count(&self, record: &Record, now: u64) {
        let Some(kind) = record.kind else { return };
        let domain = match (kind, &record.target) {
            (Kind::Denied, Some((host, _))) => Some(registrable_domain(host)),
            _ => None,
        };
        let client = record.client.map(|c| c.ip());
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0.slot(now).count(kind, domain.as_deref(), client);
        inner.1.slot(now).count(kind, domain.as_deref(), client);
    }

    pub fn report(&self, now: u64) -> serde_json::Value {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let window = |buckets: Vec<&Bucket>| {
            let mut totals = [0u64; 4];
            let mut blocked: HashMap<&str, u64> = HashMap::new();
            let mut clients: HashMap<IpAddr, u64> = HashMap::new();
            let mut other = (0, 0);
            for b in buckets {
                for (t, n) in totals.iter_mut().zip(b.totals) {
                    *t += n;
                }
                for (d, n) in &b.blocked {
                    *blocked.entry(d).or_default() += n;
                }
                for (c, n) in &b.clients {
                    *clients.entry(*c).or_default() += n;
                }
                other.0 += b.other_blocked;
                other.1 += b.other_clients;
            }
            let mut blocked: Vec<_> = blocked.into_iter().collect();
            blocked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let mut clients: Vec<_> = clients.into_iter().collect();
            clients.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            serde_json::json!({
                "totals": totals_json(totals),
                "top_blocked": blocked.iter().take(TOP)
                    .map(|(d, n)| serde_json::json!({"domain": d, "count": n}))
                    .collect::<Vec<_>>(),
                "top_clients": clients.iter().take(TOP)
                    .map(|(c, n)| serde_json::json!({"client": c.to_string(), "count": n}))
                    .collect::<Vec<_>>(),
                "other_blocked": other.0,
                "other_clients": other.1,
            })
        };
        let minutes = &inner.0;
        let hours = &inner.1;
        let at = now / 60;
        let series: Vec<_> = (0..60u64)
            .rev()
            .map(|back| {
                let minute = at.saturating_sub(back);
                let totals = minutes
                    .slots
                    .iter()
                    .find(|b| b.at == minute)
                    .map_or([0; 4], |b| b.totals);
                serde_json::json!({"minute": minute * 60, "allow": totals[0] + totals[1], "deny": totals[2], "fail": totals[3]})
            })
            .collect();
        serde_json::json!({
            "5m": window(minutes.last(now, 5).collect()),
            "1h": window(minutes.last(now, 60).collect()),
            "24h": window(hours.last(now, 24).collect()),
            "series": series,
        })
    }
}

fn totals_json(t: [u64; 4]) -> serde_json::Value {
    serde_json::json!({"allow": t[0], "report": t[1], "deny": t[2], "fail": t[3], "all": t.iter().sum::<u64>()})
}

pub async fn stats(State(console): State<Arc<Console>>) -> Json<serde_json::Value> {
    Json(console.stats.report(now_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_config::{Host, Protocol};

    fn record(kind: Kind, host: &str, client: &str) -> Record {
        let mut r = Record::connection(Some(client.parse().unwrap()), Protocol::HttpConnect);
        r.kind = Some(kind);
        r.target = Some((Host::parse(host).unwrap(), 443));
        r
    }

    #[test]
    fn windows_count_their_own_time_and_rank_the_blocked_domains() {
        let stats = Stats::new();
        let now = 1_800_000_000u64;
        stats.count(
            &record(Kind::Denied, "a.npmjs.org", "10.0.0.1:1"),
            now - 2 * 3600,
        );
        stats.count(
            &record(Kind::Denied, "b.npmjs.org", "10.0.0.1:2"),
            now - 30 * 60,
        );
        stats.count(&record(Kind::Denied, "x.pypi.org", "10.0.0.2:1"), now - 60);
        stats.count(
            &record(Kind::Denied, "registry.npmjs.org", "10.0.0.2:2"),
            now,
        );
        stats.count(&record(Kind::Allowed, "github.com", "10.0.0.3:1"), now);
        let r = stats.report(now);
        assert_eq!(r["5m"]["totals"]["deny"], 2, "{r}");
        assert_eq!(r["5m"]["totals"]["all"], 3);
        assert_eq!(r["1h"]["totals"]["deny"], 3);
        assert_eq!(r["24h"]["totals"]["deny"], 4);
        assert_eq!(r["24h"]["top_blocked"][0]["domain"], "npmjs.org");
        assert_eq!(r["24h"]["top_blocked"][0]["count"], 3);
        assert_eq!(r["5m"]["top_clients"][0]["client"], "10.0.0.2");
        assert_eq!(r["series"].as_array().unwrap().len(), 60);
        assert_eq!(r["series"][59]["deny"], 1);
    }

    #[test]
    fn a_bucket_counts_at_most_names_distinct_domains() {
        let stats = Stats::new();
        let now = 1_800_000_000u64;
        for i in 0..NAMES + 50 {
            stats.count(
                &record(Kind::Denied, &format!("h{i}.example{i}.com"), "10.0.0.1:1"),
                now,
            );
        }
        let r = stats.report(now);
        assert_eq!(r["5m"]["other_blocked"], 50, "{r}");
        assert_eq!(r["5m"]["totals"]["deny"], (NAMES + 50) as u64);
    }
}
