//! The protocol's messages and service stubs, generated at build time from `proto/` (see
//! `build.rs`). The modules mirror the protocol's package names, which the generated code's
//! cross-references rely on.

#![allow(missing_docs, reason = "generated code")]
#![allow(clippy::all, reason = "generated code")]

/// `event_store.client` and its sub-packages.
pub mod event_store {
    /// `event_store.client`: shared types.
    pub mod client {
        tonic::include_proto!("event_store.client");

        /// `event_store.client.streams`: the Streams service.
        pub mod streams {
            tonic::include_proto!("event_store.client.streams");
        }
        /// `event_store.client.server_features`: the ServerFeatures service.
        pub mod server_features {
            tonic::include_proto!("event_store.client.server_features");
        }
        /// `event_store.client.gossip`: the Gossip service.
        pub mod gossip {
            tonic::include_proto!("event_store.client.gossip");
        }
        /// `event_store.client.persistent_subscriptions`: the PersistentSubscriptions service.
        pub mod persistent_subscriptions {
            tonic::include_proto!("event_store.client.persistent_subscriptions");
        }
    }
}

/// `kurrentdb.protocol.v2`: the v2 streams service (AppendSession) and its error details.
pub mod kurrentdb {
    /// `kurrentdb.protocol`.
    pub mod protocol {
        /// `kurrentdb.protocol.v2`.
        pub mod v2 {
            /// `kurrentdb.protocol.v2.streams`: the StreamsService.
            pub mod streams {
                tonic::include_proto!("kurrentdb.protocol.v2.streams");

                /// `kurrentdb.protocol.v2.streams.errors`: error details.
                pub mod errors {
                    tonic::include_proto!("kurrentdb.protocol.v2.streams.errors");
                }
            }
        }
    }
}

/// `google.rpc`: the status carried inside BatchAppend replies.
pub mod google {
    /// `google.rpc`.
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub use event_store::client as shared;
pub use event_store::client::{
    gossip, persistent_subscriptions as persistent, server_features, streams,
};
pub use kurrentdb::protocol::v2::streams as v2;
