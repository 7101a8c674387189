//! What was blocked while the command ran, and what could not be reached, told once at exit:
//! host, port, reason, count. A denial and a failure are told apart: "blocked" is the policy's
//! doing, "could not reach" the network's or the parent proxy's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use egress_proxy::observe::{Event, Next, Observer, Subscription};
use egress_proxy::outcome::{Kind, Record};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Host, port and reason of a denial or failure (with a parent's own reason, when it gave one).
type Key = (String, u16, String);

#[derive(Debug, Default, Clone)]
pub struct Blocked {
    seen: Arc<Mutex<Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    denied: BTreeMap<Key, u64>,
    failed: BTreeMap<Key, u64>,
    /// Names the sandbox's DNS stub answered `NXDOMAIN` (see `capture::dns`), with the reason.
    dns: BTreeMap<(String, &'static str), u64>,
    /// Events the summary fell too far behind to see.
    missed: u64,
}

/// The summary reading the proxy's event stream, until `finish`.
#[derive(Debug)]
pub struct Following {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Following {
    /// Counts what was sent before this call and stops reading.
    pub fn finish(self, runtime: &Runtime) {
        let _ = self.stop.send(());
        let _ = runtime.block_on(self.task);
    }
}

impl Blocked {
    /// Subscribes to `observer`'s event stream and counts, in a task on `runtime`, the
    /// denials and failures it sends until `Following::finish`.
    pub fn follow(&self, observer: &Observer, runtime: &Handle) -> Following {
        let mut events = observer.subscribe();
        let (stop, mut stopped) = oneshot::channel();
        let counting = self.clone();
        let task = runtime.spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    next = events.next() => match next {
                        Some(next) => counting.take(next),
                        None => return,
                    },
                    _ = &mut stopped => return counting.drain(&mut events),
                }
            }
        });
        Following { stop, task }
    }

    /// Takes what is waiting in `events` without waiting for more.
    fn drain(&self, events: &mut Subscription) {
        while let Some(next) = events.try_next() {
            self.take(next);
        }
    }

    fn take(&self, next: Next) {
        match next {
            Next::Event(Event::Outcome(record)) => self.count(&record),
            Next::Event(Event::Notice(_)) => {}
            Next::Missed(n) => self.lock().missed += n,
        }
    }

    /// Counts `record` when it is a denial or a failure.
    pub fn count(&self, record: &Record) {
        let Some(kind @ (Kind::Denied | Kind::Failed)) = record.kind else {
            return;
        };
        let (host, port) = record
            .target
            .as_ref()
            .map_or(("?".to_string(), 0), |(h, p)| (h.to_string(), *p));
        let reason = record.reason.map_or("denied", |r| r.as_str());
        // A shared egress says whose rule refused (`parent NAME: not-allowlisted for identity
        // alice`): worth telling, since another user of the same proxy may be allowed.
        let reason = match (&record.rule, record.reason) {
            (Some(rule), Some(egress_config::DenyReason::UpstreamDenied)) => {
                format!("{reason}: {rule}")
            }
            _ => reason.to_string(),
        };
        let mut seen = self.lock();
        let list = if kind == Kind::Denied {
            &mut seen.denied
        } else {
            &mut seen.failed
        };
        *list.entry((host, port, reason)).or_default() += 1;
    }

    /// Counts a name the DNS stub refused (Linux: only capture has a stub).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn dns_refused(&self, name: &str, reason: &'static str) {
        *self
            .lock()
            .dns
            .entry((name.to_string(), reason))
            .or_default() += 1;
    }

    /// One short paragraph, or nothing when nothing was blocked or failed.
    pub fn paragraph(&self) -> Option<String> {
        let seen = self.lock();
        let mut sentences = Vec::new();
        if !seen.denied.is_empty() {
            sentences.push(format!("blocked {}.", listed(&seen.denied)));
        }
        if !seen.failed.is_empty() {
            sentences.push(format!("could not reach {}.", listed(&seen.failed)));
        }
        if !seen.dns.is_empty() {
            let names: Vec<String> = seen
                .dns
                .iter()
                .map(|((name, reason), count)| {
                    format!("{name} NXDOMAIN ({reason}){}", times(*count))
                })
                .collect();
            sentences.push(format!("dns: {}.", names.join(", ")));
        }
        if seen.missed > 0 {
            sentences.push(format!(
                "{} more requests ended while this summary was behind and are not listed.",
                seen.missed
            ));
        }
        (!sentences.is_empty()).then(|| format!("egress-run: {}", sentences.join(" ")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// " ×N" for more than one.
fn times(count: u64) -> String {
    if count == 1 {
        String::new()
    } else {
        format!(" ×{count}")
    }
}

fn listed(seen: &BTreeMap<Key, u64>) -> String {
    let items: Vec<String> = seen
        .iter()
        .map(|((host, port, reason), count)| format!("{host}:{port} ({reason}){}", times(*count)))
        .collect();
    items.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_config::{DenyReason, Host, Protocol};

    fn refused(host: &str, port: u16, protocol: Protocol, reason: DenyReason) -> Record {
        let mut record = Record::connection(None, protocol);
        record.target = Some((Host::parse(host).unwrap(), port));
        record.kind = Some(Kind::of_refusal(reason));
        record.reason = Some(reason);
        record
    }

    #[test]
    fn denials_are_grouped_and_counted() {
        let blocked = Blocked::default();
        assert_eq!(blocked.paragraph(), None);
        for _ in 0..3 {
            blocked.count(&refused(
                "evil.example",
                443,
                Protocol::HttpConnect,
                DenyReason::NotAllowlisted,
            ));
        }
        blocked.count(&refused(
            "169.254.169.254",
            80,
            Protocol::HttpForward,
            DenyReason::PrivateAddress,
        ));
        assert_eq!(
            blocked.paragraph().unwrap(),
            "egress-run: blocked 169.254.169.254:80 (private-address), evil.example:443 (not-allowlisted) ×3."
        );
        blocked.count(&refused(
            "gone.example",
            443,
            Protocol::Socks5,
            DenyReason::DnsFailed,
        ));
        assert_eq!(
            blocked.paragraph().unwrap(),
            "egress-run: blocked 169.254.169.254:80 (private-address), evil.example:443 (not-allowlisted) ×3. \
             could not reach gone.example:443 (dns-failed)."
        );
        blocked.dns_refused("evil.example", "not-allowlisted");
        blocked.dns_refused("evil.example", "not-allowlisted");
        blocked.dns_refused("bad.example", "blocked-by-denylist");
        assert!(blocked.paragraph().unwrap().ends_with(
            " dns: bad.example NXDOMAIN (blocked-by-denylist), evil.example NXDOMAIN (not-allowlisted) ×2."
        ));
    }

    /// `times` denials of evil.example:443, recorded in `observer`.
    fn deny_evil(observer: &Observer, times: usize) {
        for _ in 0..times {
            observer.record(refused(
                "evil.example",
                443,
                Protocol::Socks5,
                DenyReason::NotAllowlisted,
            ));
        }
    }

    #[test]
    fn the_summary_reads_the_event_stream_to_its_end_and_says_what_it_missed() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let observer = Observer::default();
        let blocked = Blocked::default();
        let following = blocked.follow(&observer, runtime.handle());
        // Sent while the (current-thread) runtime is not running: the summary task has not
        // read any of them when `finish` asks it to stop, and must still count them all.
        deny_evil(&observer, 2);
        following.finish(&runtime);
        assert_eq!(
            blocked.paragraph().unwrap(),
            "egress-run: blocked evil.example:443 (not-allowlisted) ×2."
        );

        // Far more than the stream holds, all before the summary reads: it is told how many
        // it missed, and says so.
        let behind = Blocked::default();
        let following = behind.follow(&observer, runtime.handle());
        let sent = egress_proxy::observe::events::DEFAULT_CAPACITY + 10;
        deny_evil(&observer, sent);
        following.finish(&runtime);
        let capacity = egress_proxy::observe::events::DEFAULT_CAPACITY;
        assert_eq!(
            behind.paragraph().unwrap(),
            format!(
                "egress-run: blocked evil.example:443 (not-allowlisted) ×{capacity}. \
                 10 more requests ended while this summary was behind and are not listed."
            )
        );
    }
}
