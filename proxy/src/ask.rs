//! Ask mode's decider: a request no policy entry decides (`Action::Ask`) is held until a person
//! answers it in the admin console or API, for at most `ask.timeout`. One approval per (client
//! address, host, port) however many connections wait on it; an answer releases them all.
//!
//! Nothing is asked that the proxy would refuse anyway: deny entries never reach here (the
//! policy refuses them), and the destination's addresses are checked by the address guard
//! before anybody is asked, so a private address is refused at once. With nobody able to answer
//! (no approver or admin has the console or the event stream open) a request is refused at once
//! (`approval-unattended`) instead of hanging. A client gets a bounded number of pending asks
//! and new asks per minute, so an agent cannot flood the console.

mod book;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use egress_config::DenyReason;
use tokio::sync::watch;

use crate::answer::Refusal;
use crate::decider::{Asking, Decider, Deciding, Decision};
use crate::observe::{Notice, Observer};

use book::Book;
pub use book::{Key, Pending};

/// Pending asks one client address may have at once.
pub const MAX_PENDING_PER_CLIENT: usize = 16;
/// New asks one client address may open per minute.
pub const ASKS_PER_MINUTE: usize = 60;

/// A person's answer to one approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allow,
    Deny,
}

/// What the API may do with a pending approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    AllowOnce,
    AllowFor(Duration),
    DenyOnce,
}

/// The approvals: pending asks, temporary grants, and who is there to answer.
#[derive(Debug)]
pub struct Asks {
    book: Mutex<Book>,
    /// Open event streams of tokens that may answer (role approver or admin).
    attendants: AtomicUsize,
    observer: Arc<Observer>,
    /// Cancelled when shutdown begins: held requests are refused then, not kept to the end of
    /// the drain.
    shutdown: std::sync::OnceLock<tokio_util::sync::CancellationToken>,
}

/// Counts one attendant while it lives (an open event stream of an approver or admin).
#[derive(Debug)]
pub struct Attending(Arc<Asks>);

