//! Competing consumers: a named group of consumers sharing one persistent subscription. The
//! group's persistent subscription reads the log, keeps the in-flight window and writes the
//! checkpoint, exactly as for a single holder; the group hands each event it reads to one
//! consumer (round robin or dispatch to single), tracks which consumer holds which event, and
//! takes events back for redelivery when they are nacked or their consumer goes away.
//!
//! Delivery stays at least once: an event counts as processed for the checkpoint only when a
//! consumer acknowledges or skips it, so an event held by a consumer that leaves, queued for
//! redelivery, or parked holds the checkpoint back, and a restart delivers it again.
//!
//! An event a consumer holds longer than [`GroupSettings::message_timeout`] is taken back as
//! if nacked for a retry. There is no timer thread: the consumers check for expired events
//! under the group's lock each time they look for work, which a waiting consumer does at
//! least every read slice; a group with no consumer waiting has nobody to redeliver to.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError, Weak},
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::{
    error::{Error, Result},
    read::RecordedEvent,
    shared::Shared,
    sync,
    types::Position,
};

use super::{
    Acker, Filter, PersistentOptions, PersistentSubscription, acks::AckState,
    persistent::subscribe_persistent,
};

/// The longest a consumer waits for the log in one go while it reads for the group, so that
/// it notices events handed to it by the others (nacked, or from a consumer that left) soon.
const READ_SLICE: Duration = Duration::from_millis(50);

/// KurrentDB's default message timeout, which its users expect.
const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a group picks the consumer of the next event, among those with room in their buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConsumerStrategy {
    /// Each event to the next consumer in turn.
    #[default]
    RoundRobin,
    /// Every event to the consumer connected first, until its buffer is full or it leaves;
    /// then to the next one in connection order.
    DispatchToSingle,
}

/// What to do with an event a consumer could not process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NackAction {
    /// Deliver it again (to any consumer) with its retry count plus one; once that exceeds
    /// [`GroupSettings::max_retry_count`] it is parked instead.
    Retry,
    /// Park it now: it is delivered again only after [`GroupConsumer::replay_parked`].
    Park,
    /// Treat it as processed without processing it (an acknowledgement).
    Skip,
}

/// The settings of a consumer group: those of its persistent subscription, and how events
/// are shared out and retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSettings {
    /// Start, checkpointing and in-flight window of the group's persistent subscription.
    pub persistent: PersistentOptions,
    /// How events are shared among the consumers. Default: round robin.
    pub strategy: ConsumerStrategy,
    /// Redeliveries after [`NackAction::Retry`] before an event is parked. Default: 10.
    pub max_retry_count: u32,
    /// Events handed to one consumer and not yet acknowledged or nacked, at most; a consumer
    /// with a full buffer is passed over. Default: 10.
    pub consumer_buffer: u32,
    /// How long a consumer may hold an event (from when it is handed to it, which may be
    /// before it receives it from its buffer) before the group takes it back as if nacked
    /// with [`NackAction::Retry`]: retry count plus one, parked once past `max_retry_count`.
    /// `None`: no limit, an event stays with its consumer until acknowledged, nacked or the
    /// consumer leaves. Default: 30 seconds, as KurrentDB's.
    ///
    /// It is checked while some consumer of the group waits in `recv`, so an expired event
    /// is taken back within a read slice (50 ms) of its deadline. An acknowledgement or
    /// nack of an event already taken back is [`Error::NotDelivered`] and changes nothing,
    /// unless the event was redelivered to the same consumer and received again: then it
    /// settles that delivery (the consumer processed the event).
    pub message_timeout: Option<Duration>,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            persistent: PersistentOptions::default(),
            strategy: ConsumerStrategy::RoundRobin,
            max_retry_count: 10,
            consumer_buffer: 10,
            message_timeout: Some(DEFAULT_MESSAGE_TIMEOUT),
        }
    }
}

/// An event handed to one consumer of a group, with how often it was retried before.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The event.
    pub event: RecordedEvent,
    /// How many times it was nacked with [`NackAction::Retry`] or timed out (see
    /// [`GroupSettings::message_timeout`]) before this delivery.
    pub retry_count: u32,
}

