//! The Kerberos agent: a child process of egress (the same executable, started with
//! `__negotiate-agent`) that holds one credential source and answers each line on stdin — a
//! GSSAPI service name — with one line: `ok BASE64-TOKEN` or `err MESSAGE`.
//!
//! Why a process: MIT krb5 picks the keytab and credential cache from its environment
//! (`KRB5_CLIENT_KTNAME`, `KRB5CCNAME`), which a threaded proxy cannot change safely and which
//! the safe GSSAPI binding offers no other way to set; the agent gets them at spawn. It also
//! keeps the keytab's keys and the tickets out of the process that parses hostile traffic: the
//! proxy only ever sees one-time tokens. With a client keytab, MIT krb5 fetches a new ticket
//! when half of the old one's life has passed, so tickets are renewed before they expire.

use std::io::{BufRead, Write};

use base64::Engine as _;
#[cfg(feature = "kerberos")]
use libgssapi::context::{ClientCtx, CtxFlags};
#[cfg(feature = "kerberos")]
use libgssapi::name::Name;
#[cfg(feature = "kerberos")]
use libgssapi::oid::{GSS_MECH_SPNEGO, GSS_NT_HOSTBASED_SERVICE};

/// The argument that turns an egress executable into the agent.
pub const ARG: &str = "__negotiate-agent";

/// Runs the agent instead of the program when the executable was started as one; call first
/// thing in `main`. Returns only when it was not.
pub fn run_if_asked() {
    if std::env::args_os().nth(1).is_some_and(|a| a == ARG) {
        serve();
        std::process::exit(0);
    }
}

fn serve() {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let Ok(service) = line else { return };
        let reply = match token(service.trim()) {
            Ok(token) => format!(
                "ok {}",
                base64::engine::general_purpose::STANDARD.encode(token)
            ),
            Err(message) => format!("err {}", one_line(&message)),
        };
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
    }
}

/// The first SPNEGO token for `service` (`HTTP@host`), as curl's `--proxy-negotiate` sends.
/// A fresh context each time: every token carries a new authenticator, so a parent's replay
/// cache never sees one twice.
#[cfg(feature = "kerberos")]
fn token(service: &str) -> Result<Vec<u8>, String> {
    let name = Name::new(service.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE))
        .map_err(|e| format!("service name {service:?}: {e}"))?;
    let mut ctx = ClientCtx::new(None, name, CtxFlags::empty(), Some(GSS_MECH_SPNEGO));
    match ctx.step(None, None) {
        Ok(Some(token)) => Ok(token.to_vec()),
        Ok(None) => Err("GSSAPI produced no token".into()),
        Err(e) => Err(format!("GSSAPI: {e}{}", keytab_problem())),
    }
}

/// A build without the system's GSSAPI library (the static binary of deploy/container): a
/// parent asking for `negotiate` gets this answer, never a crash.
#[cfg(not(feature = "kerberos"))]
fn token(_service: &str) -> Result<Vec<u8>, String> {
    Err("this egress-proxy was built without Kerberos (the `kerberos` feature)".into())
}

/// MIT krb5 says only "no credentials" when it cannot read the client keytab; the operator
/// needs to know which file and why.
#[cfg(feature = "kerberos")]
fn keytab_problem() -> String {
    let Some(path) = std::env::var_os("KRB5_CLIENT_KTNAME") else {
        return String::new();
    };
    match std::fs::File::open(&path) {
        Ok(_) => String::new(),
        Err(e) => format!("; keytab {}: {e}", std::path::Path::new(&path).display()),
    }
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}
