//! Every policy text the admin API applied (and the one in force at start), with when, who and
//! why, for `GET /api/v1/policy/history` and `POST /api/v1/policy/revert`. Kept in memory and
//! bounded: the oldest versions go first. Texts are served with passwords masked (as the
//! policy itself is); the stored text is the real one, so a revert writes back what was there.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// Versions kept.
pub const KEPT: usize = 100;

#[derive(Debug, Clone)]
pub struct Version {
    pub id: u64,
    pub time: SystemTime,
    /// The token name that applied it (`startup` for the text in force at start).
    pub who: String,
    pub note: String,
    pub text: String,
}

#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<(VecDeque<Version>, u64)>,
}

impl History {
    /// Records a version; returns its id.
    pub fn push(&self, who: &str, note: &str, text: &str) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.1 += 1;
        let id = inner.1;
        if inner.0.len() == KEPT {
            inner.0.pop_front();
        }
        inner.0.push_back(Version {
            id,
            time: SystemTime::now(),
            who: who.to_string(),
            note: note.to_string(),
            text: text.to_string(),
        });
        id
    }

    /// Newest first.
    pub fn list(&self) -> Vec<Version> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0.iter().rev().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Version> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0.iter().find(|v| v.id == id).cloned()
    }
}

/// A line diff of two texts: `-` removed, `+` added, ` ` kept, changed regions only with one
/// line of context. Texts too large for the quadratic table are shown as replaced whole.
pub fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        return format!("- ({} lines)\n+ ({} lines)\n", a.len(), b.len());
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removed lines first, then the added ones, as diffs are read.
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near_change = |k: usize| {
        let lo = k.saturating_sub(1);
        let hi = (k + 1).min(ops.len() - 1);
        (lo..=hi).any(|n| ops[n].0 != ' ')
    };
    let mut out = String::new();
    for (k, (op, line)) in ops.iter().enumerate() {
        if near_change(k) {
            out.push(*op);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_shows_changed_lines_with_one_line_of_context() {
        let old = "a\nb\nc\nd\ne\n";
        let new = "a\nb\nC\nd\ne\nf\n";
        assert_eq!(diff(old, new), " b\n-c\n+C\n d\n e\n+f\n");
        assert_eq!(diff(old, old), "");
    }

    #[test]
    fn history_is_bounded_and_newest_first() {
        let h = History::default();
        for n in 0..KEPT + 5 {
            h.push("admin", &format!("n{n}"), "");
        }
        let list = h.list();
        assert_eq!(list.len(), KEPT);
        assert_eq!(list[0].id, (KEPT + 5) as u64);
        assert!(h.get(1).is_none() && h.get(6).is_some());
    }
}
