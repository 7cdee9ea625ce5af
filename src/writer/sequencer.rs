//! The sequencer: the rules half of the writer. It checks each append in order against the
//! log's state as of the group so far (a poisoned store, the idempotency window, tombstones,
//! expected versions), and seals the accepted ones into the group: positions, stream versions,
//! the group's timestamp and sequence number, checksums. It also works out what the group means
//! for the stream index (last versions, metadata it sets), both for the next append's checks
//! and for the appender to publish. It does no I/O on segments; the appender writes what it
//! sealed.
//!
//! A sealed group is handed off (`hand_off`) to be written and synced, and stays *behind* the
//! sequencer until the writer has published it (`release_behind`): until then the stream index
//! does not show it, so the checks of the next group read its effects (versions, metadata,
//! records for the idempotency window) from it, and so see the log in commit order.
//!
//! An answer that rests on events not yet durable waits for them: a retry is answered with
//! the group it repeats, and so is a refusal (wrong expected version, deleted stream, an id of
//! another append) that an unpublished group's events caused. Told at once, such a refusal
//! would name a version no reader can see yet, and that a failed sync may never make real (a
//! caller that read the stream to retry would find nothing new); answered with the group, it
//! comes after those events are published, or as the poison if they never are. A refusal
//! that rests on the published log alone is answered at once.

use std::{io, sync::Arc};

use super::{
    AppendRequest, IdWindow, Reply, SealedGroup,
    idempotency::{Original, Verdict},
    request::Part,
};
use crate::{
    error::{Error, Result},
    format::{FieldOverflow, Record, RecordFields, own_records, record_len, seal_record},
    index::StreamState,
    lifecycle::{METADATA_EVENT_TYPE, MetaRecord, decode_meta, metadata_target},
    read::Locator,
    shared::Shared,
    types::{AppendResult, MultiAppendResult, Position, StreamVersion},
};

/// What a poisoned store names as the failed operation when a metadata event of its own did not
/// decode.
pub(super) const METADATA_OP: &str = "metadata event check";

/// An append that passed the sequencer's checks, with the last version of each of its streams.
pub(crate) struct Checked {
    request: AppendRequest,
    currents: Vec<Option<u64>>,
}

impl Checked {
    /// The bytes its records take.
    pub fn records_len(&self) -> usize {
        self.request.records.len()
    }

    /// Answers it with `error` instead of sealing it.
    pub fn refuse(self, error: Error) {
        self.request.reply.send(Err(error));
    }
}

/// A sealed group and its callers, each with what it is told once the group is durable.
#[derive(Default)]
pub(crate) struct Group {
    /// The sealed records, for the appender.
    pub sealed: SealedGroup,
    /// The group's callers and what each is told once the group is published: its result,
    /// or a refusal that rests on this group's events (or the group's before it).
    pub answers: Vec<(Reply, Result<MultiAppendResult>)>,
}

/// Checks appends and seals them into the group being assembled.
pub(crate) struct Sequencer {
    shared: Arc<Shared>,
    window: IdWindow,
    /// Reads committed events back for the idempotency window.
    locator: Locator,
    /// The group being assembled.
    current: Group,
    /// The group handed off and not yet published, whose effects the stream index does not
    /// show yet.
    behind: Option<Group>,
    /// An emptied group whose buffers the next hand-off reuses.
    spare: Group,
    timestamp_us: u64,
    /// The sequence number of this group commit: one above the last one written, dense across
    /// segments. Only group commits that write bytes use one up.
    sequence: u64,
}

impl Sequencer {
    /// A sequencer continuing the log at the head, whose next group commit has the sequence
    /// number `next_sequence`.
    /// Replaces the idempotency window (the writer refills it from the log as it starts).
    pub fn set_window(&mut self, window: IdWindow) {
        self.window = window;
    }

    pub fn new(shared: Arc<Shared>, window: IdWindow, next_sequence: u64) -> Sequencer {
        let sealed = SealedGroup { end: shared.head(), ..SealedGroup::default() };
        let locator = Locator::new(Arc::clone(&shared));
        Sequencer {
            shared,
            window,
            locator,
            current: Group { sealed, answers: Vec::new() },
            behind: None,
            spare: Group::default(),
            timestamp_us: 0,
            sequence: next_sequence,
        }
    }

