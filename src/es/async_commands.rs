//! The repository's async forms: [`execute_async`](Repository::execute_async),
//! [`execute_all_async`](Repository::execute_all_async) and
//! [`read_async`](Repository::read_async). They follow the blocking forms' rules step for step
//! (`run.rs` holds them once for both); only the two waits differ.
//!
//! **What waits without a thread.** Waiting for an aggregate another command runs on (the
//! task's waker joins the same arrival-order queue as blocking commands, `busy.rs`), and
//! waiting for the append to commit ([`Store::append_multi_async`]: the writer wakes the task
//! once the group is durable). Nothing here needs a particular runtime, spawns a task or
//! starts a thread.
//!
//! **What runs on the polling thread.** Everything else is CPU work done inside `poll`, as in
//! the blocking form: loading a state that is not cached (its snapshot file, and the events
//! after it, read from the memory-mapped log and decoded), catching a state up, `handle`,
//! `apply` and encoding. Reading the log is not blocking I/O while its pages are in the page
//! cache; on a cold cache each page touched is a fault the thread waits for, like a file read.
//! We chose not to move loads to a thread of ours (the library has no runtime and starts no
//! threads for callers); a cached aggregate costs no read at all, and an application that
//! rehydrates large histories on an executor can do its first [`read`](Repository::read) of an
//! aggregate in its runtime's blocking pool. A snapshot that falls due after a command is
//! written on the polling thread too (a file write, and under
//! [`Durability::Fsync`](crate::Durability::Fsync) an `fdatasync`); to keep those off an
//! executor, set [`snapshot_every`](super::RepositoryOptions::snapshot_every) to 0 and call
//! [`snapshot_now`](Repository::snapshot_now) from a blocking context. The append itself blocks
//! only while the writer's queue is full (its back-pressure), as
//! [`Store::append_multi_async`] says.
//!
//! **Dropping a pending future** (a timeout, a `select!` that went the other way) cancels the
//! command at the await it is stopped at:
//! - waiting for the aggregate: it leaves the queue (waking the commands it held back), having
//!   written nothing;
//! - waiting for the append: the aggregates are released at once and their states dropped
//!   rather than cached (the append's outcome is unknown), so the next command rehydrates them
//!   from the log. **The append may still commit**, like any dropped
//!   [`AppendFuture`](crate::AppendFuture): it was queued already. The log stays the truth
//!   either way: a command that loaded before the dropped append committed hits its expected
//!   version and is retried on the caught-up state. To learn whether it committed, read the
//!   aggregate (its version and state). Running the command again is a new command, not a
//!   retry of the same append (each attempt gives its events fresh ids, so the store's
//!   idempotency window does not apply): a command that must not apply twice needs a check in
//!   the domain, such as a command id the state remembers.
//!
//! Nothing is left half-done in memory: between the two awaits, and after the last, the
//! future runs without yielding.

use super::{
    aggregate::Aggregate,
    error::Error,
    repository::{Outcome, Repository},
    run::{Next, Run},
};
use crate::{Store, StreamVersion};

impl<A: Aggregate> Repository<A> {
    /// [`execute`](Self::execute) as a future: waits for the aggregate and for the append
    /// without blocking the thread, and resolves to what `execute` would have returned. Loading
    /// and handling run on the polling thread; dropping it pending may still let its append
    /// commit. The module's doc (`es/async_commands.rs`) has the details; in short, see
    /// [`execute_all_async`](Self::execute_all_async).
    pub async fn execute_async(
        &self,
        id: &str,
        command: &A::Command,
    ) -> Result<Outcome, Error<A::Error>> {
        self.execute_all_async(&[(id, command)]).await
    }

    /// [`execute_all`](Self::execute_all) as a future: one atomic append of every command's
    /// events, or none. It waits without blocking the thread, behind the commands (blocking or
    /// async) that came earlier on any of its aggregates, then for its append; everything else
    /// (loading a state that is not cached from the memory-mapped log, `handle`, `apply`, a
    /// snapshot that falls due) is CPU work on the polling thread. Needs no particular runtime.
    ///
    /// Dropped while waiting for its aggregates, it writes nothing. Dropped while its append is
    /// in flight, it releases its aggregates and drops their states (the next command reloads
    /// them from the log), and **the append may still commit**: read the aggregate to find out.
    /// Its events have fresh ids, so running the command again is a new command.
    ///
    /// ```
    /// # use annal::es::{Aggregate, DomainEvent, Repository, RepositoryOptions};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Default, Serialize, Deserialize)]
    /// # struct Counter { value: u64 }
    /// # #[derive(Serialize, Deserialize)]
    /// # enum CounterEvent { Added { by: u64 } }
    /// # impl DomainEvent for CounterEvent { const TYPES: &'static [&'static str] = &["Added"]; }
    /// # impl Aggregate for Counter {
    /// #     const TYPE: &'static str = "counter";
    /// #     type Event = CounterEvent;
    /// #     type Command = u64;
    /// #     type Error = String;
    /// #     fn handle(&self, by: &u64) -> Result<Vec<CounterEvent>, String> {
    /// #         Ok(vec![CounterEvent::Added { by: *by }])
    /// #     }
    /// #     fn apply(&mut self, event: CounterEvent) {
    /// #         match event { CounterEvent::Added { by } => self.value += by }
    /// #     }
    /// # }
    /// let dir = tempfile::tempdir()?;
    /// let store = annal::Store::open(dir.path())?;
    /// let counters = Repository::<Counter>::new(&store, RepositoryOptions::default())?;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let total = runtime.block_on(async {
    ///     counters.execute_all_async(&[("c1", &5), ("c2", &1)]).await?;
    ///     counters.execute_async("c1", &2).await?;
    ///     counters.read_async("c1", |c, _| c.value).await.map_err(|e| e.widen())
    /// })?;
    /// assert_eq!(total, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn execute_all_async(
        &self,
        commands: &[(&str, &A::Command)],
    ) -> Result<Outcome, Error<A::Error>> {
        let ids = self.checked_ids(commands).map_err(Error::widen)?;
        let _busy = self.busy.acquire_async(&ids).await;
        let states = self.check_out_all(&ids).map_err(Error::widen)?;
        let mut run = Run::new(ids, commands, states);
        let result = self.attempts_async(&mut run).await;
        self.put_back(run, result)
    }

    /// [`read`](Self::read) as a future: waits for the commands running on `id` without
    /// blocking the thread, then loads the state (from the cache, or from the log on the
    /// polling thread) and calls `f`. Dropped while waiting, it leaves nothing behind.
    pub async fn read_async<R>(
        &self,
        id: &str,
        f: impl FnOnce(&A, Option<StreamVersion>) -> R,
    ) -> Result<R, Error> {
        let ids = self.checked_ids::<()>(&[(id, &())])?;
        let _busy = self.busy.acquire_async(&ids).await;
        self.read_held(id, f)
    }

    /// The attempts of `run`, each append awaited.
    async fn attempts_async(&self, run: &mut Run<'_, A>) -> Result<Outcome, Error<A::Error>> {
        loop {
            let parts = match self.next_attempt(run)? {
                Next::Append(parts) => parts,
                Next::Done(outcome) => return Ok(outcome),
            };
            let appended = Store::append_multi_async(&self.store, parts).await;
            if let Some(outcome) = self.appended(run, appended)? {
                return Ok(outcome);
            }
        }
    }
}
