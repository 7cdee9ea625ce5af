//! # annal — an embedded event store
//!
//! One durable, totally ordered log shared by many streams. Every event gets a global
//! [`Position`] (dense, never reused, never changed) and a [`StreamVersion`] within its stream.
//! A single writer thread batches concurrent appends into one `fdatasync` (group commit); an
//! append returns only once its events are durable, and readers never see anything that is not.
//!
//! ```
//! use annal::{ExpectedVersion, NewEvent, Position, Store, StreamVersion};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let r = store.append("order-1", ExpectedVersion::NoStream, [
//!     NewEvent::new("OrderPlaced", br#"{"sku":"A1"}"#.to_vec()),
//!     NewEvent::new("OrderPaid", br#"{"eur":12}"#.to_vec()),
//! ])?;
//! assert_eq!(r.last_version, StreamVersion(1));
//!
//! // Optimistic concurrency: this append expects the stream to be empty, so it fails.
//! let stale = store.append("order-1", ExpectedVersion::NoStream, [NewEvent::new("X", vec![])]);
//! assert!(matches!(stale, Err(annal::Error::WrongExpectedVersion { .. })));
//!
//! for event in store.read_stream_forward("order-1", StreamVersion::START, usize::MAX)? {
//!     let event = event?;
//!     println!("{} v{} {}", event.position(), event.version(), event.event_type());
//! }
//! assert_eq!(store.read_all_forward(Position::START, usize::MAX).count(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The byte layout is in `docs/format.md`, the write path and recovery rules in
//! `docs/design.md`.

mod clock;
mod error;
pub mod es;
mod file_name;
pub mod format;
mod index;
mod indexer;
pub mod io;
mod lifecycle;
mod options;
mod read;
mod recovery;
mod scavenge;
mod segment;
mod shared;
mod store;
mod subscription;
mod sync;
mod trace;
mod types;
mod verify;
mod writer;

pub use clock::{Clock, SystemClock};
pub use error::{Error, Limit, Result};
pub use format::CorruptionKind;
pub use index::StreamState;
pub use lifecycle::StreamMetadata;
pub use options::{
    APPEND_EVENTS_LIMIT, Durability, InvalidOptions, Options, OptionsBuilder, OptionsViolation,
    RecoveryMode,
};
pub use read::{EventRef, ReadAll, ReadAllBackward, ReadStream, RecordedEvent};
pub use recovery::{Dropped, RecoveryReport, SEGMENT_LISTINGS_MAX, TornTail};
pub use scavenge::{ScavengeControl, ScavengeProgress, ScavengeReport};
pub use store::{Stats, Store};
pub use subscription::{
    Acker, ConsumerStrategy, Delivery, Filter, GroupConsumer, GroupInfo, GroupSettings, NackAction,
    PersistentOptions, PersistentStream, PersistentSubscription, Subscription, SubscriptionStream,
    category_of,
};
pub use types::{
    AppendResult, ExpectedVersion, MultiAppendResult, NewEvent, Position, StreamAppend,
    StreamVersion,
};
pub use verify::{PROBLEMS_MAX, Problem, VerifyReport};
pub use writer::{
    AppendFuture, AppendOneFuture, CommitStats, EVENT_TYPE_BYTES_MAX, FSYNC_BUCKETS,
    FSYNC_MICROS_BOUNDS, GROUP_BUCKETS, GROUP_EVENTS_BOUNDS, STREAM_NAME_BYTES_MAX,
    validate_event_type, validate_stream_name,
};
