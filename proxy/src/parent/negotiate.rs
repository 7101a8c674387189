//! Kerberos (`auth: negotiate`) to a parent: a `Proxy-Authorization: Negotiate …` header with a
//! fresh GSSAPI token for the parent's service, sent with the CONNECT (or the first forwarded
//! request of a connection). The token comes from an agent process per credential source (see
//! `agent`); this side starts it, asks it, and restarts it when it dies or stalls.
//!
//! The token goes out with the first request rather than after a `407` challenge: Kerberos
//! needs nothing from the challenge, and it saves a round trip per tunnel. A `407` that comes
//! back anyway means the parent rejected the ticket (`upstream-auth-failed`).

pub mod agent;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use egress_config::{DenyReason, Negotiate, Upstream};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;

use crate::answer::Refusal;

/// One running agent.
#[derive(Debug)]
struct Agent {
    /// Killed when dropped: a stalled or replaced agent does not linger.
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// An agent slot: empty until first use, and again after its agent failed.
type Slot = Arc<Mutex<Option<Agent>>>;

/// The agents of one snapshot, by keytab (`None`: the user's credential cache).
#[derive(Debug, Default)]
pub struct Agents {
    by_source: SyncMutex<HashMap<Option<PathBuf>, Slot>>,
}

/// How long a token may take: a KDC round trip or two (a new ticket), never a stall.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

impl Agents {
    /// The `Proxy-Authorization` header line (CRLF-terminated) for `upstream`. Failures are
    /// `upstream-auth-failed` with GSSAPI's message (no ticket, clock skew, unknown principal,
    /// KDC unreachable); the token itself is never part of any message.
    pub async fn authorization(
        &self,
        upstream: &Upstream,
        negotiate: &Negotiate,
        limit: Duration,
    ) -> Result<String, Refusal> {
        let service = negotiate.service(&upstream.host);
        let slot = {
            let mut map = self.by_source.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(negotiate.keytab.clone()).or_default().clone()
        };
        let mut agent = slot.lock().await;
        let limit = limit.min(TOKEN_TIMEOUT);
        let answer = match tokio::time::timeout(limit, ask(&mut agent, negotiate, &service)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                *agent = None;
                return Err(failed(&service, &format!("Kerberos agent: {e}")));
            }
            Err(_) => {
                // Out of step with its answers now: replace it.
                *agent = None;
                return Err(failed(&service, "no Kerberos ticket in time (KDC slow?)"));
            }
        };
        match answer.split_once(' ') {
            Some(("ok", token)) if !token.is_empty() => {
                Ok(format!("Proxy-Authorization: Negotiate {token}\r\n"))
            }
            Some(("err", message)) => Err(failed(&service, message)),
            _ => {
                *agent = None;
                Err(failed(&service, "the Kerberos agent answered out of turn"))
            }
        }
    }
}

fn failed(service: &str, why: &str) -> Refusal {
    Refusal::new(
        DenyReason::UpstreamAuthFailed,
        format!("no Kerberos token for {service}: {why}"),
    )
}

/// Sends one request to the agent (starting one if needed) and reads its one-line answer.
async fn ask(
    agent: &mut Option<Agent>,
    negotiate: &Negotiate,
    service: &str,
) -> std::io::Result<String> {
    if agent.is_none() {
        *agent = Some(spawn(negotiate)?);
    }
    let Some(running) = agent.as_mut() else {
        unreachable!("set above")
    };
    running
        .stdin
        .write_all(format!("{service}\n").as_bytes())
        .await?;
    running.stdin.flush().await?;
    let mut line = String::new();
    if running.stdout.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "it exited",
        ));
    }
    Ok(line.trim_end().to_string())
}

/// Starts this executable as an agent for the credential source of `negotiate`.
fn spawn(negotiate: &Negotiate) -> std::io::Result<Agent> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command
        .arg(agent::ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(keytab) = &negotiate.keytab {
        // Tickets from the keytab live in the agent's memory only, and the user's own cache
        // (another principal) is never picked up instead.
        command
            .env("KRB5_CLIENT_KTNAME", keytab)
            .env("KRB5CCNAME", "MEMORY:egress-agent");
    }
    let mut child = command.spawn()?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(std::io::Error::other("agent pipes missing"));
    };
    Ok(Agent {
        _child: child,
        stdin,
        stdout: BufReader::new(stdout),
    })
}
