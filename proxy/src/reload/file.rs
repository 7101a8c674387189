//! What the reloader learns from the disk: which version of the file a name leads to (a `stat`,
//! which never opens the file), and a read that proves its bytes did not change while read.

use std::io::{self, Read as _};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A version of a file: which file (device, inode) and its size and change times. The status
/// change time cannot be set back by a writer, so any write or replacement gives a new value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Fingerprint {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The version `path` leads to now (symlinks followed).
pub fn fingerprint(path: &Path) -> io::Result<Fingerprint> {
    std::fs::metadata(path).map(|m| Fingerprint::of(&m))
}

/// What one read found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// The file did not change while read, and the name still leads to it.
    Whole {
        fingerprint: Fingerprint,
        text: Vec<u8>,
    },
    /// It was written to or replaced during the read.
    Changing,
}

/// Reads the file `path` leads to, checking its version before and after, and the name after.
pub fn read_whole(path: &Path) -> io::Result<Read> {
    let mut file = std::fs::File::open(path)?;
    let before = Fingerprint::of(&file.metadata()?);
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    let after = Fingerprint::of(&file.metadata()?);
    let named = fingerprint(path)?;
    Ok(if unchanged(before, after, named, text.len()) {
        Read::Whole {
            fingerprint: after,
            text,
        }
    } else {
        Read::Changing
    })
}

/// Whether a read of `len` bytes, between versions `before` and `after` of the open file, with
/// the name leading to `named` afterwards, saw one whole version.
fn unchanged(before: Fingerprint, after: Fingerprint, named: Fingerprint, len: usize) -> bool {
    before == after && named == after && len as u64 == after.size
}

#[cfg(test)]
mod tests;
