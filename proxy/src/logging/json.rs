//! The JSON log line, written straight into the line's buffer.
//!
//! tracing-subscriber's JSON formatter keeps a span's fields as a JSON object in a string, then
//! parses that string back into a map at every event of the span (and at every `record` on it,
//! to re-serialise it with the new field): with one span per connection, two events and three
//! late fields each, that was ~62,000 instructions per tunnel — a third of a tunnel's cost, and
//! five times Squid's whole access-log line (`bench/callgrind.sh --profile tunnels-one`). Here a
//! span keeps the *inside* of its object (`"k":v,"k":v`), which an event copies as it is and a
//! late field appends to; nothing is parsed. The line is the same JSON object as before:
//! `timestamp`, `level`, the event's fields (`message` first) at the top, the innermost span's
//! fields and `name` under `span`.
//!
//! Written here rather than by serde_json because the escaping must reach into `Debug` and
//! `Display` output as it is produced, without a `String` per value; the escaper is small and
//! tested against serde_json below.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How a span's fields are kept: the inside of a JSON object, pairs joined by commas.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpanFields;

/// Formats one event as one JSON object per line.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLine;

impl<'w> FormatFields<'w> for SpanFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut pairs = Visiting(Pairs::new(writer, false));
        fields.record(&mut pairs);
        pairs.0.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut late = Visiting(LateFields {
            object: &mut current.fields,
            result: Ok(()),
        });
        fields.record(&mut late);
        late.0.result
    }
}

impl<S> FormatEvent<S, SpanFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, SpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("{\"timestamp\":\"")?;
        timestamp(&mut writer, std::time::SystemTime::now())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(event.metadata().level().as_str())?;
        writer.write_char('"')?;
        let mut pairs = Visiting(Pairs::new(writer.by_ref(), true));
        event.record(&mut pairs);
        pairs.0.result?;
        let span = event
            .parent()
            .and_then(|id| context.span(id))
            .or_else(|| context.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<SpanFields>>() {
                if !fields.fields.is_empty() {
                    writer.write_str(&fields.fields)?;
                    writer.write_char(',')?;
                }
            }
            writer.write_str("\"name\":")?;
            string(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes each field as `"name":value`, a comma before each but the first unless `leading`.
struct Pairs<'w> {
    writer: Writer<'w>,
    comma: bool,
    result: fmt::Result,
}

impl<'w> Pairs<'w> {
    fn new(writer: Writer<'w>, leading: bool) -> Self {
        Pairs {
            writer,
            comma: leading,
            result: Ok(()),
        }
    }
}

impl Put for Pairs<'_> {
    fn put(&mut self, field: &Field, value: Value<'_>) {
        if self.result.is_err() {
            return;
        }
        let comma = std::mem::replace(&mut self.comma, true);
        self.result = (|| {
            if comma {
                self.writer.write_char(',')?;
            }
            string(&mut self.writer, field.name())?;
            self.writer.write_char(':')?;
            value.write(&mut self.writer)
        })();
    }
}

/// One field's value as tracing hands it over.
enum Value<'a> {
    Debug(&'a dyn fmt::Debug),
    Str(&'a str),
    Error(&'a (dyn std::error::Error + 'static)),
    Unsigned(u128),
    Signed(i128),
    Bool(bool),
    Float(f64),
}

impl Value<'_> {
    /// The value in JSON.
    fn write(self, writer: &mut impl fmt::Write) -> fmt::Result {
        match self {
            Value::Debug(value) => debug(writer, value),
            Value::Str(value) => string(writer, value),
            Value::Error(value) => display(writer, value),
            Value::Unsigned(value) => writer.write_str(itoa::Buffer::new().format(value)),
            Value::Signed(value) => writer.write_str(itoa::Buffer::new().format(value)),
            Value::Bool(value) => writer.write_str(if value { "true" } else { "false" }),
            // JSON has no NaN or infinity; serde_json writes them as null too.
            Value::Float(value) if value.is_finite() => write!(writer, "{value}"),
            Value::Float(_) => writer.write_str("null"),
        }
    }
}

