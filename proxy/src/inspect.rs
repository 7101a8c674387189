//! The first bytes a client sends into a tunnel, judged before any of them reach the destination:
//! a TLS ClientHello must name (SNI) the host the tunnel was opened to, so an allowed name cannot
//! front for another site served by the same CDN (domain fronting).
//!
//! On port 443 this happens before the destination is dialed; on other ports the destination is
//! dialed first (server-speaks-first protocols such as SSH must not wait), but the client's first
//! bytes are still held back until they pass. A stream that starts like TLS (any record type, or
//! an SSLv2-format hello) is TLS on every port: it passes only with a ClientHello that passes, and
//! nothing before it, so a record in front of the hello cannot make it "not TLS".

use std::time::Duration;

use bytes::BytesMut;
use egress_config::{DenyReason, Host, Policy, Protocol, Request, SniCheck, WithoutSni};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::answer::Refusal;
use crate::client_hello::{Hello, HelloReader, Sniffed};
use crate::state::Snapshot;

/// What the client's first bytes turned out to be.
#[derive(Debug)]
pub enum FirstBytes {
    Tls(Hello),
    NotTls,
    /// Nothing arrived before the deadline, or the client closed without sending.
    Nothing,
}

/// A fatal TLS alert record (access_denied), sent instead of silence when a ClientHello is
/// refused, so TLS clients report "access denied" rather than a bare connection reset.
pub const TLS_ACCESS_DENIED_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31];

/// Room made for a read of the client's first bytes when the buffer has none (a ClientHello
/// that needs more asks for it).
const FIRST_READ: usize = 4 * 1024;

/// Reads into `buf` until its first bytes can be judged, or until `deadline`. `buf` may hold
/// bytes already; each byte is given to the reader once, as it arrives.
pub async fn read_first(
    client: &TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Result<FirstBytes, Refusal> {
    let mut reader = HelloReader::new();
    let mut fed = 0;
    loop {
        if buf.len() > fed {
            let verdict = reader.feed(&buf[fed..]);
            fed = buf.len();
            match verdict {
                Sniffed::Hello(hello) => return Ok(FirstBytes::Tls(hello)),
                Sniffed::NotTls => return Ok(FirstBytes::NotTls),
                Sniffed::Malformed(why) => {
                    return Err(Refusal::new(
                        DenyReason::BadRequest,
                        format!("malformed TLS ClientHello: {why}"),
                    ))
                }
                Sniffed::NeedMore { needed } => buf.reserve(needed),
            }
        }
        let read = tokio::time::timeout_at(deadline, async {
            loop {
                client.readable().await?;
                // The buffer is allocated only once the client has sent something: a tunnel
                // waiting for its first bytes holds none.
                if buf.capacity() == buf.len() {
                    buf.reserve(FIRST_READ);
                }
                match client.try_read_buf(buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            }
        })
        .await;
        match read {
            Ok(Ok(0)) | Err(_) if buf.is_empty() => return Ok(FirstBytes::Nothing),
            Ok(Ok(0)) => {
                return Err(Refusal::new(
                    DenyReason::BadRequest,
                    "the client closed in the middle of a TLS ClientHello",
                ))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(Refusal::new(
                    DenyReason::BadRequest,
                    format!("reading the client: {e}"),
                ))
            }
            Err(_) => {
                return Err(Refusal::new(
                    DenyReason::RequestTimeout,
                    "the TLS ClientHello did not arrive in time",
                ))
            }
        }
    }
}

/// Whether a tunnel to `target:port` may carry what its client sent first. `explicit_address` is
/// the verdict's: the allow entry names the target's IP itself.
pub fn check(
    snapshot: &Snapshot,
    policy: &Policy,
    first: &FirstBytes,
    target: &Host,
    port: u16,
    protocol: Protocol,
    explicit_address: bool,
) -> Result<(), Refusal> {
    let settings = &snapshot.tls;
    match first {
        FirstBytes::Tls(hello) => match &hello.server_name {
            Some(name) => check_sni(policy, settings.sni, name, target, port, protocol),
            None => without_sni(
                settings.without_sni,
                target,
                explicit_address,
                "the TLS ClientHello names no server (no SNI)",
            ),
        },
        FirstBytes::NotTls | FirstBytes::Nothing if settings.ports.contains(&port) => without_sni(
            settings.without_sni,
            target,
            explicit_address,
            "the client did not start TLS on a TLS port (tls.ports)",
        ),
        FirstBytes::NotTls | FirstBytes::Nothing => Ok(()),
    }
}

fn check_sni(
    policy: &Policy,
    mode: SniCheck,
    name: &str,
    target: &Host,
    port: u16,
    protocol: Protocol,
) -> Result<(), Refusal> {
    if mode == SniCheck::Off {
        return Ok(());
    }
    let sni = Host::parse(name).map_err(|e| {
        Refusal::new(
            DenyReason::BadRequest,
            format!("invalid TLS server name {name:?}: {e}"),
        )
    })?;
    if sni == *target {
        return Ok(());
    }
    let mismatch = || {
        Refusal::new(
            DenyReason::SniMismatch,
            format!("the TLS ClientHello asks for {sni}, but the tunnel was opened to {target}"),
        )
    };
    match mode {
        SniCheck::Match | SniCheck::Off => Err(mismatch()),
        SniCheck::Policy => {
            let verdict = policy.decide(&Request {
                host: &sni,
                port,
                protocol,
            });
            if matches!(verdict.action, egress_config::Action::Allow) {
                Ok(())
            } else {
                Err(mismatch())
            }
        }
    }
}

fn without_sni(
    setting: WithoutSni,
    target: &Host,
    explicit_address: bool,
    what: &str,
) -> Result<(), Refusal> {
    let allowed = match setting {
        WithoutSni::Allow => true,
        WithoutSni::Refuse => false,
        WithoutSni::ExplicitIp => matches!(target, Host::Ip(_)) && explicit_address,
    };
    if allowed {
        Ok(())
    } else {
        Err(Refusal::new(
            DenyReason::SniMismatch,
            format!("{what}; allowed only to an IP address an allow entry names explicitly (tls.without_sni)"),
        ))
    }
}

/// How long a tunnel to a TLS port waits for the ClientHello before it is dialed.
pub fn hello_wait(snapshot: &Snapshot) -> Duration {
    snapshot.timeouts.request_head
}
