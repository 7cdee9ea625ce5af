//! `ServerFeatures.GetSupportedMethods`: the methods this server implements, so clients pick
//! what they call (the Node client appends through BatchAppend only when it is listed).

use crate::proto::server_features::{SupportedMethod, SupportedMethods};

/// The service name clients see for Streams.
pub const STREAMS: &str = "event_store.client.streams.streams";
/// The service name clients see for Gossip.
pub const GOSSIP: &str = "event_store.client.gossip.gossip";
/// The service name clients see for ServerFeatures.
pub const SERVER_FEATURES: &str = "event_store.client.server_features.serverfeatures";

/// The service name clients see for PersistentSubscriptions.
pub const PERSISTENT: &str = "event_store.client.persistent_subscriptions.persistentsubscriptions";

/// The features of the PersistentSubscriptions methods: groups on a stream and on `$all` (the
/// Node client calls a method for `$all` only when `all` is listed).
const STREAM_AND_ALL: &[&str] = &["stream", "all"];

/// The service name clients see for the v2 StreamsService.
pub const STREAMS_V2: &str = "kurrentdb.protocol.v2.streams.streamsservice";

/// Every method served, as (service, method, features), lower case as the protocol reports
/// them.
pub const METHODS: [(&str, &str, &[&str]); 16] = [
    (STREAMS, "read", &[]),
    (STREAMS, "append", &[]),
    (STREAMS, "delete", &[]),
    (STREAMS, "tombstone", &[]),
    (STREAMS, "batchappend", &[]),
    (STREAMS_V2, "appendsession", &[]),
    (PERSISTENT, "create", STREAM_AND_ALL),
    (PERSISTENT, "update", STREAM_AND_ALL),
    (PERSISTENT, "delete", STREAM_AND_ALL),
    (PERSISTENT, "read", STREAM_AND_ALL),
    (PERSISTENT, "getinfo", STREAM_AND_ALL),
    (PERSISTENT, "replayparked", STREAM_AND_ALL),
    (PERSISTENT, "list", STREAM_AND_ALL),
    (PERSISTENT, "restartsubsystem", &[]),
    (GOSSIP, "read", &[]),
    (SERVER_FEATURES, "getsupportedmethods", &[]),
];

/// The version reported: this crate's, as `major.minor.patch`.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The reply.
pub fn supported_methods() -> SupportedMethods {
    SupportedMethods {
        methods: METHODS
            .iter()
            .map(|(service, method, features)| SupportedMethod {
                method_name: (*method).to_owned(),
                service_name: (*service).to_owned(),
                features: features.iter().map(|f| (*f).to_owned()).collect(),
            })
            .collect(),
        event_store_server_version: SERVER_VERSION.to_owned(),
    }
}
