//! A real Squid (Debian's `squid` package) as the corporate parent proxy in end-to-end tests.
//!
//! Companies chain their egress through a parent proxy of their own, most often Squid with
//! Basic auth and denials of its own. A stand-in written for these tests would only repeat our
//! own reading of how such a parent behaves, so the tests chain egress to the real one. Each
//! [`Squid`] gets its own configuration, logs, password file and hosts file in a temporary
//! directory and listens on a loopback port; the hosts file maps the test names to the local
//! origins, so Squid needs no DNS server for them and nothing leaves the machine. Its
//! access.log, written in a fixed format, is what the tests assert on.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine; every wait ends as soon as its condition holds.
const WAIT: Duration = Duration::from_secs(30);
/// Squid tells nothing but through its files, so the waits poll them, this often.
const POLL: Duration = Duration::from_millis(20);
/// Debian's path; the package puts its helpers outside every PATH.
const NCSA_AUTH: &str = "/usr/lib/squid/basic_ncsa_auth";
/// cache.log's line once the port is bound and listening.
const READY: &str = "Accepting HTTP Socket connections";
/// What Squid logs for a connection closed before it sent a request: a port check or a health
/// probe, not a transaction.
const NO_REQUEST: &str = "error:transaction-end-before-headers";

/// What a test's Squid does.
#[derive(Debug, Default, Clone, Copy)]
pub struct SquidOptions<'a> {
    /// Basic-auth users (name, password). Empty: no auth required.
    pub users: &'a [(&'a str, &'a str)],
    /// Destination domains Squid itself denies (`dstdomain`, e.g. ".denied-by-squid.test"):
    /// a 403 with `X-Squid-Error: ERR_ACCESS_DENIED 0`, after authentication.
    pub deny_domains: &'a [&'a str],
    /// A fixed port (a parent that comes up where one was dead); `None`: ephemeral.
    pub port: Option<u16>,
    /// Name → address, Squid's only name resolution (its `hosts_file`), e.g.
    /// `("allowed.test", "127.0.0.1")`.
    pub hosts: &'a [(&'a str, &'a str)],
    /// A second, TLS port (`https_port`) with this certificate.
    pub https: Option<HttpsPort<'a>>,
    /// Kerberos (`Negotiate`) required of every client instead of Basic.
    pub negotiate: Option<NegotiateAuth<'a>>,
}

/// Squid's `https_port`: a parent reached over TLS.
#[derive(Debug, Clone, Copy)]
pub struct HttpsPort<'a> {
    /// PEM certificate chain and key Squid presents.
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// `negotiate_kerberos_auth` with the HTTP service's keytab, in the test realm.
#[derive(Debug, Clone, Copy)]
pub struct NegotiateAuth<'a> {
    /// Holds `HTTP/<host>@REALM`; must be readable by Squid's user.
    pub keytab: &'a Path,
    /// The realm's krb5.conf, given to Squid (and so its helper) as `KRB5_CONFIG`.
    pub krb5_config: &'a Path,
}

/// Debian's path of the Kerberos helper.
const NEGOTIATE_AUTH: &str = "/usr/lib/squid/negotiate_kerberos_auth";
/// cache.log's line once the TLS port listens.
const READY_TLS: &str = "Accepting HTTPS Socket connections";

/// One transaction in Squid's access.log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    /// CONNECT, GET, …
    pub method: String,
    /// `host:port` for CONNECT, the absolute URL (`http://host:port/path`) otherwise.
    pub url: String,
    /// `-` when there was none.
    pub user: String,
    /// The status Squid sent its client (200, 403, 407, …).
    pub status: u16,
    /// TCP_TUNNEL, TCP_MISS, TCP_DENIED, …
    pub result_code: String,
    pub client: String,
}

