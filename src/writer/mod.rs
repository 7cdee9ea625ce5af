//! The single writer thread and its group commit.
//!
//! Appending threads send checked, pre-encoded appends through a bounded channel. The writer
//! takes what is queued (bounded by count and bytes), checks each append in order against the
//! log's state, seals its records (positions, versions, timestamp, group sequence, checksums)
//! into one buffer, writes the buffer, calls `fdatasync` once, and only then publishes the
//! records to readers and answers every caller. A failed write or fsync poisons the store; it is
//! never retried. So do a broken invariant (the index disagreeing with the log), a commit-time
//! field that would not fit its width in the format (a group sequence past 48 bits: the group is
//! not written rather than written wrong), and a panic of the writer thread: the store stops
//! acknowledging rather than go on from a state it cannot vouch for.

mod idempotency;
mod request;

use std::{
    any::Any,
    collections::HashMap,
    io,
    panic::{self, AssertUnwindSafe},
    sync::Arc,
};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

pub(crate) use idempotency::IdWindow;
pub(crate) use request::AppendRequest;
pub(crate) use request::validate_readable_stream_name;
pub use request::{
    EVENT_TYPE_BYTES_MAX, STREAM_NAME_BYTES_MAX, validate_event_type, validate_stream_name,
};

use crate::{
    error::{Error, Result},
    format::{
        CorruptionKind, FieldOverflow, Record, RecordFields, SEGMENT_HEADER_LEN, own_records,
        record_len, seal_record,
    },
    index::{Continuity, StreamState},
    lifecycle::{METADATA_EVENT_TYPE, MetaRecord, decode_meta, metadata_target},
    options::Durability,
    read::Locator,
    segment::Segment,
    shared::Shared,
    types::{AppendResult, MultiAppendResult, Position, StreamVersion},
};

/// What appending threads send the writer.
pub(crate) enum Message {
    /// Append this.
    Append(AppendRequest),
    /// Commit what is queued before this message, answer the rest with `Closed`, and stop.
    Shutdown,
}

type Reply = Sender<Result<MultiAppendResult>>;

/// A group's callers and what each is told.
type Answers = Vec<(Reply, Result<MultiAppendResult>)>;

/// The group being assembled: sealed records and the answers they wait on.
#[derive(Default)]
struct Group {
    bytes: Vec<u8>,
    answers: Vec<(Reply, MultiAppendResult)>,
    /// Last versions of the streams this group appends to, ahead of the stream index.
    versions: HashMap<String, u64>,
    /// Metadata this group sets, by the stream it applies to, ahead of the stream index.
    metadata: HashMap<String, MetaRecord>,
    next_position: u64,
    timestamp_us: u64,
    /// The sequence number of this group commit: one above the last one written, dense across
    /// segments. Only group commits that write bytes use one up.
    sequence: u64,
}

/// The writer thread's state. Only it writes to segments or changes the indexes.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Message>,
    active: Arc<Segment>,
    /// Committed length of the active segment: where the next group goes.
    segment_len: u64,
    group: Group,
    window: IdWindow,
    /// Reads committed events back for the idempotency window.
    locator: Locator,
    /// Never sent on: dropped with the writer, it tells waiting callers the writer is gone.
    _alive: Sender<()>,
    /// Answers of large groups, for the answering thread.
    answerer: Sender<Answers>,
    answer_thread: Option<std::thread::JoinHandle<()>>,
}

/// Groups with at most this many callers are answered by the writer itself.
const ANSWER_INLINE_MAX: usize = 4;

/// What a poisoned store names as the failed operation when the writer thread panicked.
const PANIC_OP: &str = "writer thread";

/// Answers callers of large groups while the writer goes on with the next group.
fn spawn_answerer() -> io::Result<(Sender<Answers>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded::<Answers>(16);
    let handle = std::thread::Builder::new().name("annal-answer".into()).spawn(move || {
        for answers in rx {
            for (reply, answer) in answers {
                let _ = reply.send(answer);
            }
        }
    })?;
    Ok((tx, handle))
}