/// A live group as of now: see [`GroupConsumer::info`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group's name (that of its persistent subscription).
    pub name: String,
    /// Its strategy.
    pub strategy: ConsumerStrategy,
    /// Consumers connected.
    pub consumers: usize,
    /// Events handed to a consumer or waiting for one, not yet acknowledged, nacked or parked.
    pub in_flight: usize,
    /// Parked events.
    pub parked: usize,
    /// Every event below it was acknowledged, skipped or filtered out.
    pub checkpoint: Position,
    /// The checkpoint last written to disk: where a restart resumes.
    pub saved_checkpoint: Position,
    /// The head minus the checkpoint.
    pub lag: u64,
}

/// One consumer of a group; the group lives while any of its consumers does. Dropping it
/// hands the events it holds (delivered and not acknowledged) to the other consumers.
///
/// It is `Sync`: one thread may wait in [`recv`](Self::recv) while another acknowledges
/// (a server receives for a client on one thread and applies its acknowledgements as they
/// arrive on others).
pub struct GroupConsumer {
    group: Arc<Group>,
    id: u64,
}

/// What the consumers of a group share.
pub(crate) struct Group {
    name: String,
    settings: GroupSettings,
    shared: Arc<Shared>,
    /// Reads the log; taken by one consumer at a time. Taken before `state`, never while
    /// holding it.
    reader: Mutex<PersistentSubscription>,
    acks: Arc<AckState>,
    /// Keeps the subscription's window from failing for want of an acknowledger.
    _acker: Acker,
    state: Mutex<Dispatch>,
    /// Signalled when events are handed out or taken back, or a buffer gains room.
    changed: Condvar,
}

#[derive(Clone)]
struct Entry {
    event: RecordedEvent,
    retry_count: u32,
    /// When the consumer holding it loses it; set each time it is handed to a consumer.
    deadline: Option<Instant>,
}

/// Who holds which event.
struct Dispatch {
    /// In connection order.
    consumers: Vec<Slot>,
    /// Where round robin looks first.
    turn: usize,
    /// Events nobody holds (nacked for a retry, left behind, or replayed); handed out before
    /// new ones.
    orphans: VecDeque<Entry>,
    parked: Vec<Entry>,
    next_id: u64,
    /// The group's message timeout.
    timeout: Option<Duration>,
}

struct Slot {
    id: u64,
    /// Events this consumer may hold (queued or received, not yet settled), at most.
    buffer: usize,
    /// Handed to this consumer, not yet received.
    queue: VecDeque<Entry>,
    /// Received, not yet acknowledged or nacked.
    leased: Vec<Entry>,
}

impl Slot {
    fn held(&self) -> usize {
        self.queue.len() + self.leased.len()
    }

    fn has_room(&self) -> bool {
        self.held() < self.buffer
    }
}

impl Dispatch {
    /// The consumer the next event goes to; `None` while every buffer is full.
    fn choose(&mut self, strategy: ConsumerStrategy) -> Option<usize> {
        let n = self.consumers.len();
        let start = match strategy {
            ConsumerStrategy::RoundRobin => self.turn,
            ConsumerStrategy::DispatchToSingle => 0,
        };
        let i = (0..n).map(|k| (start + k) % n).find(|&i| self.consumers[i].has_room())?;
        self.turn = i + 1;
        Some(i)
    }

    /// Hands out the orphans, as far as buffers have room.
    fn adopt(&mut self, strategy: ConsumerStrategy) {
        while !self.orphans.is_empty() {
            let Some(i) = self.choose(strategy) else { return };
            let mut entry = self.orphans.pop_front().expect("not empty");
            entry.deadline = self.timeout.map(|t| Instant::now() + t);
            self.consumers[i].queue.push_back(entry);
        }
    }