/// A running Squid; dropping it ends Squid and its helpers.
#[derive(Debug)]
pub struct Squid {
    pub addr: SocketAddr,
    /// The `https_port`, when asked for.
    pub https_addr: Option<SocketAddr>,
    child: Child,
    /// Squid's service name (`-n`). It names the shared-memory segments Squid makes even as a
    /// single process, so every Squid needs its own, and they are found by it after a kill.
    service: String,
    dir: tempfile::TempDir,
}

impl Squid {
    /// Starts Squid and returns once it accepts connections; panics with its logs otherwise.
    pub fn start(options: &SquidOptions) -> Squid {
        // An ephemeral port is found by binding and releasing it, so something else may take it
        // before Squid binds: that case is tried again with a fresh port. A fixed port is the
        // test's own choice, so its failure is the test's to see.
        let tries = if options.port.is_some() { 1 } else { 3 };
        let mut failure = String::new();
        for _ in 0..tries {
            let port = options.port.unwrap_or_else(ephemeral_port);
            match Squid::spawn(options, port) {
                Ok(squid) => return squid,
                Err(report) if report.contains("Address already in use") => failure = report,
                Err(report) => panic!("{report}"),
            }
        }
        panic!("{failure}")
    }

    /// Every transaction logged so far, oldest first.
    pub fn access_log(&self) -> Vec<AccessEntry> {
        let text = read_lossy(&self.dir.path().join("access.log"));
        // Squid may be halfway through a line; only whole ones count.
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .lines()
            .map(|line| {
                parse_entry(line).unwrap_or_else(|| panic!("unexpected access.log line {line:?}"))
            })
            .filter(|entry| entry.url != NO_REQUEST)
            .collect()
    }

    /// Waits until access.log holds at least `n` transactions and returns them all. Squid logs a
    /// transaction when it ends: a tunnel's line comes after the tunnel closes.
    pub fn wait_for_entries(&self, n: usize) -> Vec<AccessEntry> {
        let deadline = Instant::now() + WAIT;
        loop {
            let entries = self.access_log();
            if entries.len() >= n {
                return entries;
            }
            if Instant::now() >= deadline {
                panic!(
                    "squid at {} logged {} of {n} transactions in {WAIT:?}: {entries:#?}\n{}",
                    self.addr,
                    entries.len(),
                    self.diagnostics()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn cache_log(&self) -> String {
        read_lossy(&self.dir.path().join("cache.log"))
    }

    /// The temporary directory holding this Squid's configuration and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(options: &SquidOptions, port: u16) -> Result<Squid, String> {
        let dir = tempfile::Builder::new()
            .prefix("egress-squid-")
            .tempdir()
            .expect("temporary directory for squid");
        let https_port = options.https.map(|_| ephemeral_port());
        write_files(dir.path(), options, (port, https_port));
        let output = File::create(dir.path().join("squid.out")).expect("squid.out");
        let service = service_name();
        let mut command = Command::new(squid_binary());
        if let Some(negotiate) = options.negotiate {
            command.env("KRB5_CONFIG", negotiate.krb5_config);
        }
        let child = command
            // In the foreground, as one process: the test owns it, and its helpers are its
            // children.
            .arg("-N")
            .args(["-n", &service, "-f"])
            .arg(dir.path().join("squid.conf"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("squid.out"))
            .stderr(output)
            // Its own process group, so that Drop ends the helpers with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run squid (Debian's `squid` package): {e}"));
        let mut squid = Squid {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            https_addr: https_port.map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p))),
            child,
            service,
            dir,
        };
        // On failure `squid` is dropped here, which ends whatever it started.
        squid.wait_until_listening().map(|()| squid)
    }

    fn wait_until_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.cache_log();
            if log.contains(READY) && (self.https_addr.is_none() || log.contains(READY_TLS)) {
                return Ok(());
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let what = match exited {
                    Some(status) => format!("exited ({status})"),
                    None => format!("was not listening after {WAIT:?}"),
                };
                return Err(format!(
                    "squid for {} {what}\n{}",
                    self.addr,
                    self.diagnostics()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    fn diagnostics(&self) -> String {
        let dir = self.dir.path();
        format!(
            "--- cache.log\n{}--- squid's stdout and stderr\n{}--- squid.conf\n{}",
            self.cache_log(),
            read_lossy(&dir.join("squid.out")),
            read_lossy(&dir.join("squid.conf")),
        )
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        // SIGKILL, because SIGTERM takes Squid about two seconds even with `shutdown_lifetime 0`;
        // what a clean exit would tidy (its shared memory) is removed below. The whole group, so
        // the auth helpers go too. The group cannot be anyone else's while its leader is
        // unreaped.
        let group = self.child.id();
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_group(group);
            // In case `kill` could not run: Squid's helpers end on their own when it is gone.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // The helpers are not our children: init reaps them, and they may take a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = group_members(group);
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                if !std::thread::panicking() {
                    panic!("squid's processes {left:?} outlived it");
                }
                break;
            }
            // Still members, so the group id is still this Squid's.
            kill_group(group);
            std::thread::sleep(POLL);
        }
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
    // Debian installs it in /usr/sbin, which is not on every user's PATH.
    let debian = Path::new("/usr/sbin/squid");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("squid")
    }
}

fn ephemeral_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("an ephemeral loopback port")
        .port()
}

fn service_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    // Alphanumeric only, as Squid requires; unique across the test binaries running at once.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("egress{}x{n}", std::process::id())
}

