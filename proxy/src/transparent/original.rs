//! Where an intercepted connection was going: for `REDIRECT`, `SO_ORIGINAL_DST` (IPv4) or
//! `IP6T_SO_ORIGINAL_DST` (IPv6), read from conntrack's NAT record; for `tproxy`, the
//! connection's own local address (nothing was rewritten).

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

/// How connections reach a listener that intercepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diverted {
    Redirect,
    Tproxy,
}

/// The original destination of `stream`. A redirected stream that was not redirected (a client
/// connected to the listener itself) reports its own local address here, or an error when
/// conntrack has no record of it.
pub fn destination(stream: &TcpStream, how: Diverted) -> io::Result<SocketAddr> {
    let local = stream.local_addr()?;
    if how == Diverted::Tproxy {
        return Ok(local);
    }
    // An IPv4 client on a dual-stack (`[::]`) listener arrives as an IPv4-mapped address, and
    // its NAT record is an IPv4 one.
    let v4 = match local.ip() {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    };
    lookup(stream, v4)
}

#[cfg(target_os = "linux")]
fn lookup(stream: &TcpStream, v4: bool) -> io::Result<SocketAddr> {
    use rustix::net::sockopt;
    if v4 {
        Ok(SocketAddr::V4(sockopt::ip_original_dst(stream)?))
    } else {
        Ok(SocketAddr::V6(sockopt::ipv6_original_dst(stream)?))
    }
}

#[cfg(not(target_os = "linux"))]
fn lookup(_stream: &TcpStream, _v4: bool) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "redirect:// listeners need Linux (conntrack's SO_ORIGINAL_DST)",
    ))
}
