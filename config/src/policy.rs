//! The compiled policy and its one decision function.
//!
//! The order, for a target `host:port` over a protocol:
//!
//! 1. a `deny` entry covering the host refuses (`blocked-by-denylist`) — on every port when the
//!    entry names none, on its ports when it does;
//! 2. an `allow` entry covering host and port allows (the earliest such entry is the rule);
//! 3. an `allow` entry covering the host on other ports refuses (`port-not-allowed`);
//! 4. anything else is refused (`not-allowlisted`).
//!
//! In `report` mode each refusal becomes `Action::Report`: a dry run of the whole policy.
//! In `ask` mode what steps 3 and 4 would refuse becomes `Action::Ask`: held for a person's
//! answer (the proxy's `ask` decider); a deny entry still refuses at once.

use std::sync::Arc;

use crate::matcher::Index;
use crate::pattern::{Pattern, PortSet};
use crate::{Action, DenyReason, Protocol, Request, Verdict};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    /// Hold what no entry decides until a person answers (see the proxy's `ask`).
    Ask,
    Report,
}

impl Mode {
    /// The stricter of two modes: `enforce` over `ask` over `report`.
    pub const fn strictest(self, other: Mode) -> Mode {
        match (self, other) {
            (Mode::Enforce, _) | (_, Mode::Enforce) => Mode::Enforce,
            (Mode::Ask, _) | (_, Mode::Ask) => Mode::Ask,
            (Mode::Report, Mode::Report) => Mode::Report,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Ask => "ask",
            Mode::Report => "report",
        }
    }
}

/// Immutable and cheap to clone (the lists are shared).
#[derive(Clone, Debug)]
pub struct Policy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    allow: Vec<Pattern>,
    /// (allow entry's index, route) for each entry that names a route (`via:`), by index. Kept
    /// apart because few entries name one.
    allow_via: Vec<(usize, Box<str>)>,
    deny: Vec<Pattern>,
    allow_index: Index,
    deny_index: Index,
}

impl Policy {
    pub fn new(mode: Mode, allow: Vec<Pattern>, deny: Vec<Pattern>) -> Policy {
        let allow = allow.into_iter().map(|p| (p, None)).collect();
        Policy::with_routes(mode, allow, deny)
    }

    /// Allow entries with the route (`via:`) each one names, if any.
    pub fn with_routes(
        mode: Mode,
        allow: Vec<(Pattern, Option<String>)>,
        deny: Vec<Pattern>,
    ) -> Policy {
        let mut routes = Vec::new();
        let allow = allow
            .into_iter()
            .enumerate()
            .map(|(i, (p, via))| {
                routes.extend(via.map(|via| (i, via)));
                p
            })
            .collect();
        Policy::routed(mode, allow, routes, deny)
    }

    /// Allow entries, and the route named by those that name one, as (index in `allow`, route)
    /// in increasing order of index.
    pub fn routed(
        mode: Mode,
        allow: Vec<Pattern>,
        routes: Vec<(usize, String)>,
        deny: Vec<Pattern>,
    ) -> Policy {
        debug_assert!(routes.windows(2).all(|w| w[0].0 < w[1].0));
        let allow_via = routes
            .into_iter()
            .map(|(i, via)| (i, via.into_boxed_str()))
            .collect();
        let inner = Inner {
            mode,
            allow_index: Index::new(&allow),
            deny_index: Index::new(&deny),
            allow,
            allow_via,
            deny,
        };
        Policy {
            inner: Arc::new(inner),
        }
    }

    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    pub fn allow(&self) -> &[Pattern] {
        &self.inner.allow
    }

    pub fn deny(&self) -> &[Pattern] {
        &self.inner.deny
    }

    /// This policy widened for one identity: its allow entries, then `allow` (no route of their
    /// own); its deny entries, then `deny`; under `mode`. The decision order is unchanged, so any
    /// matching deny entry still wins over every allow entry.
    pub fn compose(&self, allow: &[Pattern], deny: &[Pattern], mode: Mode) -> Policy {
        let inner = &*self.inner;
        let allow = inner.allow.iter().chain(allow).cloned().collect();
        let routes = inner
            .allow_via
            .iter()
            .map(|(i, via)| (*i, via.to_string()))
            .collect();
        let deny = inner.deny.iter().chain(deny).cloned().collect();
        Policy::routed(mode, allow, routes, deny)
    }

    /// The route the allow entry at `index` names, if it names one.
    fn route(&self, index: usize) -> Option<&str> {
        let routes = &self.inner.allow_via;
        let found = routes.binary_search_by_key(&index, |(i, _)| *i).ok()?;
        Some(&routes[found].1)
    }

    pub fn decide(&self, request: &Request<'_>) -> Verdict<'_> {
        let inner = &*self.inner;
        let mut denied: Option<usize> = None;
        inner
            .deny_index
            .for_each_match(&inner.deny, request.host, |p| {
                let covers = match &inner.deny[p].ports {
                    PortSet::Default => true,
                    // A name denied on some ports only is still answered by the DNS
                    // responder: its other ports may be allowed.
                    PortSet::Ranges(_) if request.protocol == Protocol::Dns => false,
                    ports => ports.matches(request.port, request.protocol),
                };
                if covers {
                    denied = Some(denied.map_or(p, |d| d.min(p)));
                }
            });
        if let Some(p) = denied {
            return self.refuse(DenyReason::BlockedByDenylist, Some(inner.deny[p].text()));
        }
        let mut allowed: Option<usize> = None;
        let mut host_only: Option<usize> = None;
        inner
            .allow_index
            .for_each_match(&inner.allow, request.host, |p| {
                let slot = if inner.allow[p].ports.matches(request.port, request.protocol) {
                    &mut allowed
                } else {
                    &mut host_only
                };
                *slot = Some(slot.map_or(p, |s| s.min(p)));
            });
        if let Some(p) = allowed {
            let pattern = &inner.allow[p];
            return Verdict {
                action: Action::Allow,
                rule: Some(pattern.text()),
                explicit_address: pattern.names_address(request.host),
                via: self.route(p),
            };
        }
        match host_only {
            Some(p) => self.refuse(DenyReason::PortNotAllowed, Some(inner.allow[p].text())),
            None => self.refuse(DenyReason::NotAllowlisted, None),
        }
    }

    fn refuse<'p>(&'p self, reason: DenyReason, rule: Option<&'p str>) -> Verdict<'p> {
        let undecided = matches!(
            reason,
            DenyReason::NotAllowlisted | DenyReason::PortNotAllowed
        );
        let action = match self.inner.mode {
            Mode::Enforce => Action::Deny(reason),
            Mode::Ask if undecided => Action::Ask(reason),
            Mode::Ask => Action::Deny(reason),
            Mode::Report => Action::Report(reason),
        };
        Verdict {
            action,
            rule,
            explicit_address: false,
            via: None,
        }
    }
}

#[cfg(test)]
mod tests;
