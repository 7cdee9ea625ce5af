//! Rehydration: an aggregate's state from its snapshot (when one is usable) and the events
//! after it; catching a state up with events appended since; the state as of a point in the
//! past; and writing snapshots.
//!
//! A snapshot is used only if every check passes: its file decodes (magic, CRC, owner,
//! snapshot version), its version is within the stream, the stream's event at that version is
//! the one the snapshot says it folded in last, and its state deserializes. Anything else is
//! counted in [`RepositoryStats::snapshots_ignored`](super::RepositoryStats) and the state is
//! rebuilt from the first event, so a snapshot can make loading faster but never wrong.

use std::sync::atomic::Ordering;

use uuid::Uuid;

use super::{
    aggregate::{Aggregate, At, Versioned, stream_of},
    error::Error,
    repository::Repository,
    snapshot::{self, Owner, SNAPSHOT_STATE_BYTES_MAX, Snapshot},
};
use crate::{ReadStream, StreamVersion};

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

    /// Folds into `loaded` every event of `id`'s stream after its version. If the last event
    /// the state folded in is hidden by now (the stream was deleted since, or truncated past
    /// it), the aggregate starts over from its first visible event.
    pub(crate) fn catch_up(&self, id: &str, loaded: &mut Loaded<A>) -> Result<(), Error> {
        let stream = stream_of::<A>(id);
        let floor = self.store.shared().streams.state(&stream).floor();
        if loaded.version.is_some_and(|v| v < floor) {
            *loaded = Loaded::empty();
        }
        let from = loaded.version.map_or(0, |v| v + 1);
        for event in self.read_from(&stream, from)?.into_iter().flatten() {
            let event = event?;
            loaded.state.apply(self.codec.decode(&event)?);
            loaded.version = Some(event.version().get());
            loaded.last_event_id = Some(event.id());
        }
        Ok(())
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
    /// audits and for finding out what went wrong.
    pub fn load_at(&self, id: &str, at: At) -> Result<Versioned<A>, Error> {
        super::aggregate::validate_id(id)?;
        let mut state = A::default();
        let mut version = None;
        for event in self.read_from(&stream_of::<A>(id), 0)?.into_iter().flatten() {
            let event = event?;
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
