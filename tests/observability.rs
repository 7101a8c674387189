//! Monitoring, proven against real parts: a real Prometheus scrapes the real proxy, and every
//! PromQL expression of the Grafana dashboard and of the alert rules runs through Prometheus's
//! HTTP API and must return data — the dashboards cannot drift from the code. Also: promtool on
//! the exposition, the audit log's lines and its reopening, the blocked-domain cardinality cap.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::origin::Servers;
use support::prometheus::Prometheus;
use support::{assert_served, curl, header, wait, Proxy, WAIT};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A proxy with the admin listener and the audit log (into `audit`) on, allowing the origin on
/// `port`, with a parent defined (and never used) so `egress_upstream_up` has a series.
fn observed_proxy(port: u16, audit: &Path) -> Proxy {
    Proxy::start(&format!(
        "admin: 127.0.0.1:0\n\
         audit: {{ path: \"{audit}\" }}\n\
         allow: [\"127.0.0.1:{port}\", {{ host: never.test, via: corp }}]\n\
         upstreams:\n  corp:\n    url: http://127.0.0.1:9\n",
        audit = audit.display()
    ))
}

/// Every `expr` of the dashboard, with Grafana's variables replaced as a panel would.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("dashboards/egress.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$__range", "5m")
                .replace("$__interval", "15s")
                .replace("$instance", ".*")
                .replace("$identity", ".*");
            assert!(!expr.contains('$'), "an unknown variable: {expr}");
            exprs.push(expr);
        }
    }
    exprs
}

