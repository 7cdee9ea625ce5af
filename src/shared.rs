//! The state the writer publishes and readers consult: segments, indexes, the committed head
//! and the poison flag; and what subscribers wait on.

use std::{
    io,
    path::PathBuf,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{
    error::Error,
    index::StreamIndex,
    options::Options,
    segment::SegmentSet,
    subscription::{Notifier, Registry},
};

/// Shared between the writer thread and every reader.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub options: Options,
    pub segments: SegmentSet,
    pub streams: StreamIndex,
    /// One past the last committed position: everything below it is durable and indexed.
    head: AtomicU64,
    /// The first failed write or fsync; once set the store accepts no more appends.
    poison: OnceLock<(&'static str, Arc<io::Error>)>,
    /// Woken when the head moves, the store is poisoned, or it closes.
    pub notifier: Notifier,
    /// The persistent subscriptions held in this store.
    pub subscriptions: Registry,
    /// Held by the one scavenge that may run at a time.
    pub scavenging: Mutex<()>,
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
        }
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
        let _ = self.poison.set((op, Arc::new(error)));
        // Caught-up subscribers learn that nothing more will commit.
        self.notifier.wake();
    }

    /// The error every append gets once the store is poisoned.
    pub fn poisoned(&self) -> Option<Error> {
        self.poison.get().map(|(op, source)| Error::Poisoned { op, source: Arc::clone(source) })
    }
}
