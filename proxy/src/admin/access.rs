//! Who may use the admin API: the tokens (the admin token and the named ones), the browser
//! sessions that a login creates, the one-time login code, and the slowing of repeated bad
//! tokens. Tokens are compared in constant time, every configured token each time, so neither
//! the answer's timing nor its content says how close a guess was or which token it was near.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use egress_config::admin::{NamedToken, Role, ADMIN_TOKEN_NAME};
use egress_config::Secret;
use subtle::ConstantTimeEq;

use super::token_file::random_hex;

/// How long a browser session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long the login link logged at start may be used (once).
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(15 * 60);
/// Sessions kept at once; a new one beyond it ends the oldest.
const MAX_SESSIONS: usize = 256;

/// Bad tokens answered at full speed before the slowing starts.
const FREE_FAILURES: u32 = 5;
/// The first delay, doubled with every further failure, up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// Failures this far apart are forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(60);

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (`admin` for the token file's).
    pub name: String,
    pub role: Role,
    /// `Some(csrf)` for a browser session: its state-changing calls must send this value.
    pub csrf: Option<String>,
}

#[derive(Debug)]
struct Session {
    name: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

/// The admin API's access state.
#[derive(Debug)]
pub struct Access {
    tokens: Vec<NamedToken>,
    sessions: Mutex<HashMap<String, Session>>,
    login_code: Mutex<Option<(String, Instant)>>,
    failures: Mutex<(u32, Instant)>,
    /// Held while a failure's delay runs: failures are answered one after another, so many
    /// guesses in parallel are slowed like many in a row.
    penalty: tokio::sync::Mutex<()>,
}

impl Access {
    /// The admin token (role admin) and the named tokens.
    pub fn new(admin_token: Secret, named: &[NamedToken]) -> Self {
        let mut tokens = vec![NamedToken {
            name: ADMIN_TOKEN_NAME.to_string(),
            role: Role::Admin,
            token: admin_token,
        }];
        tokens.extend(named.iter().cloned());
        Self {
            tokens,
            sessions: Mutex::default(),
            login_code: Mutex::new(None),
            failures: Mutex::new((0, Instant::now())),
            penalty: tokio::sync::Mutex::new(()),
        }
    }

    /// The token's holder, comparing `presented` with every token in constant time.
    pub fn by_token(&self, presented: &str) -> Option<Principal> {
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.token.expose().as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(Principal {
                    name: token.name.clone(),
                    role: token.role,
                    csrf: None,
                });
            }
        }
        found
    }

    /// The session's holder, if the session exists and has not expired.
    pub fn by_session(&self, id: &str) -> Option<Principal> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        // The map lookup is by hash, not by comparing ids byte by byte with a secret.
        sessions.get(id).map(|s| Principal {
            name: s.name.clone(),
            role: s.role,
            csrf: Some(s.csrf.clone()),
        })
    }

    /// A new session for `who`; returns its id (the cookie's value).
    pub fn open_session(&self, who: &Principal) -> anyhow::Result<String> {
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            Session {
                name: who.name.clone(),
                role: who.role,
                csrf,
                expires: now + SESSION_TTL,
            },
        );
        Ok(id)
    }

    pub fn close_session(&self, id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(id);
    }

    /// A fresh one-time login code, replacing any earlier one.
    pub fn new_login_code(&self) -> anyhow::Result<String> {
        let code = random_hex(24)?;
        *self.login_code.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((code.clone(), Instant::now() + LOGIN_CODE_TTL));
        Ok(code)
    }

    /// Whether `presented` is the login code still unused and in time; it is used up either way
    /// when it matches.
    pub fn use_login_code(&self, presented: &str) -> Option<Principal> {
        let mut code = self.login_code.lock().unwrap_or_else(|p| p.into_inner());
        let matches = code.as_ref().is_some_and(|(c, expires)| {
            bool::from(c.as_bytes().ct_eq(presented.as_bytes())) && *expires > Instant::now()
        });
        if !matches {
            return None;
        }
        *code = None;
        Some(Principal {
            name: ADMIN_TOKEN_NAME.to_string(),
            role: Role::Admin,
            csrf: None,
        })
    }

    /// Counts a bad token, code or session and waits as long as the recent failures call for,
    /// one failure at a time.
    pub async fn failed(&self) {
        let delay = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if now.duration_since(failures.1) > FAILURE_MEMORY {
                failures.0 = 0;
            }
            failures.0 = failures.0.saturating_add(1);
            failures.1 = now;
            delay_after(failures.0)
        };
        if !delay.is_zero() {
            let _one_at_a_time = self.penalty.lock().await;
            tokio::time::sleep(delay).await;
        }
    }
}

/// The delay for the `n`th recent failure.
fn delay_after(n: u32) -> Duration {
    if n <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (n - FREE_FAILURES - 1).min(16);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access::new(
            Secret::new("admin-0123456789abcdef"),
            &[NamedToken {
                name: "alice".into(),
                role: Role::Viewer,
                token: Secret::new("alice-0123456789abcdef"),
            }],
        )
    }

    #[test]
    fn each_token_is_its_holders_and_near_misses_are_nobodys() {
        let access = access();
        assert_eq!(
            access.by_token("admin-0123456789abcdef").unwrap().role,
            Role::Admin
        );
        let alice = access.by_token("alice-0123456789abcdef").unwrap();
        assert_eq!((alice.name.as_str(), alice.role), ("alice", Role::Viewer));
        for guess in [
            "",
            "alice-0123456789abcde",
            "alice-0123456789abcdef ",
            "ALICE-0123456789abcdef",
            "alice-0123456789abcdeg",
        ] {
            assert_eq!(access.by_token(guess), None, "{guess:?}");
        }
    }

    #[test]
    fn the_login_code_works_once() {
        let access = access();
        let code = access.new_login_code().unwrap();
        assert_eq!(access.use_login_code("nope"), None);
        assert_eq!(access.use_login_code(&code).unwrap().role, Role::Admin);
        assert_eq!(access.use_login_code(&code), None);
    }

    #[test]
    fn a_session_carries_its_holder_and_csrf_until_closed() {
        let access = access();
        let alice = access.by_token("alice-0123456789abcdef").unwrap();
        let id = access.open_session(&alice).unwrap();
        let seen = access.by_session(&id).unwrap();
        assert_eq!((seen.name.as_str(), seen.role), ("alice", Role::Viewer));
        assert_eq!(seen.csrf.as_ref().map(String::len), Some(64));
        assert_eq!(access.by_session("x"), None);
        access.close_session(&id);
        assert_eq!(access.by_session(&id), None);
    }

    #[test]
    fn failures_are_free_at_first_then_slowed_more_and_more_up_to_a_cap() {
        let delays: Vec<u64> = (1..=12)
            .map(|n| delay_after(n).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [0, 0, 0, 0, 0, 100, 200, 400, 800, 1600, 2000, 2000]
        );
    }
}
