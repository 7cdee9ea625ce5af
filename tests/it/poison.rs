//! A failed fsync, write or segment creation, or a panic of the writer thread, poisons the store:
//! that append and every later one fail, earlier events stay readable, and a reopen recovers
//! every acknowledged event.

use std::{
    io,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use annal::{
    AppendResult, Error, ExpectedVersion, Filter, NewEvent, Options, Position, Store, StreamAppend,
    StreamVersion,
    io::{Interpose, Interposed, ReadView, StorageFile},
};

use crate::common::{open, small_options};

/// Faults a test arms; each fires once, on the next matching call, and then clears itself.
#[derive(Default)]
struct Faults {
    sync_data: AtomicBool,
    write_at: AtomicBool,
    create: AtomicBool,
    /// Makes the next `write_at` panic, as a bug in the writer thread would.
    panic_on_write: AtomicBool,
}

/// Fails with an injected error if `armed` was set, clearing it.
fn fire(armed: &AtomicBool, call: &str) -> io::Result<()> {
    if armed.swap(false, Ordering::SeqCst) {
        return Err(io::Error::other(format!("injected {call} failure")));
    }
    Ok(())
}

/// The real file system, with the faults of a shared [`Faults`] injected into it.
struct FaultyStorage {
    faults: Arc<Faults>,
}

impl Interpose for FaultyStorage {
    fn before(&self, call: &'static str, _: &Path) -> io::Result<()> {
        match call {
            "create" => fire(&self.faults.create, "create"),
            _ => Ok(()),
        }
    }

    fn file(&self, _: &Path, file: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        Box::new(FaultyFile { file, faults: Arc::clone(&self.faults) })
    }
}

struct FaultyFile {
    file: Box<dyn StorageFile>,
    faults: Arc<Faults>,
}

impl StorageFile for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_at(offset, buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        if self.faults.panic_on_write.swap(false, Ordering::SeqCst) {
            panic!("injected writer panic");
        }
        fire(&self.faults.write_at, "write")?;
        self.file.write_at(offset, buf)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        fire(&self.faults.sync_data, "fsync")?;
        self.file.sync_data()
    }

    fn view(&self, len: u64) -> io::Result<Arc<dyn ReadView>> {
        self.file.view(len)
    }
}

/// `base` with its storage replaced by a faulty one driven by the returned faults.
fn faulty(base: Options) -> (Options, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let storage = Interposed(FaultyStorage { faults: Arc::clone(&faults) });
    let options = Options { storage: Arc::new(storage), ..base };
    (options, faults)
}

/// An acknowledged one-event append and what it carried.
struct Acked {
    stream: String,
    data: Vec<u8>,
    result: AppendResult,
}

fn append_one(store: &Store, stream: &str, n: u64) -> annal::Result<Acked> {
    let data = format!("{stream}-{n}").into_bytes();
    let e = NewEvent::new("Tested", data.clone());
    store.append(stream, ExpectedVersion::Any, [e]).map(|result| Acked {
        stream: stream.to_owned(),
        data,
        result,
    })
}

/// Three acknowledged appends over two streams.
fn acked_before_fault(store: &Store) -> Vec<Acked> {
    [("alpha", 0), ("beta", 1), ("alpha", 2)]
        .into_iter()
        .map(|(stream, n)| append_one(store, stream, n).unwrap())
        .collect()
}

fn assert_poisoned<T: std::fmt::Debug>(outcome: annal::Result<T>, op: &str) {
    match outcome {
        Err(Error::Poisoned { op: got, source }) => {
            assert_eq!(got, op);
            assert!(source.to_string().contains("injected"), "{source}");
        }
        other => panic!("expected a store poisoned by {op}, got {other:?}"),
    }
}

/// Every kind of append keeps failing with the first failure, although no fault is armed.
fn assert_stays_poisoned(store: &Store, op: &str) {
    assert_poisoned(append_one(store, "alpha", 100).map(|a| a.result), op);
    let fresh = NewEvent::new("Tested", b"fresh".to_vec());
    assert_poisoned(store.append("fresh", ExpectedVersion::NoStream, [fresh]), op);
    let parts = [
        StreamAppend::new("alpha", ExpectedVersion::Any, [NewEvent::new("T", vec![1])]),
        StreamAppend::new("beta", ExpectedVersion::Any, [NewEvent::new("T", vec![2])]),
    ];
    assert_poisoned(store.append_multi(parts), op);
}

