//! SOCKS5 (RFC 1928) with no-auth and username/password (RFC 1929), the login checked by
//! `identify`. CONNECT only: BIND and UDP
//! ASSOCIATE are answered "command not supported".
//!
//! Written here rather than taken from a crate because the handshake is small and hostile-input
//! facing: every read is bounded by one deadline, every malformed message gets its exact reply,
//! and the policy decision sits between parsing the request and dialing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::BytesMut;
use egress_config::{DenyReason, Host, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info};

use crate::account;
use crate::answer::{socks_code, socks_reply, Refusal};
use crate::context::ConnContext;
use crate::decide;
use crate::establish::{self, Target};
use crate::identify::{self, Login};
use crate::tunnel;

const VERSION: u8 = 0x05;
const METHOD_NO_AUTH: u8 = 0x00;
const METHOD_PASSWORD: u8 = 0x02;
const METHOD_NONE_ACCEPTABLE: u8 = 0xFF;
const PASSWORD_VERSION: u8 = 0x01;
const CMD_CONNECT: u8 = 0x01;
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// Why a handshake stopped before a request was understood.
#[derive(Debug)]
pub enum Handshake {
    /// The peer closed, stalled past the deadline or sent bytes we already answered; just close.
    Gone,
    /// Answer with this reply code, then close.
    Reply(u8, &'static str),
    /// The client is not let in (no acceptable login): already answered, record and close.
    Refused(Refusal),
}

impl From<std::io::Error> for Handshake {
    fn from(_: std::io::Error) -> Self {
        Handshake::Gone
    }
}

pub async fn serve(mut stream: TcpStream, ctx: ConnContext) {
    let protocol = Protocol::Socks5;
    account::open_as(protocol);
    let span = tracing::Span::current();
    span.record("protocol", protocol.as_str());
    let Some((identity, host, port)) = negotiate(&mut stream, &ctx).await else {
        return;
    };
    let authority = host.authority(port);
    span.record("target", authority.as_str());
    let snapshot = &ctx.snapshot;
    let verdict = match decide::decide(&ctx, &identity, &host, port, protocol).await {
        Ok(verdict) => verdict,
        Err(refusal) => {
            account::refused(
                protocol,
                Some((&host, port)),
                refusal.reason,
                refusal.rule.as_deref(),
            );
            return reply(&mut stream, socks_code(refusal.reason), None).await;
        }
    };
    let target = Target::allowed(
        ctx.client,
        &host,
        port,
        protocol,
        verdict,
        snapshot.policy_for(&identity),
    );
    let shared = &stream;
    let opened = establish::open(
        shared,
        BytesMut::new(),
        target,
        snapshot,
        |bound| async move {
            let answer = reply_bytes(socks_reply::SUCCEEDED, bound);
            tunnel::write_all(shared, &answer, snapshot.timeouts.idle).await
        },
    )
    .await;
    if let Err(refusal) = opened {
        account::refused(protocol, Some((&host, port)), refusal.reason, verdict.rule);
        refuse_after_decision(&mut stream, &refusal).await;
    }
}

/// The negotiation, bounded by the handshake timeout: who the client is and the target it asked
/// for, or `None` when the client left, stalled, was not let in or asked for something unusable
/// (answered and recorded here).
async fn negotiate(stream: &mut TcpStream, ctx: &ConnContext) -> Option<(Arc<str>, Host, u16)> {
    let protocol = Protocol::Socks5;
    let deadline = Instant::now() + ctx.snapshot.timeouts.handshake;
    let identities = &ctx.snapshot.identities;
    let listener = ctx.listener_identity.as_deref();
    let identify = |login| {
        identify::identify(
            identities,
            &ctx.snapshot.verifier,
            ctx.client.ip(),
            listener,
            login,
        )
    };
    let request =
        tokio::time::timeout_at(deadline, handshake(stream, identities.logins(), identify)).await;
    match request {
        Ok(Ok((identity, host, port))) => {
            account::identified(&identity);
            Some((identity, host, port))
        }
        Ok(Err(Handshake::Refused(refusal))) => {
            info!(reason = refusal.reason.as_str(), detail = %refusal.detail, "refused");
            account::refused(protocol, None, refusal.reason, None);
            let _ = stream.shutdown().await;
            None
        }
        Ok(Err(Handshake::Reply(code, why))) => {
            info!(
                reason = DenyReason::BadRequest.as_str(),
                detail = why,
                "refused"
            );
            let reason = if code == socks_reply::COMMAND_NOT_SUPPORTED {
                DenyReason::UnsupportedMethod
            } else {
                DenyReason::BadRequest
            };
            account::refused(protocol, None, reason, None);
            reply(stream, code, None).await;
            None
        }
        Ok(Err(Handshake::Gone)) => None,
        Err(_) => {
            info!(
                reason = DenyReason::RequestTimeout.as_str(),
                "SOCKS5 handshake timed out"
            );
            account::refused(protocol, None, DenyReason::RequestTimeout, None);
            None
        }
    }
}

async fn refuse_after_decision(stream: &mut TcpStream, refusal: &Refusal) {
    info!(reason = refusal.reason.as_str(), detail = %refusal.detail, "refused");
    reply(stream, socks_code(refusal.reason), None).await;
}

/// Greeting, login and the request; returns who the client is (what `identify` made of its
/// login, or of no login) and the target. With `logins` (a users file) a client offering
/// user/password (0x02) is asked for it; a client offering only no-auth is let in only as
/// whoever `identify` makes of no login (a network identity, `anonymous`), else it gets
/// 0xFF. Generic over the stream and the check so the fuzz target can drive it in memory.
pub async fn handshake<S, F, Fut, T>(
    stream: &mut S,
    logins: bool,
    identify: F,
) -> Result<(T, Host, u16), Handshake>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(Option<Login>) -> Fut,
    Fut: std::future::Future<Output = Result<T, Refusal>>,
{
    let mut greeting = [0u8; 2];
    stream.read_exact(&mut greeting).await?;
    if greeting[0] != VERSION {
        // Only on a SOCKS5-only listener; a mixed one sends other first bytes to HTTP.
        let _ = stream.write_all(&[VERSION, METHOD_NONE_ACCEPTABLE]).await;
        return Err(Handshake::Gone);
    }
    let mut methods = [0u8; 255];
    let methods = &mut methods[..usize::from(greeting[1])];
    stream.read_exact(methods).await?;
    let offers_password = methods.contains(&METHOD_PASSWORD);
    let method = if logins && offers_password {
        METHOD_PASSWORD
    } else if methods.contains(&METHOD_NO_AUTH) {
        METHOD_NO_AUTH
    } else if offers_password {
        METHOD_PASSWORD
    } else {
        // Includes a greeting that offers zero methods.
        let _ = stream.write_all(&[VERSION, METHOD_NONE_ACCEPTABLE]).await;
        debug!(
            reason = DenyReason::BadRequest.as_str(),
            "no acceptable SOCKS5 method"
        );
        return Err(Handshake::Gone);
    };
    let identity = if method == METHOD_PASSWORD {
        let login = password(stream).await?;
        // Without a users file a login is read (the client insists) and not checked.
        match identify(login.filter(|_| logins)).await {
            Ok(identity) => {
                stream.write_all(&[PASSWORD_VERSION, 0x00]).await?;
                identity
            }
            Err(refusal) => {
                let _ = stream.write_all(&[PASSWORD_VERSION, 0x01]).await;
                return Err(Handshake::Refused(refusal));
            }
        }
    } else {
        match identify(None).await {
            Ok(identity) => {
                stream.write_all(&[VERSION, method]).await?;
                identity
            }
            Err(refusal) => {
                // auth.required and no login offered: no acceptable method (RFC 1928).
                let _ = stream.write_all(&[VERSION, METHOD_NONE_ACCEPTABLE]).await;
                return Err(Handshake::Refused(refusal));
            }
        }
    };
    let (host, port) = request(stream).await?;
    Ok((identity, host, port))
}

/// RFC 1929: reads the user and password (the caller checks them and writes the status).
async fn password<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Option<Login>, Handshake> {
    stream.write_all(&[VERSION, METHOD_PASSWORD]).await?;
    let mut version = [0u8; 2];
    stream.read_exact(&mut version).await?;
    if version[0] != PASSWORD_VERSION {
        let _ = stream.write_all(&[PASSWORD_VERSION, 0x01]).await;
        return Err(Handshake::Gone);
    }
    let mut user = vec![0u8; usize::from(version[1])];
    stream.read_exact(&mut user).await?;
    let mut len = [0u8; 1];
    stream.read_exact(&mut len).await?;
    let mut secret = vec![0u8; usize::from(len[0])];
    stream.read_exact(&mut secret).await?;
    Ok(Some(Login::new(&user, &secret)))
}

async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<(Host, u16), Handshake> {
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    let [version, command, _reserved, atyp] = head;
    if version != VERSION {
        return Err(Handshake::Reply(
            socks_reply::GENERAL_FAILURE,
            "request is not SOCKS version 5",
        ));
    }
    let host = match atyp {
        ATYP_IPV4 => {
            let mut ip = [0u8; 4];
            stream.read_exact(&mut ip).await?;
            Host::Ip(IpAddr::V4(Ipv4Addr::from(ip)))
        }
        ATYP_IPV6 => {
            let mut ip = [0u8; 16];
            stream.read_exact(&mut ip).await?;
            // Normalise like any other target (IPv4-mapped IPv6 becomes IPv4).
            Host::parse(&Ipv6Addr::from(ip).to_string()).map_err(|_| {
                Handshake::Reply(socks_reply::GENERAL_FAILURE, "invalid IPv6 address")
            })?
        }
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            stream.read_exact(&mut name).await?;
            let name = std::str::from_utf8(&name).map_err(|_| {
                Handshake::Reply(socks_reply::GENERAL_FAILURE, "domain is not UTF-8")
            })?;
            Host::parse(name).map_err(|_| {
                Handshake::Reply(socks_reply::GENERAL_FAILURE, "invalid domain name")
            })?
        }
        _ => {
            return Err(Handshake::Reply(
                socks_reply::ADDRESS_TYPE_NOT_SUPPORTED,
                "unknown address type",
            ))
        }
    };
    let mut port = [0u8; 2];
    stream.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);
    if command != CMD_CONNECT {
        return Err(Handshake::Reply(
            socks_reply::COMMAND_NOT_SUPPORTED,
            "only CONNECT is supported (not BIND or UDP ASSOCIATE)",
        ));
    }
    if port == 0 {
        return Err(Handshake::Reply(socks_reply::GENERAL_FAILURE, "port 0"));
    }
    Ok((host, port))
}

/// Sends a reply with the bound address (or 0.0.0.0:0 for failures); after a failure, closes
/// our sending half.
async fn reply(stream: &mut TcpStream, code: u8, bound: Option<SocketAddr>) {
    let _ = stream.write_all(&reply_bytes(code, bound)).await;
    if code != socks_reply::SUCCEEDED {
        let _ = stream.shutdown().await;
    }
}

fn reply_bytes(code: u8, bound: Option<SocketAddr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(22);
    out.extend_from_slice(&[VERSION, code, 0x00]);
    match bound {
        Some(SocketAddr::V6(addr)) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&addr.ip().octets());
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
        Some(SocketAddr::V4(addr)) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&addr.ip().octets());
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
        None => out.extend_from_slice(&[ATYP_IPV4, 0, 0, 0, 0, 0, 0]),
    }
    out
}
