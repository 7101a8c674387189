//! Opening a tunnel the policy allowed, for CONNECT and SOCKS5 alike: resolve once and check
//! every address, judge the client's first bytes, dial only checked addresses, relay.
//!
//! TLS ports (`tls.ports`, 443 by default): the client is told the tunnel is up, its ClientHello is read and checked, and only
//! then is the destination dialed — a refused tunnel never touches the destination. Other ports:
//! dial first (the destination may speak first), then hold the client's first bytes until they
//! pass the same check.

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use egress_config::{Host, Policy, Protocol, Verdict};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::account;
use crate::answer::Refusal;
use crate::inspect::{self, FirstBytes, TLS_ACCESS_DENIED_ALERT};
use crate::outbound::{self, Pinned, Way};
use crate::parent::Purpose;
use crate::state::Snapshot;
use crate::tunnel::{self, Moved, Transferred};

/// Where the tunnel goes and what the policy said about it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Who asked (for the account), known since accept: no syscall to look it up again.
    pub client: SocketAddr,
    pub host: &'a Host,
    pub port: u16,
    pub protocol: Protocol,
    /// The policy's verdict: whether the entry names the address itself, the route it picks,
    /// and the rule for the request's account when it ends.
    pub verdict: Verdict<'a>,
    /// The policy the verdict came from (the client identity's): an SNI other than the host
    /// is checked against it (`tls.sni: policy`).
    pub policy: &'a Policy,
    /// An intercepted connection's original destination: the only address it may reach, and
    /// one `host` must resolve to (`outbound::pin`).
    pub pinned: Option<Pinned>,
}

impl<'a> Target<'a> {
    /// The target of a request `policy` let through, with what its verdict says.
    pub fn allowed(
        client: SocketAddr,
        host: &'a Host,
        port: u16,
        protocol: Protocol,
        verdict: Verdict<'a>,
        policy: &'a Policy,
    ) -> Self {
        Self {
            client,
            host,
            port,
            protocol,
            verdict,
            policy,
            pinned: None,
        }
    }

    /// This target, held to an intercepted connection's original destination.
    pub fn pinned_to(self, pinned: Pinned) -> Self {
        Self {
            pinned: Some(pinned),
            ..self
        }
    }

    /// Accounts this request as refused for `refusal` (it ends here).
    fn account_refused(&self, refusal: &Refusal) {
        account::refused(
            self.protocol,
            Some((self.host, self.port)),
            refusal.reason,
            self.verdict.rule,
        );
    }
}

/// A refusal raised before the client was told the tunnel is up: the caller answers it in its
/// protocol (HTTP status, SOCKS5 reply). Refusals after that point are handled here (logged, and
/// the connection closed).
pub type Unanswered = Refusal;

/// Opens the tunnel and relays until it ends. `early` holds client bytes read past the request;
/// `established` writes the protocol's success answer (given the local address of the dialed
/// connection, when there is one yet).
pub async fn open<E, F>(
    client: &TcpStream,
    early: BytesMut,
    target: Target<'_>,
    snapshot: &Snapshot,
    established: E,
) -> Result<(), Unanswered>
where
    E: FnOnce(Option<SocketAddr>) -> F,
    F: std::future::Future<Output = io::Result<()>>,
{
    // The request head's read buffer (16 KiB) is shared with what follows the head: let it go
    // now, keeping only the bytes, so a tunnel does not hold it for its whole life.
    let early = shed(early);
    let mut way = outbound::choose(snapshot, target.host, target.port, &target.verdict).await?;
    if let Some(pinned) = target.pinned {
        way = outbound::pin(
            snapshot,
            way,
            target.host,
            target.port,
            &target.verdict,
            pinned,
        )
        .await?;
    }
    let addrs = match way {
        Way::Parent(route) => {
            // Boxed: the parent handshakes (TLS, Kerberos) would otherwise make every direct
            // tunnel's state as large as theirs.
            return Box::pin(open_via(
                client,
                early,
                target,
                snapshot,
                &route,
                established,
            ))
            .await;
        }
        Way::Direct(addrs) => addrs,
    };
    let started = std::time::Instant::now();
    if snapshot.tls.ports.contains(&target.port) {
        if established(None).await.is_err() {
            return Ok(());
        }
        let mut buf = early;
        let deadline = Instant::now() + inspect::hello_wait(snapshot);
        let first = inspect::read_first(client, &mut buf, deadline).await;
        if let Err(refusal) = first.and_then(|first| judge(snapshot, &first, target)) {
            refuse_in_tunnel(client, &buf, &refusal, target);
            return Ok(());
        }
        let upstream = match outbound::dial(snapshot, &addrs).await {
            Ok(upstream) => upstream,
            Err(refusal) => {
                // The client was already told the tunnel is up; all that is left is to close.
                warn!(reason = refusal.reason.as_str(), detail = %refusal.detail, "tunnel failed after inspection");
                target.account_refused(&refusal);
                return Ok(());
            }
        };
        let counts = account::moved();
        let moved = tunnel::relay(client, &upstream, buf, snapshot.timeouts.idle, &counts).await;
        log_end(target, moved, &counts, started);
        return Ok(());
    }
    let upstream = outbound::dial(snapshot, &addrs).await?;
    if established(upstream.local_addr().ok()).await.is_err() {
        return Ok(());
    }
    relay_checked(client, &upstream, early, target, snapshot, started).await;
    Ok(())
}

