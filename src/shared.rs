//! The state the writer publishes and readers consult: segments, indexes, the committed head
//! and the poison flag; and what subscribers wait on.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use crate::{
    error::Error,
    index::StreamIndex,
    indexer::{Indexer, IndexerCounts},
    options::Options,
    segment::SegmentSet,
    subscription::{Notifier, Registry},
    writer::CommitCounters,
};

/// Shared between the writer thread and every reader.
///
/// The fields are private: every layer goes through the accessors below, which say who may
/// change what.
pub(crate) struct Shared {
    dir: PathBuf,
    options: Options,
    segments: SegmentSet,
    streams: StreamIndex,
    /// One past the last committed position: everything below it is durable and indexed.
    head: AtomicU64,
    /// The first failed write or fsync; once set the store accepts no more appends.
    poison: OnceLock<(&'static str, Arc<io::Error>)>,
    /// Woken when the head moves, the store is poisoned, or it closes.
    notifier: Notifier,
    /// The persistent subscriptions held in this store.
    subscriptions: Registry,
    /// Held by the one scavenge that may run at a time.
    scavenging: Mutex<()>,
    /// Held while index files or the stream table are written (by the indexer, or by a
    /// scavenge for its whole run).
    indexing: Mutex<()>,
    /// The background indexer (not started for a read-only store).
    indexer: Indexer,
    indexer_counts: IndexerCounts,
    /// What group commits cost (groups, their sizes, their fsyncs).
    commit_counters: CommitCounters,
    /// Whether `streams.close.tbl` on disk is the table the stream index stands on (the store
    /// was opened from it and nothing changed it since): a clean close need not write it.
    close_table_current: AtomicBool,
}

impl Shared {
    pub fn new(
        dir: PathBuf,
        options: Options,
        segments: SegmentSet,
        streams: StreamIndex,
        head: u64,
    ) -> Shared {
        Shared {
            dir,
            options,
            segments,
            streams,
            head: AtomicU64::new(head),
            poison: OnceLock::new(),
            notifier: Notifier::default(),
            subscriptions: Registry::default(),
            scavenging: Mutex::new(()),
            indexing: Mutex::new(()),
            indexer: Indexer::default(),
            indexer_counts: IndexerCounts::default(),
            commit_counters: CommitCounters::default(),
            close_table_current: AtomicBool::new(false),
        }
    }

    /// The store's directory: segments, subscription checkpoints and the es layer's files live
    /// under it. Fixed for the life of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the store was opened with. Fixed for the life of the store.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The ordered set of segment files. Only the writer (a new active segment) and scavenging
    /// (a sealed run replaced by its rewrite) change it; readers take snapshots or look up a
    /// position.
    pub fn segments(&self) -> &SegmentSet {
        &self.segments
    }

    /// The per-stream index. Only the writer adds to it (before it publishes the head), and
    /// scavenging trims the versions it removed; everyone else only reads it.
    pub fn streams(&self) -> &StreamIndex {
        &self.streams
    }

    /// What subscribers wait on. The writer wakes it after publishing a head and
    /// [`Shared::poison`] wakes it; only the store closes it (when it closes, or at once when it
    /// opens read-only).
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// The persistent subscriptions held in this store: at most one holder per name. The
    /// subscription layer takes and releases names; closing the store closes it.
    pub fn subscriptions(&self) -> &Registry {
        &self.subscriptions
    }

    /// Taken (with `try_lock`) by a scavenge for its whole run, so that at most one runs at a
    /// time. It guards no data; nothing else may take it.
    pub fn scavenge_lock(&self) -> &Mutex<()> {
        &self.scavenging
    }

    /// Held while derived files (index files, the stream table) are written: by the indexer
    /// for each segment, and by a scavenge for its whole run, so the two never interleave.
    /// Taken after `scavenge_lock` when both are held; no other lock is taken under it but
    /// the segment set's and the stream index's, briefly.
    pub fn index_lock(&self) -> &Mutex<()> {
        &self.indexing
    }

    /// The background indexer: the writer queues sealed segments on it, the store starts and
    /// closes it.
    pub fn indexer(&self) -> &Indexer {
        &self.indexer
    }

    /// What the indexer has written and failed to write.
    pub fn indexer_counts(&self) -> &IndexerCounts {
        &self.indexer_counts
    }

    /// The group-commit counters: only the committer adds to them.
    pub fn commit_counters(&self) -> &CommitCounters {
        &self.commit_counters
    }

    /// Whether `streams.close.tbl` on disk is still the table the store was opened from.
    pub fn close_table_current(&self) -> bool {
        self.close_table_current.load(Ordering::Acquire)
    }

    /// Says whether `streams.close.tbl` on disk is the table the stream index stands on: set
    /// by the open that used it, cleared by anything that changes what it says (a scavenge).
    pub fn set_close_table_current(&self, current: bool) {
        self.close_table_current.store(current, Ordering::Release);
    }

    /// One past the last committed position.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Publishes a new head; the writer calls it after the segment and the indexes.
    pub fn set_head(&self, head: u64) {
        debug_assert!(head >= self.head.load(Ordering::Relaxed));
        self.head.store(head, Ordering::Release);
    }

    /// Records the first write or fsync failure.
    pub fn poison(&self, op: &'static str, error: io::Error) {
        let error = Arc::new(error);
        if self.poison.set((op, Arc::clone(&error))).is_ok() {
            crate::trace::poisoned(self.dir(), op, &error);
        }
        // Caught-up subscribers learn that nothing more will commit.
        self.notifier.wake();
    }

    /// The error every append gets once the store is poisoned.
    pub fn poisoned(&self) -> Option<Error> {
        self.poison.get().map(|(op, source)| Error::Poisoned { op, source: Arc::clone(source) })
    }
}
