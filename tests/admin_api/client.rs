//! Calls to the admin listener through curl, and a Server-Sent Events reader (curl -N) whose
//! events arrive on a channel.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Admin;

/// What curl got back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// The refusal's code, checked to agree between the body and `X-Egress-Error`.
    #[track_caller]
    pub fn refused(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.json()["error"], code, "{self:?}");
        assert_eq!(self.header("x-egress-error"), Some(code), "{self:?}");
        self.json()["message"].as_str().unwrap_or("").to_string()
    }
}

/// `method path` with `headers` (`"Name: value"`; `"Name:"` removes one curl would send) and an
/// optional body, not following redirects.
pub fn call(
    admin: &Admin,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> Answer {
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "-i",
        "--max-time",
        "20",
        "--noproxy",
        "*",
        "-X",
        method,
    ]);
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(body) = body {
        command.args(["--data-binary", body]);
    }
    let out = command.arg(admin.url(path)).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no status: {text:?} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// GET with the admin token.
pub fn get(admin: &Admin, path: &str) -> Answer {
    call(admin, "GET", path, &[&admin.bearer()], None)
}

/// POST a JSON body with the admin token.
pub fn post_json(admin: &Admin, path: &str, body: &str) -> Answer {
    call(
        admin,
        "POST",
        path,
        &[&admin.bearer(), "Content-Type: application/json"],
        Some(body),
    )
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct Sse {
    pub event: String,
    pub id: Option<u64>,
    pub data: String,
}

impl Sse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// An event stream read by curl.
#[derive(Debug)]
pub struct Stream {
    child: Child,
    events: mpsc::Receiver<Sse>,
}

impl Stream {
    /// Opens `/api/v1/events?query` with the admin token and `extra` headers, and waits until
    /// the answer's head arrived (the stream is subscribed).
    pub fn open(admin: &Admin, query: &str, extra: &[&str]) -> Stream {
        let mut command = Command::new("curl");
        command.args(["-sS", "-N", "-i", "--noproxy", "*", "-H", &admin.bearer()]);
        for header in extra {
            command.args(["-H", header]);
        }
        let mut child = command
            .arg(admin.url(&format!("/api/v1/events?{query}")))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        let (head_tx, head_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut head = String::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { return };
                if line.is_empty() {
                    break;
                }
                head.push_str(&line);
                head.push('\n');
            }
            let _ = head_tx.send(head);
            let mut event = Sse::default();
            for line in lines {
                let Ok(line) = line else { return };
                if line.is_empty() {
                    let something = !event.event.is_empty() || !event.data.is_empty();
                    if something && tx.send(std::mem::take(&mut event)).is_err() {
                        return;
                    }
                    continue;
                }
                if let Some(v) = line.strip_prefix("event:") {
                    event.event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    event.id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    event.data.push_str(v.trim_start());
                }
            }
        });
        let head = head_rx
            .recv_timeout(super::support::WAIT)
            .expect("the stream's answer head");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("text/event-stream"), "{head}");
        Stream { child, events }
    }

    /// The next event, within `within`.
    #[track_caller]
    pub fn next_within(&self, within: Duration) -> Sse {
        self.events
            .recv_timeout(within)
            .unwrap_or_else(|_| panic!("no event within {within:?}"))
    }

    /// The next event with name `event` within `within`, skipping others.
    #[track_caller]
    pub fn next_named(&self, event: &str, within: Duration) -> Sse {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if e.event == event => return e,
                Ok(_) => {}
                Err(_) => panic!("no {event} event within {within:?}"),
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request through the proxy for `https://host/` (a CONNECT); curl's exit code.
pub fn through(proxy: &super::support::Proxy, host: &str) -> super::support::Curl {
    super::support::curl(&["-x", &proxy.url(), &format!("https://{host}/")])
}
