//! The repository: runs commands against aggregates of one type. It loads a state lazily
//! (snapshot and the events after it), keeps it in a bounded cache, runs the command, appends
//! the events with `ExpectedVersion::Exact` and, when another writer got there first, catches
//! the state up and retries a bounded number of times.
//!
//! Commands on the same aggregate run one at a time, in the order they came (blocking and async
//! alike, see `busy.rs`); commands on different aggregates run in parallel. No lock is held
//! across an append except the aggregates' own busy marks. The async forms are in
//! `async_commands.rs`.

use std::{
    collections::HashSet,
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{
    aggregate::{Aggregate, stream_of, validate_id, validate_type},
    busy::Busy,
    cache::{Cache, lock},
    codec::Codec,
    error::Error,
    load::Loaded,
    run::{Next, Run},
    snapshot::SnapshotFiles,
};
use crate::{Position, Store, StreamVersion};

/// How a [`Repository`] caches, snapshots and retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryOptions {
    /// Most aggregate states kept in memory (0: none). Default 10,000.
    pub cache_capacity: usize,
    /// Most bytes of aggregate states kept in memory, as [`Aggregate::size_hint`] estimates
    /// them (plus the id); `None`: only the count bounds the cache. Default `None`.
    pub cache_bytes_max: Option<u64>,
    /// A cached state unused for this long is dropped (passivated) at the next command and
    /// rehydrated when needed again. Default 5 minutes.
    pub idle_timeout: Duration,
    /// Write a snapshot each time an aggregate's event count crosses a multiple of this (0:
    /// never). Default 100. For streams with a `max_count`, keep it at most that count: a
    /// snapshot is then always within what retention leaves, and the aggregate stays loadable
    /// ([`Error::TruncatedHistory`](super::Error::TruncatedHistory) otherwise).
    pub snapshot_every: u64,
    /// How often a command is retried after a concurrent append to its aggregate. Default 3.
    pub max_retries: u32,
}

impl Default for RepositoryOptions {
    fn default() -> Self {
        RepositoryOptions {
            cache_capacity: 10_000,
            cache_bytes_max: None,
            idle_timeout: Duration::from_secs(300),
            snapshot_every: 100,
            max_retries: 3,
        }
    }
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Events recorded (0 if the command produced none).
    pub events: usize,
    /// Position of the last event recorded (for
    /// [`ProjectionRunner::wait_for`](super::ProjectionRunner::wait_for)); `None` if none.
    pub last_position: Option<Position>,
    /// Per command, in order: the aggregate's version afterwards (`None`: still no events).
    pub versions: Vec<Option<StreamVersion>>,
    /// Attempts it took (1 without a conflict).
    pub attempts: u32,
}

/// Counters of a repository, since it was created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepositoryStats {
    /// States in the cache now.
    pub cached: usize,
    /// Their bytes, as estimated (see [`RepositoryOptions::cache_bytes_max`]).
    pub cached_bytes: u64,
    /// Commands that found their state cached.
    pub cache_hits: u64,
    /// States loaded from the store.
    pub rehydrations: u64,
    /// ... of which started from a snapshot.
    pub from_snapshot: u64,
    /// Snapshot files found but not used (damaged, outdated, beyond or not matching the
    /// stream).
    pub snapshots_ignored: u64,
    /// Snapshots written.
    pub snapshots_written: u64,
    /// Snapshots that could not be written (the command succeeded all the same).
    pub snapshot_write_failures: u64,
    /// Attempts repeated after a concurrent append.
    pub retries: u64,
    /// Commands (and reads) waiting now for an aggregate another command is running on.
    pub waiting: usize,
    /// States dropped from the cache for idleness.
    pub passivated: u64,
    /// States dropped from the cache to make room.
    pub evicted: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub cache_hits: AtomicU64,
    pub rehydrations: AtomicU64,
    pub from_snapshot: AtomicU64,
    pub snapshots_ignored: AtomicU64,
    pub snapshots_written: AtomicU64,
    pub snapshot_write_failures: AtomicU64,
    pub retries: AtomicU64,
}

/// Runs commands against the aggregates of type `A` in a store. Share it between threads by
/// reference (it is `Sync`) or in an `Arc`.
pub struct Repository<A: Aggregate> {
    pub(crate) store: Store,
    pub(crate) codec: Codec<A::Event>,
    pub(crate) options: RepositoryOptions,
    pub(crate) cache: Mutex<Cache<Loaded<A>>>,
    pub(crate) busy: Busy,
    pub(crate) snapshots: SnapshotFiles,
    pub(crate) stats: Counters,
}

impl<A: Aggregate> Repository<A> {
    /// A repository for `A` in `store`, decoding events without upcasters.
    pub fn new(store: &Store, options: RepositoryOptions) -> Result<Self, Error> {
        Repository::with_codec(store, Codec::new(), options)
    }

    /// A repository for `A` in `store` that decodes events with `codec` (its upcasters).
    pub fn with_codec(
        store: &Store,
        codec: Codec<A::Event>,
        options: RepositoryOptions,
    ) -> Result<Self, Error> {
        validate_type(A::TYPE)?;
        Ok(Repository {
            store: store.clone(),
            codec,
            cache: Mutex::new(Cache::new(
                options.cache_capacity,
                options.cache_bytes_max.unwrap_or(u64::MAX),
                options.idle_timeout,
            )),
            options,
            busy: Busy::default(),
            snapshots: SnapshotFiles::new(store, A::TYPE),
            stats: Counters::default(),
        })
    }

    /// Runs `command` against aggregate `id` and records the events it produces. Blocks this
    /// thread while another command on `id` runs and while the append commits;
    /// [`execute_async`](Self::execute_async) waits without blocking it.
    pub fn execute(&self, id: &str, command: &A::Command) -> Result<Outcome, Error<A::Error>> {
        self.execute_all(&[(id, command)])
    }