/// The metric names an expression reads.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names: Vec<String> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("egress_") || *w == "up")
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_dashboard_and_alert_expression_returns_data_from_a_real_prometheus() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let dir = tempfile::tempdir().unwrap();
    let proxy = observed_proxy(port, &dir.path().join("audit.jsonl"));
    let admin = proxy.admin_addr();
    let prometheus = Prometheus::start(admin, &repo().join("dashboards/alerts.yml"));
    prometheus.wait_until("the first scrape", || {
        prometheus.value(r#"up{job="egress"}"#) == Some(1.0)
    });

    // Traffic after the first scrape, so rates over it are not zero: allowed plain HTTP and a
    // tunnel, and denials of three registrable domains.
    let url = format!("http://127.0.0.1:{port}/hello");
    for _ in 0..3 {
        assert_served(&curl(&["-x", &proxy.url(), &url]));
    }
    assert_served(&curl(&["-p", "-x", &proxy.url(), &url]));
    for denied in [
        "http://example.org/",
        "http://a.example.com/",
        "http://x.y.example.co.uk/",
    ] {
        let r = curl(&["-x", &proxy.url(), "-s", "-D", "-", denied]);
        assert_eq!(
            header(&r.stdout, "x-egress-error"),
            Some("not-allowlisted"),
            "{r:?}"
        );
    }
    prometheus.wait_until("the traffic is scraped", || {
        prometheus.value(r#"sum(egress_decisions_total{job="egress", decision="deny"})"#)
            == Some(3.0)
            && prometheus.value(r#"sum(egress_decisions_total{job="egress", decision="allow"})"#)
                == Some(4.0)
    });
    // Two more scrapes, so every rate() has samples on both sides of the traffic.
    let scrapes = prometheus
        .value(r#"count_over_time(up{job="egress"}[5m])"#)
        .unwrap();
    prometheus.wait_until("two more scrapes", || {
        prometheus
            .value(r#"count_over_time(up{job="egress"}[5m])"#)
            .unwrap()
            >= scrapes + 2.0
    });

    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for expr in &exprs {
        let result = prometheus.query(expr);
        assert!(
            !result.is_empty(),
            "no data for dashboard expression {expr}"
        );
    }
    // The counters themselves (increase() cannot see a series' first sample).
    let top = prometheus
        .query(r#"topk(10, sum by (domain) (egress_blocked_domains_total{job="egress"}))"#);
    let mut domains: Vec<&str> = top
        .iter()
        .filter(|s| s["value"][1] == "1")
        .filter_map(|s| s["metric"]["domain"].as_str())
        .collect();
    domains.sort_unstable();
    assert_eq!(domains, ["example.co.uk", "example.com", "example.org"]);

    // The alert rules: Prometheus evaluated each without error, and each metric it reads exists.
    prometheus.wait_until("the rules are evaluated", || {
        let rules = prometheus.api("rules", &[]);
        all_rules(&rules).iter().all(|r| {
            r["lastEvaluation"]
                .as_str()
                .is_some_and(|t| !t.starts_with("0001"))
        })
    });
    let rules = prometheus.api("rules", &[]);
    let rules = all_rules(&rules);
    assert_eq!(rules.len(), 8, "{rules:?}");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
        let expr = rule["query"].as_str().unwrap();
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr}");
        for name in names {
            let result = prometheus.query(&format!("{name}{{job=\"egress\"}}"));
            assert!(
                !result.is_empty(),
                "no series of {name} (alert {})",
                rule["name"]
            );
        }
    }
    // On a healthy proxy nothing fires.
    let alerts = prometheus.api("alerts", &[]);
    let firing: Vec<&Value> = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "firing")
        .collect();
    assert!(firing.is_empty(), "{firing:?}");
}

fn all_rules(answer: &Value) -> Vec<Value> {
    answer["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[test]
fn promtool_finds_nothing_to_report_in_the_exposition_and_health_endpoints_answer() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let dir = tempfile::tempdir().unwrap();
    let proxy = observed_proxy(port, &dir.path().join("audit.jsonl"));
    let admin = proxy.admin_addr();
    assert_served(&curl(&[
        "-x",
        &proxy.url(),
        &format!("http://127.0.0.1:{port}/hello"),
    ]));
    let metrics = curl(&["-sS", &format!("http://{admin}/metrics")]);
    assert_eq!(metrics.code, 0, "{metrics:?}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (from the prometheus package)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.stdout.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
    // Series for known label values exist before any traffic of that kind.
    assert!(metrics.stdout.contains(
        r#"egress_decisions_total{protocol="socks5",decision="deny",reason="private-address",identity="anonymous"} 0"#
    ));
    assert!(metrics
        .stdout
        .contains(r#"egress_upstream_up{upstream="corp"} 1"#));
    for (path, body) in [("livez", "ok\n"), ("readyz", "ready\n")] {
        let r = curl(&["-sS", &format!("http://{admin}/{path}")]);
        assert_eq!(r.stdout, body, "{path}");
    }
    let r = curl(&[
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{admin}/nothing"),
    ]);
    assert_eq!(r.stdout, "404");
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits (bounded) until the audit file holds `n` lines; the writer thread appends them.
fn wait_for_audit(path: &Path, n: usize) -> Vec<Value> {
    let mut lines = Vec::new();
    wait::until(&format!("the audit log holds {n} lines"), || {
        lines = audit_lines(path);
        lines.len() >= n
    });
    lines
}

#[test]
fn the_audit_log_has_one_line_per_decision_and_reopens_on_sigusr1() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let proxy = observed_proxy(port, &audit);
    let url = format!("http://127.0.0.1:{port}/hello");
    assert_served(&curl(&["-x", &proxy.url(), &url]));
    assert_served(&curl(&["-p", "-x", &proxy.url(), &url]));
    let r = curl(&["-x", &proxy.url(), "-s", "http://example.org/"]);
    assert_eq!(r.code, 0);
    let lines = wait_for_audit(&audit, 3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let forwarded = lines
        .iter()
        .find(|l| l["protocol"] == "http-forward" && l["decision"] == "allow")
        .unwrap();
    assert_eq!(forwarded["host"], "127.0.0.1");
    assert_eq!(forwarded["port"], port);
    assert_eq!(forwarded["rule"], format!("127.0.0.1:{port}"));
    assert!(forwarded["bytes_down"].as_u64().unwrap() > 0, "{forwarded}");
    assert!(forwarded["client"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let tunnel = lines
        .iter()
        .find(|l| l["protocol"] == "http-connect")
        .unwrap();
    assert!(tunnel["bytes_up"].as_u64().unwrap() > 0, "{tunnel}");
    let denied = lines.iter().find(|l| l["decision"] == "deny").unwrap();
    assert_eq!(
        (denied["host"].as_str(), denied["reason"].as_str()),
        (Some("example.org"), Some("not-allowlisted"))
    );
    for line in &lines {
        for key in [
            "time",
            "client",
            "identity",
            "protocol",
            "host",
            "port",
            "decision",
            "reason",
            "rule",
            "bytes_up",
            "bytes_down",
            "duration_ms",
        ] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
    }

    // logrotate: move the file away, SIGUSR1, and the next line goes to a new file.
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&audit, &rotated).unwrap();
    proxy.signal("USR1");
    let r = curl(&["-x", &proxy.url(), "-s", "http://example.net/"]);
    assert_eq!(r.code, 0);
    let fresh = wait_for_audit(&audit, 1);
    assert_eq!(fresh[0]["host"], "example.net");
    assert_eq!(audit_lines(&rotated).len(), 3);
}

#[test]
fn ten_thousand_denied_names_stay_within_the_blocked_domain_cap() {
    let servers = Servers::new();
    let port = servers.http_origin().port();
    let dir = tempfile::tempdir().unwrap();
    let proxy = observed_proxy(port, &dir.path().join("audit.jsonl"));
    let admin = proxy.admin_addr();
    let rss_before = rss_kib(proxy.pid());
    // 10,000 distinct registrable domains, denied, from a few threads over raw connections.
    let addr = proxy.addr;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in (t..10_000).step_by(8) {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(WAIT)).unwrap();
                    write!(
                        s,
                        "GET http://host{i}.com/ HTTP/1.1\r\nHost: host{i}.com\r\n\r\n"
                    )
                    .unwrap();
                    let mut answer = String::new();
                    let _ = s.read_to_string(&mut answer);
                    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let metrics = curl(&["-sS", &format!("http://{admin}/metrics")]).stdout;
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("egress_blocked_domains_total{"))
        .collect();
    assert_eq!(series.len(), 1001, "cap (1000) + other");
    let other = series
        .iter()
        .find(|l| l.contains(r#"domain="other""#))
        .unwrap();
    assert!(other.ends_with(" 9000"), "{other}");
    let denied = metrics
        .lines()
        .find(|l| l.starts_with(r#"egress_decisions_total{protocol="http-forward",decision="deny",reason="not-allowlisted",identity="anonymous"}"#))
        .unwrap();
    assert!(denied.ends_with(" 10000"), "{denied}");
    let growth = rss_kib(proxy.pid()).saturating_sub(rss_before);
    assert!(growth < 64 * 1024, "resident memory grew by {growth} KiB");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dashboards = repo().join("dashboards");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dashboards)
            .output()
            .expect("promtool (from the prometheus package)");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {}: {said}", args.join(" "));
        assert!(said.contains("SUCCESS"), "{said}");
    }
}

/// The value of one exposition line `series` (exact labels), or 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Denied is not failed: with the parent down, requests fail, and nothing counts as a blocked
/// domain or a denial — the blocked-domain panel and its spike alert stay quiet.
#[test]
fn a_parent_that_is_down_counts_failures_not_blocked_domains() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let proxy = Proxy::start(&format!(
        "admin: 127.0.0.1:0\n\
         audit: {{ path: \"{audit}\" }}\n\
         allow: [\"allowed.test:*\"]\n\
         deny: [evil.test]\n\
         upstreams:\n  corp:\n    url: http://127.0.0.1:{dead_port}\n\
         route:\n  default: corp\n",
        audit = audit.display()
    ));
    let admin = proxy.admin_addr();
    for args in [
        vec!["-x", &proxy.url(), "http://allowed.test/"],
        vec!["-p", "-x", &proxy.url(), "http://allowed.test/"],
        vec![
            "--socks5-hostname",
            &proxy.addr.to_string(),
            "http://allowed.test/",
        ],
    ] {
        let r = curl(&args);
        assert!(
            r.stdout.contains("upstream-unreachable") || r.code != 0,
            "{r:?}"
        );
    }
    // One real denial, with its rule, for contrast.
    let denied = curl(&[
        "-s",
        "-D",
        "-",
        "-p",
        "-x",
        &proxy.url(),
        "https://evil.test/",
    ]);
    assert_eq!(
        header(&denied.stdout, "x-egress-error"),
        Some("blocked-by-denylist")
    );

    let lines = wait_for_audit(&audit, 4);
    let failed: Vec<&Value> = lines.iter().filter(|l| l["decision"] == "fail").collect();
    assert_eq!(failed.len(), 3, "{lines:?}");
    for line in failed {
        assert_eq!(line["reason"], "upstream-unreachable", "{line}");
    }
    let deny = lines.iter().find(|l| l["decision"] == "deny").unwrap();
    assert_eq!(
        (deny["protocol"].as_str(), deny["rule"].as_str()),
        (Some("http-connect"), Some("evil.test")),
        "a policy denial names its rule: {deny}"
    );

    let metrics = curl(&["-sS", &format!("http://{admin}/metrics")]).stdout;
    for protocol in ["http-forward", "http-connect", "socks5"] {
        let failures = format!(
            r#"egress_failures_total{{protocol="{protocol}",reason="upstream-unreachable"}}"#
        );
        assert_eq!(sample(&metrics, &failures), 1.0, "{failures}\n{metrics}");
        let decision = format!(
            r#"egress_decisions_total{{protocol="{protocol}",decision="fail",reason="upstream-unreachable",identity="anonymous"}}"#
        );
        assert_eq!(sample(&metrics, &decision), 1.0, "{decision}");
    }
    let blocked: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("egress_blocked_domains_total{") && !l.ends_with(" 0"))
        .collect();
    assert_eq!(
        blocked,
        [r#"egress_blocked_domains_total{domain="evil.test",identity="anonymous"} 1"#]
    );
}
