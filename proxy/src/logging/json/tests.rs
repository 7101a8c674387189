use std::io;
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use serde_json::{json, Value};
use tracing_subscriber::fmt::MakeWriter;

use super::*;

/// Lines written by a subscriber, kept for the test to read.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

/// Runs `body` under a subscriber with this formatter; every line it logged, parsed.
fn logged(body: impl FnOnce()) -> Vec<Value> {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(SpanFields)
        .event_format(JsonLine)
        .with_writer(lines.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, body);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(text.ends_with('\n'), "{text:?}");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn an_event_in_a_span_carries_its_fields_and_the_span_fields_late_ones_included() {
    let lines = logged(|| {
        let peer: std::net::SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let span = tracing::info_span!(
            "conn",
            client = %peer,
            listener = ?Some(peer),
            protocol = tracing::field::Empty,
            target = tracing::field::Empty,
            identity = tracing::field::Empty,
        );
        let _entered = span.enter();
        span.record("protocol", "connect");
        span.record("target", "a.example:443");
        // Recorded again: the second value replaces the first, whatever the first held.
        span.record("target", "b.example,\"target\":\"x\":443");
        span.record("identity", "ci");
        tracing::warn!(
            decision = "deny",
            port = 443u64,
            delta = -3i64,
            ok = false,
            "decision"
        );
    });
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["message"], "decision");
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["port"], 443);
    assert_eq!(line["delta"], -3);
    assert_eq!(line["ok"], false);
    assert_eq!(
        line["span"],
        json!({
            "client": "127.0.0.1:4242",
            "listener": "Some(127.0.0.1:4242)",
            "protocol": "connect",
            "target": "b.example,\"target\":\"x\":443",
            "identity": "ci",
            "name": "conn",
        })
    );
    let timestamp = line["timestamp"].as_str().unwrap();
    assert!(
        timestamp.len() >= 20 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T',
        "{timestamp}"
    );
}

#[test]
fn an_event_outside_any_span_has_no_span_and_an_empty_span_only_its_name() {
    let lines = logged(|| {
        tracing::info!(address = "127.0.0.1:1", "listening");
        let span = tracing::info_span!("drain");
        span.in_scope(|| tracing::info!("drained"));
    });
    assert_eq!(lines[0].get("span"), None);
    assert_eq!(lines[0]["address"], "127.0.0.1:1");
    assert_eq!(lines[1]["span"], json!({ "name": "drain" }));
}

#[test]
fn a_field_recorded_late_replaces_only_itself_whatever_other_names_and_values_hold() {
    let lines = logged(|| {
        let span = tracing::info_span!(
            "conn",
            xtarget = "keep",
            decoy = "\",\"target\":\"forged\",",
            target = tracing::field::Empty
        );
        span.record("target", "one");
        span.record("target", "two");
        span.in_scope(|| tracing::info!("x"));
    });
    assert_eq!(
        lines[0]["span"],
        json!({
            "xtarget": "keep",
            "decoy": "\",\"target\":\"forged\",",
            "target": "two",
            "name": "conn"
        })
    );
}

#[test]
fn an_error_and_a_float_are_written_as_json_has_them() {
    let lines = logged(|| {
        let error = io::Error::other("broken \"pipe\"\n");
        let error: &(dyn std::error::Error + 'static) = &error;
        tracing::info!(error, ratio = 0.5f64, nan = f64::NAN, "x");
    });
    assert_eq!(lines[0]["error"], "broken \"pipe\"\n");
    assert_eq!(lines[0]["ratio"], 0.5);
    assert_eq!(lines[0]["nan"], Value::Null);
}

proptest! {
    /// Any text, control characters, quotes, backslashes and non-ASCII included, comes back
    /// from serde_json as it went in, and never breaks the line.
    #[test]
    fn escaped_text_reads_back_as_itself(text in any::<String>()) {
        let mut out = String::new();
        string(&mut out, &text).unwrap();
        prop_assert!(!out.contains('\n') && !out.contains('\r'));
        let back: String = serde_json::from_str(&out).unwrap();
        prop_assert_eq!(back, text);
    }

    /// Values logged in a span and as an event's fields read back exactly.
    #[test]
    fn span_and_event_values_read_back(first in any::<String>(), second in any::<String>(), event in any::<String>()) {
        let lines = logged(|| {
            let span = tracing::info_span!("conn", a = %first, b = tracing::field::Empty);
            span.record("b", second.as_str());
            span.record("a", second.as_str());
            span.in_scope(|| tracing::info!(value = %event, "x"));
        });
        prop_assert_eq!(&lines[0]["value"], &json!(event));
        prop_assert_eq!(&lines[0]["span"], &json!({ "a": second, "b": second, "name": "conn" }));
    }
}

#[test]
fn timestamps_are_rfc_3339_utc_with_microseconds_on_every_kind_of_day() {
    use std::time::{Duration, UNIX_EPOCH};
    // Each checked against `date -u -d @SECONDS`.
    for (seconds, micros, expected) in [
        (0, 0, "1970-01-01T00:00:00.000000Z"),
        (951_782_400, 7, "2000-02-29T00:00:00.000007Z"),
        (951_868_799, 999_999, "2000-02-29T23:59:59.999999Z"),
        (1_709_251_199, 500_000, "2024-02-29T23:59:59.500000Z"),
        (1_798_761_599, 1, "2026-12-31T23:59:59.000001Z"),
        (4_107_542_400, 0, "2100-03-01T00:00:00.000000Z"),
        (253_402_300_799, 0, "9999-12-31T23:59:59.000000Z"),
    ] {
        let at = UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros);
        let mut text = String::new();
        timestamp(&mut text, at).unwrap();
        assert_eq!(text, expected, "{seconds}");
    }
}
