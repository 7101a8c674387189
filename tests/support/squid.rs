//! A real Squid (Debian's `squid`) as the corporate parent proxy in end-to-end tests: its own
//! configuration in a temporary directory, an ephemeral loopback port, Basic auth from an
//! htpasswd file the harness writes, `dstdomain` denials, and a hosts file so it reaches the
//! tests' local origins by name without any DNS. Its access.log (one line per transaction, in a
//! fixed format) is what the tests assert on. Nothing leaves the machine.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::WAIT;

/// What a test's Squid should do.
#[derive(Debug, Default)]
pub struct SquidOptions<'a> {
    /// Basic-auth users; empty: no authentication required.
    pub users: &'a [(&'a str, &'a str)],
    /// `dstdomain` entries Squid itself refuses (403, `X-Squid-Error: ERR_ACCESS_DENIED 0`).
    pub deny_domains: &'a [&'a str],
    /// A fixed port (a parent coming up where one was dead); `None`: ephemeral.
    pub port: Option<u16>,
    /// Name → address, written to Squid's `hosts_file`.
    pub hosts: &'a [(&'a str, &'a str)],
}

/// One access.log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub client: String,
    /// `-` when there was none.
    pub user: String,
    pub method: String,
    /// `host:port` for CONNECT, the absolute URL otherwise.
    pub url: String,
    pub status: u16,
    /// Squid's result code: `TCP_TUNNEL`, `TCP_MISS`, `TCP_DENIED`…
    pub result_code: String,
}

pub struct Squid {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
    /// Squid's `-n` service name, which prefixes its shared-memory segments.
    service: String,
}

impl Squid {
    pub fn start(options: &SquidOptions) -> Squid {
        // An ephemeral port is picked by binding and releasing it; another process may take it
        // in between, so a failed start is retried with a fresh port.
        for _ in 0..3 {
            let port = options.port.unwrap_or_else(free_port);
            match Self::try_start(options, port) {
                Ok(squid) => return squid,
                Err(log) if options.port.is_none() && log.contains("Address already in use") => {
                    continue
                }
                Err(log) => panic!("squid did not start on port {port}; cache.log:\n{log}"),
            }
        }
        panic!("squid could not find a free port in three tries");
    }

