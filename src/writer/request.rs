//! What an appending thread hands the writer: a checked, pre-encoded append. Everything that
//! can be checked without the log's state is checked here, on the caller's thread, so that bad
//! input never reaches the writer and the writer's work per event stays small.

use uuid::Uuid;

use crate::{
    error::{Error, Limit, Result},
    format::{EventParts, METADATA_BYTES_MAX, RECORD_HEADER_LEN, encode_record},
    options::Options,
    types::{ExpectedVersion, StreamAppend},
};

use super::answer::Reply;

/// Widest name a record can hold, in bytes: the format stores a stream name's and an event
/// type's length in one byte each.
pub(crate) const NAME_FIELD_BYTES_MAX: usize = u8::MAX as usize;

/// Longest stream name a caller may write to, in bytes: two fewer than a record holds, so that
/// the stream's metadata stream `$$<name>` fits too.
pub const STREAM_NAME_BYTES_MAX: usize = 253;

/// Longest event type, in bytes: as wide as the record's field.
pub const EVENT_TYPE_BYTES_MAX: usize = 255;

// Every name the store derives from a stream name must fit the field it goes in.
const _: () = assert!(
    crate::lifecycle::METADATA_STREAM_PREFIX.len() + STREAM_NAME_BYTES_MAX <= NAME_FIELD_BYTES_MAX
);
const _: () = assert!(EVENT_TYPE_BYTES_MAX <= NAME_FIELD_BYTES_MAX);

/// One stream's share of an append request.
#[derive(Debug)]
pub(crate) struct Part {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: u32,
}

/// A checked append on its way to the writer.
pub(crate) struct AppendRequest {
    pub parts: Vec<Part>,
    /// Every event's id, in log order.
    pub ids: Vec<Uuid>,
    /// The encoded records, in log order, awaiting their commit-time fields.
    pub records: Vec<u8>,
    /// Where the writer answers.
    pub reply: Reply,
}

impl AppendRequest {
    /// Checks `parts` against the limits and encodes them, to be answered through `reply`.
    pub fn build(
        parts: Vec<StreamAppend>,
        options: &Options,
        reply: Reply,
    ) -> Result<AppendRequest> {
        AppendRequest::build_as(parts, options, Origin::Caller, reply)
    }

    /// Like [`build`](AppendRequest::build), for the store's own appends: `$$` metadata streams
    /// are allowed, and so are parts without events, which only check their stream's version.
    pub fn build_system(
        parts: Vec<StreamAppend>,
        options: &Options,
        reply: Reply,
    ) -> Result<AppendRequest> {
        AppendRequest::build_as(parts, options, Origin::Store, reply)
    }

    fn build_as(
        parts: Vec<StreamAppend>,
        options: &Options,
        origin: Origin,
        reply: Reply,
    ) -> Result<AppendRequest> {
        let total_bytes = check_shape(&parts, options, origin)?;
        let total_events: usize = parts.iter().map(|p| p.events.len()).sum();
        let mut ids = Vec::with_capacity(total_events);
        // Sized once: growing it by doubling copied a batch's records about twice over.
        let mut records = Vec::with_capacity(total_bytes);
        let mut request_parts = Vec::with_capacity(parts.len());
        for part in parts {
            for event in &part.events {
                let id = event.id.unwrap_or_else(Uuid::new_v4);
                ids.push(id);
                let (stream, event_type) = (&part.stream, &event.event_type);
                let parts = EventParts::new(stream, id, event_type, &event.metadata, &event.data);
                // Refused before anything is queued; the checks above make it unreachable.
                let len = encode_record(&mut records, &parts)?;
                debug_assert!(len <= options.event_bytes_max as usize);
            }
            let events = part.events.len() as u32;
            request_parts.push(Part { stream: part.stream, expected: part.expected, events });
        }
        check_unique_ids(&ids)?;
        Ok(AppendRequest { parts: request_parts, ids, records, reply })
    }
}

/// Who builds an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// A caller of the public API.
    Caller,
    /// The store itself (metadata, deletes).
    Store,
}

/// Checks names, counts and sizes before anything is encoded; the bytes the records will take.
fn check_shape(parts: &[StreamAppend], options: &Options, origin: Origin) -> Result<usize> {
    if parts.iter().all(|p| p.events.is_empty()) {
        return Err(Error::EmptyAppend);
    }
    let mut events = 0u64;
    let mut bytes = 0u64;
    for (i, part) in parts.iter().enumerate() {
        match crate::lifecycle::metadata_target(&part.stream) {
            Some(target) if origin == Origin::Store => validate_stream_name(target)?,
            _ => validate_stream_name(&part.stream)?,
        }
        check_field_width(&part.stream)?;
        if parts[..i].iter().any(|p| p.stream == part.stream) {
            return Err(Error::DuplicateStream { stream: part.stream.clone() });
        }
        if part.events.is_empty() && origin == Origin::Caller {
            return Err(Error::EmptyAppend);
        }
        for event in &part.events {
            validate_event_type(&event.event_type)?;
            let metadata = event.metadata.len() as u64;
            if metadata > METADATA_BYTES_MAX as u64 {
                let (limit, max) = (Limit::MetadataBytes, METADATA_BYTES_MAX as u64);
                return Err(Error::LimitExceeded { limit, actual: metadata, max });
            }
            let len = (RECORD_HEADER_LEN
                + part.stream.len()
                + event.event_type.len()
                + event.metadata.len()
                + event.data.len()) as u64;
            let max = u64::from(options.event_bytes_max);
            if len > max {
                return Err(Error::LimitExceeded { limit: Limit::EventBytes, actual: len, max });
            }
            bytes += len;
        }
        events += part.events.len() as u64;
    }
    let max = u64::from(options.append_events_max);
    if events > max {
        return Err(Error::LimitExceeded { limit: Limit::AppendEvents, actual: events, max });
    }
    let max = u64::from(options.append_bytes_max);
    if bytes > max {
        return Err(Error::LimitExceeded { limit: Limit::AppendBytes, actual: bytes, max });
    }
    Ok(bytes as usize)
}

