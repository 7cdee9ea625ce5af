//! A group as GetInfo and List report it: its settings as defined, and its state from the
//! library's live group when a consumer is connected, else from the saved checkpoint.

use annal::Store;

use super::{
    definition::{Definition, Source},
    groups::Connection,
};
use crate::proto::persistent::{SubscriptionInfo, subscription_info::ConnectionInfo};

fn int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The info of `d`, whose consumers are `connections`. `checkpoint` is the saved one, read by
/// the caller when no consumer is connected.
pub fn info(
    store: &Store,
    d: &Definition,
    connections: &[Connection],
    saved: Option<u64>,
) -> SubscriptionInfo {
    let live = store.group_info(&d.library_name());
    let (in_flight, parked) = live.as_ref().map_or((0, 0), |g| (g.in_flight, g.parked));
    let checkpoint = live.as_ref().map(|g| g.checkpoint.get()).or(saved);
    // A stream group's progress is a log position, not a revision: it is reported for `$all`
    // groups only, where the clients read it as one.
    let checkpointed = match (&d.source, checkpoint) {
        (Source::All, Some(p)) => format!("C:{p}/P:{p}"),
        _ => String::new(),
    };
    let s = &d.settings;
    let buffer = d.group_settings().consumer_buffer;
    let connections = connections
        .iter()
        .map(|c| ConnectionInfo {
            from: c.from.clone(),
            username: String::new(),
            average_items_per_second: 0,
            total_items: 0,
            count_since_last_measurement: 0,
            observed_measurements: Vec::new(),
            available_slots: i32::try_from(buffer).unwrap_or(i32::MAX),
            in_flight_messages: 0,
            connection_name: String::new(),
        })
        .collect();
    SubscriptionInfo {
        event_source: d.source.name().to_owned(),
        group_name: d.group.clone(),
        status: "Live".to_owned(),
        connections,
        average_per_second: 0,
        total_items: 0,
        count_since_last_measurement: 0,
        last_checkpointed_event_position: checkpointed,
        last_known_event_position: String::new(),
        resolve_link_tos: s.resolve_links,
        start_from: d.start_from(),
        message_timeout_milliseconds: s.message_timeout_ms,
        extra_statistics: s.extra_statistics,
        max_retry_count: s.max_retry_count,
        live_buffer_size: s.live_buffer_size,
        buffer_size: s.history_buffer_size,
        read_batch_size: s.read_batch_size,
        check_point_after_milliseconds: s.checkpoint_after_ms,
        min_check_point_count: s.min_checkpoint_count,
        max_check_point_count: s.max_checkpoint_count,
        read_buffer_count: 0,
        live_buffer_count: 0,
        retry_buffer_count: 0,
        total_in_flight_messages: int(in_flight),
        outstanding_messages_count: int(in_flight),
        named_consumer_strategy: s.strategy.name().to_owned(),
        max_subscriber_count: s.max_subscriber_count,
        parked_message_count: i64::try_from(parked).unwrap_or(i64::MAX),
    }
}
