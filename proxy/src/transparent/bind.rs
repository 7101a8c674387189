//! Binding a `tproxy://` listener: `IP_TRANSPARENT` (and `IPV6_TRANSPARENT`) let it accept
//! connections addressed to any destination that nftables `tproxy` diverts to it, each keeping
//! its original destination as its local address. Needs `CAP_NET_ADMIN`.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;

/// The listen backlog, as the standard library's.
#[cfg(target_os = "linux")]
const BACKLOG: i32 = 1024;

/// A listening socket on `address` that accepts diverted connections.
#[cfg(target_os = "linux")]
pub fn tproxy_listener(address: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    match address {
        SocketAddr::V4(_) => socket.set_ip_transparent_v4(true)?,
        SocketAddr::V6(_) => {
            socket.set_ip_transparent_v6(true)?;
            // IPv4 connections diverted to a dual-stack socket are matched by this one.
            socket.set_ip_transparent_v4(true)?;
        }
    }
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

#[cfg(not(target_os = "linux"))]
pub fn tproxy_listener(_address: SocketAddr) -> io::Result<TcpListener> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "tproxy:// listeners need Linux (IP_TRANSPARENT)",
    ))
}
