//! `.env` files (`.env`, `.env.local`, `.envrc`, a `.envs/` folder…) in the trees a command
//! works in, found at start-up within a bounded cost: the working directory and the
//! `--allow-write` paths searched breadth first, plus the entries of the working directory's
//! ancestors (a monorepo's root `.env`).
//!
//! Not searched: `.git`, `.hg`, `.svn` and `node_modules` folders, and folders marked as caches
//! (`CACHEDIR.TAG`: cargo's `target`, pytest's cache) or virtualenvs (`pyvenv.cfg`): they are
//! large and hold no one's `.env`. Not masked: templates meant to be published
//! (`.env.example`, `.env.sample`, `.env.template`, `.env.dist`) and a virtualenv named `.env`.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How much of a tree is searched before egress-run starts the command anyway.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Directory entries read, all trees together.
    pub entries: usize,
    /// Folders below a tree's top.
    pub depth: usize,
    /// Time spent (a slow network filesystem).
    pub time: Duration,
}

/// The default bounds. 100,000 entries cost about 60 ms (see README); the search stops at the
/// first of these it reaches, and says so.
pub const BOUNDS: Bounds = Bounds {
    entries: 200_000,
    depth: 32,
    time: Duration::from_millis(500),
};

/// The `.env` files and folders found, and a warning when a bound cut the search short.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub paths: Vec<PathBuf>,
    pub warning: Option<String>,
}

/// Folders never searched (see the module's comment).
const SKIPPED: [&str; 4] = [".git", ".hg", ".svn", "node_modules"];
/// A folder holding one of these is a cache or a virtualenv: neither searched nor masked.
const MARKERS: [&str; 2] = ["CACHEDIR.TAG", "pyvenv.cfg"];

/// Searches `trees` below their tops and the entries of `cwd`'s ancestors, within `bounds`.
pub fn find(cwd: &Path, trees: &[PathBuf], bounds: &Bounds) -> Found {
    let started = Instant::now();
    let mut paths = Vec::new();
    for ancestor in cwd.ancestors().skip(1).filter(|a| a.parent().is_some()) {
        if let Ok(listing) = list(ancestor, bounds.entries) {
            paths.extend(listing.env.into_iter().filter_map(|p| masked(&p)));
        }
    }
    let mut queue: VecDeque<(PathBuf, usize)> = trees.iter().map(|t| (t.clone(), 0)).collect();
    let mut left = bounds.entries;
    while let Some((dir, depth)) = queue.pop_front() {
        let cut = if left == 0 {
            Some(format!("after {} entries", bounds.entries))
        } else if started.elapsed() >= bounds.time {
            Some(format!("after {} ms", bounds.time.as_millis()))
        } else if depth > bounds.depth {
            Some(format!("{} folders deep", bounds.depth))
        } else {
            None
        };
        if let Some(how) = cut {
            return Found {
                paths: sorted(paths),
                warning: Some(cut_short(&how, &dir)),
            };
        }
        let Ok(listing) = list(&dir, left) else {
            continue;
        };
        left -= listing.entries;
        if listing.partial {
            // A folder larger than what was left: masked as far as it was read.
            paths.extend(listing.env.iter().filter_map(|p| masked(p)));
            let how = format!("after {} entries", bounds.entries);
            return Found {
                paths: sorted(paths),
                warning: Some(cut_short(&how, &dir)),
            };
        }
        if listing.marked {
            continue;
        }
        paths.extend(listing.env.iter().filter_map(|p| masked(p)));
        queue.extend(listing.dirs.into_iter().map(|d| (d, depth + 1)));
    }
    Found {
        paths: sorted(paths),
        warning: None,
    }
}

fn sorted(mut paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths.sort();
    paths.dedup();
    paths
}

/// The warning for a search cut short at `next`, the first folder left unsearched.
fn cut_short(how: &str, next: &Path) -> String {
    format!(
        "egress-run: stopped looking for .env files {how}; {} and the folders after it (in \
         breadth-first order) were not searched, and .env files there are readable by the \
         command: --deny-read them, or start in a smaller directory",
        next.display()
    )
}

/// One folder's entries, sorted into what matters here.
struct Listing {
    entries: usize,
    /// Stopped at the limit before the end of the folder.
    partial: bool,
    /// A cache or virtualenv marker is among them.
    marked: bool,
    /// Entries named like `.env` files, any type.
    env: Vec<PathBuf>,
    /// Sub-folders to search (not links, not `SKIPPED`, not `.env` ones).
    dirs: Vec<PathBuf>,
}

/// At most `limit` entries of `dir`.
fn list(dir: &Path, limit: usize) -> std::io::Result<Listing> {
    let mut listing = Listing {
        entries: 0,
        partial: false,
        marked: false,
        env: Vec::new(),
        dirs: Vec::new(),
    };
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        if listing.entries == limit {
            listing.partial = true;
            break;
        }
        listing.entries += 1;
        let name = entry.file_name();
        if MARKERS.iter().any(|m| name == OsStr::new(m)) {
            listing.marked = true;
        }
        if is_env_name(&name) {
            listing.env.push(entry.path());
            continue;
        }
        // The type from the directory entry itself: no stat per file (links are not followed,
        // so the search stays in the tree and cannot loop).
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && !SKIPPED.iter().any(|s| name == OsStr::new(s)) {
            listing.dirs.push(entry.path());
        }
    }
    Ok(listing)
}

/// `.env`, `.env.local`, `.envrc`, `.envs`…, but not a published template.
fn is_env_name(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let template = [".example", ".sample", ".template", ".dist"]
        .iter()
        .any(|suffix| name.ends_with(suffix));
    name.starts_with(".env") && !template
}

/// What to mask for an entry named like a `.env` file: itself when it is a file or a folder
/// (through a link: what it points to), nothing when it is a virtualenv, a dangling link (a
/// mask would create its target) or anything else.
fn masked(path: &Path) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return Some(path.to_path_buf());
    }
    if meta.is_dir() && !path.join("pyvenv.cfg").exists() {
        return Some(path.to_path_buf());
    }
    None
}

#[cfg(test)]
mod tests;
