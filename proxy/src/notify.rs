//! systemd's readiness protocol (`Type=notify`): `READY=1` once the listeners are bound and the
//! policy is in force, `WATCHDOG=1` at half the watchdog interval while the runtime runs,
//! `STOPPING=1` when shutdown begins. Each is one datagram to the Unix socket named by
//! `$NOTIFY_SOCKET`; without it (not started by systemd) nothing is sent.
//!
//! A few lines of our own instead of a crate: the protocol is one `sendto` of `KEY=VALUE`
//! lines, and std's `UnixDatagram` does it without `unsafe`.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Where systemd listens, from the environment (`None`: not under systemd's notify).
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: PathBuf,
}

impl Notifier {
    /// `$NOTIFY_SOCKET`, if set.
    pub fn from_env() -> Option<Notifier> {
        let socket = std::env::var_os("NOTIFY_SOCKET")?;
        (!socket.is_empty()).then(|| Notifier {
            socket: socket.into(),
        })
    }

    pub fn at(socket: impl Into<PathBuf>) -> Notifier {
        Notifier {
            socket: socket.into(),
        }
    }

    /// Sends `state` (`READY=1`, `WATCHDOG=1`, …) as one datagram.
    pub fn send(&self, state: &str) -> io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        let bytes = state.as_bytes();
        let sent = match self.abstract_name() {
            Some(name) => send_abstract(&socket, name, bytes)?,
            None => socket.send_to(bytes, &self.socket)?,
        };
        if sent != bytes.len() {
            return Err(io::Error::other("short write to NOTIFY_SOCKET"));
        }
        Ok(())
    }

    /// `@name`: a socket in the abstract namespace (systemd uses one in some setups).
    fn abstract_name(&self) -> Option<&[u8]> {
        use std::os::unix::ffi::OsStrExt;
        self.socket.as_os_str().as_bytes().strip_prefix(b"@")
    }

    /// Sends `state`, logging (not failing) when systemd cannot be told: the proxy serves
    /// either way, and systemd's own timeout reports a readiness that never came.
    pub fn tell(&self, state: &str) {
        match self.send(state) {
            Ok(()) => debug!(state, "told systemd"),
            Err(error) => warn!(%error, state, "cannot notify systemd"),
        }
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &[u8], bytes: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(bytes, &address)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::other("abstract sockets exist only on Linux"))
}

/// The watchdog interval systemd expects pings within (`$WATCHDOG_USEC`), when it is meant for
/// this process (`$WATCHDOG_PID`, when set, is ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog every half `interval` until `stop`: a runtime that stops running tasks
/// stops pinging, and systemd restarts the service.
pub async fn watchdog(notifier: Notifier, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => notifier.tell("WATCHDOG=1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_is_one_datagram_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::at(&path);
        notifier.send("READY=1\nSTATUS=serving").unwrap();
        notifier.send("WATCHDOG=1").unwrap();
        let mut buf = [0u8; 256];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        // Nobody listening: an error to log, not a panic or a hang.
        drop(systemd);
        assert!(notifier.send("READY=1").is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_abstract_socket_is_reached_by_its_name() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("egress-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = UnixDatagram::bind_addr(&address).unwrap();
        Notifier::at(format!("@{name}")).send("READY=1").unwrap();
        let mut buf = [0u8; 16];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_pings_at_half_the_interval_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        systemd.set_nonblocking(true).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(watchdog(
            Notifier::at(&path),
            Duration::from_secs(10),
            stop.clone(),
        ));
        // The first tick is at once, then one every 5 s: three in 10.5 s of paused time.
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        stop.cancel();
        task.await.unwrap();
        let mut pings = 0;
        let mut buf = [0u8; 16];
        while let Ok(n) = systemd.recv(&mut buf) {
            assert_eq!(&buf[..n], b"WATCHDOG=1");
            pings += 1;
        }
        assert_eq!(pings, 3);
    }
}