fn write_files(dir: &Path, options: &SquidOptions, port: (u16, Option<u16>)) {
    // squid.conf has no quoting for paths.
    assert!(
        !dir.to_string_lossy().contains(char::is_whitespace),
        "squid cannot use a path with spaces: {}",
        dir.display()
    );
    // Started as root, Squid refuses to stay root and runs as `cache_effective_user` (Debian's
    // `proxy`), which then writes the logs here and runs the auth helper that reads the
    // password file; started as anyone else, it stays that user. An open directory serves
    // both; its name is random and it lives only as long as the test.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .expect("chmod squid's directory");

    let mut hosts = String::from("127.0.0.1 localhost\n");
    for (name, address) in options.hosts {
        assert!(
            !name.is_empty() && !name.contains(char::is_whitespace),
            "host name {name:?}"
        );
        assert!(
            address.parse::<std::net::IpAddr>().is_ok(),
            "address {address:?} for {name}"
        );
        hosts.push_str(&format!("{address} {name}\n"));
    }
    write_readable(&dir.join("hosts"), &hosts);

    if !options.users.is_empty() {
        let mut passwd = String::new();
        for (user, password) in options.users {
            assert!(
                !user.is_empty() && !user.contains([':', ' ', '\n', '\r']),
                "htpasswd user name {user:?}"
            );
            assert!(
                !password.contains(['\n', '\r']),
                "password of {user} has a line break"
            );
            passwd.push_str(&format!("{user}:{}\n", md5_crypt(password)));
        }
        write_readable(&dir.join("passwd"), &passwd);
    }

    write_readable(&dir.join("squid.conf"), &squid_conf(dir, options, port));
}

