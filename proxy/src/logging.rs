//! Log output: human-readable text or one JSON object per line, to stderr.
//!
//! Lines are handed to a writer thread (tracing-appender's non-blocking writer), so a connection
//! never waits on a write(2) to stderr or on a slow log collector; the queue is lossless, so a
//! collector that stops reading eventually slows the proxy rather than losing lines silently.

mod json;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides `level` when set. Keep the returned guard
/// alive until exit: dropping it flushes the lines still queued.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat, level: &str) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("egress-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colours only for a person at a terminal, never into a file or a journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .fmt_fields(json::SpanFields)
            .event_format(json::JsonLine)
            .init(),
    }
    guard
}
