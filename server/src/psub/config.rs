//! Where group definitions live: events of the stream [`CONFIG_STREAM`] in the store itself,
//! each holding every definition as of its append (a snapshot, as the protocol's reference
//! server keeps its own in `$persistentSubscriptionConfig`). The server folds the newest event
//! that decodes when it starts and appends a new snapshot on every Create, Update and Delete,
//! expecting the version it last saw.
//!
//! Keeping them in the log keeps invariant 6 (only segments are not derived): a definition is
//! as durable as any acknowledged event, is copied by a backup of the segments, and needs no
//! file of its own. The library's checkpoint files hold each group's progress, as for any
//! persistent subscription.

use annal::{Error, ExpectedVersion, NewEvent, Store, StreamVersion};
use serde::{Deserialize, Serialize};

use super::definition::Definition;
use crate::content;

/// The stream of definition snapshots. Its name does not start with `$` (the library keeps
/// those for itself), so clients can read it; its event type starts with `$` so that the
/// clients' usual system-event filters leave it out of `$all` subscriptions.
pub const CONFIG_STREAM: &str = "annal-server.persistent-subscriptions";
/// The type of a snapshot event.
pub const CONFIG_EVENT_TYPE: &str = "$annal.persistent-config";
/// The snapshot's JSON layout version.
pub const CONFIG_FORMAT: u32 = 1;
/// Snapshots looked at, newest first, for one that decodes (a client may append to the
/// stream; what does not decode is stepped over).
const SNAPSHOTS_TRIED_MAX: usize = 64;

/// Every definition at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`CONFIG_FORMAT`].
    pub format: u32,
    /// The id the next group created gets.
    pub next_id: u64,
    /// The groups, in no particular order.
    pub groups: Vec<Definition>,
}

/// The definitions as stored, and the stream's last version (to append the next one after).
#[derive(Debug, Default)]
pub struct Loaded {
    /// The newest snapshot that decodes; empty if none.
    pub snapshot: Snapshot,
    /// The stream's last version; `None` if it has no events.
    pub version: Option<u64>,
}

/// Reads the newest snapshot. Blocking.
pub fn load(store: &Store) -> Result<Loaded, Error> {
    let events =
        match store.read_stream_backward(CONFIG_STREAM, StreamVersion::END, SNAPSHOTS_TRIED_MAX) {
            Ok(events) => events,
            Err(Error::StreamNotFound { .. } | Error::StreamDeleted { .. }) => {
                return Ok(Loaded::default());
            }
            Err(e) => return Err(e),
        };
    let version = store.stream_version(CONFIG_STREAM).map(StreamVersion::get);
    for event in events {
        let event = event?;
        if event.event_type() != CONFIG_EVENT_TYPE {
            continue;
        }
        match decode(event.data()) {
            Some(snapshot) => return Ok(Loaded { snapshot, version }),
            None => tracing::warn!(
                version = event.version().get(),
                "skipped an undecodable \
                                   persistent subscription snapshot"
            ),
        }
    }
    Ok(Loaded { snapshot: Snapshot::default(), version })
}

/// Appends `snapshot` after `version`; the stream's new last version. Blocking.
pub fn save(store: &Store, snapshot: &Snapshot, version: Option<u64>) -> Result<u64, Error> {
    let data = serde_json::to_vec(snapshot).expect("a snapshot serialises");
    let event =
        NewEvent::new(CONFIG_EVENT_TYPE, data).with_metadata(content::wrap(content::JSON, &[]));
    let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
    let appended = store.append(CONFIG_STREAM, expected, [event])?;
    Ok(appended.last_version.get())
}

/// A snapshot from its JSON; `None` if it is not one of a format this server reads.
pub fn decode(data: &[u8]) -> Option<Snapshot> {
    let snapshot: Snapshot = serde_json::from_slice(data).ok()?;
    (snapshot.format == CONFIG_FORMAT).then_some(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::psub::definition::{FilterSpec, Settings, Source, Start, Strategy};

    /// The layout server.md documents, field by field.
    const GOLDEN: &str = concat!(
        r#"{"format":1,"next_id":8,"groups":[{"id":7,"source":{"Stream":"orders"},"#,
        r#""group":"billing","start":{"Revision":3},"start_position":4096,"min_revision":3,"#,
        r#""filter":null,"settings":{"resolve_links":false,"extra_statistics":true,"#,
        r#""message_timeout_ms":30000,"max_retry_count":10,"min_checkpoint_count":10,"#,
        r#""max_checkpoint_count":1000,"checkpoint_after_ms":2000,"max_subscriber_count":0,"#,
        r#""live_buffer_size":500,"read_batch_size":20,"history_buffer_size":500,"#,
        r#""strategy":"RoundRobin"}},{"id":5,"source":"All","group":"audit","start":"End","#,
        r#""start_position":0,"min_revision":0,"filter":{"on_stream":true,"regex":"","#,
        r#""prefixes":["order-"]},"settings":{"resolve_links":false,"extra_statistics":false,"#,
        r#""message_timeout_ms":0,"max_retry_count":0,"min_checkpoint_count":0,"#,
        r#""max_checkpoint_count":0,"checkpoint_after_ms":0,"max_subscriber_count":1,"#,
        r#""live_buffer_size":0,"read_batch_size":0,"history_buffer_size":0,"#,
        r#""strategy":"DispatchToSingle"}}]}"#,
    );

    fn snapshot() -> Snapshot {
        let settings = Settings {
            resolve_links: false,
            extra_statistics: true,
            message_timeout_ms: 30_000,
            max_retry_count: 10,
            min_checkpoint_count: 10,
            max_checkpoint_count: 1000,
            checkpoint_after_ms: 2000,
            max_subscriber_count: 0,
            live_buffer_size: 500,
            read_batch_size: 20,
            history_buffer_size: 500,
            strategy: Strategy::RoundRobin,
        };
        let quiet = Settings {
            extra_statistics: false,
            message_timeout_ms: 0,
            max_retry_count: 0,
            min_checkpoint_count: 0,
            max_checkpoint_count: 0,
            checkpoint_after_ms: 0,
            max_subscriber_count: 1,
            live_buffer_size: 0,
            read_batch_size: 0,
            history_buffer_size: 0,
            strategy: Strategy::DispatchToSingle,
            ..settings.clone()
        };
        Snapshot {
            format: CONFIG_FORMAT,
            next_id: 8,
            groups: vec![
                Definition {
                    id: 7,
                    source: Source::Stream("orders".into()),
                    group: "billing".into(),
                    start: Start::Revision(3),
                    start_position: 4096,
                    min_revision: 3,
                    filter: None,
                    settings,
                },
                Definition {
                    id: 5,
                    source: Source::All,
                    group: "audit".into(),
                    start: Start::End,
                    start_position: 0,
                    min_revision: 0,
                    filter: Some(FilterSpec {
                        on_stream: true,
                        regex: String::new(),
                        prefixes: vec!["order-".into()],
                    }),
                    settings: quiet,
                },
            ],
        }
    }

    #[test]
    fn a_snapshot_is_the_documented_json_both_ways() {
        assert_eq!(serde_json::to_string(&snapshot()).unwrap(), GOLDEN);
        assert_eq!(decode(GOLDEN.as_bytes()), Some(snapshot()));
    }

    #[test]
    fn other_formats_and_other_json_do_not_decode() {
        let newer = GOLDEN.replacen(r#""format":1"#, r#""format":2"#, 1);
        assert_eq!(decode(newer.as_bytes()), None);
        assert_eq!(decode(b"{}"), None);
        assert_eq!(decode(b"not json"), None);
    }
}
