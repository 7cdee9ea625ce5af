//! The aggregate: a pure domain model. Handling a command yields the events to record (or a
//! domain error); applying an event moves the state. Neither does I/O, so the repository can
//! replay, retry and cache them freely. Also the names of aggregate streams.

use serde::{Serialize, de::DeserializeOwned};

use super::{codec::DomainEvent, error::Error};
use crate::{Position, StreamVersion};

/// A domain model whose state is the fold of its events.
///
/// The state type is the aggregate: [`Default`] is the state before the first event. It is
/// serde-serializable so that it can be snapshotted; raise
/// [`SNAPSHOT_VERSION`](Self::SNAPSHOT_VERSION) whenever its shape or the meaning of `apply`
/// changes, and older snapshots are ignored.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + 'static {
    /// The aggregate type: the category of its streams (`{TYPE}-{id}`). 1 to 64 ASCII
    /// letters, digits or `_`.
    const TYPE: &'static str;
    /// The version of the snapshot's shape; a snapshot of another version is ignored.
    const SNAPSHOT_VERSION: u32 = 1;
    /// The events it records.
    type Event: DomainEvent;
    /// The commands it handles.
    type Command;
    /// Why it rejects a command.
    type Error: std::fmt::Debug + std::fmt::Display;

    /// The events that `command` produces from this state (none is fine), or why not.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// This state moved on by `event`. Must not fail: the event already happened.
    fn apply(&mut self, event: Self::Event);

    /// The bytes this state takes in memory, for the repository's byte bound
    /// ([`cache_bytes_max`](super::RepositoryOptions::cache_bytes_max)). The default counts
    /// only the value itself; a state that holds strings or collections should add their heap
    /// bytes (an estimate is fine: it is called on every command).
    fn size_hint(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// A point in an aggregate's past, for [`Repository::load_at`](super::Repository::load_at).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// After the event with this version of the aggregate's stream.
    Version(StreamVersion),
    /// After every event of the aggregate's stream at or below this global position.
    Position(Position),
}

/// An aggregate's state and the version of the last event folded into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<A> {
    /// The state.
    pub state: A,
    /// The version of the last event applied; `None` before the first event.
    pub version: Option<StreamVersion>,
}

/// Longest aggregate type name, in bytes.
pub const TYPE_BYTES_MAX: usize = 64;
/// Longest aggregate id, in bytes (its stream name and snapshot file name must fit).
pub const ID_BYTES_MAX: usize = crate::file_name::FILE_NAME_BYTES_MAX;

// A stream name `{type}-{id}` is one a caller may write, delete and give metadata (so its
// metadata stream fits a record too); a snapshot's temporary file name `{id}.snap.tmp` fits a
// file system's, and so does its directory, named by the type.
const _: () = assert!(TYPE_BYTES_MAX + 1 + ID_BYTES_MAX <= crate::STREAM_NAME_BYTES_MAX);
const _: () =
    assert!(ID_BYTES_MAX + ".snap.tmp".len() <= crate::file_name::FILE_NAME_FIELD_BYTES_MAX);
const _: () = assert!(TYPE_BYTES_MAX <= crate::file_name::FILE_NAME_FIELD_BYTES_MAX);

/// Checks an aggregate type: 1 to 64 ASCII letters, digits or `_` (no `-`, so that the type is
/// the category of its streams, and no character a file name could not hold).
pub fn validate_type(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "an aggregate type must not be empty"
    } else if name.len() > TYPE_BYTES_MAX {
        "an aggregate type must be at most 64 bytes"
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        "an aggregate type may hold only ASCII letters, digits and '_'"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName { name: name.to_owned(), reason })
}

/// Checks an aggregate id: 1 to 100 ASCII letters, digits, `-`, `_` or `.`, not starting with
/// `.`. Ids name snapshot files, so nothing else is allowed.
pub fn validate_id(id: &str) -> Result<(), Error> {
    match crate::file_name::file_name_problem(id) {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidName { name: id.to_owned(), reason }),
    }
}

/// The stream of aggregate `id` of type `A`: `{A::TYPE}-{id}`.
pub fn stream_of<A: Aggregate>(id: &str) -> String {
    format!("{}-{id}", A::TYPE)
}

/// The aggregate id in an aggregate stream's name (everything after the first `-`).
pub fn id_of(stream: &str) -> Option<&str> {
    stream.split_once('-').map(|(_, id)| id)
}