/// Each acknowledged event reads back at its position, in `$all` and in its stream.
fn assert_acked_readable(store: &Store, acked: &[Acked]) {
    for a in acked {
        let r = a.result;
        let e = store
            .read_all_forward(r.first_position, 1)
            .next()
            .expect("acknowledged event in $all")
            .unwrap();
        assert_eq!(
            (e.position(), e.stream(), e.data()),
            (r.first_position, a.stream.as_str(), a.data.as_slice())
        );
        let e = store
            .read_stream_forward(&a.stream, r.first_version, 1)
            .unwrap()
            .next()
            .expect("acknowledged event in its stream")
            .unwrap();
        assert_eq!((e.position(), e.version()), (r.first_position, r.first_version));
    }
}

/// Reopens `dir` with the plain file system, checks the acknowledged events and that appends
/// work again, and returns the store.
fn reopen_recovers(dir: &Path, base: Options, acked: &[Acked]) -> Store {
    let store = open(dir, base);
    assert_acked_readable(&store, acked);
    let head = store.head();
    let after = append_one(&store, "alpha", 200).unwrap();
    assert_eq!(after.result.first_position, head);
    assert_acked_readable(&store, &[after]);
    store
}

#[test]
fn fsync_failure_poisons_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (options, faults) = faulty(Options::default());
    let store = open(dir.path(), options);
    let acked = acked_before_fault(&store);
    let head = store.head();

    faults.sync_data.store(true, Ordering::SeqCst);
    assert_poisoned(append_one(&store, "beta", 3).map(|a| a.result), "fsync");
    assert!(!faults.sync_data.load(Ordering::SeqCst), "the fault fired once");
    assert_stays_poisoned(&store, "fsync");
    assert_eq!(store.head(), head, "nothing after the failure was published");
    assert_acked_readable(&store, &acked);
    assert_eq!(store.read_all_forward(Position::START, usize::MAX).count(), 3);
    drop(store);

    let store = reopen_recovers(dir.path(), Options::default(), &acked);
    // The failed append's bytes reached the file before its fsync failed, so the reopened log
    // may hold it: an append answered Poisoned has an unknown outcome. It is whole if present.
    let all: Vec<_> =
        store.read_all_forward(Position::START, usize::MAX).map(Result::unwrap).collect();
    let failed: Vec<&[u8]> = all[3..all.len() - 1].iter().map(|e| e.data()).collect();
    assert!(
        failed.is_empty() || failed == [b"beta-3".as_slice()],
        "after the acknowledged events: {failed:?}"
    );
}

#[test]
fn write_failure_poisons_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (options, faults) = faulty(Options::default());
    let store = open(dir.path(), options);
    let acked = acked_before_fault(&store);
    let head = store.head();

    faults.write_at.store(true, Ordering::SeqCst);
    assert_poisoned(append_one(&store, "beta", 3).map(|a| a.result), "write");
    assert!(!faults.write_at.load(Ordering::SeqCst), "the fault fired once");
    assert_stays_poisoned(&store, "write");
    assert_eq!(store.head(), head);
    assert_acked_readable(&store, &acked);
    drop(store);

    let store = reopen_recovers(dir.path(), Options::default(), &acked);
    // The failed write never reached the file: the log is the acknowledged events plus the
    // one appended after the reopen.
    assert_eq!(store.head(), Position(head.get() + 1));
    assert_eq!(store.stream_version("beta"), Some(StreamVersion(0)));
}

