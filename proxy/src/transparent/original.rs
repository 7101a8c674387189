//! Where an intercepted connection was going before the firewall redirected it to us:
//! `SO_ORIGINAL_DST` (IPv4) or `IP6T_SO_ORIGINAL_DST` (IPv6), read from conntrack's NAT record.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

/// The original destination of `stream`, redirected by nftables/iptables `REDIRECT`. A stream
/// that was not redirected (a client connected to the listener itself) reports its own local
/// address here, or an error when conntrack has no record of it.
pub fn destination(stream: &TcpStream) -> io::Result<SocketAddr> {
    let local = stream.local_addr()?;
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
