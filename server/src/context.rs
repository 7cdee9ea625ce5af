//! What every request handler shares: the store, the server's limits, and the signal that the
//! server is shutting down (long-lived calls such as subscriptions end on it).

use std::sync::Arc;

use annal::Store;
use tokio::sync::{Semaphore, watch};

use crate::metrics::Metrics;

/// Default largest append, in bytes of event data, custom metadata and type (the protocol's
/// reference server defaults to the same 1 MiB).
pub const APPEND_BYTES_MAX_DEFAULT: u64 = 1 << 20;

/// Replies a read or subscription may have queued for a slow client before its reader waits.
pub const READ_QUEUE_REPLIES: usize = 64;

/// Default most live subscriptions at once. Each is an async task (no thread) holding at most
/// [`READ_QUEUE_REPLIES`] replies; the limit bounds that memory, and the work of waking them.
pub const SUBSCRIPTIONS_MAX_DEFAULT: usize = 10_000;

/// Default most subscriptions one connection may have open at once.
pub const SUBSCRIPTIONS_PER_CONNECTION_MAX_DEFAULT: usize = 128;

/// Default most connections open at once.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;

const _: () = assert!(SUBSCRIPTIONS_PER_CONNECTION_MAX_DEFAULT <= SUBSCRIPTIONS_MAX_DEFAULT);

/// The server's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest append accepted (`maximum-append-size-exceeded` above it).
    pub append_bytes_max: u64,
    /// Most subscriptions open at once; more are refused with `RESOURCE_EXHAUSTED`.
    pub subscriptions_max: usize,
    /// Most subscriptions one connection may have open at once; more are refused with
    /// `RESOURCE_EXHAUSTED`.
    pub subscriptions_per_connection_max: usize,
    /// Most connections open at once; a connection beyond it is closed as soon as it is
    /// accepted (its client sees
    /// a transport error).
    pub connections_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            append_bytes_max: APPEND_BYTES_MAX_DEFAULT,
            subscriptions_max: SUBSCRIPTIONS_MAX_DEFAULT,
            subscriptions_per_connection_max: SUBSCRIPTIONS_PER_CONNECTION_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
        }
    }
}

/// The state handlers share; cloning is cheap.
#[derive(Clone)]
pub struct Context {
    /// The store served.
    pub store: Store,
    /// The server's limits.
    pub limits: Limits,
    /// Becomes `true` when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// One permit per subscription that may be open ([`Limits::subscriptions_max`]).
    pub subscriptions: Arc<Semaphore>,
    /// The server's counters.
    pub metrics: Arc<Metrics>,
}
