//! The appender: the I/O half of the writer. It takes a group whose records are already sealed
//! (positions, versions, timestamp, group sequence, checksums), writes it at the end of the
//! active segment, calls `fdatasync`, and only then publishes it to readers and the indexes. It
//! also rotates segments. It knows nothing of expected versions, idempotency or stream
//! lifecycle: records enter the stream index through its one entry point
//! (`StreamIndexWriter::index_record`, which recovery uses too), which reads what a record sets
//! (a stream's version, a metadata event's rules) from the record itself, so that anything
//! producing sealed frames (the sequencer today, replication later) can feed it.
//!
//! A failed write or fsync is returned to the caller, who poisons the store; nothing is
//! retried, and a poisoned store is never written to again.

use std::{io, sync::Arc, time::Instant};

use super::{CommitCounters, SealedGroup};
use crate::{
    error::Error,
    format::{SEGMENT_HEADER_LEN, own_records},
    index::Continuity,
    indexer::Job,
    options::Durability,
    segment::Segment,
    shared::Shared,
    trace,
};

/// What a poisoned store names as the failed operation when the stream index disagreed with
/// the log being published.
const INDEX_OP: &str = "stream index update";

/// A group written to a segment and not yet published: where it lies, and the handle to make
/// it durable, which any thread may use.
pub(crate) struct Written {
    segment: Arc<Segment>,
    /// Its first byte's offset in the segment.
    base: u64,
    /// The segment's length with it.
    len: u64,
}

impl Written {
    /// Makes the group durable (`fdatasync` of its segment) under `durability`, counting the
    /// call and its time in `counters`; with [`Durability::None`] does nothing. An error leaves
    /// the file's contents unknown: the caller poisons the store and never retries.
    pub fn sync(&self, durability: Durability, counters: &CommitCounters) -> io::Result<()> {
        match durability {
            Durability::Fsync => {
                let started = Instant::now();
                let synced = self.segment.active_file().sync_data();
                let elapsed = started.elapsed();
                counters.fsync(elapsed);
                if elapsed >= trace::SLOW_SYNC {
                    trace::slow_sync(self.segment.path(), elapsed, self.len - self.base);
                }
                synced
            }
            Durability::None => Ok(()),
        }
    }
}

/// Writes sealed groups to the active segment and publishes them; rotates segments.
pub(crate) struct Appender {
    shared: Arc<Shared>,
    active: Arc<Segment>,
    /// Written length of the active segment: where the next group goes.
    segment_len: u64,
}

impl Appender {
    /// An appender continuing the log in `active`, at its committed length.
    pub fn new(shared: Arc<Shared>, active: Arc<Segment>) -> Appender {
        let segment_len = active.committed_len();
        Appender { shared, active, segment_len }
    }

    /// Whether `bytes` more bytes fit the active segment (`segment_bytes_max`) after what was
    /// written to it.
    pub fn fits(&self, bytes: usize) -> bool {
        self.segment_len + bytes as u64 <= self.shared.options().segment_bytes_max
    }

    /// Writes the group at the end of the active segment, unsynced; [`Written::sync`] makes it
    /// durable and [`publish`](Appender::publish) then makes it visible. Returns `None` if
    /// it wrote nothing: an empty group, or any group once the store is poisoned, is not
    /// written. A failed write is returned with the name of the operation, for the caller to
    /// poison the store. The writer writes a group only once the sync of the one before has
    /// returned, so at most one group is ever unsynced (the torn-tail bound, `design.md`).
    pub fn write(
        &mut self,
        group: &SealedGroup,
    ) -> Result<Option<Written>, (&'static str, io::Error)> {
        if self.shared.poisoned().is_some() || group.bytes.is_empty() {
            return Ok(None);
        }
        let base = self.segment_len;
        self.active.active_file().write_at(base, &group.bytes).map_err(|e| ("write", e))?;
        self.segment_len = base + group.bytes.len() as u64;
        Ok(Some(Written { segment: Arc::clone(&self.active), base, len: self.segment_len }))
    }

    /// Makes the durable group `written` (which must be `group`) visible: segment index and
    /// length, stream index, then head.
    pub fn publish(&self, written: &Written, group: &SealedGroup) {
        let (base, new_len, end) = (written.base, written.len, group.end);
        debug_assert_eq!(new_len - base, group.bytes.len() as u64);
        // Offsets stay below `segment_bytes_max`, which `Options::validate` keeps below 4 GiB.
        // Checked here, before any lock is taken: a panic under a lock would leave an index
        // half-updated (see `crate::sync`).
        assert!(u32::try_from(new_len).is_ok(), "a segment stays below 4 GiB");
        let offsets = own_records(&group.bytes)
            .map(|(offset, r)| (r.position(), (base + offset as u64) as u32));
        written.segment.publish(offsets, new_len, end);
        let mut streams = self.shared.streams().write();
        for (_, record) in own_records(&group.bytes) {
            // The same entry point recovery uses. The sequencer took every version from this
            // index and checked the metadata events while sealing, so an error is a bug: the
            // group is durable, but the store must not acknowledge it or build on a broken
            // index.
            if let Err(kind) = streams.index_record(record, Continuity::Dense) {
                let detail = format!(
                    "the stream index refused the record at position {} (stream {:?}, version \
                     {}): {kind}",
                    record.position(),
                    record.stream(),
                    record.version()
                );
                self.shared.poison(INDEX_OP, io::Error::other(detail));
                break;
            }
        }
        self.shared.set_head(end);
        drop(streams);
        // A hint for subscribers that the head moved; never waits on any of them.
        self.shared.notifier().wake();
    }

    /// Seals the active segment and starts the next one, whose first record will have
    /// `first_position`. Does nothing once the store is poisoned; a failure poisons it.
    pub fn rotate(&mut self, first_position: u64) {
        if self.shared.poisoned().is_some() {
            return;
        }
        let options = self.shared.options();
        let created = Segment::create(
            &*options.storage,
            self.shared.dir(),
            first_position,
            options.group_bytes_max,
            options.index_stride,
            options.durability == Durability::Fsync,
        );
        match created {
            Ok(segment) => {
                self.active.seal();
                let segment = Arc::new(segment);
                self.shared.segments().push(Arc::clone(&segment));
                let sealed = std::mem::replace(&mut self.active, segment);
                // Its index file is written in the background; appends do not wait for it.
                self.shared.indexer().send(Job::Sealed(sealed));
                self.segment_len = SEGMENT_HEADER_LEN as u64;
            }
            Err(Error::Io { op, source, .. }) => self.shared.poison(op, source),
            Err(other) => self.shared.poison("create segment", io::Error::other(other.to_string())),
        }
    }

    /// On a clean close without fsyncs, syncs the active segment once.
    pub fn close(&self) {
        if self.shared.options().durability == Durability::None && self.shared.poisoned().is_none()
        {
            // Not a promise (this mode makes none), just fewer losses after a clean close.
            let _ = self.active.active_file().sync_data();
        }
    }
}