/// `early`'s bytes in a buffer of their own size (none when there are none), releasing the
/// larger buffer they were read into once nothing else shares it.
fn shed(early: BytesMut) -> BytesMut {
    if early.is_empty() {
        BytesMut::new()
    } else {
        BytesMut::from(&early[..])
    }
}

/// Through a parent proxy. The parent is asked first, on every port, because its answer (a
/// refusal, say) must reach the client as an answer; the client's first bytes are then held
/// back until they pass the same check as on a direct tunnel.
async fn open_via<E, F>(
    client: &TcpStream,
    early: BytesMut,
    target: Target<'_>,
    snapshot: &Snapshot,
    route: &str,
    established: E,
) -> Result<(), Unanswered>
where
    E: FnOnce(Option<SocketAddr>) -> F,
    F: std::future::Future<Output = io::Result<()>>,
{
    let started = std::time::Instant::now();
    let via = outbound::through_parent(snapshot, route, target.host, target.port, Purpose::Tunnel)
        .await?;
    debug!(route, "tunnel opened through the parent");
    if established(via.stream.local_addr().ok()).await.is_err() {
        return Ok(());
    }
    if !via.pending.is_empty()
        && tunnel::write_all(client, &via.pending, snapshot.timeouts.idle)
            .await
            .is_err()
    {
        return Ok(());
    }
    relay_checked(client, &via.stream, early, target, snapshot, started).await;
    Ok(())
}

/// Relays between the client and an already connected destination (or parent), holding the
/// client's first bytes until they pass the first-bytes check.
async fn relay_checked(
    client: &TcpStream,
    upstream: &TcpStream,
    early: BytesMut,
    target: Target<'_>,
    snapshot: &Snapshot,
    started: std::time::Instant,
) {
    let idle = snapshot.timeouts.idle;
    let gate = async {
        let mut buf = early;
        let first = inspect::read_first(client, &mut buf, Instant::now() + idle).await;
        match first.and_then(|first| judge(snapshot, &first, target)) {
            Ok(()) => Ok(buf),
            Err(refusal) => {
                refuse_in_tunnel(client, &buf, &refusal, target);
                Err(io::Error::other(Refused))
            }
        }
    };
    let counts = account::moved();
    let moved = tunnel::relay_gated(client, upstream, idle, &counts, gate).await;
    match moved {
        Err(e) if e.get_ref().is_some_and(|inner| inner.is::<Refused>()) => {}
        moved => log_end(target, moved, &counts, started),
    }
}

/// Marks a tunnel closed by the first-bytes check (already logged) among relay errors.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused by the first-bytes check")
    }
}

impl std::error::Error for Refused {}

fn judge(snapshot: &Snapshot, first: &FirstBytes, target: Target<'_>) -> Result<(), Refusal> {
    inspect::check(
        snapshot,
        target.policy,
        first,
        target.host,
        target.port,
        target.protocol,
        target.verdict.explicit_address,
    )
}

/// Logs the refusal and, when the client spoke TLS, sends it a fatal alert so it reports
/// "access denied" instead of a reset. The caller then closes the connection.
fn refuse_in_tunnel(client: &TcpStream, sent: &[u8], refusal: &Refusal, target: Target<'_>) {
    target.account_refused(refusal);
    warn!(
        decision = "deny",
        reason = refusal.reason.as_str(),
        detail = %refusal.detail,
        "tunnel refused"
    );
    if crate::client_hello::starts_tls(sent) {
        // Best effort: 7 bytes into an empty send buffer do not block.
        let _ = client.try_write(&TLS_ACCESS_DENIED_ALERT);
    }
}

fn log_end(
    target: Target<'_>,
    moved: io::Result<Transferred>,
    counts: &Moved,
    started: std::time::Instant,
) {
    // Counted as they went: a tunnel ended by an error is accounted with what it moved.
    let so_far = counts.so_far();
    let bytes = (so_far.client_to_upstream, so_far.upstream_to_client);
    account::served(
        target.protocol,
        (target.host, target.port),
        &target.verdict,
        bytes,
        started.elapsed(),
    );
    match moved {
        Ok(moved) => info!(
            bytes_up = moved.client_to_upstream,
            bytes_down = moved.upstream_to_client,
            duration_ms = started.elapsed().as_millis() as u64,
            "tunnel closed"
        ),
        Err(error) => debug!(%error, "tunnel ended with an error"),
    }
}
