//! The users file: Apache htpasswd format (`user:hash` per line, the format Squid's
//! `basic_ncsa_auth` reads), with bcrypt (`$2y$`, `$2b$`, `$2a$`) and argon2id (PHC string)
//! hashes. Weaker schemes htpasswd can write (MD5 `$apr1$`, `{SHA}`, crypt, plain) are refused
//! at load: a stolen file of those is as good as the passwords.
//!
//! Checking a password is deliberately slow (that is the point of both hashes); the proxy runs
//! `Users::verify` on its blocking pool, never on the runtime.

use std::collections::HashMap;
use std::fmt;

use super::valid_name;

/// Users by name, each with its stored hash.
#[derive(Clone, Default)]
pub struct Users {
    by_name: HashMap<String, Stored>,
    /// A stored hash of the file, checked for unknown users too, so an answer takes as long for
    /// a name that does not exist as for a wrong password (no oracle for which names exist).
    decoy: Option<Stored>,
}

#[derive(Clone)]
enum Stored {
    Bcrypt(String),
    Argon2id(String),
}

/// A line of the users file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: hashes are secrets too (offline guessing).
        let mut names: Vec<&str> = self.names().collect();
        names.sort_unstable();
        f.debug_struct("Users").field("names", &names).finish()
    }
}

impl Users {
    /// Parses a users file's text.
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let mut users = Users::default();
        for (index, line) in text.lines().enumerate() {
            let fail = |message: String| UsersError {
                line: index + 1,
                message,
            };
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((name, hash)) = line.split_once(':') else {
                return Err(fail("expected user:hash".into()));
            };
            valid_name(name).map_err(|(message, _)| fail(message))?;
            let stored =
                Stored::parse(hash.trim()).map_err(|m| fail(format!("user {name:?}: {m}")))?;
            if users.decoy.is_none() {
                users.decoy = Some(stored.clone());
            }
            if users.by_name.insert(name.to_string(), stored).is_some() {
                return Err(fail(format!("user {name:?} is listed twice")));
            }
        }
        Ok(users)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether `password` is `user`'s. Slow on purpose (tens of milliseconds): call it off the
    /// async runtime. An unknown user costs the same as a known one with a wrong password.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.by_name.get(user) {
            Some(stored) => stored.verify(password),
            None => {
                if let Some(decoy) = &self.decoy {
                    let _ = decoy.verify(password);
                }
                false
            }
        }
    }
}

impl Stored {
    fn parse(hash: &str) -> Result<Stored, String> {
        if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
            // Cost, salt and hash are parsed now, so a broken entry fails the load instead of
            // every login.
            if hash.len() != 60 || hash.parse::<bcrypt::HashParts>().is_err() {
                return Err("malformed bcrypt hash".into());
            }
            return Ok(Stored::Bcrypt(hash.to_string()));
        }
        if hash.starts_with("$argon2id$") {
            return match argon2::PasswordHash::new(hash) {
                Ok(parsed) if parsed.salt.is_some() && parsed.hash.is_some() => {
                    Ok(Stored::Argon2id(hash.to_string()))
                }
                _ => Err("malformed argon2id hash".into()),
            };
        }
        Err(
            "unsupported hash (use bcrypt: `htpasswd -B`, `egress-proxy passwd`; or argon2id)"
                .into(),
        )
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Stored::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Stored::Argon2id(hash) => {
                use argon2::PasswordVerifier;
                argon2::PasswordHash::new(hash).is_ok_and(|parsed| {
                    argon2::Argon2::default()
                        .verify_password(password, &parsed)
                        .is_ok()
                })
            }
        }
    }
}

/// The bcrypt cost `egress-proxy passwd` uses (2^12 rounds: about a quarter second).
pub const DEFAULT_COST: u32 = bcrypt::DEFAULT_COST;

/// A bcrypt (`$2y$`) hash of `password` with a fresh salt, for `egress-proxy passwd` (tests use
/// a lower `cost`).
pub fn hash_password(password: &[u8], cost: u32) -> Result<String, String> {
    let hashed = bcrypt::hash_with_result(password, cost)
        .map_err(|e| format!("cannot hash the password: {e}"))?;
    Ok(hashed.format_for_version(bcrypt::Version::TwoY))
}

#[cfg(test)]
mod tests;
