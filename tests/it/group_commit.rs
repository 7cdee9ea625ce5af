//! Group commit under load (issue #14): on the simulated disk, with every sync slowed so that
//! appends pile up behind it as on a real disk and groups hold several callers, many threads
//! append with exact expected versions while a reader watches the head; then a group's sync
//! fails, or the power is cut, in the middle of the run. Nothing after a failed sync may be
//! acknowledged or seen, and nothing acknowledged may be lost.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use annal::{Error, ExpectedVersion, NewEvent, Options, Position, Store, io::SimDisk};
use uuid::Uuid;

use crate::sim_model::{Attempted, Model, dir, options, reopen_and_check};

const THREADS: usize = 8;
const APPENDS_PER_THREAD: usize = 30;
const SYNC_DELAY: Duration = Duration::from_micros(500);

/// What one appending thread saw: each append's events (id, data) and its outcome.
type Outcomes = Vec<(Vec<(Uuid, Vec<u8>)>, Result<annal::AppendResult, Error>)>;

/// Appends from `THREADS` threads, each to its own stream with exact expected versions, while
/// a reader reads `$all` up to the head it sees; stops a thread at its first error. Returns
/// each thread's outcomes and the highest head the reader saw.
fn hammer(store: &Store) -> (Vec<(String, Outcomes)>, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let reader = {
        let (store, stop, seen) = (store.clone(), Arc::clone(&stop), Arc::clone(&seen));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let head = store.head().get();
                let mut read = 0u64;
                for event in store.read_all_forward(Position::START, usize::MAX) {
                    event.expect("a published event reads");
                    read += 1;
                }
                assert!(read >= head, "the reader saw head {head} but read only {read} events");
                seen.fetch_max(read, Ordering::AcqRel);
            }
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let stream = format!("p-{t}");
                let mut outcomes = Outcomes::new();
                let mut expected = ExpectedVersion::NoStream;
                for n in 0..APPENDS_PER_THREAD {
                    let events: Vec<_> = (0..1 + (n + t) % 3)
                        .map(|i| (Uuid::new_v4(), vec![(t * 31 + n + i) as u8; 20 + n]))
                        .collect();
                    let new =
                        events.iter().map(|(id, d)| NewEvent::new("P", d.clone()).with_id(*id));
                    let outcome = store.append(&stream, expected, new);
                    let failed = outcome.is_err();
                    if let Ok(r) = &outcome {
                        expected = ExpectedVersion::Exact(r.last_version.get());
                    }
                    outcomes.push((events, outcome));
                    if failed {
                        break;
                    }
                }
                (stream, outcomes)
            })
        })
        .collect();
    let outcomes = writers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, Ordering::Release);
    reader.join().unwrap();
    (outcomes, seen.load(Ordering::Acquire))
}

/// The model of what was attempted and acknowledged, for `sim_model::check`.
fn model_of(outcomes: &[(String, Outcomes)]) -> Model {
    let mut model = Model::default();
    for (stream, appends) in outcomes {
        for (events, outcome) in appends {
            let append = model.append_sizes.len();
            model.append_sizes.push(events.len());
            for (i, (id, data)) in events.iter().enumerate() {
                let attempt = Attempted { stream: stream.clone(), data: data.clone(), append };
                model.attempted.insert(*id, attempt);
                if let Ok(r) = outcome {
                    let (position, version) = (r.first_position.get(), r.first_version.get());
                    let at = i as u64;
                    model.acked.push((position + at, stream.clone(), version + at, *id));
                }
            }
        }
    }
    model
}

