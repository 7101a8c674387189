//! Talking to a SOCKS5 parent: the destination goes as a name (address type 0x03), so the parent
//! resolves it; credentials by RFC 1929.

use std::net::IpAddr;

use egress_config::{DenyReason, Host, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Attempt;
use crate::answer::Refusal;

const VERSION: u8 = 0x05;
const NO_AUTH: u8 = 0x00;
const PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;

/// Opens a tunnel to `host:port` through the SOCKS5 parent on `stream`. The caller bounds the
/// whole exchange with its deadline.
pub async fn connect(
    stream: &mut TcpStream,
    upstream: &Upstream,
    host: &Host,
    port: u16,
) -> Result<(), Attempt> {
    authenticate(stream, upstream).await?;
    stream
        .write_all(&request(host, port).map_err(Attempt::Answered)?)
        .await
        .map_err(|e| io(upstream, e))?;
    read_reply(stream, upstream, host, port).await
}

/// The greeting, offering no authentication and (with a user name) RFC 1929's; then the user
/// name and password if the parent picks that.
async fn authenticate(stream: &mut TcpStream, upstream: &Upstream) -> Result<(), Attempt> {
    let io = |e| io(upstream, e);
    let credentials = upstream.user.as_deref().map(|user| {
        let password = upstream.password.as_ref().map_or("", |p| p.expose());
        (user, password)
    });
    let greeting: &[u8] = if credentials.is_some() {
        &[VERSION, 2, NO_AUTH, PASSWORD]
    } else {
        &[VERSION, 1, NO_AUTH]
    };
    stream.write_all(greeting).await.map_err(io)?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await.map_err(io)?;
    match (choice, credentials) {
        ([VERSION, NO_AUTH], _) => Ok(()),
        ([VERSION, PASSWORD], Some((user, password))) => {
            let (user, password) = (user.as_bytes(), password.as_bytes());
            if user.len() > 255 || password.len() > 255 {
                return Err(auth_failed(
                    upstream,
                    "credentials longer than SOCKS5 allows (255 bytes)",
                ));
            }
            let mut message = vec![0x01, user.len() as u8];
            message.extend_from_slice(user);
            message.push(password.len() as u8);
            message.extend_from_slice(password);
            stream.write_all(&message).await.map_err(io)?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status).await.map_err(io)?;
            if status[1] != 0 {
                return Err(auth_failed(
                    upstream,
                    "it rejected the user name and password",
                ));
            }
            Ok(())
        }
        ([VERSION, NO_ACCEPTABLE], _) | ([VERSION, PASSWORD], None) => Err(auth_failed(
            upstream,
            "it accepts none of the offered authentication methods",
        )),
        _ => Err(broken(upstream, "its greeting reply is not SOCKS5")),
    }
}

/// The parent's reply to the request: `Ok` when the tunnel is open, else its refusal (final:
/// the parent answered).
async fn read_reply(
    stream: &mut TcpStream,
    upstream: &Upstream,
    host: &Host,
    port: u16,
) -> Result<(), Attempt> {
    let io = |e| io(upstream, e);
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).await.map_err(io)?;
    // The bound address that follows is of no use here, but must be read off the stream.
    let address_len = match reply[3] {
        0x01 => 4,
        0x04 => 16,
        0x03 => usize::from(stream.read_u8().await.map_err(io)?),
        _ => return Err(broken(upstream, "its reply has an unknown address type")),
    };
    let mut bound = vec![0u8; address_len + 2];
    stream.read_exact(&mut bound).await.map_err(io)?;
    let target = host.authority(port);
    let parent = &upstream.name;
    let (reason, what) = match reply[1] {
        0x00 => return Ok(()),
        0x02 => (DenyReason::UpstreamDenied, "refused by its rules (0x02)"),
        0x03 => (
            DenyReason::UpstreamUnreachable,
            "network unreachable (0x03)",
        ),
        0x04 => (DenyReason::UpstreamUnreachable, "host unreachable (0x04)"),
        0x05 => (DenyReason::UpstreamRefused, "connection refused (0x05)"),
        0x06 => (DenyReason::UpstreamTimeout, "TTL expired (0x06)"),
        _ => (DenyReason::UpstreamUnreachable, "failed"),
    };
    Err(Attempt::Answered(Refusal::new(
        reason,
        format!("parent {parent}: {target} {what}"),
    )))
}

fn request(host: &Host, port: u16) -> Result<Vec<u8>, Refusal> {
    let mut out = vec![VERSION, 0x01, 0x00];
    match host {
        Host::Ip(IpAddr::V4(v4)) => {
            out.push(0x01);
            out.extend_from_slice(&v4.octets());
        }
        Host::Ip(IpAddr::V6(v6)) => {
            out.push(0x04);
            out.extend_from_slice(&v6.octets());
        }
        Host::Name(name) => {
            // Normalised names are at most 253 bytes, within SOCKS5's 255.
            let len = u8::try_from(name.len())
                .map_err(|_| Refusal::new(DenyReason::BadRequest, "name too long for SOCKS5"))?;
            out.push(0x03);
            out.push(len);
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

fn auth_failed(upstream: &Upstream, what: &str) -> Attempt {
    Attempt::Answered(Refusal::new(
        DenyReason::UpstreamAuthFailed,
        format!("parent {}: {what}", upstream.name),
    ))
}

/// The connection to the parent failed mid-exchange: it is not usable, try the next.
fn io(upstream: &Upstream, error: std::io::Error) -> Attempt {
    broken(upstream, &error.to_string())
}

/// The parent broke the protocol or the connection: it is not usable, try the next.
fn broken(upstream: &Upstream, what: &str) -> Attempt {
    Attempt::ParentFailed(Refusal::new(
        DenyReason::UpstreamUnreachable,
        format!(
            "parent {} ({}): {what}",
            upstream.name,
            upstream.display_url()
        ),
    ))
}
