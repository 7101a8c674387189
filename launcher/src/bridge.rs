//! The only way out of the sandbox: a `SOCK_SEQPACKET` socket pair between egress-run's two
//! halves, made before bubblewrap starts and inherited by the inner half. Inside, egress-run
//! accepts each connection on the sandbox's 127.0.0.1:3128 and passes the accepted socket itself
//! out over the pair (`SCM_RIGHTS`); outside, the embedded proxy serves that socket directly. No
//! socket file, no directory, nothing to sweep after a
//! `kill -9`, no socat — and, with the embedded proxy, no listening port on the host at all.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use tokio::net::TcpStream;

/// The two ends: `(outside, inside)`, both close-on-exec. The caller lets `inside` reach
/// bubblewrap (see `run`) and keeps `outside`.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Messages that go in, from the outer half to the inner: "go" (one byte: the proxy is ready,
/// the command may start), and "signal N" (two bytes: pass signal N on to the command).
const GO: u8 = b'g';
const SIGNAL: u8 = b's';

/// Outside: tells the inner half to start the command.
pub fn send_go(control: impl AsFd) -> io::Result<()> {
    rustix::net::send(control, &[GO], SendFlags::NOSIGNAL)?;
    Ok(())
}

/// Outside: asks the inner half to pass `signal` on to the command. It waits in the socket if
/// the inner half is not reading yet.
pub fn send_signal(control: impl AsFd, signal: i32) -> io::Result<()> {
    let number = u8::try_from(signal).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    rustix::net::send(control, &[SIGNAL, number], SendFlags::NOSIGNAL)?;
    Ok(())
}

/// What the inner half hears from the outer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    Go,
    Signal(i32),
    /// The outer half closed the bridge (it refused the request, or died), or broke it.
    Closed,
}

/// Inside: waits for the next message.
pub fn hear(control: impl AsFd) -> Heard {
    let mut message = [0u8; 2];
    loop {
        return match rustix::net::recv(&control, &mut message, RecvFlags::empty()) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok((1, _)) if message[0] == GO => Heard::Go,
            Ok((2, _)) if message[0] == SIGNAL => Heard::Signal(i32::from(message[1])),
            // Anything else is not from egress-run's outer half: treat the bridge as broken.
            _ => Heard::Closed,
        };
    }
}

/// Inside: passes `stream` out through `control`. One message, one byte, one descriptor; the
/// caller closes its own copy afterwards.
pub fn pass_out(control: impl AsFd, stream: impl AsFd) -> io::Result<()> {
    let fds = [stream.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    ancillary.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        control,
        &[IoSlice::new(&[1])],
        &mut ancillary,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// What the inner half passes out: an accepted connection with its client's address (inside the
/// sandbox, always loopback), or the DNS stub's UDP socket (see `capture`).
#[derive(Debug)]
pub enum Passed {
    Connection(TcpStream, SocketAddr),
    Datagrams(std::net::UdpSocket),
}

/// Outside: receives the sandbox's connections until the inner half closes its end, handing
/// each to `deliver`. Whatever arrives that is neither a TCP nor a UDP socket is closed: only
/// the inner half should hold the other end, but this side does not rely on it.
pub async fn receive(control: OwnedFd, mut deliver: impl FnMut(Passed)) {
    // A SEQPACKET socket driven as a datagram socket: tokio only watches its readiness; every
    // read is the `recvmsg` below.
    let control = std::os::unix::net::UnixDatagram::from(control);
    if control.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(control) = tokio::net::UnixDatagram::from_std(control) else {
        return;
    };
    loop {
        let received = control
            .async_io(tokio::io::Interest::READABLE, || receive_one(&control))
            .await;
        match received {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Some(fd)) => {
                if let Some(passed) = as_socket(fd) {
                    deliver(passed);
                }
            }
            // A message without a descriptor: ignored.
            Ok(None) => {}
            // The inner half is gone (end of file) or the socket broke: nothing more will come.
            Err(_) => return,
        }
    }
}

/// Blocking: the next descriptor passed (`pass_out`) over any socket pair of `pair`, as
/// `receive_one` answers. The guard's channel uses it (see `guard`).
pub fn receive_fd(control: &impl AsFd) -> io::Result<Option<OwnedFd>> {
    receive_one(control)
}

/// One message: `Ok(Some(fd))`, `Ok(None)` for a message without a descriptor, and an error
/// (`UnexpectedEof` for the end) when the other side is gone.
fn receive_one(control: &impl AsFd) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        control,
        &mut [IoSliceMut::new(&mut byte)],
        &mut ancillary,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut passed = None;
    for message in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                // More than one descriptor in a message is not ours to use: the extras close.
                passed.get_or_insert(fd);
            }
        }
    }
    if got.bytes == 0 && passed.is_none() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(passed)
}

/// The descriptor as a connected TCP stream or a UDP socket, or `None` (and closed) if it is
/// anything else.
fn as_socket(fd: OwnedFd) -> Option<Passed> {
    use rustix::net::sockopt;
    let inet = matches!(
        sockopt::socket_domain(&fd),
        Ok(AddressFamily::INET | AddressFamily::INET6)
    );
    match sockopt::socket_type(&fd).ok()? {
        _ if !inet => return None,
        SocketType::STREAM => {}
        SocketType::DGRAM => return Some(Passed::Datagrams(std::net::UdpSocket::from(fd))),
        _ => return None,
    }
    let std_stream = std::net::TcpStream::from(fd);
    let peer = std_stream.peer_addr().ok()?;
    std_stream.set_nonblocking(true).ok()?;
    let stream = TcpStream::from_std(std_stream).ok()?;
    Some(Passed::Connection(stream, peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_and_signals_arrive_in_order_and_a_close_is_heard() {
        let (outside, inside) = pair().unwrap();
        send_signal(&outside, 15).unwrap();
        send_go(&outside).unwrap();
        send_signal(&outside, 2).unwrap();
        assert_eq!(hear(&inside), Heard::Signal(15));
        assert_eq!(hear(&inside), Heard::Go);
        assert_eq!(hear(&inside), Heard::Signal(2));
        drop(outside);
        assert_eq!(hear(&inside), Heard::Closed);
    }

    #[tokio::test]
    async fn a_passed_tcp_socket_arrives_connected_a_udp_socket_as_datagrams_and_others_are_refused(
    ) {
        let (outside, inside) = pair().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        // Neither: a pipe end, and a Unix socket. Dropped, not delivered.
        let (pipe_read, _pipe_write) = rustix::pipe::pipe().unwrap();
        pass_out(&inside, &pipe_read).unwrap();
        let (unix, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        pass_out(&inside, &unix).unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        pass_out(&inside, &udp).unwrap();
        pass_out(&inside, &accepted).unwrap();
        drop(accepted);
        drop(inside);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        receive(outside, move |passed| {
            let _ = tx.send(passed);
        })
        .await;
        match rx.recv().await {
            Some(Passed::Datagrams(got)) => {
                assert_eq!(got.local_addr().unwrap(), udp.local_addr().unwrap())
            }
            other => panic!("the UDP socket first, got {other:?}"),
        }
        let Some(Passed::Connection(mut stream, peer)) = rx.recv().await else {
            panic!("the TCP socket is delivered");
        };
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(rx.recv().await.is_none(), "only two deliveries");
        // The delivered stream is the accepted connection: what the client sends arrives.
        std::io::Write::write_all(&mut &client, b"hi").unwrap();
        let mut buf = [0u8; 2];
        tokio::io::AsyncReadExt::read_exact(&mut stream, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf, b"hi");
    }
}
