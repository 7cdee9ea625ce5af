//! Stream lifecycle: per-stream metadata (`max_count`, `max_age`, `truncate_before`, user keys),
//! soft deletes and tombstones. All of it is stored in the log itself, as `$metadata` events of
//! the stream's metadata stream `$$<stream>`, so it survives restarts and is rebuilt with the
//! indexes. Reads apply it at once; scavenging later removes what it hides.

mod api;
mod codec;

use std::{collections::BTreeMap, time::Duration};

pub(crate) use api::{delete, metadata, set_metadata, tombstone};
pub(crate) use codec::{MetaRecord, decode_meta, encode_meta};

/// The event type of a metadata event.
pub(crate) const METADATA_EVENT_TYPE: &str = "$metadata";

/// Prefix of a metadata stream's name: the metadata of `order-1` lives in `$$order-1`.
pub(crate) const METADATA_STREAM_PREFIX: &str = "$$";

/// The name of the stream that holds `stream`'s metadata.
pub(crate) fn metadata_stream(stream: &str) -> String {
    format!("{METADATA_STREAM_PREFIX}{stream}")
}

/// The stream whose metadata `name` holds, if `name` is a metadata stream.
pub(crate) fn metadata_target(name: &str) -> Option<&str> {
    name.strip_prefix(METADATA_STREAM_PREFIX)
}

/// A stream's metadata: rules that hide old events from reads (and let scavenging remove them),
/// and free-form user keys. Every rule is optional; the default hides nothing.
///
/// A stream's events that a rule hides are gone for stream reads and subscriptions at once;
/// `$all` still holds them until [`Store::scavenge`](crate::Store::scavenge) removes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamMetadata {
    /// Keep only the last `max_count` events.
    pub max_count: Option<u64>,
    /// Hide events committed longer ago than this.
    pub max_age: Option<Duration>,
    /// Hide events with a version below this one.
    pub truncate_before: Option<u64>,
    /// The caller's own keys and values (stored, never interpreted).
    pub custom: BTreeMap<String, String>,
}

impl StreamMetadata {
    /// The oldest commit time (µs since the epoch) `max_age` leaves visible at `now_us`.
    pub(crate) fn age_cutoff_us(max_age: Option<Duration>, now_us: u64) -> Option<u64> {
        let max_age = u64::try_from(max_age?.as_micros()).unwrap_or(u64::MAX);
        Some(now_us.saturating_sub(max_age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_streams_name_their_target() {
        assert_eq!(metadata_stream("order-1"), "$$order-1");
        assert_eq!(metadata_target("$$order-1"), Some("order-1"));
        assert_eq!(metadata_target("order-1"), None);
    }
}
