//! A real TLS terminator (Debian's `stunnel4`) in front of a parent proxy, for the parent that
//! demands a client certificate: Debian's Squid is built with GnuTLS, whose `https_port` does
//! not enforce one, and companies that do enforce one often terminate TLS this way. stunnel
//! verifies the client's chain against a CA and refuses a client without a certificate.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::wait;

/// A running stunnel; dropping it ends it.
#[derive(Debug)]
pub struct Stunnel {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Stunnel {
    /// TLS on a loopback port with `cert`/`key`, requiring a client certificate issued by
    /// `client_ca`, forwarding the plain stream to `to`.
    pub fn start(cert: &Path, key: &Path, client_ca: &Path, to: SocketAddr) -> Stunnel {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let log = dir.path().join("stunnel.log");
        let conf = format!(
            "foreground = yes\npid =\noutput = {}\ndebug = 5\n\
             [parent]\naccept = 127.0.0.1:{port}\nconnect = {to}\n\
             cert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
            log.display(),
            cert.display(),
            key.display(),
            client_ca.display()
        );
        let path = dir.path().join("stunnel.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("stunnel4")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel4 is installed (tests/run.sh installs it)");
        let stunnel = Stunnel {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            child,
            dir,
        };
        wait::until("stunnel is configured and listening", || {
            stunnel.log().contains("Configuration successful")
        });
        stunnel
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stunnel.log")).unwrap_or_default()
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
