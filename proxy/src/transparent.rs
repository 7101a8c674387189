//! Intercepted connections (`redirect://` and `tproxy://` listeners): programs that ignore proxy
//! settings, sent here by the firewall's `REDIRECT` or `tproxy`. Each connection is named before the policy sees it — by
//! its TLS ClientHello's SNI, or by each HTTP request's `Host` header (`http` serves those) —
//! and decided on that name exactly as an explicit proxy request would be (protocol
//! `transparent`). The name and the place the client was really going must agree: the original
//! destination has to be an address egress's own lookup gives for the name (`host-mismatch`
//! otherwise; an answer egress's DNS responder gave this client for the name counts as a
//! lookup), and it is the only address dialed. A connection without a name (no SNI, not HTTP)
//! is decided as the name the DNS responder handed its original address to this client for,
//! with its port; with no such answer, on the address itself, which only an IP entry allows.
//!
//! Refusals: a TLS `access_denied` alert to a TLS client, the usual HTTP answer to an HTTP one,
//! a plain close otherwise.

use std::net::SocketAddr;

use bytes::BytesMut;
use egress_config::{DenyReason, Host, Protocol, Request};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::answer::Refusal;
use crate::context::ConnContext;
use crate::establish::{self, Target};
use crate::inspect::{self, FirstBytes, TLS_ACCESS_DENIED_ALERT};
use crate::outbound::Pinned;
use crate::{account, decide, http, identify};

pub mod bind;
pub mod original;
pub mod rules;

use original::Diverted;

const PROTOCOL: Protocol = Protocol::Transparent;

pub use crate::stand_ins::StandIns;

/// Serves one intercepted connection to its end.
pub async fn serve(mut stream: TcpStream, mut ctx: ConnContext, how: Diverted) {
    tracing::Span::current().record("protocol", PROTOCOL.as_str());
    account::open_as(PROTOCOL);
    let original = where_to(&stream, &ctx, how);
    if let Ok(original) = original {
        tracing::Span::current().record("target", original.to_string().as_str());
    }
    let mut first = [0u8; 4];
    let wait = inspect::hello_wait(&ctx.snapshot);
    let peeked = tokio::time::timeout(wait, stream.peek(&mut first)).await;
    let peeked = match peeked {
        Ok(Ok(n)) if n > 0 => Some(&first[..n]),
        _ => None,
    };
    if let Ok(original) = original {
        ctx.intercepted = Some(original);
    }
    let stood_for = ctx.stood_for();
    if peeked.is_some_and(speaks_http) {
        return match original {
            Ok(_) => http::serve(stream, ctx).await,
            Err(refusal) => http::refuse(&mut stream, &refusal, PROTOCOL, None, None).await,
        };
    }
    let mut buf = BytesMut::new();
    let first = if peeked.is_some() {
        inspect::read_first(&stream, &mut buf, Instant::now() + wait).await
    } else {
        // Silent for the whole wait (a protocol where the server speaks first, like SSH), or
        // closed: there is no name to wait for.
        Ok(FirstBytes::Nothing)
    };
    let named = original.and_then(|original| Ok((original, sni(&first?)?)));
    let (original, mut sni) = match named {
        Ok(named) => named,
        Err(refusal) => return refuse(&stream, &buf, &refusal, None),
    };
    let port = original.port();
    if let Some(stood_for) = stood_for.as_ref() {
        // Without an SNI the connection goes by the name its address was given for; with one,
        // the two must agree.
        match sni.as_ref() {
            None => sni = Some(stood_for.clone()),
            Some(host) if host != stood_for => {
                let refusal = Refusal::new(
                    DenyReason::HostMismatch,
                    format!("the connection went to an address given for {stood_for}"),
                );
                return refuse(&stream, &buf, &refusal, Some((host, port)));
            }
            Some(_) => {}
        }
    }
    let identity = match identify::intercepted(
        &ctx.snapshot.identities,
        ctx.client.ip(),
        ctx.listener_identity.as_deref(),
    ) {
        Ok(identity) => identity,
        Err(refusal) => {
            let host = sni.unwrap_or(Host::Ip(original.ip()));
            return refuse(&stream, &buf, &refusal, Some((&host, port)));
        }
    };
    account::identified(&identity);
    let host = match sni {
        Some(sni) => sni,
        None => nameless(&ctx, &identity, original),
    };
    let verdict = match decide::decide(&ctx, &identity, &host, port, PROTOCOL).await {
        Ok(verdict) => verdict,
        Err(refusal) => return refuse(&stream, &buf, &refusal, Some((&host, port))),
    };
    let policy = ctx.snapshot.policy_for(&identity);
    let target = Target::allowed(ctx.client, &host, port, PROTOCOL, verdict, policy);
    // A stand-in address is no address of the name's: the name's own addresses are dialed.
    let target = match stood_for {
        Some(_) => target,
        None => target.pinned_to(Pinned {
            original,
            handed: ctx.handed.gave(ctx.client.ip(), &host, original.ip()),
        }),
    };
    let opened = establish::open(&stream, buf.clone(), target, &ctx.snapshot, |_| async {
        Ok(())
    })
    .await;
    if let Err(refusal) = opened {
        let refusal = match refusal.rule {
            Some(_) => refusal,
            None => refusal.with_rule(verdict.rule),
        };
        refuse(&stream, &buf, &refusal, Some((&host, port)));
    }
}

