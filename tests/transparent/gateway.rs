//! A gateway made of three network namespaces, created by the test and removed when it ends:
//!
//! ```text
//! client 198.18.1.2 ─ c0 ═══ g0 198.18.1.1  gateway  198.18.2.1 g1 ═══ o0 ─ origin 198.18.2.2
//!        2001:2:0:1::2                (egress-proxy, nft REDIRECT)           198.18.2.3
//!                                                                           2001:2:0:2::2, ::3
//! ```
//!
//! The client's default routes point at the gateway, which forwards and redirects TCP 80 and
//! 443 arriving from the client side to egress's `redirect://` listener. The origin serves
//! HTTP and HTTPS on all its addresses (`origin.py`). Addresses are from the benchmarking
//! ranges (198.18.0.0/15, 2001:2::/48), which exist nowhere else.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::support::{self, Curl, Proxy, WAIT};

pub const GATEWAY_INSIDE: &str = "198.18.1.1";
pub const ORIGIN: &str = "198.18.2.2";
pub const ORIGIN_OTHER: &str = "198.18.2.3";
pub const ORIGIN6: &str = "2001:2:0:2::2";
pub const ORIGIN6_OTHER: &str = "2001:2:0:2::3";

/// How the gateway sends intercepted connections to egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diversion {
    /// nftables `redirect` (NAT) to a `redirect://` listener.
    Redirect,
    /// nftables `tproxy` plus policy routing to a `tproxy://` listener.
    Tproxy,
}

pub const BOTH: [Diversion; 2] = [Diversion::Redirect, Diversion::Tproxy];

/// The namespaces, the origin and the proxy; dropped in reverse: proxy, origin, namespaces.
pub struct Gateway {
    pub proxy: Proxy,
    origin: Child,
    /// With the DNS responder: the outside DNS server and sshd, in the origin namespace.
    outside: Vec<Child>,
    client: String,
    gateway: String,
    names: Vec<String>,
    _dir: tempfile::TempDir,
}

