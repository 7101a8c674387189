//! The audit log, rotated while the load runs (rename, SIGUSR1: logrotate's way) and read line
//! by line: each line's decision is checked against its target's invariant, and lines are
//! counted per (protocol, decision, reason) to set against what the clients saw.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::journal::Journal;
use crate::policy::{Targets, FLIP_REFUSAL};

#[derive(Debug, Default, Clone)]
pub struct AuditTally {
    pub lines: u64,
    pub by_key: BTreeMap<(String, String, String), u64>,
    /// Lines whose decision breaks their target's invariant, or that are not JSON.
    pub disagreements: u64,
    pub files: u64,
}

impl AuditTally {
    /// Reads `path` whole and removes it.
    pub fn scan(
        &mut self,
        path: &Path,
        targets: &Targets,
        journal: &Journal,
    ) -> std::io::Result<()> {
        let file = std::fs::File::open(path)?;
        for line in BufReader::new(file).lines() {
            self.check(&line?, targets, journal);
        }
        self.files += 1;
        std::fs::remove_file(path)
    }

    fn check(&mut self, line: &str, targets: &Targets, journal: &Journal) {
        self.lines += 1;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            self.disagreements += 1;
            journal.line(&format!("AUDIT not JSON: {line}"));
            return;
        };
        let field = |name: &str| v[name].as_str().unwrap_or("none").to_string();
        let (protocol, decision, reason) = (field("protocol"), field("decision"), field("reason"));
        let port = v["port"].as_u64();
        let host_ok = v["host"].as_str() == Some("127.0.0.1");
        let ok = match port {
            Some(p) if host_ok && p == u64::from(targets.allowed.port()) => decision == "allow",
            Some(p) if host_ok && p == u64::from(targets.denied.port()) => {
                decision == "deny" && reason == "blocked-by-denylist"
            }
            Some(p) if host_ok && p == u64::from(targets.flip.port()) => {
                decision == "allow" || (decision == "deny" && reason == FLIP_REFUSAL)
            }
            _ => false,
        };
        if !ok {
            self.disagreements += 1;
            journal.line(&format!("AUDIT disagrees with the policy: {line}"));
        }
        *self.by_key.entry((protocol, decision, reason)).or_default() += 1;
    }
}

/// Where the n-th rotated audit file goes.
pub fn rotated(audit: &Path, n: u64) -> PathBuf {
    audit.with_extension(format!("{n}.jsonl"))
}

/// Lines in a file (0 when absent).
pub fn count_lines(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
}
