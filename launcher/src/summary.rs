//! What was blocked while the command ran, told once at exit: host, port, reason, count.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use egress_proxy::account::Outcome;

/// Host, port and reason of a denial.
type Key = (String, u16, &'static str);

#[derive(Debug, Default, Clone)]
pub struct Blocked {
    seen: Arc<Mutex<BTreeMap<Key, u64>>>,
}

impl Blocked {
    /// Counts the denials among `outcome`s (installed as the proxy's observer).
    pub fn observe(&self, outcome: &Outcome<'_>) {
        if outcome.decision != "deny" {
            return;
        }
        let (host, port) = outcome
            .target
            .map_or(("?".to_string(), 0), |(h, p)| (h.to_string(), p));
        let reason = outcome.reason.map_or("denied", |r| r.as_str());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen.entry((host, port, reason)).or_default() += 1;
    }

    /// One short paragraph, or nothing when nothing was blocked.
    pub fn paragraph(&self) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_empty() {
            return None;
        }
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
        Some(format!("egress-run: blocked {}.", items.join(", ")))
    }
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
    }
}