impl Drop for Attending {
    fn drop(&mut self) {
        self.0.attendants.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Asks {
    pub fn new(observer: Arc<Observer>) -> Arc<Self> {
        Arc::new(Self {
            book: Mutex::default(),
            attendants: AtomicUsize::new(0),
            observer,
            shutdown: std::sync::OnceLock::new(),
        })
    }

    /// Held requests are refused (`shutting-down`) once `token` is cancelled.
    pub fn stop_on(&self, token: tokio_util::sync::CancellationToken) {
        let _ = self.shutdown.set(token);
    }

    /// Somebody able to answer is watching until the returned value is dropped.
    pub fn attend(self: &Arc<Self>) -> Attending {
        self.attendants.fetch_add(1, Ordering::AcqRel);
        Attending(self.clone())
    }

    pub fn attended(&self) -> bool {
        self.attendants.load(Ordering::Acquire) > 0
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pending approvals, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        self.book().pending_list()
    }

    /// Answers the approval `id` (all its waiting connections); `None` when there is no such
    /// pending approval (answered, expired, or never).
    pub fn answer(&self, id: &str, action: Action, who: &str) -> Option<Pending> {
        let mut book = self.book();
        let pending = book.take(id)?;
        let answer = match action {
            Action::AllowOnce => Answer::Allow,
            Action::AllowFor(d) => {
                book.grant(pending.key.clone(), Instant::now() + d);
                Answer::Allow
            }
            Action::DenyOnce => Answer::Deny,
        };
        drop(book);
        pending.release(answer);
        self.notice(&pending, "answered", Some((action_name(action), who)));
        Some(pending.clone())
    }

    /// Releases every pending approval `decides` answers (after an "always" entry was added to
    /// the policy): `Some(answer)` releases it, `None` leaves it waiting. Returns the ids.
    pub fn release_where(
        &self,
        who: &str,
        mut decides: impl FnMut(&Pending) -> Option<Answer>,
    ) -> Vec<String> {
        let released = self
            .book()
            .take_where(|p| decides(p).map(|a| (p.clone(), a)));
        released
            .into_iter()
            .map(|(pending, answer)| {
                pending.release(answer);
                let action = match answer {
                    Answer::Allow => "allow-always",
                    Answer::Deny => "deny-always",
                };
                self.notice(&pending, "answered", Some((action, who)));
                pending.id.clone()
            })
            .collect()
    }

    /// An approval event on the stream and in the audit log.
    fn notice(&self, pending: &Pending, state: &str, answered: Option<(&str, &str)>) {
        let mut json = pending.json();
        json["state"] = state.into();
        if let Some((action, who)) = answered {
            json["action"] = action.into();
            json["who"] = who.into();
        }
        self.observer.notice(Notice::new("approval", json));
    }

    /// Holds one connection until its approval is answered or times out.
    async fn hold(&self, asking: Asking<'_>) -> Decision {
        let key = Key::of(asking.client, asking.host, asking.port);
        let timeout = asking.ask.timeout;
        let (mut answer, deadline, fresh) = {
            let mut book = self.book();
            if book.granted(&key, Instant::now()) {
                return Decision::Proceed;
            }
            if !self.attended() {
                return refuse(
                    DenyReason::ApprovalUnattended,
                    "nobody with the approver or admin role has the admin console or event stream open",
                );
            }
            match book.join(&key) {
                Some(joined) => (joined.0, joined.1, None),
                None => {
                    if let Err(why) = book.admit(asking.client, Instant::now()) {
                        return refuse(DenyReason::ApprovalRateLimited, why);
                    }
                    let pending = book.open(
                        key.clone(),
                        asking.client,
                        asking.identity,
                        asking.protocol,
                        Instant::now() + timeout,
                        SystemTime::now() + timeout,
                    );
                    (pending.1, pending.2, Some(pending.0))
                }
            }
        };
        if let Some(pending) = &fresh {
            self.notice(pending, "pending", None);
        }
        // Leaving early (the client went away) lowers the waiting count; the last one to leave
        // withdraws the approval.
        let mut waiting = Waiting {
            asks: self,
            key: &key,
            done: false,
        };
        let stopping = self.shutdown.get().cloned().unwrap_or_default();
        let answered = tokio::select! {
            answered = tokio::time::timeout_at(deadline.into(), answer.wait_for(|a| a.is_some())) => answered,
            () = stopping.cancelled() => {
                return refuse(DenyReason::ShuttingDown, "the proxy is shutting down");
            }
        };
        waiting.done = true;
        match answered {
            Ok(Ok(a)) if *a == Some(Answer::Allow) => Decision::Proceed,
            Ok(_) => refuse(
                DenyReason::ApprovalDenied,
                "a person denied this destination",
            ),
            Err(_) => {
                if let Some(pending) = self.book().expire(&key, deadline) {
                    pending.release(Answer::Deny);
                    self.notice(&pending, "expired", None);
                }
                refuse(
                    DenyReason::ApprovalTimeout,
                    format!(
                        "nobody answered within {}",
                        humantime::format_duration(timeout)
                    ),
                )
            }
        }
    }
}

/// One waiting connection of a pending approval.
struct Waiting<'a> {
    asks: &'a Asks,
    key: &'a Key,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let withdrawn = self.asks.book().leave(self.key);
        if let Some(pending) = withdrawn {
            self.asks.notice(&pending, "withdrawn", None);
        }
    }
}

fn refuse(reason: DenyReason, detail: impl Into<String>) -> Decision {
    Decision::Refuse(Refusal::new(reason, detail.into()))
}

pub const fn action_name(action: Action) -> &'static str {
    match action {
        Action::AllowOnce => "allow-once",
        Action::AllowFor(_) => "allow-for",
        Action::DenyOnce => "deny-once",
    }
}

impl Decider for Asks {
    fn decide<'a>(&'a self, asking: Asking<'a>) -> Deciding<'a> {
        Box::pin(async move {
            if !asking.verdict.asks() {
                return Decision::Proceed;
            }
            // What the guard refuses at the dial is refused now, never asked.
            let checked = crate::destination::resolve_with(
                asking.resolver,
                asking.guard,
                asking.host,
                asking.port,
                false,
            )
            .await;
            if let Err(refusal) = checked {
                return Decision::Refuse(refusal);
            }
            self.hold(asking).await
        })
    }
}

/// A receiver of the answer to one approval.
pub type AnswerRx = watch::Receiver<Option<Answer>>;

#[cfg(test)]
mod tests;