/// Runs a shell script and panics with its output when it fails.
pub fn sh(script: &str) {
    let out = Command::new("sh")
        .args(["-euc", script])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "script failed:\n{script}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Gateway {
    /// Builds the namespaces, starts the origin, then egress in the gateway namespace with
    /// `policy` and `hosts` as its `/etc/hosts`, and loads the redirect rule for the port it
    /// listens on. Prepended to `policy`: the listeners (`redirect://[::]:0`, and an explicit
    /// proxy on the gateway's inside address) and the audit log.
    pub fn start(diversion: Diversion, policy: &str, hosts: &str) -> Gateway {
        Gateway::start_with(diversion, policy, hosts, None)
    }

    /// `start`, with an authoritative DNS server outside serving `zone` (lines "NAME ADDRESS")
    /// and logging what it is asked, sshd outside on port 22, and the rules printed with
    /// `--dns --ports 22,80,443` (egress's responder answers; DNS elsewhere is dropped).
    /// `policy` names the responder (`dns_server`) and the outside server (`dns.nameservers`).
    pub fn start_with_dns(diversion: Diversion, policy: &str, hosts: &str, zone: &str) -> Gateway {
        Gateway::start_with(diversion, policy, hosts, Some(zone))
    }

    fn start_with(diversion: Diversion, policy: &str, hosts: &str, zone: Option<&str>) -> Gateway {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "egt{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let [c, g, o] = ["c", "g", "o"].map(|role| format!("{id}{role}"));
        let dir = tempfile::tempdir().expect("temp dir");
        let names = vec![c.clone(), g.clone(), o.clone()];
        // Removed on drop even when a step below fails.
        let mut half = Gateway::namespaces_only(names.clone());
        sh(&format!(
            "for n in {c} {g} {o}; do ip netns add $n; ip -n $n link set lo up; done
             ip -n {c} link add c0 type veth peer name g0 netns {g}
             ip -n {o} link add o0 type veth peer name g1 netns {g}
             ip -n {c} addr add 198.18.1.2/24 dev c0
             ip -n {c} addr add 2001:2:0:1::2/64 dev c0 nodad
             ip -n {g} addr add {GATEWAY_INSIDE}/24 dev g0
             ip -n {g} addr add 2001:2:0:1::1/64 dev g0 nodad
             ip -n {g} addr add 198.18.2.1/24 dev g1
             ip -n {g} addr add 2001:2:0:2::1/64 dev g1 nodad
             ip -n {o} addr add {ORIGIN}/24 dev o0
             ip -n {o} addr add {ORIGIN_OTHER}/24 dev o0
             ip -n {o} addr add {ORIGIN6}/64 dev o0 nodad
             ip -n {o} addr add {ORIGIN6_OTHER}/64 dev o0 nodad
             ip -n {c} link set c0 up; ip -n {g} link set g0 up
             ip -n {g} link set g1 up; ip -n {o} link set o0 up
             ip -n {c} route add default via {GATEWAY_INSIDE}
             ip -n {c} -6 route add default via 2001:2:0:1::1
             ip -n {o} route add default via 198.18.2.1
             ip -n {o} -6 route add default via 2001:2:0:2::1
             ip netns exec {g} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
        ));
        let origin = start_origin(dir.path(), &o);
        let outside = match zone {
            Some(zone) => vec![
                start_outside_dns(dir.path(), &o, zone),
                start_sshd(dir.path(), &o),
            ],
            None => Vec::new(),
        };
        let hosts = support::write_file(dir.path(), "hosts", hosts);
        let audit = dir.path().join("audit.jsonl");
        let scheme = match diversion {
            Diversion::Redirect => "redirect",
            Diversion::Tproxy => "tproxy",
        };
        let file = format!(
            "listen: [\"{scheme}://[::]:0\", \"{GATEWAY_INSIDE}:0\"]\n\
             audit: {{ path: \"{}\" }}\n{policy}",
            audit.display()
        );
        let script = "mount --bind \"$0\" /etc/hosts && exec \"$@\"";
        let proxy = Proxy::start_wrapped(
            &file,
            &[
                "ip",
                "netns",
                "exec",
                &g,
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                hosts.to_str().unwrap(),
            ],
        );
        let first = proxy
            .logs()
            .into_iter()
            .find(|v| support::message(v) == "listening");
        assert_eq!(first.expect("listening")["protocols"], scheme);
        let port = proxy.addr.port();
        let rules = if zone.is_some() {
            " --dns --ports 22,80,443"
        } else {
            ""
        };
        sh(&divert(diversion, &g, port, rules));
        half.names.clear();
        Gateway {
            proxy,
            origin,
            outside,
            client: c,
            gateway: g,
            names,
            _dir: dir,
        }
    }

    fn namespaces_only(names: Vec<String>) -> Cleanup {
        Cleanup { names }
    }

    /// The proxy's admin listener (on the gateway's loopback), from its log line.
    pub fn admin(&self) -> std::net::SocketAddr {
        let logs = self.proxy.logs();
        let line = logs
            .iter()
            .find(|v| support::message(v) == "admin listening")
            .expect("the admin listener's log line");
        line["address"].as_str().unwrap().parse().unwrap()
    }

    /// The explicit proxy's listener on the gateway's inside address, from its log line.
    pub fn explicit_proxy(&self) -> String {
        let logs = self.proxy.logs();
        let line = logs
            .iter()
            .find(|v| support::message(v) == "listening" && v["protocols"] == "http+socks5")
            .expect("the explicit listener's log line");
        format!("http://{}", line["address"].as_str().unwrap())
    }

    /// The audit log's records so far.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self._dir.path().join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
            .collect()
    }

    /// Runs curl in the client namespace, ignoring proxy settings as the programs this mode is
    /// for do.
    pub fn curl(&self, args: &[&str]) -> Curl {
        self.run_curl(&self.client, &[&["--noproxy", "*"], args].concat())
    }

    /// Runs curl in the client namespace through the explicit proxy (`-x`).
    pub fn curl_via_proxy(&self, args: &[&str]) -> Curl {
        let proxy = self.explicit_proxy();
        self.run_curl(&self.client, &[&["-x", proxy.as_str()], args].concat())
    }

    /// Runs curl in the gateway namespace (to read the proxy's admin listener on its loopback).
    pub fn curl_on_gateway(&self, args: &[&str]) -> Curl {
        self.run_curl(&self.gateway, args)
    }

    fn run_curl(&self, namespace: &str, args: &[&str]) -> Curl {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                namespace,
                "curl",
                "-sS",
                "--max-time",
                "10",
            ])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("ip netns exec curl");
        Curl {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a program in the client namespace with `hosts` as its `/etc/hosts` (so it resolves
    /// names by itself, as a program that knows nothing of the proxy does).
    pub fn run_in_client_with_hosts(&self, hosts: &str, program: &[&str]) -> Curl {
        let file = support::write_file(self._dir.path(), "client-hosts", hosts);
        let script = "mount --bind \"$0\" /etc/hosts && exec \"$@\"";
        let file = file.to_str().unwrap();
        let wrapper = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            file,
        ];
        self.run_in_client(&[&wrapper[..], program].concat(), b"")
    }

    /// What the outside DNS server was asked so far ("NAME TYPE" lines).
    pub fn outside_dns_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("outside-dns.log")).unwrap_or_default()
    }

    /// The origin's self-signed certificate (names allowed.test and denied.test), for clients
    /// that verify.
    pub fn origin_cert(&self) -> std::path::PathBuf {
        self._dir.path().join("origin.pem")
    }

    /// The private key sshd outside lets in as root.
    pub fn ssh_key(&self) -> std::path::PathBuf {
        self._dir.path().join("client_key")
    }

    /// Runs a program in the client namespace whose resolver is the gateway (egress's DNS
    /// responder), with nothing of the names in its `/etc/hosts`: as a client of a gateway
    /// configured by DHCP would.
    pub fn run_in_client_resolving(&self, nameserver: &str, program: &[&str]) -> Curl {
        let resolv = support::write_file(
            self._dir.path(),
            "client-resolv.conf",
            &format!("nameserver {nameserver}\noptions timeout:2 attempts:1\n"),
        );
        let hosts = support::write_file(
            self._dir.path(),
            "client-hosts-plain",
            "127.0.0.1 localhost\n",
        );
        let script = "mount --bind \"$0\" /etc/resolv.conf && mount --bind \"$1\" /etc/hosts \
                      && shift && exec \"$@\"";
        let wrapper = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            resolv.to_str().unwrap(),
            hosts.to_str().unwrap(),
        ];
        self.run_in_client(&[&wrapper[..], program].concat(), b"")
    }

    /// Runs a program in the client namespace and returns its exit code, stdout and stderr.
    pub fn run_in_client(&self, program: &[&str], stdin: &[u8]) -> Curl {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.client])
            .args(program)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ip netns exec");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        Curl {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.origin.kill();
        let _ = self.origin.wait();
        for child in &mut self.outside {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The proxy is killed by its own drop, after this; deleting its namespace first is fine
        // (a namespace lives on while a process is in it).
        Cleanup {
            names: std::mem::take(&mut self.names),
        };
    }
}

