//! The "identify" step, after a request is parsed and before its verdict: who the client is.
//!
//! In this order: a proxy login (`Proxy-Authorization: Basic` on HTTP, RFC 1929 user/password
//! on SOCKS5) checked against the users file; else the client's source network; else the
//! identity of the listener it came in on; else `anonymous`, or, with `auth.required`, a refusal (`auth-required`). A login that does not
//! check out is refused (`auth-failed`) whatever `required` says: the client meant to be
//! someone. Without a users file logins are not read at all (as before identities existed).
//!
//! Password hashes are slow on purpose, so checks run on the blocking pool, at most
//! `CHECKS_AT_ONCE` at a time and one at a time per client address; a client's failures
//! delay its next checks (`Failures`), and verified logins are cached (a digest, never the
//! password), so a keep-alive connection or a tool opening many tunnels pays once.

mod failures;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use egress_config::identity::MAX_NAME;
use egress_config::{DenyReason, Identities, ANONYMOUS};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tracing::info;

use crate::answer::Refusal;
use failures::Failures;

/// Password checks running at once across the proxy (each keeps a core busy for its hash).
const CHECKS_AT_ONCE: usize = 4;
/// Verified logins remembered; past it the cache starts over (it refills at one check each).
const CACHE_SIZE: usize = 1024;
/// The longest password read; longer ones fail without a check.
const MAX_PASSWORD: usize = 1024;

/// A proxy login as the client sent it. `Debug` never shows the password.
pub struct Login {
    pub user: String,
    password: Vec<u8>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user_len", &self.user.len())
            .finish_non_exhaustive()
    }
}

impl Login {
    pub fn new(user: &[u8], password: &[u8]) -> Login {
        Login {
            user: String::from_utf8_lossy(user).into_owned(),
            password: password.to_vec(),
        }
    }
}

