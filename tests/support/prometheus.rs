//! A real Prometheus (Debian's `prometheus`) for the monitoring tests: its own configuration and
//! storage in a temporary directory, an ephemeral loopback port, a one-second scrape of the
//! proxy's admin listener as `job="egress"`, and the repository's alert rules loaded. Queries go
//! through its HTTP API with curl.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::curl;

pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` every second as job `egress`, evaluating `rules` every second.
    pub fn start(target: SocketAddr, rules: &Path) -> Prometheus {
        Self::start_scraping(&[target], rules)
    }

    /// Scrapes every one of `targets` (replicas) every second as job `egress`.
    pub fn start_scraping(targets: &[SocketAddr], rules: &Path) -> Prometheus {
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let targets = targets.join(", ");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files: [\"{rules}\"]\n\
                 scrape_configs:\n  - job_name: egress\n    static_configs:\n      - targets: [{targets}]\n",
                rules = rules.display()
            ),
        )
        .expect("prometheus.yml");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus (is the prometheus package installed?)");
        let prometheus = Prometheus {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            _dir: dir,
        };
        prometheus.wait_until("Prometheus is ready", || {
            curl(&["-sf", &format!("http://{}/-/ready", prometheus.addr)]).code == 0
        });
        prometheus
    }

    /// Waits until `condition` holds; Prometheus offers nothing to block on.
    pub fn wait_until(&self, what: &str, condition: impl Fn() -> bool) {
        super::wait::until(what, condition);
    }

    /// `GET /api/v1/<path>` with query parameters, as JSON.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut args = vec![
            "-sS".to_string(),
            "-G".to_string(),
            format!("http://{}/api/v1/{path}", self.addr),
        ];
        for (name, value) in params {
            args.push("--data-urlencode".into());
            args.push(format!("{name}={value}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = curl(&args);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{path}: {e}: {r:?}"))
    }

    /// An instant query's result vector (panics unless the query succeeded).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let answer = self.api("query", &[("query", expr)]);
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The first sample's value of an instant query, if any.
    pub fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr);
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