    fn try_start(options: &SquidOptions, port: u16) -> Result<Squid, String> {
        let dir = tempfile::Builder::new()
            .prefix("egress-squid")
            .tempdir()
            .expect("temp dir");
        let root = dir.path();
        write_config(root, options, port);
        // Squid started as root runs as `cache_effective_user` (proxy); it must be able to
        // write its logs and read its files here.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        // The service name (-n) names Squid's shared-memory segments: several Squids at once
        // need distinct ones.
        let service = format!("egress{}p{port}", std::process::id());
        let child = Command::new(squid_binary())
            .args(["-N", "-n", &service, "-f"])
            .arg(root.join("squid.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop can stop Squid and its helpers together.
            .process_group(0)
            .spawn()
            .expect("spawn squid (is the squid package installed?)");
        let mut squid = Squid {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            dir,
            service,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let log = squid.cache_log();
            if log.contains("Accepting HTTP Socket connections")
                && TcpStream::connect(squid.addr).is_ok()
            {
                return Ok(squid);
            }
            if log.contains("FATAL") || !squid.running() || Instant::now() > deadline {
                return Err(log);
            }
            // Squid has no readiness signal but its log; this polls it, bounded by `deadline`.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn cache_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("cache.log")).unwrap_or_default()
    }

    /// The requests Squid logged. Connections that closed before sending anything (the
    /// harness's readiness check, egress's health probes) are left out.
    pub fn access_log(&self) -> Vec<AccessEntry> {
        let text = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(parse_entry)
            .filter(|e| e.url != "error:transaction-end-before-headers")
            .collect()
    }

    /// Waits until access.log holds at least `n` entries (Squid writes a line when a
    /// transaction ends, so a tunnel's line follows its close), and returns them all.
    pub fn wait_for_entries(&self, n: usize) -> Vec<AccessEntry> {
        let deadline = Instant::now() + WAIT;
        loop {
            let entries = self.access_log();
            if entries.len() >= n {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {n} access.log entries, have {}: {entries:?}\ncache.log:\n{}",
                entries.len(),
                self.cache_log()
            );
            // Polls a file another process appends to, bounded by `deadline`.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        // The whole group: the master, its kid and the auth helpers. TERM first, so Squid
        // removes its shared-memory segments (shutdown_lifetime is 0); KILL what is left.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.running() && Instant::now() < deadline {
            // Waits for the process to exit, bounded by `deadline`.
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        // Whatever a killed Squid left in /dev/shm would pile up over test runs.
        let prefix = format!("{}-", self.service);
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

fn squid_binary() -> PathBuf {
    ["/usr/sbin/squid", "/usr/local/sbin/squid"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("squid"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(root: &Path, options: &SquidOptions, port: u16) {
    let path = |name: &str| root.join(name).display().to_string();
    let hosts: String = options
        .hosts
        .iter()
        .map(|(name, addr)| format!("{addr} {name}\n"))
        .collect();
    std::fs::write(root.join("hosts"), hosts).expect("hosts");
    let mut conf = format!(
        "http_port 127.0.0.1:{port}\n\
         pid_filename {pid}\n\
         cache_log {cache_log}\n\
         logformat egress %>a %un %rm %ru %>Hs %Ss\n\
         access_log stdio:{access_log} egress\n\
         buffered_logs off\n\
         cache deny all\n\
         coredump_dir {root}\n\
         shutdown_lifetime 0 seconds\n\
         visible_hostname egress-test\n\
         hosts_file {hosts}\n\
         cache_effective_user proxy\n",
        pid = path("squid.pid"),
        cache_log = path("cache.log"),
        access_log = path("access.log"),
        root = root.display(),
        hosts = path("hosts"),
    );
    if !options.deny_domains.is_empty() {
        conf.push_str(&format!(
            "acl denied dstdomain {}\n",
            options.deny_domains.join(" ")
        ));
    }
    if options.users.is_empty() {
        if !options.deny_domains.is_empty() {
            conf.push_str("http_access deny denied\n");
        }
        conf.push_str("http_access allow all\n");
    } else {
        let passwd: String = options
            .users
            .iter()
            .map(|(user, password)| format!("{user}:{}\n", md5_crypt(password)))
            .collect();
        std::fs::write(root.join("passwd"), passwd).expect("passwd");
        conf.push_str(&format!(
            "auth_param basic program /usr/lib/squid/basic_ncsa_auth {}\n\
             auth_param basic realm egress-test\n\
             acl authed proxy_auth REQUIRED\n\
             http_access deny !authed\n",
            path("passwd")
        ));
        // After authentication, so a denied domain is a 403 for a known user.
        if !options.deny_domains.is_empty() {
            conf.push_str("http_access deny denied\n");
        }
        conf.push_str("http_access allow authed\nhttp_access deny all\n");
    }
    std::fs::write(root.join("squid.conf"), conf).expect("squid.conf");
    for name in ["hosts", "passwd", "squid.conf"] {
        let _ = std::fs::set_permissions(root.join(name), std::fs::Permissions::from_mode(0o644));
    }
}

/// An MD5-crypt hash (`$1$…`), which `basic_ncsa_auth` accepts, from the openssl CLI.
fn md5_crypt(password: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["passwd", "-1", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(password.as_bytes())
            .expect("write password");
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read hash");
    assert!(
        child.wait().expect("openssl").success(),
        "openssl passwd failed"
    );
    out.trim().to_string()
}

fn parse_entry(line: &str) -> Option<AccessEntry> {
    let mut fields = line.split_whitespace();
    Some(AccessEntry {
        client: fields.next()?.to_string(),
        user: fields.next()?.to_string(),
        method: fields.next()?.to_string(),
        url: fields.next()?.to_string(),
        status: fields.next()?.parse().ok()?,
        result_code: fields.next()?.to_string(),
    })
}
