//! Rehydration: an aggregate's state from its snapshot (when one is usable) and the events
//! after it; catching a state up with events appended since; the state as of a point in the
//! past; and writing snapshots.
//!
//! A snapshot is used only if every check passes: its file decodes (magic, CRC, owner,
//! snapshot version), its version is within the stream, the stream's event at that version is
//! the one the snapshot says it folded in last, and its state deserializes. Anything else is
//! counted in [`RepositoryStats::snapshots_ignored`](super::RepositoryStats) and the state is
//! rebuilt from the first event, so a snapshot can make loading faster but never wrong.
//!
//! A fold never skips a version. When the stream no longer returns every event the state needs
//! (retention rules hide the first ones, or a scavenge removed them) and no snapshot covers
//! them, loading fails with [`Error::TruncatedHistory`] rather than return the state of what is
//! left. A soft delete is not such a gap: the aggregate's history starts over at the version
//! the delete set as `truncate_before` (see [`Repository::history_start`]).

use std::sync::atomic::Ordering;

use uuid::Uuid;

use super::{
    aggregate::{Aggregate, At, Versioned, stream_of},
    error::Error,
    repository::Repository,
    snapshot::{self, Owner, SNAPSHOT_STATE_BYTES_MAX, Snapshot},
};
use crate::{
    ReadStream, RecordedEvent, StreamMetadata, StreamVersion,
    index::StreamState,
    lifecycle::{decode_meta, metadata_stream},
};

/// An aggregate state as the repository holds it.
pub(crate) struct Loaded<A> {
    pub state: A,
    /// The version of the last event folded in; `None` before the first.
    pub version: Option<u64>,
    /// The id of that event (what a snapshot of this state records).
    pub last_event_id: Option<Uuid>,
}

impl<A: Aggregate> Loaded<A> {
    fn empty() -> Loaded<A> {
        Loaded { state: A::default(), version: None, last_event_id: None }
    }
}