    /// Runs each command against its aggregate and records all their events in one atomic
    /// multi-stream append: all of them or, if any command is rejected or the append fails,
    /// none. The aggregates must be distinct.
    pub fn execute_all(
        &self,
        commands: &[(&str, &A::Command)],
    ) -> Result<Outcome, Error<A::Error>> {
        let ids = self.checked_ids(commands).map_err(Error::widen)?;
        let _busy = self.busy.acquire(&ids);
        let states = self.check_out_all(&ids).map_err(Error::widen)?;
        let mut run = Run::new(ids, commands, states);
        let result = self.attempts(&mut run);
        self.put_back(run, result)
    }

    /// The attempts of `run`, each append waiting on this thread.
    fn attempts(&self, run: &mut Run<'_, A>) -> Result<Outcome, Error<A::Error>> {
        loop {
            let parts = match self.next_attempt(run)? {
                Next::Append(parts) => parts,
                Next::Done(outcome) => return Ok(outcome),
            };
            if let Some(outcome) = self.appended(run, self.store.append_multi(parts))? {
                return Ok(outcome);
            }
        }
    }

    /// Calls `f` with `id`'s current state and version (through the cache).
    pub fn read<R>(
        &self,
        id: &str,
        f: impl FnOnce(&A, Option<StreamVersion>) -> R,
    ) -> Result<R, Error> {
        let ids = self.checked_ids::<()>(&[(id, &())])?;
        let _busy = self.busy.acquire(&ids);
        self.read_held(id, f)
    }

    /// [`read`](Self::read) once `id` is marked busy.
    pub(crate) fn read_held<R>(
        &self,
        id: &str,
        f: impl FnOnce(&A, Option<StreamVersion>) -> R,
    ) -> Result<R, Error> {
        let loaded = self.check_out(id)?;
        let result = f(&loaded.state, loaded.version.map(StreamVersion));
        put(&mut lock(&self.cache), id.to_owned(), loaded);
        Ok(result)
    }

    /// Writes a snapshot of `id`'s current state now (whatever
    /// [`snapshot_every`](RepositoryOptions::snapshot_every) says); the version it reflects
    /// (`None`, and no file, for an aggregate without events).
    pub fn snapshot_now(&self, id: &str) -> Result<Option<StreamVersion>, Error> {
        let ids = self.checked_ids::<()>(&[(id, &())])?;
        let _busy = self.busy.acquire(&ids);
        let loaded = self.check_out(id)?;
        let written = self.write_snapshot(id, &loaded);
        let version = loaded.version.map(StreamVersion);
        put(&mut lock(&self.cache), id.to_owned(), loaded);
        written.map(|()| version)
    }

    /// Drops the cached states idle for longer than the idle timeout now (commands do this
    /// on their own; this is for a caller that wants the memory back without one).
    pub fn passivate_idle(&self) {
        lock(&self.cache).passivate_idle(Instant::now());
    }

    /// Drops every cached state: the next command on each aggregate rehydrates it.
    pub fn clear_cache(&self) {
        lock(&self.cache).clear();
    }

    /// The counters.
    pub fn stats(&self) -> RepositoryStats {
        let cache = lock(&self.cache);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.stats;
        RepositoryStats {
            cached: cache.len(),
            cached_bytes: cache.bytes(),
            cache_hits: get(&s.cache_hits),
            rehydrations: get(&s.rehydrations),
            from_snapshot: get(&s.from_snapshot),
            snapshots_ignored: get(&s.snapshots_ignored),
            snapshots_written: get(&s.snapshots_written),
            snapshot_write_failures: get(&s.snapshot_write_failures),
            retries: get(&s.retries),
            waiting: self.busy.waiting(),
            passivated: cache.passivated,
            evicted: cache.evicted,
        }
    }

    /// The store it appends to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The codec it encodes and decodes events with.
    pub fn codec(&self) -> &Codec<A::Event> {
        &self.codec
    }

    pub(crate) fn checked_ids<C>(&self, commands: &[(&str, &C)]) -> Result<Vec<String>, Error> {
        let mut seen = HashSet::new();
        for (id, _) in commands {
            validate_id(id)?;
            if !seen.insert(*id) {
                return Err(crate::Error::DuplicateStream { stream: stream_of::<A>(id) }.into());
            }
        }
        Ok(commands.iter().map(|(id, _)| (*id).to_owned()).collect())
    }

    /// `id`'s state, taken out of the cache (caught up if the log moved on meanwhile) or
    /// rehydrated. The caller holds `id` busy.
    pub(crate) fn check_out(&self, id: &str) -> Result<Loaded<A>, Error> {
        let cached = lock(&self.cache).take(id);
        let Some(mut loaded) = cached else {
            return self.rehydrate(id);
        };
        self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        // Caught up unless the log is where the state left it: same last version, and that
        // version not hidden since (by a delete).
        let stream = self.store.stream_state(&stream_of::<A>(id));
        if stream.last != loaded.version || loaded.version.is_some_and(|v| v < stream.floor()) {
            self.catch_up(id, &mut loaded)?;
        }
        Ok(loaded)
    }
}

/// Caches `loaded` as `id`'s state, sized by its own estimate plus the id.
pub(crate) fn put<A: Aggregate>(cache: &mut Cache<Loaded<A>>, id: String, loaded: Loaded<A>) {
    let bytes = (loaded.state.size_hint() + id.len()) as u64;
    cache.put(id, loaded, bytes);
}

impl<A: Aggregate> fmt::Debug for Repository<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("type", &A::TYPE)
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish()
    }
}
