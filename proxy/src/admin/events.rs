//! `GET /api/v1/events`: the outcome records as Server-Sent Events, read from the ring. A new
//! stream starts with the ring's recent events; `Last-Event-ID` resumes after that id; a stream
//! that fell behind the ring gets a `missed` event saying how many events it lost. Filters are
//! applied here, on the server: `decision`, `host` (substring), `client`, `identity`, `protocol`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Extension;
use egress_config::admin::Role;
use egress_config::Protocol;
use futures_util::stream;

use super::access::Principal;
use super::error::ApiError;
use super::ring::{Entry, Ring, What};
use super::Console;
use crate::outcome::{Kind, Record};

/// Entries read from the ring at once, so one stream holds its lock only briefly.
const BATCH: usize = 256;
/// A comment this often keeps idle streams (and proxies between) from timing out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The server-side filters of a stream; each one set must match.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `decision=deny,fail`: any of these decisions.
    decisions: Option<Vec<Kind>>,
    /// `host=npmjs`: the host contains this text (case-insensitive).
    host: Option<String>,
    /// `client=127.0.0.1`: the client's IP (or `IP:PORT`, exactly).
    client: Option<String>,
    /// `identity=alice`: exactly this identity.
    identity: Option<String>,
    /// `protocol=socks5,http-connect`: any of these protocols.
    protocols: Option<Vec<Protocol>>,
    /// `recent=N`: a new stream starts with at most N of the ring's events (before filtering).
    recent: Option<u64>,
}

fn bad_filter(message: String) -> ApiError {
    ApiError::BadRequest {
        code: "bad-filter",
        message,
    }
}

impl Filter {
    /// The filter a query string asks for; unknown parameters and values are errors, so a typo
    /// never silently shows everything.
    pub fn parse(query: &str) -> Result<Filter, ApiError> {
        let mut filter = Filter::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim().to_string();
            match key.as_ref() {
                "decision" => filter.decisions = Some(list(&value, kind_named, "decision")?),
                "protocol" => filter.protocols = Some(list(&value, protocol_named, "protocol")?),
                "host" => filter.host = Some(value.to_ascii_lowercase()),
                "client" => filter.client = Some(value),
                "identity" => filter.identity = Some(value),
                "recent" => {
                    filter.recent = Some(value.parse().map_err(|_| {
                        bad_filter(format!("recent={value:?} is not a whole number"))
                    })?)
                }
                other => {
                    return Err(bad_filter(format!(
                        "unknown filter {other:?}; filters: decision, host, client, identity, protocol, recent"
                    )))
                }
            }
        }
        Ok(filter)
    }

    pub fn matches(&self, record: &Record) -> bool {
        if let Some(decisions) = &self.decisions {
            if !record.kind.is_some_and(|k| decisions.contains(&k)) {
                return false;
            }
        }
        if let Some(protocols) = &self.protocols {
            if !protocols.contains(&record.protocol) {
                return false;
            }
        }
        if let Some(host) = &self.host {
            let target = record.target.as_ref().map(|(h, _)| h.to_string());
            if !target.is_some_and(|t| t.to_ascii_lowercase().contains(host.as_str())) {
                return false;
            }
        }
        if let Some(client) = &self.client {
            let matches = record.client.is_some_and(|c| {
                client
                    .parse::<IpAddr>()
                    .map_or_else(|_| c.to_string() == *client, |ip| c.ip() == ip)
            });
            if !matches {
                return false;
            }
        }
        if let Some(identity) = &self.identity {
            if record.identity.as_deref() != Some(identity.as_str()) {
                return false;
            }
        }
        true
    }
}

fn list<T>(value: &str, named: fn(&str) -> Option<T>, what: &str) -> Result<Vec<T>, ApiError> {
    value
        .split(',')
        .map(|v| named(v.trim()).ok_or_else(|| bad_filter(format!("unknown {what} {v:?}"))))
        .collect()
}

fn kind_named(name: &str) -> Option<Kind> {
    [Kind::Allowed, Kind::Reported, Kind::Denied, Kind::Failed]
        .into_iter()
        .find(|k| k.label() == name)
}

fn protocol_named(name: &str) -> Option<Protocol> {
    Protocol::ALL.into_iter().find(|p| p.as_str() == name)
}

/// Where a stream starts reading: after `Last-Event-ID`, or a new stream's first recent event.
/// An id beyond the newest (from an earlier run of the proxy) starts over, saying so.
fn start(ring: &Ring, headers: &HeaderMap, recent: Option<u64>) -> Result<(u64, bool), ApiError> {
    let newest = ring.newest();
    let last = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::BadRequest {
                    code: "bad-last-event-id",
                    message: "Last-Event-ID must be an event id (a whole number)".into(),
                })
        })
        .transpose()?;
    match last {
        Some(id) if id <= newest => Ok((id, false)),
        other => {
            let from_ring = recent.map_or(0, |n| newest.saturating_sub(n));
            // A stream resumed beyond the newest id cannot say what it missed: it starts over.
            Ok((from_ring, other.is_some()))
        }
    }
}