impl<A: Aggregate> Repository<A> {
    fn owner<'a>(id: &'a str) -> Owner<'a> {
        Owner { aggregate_type: A::TYPE, id, snapshot_version: A::SNAPSHOT_VERSION }
    }

    /// `id`'s current state, from its snapshot if usable and the events after it.
    pub(crate) fn rehydrate(&self, id: &str) -> Result<Loaded<A>, Error> {
        self.stats.rehydrations.fetch_add(1, Ordering::Relaxed);
        let mut loaded = match self.usable_snapshot(id) {
            Some(loaded) => {
                self.stats.from_snapshot.fetch_add(1, Ordering::Relaxed);
                loaded
            }
            None => Loaded::empty(),
        };
        self.catch_up(id, &mut loaded)?;
        Ok(loaded)
    }

    /// The state in `id`'s snapshot, if every check passes (see the module doc).
    fn usable_snapshot(&self, id: &str) -> Option<Loaded<A>> {
        let bytes = match self.snapshots.read(id) {
            Ok(None) => return None,
            Ok(Some(bytes)) => Some(bytes),
            Err(_) => None,
        };
        let usable = bytes.and_then(|bytes| self.check_snapshot(id, &bytes));
        if usable.is_none() {
            self.stats.snapshots_ignored.fetch_add(1, Ordering::Relaxed);
        }
        usable
    }

    fn check_snapshot(&self, id: &str, bytes: &[u8]) -> Option<Loaded<A>> {
        let snap = snapshot::decode(Self::owner(id), bytes).ok()?;
        let stream = stream_of::<A>(id);
        let mut at =
            self.store.read_stream_forward(&stream, StreamVersion(snap.version), 1).ok()?;
        let event = at.next()?.ok()?;
        if event.version().get() != snap.version || event.id() != snap.last_event_id {
            return None;
        }
        let state = rmp_serde::from_slice(&snap.state).ok()?;
        Some(Loaded { state, version: Some(snap.version), last_event_id: Some(snap.last_event_id) })
    }

    /// Folds into `loaded` every event of `id`'s stream after its version. If the state
    /// belongs to a life of the aggregate that a delete ended since, it starts over at the
    /// delete. A cached state stays valid when retention later hides the events it was folded
    /// from: it is exact, and only the events after it are needed.
    pub(crate) fn catch_up(&self, id: &str, loaded: &mut Loaded<A>) -> Result<(), Error> {
        let stream = stream_of::<A>(id);
        let start = self.history_start(&stream)?;
        if loaded.version.is_some_and(|v| v < start) {
            *loaded = Loaded::empty();
        }
        let from = loaded.version.map_or(start, |v| v + 1);
        // Taken before the read, so that events appended meanwhile do not count as missing.
        let before = self.store.stream_state(&stream);
        let mut fold = Fold::new(&stream, from, loaded.version);
        for event in self.read_from(&stream, from)?.into_iter().flatten() {
            let event = fold.next(event?)?;
            loaded.state.apply(self.codec.decode(&event)?);
            loaded.version = Some(event.version().get());
            loaded.last_event_id = Some(event.id());
        }
        // Nothing returned although the stream held events from `from` on: all of them are
        // hidden (a `max_age` or a `max_count` of 0). A delete racing with this read can
        // land here too; the next load sees the delete and starts over.
        if !fold.returned && holds_from(&before, from) {
            return Err(fold.gap(None));
        }
        Ok(())
    }

    /// The version the current life of the aggregate in `stream` starts at: 0, or the
    /// `truncate_before` of a soft delete. A `truncate_before` is a delete when it was already
    /// in force when the event at its version was appended (or no event has that version):
    /// the stream read as empty then, and that event began a new aggregate. One set over
    /// events the stream already held is a retention rule: it hides history, which a fold
    /// then reports as missing. Only the latest metadata survives a scavenge, so a delete
    /// whose metadata was replaced after the aggregate started over can read as a retention
    /// rule: loading then fails rather than return a wrong state.
    pub(crate) fn history_start(&self, stream: &str) -> Result<u64, Error> {
        let Some(cut) = self.store.stream_state(stream).truncate_before else {
            return Ok(0);
        };
        let Some(appended_at) = self.store.event_position(stream, cut) else {
            // No event at `cut` yet (a delete), or a scavenge removed it: then the history is
            // cut either way.
            return Ok(cut);
        };
        let in_force = self.metadata_before(stream, appended_at)?;
        Ok(if in_force.is_some_and(|m| m.truncate_before == Some(cut)) { cut } else { 0 })
    }

    /// The metadata of `stream` in force just before global position `position`, if any.
    fn metadata_before(
        &self,
        stream: &str,
        position: u64,
    ) -> Result<Option<StreamMetadata>, Error> {
        let meta_stream = metadata_stream(stream);
        let events =
            match self.store.read_stream_backward(&meta_stream, StreamVersion::END, usize::MAX) {
                Ok(events) => events,
                Err(crate::Error::StreamNotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
        for event in events {
            let event = event?;
            if event.position().get() < position {
                return Ok(decode_meta(event.data()).map(|record| record.meta));
            }
        }
        Ok(None)
    }

    /// `stream` from version `from`; nothing if the stream has no events.
    fn read_from(&self, stream: &str, from: u64) -> Result<Option<ReadStream>, Error> {
        match self.store.read_stream_forward(stream, StreamVersion(from), usize::MAX) {
            Ok(read) => Ok(Some(read)),
            Err(crate::Error::StreamNotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `id`'s state as of `at`, rebuilt from its first event (no cache, no snapshot): for
    /// audits and for finding out what went wrong. Fails with [`Error::TruncatedHistory`] if
    /// the stream no longer holds every event from the aggregate's first (a delete starts the
    /// history over; see the module doc).
    pub fn load_at(&self, id: &str, at: At) -> Result<Versioned<A>, Error> {
        super::aggregate::validate_id(id)?;
        let stream = stream_of::<A>(id);
        let start = self.history_start(&stream)?;
        let before = self.store.stream_state(&stream);
        let mut fold = Fold::new(&stream, start, None);
        let mut state = A::default();
        let mut version = None;
        for event in self.read_from(&stream, start)?.into_iter().flatten() {
            let event = event?;
            if matches!(at, At::Version(v) if v.get() < fold.expected) {
                break; // the state as of `at` is complete, whatever is missing after it
            }
            let event = fold.next(event)?;
            let past = match at {
                At::Version(v) => event.version() > v,
                At::Position(p) => event.position() > p,
            };
            if past {
                break;
            }
            state.apply(self.codec.decode(&event)?);
            version = Some(event.version());
        }
        let before_start = matches!(at, At::Version(v) if v.get() < start);
        if !fold.returned && holds_from(&before, start) && !before_start {
            return Err(fold.gap(None));
        }
        Ok(Versioned { state, version })
    }

    /// Writes a snapshot of `loaded` (nothing before its first event), counting the outcome.
    /// The automatic snapshots after a command ignore a failure beyond counting it: it costs
    /// only speed, since the events are the truth.
    pub(crate) fn write_snapshot(&self, id: &str, loaded: &Loaded<A>) -> Result<(), Error> {
        let (Some(version), Some(last_event_id)) = (loaded.version, loaded.last_event_id) else {
            return Ok(());
        };
        let written = rmp_serde::to_vec_named(&loaded.state)
            .map_err(|e| Error::Encode(format!("snapshot of {id}: {e}")))
            .and_then(|state| match state.len() <= SNAPSHOT_STATE_BYTES_MAX {
                true => Ok(state),
                false => Err(Error::Encode(format!("snapshot of {id}: state over 64 MiB"))),
            })
            .and_then(|state| {
                let snap = Snapshot { version, last_event_id, state };
                let bytes = snapshot::encode(Self::owner(id), &snap, snapshot::now_us());
                Ok(self.snapshots.write(id, &bytes)?)
            });
        let counter = match written {
            Ok(()) => &self.stats.snapshots_written,
            Err(_) => &self.stats.snapshot_write_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        written
    }
}

/// Whether a stream in state `state` held events from version `from` on (ever appended and
/// not tombstoned; the version rules aside).
fn holds_from(state: &StreamState, from: u64) -> bool {
    !state.tombstoned && state.last.is_some_and(|last| last >= from)
}

/// Checks that a fold gets every version in turn.
struct Fold<'a> {
    stream: &'a str,
    /// The version the next event must have.
    expected: u64,
    /// The version of the state the fold continues; `None` from the first event.
    state_version: Option<u64>,
    /// The read returned an event.
    returned: bool,
}

impl<'a> Fold<'a> {
    fn new(stream: &'a str, from: u64, state_version: Option<u64>) -> Fold<'a> {
        Fold { stream, expected: from, state_version, returned: false }
    }

    /// `event`, if it has the version the fold needs next.
    fn next(&mut self, event: RecordedEvent) -> Result<RecordedEvent, Error> {
        self.returned = true;
        let version = event.version().get();
        if version != self.expected {
            return Err(self.gap(Some(version)));
        }
        self.expected += 1;
        Ok(event)
    }

    /// The error for a missing version; the stream returns `first_version` instead.
    fn gap(&self, first_version: Option<u64>) -> Error {
        Error::TruncatedHistory {
            stream: self.stream.to_owned(),
            needed: self.expected,
            first_version,
            state_version: self.state_version,
        }
    }
}
