//! Scavenging: reclaiming the space of events no read can return any more (tombstoned streams,
//! events below a stream's `truncate_before` or `max_count`, soft-deleted streams, events past
//! `max_age`) by rewriting sealed segments without them. Global positions never change: what
//! remains keeps its position, and `$all` readers see gaps. The active segment is never touched.
//!
//! Consecutive segments whose remaining records fit in one segment are merged into one, so a
//! scavenge also gives back files, not just bytes.
//!
//! It runs online, on the caller's thread: the writer goes on appending, readers go on reading
//! (one that holds an old segment keeps reading its valid bytes, which live until it lets go),
//! and each segment switch is crash-safe on its own (see `rewrite`). Progress is observable and
//! a cancel stops it between two writes; what it finished stays done.

mod plan;
mod rewrite;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

pub(crate) use rewrite::discard_unfinished;

use crate::{
    error::{Error, Result},
    format::SEGMENT_HEADER_LEN,
    shared::Shared,
    sync,
};

use rewrite::Decided;

/// Watches and steers a running scavenge from another thread. Clones share one scavenge.
#[derive(Clone, Debug, Default)]
pub struct ScavengeControl {
    inner: Arc<Control>,
}

#[derive(Debug, Default)]
pub(crate) struct Control {
    cancelled: AtomicBool,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_reclaimed: AtomicU64,
}

impl Control {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// How far a scavenge has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScavengeProgress {
    /// Bytes of sealed segments it will read.
    pub bytes_total: u64,
    /// Bytes of sealed segments read and, where needed, rewritten.
    pub bytes_done: u64,
    /// Bytes given back so far.
    pub bytes_reclaimed: u64,
}

impl ScavengeControl {
    /// A control for one scavenge.
    pub fn new() -> ScavengeControl {
        ScavengeControl::default()
    }

    /// Asks the scavenge to stop at its next check (between two writes of a segment). Segments
    /// it already switched stay scavenged; the one in progress is left as it was.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::Relaxed);
    }

    /// The progress so far.
    pub fn progress(&self) -> ScavengeProgress {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ScavengeProgress {
            bytes_total: load(&self.inner.bytes_total),
            bytes_done: load(&self.inner.bytes_done),
            bytes_reclaimed: load(&self.inner.bytes_reclaimed),
        }
    }
}

/// What a scavenge did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScavengeReport {
    /// Sealed segments read.
    pub segments_scanned: usize,
    /// Sealed segments not read, because their index showed no event that could go: a
    /// scavenge costs what there is to remove, not the size of the log.
    pub segments_skipped: usize,
    /// Segments rewritten (without removed events, and small neighbours merged into one).
    pub segments_rewritten: usize,
    /// Events removed.
    pub events_removed: u64,
    /// Bytes of sealed segments before.
    pub bytes_before: u64,
    /// Bytes given back.
    pub bytes_reclaimed: u64,
    /// Whether it stopped early because it was cancelled.
    pub cancelled: bool,
}

