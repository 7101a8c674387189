//! The result: a table on stdout and in summary.txt, the numbers in results.json, and the
//! verdict. Wrong answers, a denied origin reached, audit lines that break the policy, counters
//! that disagree with what the clients saw, or a proxy that died fail the run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::audit::AuditTally;
use crate::faults::FaultCounts;
use crate::load::{Proto, Tally};
use crate::policy::FLIP_REFUSAL;
use crate::proxy::LogCounts;
use crate::watch::{self, Sample};
use crate::{After, Args};

pub struct Report<'a> {
    pub args: &'a Args,
    pub out: &'a Path,
    pub load_seconds: f64,
    pub tally: &'a Tally,
    pub wrong_at: &'a BTreeMap<u64, u64>,
    pub samples: &'a [Sample],
    pub died_at: Option<f64>,
    pub denied_origin_connections: u64,
    pub origin_open: u64,
    pub faults: &'a FaultCounts,
    pub log: &'a LogCounts,
    pub after: &'a After,
    pub audit: &'a AuditTally,
}

/// One row of the agreement table: what clients saw, what /metrics and the audit log counted.
struct Agreement {
    key: (String, String, String),
    clients: u64,
    metrics: u64,
    audit: u64,
    ok: bool,
}

impl Report<'_> {
    /// Prints and saves the report; `true` when the run passed.
    pub fn print(&self) -> anyhow::Result<bool> {
        let t = self.tally;
        let mut s = String::new();
        let mut failures: Vec<String> = Vec::new();
        let secs = self.load_seconds;
        let total_requests: u64 = t.requests.values().sum();
        let _ = writeln!(
            s,
            "egress soak: {:.1} min of load ({secs:.0} s), {} loops, seed {}, {}",
            self.args.minutes,
            self.args.loops,
            self.args.seed,
            self.args.egress.display()
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| protocol | requests | served | denied (denylist) | flip denied ({FLIP_REFUSAL}) | wrong |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for proto in Proto::ALL {
            let label = proto.label();
            let seen = |d: &str, r: &str| t.seen.get(&(label, d, r)).copied().unwrap_or(0);
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {} | {} | {} |",
                t.requests.get(label).copied().unwrap_or(0),
                seen("allow", "none"),
                seen("deny", "blocked-by-denylist"),
                seen("deny", FLIP_REFUSAL),
                t.wrong_by_proto.get(label).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            s,
            "| total | {total_requests} | | | | {} |",
            t.wrong_total()
        );
        let _ = writeln!(
            s,
            "\n{:.0} requests/s; {} more HTTP requests inside tunnels; {} local errors (no free port, not counted)",
            total_requests as f64 / secs,
            t.inner,
            t.local_errors
        );
        let _ = writeln!(s, "wrong answers: {}", t.wrong_total());
        for (what, n) in &t.wrong {
            let _ = writeln!(s, "  {n:>7}  {what}");
        }
        if !self.wrong_at.is_empty() {
            let seconds: Vec<String> = self
                .wrong_at
                .iter()
                .take(30)
                .map(|(t, n)| format!("{t}s:{n}"))
                .collect();
            let more = if self.wrong_at.len() > 30 { " …" } else { "" };
            let _ = writeln!(
                s,
                "  when (second of the run: count; compare faults.log): {}{more}",
                seconds.join(" ")
            );
        }
        if t.wrong_total() > 0 {
            failures.push(format!("{} wrong answers (wrong.log)", t.wrong_total()));
        }
        let _ = writeln!(
            s,
            "denied origin reached: {} connections",
            self.denied_origin_connections
        );
        if self.denied_origin_connections > 0 {
            failures.push("the denied origin was reached".into());
        }

        let f = self.faults;
        let m = &self.after.metrics;
        let metric = |name: &str| m.get(name).copied().unwrap_or(0.0) as u64;
        let _ = writeln!(
            s,
            "faults: {} policy replacements (rename), {} SIGHUP, {} broken files, {} slow in-place rewrites, {} write errors",
            f.renames.load(Ordering::Relaxed),
            f.sighups.load(Ordering::Relaxed),
            f.broken.load(Ordering::Relaxed),
            f.slow.load(Ordering::Relaxed),
            f.write_errors.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            s,
            "reloads: {} applied, {} rejected (log); metrics success {} failure {}; proxy log: {} warnings, {} errors",
            self.log.reloaded.load(Ordering::Relaxed),
            self.log.rejected.load(Ordering::Relaxed),
            metric("egress_config_reloads_total{result=\"success\"}"),
            metric("egress_config_reloads_total{result=\"failure\"}"),
            self.log.warnings.load(Ordering::Relaxed),
            self.log.errors.load(Ordering::Relaxed),
        );

        self.resources(&mut s);
        if let Some(at) = self.died_at {
            failures.push(format!("the proxy died at t={at:.1}s"));
        }

        let rows = self.agreement();
        let _ = writeln!(
            s,
            "\ncounters (clients / metrics / audit), per protocol, decision, reason:"
        );
        for r in &rows {
            let _ = writeln!(
                s,
                "  {:<13} {:<5} {:<20} {:>9} {:>9} {:>9}  {}",
                r.key.0,
                r.key.1,
                r.key.2,
                r.clients,
                r.metrics,
                r.audit,
                if r.ok { "ok" } else { "DISAGREE" }
            );
        }
        if let Some(e) = &self.after.metrics_error {
            failures.push(format!("/metrics could not be read: {e}"));
        }
        if rows.iter().any(|r| !r.ok) {
            failures.push("counters disagree with what the clients saw".into());
        }
        let _ = writeln!(
            s,
            "audit: {} lines in {} files, {} disagree with the policy, {} dropped (metric), {} not written when the wait ended",
            self.audit.lines,
            self.audit.files,
            self.audit.disagreements,
            metric("egress_audit_lines_dropped_total"),
            self.after.audit_missing.max(0)
        );
        if self.audit.disagreements > 0 {
            failures.push(format!(
                "{} audit lines break the policy",
                self.audit.disagreements
            ));
        }
        let _ = writeln!(
            s,
            "origin connections still open after the load: {}",
            self.origin_open
        );
        let verdict = if failures.is_empty() {
            "PASS".to_string()
        } else {
            format!("FAIL: {}", failures.join("; "))
        };
        let _ = writeln!(s, "\nresult: {verdict}");
        print!("{s}");
        std::fs::write(self.out.join("summary.txt"), &s)?;
        self.save_json(&rows, &verdict)?;
        self.save_samples()?;
        Ok(failures.is_empty())
    }

    fn warm_up(&self) -> f64 {
        (self.load_seconds / 4.0).min(60.0)
    }

    fn resources(&self, s: &mut String) {
        let samples = self.samples;
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            let _ = writeln!(s, "no RSS samples");
            return;
        };
        let warm = samples
            .iter()
            .find(|x| x.t >= self.warm_up())
            .unwrap_or(last);
        let rss_max = samples.iter().map(|x| x.rss_mb).fold(0.0, f64::max);
        let fd_max = samples.iter().map(|x| x.fds).max().unwrap_or(0);
        let slope = watch::rss_mb_per_hour(samples, self.warm_up());
        let (rss_after, fds_after) = match self.after.resources {
            Some((r, f)) => (format!("{r:.1}"), f.to_string()),
            None => ("?".into(), "?".into()),
        };
        let _ = writeln!(
            s,
            "RSS MB: start {:.1}, after warm-up ({:.0} s) {:.1}, end {:.1}, max {rss_max:.1}, idle after the load {rss_after}; \
             slope {} ({} samples after warm-up)",
            first.rss_mb,
            warm.t,
            warm.rss_mb,
            last.rss_mb,
            slope.map_or("n/a".into(), |v| format!("{v:+.1} MB/hour")),
            samples.iter().filter(|x| x.t >= self.warm_up()).count()
        );
        let _ = writeln!(
            s,
            "descriptors: start {}, end {}, max {fd_max}, idle after the load {fds_after}",
            first.fds, last.fds
        );
    }

    fn agreement(&self) -> Vec<Agreement> {
        let m = &self.after.metrics;
        let mut metrics: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for (series, value) in m {
            let Some(labels) = series
                .strip_prefix("egress_decisions_total{")
                .and_then(|l| l.strip_suffix('}'))
            else {
                continue;
            };
            let l = parse_labels(labels);
            let get = |k: &str| l.get(k).cloned().unwrap_or_default();
            if *value > 0.0 {
                *metrics
                    .entry(comparable(
                        &get("protocol"),
                        &get("decision"),
                        &get("reason"),
                    ))
                    .or_default() += *value as u64;
            }
        }
        let mut clients: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for ((p, d, r), n) in &self.tally.seen {
            *clients.entry(comparable(p, d, r)).or_default() += n;
        }
        let mut audit: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for ((p, d, r), n) in &self.audit.by_key {
            *audit.entry(comparable(p, d, r)).or_default() += n;
        }
        let dropped = m
            .get("egress_audit_lines_dropped_total")
            .copied()
            .unwrap_or(0.0) as u64;
        let keys: BTreeSet<_> = metrics
            .keys()
            .chain(clients.keys())
            .chain(audit.keys())
            .cloned()
            .collect();
        keys.into_iter()
            .map(|key| {
                let c = clients.get(&key).copied().unwrap_or(0);
                let mv = metrics.get(&key).copied().unwrap_or(0);
                let a = audit.get(&key).copied().unwrap_or(0);
                // An answer the client lost may still have been counted by the proxy.
                let tolerance = self
                    .tally
                    .wrong_by_proto
                    .get(key.0.as_str())
                    .copied()
                    .unwrap_or(0);
                let ok = mv.abs_diff(c) <= tolerance && a <= mv && mv - a <= dropped;
                Agreement {
                    key,
                    clients: c,
                    metrics: mv,
                    audit: a,
                    ok,
                }
            })
            .collect()
    }

    fn save_json(&self, rows: &[Agreement], verdict: &str) -> anyhow::Result<()> {
        let t = self.tally;
        let warm_up = self.warm_up();
        let json = serde_json::json!({
            "minutes": self.args.minutes,
            "loops": self.args.loops,
            "seed": self.args.seed,
            "load_seconds": self.load_seconds,
            "requests": t.requests,
            "requests_total": t.requests.values().sum::<u64>(),
            "inner_requests": t.inner,
            "wrong_answers": t.wrong_total(),
            "wrong_by_kind": t.wrong,
            "local_errors": t.local_errors,
            "denied_origin_connections": self.denied_origin_connections,
            "rss_mb_per_hour": watch::rss_mb_per_hour(self.samples, warm_up),
            "rss_mb_start": self.samples.first().map(|x| x.rss_mb),
            "rss_mb_end": self.samples.last().map(|x| x.rss_mb),
            "fds_start": self.samples.first().map(|x| x.fds),
            "fds_end": self.samples.last().map(|x| x.fds),
            "fds_max": self.samples.iter().map(|x| x.fds).max(),
            "audit_lines": self.audit.lines,
            "audit_disagreements": self.audit.disagreements,
            "counters": rows.iter().map(|r| serde_json::json!({
                "protocol": r.key.0, "decision": r.key.1, "reason": r.key.2,
                "clients": r.clients, "metrics": r.metrics, "audit": r.audit, "ok": r.ok,
            })).collect::<Vec<_>>(),
            "result": verdict,
        });
        std::fs::write(
            self.out.join("results.json"),
            serde_json::to_string_pretty(&json)?,
        )?;
        Ok(())
    }

    fn save_samples(&self) -> anyhow::Result<()> {
        let mut csv = String::from("t_seconds,rss_mb,fds,requests\n");
        for x in self.samples {
            let _ = writeln!(csv, "{:.1},{:.2},{},{}", x.t, x.rss_mb, x.fds, x.requests);
        }
        std::fs::write(self.out.join("samples.csv"), csv)?;
        Ok(())
    }
}

