//! The proxy under test: the real binary, its JSON log read for the addresses it bound and for
//! reload outcomes, signals by `kill`, `/metrics` over plain HTTP, RSS and descriptors from /proc.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::journal::Journal;
use crate::wire::Conn;

#[derive(Debug, Default)]
pub struct LogCounts {
    pub reloaded: AtomicU64,
    pub rejected: AtomicU64,
    pub warnings: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Debug)]
pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: Arc<LogCounts>,
}

impl Proxy {
    /// Starts `binary` on `policy` and waits (bounded) until both listeners are announced. The
    /// log is drained for the whole run; warnings, errors and reload lines go to `journal`.
    pub fn start(
        binary: &Path,
        policy: &Path,
        log_level: &str,
        journal: Arc<Journal>,
    ) -> anyhow::Result<Proxy> {
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(policy)
            .args(["--log-format", "json", "--log-level", log_level])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("stderr")?;
        let log = Arc::new(LogCounts::default());
        let counts = log.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                read_line(&line, &counts, &journal, &tx);
            }
        });
        let mut addr = None;
        let mut admin = None;
        while addr.is_none() || admin.is_none() {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(("listening", a)) => addr = Some(a),
                Ok((_, a)) => admin = Some(a),
                Err(_) => {
                    let _ = child.kill();
                    bail!(
                        "egress-proxy did not announce its listeners within 30 s (see proxy.log)"
                    );
                }
            }
        }
        Ok(Proxy {
            child,
            addr: addr.unwrap(),
            admin: admin.unwrap(),
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits up to `limit` for the exit code (`None`: killed after the limit).
    pub fn stop(&mut self, limit: Duration) -> Option<i32> {
        let _ = signal(self.pid(), "TERM");
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

type Announce = mpsc::Sender<(&'static str, SocketAddr)>;

fn read_line(line: &str, counts: &LogCounts, journal: &Journal, tx: &Announce) {
    // Per-request lines (decisions, denials logged at WARN) are the bulk: skip them unparsed.
    if line.contains("\"message\":\"decision\"") {
        return;
    }
    let interesting = line.contains("listening")
        || line.contains("policy")
        || line.contains("\"WARN\"")
        || line.contains("\"ERROR\"")
        || !line.starts_with('{');
    if !interesting {
        return;
    }
    let event: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let message = event["message"].as_str().unwrap_or("");
    let address = || event["address"].as_str().and_then(|a| a.parse().ok());
    match message {
        "listening" => {
            if let Some(a) = address() {
                let _ = tx.send(("listening", a));
            }
        }
        "admin listening" => {
            if let Some(a) = address() {
                let _ = tx.send(("admin", a));
            }
        }
        "policy reloaded" => {
            counts.reloaded.fetch_add(1, Ordering::Relaxed);
        }
        "policy reload rejected" => {
            counts.rejected.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
    match event["level"].as_str() {
        Some("WARN") => counts.warnings.fetch_add(1, Ordering::Relaxed),
        Some("ERROR") => counts.errors.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    journal.line(line);
}

/// Sends `signal` (a name: HUP, USR1, TERM) with kill(1).
pub fn signal(pid: u32, signal: &str) -> std::io::Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "kill -{signal} {pid}: {status}"
        )))
    }
}

/// `/metrics` in the classic text format: series (name with labels) → value.
pub fn scrape(admin: SocketAddr) -> anyhow::Result<BTreeMap<String, f64>> {
    let stream = TcpStream::connect_timeout(&admin, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut conn = Conn::new(stream);
    conn.stream().write_all(
        format!(
            "GET /metrics HTTP/1.1\r\nHost: {admin}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )?;
    let head = conn
        .read_head_or_eof()?
        .context("admin closed without an answer")?;
    if head.status() != Some(200) {
        bail!("/metrics answered {}", head.start_line);
    }
    let body = String::from_utf8(conn.read_body(&head, true)?)?;
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect())
}

/// Resident memory (MB) and open descriptors of `pid`, or `None` once it is gone.
pub fn resources(pid: u32) -> Option<(f64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss_kb / 1024.0, fds))
}
