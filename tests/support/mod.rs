//! Shared harness for the end-to-end tests: the real `egress-proxy` binary on an ephemeral
//! loopback port, real origins (plain HTTP and TLS, served by hyper), and curl as the client.
//! Readiness comes from the proxy's own JSON log (`listening`, `policy reloaded`), never sleeps.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod dns;
pub mod kdc;
pub mod origin;
pub mod pki;
pub mod prometheus;
pub mod squid;
pub mod stunnel;
pub mod tls_witness;
pub mod wait;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Long enough for a loaded CI machine; every wait ends as soon as its condition holds.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn proxy_binary() -> &'static str {
    env!("CARGO_BIN_EXE_egress-proxy")
}

/// A running `egress-proxy` with its own policy file in a temporary directory.
pub struct Proxy {
    child: Option<Child>,
    pid: u32,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    logs: Arc<Mutex<Vec<Value>>>,
    events: Mutex<mpsc::Receiver<Value>>,
}

impl Proxy {
    /// Starts the proxy with `policy` (YAML without `listen`; one mixed listener is added on an
    /// ephemeral port) and waits until it listens.
    pub fn start(policy: &str) -> Proxy {
        Self::start_with(&format!("listen: 127.0.0.1:0\n{policy}"), &[])
    }

    /// Starts with a complete policy file and extra arguments.
    pub fn start_with(file: &str, args: &[&str]) -> Proxy {
        Self::start_with_env(file, args, &[])
    }

    /// Like `start_with`, with extra environment variables (secrets go there, never in argv).
    pub fn start_with_env(file: &str, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, file).expect("write policy");
        let mut command = Command::new(proxy_binary());
        command
            .arg("--config")
            .arg(&path)
            .args(["--log-format", "json", "--log-level", "debug"])
            .args(args)
            .envs(env.iter().copied());
        Self::spawn(command, dir)
    }

    /// Starts the proxy in a mount namespace of its own after running `mount`, a shell command
    /// in which `$0` is `arg` (root gets a mount namespace; anyone else a user namespace too).
    pub fn start_after_mount(file: &str, mount: &str, arg: &str) -> Proxy {
        use std::os::unix::fs::MetadataExt;
        let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        let namespaces = if root { "-m" } else { "-rm" };
        let script = format!("{mount} && exec \"$@\"");
        Proxy::start_wrapped(
            file,
            &[
                "unshare",
                namespaces,
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
                arg,
            ],
        )
    }

    /// Starts the proxy with a complete policy file through `wrapper`: a command that ends by
    /// exec'ing the arguments appended to it (the binary and its arguments), e.g. `unshare`.
    /// The process, its pid and its log are the proxy's.
    pub fn start_wrapped(file: &str, wrapper: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, file).expect("write policy");
        let mut command = Command::new(wrapper[0]);
        command
            .args(&wrapper[1..])
            .arg(proxy_binary())
            .arg("--config")
            .arg(&path)
            .args(["--log-format", "json", "--log-level", "debug"]);
        Self::spawn(command, dir)
    }

    /// Starts the binary with exactly `args` (no policy file written).
    pub fn start_args(args: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(proxy_binary());
        command
            .args(["--log-format", "json", "--log-level", "debug"])
            .args(args);
        Self::spawn(command, dir)
    }

    /// Runs `command` (the proxy, or a wrapper that execs it) and waits until it listens.
    pub fn spawn(mut command: Command, dir: tempfile::TempDir) -> Proxy {
        command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn egress-proxy");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lock().unwrap().push(value.clone());
                if tx.send(value).is_err() {
                    // Nobody waits any more; keep draining so the proxy never blocks on stderr.
                }
            }
        });
        let mut proxy = Proxy {
            pid: child.id(),
            child: Some(child),
            addr: "0.0.0.0:0".parse().unwrap(),
            dir,
            logs,
            events: Mutex::new(rx),
        };
        let listening = proxy.wait_for_log("the proxy to listen", |v| message(v) == "listening");
        proxy.addr = listening["address"]
            .as_str()
            .expect("address field")
            .parse()
            .expect("address");
        proxy
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.yaml")
    }

    /// Replaces the policy file atomically (write a sibling, rename over), as tools and
    /// ConfigMaps do.
    pub fn replace_policy(&self, policy: &str) {
        let next = self.dir.path().join(".policy.yaml.next");
        std::fs::write(&next, format!("listen: 127.0.0.1:0\n{policy}")).expect("write");
        std::fs::rename(&next, self.policy_path()).expect("rename");
    }

    /// Waits for a log event matching `pred` (including ones already logged), or panics.
    pub fn wait_for_log(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        let events = self.events.lock().unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {what}; log:\n{}", self.log_text()),
            }
        }
    }

    /// Waits until `n` events matching `pred` were logged (counting from the last wait).
    pub fn wait_for_count(&self, what: &str, n: usize, pred: impl Fn(&Value) -> bool) {
        for i in 0..n {
            self.wait_for_log(&format!("{what} ({} of {n})", i + 1), &pred);
        }
    }

    /// Every event logged so far.
    pub fn logs(&self) -> Vec<Value> {
        self.logs.lock().unwrap().clone()
    }

    pub fn log_text(&self) -> String {
        self.logs().iter().map(|v| format!("{v}\n")).collect()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take().expect("still running");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(WAIT) {
            Ok(status) => status.expect("wait").code(),
            Err(_) => {
                self.signal("KILL");
                panic!("proxy did not exit; log:\n{}", self.log_text());
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The admin listener's address, from its log line.
    pub fn admin_addr(&self) -> SocketAddr {
        let event = self.wait_for_log("the admin listener", |v| message(v) == "admin listening");
        event["address"]
            .as_str()
            .expect("address")
            .parse()
            .expect("admin address")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or("")
}

/// What curl did.
#[derive(Debug)]
pub struct Curl {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The local origin's `/hello` answer arrived through the proxy, whole.
#[track_caller]
pub fn assert_served(r: &Curl) {
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "hello from origin\n"),
        "{r:?}"
    );
}

/// Runs curl with `args`, never reading any proxy settings from the environment.
pub fn curl(args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--noproxy", ""])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("curl is installed (tests/run.sh installs it)");
    Curl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A raw TCP client for hostile input: send bytes, read the whole answer until close.
pub fn raw_exchange(addr: SocketAddr, send: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(send).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// The value of `name` in an HTTP response head (case-insensitive), if present.
pub fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}