/// What a password check needs beyond the snapshot's identities; one per snapshot, so a reload
/// (a new users file) starts with an empty cache.
#[derive(Debug)]
pub struct Verifier {
    checks: Arc<Semaphore>,
    /// Verified logins: user → digest of user and password.
    cache: Mutex<HashMap<Arc<str>, [u8; 32]>>,
    failures: Failures,
    /// Password hashes verified so far (the slow work), for tests.
    verified: std::sync::atomic::AtomicUsize,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            checks: Arc::new(Semaphore::new(CHECKS_AT_ONCE)),
            cache: Mutex::default(),
            failures: Failures::default(),
            verified: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// The identity of a client from `source` that sent `login` (if any), or the refusal to answer.
pub async fn identify(
    identities: &Identities,
    verifier: &Verifier,
    source: IpAddr,
    listener: Option<&str>,
    login: Option<Login>,
) -> Result<Arc<str>, Refusal> {
    let login = login.filter(|_| identities.logins());
    if let Some(login) = login {
        return match check(identities, verifier, source, login).await {
            Some(identity) => Ok(identity),
            None => Err(challenge(
                identities,
                DenyReason::AuthFailed,
                "wrong user or password",
            )),
        };
    }
    if let Some(identity) = identities.by_network(source) {
        return Ok(identity);
    }
    // A listener's identity that a reload removed falls through to `anonymous`.
    if let Some(identity) = listener.and_then(|name| identities.known(name)) {
        return Ok(identity);
    }
    if identities.auth.required {
        return Err(challenge(
            identities,
            DenyReason::AuthRequired,
            "log in with the proxy user and password",
        ));
    }
    Ok(Arc::from(ANONYMOUS))
}

/// The identity of an intercepted client from `source`: it cannot log in (it does not know a
/// proxy is there), so its source network names it, else its listener's identity, else it is `anonymous` — unless
/// `auth.required`, which no anonymous client gets past, here either (`auth-required`).
pub fn intercepted(
    identities: &Identities,
    source: IpAddr,
    listener: Option<&str>,
) -> Result<Arc<str>, Refusal> {
    if let Some(identity) = identities.by_network(source) {
        return Ok(identity);
    }
    // As for proxy clients: a removed identity falls through.
    if let Some(identity) = listener.and_then(|name| identities.known(name)) {
        return Ok(identity);
    }
    if identities.auth.required {
        return Err(Refusal::new(
            DenyReason::AuthRequired,
            "an intercepted client cannot log in, and its address is in no identity's network",
        ));
    }
    Ok(Arc::from(ANONYMOUS))
}

/// The refusal a client that must log in gets: 407 with the realm to log in to.
pub fn challenge(
    identities: &Identities,
    reason: DenyReason,
    detail: impl Into<std::borrow::Cow<'static, str>>,
) -> Refusal {
    Refusal::new(reason, detail).passing_on(vec![(
        "Proxy-Authenticate".into(),
        format!("Basic realm=\"{}\"", identities.auth.realm),
    )])
}

/// The user's identity when `login` checks out.
async fn check(
    identities: &Identities,
    verifier: &Verifier,
    source: IpAddr,
    login: Login,
) -> Option<Arc<str>> {
    let digest = digest(&login);
    let user = identities
        .known(&login.user)
        .filter(|_| login.user.len() <= MAX_NAME && login.password.len() <= MAX_PASSWORD);
    let cached = || {
        let user = user.as_ref()?;
        let hit = verifier.lock_cache().get(user).copied();
        hit.is_some_and(|c| bool::from(c.ct_eq(&digest)))
            .then(|| user.clone())
    };
    if let Some(user) = cached() {
        return Some(user);
    }
    // One check at a time per client, after its failures' delay: a guessing client waits for
    // itself, and holds at most one of the shared checks.
    let _turn = verifier.failures.turn(source).await;
    // A tool opening many tunnels at once sends the same login on each: the first check's
    // result serves the ones that queued behind it.
    if let Some(user) = cached() {
        return Some(user);
    }
    let users = identities.users.clone();
    let verified = match &user {
        // Not a user: the same work as a wrong password (no oracle for which names exist),
        // unless the input is too long to be anyone's.
        _ if login.user.len() > MAX_NAME || login.password.len() > MAX_PASSWORD => false,
        _ => {
            let _permit = verifier.checks.clone().acquire_owned().await.ok()?;
            verifier
                .verified
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Login {
                user: name,
                password,
            } = login;
            tokio::task::spawn_blocking(move || users.verify(&name, &password))
                .await
                .unwrap_or(false)
        }
    };
    match user.filter(|_| verified) {
        Some(user) => {
            verifier.failures.succeeded(source);
            let mut cache = verifier.lock_cache();
            if cache.len() >= CACHE_SIZE {
                cache.clear();
            }
            cache.insert(user.clone(), digest);
            Some(user)
        }
        None => {
            // The name is attacker-chosen: its length is logged, never the name itself.
            info!(client = %source, "proxy login failed");
            verifier.failures.failed(source);
            None
        }
    }
}

impl Verifier {
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, [u8; 32]>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn digest(login: &Login) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((login.user.len() as u64).to_be_bytes());
    hasher.update(login.user.as_bytes());
    hasher.update(&login.password);
    hasher.finalize().into()
}

/// The login in `Proxy-Authorization` values: `None` when there is none (or only other
/// schemes), `Err` when a Basic one is malformed.
pub fn from_header(values: &[&[u8]]) -> Result<Option<Login>, Refusal> {
    let malformed = |why: &'static str| Refusal::new(DenyReason::AuthFailed, why);
    let mut basic = values.iter().filter_map(|value| {
        let value = value.trim_ascii();
        let (scheme, rest) =
            value.split_at(value.iter().position(|b| *b == b' ').unwrap_or(value.len()));
        scheme
            .eq_ignore_ascii_case(b"basic")
            .then(|| rest.trim_ascii())
    });
    let Some(token) = basic.next() else {
        return Ok(None);
    };
    if basic.next().is_some() {
        return Err(malformed("more than one Basic Proxy-Authorization"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| malformed("Proxy-Authorization: Basic is not valid base64"))?;
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return Err(malformed("Proxy-Authorization: Basic has no user:password"));
    };
    Ok(Some(Login::new(&decoded[..colon], &decoded[colon + 1..])))
}

#[cfg(test)]
mod tests;