    /// Starts a group: its records get the clock's time now.
    pub fn start_group(&mut self) {
        self.timestamp_us = self.shared.options().clock.now_us();
    }

    /// The group sealed so far.
    pub fn sealed(&self) -> &SealedGroup {
        &self.current.sealed
    }

    /// Hands the group sealed so far off to be written: it stays behind, seen by the checks of
    /// the next group, until [`release_behind`](Sequencer::release_behind). The next group
    /// takes the next sequence number if this one has bytes (it is written unless the store is
    /// poisoned, and then nothing is written any more). Only one group is behind at a time.
    pub fn hand_off(&mut self) -> &SealedGroup {
        assert!(self.behind.is_none(), "one group behind the sequencer at a time");
        let mut next = std::mem::take(&mut self.spare);
        next.sealed.end = self.current.sealed.end;
        let handed = std::mem::replace(&mut self.current, next);
        if !handed.sealed.bytes.is_empty() {
            self.sequence += 1;
        }
        &self.behind.insert(handed).sealed
    }

    /// The group handed off and not yet released.
    pub fn behind(&self) -> Option<&SealedGroup> {
        self.behind.as_ref().map(|g| &g.sealed)
    }

    /// Takes back the group behind, once it is published (or will never be): the stream
    /// index shows its effects now, or the store is poisoned. Its callers are to be answered;
    /// give it back with [`recycle`](Sequencer::recycle) to reuse its buffers.
    pub fn release_behind(&mut self) -> Option<Group> {
        self.behind.take()
    }

    /// Drops the group being assembled and the one behind, which a panic left half-done (the
    /// store is poisoned by then, so nothing more is written): their callers hear that the
    /// writer let go of them.
    pub fn abandon(&mut self) {
        self.behind = None;
        let sealed = SealedGroup { end: self.shared.head(), ..SealedGroup::default() };
        self.current = Group { sealed, answers: Vec::new() };
    }

    /// Keeps an answered group's buffers for a later group.
    pub fn recycle(&mut self, mut group: Group) {
        group.answers.clear();
        group.sealed.bytes.clear();
        group.sealed.metadata.clear();
        group.sealed.versions.clear();
        self.spare = group;
    }

    /// Checks one append against the log as of the group so far. Returns it if it is to be
    /// sealed; otherwise it is answered here (a retry with the group, anything else at once).
    pub fn check(&mut self, request: AppendRequest) -> Option<Checked> {
        if let Some(error) = self.shared.poisoned() {
            request.reply.send(Err(error));
            return None;
        }
        let behind = self.behind.as_ref().map(|g| &g.sealed);
        let (sealed, locator, head) = (&self.current.sealed, &mut self.locator, self.shared.head());
        let mut read = |position| read_original([behind, Some(sealed)], locator, head, position);
        match self.window.check(&request.ids, &request.parts, &mut read) {
            Verdict::New => {}
            Verdict::Retry(original) => {
                // Answered with the group, so never before the original is durable.
                self.current.answers.push((request.reply, Ok(original)));
                return None;
            }
            Verdict::Conflict(error) => {
                // The other append may be in this group: told no sooner than it is durable.
                self.current.answers.push((request.reply, Err(error)));
                return None;
            }
        }
        let mut currents = Vec::with_capacity(request.parts.len());
        for part in &request.parts {
            match self.check_part(part) {
                Ok(current) => currents.push(current),
                Err(error) if self.unpublished(&part.stream) => {
                    self.current.answers.push((request.reply, Err(error)));
                    return None;
                }
                Err(error) => {
                    request.reply.send(Err(error));
                    return None;
                }
            }
        }
        Some(Checked { request, currents })
    }

