//! Timestamped log files in the output directory (faults, wrong answers, the proxy's warnings),
//! each capped so a run that goes badly wrong cannot fill the disk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct Journal {
    start: Instant,
    cap: u64,
    inner: Mutex<(BufWriter<File>, u64)>,
}

impl Journal {
    pub fn create(path: &Path, start: Instant, cap: u64) -> std::io::Result<Journal> {
        Ok(Journal {
            start,
            cap,
            inner: Mutex::new((BufWriter::new(File::create(path)?), 0)),
        })
    }

    /// Seconds since the soak started.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn line(&self, text: &str) {
        let t = self.now();
        let mut inner = self.inner.lock().unwrap();
        inner.1 += 1;
        if inner.1 <= self.cap {
            let _ = writeln!(inner.0, "t={t:8.3}s {text}");
        } else if inner.1 == self.cap + 1 {
            let _ = writeln!(
                inner.0,
                "t={t:8.3}s (more lines left out: cap {})",
                self.cap
            );
        }
    }

    pub fn flush(&self) {
        let _ = self.inner.lock().unwrap().0.flush();
    }
}