impl Writer {
    /// A writer continuing the log in `active` (at its committed length), whose next group
    /// commit has the sequence number `next_sequence`. Fails if its answering thread cannot be
    /// started.
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Message>,
        active: Arc<Segment>,
        window: IdWindow,
        next_sequence: u64,
        alive: Sender<()>,
    ) -> io::Result<Writer> {
        let segment_len = active.committed_len();
        let group =
            Group { next_position: shared.head(), sequence: next_sequence, ..Group::default() };
        let locator = Locator::new(Arc::clone(&shared));
        let (answerer, answer_thread) = spawn_answerer()?;
        Ok(Writer {
            shared,
            rx,
            active,
            segment_len,
            group,
            window,
            locator,
            _alive: alive,
            answerer,
            answer_thread: Some(answer_thread),
        })
    }

    /// The writer thread's body: serves appends until shutdown. A panic (a bug) poisons the
    /// store, so that appenders get [`Error::Poisoned`] and subscribers end, instead of finding
    /// the writer silently gone.
    pub fn run(mut self) {
        let served = panic::catch_unwind(AssertUnwindSafe(|| self.serve()));
        if let Err(payload) = served {
            // Poisoned while the writer still holds its channels: a caller who sees them close
            // finds the poison (see `Store::submit`).
            let message = format!("the writer thread panicked: {}", panic_message(&*payload));
            self.shared.poison(PANIC_OP, io::Error::other(message));
        }
        self.stop();
    }

    /// The writer's loop, until shutdown.
    fn serve(&mut self) {
        let appends_max = self.shared.options.group_appends_max as usize;
        let bytes_max = self.shared.options.group_bytes_max as usize;
        let mut carried: Option<AppendRequest> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match self.rx.recv() {
                    Ok(Message::Append(request)) => request,
                    Ok(Message::Shutdown) | Err(_) => break,
                },
            };
            self.group.timestamp_us = self.shared.options.clock.now_us();
            let (mut count, mut bytes) = (1, first.records.len());
            self.accept(first);
            let mut shutdown = false;
            while count < appends_max {
                match self.rx.try_recv() {
                    Ok(Message::Append(request)) if bytes + request.records.len() > bytes_max => {
                        carried = Some(request);
                        break;
                    }
                    Ok(Message::Append(request)) => {
                        count += 1;
                        bytes += request.records.len();
                        self.accept(request);
                    }
                    Ok(Message::Shutdown) | Err(TryRecvError::Disconnected) => {
                        shutdown = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.flush();
            if shutdown {
                break;
            }
        }
    }

    /// Checks one append against the log and seals it into the group, or answers it at once.
    fn accept(&mut self, request: AppendRequest) {
        if let Some(error) = self.shared.poisoned() {
            let _ = request.reply.send(Err(error));
            return;
        }
        let (group, locator, head) = (&self.group, &mut self.locator, self.shared.head());
        let mut read = |position| read_original(group, locator, head, position);
        match self.window.check(&request.ids, &request.parts, &mut read) {
            idempotency::Verdict::New => {}
            idempotency::Verdict::Retry(original) => {
                // Answered with the group, so never before the original is durable.
                self.group.answers.push((request.reply, original));
                return;
            }
            idempotency::Verdict::Conflict(error) => {
                let _ = request.reply.send(Err(error));
                return;
            }
        }
        let mut currents = Vec::with_capacity(request.parts.len());
        for part in &request.parts {
            match self.check_part(part) {
                Ok(current) => currents.push(current),
                Err(error) => {
                    let _ = request.reply.send(Err(error));
                    return;
                }
            }
        }
        let room = self.shared.options.segment_bytes_max;
        if self.segment_len + (self.group.bytes.len() + request.records.len()) as u64 > room {
            self.flush();
            self.rotate();
            if let Some(error) = self.shared.poisoned() {
                let _ = request.reply.send(Err(error));
                return;
            }
        }
        let result = match self.seal(&request, &currents) {
            Ok(result) => result,
            Err(overflow) => {
                // Nothing of this group is written: a poisoned store commits nothing more.
                self.shared.poison("seal record", io::Error::other(overflow));
                let _ = request.reply.send(Err(self.shared.poisoned().expect("poisoned")));
                return;
            }
        };
        self.window.insert(result.first_position.get(), &request.ids);
        self.group.answers.push((request.reply, result));
    }

    /// Checks one part against its stream as of the group so far: not tombstoned (nor, for a
    /// metadata stream, its stream), and at the expected version. Returns its last version.
    fn check_part(&self, part: &request::Part) -> Result<Option<u64>> {
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

    /// The stream's state as of the group so far.
    fn stream_state(&self, stream: &str) -> StreamState {
        let mut state = self.shared.streams.state(stream);
        if let Some(&last) = self.group.versions.get(stream) {
            state.last = Some(last);
        }
        if let Some(record) = self.group.metadata.get(stream) {
            state.apply(record);
        }
        state
    }

    /// Copies the append's records into the group and fills in their commit-time fields. On a
    /// field that does not fit, the group's bytes are as they were before.
    fn seal(
        &mut self,
        request: &AppendRequest,
        currents: &[Option<u64>],
    ) -> Result<MultiAppendResult, FieldOverflow> {
        let before = self.group.bytes.len();
        let sealed = self.seal_records(request, currents);
        if sealed.is_err() {
            self.group.bytes.truncate(before);
        }
        sealed
    }

    fn seal_records(
        &mut self,
        request: &AppendRequest,
        currents: &[Option<u64>],
    ) -> Result<MultiAppendResult, FieldOverflow> {
        let group = &mut self.group;
        let mut offset = group.bytes.len();
        group.bytes.extend_from_slice(&request.records);
        let first_position = group.next_position;
        let last_position = first_position + request.ids.len() as u64 - 1;
        let mut position = first_position;
        let mut streams = Vec::with_capacity(request.parts.len());
        for (part, current) in request.parts.iter().zip(currents) {
            if part.events == 0 {
                // A check-only part (a delete checks the stream it deletes): nothing to seal.
                continue;
            }
            let first_version = current.map_or(0, |v| v + 1);
            let part_first = position;
            let mut last_offset = offset;
            for version in first_version..first_version + u64::from(part.events) {
                last_offset = offset;
                let len = record_len(&group.bytes[offset..]).expect("encoded record");
                let fields = RecordFields {
                    position,
                    version,
                    timestamp_us: group.timestamp_us,
                    batch_left: last_position - position,
                    sequence: group.sequence,
                    epoch: 0,
                };
                seal_record(&mut group.bytes[offset..offset + len], fields)?;
                offset += len;
                position += 1;
            }
            let last_version = first_version + u64::from(part.events) - 1;
            group.versions.insert(part.stream.clone(), last_version);
            if metadata_target(&part.stream).is_some() {
                let (_, last) = own_records(&group.bytes[last_offset..offset]).next().expect("one");
                match metadata_of(&part.stream, last) {
                    Ok(Some((target, record))) => {
                        group.metadata.insert(target.to_owned(), record);
                    }
                    Ok(None) => {}
                    // Nothing of this group is written or acknowledged once the store is poisoned.
                    Err(error) => self.shared.poison(METADATA_OP, error),
                }
            }
            let result = AppendResult {
                first_position: Position(part_first),
                last_position: Position(position - 1),
                first_version: StreamVersion(first_version),
                last_version: StreamVersion(last_version),
            };
            streams.push((part.stream.clone(), result));
        }
        debug_assert_eq!(offset, group.bytes.len());
        group.next_position = position;
        Ok(MultiAppendResult {
            first_position: Position(first_position),
            last_position: Position(last_position),
            streams,
        })
    }

    /// Writes and fsyncs the group, publishes it, and answers its callers.
    fn flush(&mut self) {
        let outcome = self.commit();
        if let Err((op, error)) = outcome {
            self.shared.poison(op, error);
        }
        let poisoned = self.shared.poisoned().is_some();
        let inline = self.group.answers.len() <= ANSWER_INLINE_MAX;
        let answers = self.group.answers.drain(..).map(|(reply, result)| {
            let answer =
                if poisoned { Err(self.shared.poisoned().expect("poisoned")) } else { Ok(result) };
            (reply, answer)
        });
        if inline {
            // Few callers: waking them here is cheaper than waking the answering thread.
            answers.for_each(|(reply, answer)| {
                let _ = reply.send(answer);
            });
        } else {
            // Waking each caller is a futex call; with many callers that would delay the next
            // group by as much as an fsync, so another thread does it meanwhile.
            let _ = self.answerer.send(answers.collect());
        }
        self.group.bytes.clear();
        self.group.versions.clear();
        self.group.metadata.clear();
    }

    fn commit(&mut self) -> Result<(), (&'static str, io::Error)> {
        if self.shared.poisoned().is_some() || self.group.bytes.is_empty() {
            return Ok(());
        }
        let file = self.active.file();
        file.write_at(self.segment_len, &self.group.bytes).map_err(|e| ("write", e))?;
        if self.shared.options.durability == Durability::Fsync {
            file.sync_data().map_err(|e| ("fsync", e))?;
        }
        self.publish();
        self.group.sequence += 1;
        Ok(())
    }

    /// Makes the durable group visible: segment index and length, stream index, then head.
    fn publish(&mut self) {
        let base = self.segment_len;
        let new_len = base + self.group.bytes.len() as u64;
        let end = self.group.next_position;
        // Offsets stay below `segment_bytes_max`, which `Options::validate` keeps below 4 GiB.
        let offsets = own_records(&self.group.bytes)
            .map(|(offset, r)| (r.position(), u32::try_from(base + offset as u64).expect("<4GiB")));
        self.active.publish(offsets, new_len, end);
        let mut streams = self.shared.streams.write();
        for (_, record) in own_records(&self.group.bytes) {
            let (stream, version, position) =
                (record.stream(), record.version(), record.position());
            // The writer took every version from this index and checked its metadata events
            // while sealing, so an error is a bug. The group is durable, but the store must not
            // acknowledge it or build on a broken index.
            if let Err(kind) = streams.index_record(record, Continuity::Dense) {
                let (op, detail) = match kind {
                    CorruptionKind::BadMetadata => (
                        METADATA_OP,
                        format!(
                            "the metadata event at position {position} of {stream:?} does not decode"
                        ),
                    ),
                    CorruptionKind::VersionMismatch { expected, .. } => (
                        INDEX_OP,
                        format!(
                            "stream {stream:?} got version {version} at position {position}, \
                             but its index continues at {expected}"
                        ),
                    ),
                    other => (
                        INDEX_OP,
                        format!("the record at position {position} was refused: {other}"),
                    ),
                };
                self.shared.poison(op, io::Error::other(detail));
            }
        }
        self.shared.set_head(end);
        drop(streams);
        // A hint for subscribers that the head moved; never waits on any of them.
        self.shared.notifier.wake();
        self.segment_len = new_len;
    }

    /// Seals the active segment and starts the next one at the head.
    fn rotate(&mut self) {
        if self.shared.poisoned().is_some() {
            return;
        }
        let options = &self.shared.options;
        let created = Segment::create(
            &*options.storage,
            &self.shared.dir,
            self.group.next_position,
            options.group_bytes_max,
            options.index_stride,
            options.durability == Durability::Fsync,
        );
        match created {
            Ok(segment) => {
                self.active.seal();
                let segment = Arc::new(segment);
                self.shared.segments.push(Arc::clone(&segment));
                self.active = segment;
                self.segment_len = SEGMENT_HEADER_LEN as u64;
            }
            Err(Error::Io { op, source, .. }) => self.shared.poison(op, source),
            Err(other) => self.shared.poison("create segment", io::Error::other(other.to_string())),
        }
    }

    /// Answers whatever is still queued with `Closed`, or with the poison if there is one.
    fn stop(mut self) {
        // Every committed append is answered before the writer counts as gone.
        let (closed, _) = crossbeam_channel::bounded(1);
        drop(std::mem::replace(&mut self.answerer, closed));
        if let Some(handle) = self.answer_thread.take() {
            let _ = handle.join();
        }
        if self.shared.options.durability == Durability::None && self.shared.poisoned().is_none() {
            // Not a promise (this mode makes none), just fewer losses after a clean close.
            let _ = self.active.file().sync_data();
        }
        while let Ok(message) = self.rx.try_recv() {
            if let Message::Append(request) = message {
                let _ = request.reply.send(Err(self.shared.poisoned().unwrap_or(Error::Closed)));
            }
        }
    }
}

/// What a poisoned store names as the failed operation when the stream index disagreed with
/// the log being published.
const INDEX_OP: &str = "stream index update";

/// What a poisoned store names as the failed operation when a metadata event of its own did not
/// decode.
const METADATA_OP: &str = "metadata event check";

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

/// The message a panic was raised with, if it carries text.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    match payload.downcast_ref::<&str>() {
        Some(message) => message,
        None => payload.downcast_ref::<String>().map_or("(no message)", String::as_str),
    }
}

/// The event at `position`, from the group being written if it is not committed yet.
fn read_original(
    group: &Group,
    locator: &mut Locator,
    head: u64,
    position: u64,
) -> Option<idempotency::Original> {
    let original = |r: crate::format::Record<'_>| idempotency::Original {
        id: r.id(),
        stream: r.stream().to_owned(),
        version: r.version(),
    };
    if position >= head {
        return own_records(&group.bytes)
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
