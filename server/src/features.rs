//! `ServerFeatures.GetSupportedMethods`: the methods this server implements, so clients pick
//! what they call (the Node client appends through BatchAppend only when it is listed).

use crate::proto::server_features::{SupportedMethod, SupportedMethods};

/// The service name clients see for Streams.
pub const STREAMS: &str = "event_store.client.streams.streams";
/// The service name clients see for Gossip.
pub const GOSSIP: &str = "event_store.client.gossip.gossip";
/// The service name clients see for ServerFeatures.
pub const SERVER_FEATURES: &str = "event_store.client.server_features.serverfeatures";

/// The service name clients see for the v2 StreamsService.
pub const STREAMS_V2: &str = "kurrentdb.protocol.v2.streams.streamsservice";

/// Every method served, as (service, method), lower case as the protocol reports them.
pub const METHODS: [(&str, &str); 8] = [
    (STREAMS, "read"),
    (STREAMS, "append"),
    (STREAMS, "delete"),
    (STREAMS, "tombstone"),
    (STREAMS, "batchappend"),
    (STREAMS_V2, "appendsession"),
    (GOSSIP, "read"),
    (SERVER_FEATURES, "getsupportedmethods"),
];

/// The version reported: this crate's, as `major.minor.patch`.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The reply.
pub fn supported_methods() -> SupportedMethods {
    SupportedMethods {
        methods: METHODS
            .iter()
            .map(|(service, method)| SupportedMethod {
                method_name: (*method).to_owned(),
                service_name: (*service).to_owned(),
                features: Vec::new(),
            })
            .collect(),
        event_store_server_version: SERVER_VERSION.to_owned(),
    }
}