/// A stream's state between events.
struct Reader {
    ring: Arc<Ring>,
    newest: tokio::sync::watch::Receiver<u64>,
    after: u64,
    filter: Filter,
    ready: VecDeque<SseEvent>,
    /// A fresh (not resumed) stream does not count the events before its start as missed.
    fresh: bool,
    /// An approver's or admin's stream: somebody is there to answer asks while it is open.
    _attending: Option<crate::ask::Attending>,
}

impl Reader {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let batch = self.ring.read_after(self.after, BATCH);
            if batch.missed > 0 && !self.fresh {
                self.ready.push_back(missed(batch.missed));
            }
            self.fresh = false;
            if let Some(last) = batch.entries.last() {
                self.after = last.id;
            }
            for entry in batch.entries {
                if let Some(event) = self.event(entry) {
                    self.ready.push_back(event);
                }
            }
            if self.ready.is_empty() {
                // Wakes when anything newer than what this stream has read arrives.
                let after = self.after;
                self.newest.wait_for(|newest| *newest > after).await.ok()?;
            }
        }
    }

    fn event(&self, entry: Entry) -> Option<SseEvent> {
        match entry.what {
            What::Outcome { record, json } => self.filter.matches(&record).then(|| {
                SseEvent::default()
                    .id(entry.id.to_string())
                    .event("outcome")
                    .data(&*json)
            }),
            What::Notice(notice) => Some(
                SseEvent::default()
                    .id(entry.id.to_string())
                    .event(notice.kind)
                    .data(&notice.json),
            ),
            What::Lost(n) => Some(missed(n)),
        }
    }
}

fn missed(n: u64) -> SseEvent {
    SseEvent::default()
        .event("missed")
        .data(format!("{{\"missed\":{n}}}"))
}

pub async fn stream_events(
    State(console): State<Arc<Console>>,
    Extension(who): Extension<Principal>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let filter = Filter::parse(query.as_deref().unwrap_or(""))?;
    let ring = console.ring.clone();
    let (after, restarted) = start(&ring, &headers, filter.recent)?;
    // A first comment at once: the answer's head goes out now, not with the first event, so a
    // client knows it is subscribed even while nothing happens.
    let mut ready = VecDeque::from([SseEvent::default().comment("subscribed")]);
    if restarted {
        ready.push_back(
            SseEvent::default()
                .event("reset")
                .data("{\"reason\":\"unknown Last-Event-ID; starting from the recent events\"}"),
        );
    }
    let reader = Reader {
        newest: ring.watch(),
        ring,
        after,
        // A fresh stream reads from the ring's oldest entry on: nothing before it is "missed".
        fresh: headers.get("last-event-id").is_none() || restarted,
        filter,
        ready,
        _attending: (who.role >= Role::Approver).then(|| console.asks.attend()),
    };
    let events = stream::unfold(reader, |mut reader| async move {
        let event = reader.next().await?;
        Some((Ok::<_, Infallible>(event), reader))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_config::Host;

    fn record(kind: Kind, host: &str, client: &str, protocol: Protocol) -> Record {
        let mut record = Record::connection(Some(client.parse().unwrap()), protocol);
        record.kind = Some(kind);
        record.target = Some((Host::parse(host).unwrap(), 443));
        record
    }

    #[test]
    fn each_filter_narrows_and_all_must_match() {
        let denied = record(
            Kind::Denied,
            "registry.npmjs.org",
            "127.0.0.1:5000",
            Protocol::HttpConnect,
        );
        let allowed = record(
            Kind::Allowed,
            "example.com",
            "127.0.0.2:6000",
            Protocol::Socks5,
        );
        let cases = [
            ("", true, true),
            ("decision=deny", true, false),
            ("decision=allow,deny", true, true),
            ("host=NPMJS", true, false),
            ("host=example", false, true),
            ("client=127.0.0.1", true, false),
            ("client=127.0.0.2:6000", false, true),
            ("protocol=socks5", false, true),
            ("decision=deny&protocol=socks5", false, false),
            ("identity=alice", false, false),
        ];
        for (query, d, a) in cases {
            let filter = Filter::parse(query).unwrap();
            assert_eq!(
                (filter.matches(&denied), filter.matches(&allowed)),
                (d, a),
                "{query}"
            );
        }
        let mut alice = denied.clone();
        alice.identity = Some("alice".into());
        assert!(Filter::parse("identity=alice").unwrap().matches(&alice));
    }

    #[test]
    fn unknown_filters_and_values_are_refused_by_name() {
        for (query, says) in [
            ("decison=deny", "unknown filter \"decison\""),
            ("decision=denied", "unknown decision \"denied\""),
            ("protocol=ftp", "unknown protocol \"ftp\""),
            ("recent=many", "not a whole number"),
        ] {
            let e = Filter::parse(query).unwrap_err();
            assert_eq!(e.code(), "bad-filter");
            assert!(e.message().contains(says), "{query}: {}", e.message());
        }
    }
}