#[test]
fn group_commit_failed_sync_under_load_acknowledges_nothing_after_it() {
    for failing_sync in [3, 8, 15] {
        let disk = SimDisk::new();
        disk.set_sync_delay(SYNC_DELAY);
        // One segment for the whole run: every sync is then a group's (no segment header's,
        // no index file's, whose failure poisons nothing).
        let options = Options { segment_bytes_max: 1 << 20, ..options(&disk) };
        let store = Store::open_with(dir(), options).unwrap();
        disk.fail_sync(failing_sync);
        let (outcomes, seen) = hammer(&store);
        let model = model_of(&outcomes);
        let acked = model.acked.len() as u64;
        let mut poisoned = 0;
        for (stream, appends) in &outcomes {
            // Each thread stops at its first error, which must be the poison.
            for (_, outcome) in appends.iter().filter(|(_, o)| o.is_err()) {
                assert!(matches!(outcome, Err(Error::Poisoned { .. })), "{stream}: {outcome:?}");
                poisoned += 1;
            }
        }
        assert!(acked > 0 && poisoned == THREADS, "sync {failing_sync}: {acked} acked");
        // Groups commit whole and in order, and none after the failed one: the acknowledged
        // events are exactly the log's first positions, and the store shows nothing more.
        let mut positions: Vec<u64> = model.acked.iter().map(|a| a.0).collect();
        positions.sort_unstable();
        assert_eq!(positions, (0..acked).collect::<Vec<_>>(), "sync {failing_sync}");
        assert_eq!(store.head(), Position(acked), "sync {failing_sync}: head past the failure");
        assert!(seen <= acked, "sync {failing_sync}: a reader saw {seen} events, {acked} acked");
        let later = store.append("later", ExpectedVersion::Any, [NewEvent::new("P", vec![1])]);
        assert!(matches!(later, Err(Error::Poisoned { .. })), "{later:?}");
        drop(store);
        // Every acknowledged append is durable, whatever the crash keeps of the rest.
        for variant in 0..4 {
            let crashed = disk.crash(variant);
            if let Err(e) = reopen_and_check(&crashed, &model) {
                panic!("sync {failing_sync}, crash variant {variant}: {e}");
            }
        }
    }
}

#[test]
fn group_commit_power_cut_under_load_keeps_every_acknowledged_append() {
    let probe = SimDisk::new();
    probe.set_sync_delay(SYNC_DELAY);
    let opened = {
        let _store = Store::open_with(dir(), options(&probe)).unwrap();
        probe.ops()
    };
    // Cut points spread over the workload (which does ~2 operations per group, and rotates
    // 2 KiB segments); the order of operations differs from run to run.
    let (mut inline, mut appends) = (0, 0);
    for cut in (opened..opened + 120).step_by(7) {
        let disk = SimDisk::new();
        disk.set_sync_delay(SYNC_DELAY);
        disk.fail_at(cut, io::ErrorKind::Other, true);
        let Ok(store) = Store::open_with(dir(), options(&disk)) else { continue };
        let (outcomes, seen) = hammer(&store);
        inline += store.stats().inline_commits;
        appends += outcomes.iter().map(|(_, appends)| appends.len() as u64).sum::<u64>();
        let model = model_of(&outcomes);
        let acked = model.acked.len() as u64;
        assert!(seen <= acked, "cut at {cut}: a reader saw {seen} events, {acked} acked");
        drop(store);
        for variant in 0..4 {
            if let Err(e) = reopen_and_check(&disk.crash(variant), &model) {
                panic!("cut at {cut}, crash variant {variant}: {e}");
            }
        }
    }
    // The cuts fell among inline commits (a thread finding the writer idle) and queued groups
    // alike.
    assert!(inline > 0 && inline < appends, "{inline} of {appends} appends committed inline");
}