/// Scavenges every sealed segment of the store, in log order.
pub(crate) fn run(shared: &Shared, control: &ScavengeControl) -> Result<ScavengeReport> {
    let _only_one = shared.scavenge_lock().try_lock().map_err(|_| Error::ScavengeInProgress)?;
    if let Some(error) = shared.poisoned() {
        return Err(error);
    }
    // Every sealed segment gets its index file first; then no index file or table is written
    // beside this scavenge (it writes those of the segments it rewrites itself).
    shared.indexer().flush();
    let _no_indexing = sync::lock(shared.index_lock());
    let control = &*control.inner;
    let head = shared.head();
    let window = u64::from(shared.options().idempotency_window_events);
    let mut plan = plan::Plan::new(
        shared.streams(),
        head.saturating_sub(window),
        shared.options().clock.now_us(),
    );
    // Everything but the active (last) segment, as of now; later rotations wait for next time.
    let mut sealed = shared.segments().snapshot();
    sealed.pop();
    let mut report = ScavengeReport {
        bytes_before: sealed.iter().map(|s| s.committed_len()).sum(),
        ..ScavengeReport::default()
    };
    control.bytes_total.store(report.bytes_before, Ordering::Relaxed);
    // Consecutive segments whose kept records fit in one segment, to be written as one.
    let mut run: Vec<Decided> = Vec::new();
    for segment in &sealed {
        if control.is_cancelled() {
            break;
        }
        let index = segment.persisted();
        let view = index.as_ref().and_then(|index| index.view());
        // A segment at least half full cannot join a neighbour that keeps as much; a smaller
        // one is read even with nothing to remove, so that it can be merged.
        let merge_candidate = segment.committed_len() < shared.options().segment_bytes_max / 2;
        if !merge_candidate
            && view.is_some_and(|v| !plan.may_remove_from(&v, segment.base_position()))
        {
            // Its index shows nothing to remove: it is not read, and it ends a merge run.
            if !run.is_empty() {
                switch(shared, std::mem::take(&mut run), control, &mut report)?;
            }
            report.segments_skipped += 1;
            control.bytes_done.fetch_add(segment.committed_len(), Ordering::Relaxed);
            continue;
        }
        let decided = rewrite::decide(segment, &mut plan)?;
        report.segments_scanned += 1;
        if !run.is_empty() && !fits(&run, &decided, shared.options().segment_bytes_max) {
            switch(shared, std::mem::take(&mut run), control, &mut report)?;
        }
        run.push(decided);
        control.bytes_done.fetch_add(segment.committed_len(), Ordering::Relaxed);
    }
    if !run.is_empty() {
        switch(shared, run, control, &mut report)?;
    }
    if report.segments_rewritten > 0 {
        // The table is folded anew from the rewritten segments' indexes; a failure to write
        // it leaves none, which the next open rebuilds.
        let _ = crate::indexer::write_table(shared);
    }
    report.cancelled = control.is_cancelled();
    Ok(report)
}

/// Whether `next` can join `run` in one segment: its records have the same layout (they are
/// copied byte for byte, and a segment's records all have its format version's layout), the
/// kept bytes fit a segment, and the positions covered fit the sparse index's 32-bit offsets
/// from the base.
fn fits(run: &[Decided], next: &Decided, segment_bytes_max: u64) -> bool {
    if run[0].segment.layout() != next.segment.layout() {
        return false;
    }
    let bytes: u64 = run.iter().map(|d| d.kept_bytes).sum::<u64>() + next.kept_bytes;
    let base = run[0].segment.base_position();
    let span = next.segment.end_position() - base;
    SEGMENT_HEADER_LEN as u64 + bytes <= segment_bytes_max && span <= u64::from(u32::MAX)
}

/// Writes `run` as one segment, unless it is a single segment that loses nothing, and switches
/// readers and the stream index to it.
fn switch(
    shared: &Shared,
    run: Vec<Decided>,
    control: &Control,
    report: &mut ScavengeReport,
) -> Result<()> {
    if run.len() == 1 && run[0].removed == 0 {
        return Ok(());
    }
    if report.segments_rewritten == 0 {
        // The stream tables say what the streams held before this scavenge (their first
        // versions): once a segment is switched they would be wrong, so they go first, for
        // good, before anything changes; the next open folds a table from the index files.
        rewrite::remove_stream_tables(shared)?;
    }
    // A segment taken from the stream table's list opens its files now, while they are all
    // there: a reader still holding it after the switch reads the files it had open.
    for decided in &run {
        decided.segment.open_now()?;
    }
    let Some(new) = rewrite::merge(shared, &run, control)? else { return Ok(()) };
    let before: u64 = run.iter().map(|d| d.segment.committed_len()).sum();
    let reclaimed = before - new.committed_len();
    shared.segments().replace_run(Arc::new(new), run.len());
    for decided in &run {
        for (stream, &keep_from) in &decided.keep_from {
            shared.streams().trim(stream, keep_from);
        }
        report.events_removed += decided.removed;
    }
    report.segments_rewritten += run.len();
    report.bytes_reclaimed += reclaimed;
    control.bytes_reclaimed.fetch_add(reclaimed, Ordering::Relaxed);
    Ok(())
}