    /// Takes back every event held past its deadline, as a retry: back to the orphans with
    /// its retry count plus one, or parked once that would pass `max_retry_count`. Whether
    /// any expired.
    fn expire(&mut self, now: Instant, max_retry_count: u32) -> bool {
        let due = |e: &Entry| e.deadline.is_some_and(|d| d <= now);
        // The common case (nothing due) costs one scan of the held events, no allocation.
        let held = |s: &Slot| s.queue.iter().chain(&s.leased).any(due);
        if self.timeout.is_none() || !self.consumers.iter().any(held) {
            return false;
        }
        let mut expired = Vec::new();
        for slot in &mut self.consumers {
            for entry in std::mem::take(&mut slot.queue) {
                if due(&entry) { expired.push(entry) } else { slot.queue.push_back(entry) }
            }
            expired.extend(slot.leased.extract_if(.., |e| due(e)));
        }
        expired.sort_by_key(|e| e.event.position());
        let any = !expired.is_empty();
        for mut entry in expired {
            entry.deadline = None;
            if entry.retry_count < max_retry_count {
                entry.retry_count += 1;
                self.orphans.push_back(entry);
            } else {
                self.parked.push(entry);
            }
        }
        any
    }

    fn slot(&mut self, id: u64) -> &mut Slot {
        self.consumers.iter_mut().find(|s| s.id == id).expect("a connected consumer")
    }
}

impl Group {
    fn state(&self) -> MutexGuard<'_, Dispatch> {
        sync::lock(&self.state)
    }

    /// A new consumer that may hold `buffer` events (`None`: the group's `consumer_buffer`).
    fn connect(self: &Arc<Group>, buffer: Option<u32>) -> GroupConsumer {
        let buffer = buffer.unwrap_or(self.settings.consumer_buffer) as usize;
        let mut d = self.state();
        let id = d.next_id;
        d.next_id += 1;
        d.consumers.push(Slot { id, buffer, queue: VecDeque::new(), leased: Vec::new() });
        d.adopt(self.settings.strategy);
        drop(d);
        self.changed.notify_all();
        GroupConsumer { group: Arc::clone(self), id }
    }

    /// Waits on `changed` at most until `deadline` and one read slice.
    fn wait<'a>(&self, d: MutexGuard<'a, Dispatch>, deadline: Option<Instant>) {
        let mut left = READ_SLICE;
        if let Some(d) = deadline {
            left = left.min(d.saturating_duration_since(Instant::now()));
        }
        drop(sync::recover(self.changed.wait_timeout(d, left)));
    }

    /// Reads the next event of the log for the group and hands it to a consumer; whether it
    /// read one. Waits at most until `deadline` and one read slice.
    fn read_one(
        &self,
        reader: &mut PersistentSubscription,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        let mut left = READ_SLICE;
        if let Some(d) = deadline {
            left = left.min(d.saturating_duration_since(Instant::now()));
        }
        let Some(event) = reader.recv_timeout(left)? else { return Ok(false) };
        let mut d = self.state();
        d.orphans.push_back(Entry { event, retry_count: 0, deadline: None });
        d.adopt(self.settings.strategy);
        drop(d);
        self.changed.notify_all();
        Ok(true)
    }

    fn recv_until(&self, id: u64, deadline: Option<Instant>) -> Result<Option<Delivery>> {
        loop {
            let d = {
                let mut d = self.state();
                if d.expire(Instant::now(), self.settings.max_retry_count) {
                    self.changed.notify_all();
                }
                d.adopt(self.settings.strategy);
                let slot = d.slot(id);
                if let Some(entry) = slot.queue.pop_front() {
                    let delivery =
                        Delivery { event: entry.event.clone(), retry_count: entry.retry_count };
                    slot.leased.push(entry);
                    return Ok(Some(delivery));
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(None);
                }
                d
            };
            // Read on only if someone has room for what comes, and nobody else is reading.
            let room = d.orphans.is_empty() && d.consumers.iter().any(Slot::has_room);
            if !room {
                self.wait(d, deadline);
                continue;
            }
            drop(d);
            match self.reader.try_lock() {
                Ok(mut reader) => {
                    self.read_one(&mut reader, deadline)?;
                }
                Err(TryLockError::Poisoned(e)) => {
                    self.read_one(&mut e.into_inner(), deadline)?;
                }
                Err(TryLockError::WouldBlock) => self.wait(self.state(), deadline),
            }
        }
    }

    /// Takes the event at `position` back from consumer `id`.
    fn take(&self, d: &mut Dispatch, id: u64, position: u64) -> Result<Entry> {
        let slot = d.slot(id);
        let i = slot.leased.iter().position(|e| e.event.position().get() == position);
        let i = i.ok_or(Error::NotDelivered { position })?;
        Ok(slot.leased.swap_remove(i))
    }

    fn ack(&self, id: u64, position: u64) -> Result<()> {
        let entry = self.take(&mut self.state(), id, position)?;
        self.changed.notify_all();
        self.acks.ack(entry.event.position().get())
    }

    fn nack(&self, id: u64, position: u64, action: NackAction) -> Result<()> {
        let mut d = self.state();
        let mut entry = self.take(&mut d, id, position)?;
        match action {
            NackAction::Skip => {
                drop(d);
                self.changed.notify_all();
                return self.acks.ack(position);
            }
            NackAction::Retry if entry.retry_count < self.settings.max_retry_count => {
                entry.retry_count += 1;
                d.orphans.push_back(entry);
                d.adopt(self.settings.strategy);
            }
            NackAction::Retry | NackAction::Park => d.parked.push(entry),
        }
        drop(d);
        self.changed.notify_all();
        Ok(())
    }

    fn leave(&self, id: u64) {
        let mut d = self.state();
        let i = d.consumers.iter().position(|s| s.id == id).expect("a connected consumer");
        let slot = d.consumers.remove(i);
        let mut held: Vec<Entry> = slot.leased.into_iter().chain(slot.queue).collect();
        held.sort_by_key(|e| e.event.position());
        d.orphans.extend(held);
        d.adopt(self.settings.strategy);
        drop(d);
        self.changed.notify_all();
    }

    fn replay_parked(&self) -> usize {
        let mut d = self.state();
        let parked = std::mem::take(&mut d.parked);
        let count = parked.len();
        d.orphans.extend(parked.into_iter().map(|e| Entry { retry_count: 0, ..e }));
        d.adopt(self.settings.strategy);
        drop(d);
        self.changed.notify_all();
        count
    }

    fn info(&self) -> GroupInfo {
        let d = self.state();
        let held: usize = d.consumers.iter().map(Slot::held).sum();
        let checkpoint = self.acks.checkpoint();
        GroupInfo {
            name: self.name.clone(),
            strategy: self.settings.strategy,
            consumers: d.consumers.len(),
            in_flight: held + d.orphans.len(),
            parked: d.parked.len(),
            checkpoint: Position(checkpoint),
            saved_checkpoint: Position(self.acks.saved.load(std::sync::atomic::Ordering::Acquire)),
            lag: self.shared.head().saturating_sub(checkpoint),
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let mut groups = self.shared.subscriptions().groups();
        if groups.get(&self.name).is_some_and(|g| g.strong_count() == 0) {
            groups.remove(&self.name);
        }
    }
}

