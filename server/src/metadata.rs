//! Stream metadata as the protocol does it: a client writes a `$metadata` event of JSON to the
//! stream's metadata stream `$$stream`, and reads the last event of `$$stream` back. The server
//! maps that JSON onto annal's [`StreamMetadata`] (`$maxCount` → `max_count`, `$maxAge` seconds
//! → `max_age`, `$tb` → `truncate_before`; every other key, `$cacheControl` and `$acl` included,
//! is kept as a custom key whose value is the key's JSON text) and renders it back as JSON.
//!
//! annal keeps only the current metadata readable by name, so a read of `$$stream` returns one
//! event whatever its direction and count: the current metadata, at its revision.

use std::time::Duration;

use annal::{ExpectedVersion, NewEvent, RecordedEvent, Store, StreamMetadata, StreamVersion};
use serde_json::{Map, Value};
use tonic::Status;

/// The prefix of a metadata stream's name.
pub const STREAM_PREFIX: &str = "$$";
/// The event type of a metadata event.
pub const EVENT_TYPE: &str = "$metadata";

const MAX_COUNT: &str = "$maxCount";
const MAX_AGE: &str = "$maxAge";
const TRUNCATE_BEFORE: &str = "$tb";

/// The stream whose metadata stream `name` is, if it is one.
pub fn target(name: &str) -> Option<&str> {
    name.strip_prefix(STREAM_PREFIX)
}

/// Parses the JSON a client writes as metadata.
pub fn from_json(data: &[u8]) -> Result<StreamMetadata, Status> {
    let bad = |why: &str| Status::invalid_argument(format!("stream metadata: {why}"));
    let Value::Object(map) = serde_json::from_slice(data).map_err(|e| bad(&e.to_string()))? else {
        return Err(bad("must be a JSON object"));
    };
    let mut meta = StreamMetadata::default();
    let number = |v: &Value, key: &str| {
        v.as_u64().ok_or_else(|| bad(&format!("{key} must be a whole number")))
    };
    for (key, value) in map {
        match key.as_str() {
            _ if value.is_null() => {}
            MAX_COUNT => meta.max_count = Some(number(&value, MAX_COUNT)?),
            MAX_AGE => meta.max_age = Some(Duration::from_secs(number(&value, MAX_AGE)?)),
            TRUNCATE_BEFORE => meta.truncate_before = Some(number(&value, TRUNCATE_BEFORE)?),
            _ => {
                meta.custom.insert(key, value.to_string());
            }
        }
    }
    Ok(meta)
}

/// The JSON clients read as metadata. A custom value that is not JSON (one set through the
/// library directly) is rendered as a JSON string.
pub fn to_json(meta: &StreamMetadata) -> Vec<u8> {
    let mut map = Map::new();
    if let Some(n) = meta.max_count {
        map.insert(MAX_COUNT.to_owned(), n.into());
    }
    if let Some(age) = meta.max_age {
        map.insert(MAX_AGE.to_owned(), age.as_secs().into());
    }
    if let Some(tb) = meta.truncate_before {
        map.insert(TRUNCATE_BEFORE.to_owned(), tb.into());
    }
    for (key, text) in &meta.custom {
        let value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()));
        map.insert(key.clone(), value);
    }
    serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
}

/// Sets `stream`'s metadata from an append to its metadata stream: exactly one `$metadata`
/// event whose data is the JSON. Returns the new revision of the metadata stream and the
/// position of its event.
pub fn set(
    store: &Store,
    stream: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<annal::Result<(StreamVersion, Option<u64>)>, Status> {
    let [event] = <[NewEvent; 1]>::try_from(events).map_err(|_| {
        Status::invalid_argument("a metadata stream takes one `$metadata` event at a time")
    })?;
    if event.event_type != EVENT_TYPE {
        return Err(Status::invalid_argument("a metadata stream takes only `$metadata` events"));
    }
    let meta = from_json(&event.data)?;
    Ok(store.set_stream_metadata(stream, expected, meta).map(|version| {
        let meta_stream = format!("{STREAM_PREFIX}{stream}");
        let at = store.read_stream_forward(&meta_stream, version, 1).ok().and_then(|mut events| {
            events.next()?.ok().filter(|e| e.version() == version).map(|e| e.position().get())
        });
        (version, at)
    }))
}

/// The current metadata of `stream` as a metadata-stream event (its id, revision, position and
/// time, with the JSON as data); `None` if it has none.
pub fn current(store: &Store, stream: &str) -> annal::Result<Option<(RecordedEvent, Vec<u8>)>> {
    let Some((version, meta)) = store.stream_metadata(stream)? else { return Ok(None) };
    let meta_stream = format!("{STREAM_PREFIX}{stream}");
    let raw = store.read_stream_forward(&meta_stream, version, 1)?.next().transpose()?;
    Ok(raw.filter(|e| e.version() == version).map(|e| (e, to_json(&meta))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_keys_map_onto_annal_rules_and_custom_keys_round_trip() {
        let json = br#"{"$maxCount":10,"$maxAge":3600,"$tb":2,"$cacheControl":5,"owner":"ops","n":{"a":[1]}}"#;
        let meta = from_json(json).unwrap();
        assert_eq!(meta.max_count, Some(10));
        assert_eq!(meta.max_age, Some(Duration::from_secs(3600)));
        assert_eq!(meta.truncate_before, Some(2));
        assert_eq!(meta.custom["owner"], "\"ops\"");
        let back: Value = serde_json::from_slice(&to_json(&meta)).unwrap();
        let original: Value = serde_json::from_slice(json).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn a_custom_value_set_through_the_library_reads_as_a_json_string() {
        let mut meta = StreamMetadata::default();
        meta.custom.insert("k".into(), "plain text".into());
        assert_eq!(to_json(&meta), br#"{"k":"plain text"}"#);
    }

    #[test]
    fn bad_metadata_is_invalid_argument() {
        assert!(from_json(b"[1]").is_err());
        assert!(from_json(br#"{"$maxCount":-1}"#).is_err());
        assert!(from_json(b"nope").is_err());
    }
}
