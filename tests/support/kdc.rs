//! A real MIT Kerberos KDC (Debian's `krb5-kdc`) for a test realm, on a loopback port, with
//! its database, configuration and keytabs in a temporary directory.
//!
//! Corporate parents authenticate with Kerberos; a stand-in KDC would only repeat our reading
//! of the protocol, so the tests create a realm with `kdb5_util`, principals and keytabs with
//! `kadmin.local`, and run `krb5kdc` in the foreground. Every Kerberos program of a test (the
//! KDC, Squid's helper, egress's agent, kinit, curl) finds the realm through `KRB5_CONFIG`,
//! which points at this directory's krb5.conf: host names are taken as written (`rdns`,
//! `dns_canonicalize_hostname` off) and `localhost` belongs to the realm, so nothing depends
//! on the machine's DNS.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::wait;

pub const REALM: &str = "EGRESS.TEST";
/// The database's master password: a test realm's, thrown away with it.
const MASTER: &str = "egress-test-master";

/// A running KDC; dropping it stops it (and the realm's files go with the directory).
#[derive(Debug)]
pub struct Kdc {
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Kdc {
    /// Creates the realm and starts its KDC.
    pub fn start() -> Kdc {
        let dir = tempfile::Builder::new()
            .prefix("egress-kdc-")
            .tempdir()
            .unwrap();
        // Squid's helper runs as Squid's user and reads krb5.conf and its keytab from here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut kdc = Kdc {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            child: None,
            dir,
        };
        kdc.write_configs();
        kdc.run(
            "kdb5_util",
            &["create", "-s", "-r", REALM, "-P", MASTER],
            "create the realm",
        );
        kdc.start_daemon();
        kdc
    }

    /// The realm's krb5.conf, for `KRB5_CONFIG`.
    pub fn krb5_config(&self) -> PathBuf {
        self.dir.path().join("krb5.conf")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment a Kerberos client of this realm needs.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(
            "KRB5_CONFIG".into(),
            self.krb5_config().display().to_string(),
        )]
    }

    /// A principal with a random key.
    pub fn add_principal(&self, name: &str) {
        self.kadmin(&format!("addprinc -randkey {name}"));
    }

    /// A principal with a password (a person who runs kinit).
    pub fn add_user(&self, name: &str, password: &str) {
        self.kadmin(&format!("addprinc -pw {password} {name}"));
    }

    /// Writes `name`'s current key to a new keytab `file` in this directory, readable by all
    /// (Squid's user reads the service's). Each call gives the principal a new key, so a keytab
    /// written earlier holds a stale one.
    pub fn keytab(&self, name: &str, file: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        self.kadmin(&format!("ktadd -k {} {name}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    pub fn delete_principal(&self, name: &str) {
        self.kadmin(&format!("delprinc -force {name}"));
    }

    /// Sets how long tickets for (or to) `name` live at most.
    pub fn max_life(&self, name: &str, life: &str) {
        self.kadmin(&format!("modprinc -maxlife \"{life}\" {name}"));
    }

    /// Stops the KDC: no new tickets until `restart`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The KDC's log: which tickets it issued to whom.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kdc.log")).unwrap_or_default()
    }

    fn kadmin(&self, query: &str) {
        self.run("kadmin.local", &["-r", REALM, "-q", query], query);
    }

    fn run(&self, program: &str, args: &[&str], what: &str) {
        let out = Command::new(program)
            .args(args)
            .envs(self.kdc_env())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} (tests/run.sh installs it): {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        // kadmin.local reports failures on stderr with a zero exit status.
        assert!(
            out.status.success() && !stderr.contains("while "),
            "{what}: {}\n{stderr}",
            out.status
        );
    }

    fn kdc_env(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("KRB5_CONFIG", self.krb5_config()),
            ("KRB5_KDC_PROFILE", self.dir.path().join("kdc.conf")),
        ]
    }

    fn start_daemon(&mut self) {
        let child = Command::new("krb5kdc")
            .args(["-n", "-r", REALM])
            .envs(self.kdc_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("krb5kdc is installed (tests/run.sh installs it)");
        self.child = Some(child);
        let addr = self.addr;
        wait::until("the KDC accepts connections", || {
            std::net::TcpStream::connect(addr).is_ok()
        });
    }

    /// Starts the KDC again after `stop`, on the same port.
    pub fn restart(&mut self) {
        self.start_daemon();
    }

    fn write_configs(&self) {
        let d = self.dir.path().display();
        let port = self.addr.port();
        // TCP only (udp_preference_limit = 1): one port to pick, and a KDC that is down is a
        // refused connection, not a UDP timeout.
        let krb5 = format!(
            "[libdefaults]\n\
             \tdefault_realm = {REALM}\n\
             \tdns_lookup_kdc = false\n\
             \tdns_lookup_realm = false\n\
             \trdns = false\n\
             \tdns_canonicalize_hostname = false\n\
             \tudp_preference_limit = 1\n\
             \tdefault_ccache_name = FILE:{d}/ccache-%{{uid}}\n\
             [realms]\n\
             \t{REALM} = {{\n\t\tkdc = 127.0.0.1:{port}\n\t}}\n\
             [domain_realm]\n\
             \tlocalhost = {REALM}\n"
        );
        let kdc = format!(
            "[kdcdefaults]\n\
             \tkdc_listen = 127.0.0.1:{port}\n\
             \tkdc_tcp_listen = 127.0.0.1:{port}\n\
             [realms]\n\
             \t{REALM} = {{\n\
             \t\tdatabase_name = {d}/principal\n\
             \t\tkey_stash_file = {d}/stash\n\
             \t\tacl_file = {d}/kadm5.acl\n\
             \t\tmax_life = 10h\n\
             \t}}\n\
             [logging]\n\
             \tkdc = FILE:{d}/kdc.log\n"
        );
        for (name, text) in [
            ("krb5.conf", krb5),
            ("kdc.conf", kdc),
            ("kadm5.acl", String::new()),
        ] {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        self.stop();
    }
}