fn check_unique_ids(ids: &[Uuid]) -> Result<()> {
    if ids.len() <= 16 {
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(Error::DuplicateEventId { id: *id });
            }
        }
        return Ok(());
    }
    // Sorted copies, not a `HashSet`: SipHash of every id cost more than encoding the event.
    let mut sorted: Vec<u128> = ids.iter().map(Uuid::as_u128).collect();
    sorted.sort_unstable();
    match sorted.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(Error::DuplicateEventId { id: Uuid::from_u128(w[0]) }),
        None => Ok(()),
    }
}

/// Checks a stream name a caller may append to (and delete, tombstone or give metadata):
/// 1..=253 bytes of UTF-8 without control characters, not starting with `$` (reserved for the
/// store's own streams). See [`STREAM_NAME_BYTES_MAX`] for why 253.
pub fn validate_stream_name(name: &str) -> Result<()> {
    let too_long = "must be at most 253 bytes, so that its metadata stream `$$<name>` fits the \
                    255 bytes a record holds";
    check_stream_name(name, STREAM_NAME_BYTES_MAX, too_long)
}

/// Checks a stream name a caller may subscribe to: like [`validate_stream_name`], but up to the
/// 255 bytes a record holds, since a store written before the 253-byte limit may hold streams
/// of 254 and 255 bytes, which stay readable.
pub(crate) fn validate_readable_stream_name(name: &str) -> Result<()> {
    check_stream_name(name, NAME_FIELD_BYTES_MAX, "must be at most 255 bytes")
}

fn check_stream_name(name: &str, bytes_max: usize, too_long: &'static str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > bytes_max {
        too_long
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else if name.starts_with('$') {
        "names starting with '$' are reserved for the store"
    } else {
        return Ok(());
    };
    Err(Error::InvalidStreamName { name: name.to_owned(), reason })
}

/// Checks that a stream name, the caller's or one the store derived, fits a record's name
/// field. The encoder stores its length in one byte, so a longer name must never reach it.
fn check_field_width(stream: &str) -> Result<()> {
    if stream.len() <= NAME_FIELD_BYTES_MAX {
        return Ok(());
    }
    let reason = "does not fit the 255 bytes a record holds for a stream name";
    Err(Error::InvalidStreamName { name: stream.to_owned(), reason })
}

/// Checks an event type: 1..=255 bytes of UTF-8 without control characters.
pub fn validate_event_type(event_type: &str) -> Result<()> {
    let reason = if event_type.is_empty() {
        "must not be empty"
    } else if event_type.len() > EVENT_TYPE_BYTES_MAX {
        "must be at most 255 bytes"
    } else if event_type.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidEventType { event_type: event_type.to_owned(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NewEvent;

    fn one_event(stream: String) -> Vec<StreamAppend> {
        let event = NewEvent::new(crate::lifecycle::METADATA_EVENT_TYPE, vec![0; 8]);
        vec![StreamAppend::new(stream, ExpectedVersion::Any, [event])]
    }

    #[test]
    fn check_shape_store_names_must_fit_the_record_field() {
        let options = Options::default();
        let fits = format!("$${}", "x".repeat(STREAM_NAME_BYTES_MAX));
        assert!(check_shape(&one_event(fits), &options, Origin::Store).is_ok());
        let wide = format!("$${}", "x".repeat(STREAM_NAME_BYTES_MAX + 1));
        let refused = check_shape(&one_event(wide.clone()), &options, Origin::Store);
        assert!(matches!(refused, Err(Error::InvalidStreamName { .. })), "{refused:?}");
        assert!(check_field_width(&wide[1..]).is_ok());
        assert!(check_field_width(&format!("{wide}x")).is_err());
    }

    #[test]
    fn stream_names_of_254_and_255_bytes_are_readable_but_not_writable() {
        for len in [254, 255] {
            let name = "x".repeat(len);
            assert!(validate_stream_name(&name).is_err(), "{len}");
            assert!(validate_readable_stream_name(&name).is_ok(), "{len}");
        }
        assert!(validate_stream_name(&"x".repeat(253)).is_ok());
        assert!(validate_readable_stream_name(&"x".repeat(256)).is_err());
    }
}