    /// Checks one part against its stream as of the group so far: not tombstoned (nor, for a
    /// metadata stream, its stream), and at the expected version. Returns its last version.
    fn check_part(&self, part: &Part) -> Result<Option<u64>> {
        let state = self.stream_state(&part.stream);
        let target = metadata_target(&part.stream);
        if state.tombstoned || target.is_some_and(|t| self.stream_state(t).tombstoned) {
            let stream = target.unwrap_or(&part.stream).to_owned();
            return Err(Error::StreamDeleted { stream });
        }
        if !part.expected.admits_state(state.last, state.exists()) {
            return Err(Error::WrongExpectedVersion {
                stream: part.stream.clone(),
                expected: part.expected,
                actual: state.last,
            });
        }
        Ok(state.last)
    }

    /// Whether an unpublished group (behind, or this one) changed `stream`'s state or, for a
    /// metadata stream, its stream's: a refusal that rests on it waits for that group.
    fn unpublished(&self, stream: &str) -> bool {
        let names = [Some(stream), metadata_target(stream)];
        let groups = [self.behind.as_ref().map(|g| &g.sealed), Some(&self.current.sealed)];
        groups.into_iter().flatten().any(|sealed| {
            names.iter().flatten().any(|name| {
                sealed.versions.contains_key(*name) || sealed.metadata.contains_key(*name)
            })
        })
    }

    /// The stream's state as of the group so far: the stream index, then the group behind
    /// (not published yet), then this group.
    fn stream_state(&self, stream: &str) -> StreamState {
        let mut state = self.shared.streams().state(stream);
        let behind = self.behind.as_ref().map(|g| &g.sealed);
        for sealed in [behind, Some(&self.current.sealed)].into_iter().flatten() {
            if let Some(&last) = sealed.versions.get(stream) {
                state.last = Some(last);
            }
            if let Some(record) = sealed.metadata.get(stream) {
                state.apply(record);
            }
        }
        state
    }

    /// Seals a checked append into the group and queues its answer. A commit-time field that
    /// does not fit poisons the store, and nothing of the group is written.
    pub fn seal(&mut self, checked: Checked) {
        let Checked { request, currents } = checked;
        let before = self.current.sealed.bytes.len();
        let result = match self.seal_records(&request, &currents) {
            Ok(result) => result,
            Err(overflow) => {
                // The group's bytes are as they were before this append.
                self.current.sealed.bytes.truncate(before);
                // Nothing of this group is written: a poisoned store commits nothing more.
                self.shared.poison("seal record", io::Error::other(overflow));
                request.reply.send(Err(self.shared.poisoned().expect("poisoned")));
                return;
            }
        };
        self.window.insert(result.first_position.get(), &request.ids);
        self.current.answers.push((request.reply, Ok(result)));
    }

    /// Copies the append's records into the group and fills in their commit-time fields.
    fn seal_records(
        &mut self,
        request: &AppendRequest,
        currents: &[Option<u64>],
    ) -> Result<MultiAppendResult, FieldOverflow> {
        let sealed = &mut self.current.sealed;
        let mut offset = sealed.bytes.len();
        sealed.bytes.extend_from_slice(&request.records);
        let first_position = sealed.end;
        let last_position = first_position + request.ids.len() as u64 - 1;
        let mut position = first_position;
        let mut streams = Vec::with_capacity(request.parts.len());
        for (part, current) in request.parts.iter().zip(currents) {
            if part.events == 0 {
                // A check-only part (a delete checks the stream it deletes): nothing to seal.
                continue;
            }
            let first_version = current.map_or(0, |v| v + 1);
            let (part_first, part_offset) = (position, offset);
            for version in first_version..first_version + u64::from(part.events) {
                let bytes = &mut self.current.sealed.bytes[offset..];
                let len = record_len(bytes).expect("encoded record");
                let fields = RecordFields {
                    position,
                    version,
                    timestamp_us: self.timestamp_us,
                    batch_left: last_position - position,
                    sequence: self.sequence,
                    epoch: 0,
                };
                seal_record(&mut bytes[..len], fields)?;
                offset += len;
                position += 1;
            }
            let last_version = first_version + u64::from(part.events) - 1;
            self.current.sealed.versions.insert(part.stream.clone(), last_version);
            if metadata_target(&part.stream).is_some() {
                self.note_metadata(&part.stream, part_offset..offset);
            }
            let result = AppendResult {
                first_position: Position(part_first),
                last_position: Position(position - 1),
                first_version: StreamVersion(first_version),
                last_version: StreamVersion(last_version),
            };
            streams.push((part.stream.clone(), result));
        }
        debug_assert_eq!(offset, self.current.sealed.bytes.len());
        self.current.sealed.end = position;
        Ok(MultiAppendResult {
            first_position: Position(first_position),
            last_position: Position(last_position),
            streams,
        })
    }

