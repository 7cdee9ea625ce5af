//! `annal append`: events as JSON lines on stdin, appended to one stream as one atomic append.

use std::io::{self, BufRead};

use annal::{NewEvent, Store};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::{
    args::AppendArgs,
    exit::{CliResult, Exit, Failure},
    output::{self, Output},
    payload,
};

/// The fields an input line may have.
const FIELDS: [&str; 4] = ["type", "data", "metadata", "id"];

/// Reads the events from stdin and appends them.
pub fn run(args: &AppendArgs) -> CliResult {
    let events = read_events(io::stdin().lock())?;
    if events.is_empty() {
        return Err(Failure::usage("no events on stdin: give one JSON object per line"));
    }
    let count = events.len();
    // Opening writable creates the store if the directory holds none, and fails with exit 6
    // while another process has it open.
    let store = Store::open(&args.dir)?;
    let result = store.append(&args.stream, args.expected_version, events);
    store.close();
    let r = result?;
    let mut out = Output::new(args.json);
    if out.is_json() {
        out.value(&json!({
            "stream": args.stream,
            "events": count,
            "first_position": r.first_position.get(),
            "last_position": r.last_position.get(),
            "first_version": r.first_version.get(),
            "last_version": r.last_version.get(),
        }))?;
    } else {
        out.line(format_args!(
            "appended {} to {:?}: positions {}..={}, versions {}..={}",
            output::count(count as u64, "event"),
            args.stream,
            r.first_position,
            r.last_position,
            r.first_version,
            r.last_version,
        ))?;
    }
    out.flush()?;
    Ok(Exit::Ok)
}

/// Parses every non-blank line of `input` as an event.
fn read_events(input: impl BufRead) -> CliResult<Vec<NewEvent>> {
    let mut events = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| match e.kind() {
            // `lines` checks UTF-8 and reports bad bytes as invalid data: that is bad input.
            io::ErrorKind::InvalidData => Failure::usage(format!(
                "line {}: not UTF-8 text (give one JSON object per line, in UTF-8)",
                i + 1
            )),
            _ => Failure::other(format!("cannot read stdin: {e}")),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let event = parse_event(&line).map_err(|m| Failure::usage(format!("line {}: {m}", i + 1)));
        events.push(event?);
    }
    Ok(events)
}

/// One input line: `{"type": …, "data": …, "metadata": …, "id": …}`, only `type` required.
fn parse_event(line: &str) -> Result<NewEvent, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("expected a JSON object like {\"type\": \"Happened\", \"data\": {}}".into());
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field {unknown:?} (the fields are type, data, metadata, id)"));
    }
    let event_type = match fields.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err("\"type\" must be a string".into()),
        None => return Err("missing \"type\"".into()),
    };
    let bytes = |name: &str, fields: &Map<String, Value>| {
        fields.get(name).map_or_else(Vec::new, payload::encode)
    };
    let mut event = NewEvent::new(event_type, bytes("data", &fields));
    event.metadata = bytes("metadata", &fields);
    event.id = match fields.get("id") {
        None => None,
        Some(Value::String(id)) => {
            Some(Uuid::parse_str(id).map_err(|e| format!("\"id\" is not a UUID: {e}"))?)
        }
        Some(_) => return Err("\"id\" must be a UUID string".into()),
    };
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_events_with_text_or_json_bytes() {
        let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let input = format!(
            "{{\"type\":\"A\",\"data\":{{\"x\":1}}}}\n\n{{\"type\":\"B\",\"data\":\"hi\",\
             \"metadata\":[1],\"id\":\"{id}\"}}\n"
        );
        let events = read_events(input.as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].event_type.as_str(), &events[0].data[..]), ("A", &br#"{"x":1}"#[..]));
        assert!(events[0].metadata.is_empty() && events[0].id.is_none());
        assert_eq!((&events[1].data[..], &events[1].metadata[..]), (&b"hi"[..], &b"[1]"[..]));
        assert_eq!(events[1].id, Some(Uuid::parse_str(id).unwrap()));
    }

    #[test]
    fn bad_lines_name_their_line_and_problem() {
        let message = |input: &str| read_events(input.as_bytes()).unwrap_err().to_string();
        assert_eq!(message("{\"type\":\"A\"}\n{\"data\":1}"), "line 2: missing \"type\"");
        assert!(message("[1]").starts_with("line 1: expected a JSON object"));
        assert!(message("{\"type\":\"A\",\"dta\":1}").contains("unknown field \"dta\""));
        assert!(message("{\"type\":\"A\",\"id\":\"x\"}").contains("not a UUID"));
        assert!(message("{").starts_with("line 1: not JSON"));
    }

    #[test]
    fn invalid_utf8_is_bad_input_naming_its_line() {
        // `annal append` exited 1 ("cannot read stdin") on invalid UTF-8, as if stdin had
        // failed, while docs/cli.md says bad input is exit 2.
        let input = b"{\"type\":\"A\"}\n{\"type\":\"B\",\"data\":\"\xff\"}\n";
        let failure = read_events(&input[..]).unwrap_err();
        assert!(matches!(failure, Failure::Error { exit: Exit::Usage, .. }), "{failure:?}");
        assert!(failure.to_string().starts_with("line 2: not UTF-8"), "{failure}");
    }
}
