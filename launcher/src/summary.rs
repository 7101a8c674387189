//! What was blocked while the command ran, and what could not be reached, told once at exit:
//! host, port, reason, count. A denial and a failure are told apart: "blocked" is the policy's
//! doing, "could not reach" the network's or the parent proxy's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use egress_proxy::account::{Kind, Outcome};

/// Host, port and reason of a denial or failure.
type Key = (String, u16, &'static str);

#[derive(Debug, Default, Clone)]
pub struct Blocked {
    seen: Arc<Mutex<Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    denied: BTreeMap<Key, u64>,
    failed: BTreeMap<Key, u64>,
}

impl Blocked {
    /// Counts the denials and failures among `outcome`s (installed as the proxy's observer).
    pub fn observe(&self, outcome: &Outcome<'_>) {
        let kind = outcome.kind();
        if !matches!(kind, Kind::Denied | Kind::Failed) {
            return;
        }
        let (host, port) = outcome
            .target
            .map_or(("?".to_string(), 0), |(h, p)| (h.to_string(), p));
        let reason = outcome.reason.map_or("denied", |r| r.as_str());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let list = if kind == Kind::Denied {
            &mut seen.denied
        } else {
            &mut seen.failed
        };
        *list.entry((host, port, reason)).or_default() += 1;
    }

    /// One short paragraph, or nothing when nothing was blocked or failed.
    pub fn paragraph(&self) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut sentences = Vec::new();
        if !seen.denied.is_empty() {
            sentences.push(format!("blocked {}.", listed(&seen.denied)));
        }
        if !seen.failed.is_empty() {
            sentences.push(format!("could not reach {}.", listed(&seen.failed)));
        }
        (!sentences.is_empty()).then(|| format!("egress-run: {}", sentences.join(" ")))
    }
}

fn listed(seen: &BTreeMap<Key, u64>) -> String {
    let items: Vec<String> = seen
        .iter()
        .map(|((host, port, reason), count)| {
            let times = if *count == 1 {
                String::new()
            } else {
                format!(" ×{count}")
            };
            format!("{host}:{port} ({reason}){times}")
        })
        .collect();
    items.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_config::{DenyReason, Host, Protocol};

    #[test]
    fn denials_are_grouped_and_counted() {
        let blocked = Blocked::default();
        assert_eq!(blocked.paragraph(), None);
        let evil = Host::parse("evil.example").unwrap();
        for _ in 0..3 {
            blocked.observe(&Outcome::refused(
                None,
                Protocol::HttpConnect,
                Some((&evil, 443)),
                DenyReason::NotAllowlisted,
                None,
            ));
        }
        let meta = Host::parse("169.254.169.254").unwrap();
        blocked.observe(&Outcome::refused(
            None,
            Protocol::HttpForward,
            Some((&meta, 80)),
            DenyReason::PrivateAddress,
            None,
        ));
        assert_eq!(
            blocked.paragraph().unwrap(),
            "egress-run: blocked 169.254.169.254:80 (private-address), evil.example:443 (not-allowlisted) ×3."
        );
        let gone = Host::parse("gone.example").unwrap();
        blocked.observe(&Outcome::refused(
            None,
            Protocol::Socks5,
            Some((&gone, 443)),
            DenyReason::DnsFailed,
            None,
        ));
        assert_eq!(
            blocked.paragraph().unwrap(),
            "egress-run: blocked 169.254.169.254:80 (private-address), evil.example:443 (not-allowlisted) ×3. \
             could not reach gone.example:443 (dns-failed)."
        );
    }
}