/// Whether the first bytes a client sent start an HTTP request. An SSH client's identification
/// (`SSH-2.0-…`, sent without waiting for the server's) starts like a request line too, but is
/// not one: it is served as a connection without a name.
fn speaks_http(first: &[u8]) -> bool {
    let ssh = first[..] == b"SSH-"[..first.len().min(4)];
    http::can_start_request(first[0]) && !ssh
}

/// The original destination, unless it is this proxy itself: a client that connects to the
/// listener directly, or is redirected to one of this host's own addresses, would otherwise
/// loop back into the proxy or reach its local services.
fn where_to(stream: &TcpStream, ctx: &ConnContext, how: Diverted) -> Result<SocketAddr, Refusal> {
    let original = original::destination(stream, how).map_err(|e| {
        Refusal::new(
            DenyReason::BadRequest,
            format!("the connection has no original destination (was it redirected?): {e}"),
        )
    })?;
    let original = SocketAddr::new(original.ip().to_canonical(), original.port());
    // Only a redirected connection has a local address of its own to compare with: a diverted
    // one's local address is its original destination.
    let local = match how {
        Diverted::Redirect => stream.local_addr().ok().map(|l| l.ip().to_canonical()),
        Diverted::Tproxy => None,
    };
    if Some(original.ip()) == local || ctx.snapshot.guard.is_own(original.ip()) {
        return Err(Refusal::new(
            DenyReason::PrivateAddress,
            format!("the connection was going to {original}, this proxy's own host (a loop)"),
        ));
    }
    Ok(original)
}

/// The name a non-HTTP connection sent: its SNI, if any.
fn sni(first: &FirstBytes) -> Result<Option<Host>, Refusal> {
    let sni = match first {
        FirstBytes::Tls(hello) => hello.server_name.as_deref(),
        FirstBytes::NotTls | FirstBytes::Nothing => None,
    };
    sni.map(|sni| {
        Host::parse(sni).map_err(|e| {
            Refusal::new(
                DenyReason::BadRequest,
                format!("invalid TLS server name {sni:?}: {e}"),
            )
        })
    })
    .transpose()
}

/// What a connection that sent no name (SSH, TLS without SNI) is decided as: a name the DNS
/// responder handed its original address to this client for — one the policy allows on this
/// port if there is one, so the decision names the rule — else the address itself, which only
/// an IP entry allows.
fn nameless(ctx: &ConnContext, identity: &str, original: SocketAddr) -> Host {
    let names = ctx.handed.names(ctx.client.ip(), original.ip());
    let policy = ctx.snapshot.policy_for(identity);
    let allowed = names.iter().find(|name| {
        policy
            .decide(&Request {
                host: name,
                port: original.port(),
                protocol: PROTOCOL,
            })
            .permits()
    });
    match allowed.or(names.first()) {
        Some(name) => name.clone(),
        None => Host::Ip(original.ip()),
    }
}

/// Accounts and logs the refusal; a TLS client gets a fatal `access_denied` alert so it reports
/// "access denied" rather than a reset. The connection then closes.
fn refuse(stream: &TcpStream, sent: &[u8], refusal: &Refusal, target: Option<(&Host, u16)>) {
    account::refused(PROTOCOL, target, refusal.reason, refusal.rule.as_deref());
    // Policy denials were logged by `decide` already.
    if refusal.reason.fault() != egress_config::Fault::Policy || target.is_none() {
        warn!(
            reason = refusal.reason.as_str(),
            detail = %refusal.detail,
            protocol = PROTOCOL.as_str(),
            "intercepted connection refused"
        );
    }
    if crate::client_hello::starts_tls(sent) {
        // Best effort: 7 bytes into an empty send buffer do not block.
        let _ = stream.try_write(&TLS_ACCESS_DENIED_ALERT);
    } else {
        debug!("closing without an answer: the client spoke neither TLS nor HTTP");
    }
}

#[cfg(test)]
mod tests {
    use super::speaks_http;

    #[test]
    fn an_ssh_identification_is_not_taken_for_an_http_request() {
        for http in [&b"GET "[..], b"POST", b"G", b"\r\n"] {
            assert!(speaks_http(http), "{http:?}");
        }
        for other in [&b"SSH-"[..], b"SSH", b"S", b"\x16\x03\x01\x02"] {
            assert!(!speaks_http(other), "{other:?}");
        }
    }
}