/// Where the fields a visitor is shown go: the event's line, or a span's stored object.
trait Put {
    fn put(&mut self, field: &Field, value: Value<'_>);
}

/// Shows each field to `P` as a `Value`: one `Visit` for both kinds of destination.
struct Visiting<P>(P);

impl<P: Put> Visit for Visiting<P> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.put(field, Value::Debug(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.put(field, Value::Str(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.put(field, Value::Error(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.put(field, Value::Unsigned(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.put(field, Value::Signed(value.into()));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.0.put(field, Value::Unsigned(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.0.put(field, Value::Signed(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.put(field, Value::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.put(field, Value::Float(value));
    }
}

/// Fields recorded on a span after it was created (`Span::record`): appended to its object, or
/// in place of the field's earlier value.
struct LateFields<'a> {
    object: &'a mut String,
    result: fmt::Result,
}

impl Put for LateFields<'_> {
    fn put(&mut self, field: &Field, value: Value<'_>) {
        if self.result.is_err() {
            return;
        }
        let mut key = String::with_capacity(field.name().len() + 2);
        self.result = string(&mut key, field.name());
        if let Some(old) = value_of(self.object, &key) {
            let mut new = String::new();
            self.result = self.result.and_then(|()| value.write(&mut new));
            self.object.replace_range(old, &new);
        } else {
            if !self.object.is_empty() {
                self.object.push(',');
            }
            self.object.push_str(&key);
            self.object.push(':');
            self.result = self.result.and_then(|()| value.write(self.object));
        }
    }
}

/// Where the value of the pair whose key (a JSON string, as written) is `key` lies in an
/// object's inside, if there is one. The inside is walked pair by pair — this module wrote it,
/// so every value is a string, a number, a boolean or null — since a key's text can also appear
/// inside a value.
fn value_of(object: &str, key: &str) -> Option<std::ops::Range<usize>> {
    // Usually the field is new: its key's text is nowhere in the object.
    memchr::memmem::find(object.as_bytes(), key.as_bytes())?;
    let bytes = object.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let key_end = end_of_string(bytes, at);
        let value_start = key_end + 1; // past the colon
        let value_end = if bytes.get(value_start) == Some(&b'"') {
            end_of_string(bytes, value_start)
        } else {
            memchr::memchr(b',', &bytes[value_start..]).map_or(bytes.len(), |i| value_start + i)
        };
        if &object[at..key_end] == key {
            return Some(value_start..value_end);
        }
        at = value_end + 1; // past the comma
    }
    None
}

/// The index just past the JSON string starting at `start` (its opening quote).
fn end_of_string(bytes: &[u8], start: usize) -> usize {
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// `now` in RFC 3339 UTC with microseconds (`2026-12-03T12:11:13.123456Z`), as
/// tracing-subscriber writes it, without its `{:02}` padding through `fmt` for every part.
fn timestamp(writer: &mut impl fmt::Write, now: std::time::SystemTime) -> fmt::Result {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let of_day = seconds % 86_400;
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for place in (at..at + width).rev() {
            text[place] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, u64::from(since.subsec_micros()));
    writer.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A JSON string of `Debug` output, escaped as it is written.
fn debug(writer: &mut impl fmt::Write, value: &dyn fmt::Debug) -> fmt::Result {
    writer.write_char('"')?;
    write!(Escaping(writer), "{value:?}")?;
    writer.write_char('"')
}

/// A JSON string of `Display` output, escaped as it is written.
fn display(writer: &mut impl fmt::Write, value: &dyn fmt::Display) -> fmt::Result {
    writer.write_char('"')?;
    write!(Escaping(writer), "{value}")?;
    writer.write_char('"')
}

/// A JSON string.
fn string(writer: &mut impl fmt::Write, value: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaping(writer).write_str(value)?;
    writer.write_char('"')
}

/// Passes text through with JSON's string escapes: `"`, `\` and every control character below
/// U+0020, so no value can end its string early or start a new line (a forged log line).
struct Escaping<'a, W: fmt::Write>(&'a mut W);

/// The bytes `Escaping` must escape, looked up rather than compared: most text has none, and
/// this loop runs over every byte of every log line.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let bytes = text.as_bytes();
        let mut plain = 0;
        let mut at = 0;
        while at < bytes.len() {
            let byte = bytes[at];
            if !NEEDS_ESCAPE[usize::from(byte)] {
                at += 1;
                continue;
            }
            // Every byte cut at is ASCII, so the slices fall on character boundaries.
            self.0.write_str(&text[plain..at])?;
            match byte {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                _ => write!(self.0, "\\u{byte:04x}")?,
            }
            at += 1;
            plain = at;
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests;