    /// Notes the metadata the sealed records in `range` (of the metadata stream `stream`) set.
    fn note_metadata(&mut self, stream: &str, range: std::ops::Range<usize>) {
        let sealed = &mut self.current.sealed;
        for (_, record) in own_records(&sealed.bytes[range]) {
            match metadata_of(stream, record) {
                Ok(Some((target, meta))) => {
                    sealed.metadata.insert(target.to_owned(), meta);
                }
                Ok(None) => {}
                // Nothing of this group is written or acknowledged once the store is poisoned.
                Err(error) => self.shared.poison(METADATA_OP, error),
            }
        }
    }
}

/// The stream a record of the writer's own (in `stream`) sets metadata for, and that metadata,
/// if the record is a `$metadata` event of a metadata stream. An error if it is one but does
/// not decode: only the store writes these events, so that is a bug, and the writer poisons the
/// store rather than leave the metadata out of the index.
fn metadata_of<'a>(
    stream: &'a str,
    record: Record<'_>,
) -> Result<Option<(&'a str, MetaRecord)>, io::Error> {
    let Some(target) = metadata_target(stream) else { return Ok(None) };
    if record.event_type() != METADATA_EVENT_TYPE {
        return Ok(None);
    }
    match decode_meta(record.data()) {
        Some(meta) => Ok(Some((target, meta))),
        None => Err(io::Error::other(format!(
            "the metadata event at position {} of {stream:?} does not decode",
            record.position()
        ))),
    }
}

/// The event at `position`, from the groups not yet published (`unpublished`, in log order)
/// if it is not committed yet.
fn read_original(
    unpublished: [Option<&SealedGroup>; 2],
    locator: &mut Locator,
    head: u64,
    position: u64,
) -> Option<Original> {
    let original = |r: Record<'_>| Original {
        id: r.id(),
        stream: r.stream().to_owned(),
        version: r.version(),
    };
    if position >= head {
        return unpublished
            .into_iter()
            .flatten()
            .flat_map(|sealed| own_records(&sealed.bytes))
            .map(|(_, r)| r)
            .find(|r| r.position() == position)
            .map(original);
    }
    let event = locator.read(position).ok()??;
    Some(original(event.record()))
}

#[cfg(test)]
mod tests {
    use super::METADATA_OP;
    use crate::{Durability, Error, ExpectedVersion, NewEvent, Options, Position, Store};
    use crate::{lifecycle::METADATA_EVENT_TYPE, types::StreamAppend};

    #[test]
    fn writer_own_metadata_event_that_does_not_decode_poisons_before_anything_is_written() {
        // Issue #12, item 6: that the store's own `$metadata` events decode was only a
        // `debug_assert!`. A release build wrote and acknowledged such an event and silently left
        // it out of the index, so the index disagreed with the log. Now the writer poisons the
        // store while sealing, and nothing of the group is written or acknowledged.
        let dir = tempfile::tempdir().unwrap();
        let options = Options { durability: Durability::None, ..Options::default() };
        let store = Store::open_with(dir.path(), options).unwrap();
        store.append("x", ExpectedVersion::Any, [NewEvent::new("T", vec![1])]).unwrap();
        let bad = NewEvent::new(METADATA_EVENT_TYPE, vec![0xff; 3]);
        let outcome =
            store.append_system(vec![StreamAppend::new("$$x", ExpectedVersion::Any, [bad])]);
        assert!(
            matches!(&outcome, Err(Error::Poisoned { op: o, .. }) if *o == METADATA_OP),
            "{outcome:?}"
        );
        assert_eq!(store.head(), Position(1), "nothing of the group was written");
        let later = store.append("x", ExpectedVersion::Any, [NewEvent::new("T", vec![2])]);
        assert!(matches!(later, Err(Error::Poisoned { .. })), "{later:?}");
    }
}