fn squid_conf(
    dir: &Path,
    options: &SquidOptions,
    (port, https_port): (u16, Option<u16>),
) -> String {
    let d = dir.display();
    let mut conf = format!(
        "http_port 127.0.0.1:{port}\n\
         visible_hostname egress-test\n\
         pid_filename {d}/squid.pid\n\
         coredump_dir {d}\n\
         cache_log {d}/cache.log\n\
         # One line per transaction, in a fixed format the harness parses, written as soon as\n\
         # the transaction ends rather than when a buffer fills.\n\
         logformat egress %>a %un %rm %ru %>Hs %Ss\n\
         access_log stdio:{d}/access.log egress\n\
         buffered_logs off\n\
         # Whole URLs: Squid's default logs them without their query.\n\
         strip_query_terms off\n\
         # A caching parent could answer a repeated request without reaching the origin.\n\
         cache deny all\n\
         # The test names exist only here; Squid reads this file instead of /etc/hosts.\n\
         hosts_file {d}/hosts\n\
         # Nothing written outside this directory, no helper but the auth one, and a SIGTERM\n\
         # (should anyone send one) that ends Squid without a grace period.\n\
         netdb_filename none\n\
         pinger_enable off\n\
         shutdown_lifetime 0 seconds\n"
    );
    if let (Some(https), Some(https_port)) = (options.https, https_port) {
        conf.push_str(&format!(
            "https_port 127.0.0.1:{https_port} tls-cert={} tls-key={}\n",
            https.cert.display(),
            https.key.display()
        ));
    }
    if let Some(negotiate) = options.negotiate {
        // No -r: the principal with its realm is the user in access.log. GSS_C_NO_NAME: any
        // key in the keytab, as a Squid behind several names is usually set up.
        conf.push_str(&format!(
            "auth_param negotiate program {NEGOTIATE_AUTH} -k {} -s GSS_C_NO_NAME -c {d}\n\
             auth_param negotiate children 5\n\
             auth_param negotiate keep_alive on\n\
             acl authed proxy_auth REQUIRED\n\
             http_access deny !authed\n",
            negotiate.keytab.display()
        ));
    }
    // No SSL_ports/Safe_ports rules: the tests' origins are on ephemeral ports.
    if !options.deny_domains.is_empty() {
        // -n: an IP address as destination is not looked up by reverse DNS to be compared.
        conf.push_str(&format!(
            "acl denied_domains dstdomain -n {}\n",
            options.deny_domains.join(" ")
        ));
    }
    if !options.users.is_empty() {
        // Authentication first: no or wrong credentials are a 407 whatever the destination,
        // and a denied domain is a 403 for a known user, as in a company's Squid.
        conf.push_str(&format!(
            "auth_param basic program {NCSA_AUTH} {d}/passwd\n\
             auth_param basic realm egress-test\n\
             acl authed proxy_auth REQUIRED\n\
             http_access deny !authed\n"
        ));
    }
    if !options.deny_domains.is_empty() {
        conf.push_str("http_access deny denied_domains\n");
    }
    conf.push_str("http_access allow all\n");
    conf
}

/// An MD5-crypt (`$1$salt$hash`) password hash, one of the formats `basic_ncsa_auth` checks.
fn md5_crypt(password: &str) -> String {
    // The password goes through stdin, out of every process list.
    let mut openssl = Command::new("openssl")
        .args(["passwd", "-1", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl to hash a test password: {e}"));
    openssl
        .stdin
        .take()
        .expect("openssl's stdin")
        .write_all(password.as_bytes())
        .expect("password to openssl");
    let out = openssl.wait_with_output().expect("openssl passwd");
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && hash.starts_with("$1$"),
        "openssl passwd -1: {} {hash:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    hash
}

fn write_readable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    // Readable by Squid's user whatever the umask.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// `client user method url status result`, as the `egress` logformat writes it.
fn parse_entry(line: &str) -> Option<AccessEntry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // Only the user name, as the client claimed it, can hold a space; Squid encodes URLs.
    let [client, user @ .., method, url, status, result_code] = &fields[..] else {
        return None;
    };
    if user.is_empty() {
        return None;
    }
    Some(AccessEntry {
        method: method.to_string(),
        url: url.to_string(),
        user: user.join(" "),
        // Squid writes 0 when it sent no status; a `-` is read the same way.
        status: if *status == "-" {
            0
        } else {
            status.parse().ok()?
        },
        result_code: result_code.to_string(),
        client: client.to_string(),
    })
}

/// SIGKILL to a process group. The workspace forbids `unsafe`, so not libc's kill(2) but
/// procps' `kill`, which takes a negative id for a group.
fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Live processes in a process group; zombies have ended and only wait for init.
fn group_members(group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid pgrp …`, where comm may hold spaces and parentheses.
            let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
            let state = fields.next()?;
            let pgrp: u32 = fields.nth(1)?.parse().ok()?;
            (pgrp == group && state != "Z" && state != "X").then_some(pid)
        })
        .collect()
}