#[test]
fn segment_create_failure_at_rotation_poisons_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (options, faults) = faulty(small_options());
    let store = open(dir.path(), options);
    faults.create.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    let mut failure = None;
    for n in 0..1000 {
        match append_one(&store, if n % 2 == 0 { "alpha" } else { "beta" }, n) {
            Ok(a) => acked.push(a),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    assert!(acked.len() > 10, "the first segment held {} appends", acked.len());
    assert_poisoned::<()>(Err(failure.expect("a rotation within 1000 appends")), "create segment");
    assert!(!faults.create.load(Ordering::SeqCst), "the fault fired once");
    assert_eq!(store.stats().segments, 1);
    assert_stays_poisoned(&store, "create segment");
    assert_eq!(store.head(), Position(acked.len() as u64));
    assert_acked_readable(&store, &acked);
    drop(store);

    let store = reopen_recovers(dir.path(), small_options(), &acked);
    assert_eq!(store.head(), Position(acked.len() as u64 + 1));
    for n in 0..acked.len() as u64 {
        append_one(&store, "gamma", n).unwrap();
    }
    assert!(store.stats().segments > 1, "rotation works after the reopen");
}

#[test]
fn writer_panic_poisons_the_store_and_ends_waiting_subscribers() {
    // Issue #12, item 6: when the writer thread panicked (a bug), the writer was simply gone.
    // Appenders got `Closed`, as if the store had been closed on purpose, and a caught-up
    // subscriber was never woken, so it waited forever. A panic now poisons the store like a
    // failed fsync: appends get `Poisoned` and subscribers end with it. The panic is injected
    // through the storage, the writer's one way out of its own code.
    let dir = tempfile::tempdir().unwrap();
    let (options, faults) = faulty(Options::default());
    let store = open(dir.path(), options);
    let acked = acked_before_fault(&store);
    let head = store.head();
    let mut all = store.subscribe_to_all(Position::END, Filter::all());
    let mut beta = store.subscribe_to_stream("beta", StreamVersion::END).unwrap();
    // Generous bounds that only a subscriber left hanging would reach: not timing asserts.
    let waiting = thread::spawn(move || {
        let wait = Duration::from_secs(60);
        (all.recv_timeout(wait).map(drop), beta.recv_timeout(wait).map(drop))
    });

    faults.panic_on_write.store(true, Ordering::SeqCst);
    assert_poisoned(append_one(&store, "beta", 3).map(|a| a.result), "writer thread");
    let (all_ended, beta_ended) = waiting.join().unwrap();
    assert_poisoned(all_ended, "writer thread");
    assert_poisoned(beta_ended, "writer thread");
    assert_stays_poisoned(&store, "writer thread");
    assert_eq!(store.head(), head, "nothing after the panic was published");
    assert_acked_readable(&store, &acked);
    drop(store);

    let store = reopen_recovers(dir.path(), Options::default(), &acked);
    assert_eq!(store.head(), Position(head.get() + 1), "the panic came before the write");
}

#[test]
fn fsync_failure_ends_waiting_async_streams_with_poisoned() {
    // The async twin of the test above: a poisoned store moves no head, so the helper's sweep
    // must wake every waiting stream (stream subscribers included, whose stream no published
    // event touched), and each must end with the poison.
    use std::task::{Context, Poll, Wake, Waker};

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    fn poll<S: futures_core::Stream + Unpin>(s: &mut S, w: &Waker) -> Poll<Option<S::Item>> {
        std::pin::Pin::new(s).poll_next(&mut Context::from_waker(w))
    }

    let dir = tempfile::tempdir().unwrap();
    let (options, faults) = faulty(Options::default());
    let store = open(dir.path(), options);
    acked_before_fault(&store);
    let mut all = store.subscribe_to_all(Position::END, Filter::all()).into_stream();
    let mut beta = store.subscribe_to_stream("beta", StreamVersion::END).unwrap().into_stream();
    let flags = [Arc::new(Flag(AtomicBool::new(false))), Arc::new(Flag(AtomicBool::new(false)))];
    let wakers = flags.clone().map(Waker::from);
    assert!(poll(&mut all, &wakers[0]).is_pending());
    assert!(poll(&mut beta, &wakers[1]).is_pending());

    faults.sync_data.store(true, Ordering::SeqCst);
    assert_poisoned(append_one(&store, "beta", 3).map(|a| a.result), "fsync");
    // Waits without a bound: a stream left unwoken hangs the test.
    while !flags.iter().all(|f| f.0.load(Ordering::SeqCst)) {
        thread::sleep(Duration::from_millis(1));
    }
    for (stream, waker) in [(&mut all, &wakers[0]), (&mut beta, &wakers[1])] {
        match poll(stream, waker) {
            Poll::Ready(Some(outcome)) => assert_poisoned(outcome, "fsync"),
            other => panic!("expected the poison, got {other:?}"),
        }
        assert!(matches!(poll(stream, waker), Poll::Ready(None)), "then it ends");
    }
    assert_eq!(store.subscribers_waiting(), 0);
}
