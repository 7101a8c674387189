//! Where audit lines land, whole lines only. A batch of lines goes out in one `write(2)` on a
//! file opened with `O_APPEND`, so it lands at the end of the file as it is at that moment
//! (after a logrotate `copytruncate`, at offset 0) and never interleaves with itself. When the
//! disk fills mid-batch the kernel takes a prefix and then refuses: the complete lines of that
//! prefix stay, the fragment of the next line is cut back off (`ftruncate`), and the caller
//! learns exactly how many lines did not make it, so it can count them.
//!
//! Why cut back rather than only start the next write with a newline: a newline keeps a torn
//! fragment from merging with the next good line, but the fragment itself is still a line that
//! does not parse — the one that made a truncated file start with half a JSON object. Cutting
//! back leaves no fragment at all; the newline is kept only as the fallback for when cutting back
//! is impossible (stdout, a pipe, a file that refuses `ftruncate`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tracing::{debug, info, warn};

/// Lines to write together: their bytes, each line ending in `\n`, and where each one ends.
#[derive(Debug, Default)]
pub(super) struct Batch {
    bytes: Vec<u8>,
    /// `ends[i]`: the offset just past line `i`'s newline.
    ends: Vec<usize>,
}

impl Batch {
    pub(super) fn push(&mut self, line: &str) {
        self.bytes.extend_from_slice(line.as_bytes());
        self.bytes.push(b'\n');
        self.ends.push(self.bytes.len());
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// How many whole lines the first `written` bytes hold, and how many bytes of them.
    fn whole_lines_in(&self, written: usize) -> (usize, usize) {
        let lines = self.ends.partition_point(|&end| end <= written);
        let bytes = lines.checked_sub(1).map_or(0, |last| self.ends[last]);
        (lines, bytes)
    }
}

/// What became of a batch.
#[derive(Debug)]
pub(super) struct Written {
    /// Lines now complete in the file.
    pub lines: usize,
    /// Why the rest were not written, when some were not.
    pub error: Option<io::Error>,
}

enum Out {
    Stdout(io::Stdout),
    File { path: PathBuf, file: File },
}

pub(super) struct Sink {
    out: Out,
    /// A fragment of a line could not be cut back: the next write starts with a newline so the
    /// fragment stays a line of its own and never swallows the start of a good one.
    torn: bool,
}

impl Sink {
    /// The file at `path` (created if missing, appended to), or stdout.
    pub(super) fn open(path: Option<PathBuf>) -> io::Result<Sink> {
        let out = match path {
            None => Out::Stdout(io::stdout()),
            Some(path) => {
                let file = open_append(&path)?;
                Out::File { path, file }
            }
        };
        Ok(Sink { out, torn: false })
    }

    /// Writes `batch`, keeping only whole lines in the file.
    pub(super) fn write(&mut self, batch: &Batch) -> Written {
        if self.torn {
            match write_some(&mut self.out, b"\n") {
                (1, _) => self.torn = false,
                (_, error) => {
                    return Written {
                        lines: 0,
                        error: Some(error.unwrap_or_else(|| io::ErrorKind::WriteZero.into())),
                    }
                }
            }
        }
        let (done, error) = write_some(&mut self.out, &batch.bytes);
        let Some(error) = error else {
            return Written {
                lines: batch.len(),
                error: None,
            };
        };
        let (lines, kept) = batch.whole_lines_in(done);
        let fragment = (done - kept) as u64;
        if fragment > 0 {
            if self.cut_back(fragment) {
                debug!(
                    bytes = fragment,
                    "a partial audit line was cut back off the file"
                );
            } else {
                self.torn = true;
            }
        }
        Written {
            lines,
            error: Some(error),
        }
    }

    /// Removes the last `fragment` bytes, which are ours: we are the file's only writer, and
    /// with `O_APPEND` they are at its end. If the file shrank meanwhile (a `copytruncate` after
    /// our write), the fragment went with it.
    fn cut_back(&mut self, fragment: u64) -> bool {
        let Out::File { file, .. } = &self.out else {
            return false;
        };
        let cut = file
            .metadata()
            .and_then(|m| match m.len().checked_sub(fragment) {
                Some(len) => file.set_len(len),
                None => Ok(()),
            });
        cut.is_ok()
    }

    /// Opens the file again at its path (after logrotate renamed it); on failure keeps writing
    /// to the old one.
    pub(super) fn reopen(&mut self) {
        let Out::File { path, file } = &mut self.out else {
            return;
        };
        match open_append(path) {
            Ok(fresh) => {
                *file = fresh;
                // A fragment left in the old file cannot reach the new one.
                self.torn = false;
                info!(file = %path.display(), "audit log reopened");
            }
            Err(error) => {
                warn!(%error, file = %path.display(), "cannot reopen the audit log; writing to the old file")
            }
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Writes `bytes` until done or an error; returns how many were written, and the error if any.
fn write_some(out: &mut Out, bytes: &[u8]) -> (usize, Option<io::Error>) {
    let mut offset = 0;
    while offset < bytes.len() {
        let wrote = match out {
            Out::Stdout(stdout) => stdout.lock().write(&bytes[offset..]),
            Out::File { file, .. } => file.write(&bytes[offset..]),
        };
        match wrote {
            Ok(0) => return (offset, Some(io::ErrorKind::WriteZero.into())),
            Ok(n) => offset += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (offset, Some(e)),
        }
    }
    if let Out::Stdout(stdout) = out {
        if let Err(e) = stdout.lock().flush() {
            return (offset, Some(e));
        }
    }
    (offset, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lines: &[&str]) -> Batch {
        let mut batch = Batch::default();
        for line in lines {
            batch.push(line);
        }
        batch
    }

    #[test]
    fn a_short_write_keeps_only_the_whole_lines_it_holds() {
        let b = batch(&["{\"a\":1}", "{\"b\":22}", "{\"c\":333}"]);
        // Line ends at 8, 17, 27.
        assert_eq!(b.whole_lines_in(0), (0, 0));
        assert_eq!(b.whole_lines_in(7), (0, 0), "a fragment of the first line");
        assert_eq!(b.whole_lines_in(8), (1, 8));
        assert_eq!(b.whole_lines_in(16), (1, 8), "line two lacks its newline");
        assert_eq!(b.whole_lines_in(17), (2, 17));
        assert_eq!(b.whole_lines_in(27), (3, 27));
    }

    #[test]
    fn a_refused_write_reports_every_line_as_not_written() {
        // /dev/full refuses every write with ENOSPC, like a full disk.
        let mut sink = Sink::open(Some("/dev/full".into())).unwrap();
        let written = sink.write(&batch(&["one", "two"]));
        assert_eq!(written.lines, 0);
        let error = written.error.expect("an error");
        assert_eq!(error.raw_os_error(), Some(28), "ENOSPC: {error}");
    }

    #[test]
    fn lines_are_appended_whole_after_the_file_is_truncated_under_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut sink = Sink::open(Some(path.clone())).unwrap();
        assert!(sink.write(&batch(&["first", "second"])).error.is_none());
        // logrotate's copytruncate: same file, emptied under the open descriptor.
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        assert!(sink.write(&batch(&["third"])).error.is_none());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third\n");
    }

    #[test]
    fn a_fragment_that_cannot_be_cut_back_is_fenced_off_by_a_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut sink = Sink::open(Some(path.clone())).unwrap();
        sink.torn = true; // as after a failed cut-back
        assert!(sink.write(&batch(&["next"])).error.is_none());
        assert!(!sink.torn);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "\nnext\n");
    }
}
