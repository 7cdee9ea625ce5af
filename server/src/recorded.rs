//! An annal event as the protocol's `ReadResp.ReadEvent`: the id in the form the request asked
//! for, `type`, `content-type` and `created` in the metadata map, custom metadata and data,
//! and the event's position as both commit and prepare position.

use std::collections::HashMap;

use annal::RecordedEvent;

use crate::{
    content,
    proto::streams::read_resp::{ReadEvent, read_event},
    wire,
};

/// `event` as a read reply; `structured_ids` picks the id form. Reads and subscriptions send
/// events as [`encoded::event_reply`](crate::encoded::event_reply) writes them; this is the
/// same reply as a message, which the tests compare those bytes against.
#[allow(
    dead_code,
    reason = "the reference the encoded replies are tested against; services whose messages \
              embed a ReadEvent may build it"
)]
pub fn read_event(event: &RecordedEvent, structured_ids: bool) -> ReadEvent {
    let (content_type, custom) = content::unwrap(event.metadata());
    let body = Body { content_type, custom, data: event.data() };
    build(event, &body, structured_ids)
}

/// A metadata-stream event whose data is the stream's metadata as JSON (see `metadata`).
pub fn metadata_event(event: &RecordedEvent, json: &[u8], structured_ids: bool) -> ReadEvent {
    let body = Body { content_type: content::JSON, custom: &[], data: json };
    build(event, &body, structured_ids)
}

/// What a reply carries besides the event's identity and place.
struct Body<'a> {
    content_type: &'a str,
    custom: &'a [u8],
    data: &'a [u8],
}

fn build(event: &RecordedEvent, body: &Body<'_>, structured_ids: bool) -> ReadEvent {
    let position = event.position().get();
    let metadata = HashMap::from([
        ("type".to_owned(), event.event_type().to_owned()),
        ("content-type".to_owned(), body.content_type.to_owned()),
        ("created".to_owned(), wire::created_ticks(event.timestamp_us())),
    ]);
    let recorded = read_event::RecordedEvent {
        id: Some(wire::wire_uuid(event.id(), structured_ids)),
        stream_identifier: Some(wire::stream_identifier(event.stream())),
        stream_revision: event.version().get(),
        prepare_position: position,
        commit_position: position,
        metadata,
        custom_metadata: body.custom.to_vec(),
        data: body.data.to_vec(),
    };
    ReadEvent {
        event: Some(recorded),
        link: None,
        position: Some(read_event::Position::CommitPosition(position)),
    }
}