/// Deletes the namespaces it names when dropped.
struct Cleanup {
    names: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// The rules that send TCP 80 and 443 arriving from the client side to egress on `port`:
/// exactly what `egress-proxy transparent-rules` prints, plus tproxy's routes.
fn divert(diversion: Diversion, g: &str, port: u16, extra: &str) -> String {
    let bin = support::proxy_binary();
    match diversion {
        Diversion::Redirect => format!(
            "ip netns exec {g} {bin} transparent-rules --gateway g0 --port {port}{extra} \
             | ip netns exec {g} nft -f -"
        ),
        // tproxy hands the packet to the listening socket; the mark routes it (and the rest of
        // its connection) to this host instead of forwarding it.
        Diversion::Tproxy => format!(
            "ip -n {g} rule add fwmark 1 lookup 100
             ip -n {g} route add local 0.0.0.0/0 dev lo table 100
             ip -n {g} -6 rule add fwmark 1 lookup 100
             ip -n {g} -6 route add local ::/0 dev lo table 100
             ip netns exec {g} {bin} transparent-rules --gateway g0 --port {port} --tproxy{extra} \
             | ip netns exec {g} nft -f -"
        ),
    }
}

/// Starts `origin.py` in namespace `ns` with a fresh self-signed certificate and waits for its
/// "ready".
fn start_origin(dir: &Path, ns: &str) -> Child {
    let (cert, key) = (dir.join("origin.pem"), dir.join("origin.key"));
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout {} -out {} -subj /CN=origin -days 1 \
         -addext subjectAltName=DNS:allowed.test,DNS:denied.test 2>/dev/null",
        key.display(),
        cert.display()
    ));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/transparent/origin.py"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", script])
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start origin.py");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT).unwrap_or_default();
    assert_eq!(line.trim(), "ready", "origin.py did not start");
    child
}

/// Starts `dns_outside.py` in namespace `ns` serving `zone`, logging to `outside-dns.log`.
fn start_outside_dns(dir: &Path, ns: &str, zone: &str) -> Child {
    let zone = support::write_file(dir, "zone", zone);
    let log = dir.join("outside-dns.log");
    std::fs::write(&log, "").unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/transparent/dns_outside.py"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", script])
        .arg(&zone)
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start dns_outside.py");
    wait_ready(&mut child, "dns_outside.py");
    child
}

/// A real sshd in namespace `ns` on port 22 that lets `dir/client_key` in as root.
fn start_sshd(dir: &Path, ns: &str) -> Child {
    let (host_key, client_key) = (dir.join("host_key"), dir.join("client_key"));
    sh(&format!(
        "ssh-keygen -q -t ed25519 -N '' -f {} && ssh-keygen -q -t ed25519 -N '' -f {}",
        host_key.display(),
        client_key.display()
    ));
    // sshd refuses to start without its privilege-separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let config = support::write_file(
        dir,
        "sshd_config",
        &format!(
            "ListenAddress 0.0.0.0:22\nListenAddress [::]:22\nHostKey {}\nAuthorizedKeysFile {}.pub\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile none\n",
            host_key.display(),
            client_key.display()
        ),
    );
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .expect("start sshd");
    let probe = format!(
        "ip netns exec {ns} python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 22), timeout=1)'"
    );
    crate::support::wait::until("sshd listening", || {
        Command::new("sh")
            .args(["-c", &probe])
            .status()
            .is_ok_and(|s| s.success())
    });
    child
}

/// Waits for a child's first line to be "ready".
fn wait_ready(child: &mut Child, what: &str) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT).unwrap_or_default();
    assert_eq!(line.trim(), "ready", "{what} did not start");
}