/// Appends the proxy's exit after SIGTERM to the summary.
pub fn print_exit(out: &Path, code: Option<i32>) -> anyhow::Result<()> {
    let line = match code {
        Some(c) => format!("proxy exit after SIGTERM: code {c}\n"),
        None => "proxy exit after SIGTERM: did not exit within 30 s (killed)\n".to_string(),
    };
    print!("{line}");
    let mut s = std::fs::read_to_string(out.join("summary.txt")).unwrap_or_default();
    s.push_str(&line);
    std::fs::write(out.join("summary.txt"), s)?;
    Ok(())
}

/// A SOCKS5 client sees one reply code (0x02) for every policy refusal, whatever its reason: those
/// rows are compared as one. (Each audit line's reason is still checked against its target.)
fn comparable(protocol: &str, decision: &str, reason: &str) -> (String, String, String) {
    let policy = ["blocked-by-denylist", "not-allowlisted", "port-not-allowed"];
    let reason = if protocol == "socks5" && decision == "deny" && policy.contains(&reason) {
        "policy (0x02)"
    } else {
        reason
    };
    (
        protocol.to_string(),
        decision.to_string(),
        reason.to_string(),
    )
}

/// `a="x",b="y"` → {a: x, b: y} (the proxy's label values have no quotes or commas).
fn parse_labels(labels: &str) -> BTreeMap<String, String> {
    labels
        .split("\",")
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}
