//! What the commands print: one line per event for people, one JSON object per event for
//! scripts, and the small formatting helpers (times, byte counts) both use.

use std::{
    fmt::Display,
    io::{self, BufWriter, StdoutLock, Write},
};

use annal::RecordedEvent;
use serde_json::{Value, json};

use crate::payload::{self, Encoding};

/// Longest data or metadata preview in a human line, in characters.
const PREVIEW_CHARS_MAX: usize = 200;

/// Buffered stdout, in human or JSON form. Writes return the I/O error so that a closed pipe
/// can end a command quietly.
pub struct Output {
    out: BufWriter<StdoutLock<'static>>,
    json: bool,
}

impl Output {
    /// Stdout, printing JSON when `json` is set.
    pub fn new(json: bool) -> Output {
        Output { out: BufWriter::new(io::stdout().lock()), json }
    }

    /// Whether this prints JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// One event: a line for people or a JSON object on its own line.
    pub fn event(&mut self, event: &RecordedEvent) -> io::Result<()> {
        if self.json { self.value(&event_json(event)) } else { self.line(event_line(event)) }
    }

    /// A line of text.
    pub fn line(&mut self, text: impl Display) -> io::Result<()> {
        writeln!(self.out, "{text}")
    }

    /// A JSON value, compact, on its own line.
    pub fn value(&mut self, value: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }

    /// Pushes everything written so far to stdout.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// An event as one JSON object: `data` and `metadata` decoded as [`payload::decode`] says,
/// with `data_encoding` and `metadata_encoding` naming how.
pub fn event_json(event: &RecordedEvent) -> Value {
    let (data, data_encoding) = payload::decode(event.data());
    let (metadata, metadata_encoding) = payload::decode(event.metadata());
    json!({
        "position": event.position().get(),
        "stream": event.stream(),
        "version": event.version().get(),
        "type": event.event_type(),
        "id": event.id().to_string(),
        "timestamp": timestamp(event.timestamp_us()),
        "timestamp_us": event.timestamp_us(),
        "data": data,
        "data_encoding": data_encoding.name(),
        "metadata": metadata,
        "metadata_encoding": metadata_encoding.name(),
    })
}

/// An event as one line: position, stream@version, type, commit time, data, and metadata if
/// there is any.
pub fn event_line(event: &RecordedEvent) -> String {
    let mut line = format!(
        "{:>8}  {}@{}  {}  {}  {}",
        event.position(),
        event.stream(),
        event.version(),
        event.event_type(),
        timestamp(event.timestamp_us()),
        preview(event.data()),
    );
    if !event.metadata().is_empty() {
        line.push_str("  metadata: ");
        line.push_str(&preview(event.metadata()));
    }
    line
}

/// Payload bytes for a human line: JSON compact, text quoted, other bytes tagged with their
/// encoding; cut at [`PREVIEW_CHARS_MAX`] characters.
fn preview(bytes: &[u8]) -> String {
    let (value, encoding) = payload::decode(bytes);
    let text = match (encoding, value) {
        (Encoding::Json | Encoding::Utf8, value) => value.to_string(),
        (Encoding::MessagePack, value) => format!("msgpack:{value}"),
        (Encoding::Base64, Value::String(b64)) => format!("base64:{b64}"),
        (Encoding::Base64, value) => value.to_string(),
    };
    match text.char_indices().nth(PREVIEW_CHARS_MAX) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], bytes.len()),
        None => text,
    }
}

/// Microseconds since the Unix epoch as RFC 3339 UTC: `2024-05-01T12:00:00.123456Z`.
pub fn timestamp(us: u64) -> String {
    let secs = us / 1_000_000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (rest / 3600, rest / 60 % 60, rest % 60);
    let micros = us % 1_000_000;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micros:06}Z")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `count` and `noun`, with an `s` unless the count is one: `1 segment`, `3 segments`.
pub fn count(count: impl Into<u64>, noun: &str) -> String {
    let count = count.into();
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc_3339_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29T12:34:56.789012Z: a leap day in a year divisible by 400.
        assert_eq!(timestamp(951_827_696_789_012), "2000-02-29T12:34:56.789012Z");
        assert_eq!(timestamp(1_704_067_199_000_001), "2023-12-31T23:59:59.000001Z");
    }

    #[test]
    fn byte_counts_pick_a_unit() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn previews_are_cut_with_the_size() {
        let long = "x".repeat(300);
        let shown = preview(long.as_bytes());
        assert!(shown.ends_with("… (300 bytes)"), "{shown}");
        assert_eq!(preview(br#"{"a": 1}"#), r#"{"a":1}"#);
        assert_eq!(preview(&[0xff]), "base64:/w==");
    }
}
