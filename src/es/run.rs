//! A command in progress: the steps of [`Repository::execute_all`] that do not wait, shared by
//! its blocking and async forms so that both follow one set of rules.
//!
//! A command runs as: mark its aggregates busy (waits), take their states out of the cache
//! ([`Repository::check_out`], CPU work on the log), then attempts until one is done. Each
//! attempt is [`next_attempt`](Repository::next_attempt) (the retry bound, catching up after a
//! conflict, `handle`, encoding, the expected versions), then the append (waits), then
//! [`appended`](Repository::appended) (a conflict goes round again; a success moves the states
//! on and writes the snapshots that are due). [`put_back`](Repository::put_back) ends it. Only
//! the two waits differ between the forms: the busy mark and the append.

use std::sync::atomic::Ordering;

use uuid::Uuid;

use super::{
    aggregate::{Aggregate, stream_of},
    cache::lock,
    error::Error,
    load::Loaded,
    repository::{Outcome, Repository, put},
};
use crate::{ExpectedVersion, MultiAppendResult, NewEvent, StreamAppend, StreamVersion};

/// A command on its aggregates, their states taken out of the cache for it.
pub(crate) struct Run<'c, A: Aggregate> {
    ids: Vec<String>,
    commands: &'c [(&'c str, &'c A::Command)],
    states: Vec<Loaded<A>>,
    /// The attempt under way (1 for the first).
    attempt: u32,
    /// The stream whose expected version failed last.
    conflict: String,
    /// What the attempt under way appends: per command, the events it produced.
    produced: Vec<Vec<A::Event>>,
    /// Per appended part, the id of its last event.
    last_ids: Vec<Uuid>,
}

/// What to do after [`Repository::next_attempt`].
pub(crate) enum Next {
    /// Append these parts, then hand the result to [`Repository::appended`].
    Append(Vec<StreamAppend>),
    /// The command produced no events: done.
    Done(Outcome),
}

impl<'c, A: Aggregate> Run<'c, A> {
    /// A run of `commands` on `ids` (checked, one per command) whose states are `states`.
    pub fn new(
        ids: Vec<String>,
        commands: &'c [(&'c str, &'c A::Command)],
        states: Vec<Loaded<A>>,
    ) -> Self {
        assert_eq!(ids.len(), states.len());
        Run {
            ids,
            commands,
            states,
            attempt: 0,
            conflict: String::new(),
            produced: Vec::new(),
            last_ids: Vec::new(),
        }
    }
}

impl<A: Aggregate> Repository<A> {
    /// The states of `ids`, each taken out of the cache (and caught up) or rehydrated. The
    /// caller holds them busy.
    pub(crate) fn check_out_all(&self, ids: &[String]) -> Result<Vec<Loaded<A>>, Error> {
        ids.iter().map(|id| self.check_out(id)).collect()
    }

    /// Starts the next attempt: gives up past the retry bound, catches the states up after a
    /// conflict, handles the commands and encodes their events.
    pub(crate) fn next_attempt(&self, run: &mut Run<'_, A>) -> Result<Next, Error<A::Error>> {
        let attempts = self.options.max_retries + 1;
        if run.attempt == attempts {
            let stream = std::mem::take(&mut run.conflict);
            return Err(Error::Conflict { stream, attempts });
        }
        run.attempt += 1;
        if run.attempt > 1 {
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            for (id, state) in run.ids.iter().zip(run.states.iter_mut()) {
                self.catch_up(id, state).map_err(Error::widen)?;
            }
        }
        let mut produced = Vec::with_capacity(run.states.len());
        let mut parts = Vec::new();
        for ((id, loaded), (_, command)) in run.ids.iter().zip(&run.states).zip(run.commands) {
            let events = loaded.state.handle(command).map_err(Error::Domain)?;
            let new = self.encode_all(&events).map_err(Error::widen)?;
            if !new.is_empty() {
                let expected =
                    loaded.version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                parts.push(StreamAppend::new(stream_of::<A>(id), expected, new));
            }
            produced.push(events);
        }
        if parts.is_empty() {
            let (versions, attempts) = (versions_of(&run.states), run.attempt);
            return Ok(Next::Done(Outcome { events: 0, last_position: None, versions, attempts }));
        }
        run.last_ids =
            parts.iter().map(|p| p.events.last().and_then(|e| e.id).expect("an id")).collect();
        run.produced = produced;
        Ok(Next::Append(parts))
    }

    /// Takes in the result of the attempt's append: the outcome, or `None` to try again after a
    /// conflict. A success moves the states on and writes the snapshots that are due.
    pub(crate) fn appended(
        &self,
        run: &mut Run<'_, A>,
        appended: crate::Result<MultiAppendResult>,
    ) -> Result<Option<Outcome>, Error<A::Error>> {
        let result = match appended {
            Ok(result) => result,
            Err(crate::Error::WrongExpectedVersion { stream, .. }) => {
                run.conflict = stream;
                return Ok(None);
            }
            Err(e) => return Err(Error::Store(e)),
        };
        let mut appended = result.streams.iter().zip(std::mem::take(&mut run.last_ids));
        let mut events = 0;
        let produced = std::mem::take(&mut run.produced);
        for ((id, loaded), new_events) in run.ids.iter().zip(run.states.iter_mut()).zip(produced) {
            if new_events.is_empty() {
                continue;
            }
            let ((_, part), last_id) = appended.next().expect("one part per producing command");
            let before = loaded.version;
            events += new_events.len();
            new_events.into_iter().for_each(|event| loaded.state.apply(event));
            loaded.version = Some(part.last_version.get());
            loaded.last_event_id = Some(last_id);
            if self.snapshot_due(before, part.last_version.get()) {
                // Counted; the command's events are durable whatever happens here.
                let _ = self.write_snapshot(id, loaded);
            }
        }
        let versions = versions_of(&run.states);
        let last_position = Some(result.last_position);
        Ok(Some(Outcome { events, last_position, versions, attempts: run.attempt }))
    }

    /// Ends `run` with `result`: its states go back into the cache if they match the log, or
    /// will be caught up when next taken out (after a store error the log's state may be
    /// unknown: they are dropped, and the next command rehydrates).
    pub(crate) fn put_back(
        &self,
        run: Run<'_, A>,
        result: Result<Outcome, Error<A::Error>>,
    ) -> Result<Outcome, Error<A::Error>> {
        if matches!(result, Ok(_) | Err(Error::Domain(_) | Error::Conflict { .. })) {
            let mut cache = lock(&self.cache);
            run.ids.into_iter().zip(run.states).for_each(|(id, state)| put(&mut cache, id, state));
        }
        result
    }

    fn encode_all(&self, events: &[A::Event]) -> Result<Vec<NewEvent>, Error> {
        let encode = |e| self.codec.encode(e).map(|new| new.with_id(Uuid::new_v4()));
        events.iter().map(encode).collect()
    }

    /// Whether the event count crossed a multiple of `snapshot_every` going from `before` to
    /// `after` (versions of the last event).
    fn snapshot_due(&self, before: Option<u64>, after: u64) -> bool {
        let every = self.options.snapshot_every;
        let count_before = before.map_or(0, |v| v + 1);
        every > 0 && (after + 1) / every > count_before / every
    }
}

fn versions_of<A>(states: &[Loaded<A>]) -> Vec<Option<StreamVersion>> {
    states.iter().map(|s| s.version.map(StreamVersion)).collect()
}