impl GroupConsumer {
    /// The next event handed to this consumer, waiting as long as it takes. Fails like
    /// [`PersistentSubscription::recv`] ([`Error::Closed`] once the store is closed).
    pub fn recv(&self) -> Result<Delivery> {
        loop {
            if let Some(delivery) = self.group.recv_until(self.id, None)? {
                return Ok(delivery);
            }
        }
    }

    /// The next event handed to this consumer, waiting at most `timeout`; `Ok(None)` if none
    /// came in time.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Delivery>> {
        self.group.recv_until(self.id, Some(Instant::now() + timeout))
    }

    /// The next event already handed to this consumer, without reading the log or waiting.
    pub fn try_recv(&self) -> Result<Option<Delivery>> {
        self.group.recv_until(self.id, Some(Instant::now()))
    }

    /// Marks the event at `position`, delivered to this consumer, processed. An event not
    /// held by this consumer (never delivered to it, or already acknowledged or nacked) is
    /// [`Error::NotDelivered`]. May write the checkpoint (and return its I/O error).
    pub fn ack(&self, position: Position) -> Result<()> {
        self.group.ack(self.id, position.get())
    }

    /// Like [`ack`](Self::ack), by the event's id.
    pub fn ack_id(&self, id: Uuid) -> Result<()> {
        self.group.ack(self.id, self.position_of(id)?)
    }

    /// Hands back the event at `position`, delivered to this consumer, for `action`.
    pub fn nack(&self, position: Position, action: NackAction) -> Result<()> {
        self.group.nack(self.id, position.get(), action)
    }

    /// Like [`nack`](Self::nack), by the event's id.
    pub fn nack_id(&self, id: Uuid, action: NackAction) -> Result<()> {
        self.group.nack(self.id, self.position_of(id)?, action)
    }

    /// Hands every parked event of the group back for delivery, with its retry count reset;
    /// how many there were.
    pub fn replay_parked(&self) -> usize {
        self.group.replay_parked()
    }

    /// The group as of now.
    pub fn info(&self) -> GroupInfo {
        self.group.info()
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.group.name
    }

    /// The position of the event `id` this consumer holds. An id it does not hold has no
    /// position to report: [`Error::NotDelivered`] then names position 0.
    fn position_of(&self, id: Uuid) -> Result<u64> {
        let mut d = self.group.state();
        let leased = &d.slot(self.id).leased;
        let entry = leased.iter().find(|e| e.event.id() == id);
        entry.map(|e| e.event.position().get()).ok_or(Error::NotDelivered { position: 0 })
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.group.leave(self.id);
    }
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group", &self.group.name)
            .field("id", &self.id)
            .finish()
    }
}