#[test]
fn group_commit_inline_commit_whose_sync_fails_acknowledges_nothing_after_it() {
    let disk = SimDisk::new();
    let options = Options { segment_bytes_max: 1 << 20, ..options(&disk) };
    let store = Store::open_with(dir(), options).unwrap();
    let mut model = Model::default();
    let append = |model: &mut Model, n: usize| {
        let (id, data) = (Uuid::new_v4(), vec![n as u8; 12]);
        let attempt = Attempted { stream: "s".into(), data: data.clone(), append: n };
        model.attempted.insert(id, attempt);
        model.append_sizes.push(1);
        let outcome =
            store.append("s", ExpectedVersion::Any, [NewEvent::new("P", data).with_id(id)]);
        if let Ok(r) = &outcome {
            model.acked.push((r.first_position.get(), "s".into(), r.first_version.get(), id));
        }
        outcome
    };
    for n in 0..5 {
        append(&mut model, n).unwrap();
    }
    // One thread and an idle writer: every append committed itself.
    assert_eq!(store.stats().inline_commits, 5);
    disk.fail_sync(0);
    let failed = append(&mut model, 5);
    assert!(matches!(failed, Err(Error::Poisoned { .. })), "{failed:?}");
    assert_eq!(store.stats().inline_commits, 6, "the failed append was committed inline");
    assert_eq!(store.head(), Position(5), "nothing of the failed commit is published");
    assert_eq!(store.read_all_forward(Position::START, usize::MAX).count(), 5);
    let later = append(&mut model, 6);
    assert!(matches!(later, Err(Error::Poisoned { .. })), "{later:?}");
    drop(store);
    for variant in 0..4 {
        if let Err(e) = reopen_and_check(&disk.crash(variant), &model) {
            panic!("crash variant {variant}: {e}");
        }
    }
}

/// Runs `future` to completion on this thread, parking between polls: the smallest executor,
/// enough to show that an append future needs no particular runtime.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn group_commit_append_futures_resolve_in_log_order_once_durable() {
    let disk = SimDisk::new();
    disk.set_sync_delay(SYNC_DELAY);
    let options = Options { segment_bytes_max: 1 << 20, ..options(&disk) };
    let store = Store::open_with(dir(), options).unwrap();
    // All queued before any is awaited, so that they share groups; one thread, one stream.
    let ids: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let futures: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let event = NewEvent::new("P", vec![n as u8; 16]).with_id(*id);
            store.append_async("s", ExpectedVersion::Any, [event])
        })
        .collect();
    let mut model = Model::default();
    for (n, (future, id)) in futures.into_iter().zip(&ids).enumerate() {
        let result = block_on(future).unwrap();
        assert_eq!((result.first_position.get(), result.first_version.get()), (n as u64, n as u64));
        // Resolved means published: a reader sees it.
        assert!(store.head().get() > n as u64);
        let data = vec![n as u8; 16];
        model.attempted.insert(*id, Attempted { stream: "s".into(), data, append: n });
        model.append_sizes.push(1);
        model.acked.push((n as u64, "s".into(), n as u64, *id));
    }
    drop(store);
    for variant in 0..4 {
        if let Err(e) = reopen_and_check(&disk.crash(variant), &model) {
            panic!("crash variant {variant}: {e}");
        }
    }
}

#[test]
fn group_commit_dropped_append_future_may_commit_and_a_retry_tells() {
    let disk = SimDisk::new();
    disk.set_sync_delay(Duration::from_millis(5));
    let store = Store::open_with(dir(), options(&disk)).unwrap();
    let id = Uuid::new_v4();
    let event = || NewEvent::new("P", vec![7; 8]).with_id(id);
    drop(store.append_async("s", ExpectedVersion::NoStream, [event()]));
    // Whether or not the dropped append has committed by now, the retry with the same id is
    // answered with its one outcome: the event at position 0, once.
    let retry = store.append("s", ExpectedVersion::NoStream, [event()]).unwrap();
    assert_eq!(retry.first_position, Position(0));
    assert_eq!(store.head(), Position(1));
}

#[test]
fn group_commit_append_futures_of_a_failed_sync_resolve_poisoned() {
    let disk = SimDisk::new();
    disk.set_sync_delay(SYNC_DELAY);
    let options = Options { segment_bytes_max: 1 << 20, ..options(&disk) };
    let store = Store::open_with(dir(), options).unwrap();
    store.append("s", ExpectedVersion::Any, [NewEvent::new("P", vec![1])]).unwrap();
    disk.fail_sync(0);
    let futures: Vec<_> = (0..8)
        .map(|n| {
            store.append_async(
                &format!("f-{n}"),
                ExpectedVersion::Any,
                [NewEvent::new("P", vec![2])],
            )
        })
        .collect();
    for future in futures {
        let outcome = block_on(future);
        assert!(matches!(outcome, Err(Error::Poisoned { .. })), "{outcome:?}");
    }
    assert_eq!(store.head(), Position(1), "nothing of the failed group is published");
}
