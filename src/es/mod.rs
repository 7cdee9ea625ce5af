//! The event-sourcing layer: typed events, aggregates, a repository with a lazy bounded cache,
//! snapshots, time travel and projections, built on the store's public API.
//!
//! - [`codec`](Codec) — events as Rust enums (MessagePack via serde), their type names and
//!   schema versions, upcasters for old payloads;
//! - [`Aggregate`] — the pure domain model: handle a command, apply an event;
//! - [`Repository`] — runs commands: lazy load, cache with passivation, optimistic appends with
//!   bounded retries, atomic commands over several aggregates, snapshots, time travel; each
//!   command blocking ([`execute`](Repository::execute)) or as a future
//!   ([`execute_async`](Repository::execute_async), runtime-agnostic);
//! - [`Projection`] and [`ProjectionRunner`] — read models fed by a persistent subscription,
//!   restartable, rebuildable, with read-your-writes waits.
//!
//! Aggregate streams are named `{type}-{id}`, so a [`Filter::category`](crate::Filter::category)
//! of the type selects them all. Snapshots live beside the log, in `<store>/snapshots/`
//! (`docs/format.md`, "Snapshot files"); `docs/design.md` ("The event-sourcing layer") explains
//! the choices.
//!
//! **Async.** [`Repository::execute_async`], [`execute_all_async`](Repository::execute_all_async)
//! and [`read_async`](Repository::read_async) wait for a busy aggregate and for the append
//! without blocking a thread (a waker in the aggregate's queue; the store's
//! [`append_multi_async`](crate::Store::append_multi_async)), on any executor. Loading a state
//! that is not cached (reading and folding its events from the memory-mapped log), `handle`
//! and `apply` are CPU work on the polling thread, as is a snapshot write when one falls due.
//! Dropping a pending command releases its aggregate; an append already in flight may still
//! commit (see [`execute_all_async`](Repository::execute_all_async)). Blocking and async
//! commands on one aggregate take turns in the order they came.
//!
//! ```
//! use annal::es::{Aggregate, DomainEvent, Repository, RepositoryOptions};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Counter { value: u64 }
//! #[derive(Serialize, Deserialize)]
//! enum CounterEvent { Added { by: u64 } }
//! impl DomainEvent for CounterEvent {
//!     const TYPES: &'static [&'static str] = &["Added"];
//! }
//! impl Aggregate for Counter {
//!     const TYPE: &'static str = "counter";
//!     type Event = CounterEvent;
//!     type Command = u64;
//!     type Error = String;
//!     fn handle(&self, by: &u64) -> Result<Vec<CounterEvent>, String> {
//!         match self.value.checked_add(*by) {
//!             Some(_) => Ok(vec![CounterEvent::Added { by: *by }]),
//!             None => Err("overflow".into()),
//!         }
//!     }
//!     fn apply(&mut self, event: CounterEvent) {
//!         match event { CounterEvent::Added { by } => self.value += by }
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let store = annal::Store::open(dir.path())?;
//! let counters = Repository::<Counter>::new(&store, RepositoryOptions::default())?;
//! counters.execute("c1", &5)?;
//! counters.execute("c1", &2)?;
//! assert_eq!(counters.read("c1", |c, _| c.value)?, 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod aggregate;
mod async_commands;
mod busy;
mod cache;
mod codec;
mod error;
mod load;
mod projection;
mod repository;
mod run;
mod snapshot;

pub use aggregate::{
    Aggregate, At, ID_BYTES_MAX, TYPE_BYTES_MAX, Versioned, id_of, stream_of, validate_id,
    validate_type,
};
pub use codec::{Codec, DomainEvent};
pub use error::Error;
pub use projection::{Projection, ProjectionRunner};
pub use repository::{Outcome, Repository, RepositoryOptions, RepositoryStats};
pub use snapshot::{
    SNAPSHOT_FILE_VERSION, SNAPSHOT_MAGIC, SNAPSHOT_STATE_BYTES_MAX, SNAPSHOTS_DIR,
};
