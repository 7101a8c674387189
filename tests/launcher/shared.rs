//! `egress-run --proxy http://USER@HOST:PORT` against a real, shared egress-proxy that requires
//! a login (`auth.required: true`): the user's own policy applies to everything the command
//! does, and a refusal says whose policy refused, inside the sandbox and in the summary.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;

/// The egress-proxy binary of this build: beside egress-run (`cargo test --workspace` and
/// `cargo build` build both; the launcher package cannot name another package's binary).
fn proxy_binary() -> std::path::PathBuf {
    let path = Path::new(egress_run()).with_file_name("egress-proxy");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p egress-proxy`",
        path.display()
    );
    path
}

/// A running egress-proxy with `policy` (which names `listen: 127.0.0.1:0`), its JSON log
/// lines sent to the returned channel.
struct Shared {
    child: std::process::Child,
    addr: SocketAddr,
    log: mpsc::Receiver<serde_json::Value>,
}

impl Shared {
    fn start(dir: &Path, policy: &str) -> Shared {
        let file = dir.join("policy.yaml");
        std::fs::write(&file, policy).unwrap();
        let mut child = Command::new(proxy_binary())
            .arg("--config")
            .arg(&file)
            .args(["--log-format", "json"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
                let _ = tx.send(value);
            }
        });
        let mut shared = Shared {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        let listening = shared.wait_for("listening", |_| true);
        shared.addr = listening["address"].as_str().unwrap().parse().unwrap();
        shared
    }

    /// The next log event with `message` for which `pred` holds (bounded wait).
    fn wait_for(
        &mut self,
        message: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(v) if v["fields"]["message"] == message && pred(&v["fields"]) => {
                    return v["fields"].clone()
                }
                Ok(v) if v["message"] == message && pred(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {message:?} from egress-proxy"),
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds `user` to the users file with `egress-proxy passwd` (the password on stdin).
fn passwd(file: &Path, user: &str, password: &str) {
    let mut child = Command::new(proxy_binary())
        .args(["passwd", file.to_str().unwrap(), user])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn with_proxy_to_a_shared_egress_the_users_own_policy_applies_and_refusals_name_them() {
    const ALICE_PASSWORD: &str = "alice-team-3391";
    let servers = Servers::new();
    let (a, b) = (servers.http_origin(), servers.http_origin());
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.htpasswd");
    passwd(&users, "alice", ALICE_PASSWORD);
    passwd(&users, "bob", "bob-team-7710");
    // alice may reach origin a, bob origin b; nobody anything else. All origins are on
    // 127.0.0.1: the other user's origin is another port of a host alice may reach.
    let mut shared = Shared::start(
        dir.path(),
        &format!(
            "listen: 127.0.0.1:0\nallow: []\n\
             auth: {{users_file: {}, required: true, realm: team}}\n\
             identities:\n  alice: {{groups: [a]}}\n  bob: {{groups: [b]}}\n\
             groups:\n  a: {{allow: [\"{a}\"]}}\n  b: {{allow: [\"{b}\"]}}\n",
            users.display()
        ),
    );
    let work = tempfile::tempdir().unwrap();
    let proxy = format!("http://alice@{}", shared.addr);
    // Plain HTTP and a CONNECT tunnel (-p) to each origin, as alice.
    let script = format!(
        "curl -s http://{a}/hello; curl -s -p http://{a}/hello; \
         curl -s -i http://{b}/hello; curl -s -i -p http://{b}/hello"
    );
    let out = Command::new(egress_run())
        .args(["--proxy", &proxy, "--", "sh", "-c", &script])
        .current_dir(work.path())
        .env("HOME", no_home())
        .env("EGRESS_PROXY_PASSWORD", ALICE_PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("hello from origin\nhello from origin\nHTTP/1.1 403"),
        "{out:?}"
    );
    // Both refusals of b: egress-run's own reason, and the shared proxy's naming alice.
    let proxy_status =
        "Proxy-Status: egress; error=http_request_denied; details=\"port-not-allowed for identity alice\"";
    assert_eq!(stdout.matches(proxy_status).count(), 2, "{stdout}");
    assert_eq!(
        stdout.matches("X-Egress-Error: upstream-denied").count(),
        2,
        "{stdout}"
    );
    assert!(!stdout.contains(ALICE_PASSWORD), "{stdout}");
    // The summary at exit names the identity too.
    assert!(
        text(&out.stderr).contains(&format!(
            "egress-run: blocked {b} (upstream-denied: parent proxy: port-not-allowed for identity alice) ×2."
        )),
        "{out:?}"
    );
    // The shared proxy decided as alice, each time.
    for _ in 0..2 {
        shared.wait_for("decision", |f| {
            f["identity"] == "alice" && f["decision"] == "allow"
        });
    }
    for _ in 0..2 {
        shared.wait_for("decision", |f| {
            f["identity"] == "alice" && f["reason"] == "port-not-allowed"
        });
    }

    // A wrong password: the shared proxy's 407 is egress-run's upstream-auth-failed.
    let out = Command::new(egress_run())
        .args(["-q", "--proxy", &proxy, "--", "sh", "-c"])
        .arg(format!("curl -s -i http://{a}/hello"))
        .current_dir(work.path())
        .env("HOME", no_home())
        .env("EGRESS_PROXY_PASSWORD", "not-alices")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 502"), "{stdout}");
    assert!(
        stdout.contains("X-Egress-Error: upstream-auth-failed"),
        "{stdout}"
    );
}

/// A program that ignores the proxy variables (`curl --noproxy '*'`), captured inside the
/// sandbox, under `--proxy` to a shared egress: the stub hands out a stand-in for every name,
/// and each captured connection is asked of the shared proxy by its name, so the shared proxy
/// decides it and records it — its log, audit log and metrics — with its own reason.
#[test]
fn with_proxy_captured_connections_are_decided_and_recorded_by_the_shared_proxy() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let loopback: [std::net::IpAddr; 1] = ["127.0.0.1".parse().unwrap()];
    let dns = dns::DnsServer::start(&[
        ("allowed.test", &loopback[..]),
        ("denied.test", &loopback[..]),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let mut shared = Shared::start(
        dir.path(),
        &format!(
            "listen: 127.0.0.1:0\nallow: [\"allowed.test:{port}\"]\n\
             dns: {{nameservers: [\"{}\"]}}\n\
             address_guard: {{allow_networks: [127.0.0.1/32]}}\n\
             audit: {{path: {}}}\nadmin: 127.0.0.1:0\n",
            dns.addr,
            audit.display()
        ),
    );
    let admin = shared.wait_for("admin listening", |_| true)["address"]
        .as_str()
        .unwrap()
        .to_string();
    let work = tempfile::tempdir().unwrap();
    let script = format!(
        "curl -sS --noproxy '*' http://allowed.test:{port}/hello; \
         curl -s --noproxy '*' -o /dev/null -w '%{{http_code}}\\n' http://denied.test:{port}/hello"
    );
    let out = Command::new(egress_run())
        .args(["--proxy", &format!("http://{}", shared.addr)])
        .args(["--require-capture", "--", "sh", "-c", &script])
        .current_dir(work.path())
        .env("HOME", no_home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "hello from origin\n403\n", "{out:?}");
    // egress-run's summary names the captured refusal with the shared proxy's reason, as it does
    // for a request that came through the proxy variables.
    assert!(
        text(&out.stderr).contains(&format!(
            "egress-run: blocked denied.test:{port} (upstream-denied: parent proxy: not-allowlisted)."
        )),
        "{out:?}"
    );
    // The shared proxy decided both, by name.
    shared.wait_for("decision", |f| {
        f["host"] == "allowed.test" && f["decision"] == "allow"
    });
    shared.wait_for("decision", |f| {
        f["host"] == "denied.test" && f["reason"] == "not-allowlisted"
    });
    // Its audit log has both (written in batches: waited for, bounded).
    let read = || -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    wait::until("two audit lines", || read().len() >= 2);
    let lines = read();
    let line = |host: &str| lines.iter().find(|l| l["host"] == host).cloned().unwrap();
    assert_eq!(line("allowed.test")["decision"], "allow", "{lines:?}");
    let denied = line("denied.test");
    assert_eq!(
        (&denied["decision"], &denied["reason"], &denied["port"]),
        (&"deny".into(), &"not-allowlisted".into(), &port.into()),
        "{lines:?}"
    );
    // And its metrics.
    let metrics = Command::new("curl")
        .args(["-sS", &format!("http://{admin}/metrics")])
        .output()
        .unwrap();
    let metrics = text(&metrics.stdout);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("egress_decisions_total{")
                && l.contains("decision=\"deny\"")
                && l.contains("reason=\"not-allowlisted\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}