/// The live groups of a store, by name.
pub(super) type Groups = HashMap<String, Weak<Group>>;

/// Connects a consumer to group `name`, opening the group (its persistent subscription, with
/// `filter` and `settings`) if no consumer is connected; a live group keeps its own settings.
/// The consumer may hold `buffer` events (`None`: the group's `consumer_buffer`).
pub(crate) fn connect_to_group(
    shared: &Arc<Shared>,
    name: &str,
    filter: Filter,
    settings: GroupSettings,
    buffer: Option<u32>,
) -> Result<GroupConsumer> {
    if settings.consumer_buffer == 0 || buffer == Some(0) {
        return Err(Error::InvalidOptions("consumer_buffer must be positive".to_owned()));
    }
    if settings.message_timeout == Some(Duration::ZERO) {
        return Err(Error::InvalidOptions("message_timeout must be positive (or None)".to_owned()));
    }
    let mut groups = shared.subscriptions().groups();
    if let Some(group) = groups.get(name).and_then(Weak::upgrade) {
        return Ok(group.connect(buffer));
    }
    let reader = subscribe_persistent(shared, name, filter, settings.persistent.clone())?;
    let (acks, acker) = (Arc::clone(&reader.acks), reader.acker());
    let timeout = settings.message_timeout;
    let group = Arc::new(Group {
        name: name.to_owned(),
        settings,
        shared: Arc::clone(shared),
        reader: Mutex::new(reader),
        acks,
        _acker: acker,
        state: Mutex::new(Dispatch {
            consumers: Vec::new(),
            turn: 0,
            orphans: VecDeque::new(),
            parked: Vec::new(),
            next_id: 0,
            timeout,
        }),
        changed: Condvar::new(),
    });
    groups.insert(name.to_owned(), Arc::downgrade(&group));
    drop(groups);
    Ok(group.connect(buffer))
}

/// The live group `name`, as of now; `None` if no consumer is connected to it.
pub(crate) fn group_info(shared: &Shared, name: &str) -> Option<GroupInfo> {
    let group = shared.subscriptions().groups().get(name).and_then(Weak::upgrade);
    group.map(|g| g.info())
}

/// Hands the parked events of the live group `name` back for delivery (see
/// [`GroupConsumer::replay_parked`]); `None` if no consumer is connected to it.
pub(crate) fn replay_parked(shared: &Shared, name: &str) -> Option<usize> {
    let group = shared.subscriptions().groups().get(name).and_then(Weak::upgrade);
    group.map(|g| g.replay_parked())
}

/// The names of the live groups, sorted.
pub(crate) fn list_groups(shared: &Shared) -> Vec<String> {
    let groups = shared.subscriptions().groups();
    let mut names: Vec<String> =
        groups.iter().filter(|(_, g)| g.strong_count() > 0).map(|(n, _)| n.clone()).collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<GroupConsumer>();
    }
}
