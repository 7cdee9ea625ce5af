//! The repository's async forms on a current-thread executor: many commands on one aggregate
//! apply one after another in arrival order with no lost update; transfers in opposite
//! directions on one thread neither deadlock nor lose money; blocking and async commands
//! on one aggregate take turns; a command dropped while it waits, or while its append is in
//! flight, releases the aggregate and leaves the state following the log; errors are the
//! blocking form's.

use std::{
    future::{Future, poll_fn},
    pin::{Pin, pin},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    task::{Context, Poll, Wake, Waker},
    thread,
};

use annal::{
    Options, Store, StreamVersion,
    es::{Error, Outcome, Repository, RepositoryOptions},
    io::Interposed,
};
use tokio::runtime::{Builder, Runtime};

use crate::{
    es_model::{Account, AccountEvent, Command, Hook, Rejected, store},
    sync_gate::{OpenOnDrop, SyncGate},
};

fn runtime() -> Runtime {
    Builder::new_current_thread().build().expect("current-thread runtime")
}

fn repo(store: &Store, options: RepositoryOptions) -> Arc<Repository<Account>> {
    Arc::new(Repository::new(store, options).unwrap())
}

/// Counts its wake-ups.
#[derive(Default)]
struct Woken(AtomicUsize);

impl Woken {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `future` once with a waker that counts into `woken`.
fn poll_once<F: Future>(future: Pin<&mut F>, woken: &Arc<Woken>) -> Poll<F::Output> {
    let waker = Waker::from(Arc::clone(woken));
    future.poll(&mut Context::from_waker(&waker))
}

/// Runs every future to completion on one task. The first poll goes in index order, which is
/// the order they reach an aggregate's queue; every later poll goes in reverse, so that only
/// the queue's own order can keep them running in index order.
async fn join_arrived_in_order<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut first = true;
    poll_fn(|cx| {
        let mut both: Vec<_> = futures.iter_mut().zip(outputs.iter_mut()).collect();
        if !std::mem::take(&mut first) {
            both.reverse();
        }
        for (future, output) in both {
            if output.is_none()
                && let Poll::Ready(done) = future.as_mut().poll(cx)
            {
                *output = Some(done);
            }
        }
        match outputs.iter().all(Option::is_some) {
            true => Poll::Ready(outputs.iter_mut().map(|o| o.take().expect("done")).collect()),
            false => Poll::Pending,
        }
    })
    .await
}

/// The events of `id`'s stream, decoded.
fn events(repo: &Repository<Account>, id: &str) -> Vec<AccountEvent> {
    let stream = format!("account-{id}");
    let read = repo.store().read_stream_forward(&stream, StreamVersion(0), usize::MAX).unwrap();
    read.map(|e| repo.codec().decode(&e.unwrap()).unwrap()).collect()
}

fn deposits(repo: &Repository<Account>, id: &str) -> Vec<u64> {
    let deposit = |e| match e {
        AccountEvent::Deposited { amount } => Some(amount),
        _ => None,
    };
    events(repo, id).into_iter().filter_map(deposit).collect()
}

/// `id`'s state as the repository holds it, and as a repository that never saw it rebuilds it
/// from the log.
fn cached_and_rebuilt(repo: &Repository<Account>, id: &str) -> (Account, Account) {
    let fresh = Repository::<Account>::new(repo.store(), RepositoryOptions::default()).unwrap();
    (repo.read(id, |a, _| a.clone()).unwrap(), fresh.read(id, |a, _| a.clone()).unwrap())
}

/// A hook that says it is running, then waits until it is let go.
fn gate_hook() -> (Hook, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let (entered_tx, release_rx) = (Mutex::new(entered_tx), Mutex::new(release_rx));
    let hook: Hook = Arc::new(move || {
        entered_tx.lock().unwrap().send(()).unwrap();
        release_rx.lock().unwrap().recv().unwrap();
    });
    (hook, entered, release)
}

/// A blocking command on `id` that holds it until the returned sender is used.
fn hold_on_a_thread(
    repo: &Arc<Repository<Account>>,
    id: &'static str,
    amount: u64,
) -> (thread::JoinHandle<Outcome>, mpsc::Sender<()>) {
    let (hook, entered, release) = gate_hook();
    let holder = Arc::clone(repo);
    let thread = thread::spawn(move || holder.execute(id, &Command::Hooked(amount, hook)).unwrap());
    entered.recv().unwrap();
    (thread, release)
}

#[test]
fn es_async_commands_on_one_aggregate_apply_in_arrival_order_without_a_lost_update() {
    const COMMANDS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions::default());
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    let commands: Vec<Command> = (1..=COMMANDS).map(Command::Deposit).collect();
    let futures = commands.iter().map(|c| accounts.execute_async("a1", c)).collect();
    let outcomes = runtime().block_on(join_arrived_in_order(futures));
    for (n, outcome) in (1..=COMMANDS).zip(outcomes) {
        let outcome = outcome.unwrap();
        assert_eq!(outcome.versions, [Some(StreamVersion(n))], "command {n}");
        assert_eq!(outcome.attempts, 1, "serialized commands never conflict");
    }
    assert_eq!(deposits(&accounts, "a1"), (1..=COMMANDS).collect::<Vec<_>>());
    let (cached, rebuilt) = cached_and_rebuilt(&accounts, "a1");
    assert_eq!(cached.balance, COMMANDS * (COMMANDS + 1) / 2);
    assert_eq!(cached, rebuilt);
    let stats = accounts.stats();
    assert_eq!((stats.retries, stats.waiting, stats.rehydrations), (0, 0, 1));
}

#[test]
fn es_async_transfers_in_opposite_directions_on_one_thread_neither_deadlock_nor_lose_money() {
    const TRANSFERS: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions::default());
    for (id, owner) in [("a", "ann"), ("b", "bob")] {
        accounts.execute(id, &Command::Open(owner.into())).unwrap();
        accounts.execute(id, &Command::Deposit(1_000)).unwrap();
    }
    // Even transfers go a → b, odd ones b → a; each marks both accounts at once.
    let legs: Vec<[(&str, Command); 2]> = (0..TRANSFERS)
        .map(|n| {
            let (from, to) = if n % 2 == 0 { ("a", "b") } else { ("b", "a") };
            [(from, Command::Withdraw(n + 1)), (to, Command::Deposit(n + 1))]
        })
        .collect();
    let pairs: Vec<[(&str, &Command); 2]> =
        legs.iter().map(|[(f, w), (t, d)]| [(*f, w), (*t, d)]).collect();
    let futures = pairs.iter().map(|pair| accounts.execute_all_async(pair)).collect();
    let outcomes = runtime().block_on(join_arrived_in_order(futures));
    for outcome in outcomes {
        assert_eq!(outcome.unwrap().attempts, 1);
    }
    // a → b moved 1 + 3 + … + 99 = 2,500; b → a moved 2 + 4 + … + 100 = 2,550.
    let balance = |id| accounts.read(id, |acc, _| acc.balance).unwrap();
    assert_eq!((balance("a"), balance("b")), (1_050, 950));
    for id in ["a", "b"] {
        let (cached, rebuilt) = cached_and_rebuilt(&accounts, id);
        assert_eq!(cached, rebuilt);
    }
}

#[test]
fn es_async_command_waits_behind_a_blocking_one_on_the_same_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions::default());
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    let (holder, release) = hold_on_a_thread(&accounts, "a1", 10);
    let deposit = Command::Deposit(1);
    let mut waiting = pin!(accounts.execute_async("a1", &deposit));
    let woken = Arc::new(Woken::default());
    assert!(poll_once(waiting.as_mut(), &woken).is_pending());
    assert_eq!(accounts.stats().waiting, 1);
    release.send(()).unwrap();
    let first = holder.join().unwrap();
    assert_eq!(woken.count(), 1, "the blocking command's end wakes the task");
    let second = runtime().block_on(waiting).unwrap();
    assert_eq!((first.versions, first.attempts), (vec![Some(StreamVersion(1))], 1));
    assert_eq!((second.versions, second.attempts), (vec![Some(StreamVersion(2))], 1));
    assert_eq!(deposits(&accounts, "a1"), [10, 1]);
    let (cached, rebuilt) = cached_and_rebuilt(&accounts, "a1");
    assert_eq!((cached.balance, &cached), (11, &rebuilt));
}

#[test]
fn es_async_blocking_command_waits_behind_an_async_one_on_the_same_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions::default());
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    // While the async command holds the aggregate (inside its `handle`), a blocking command on
    // another thread comes and must wait.
    let blocked = Arc::new(Mutex::new(None));
    let (slot, other, fired) =
        (Arc::clone(&blocked), Arc::clone(&accounts), AtomicBool::new(false));
    let hook: Hook = Arc::new(move || {
        if fired.swap(true, Ordering::SeqCst) {
            return;
        }
        let repo = Arc::clone(&other);
        let thread = thread::spawn(move || repo.execute("a1", &Command::Deposit(3)).unwrap());
        while other.stats().waiting == 0 {
            thread::yield_now();
        }
        *slot.lock().unwrap() = Some(thread);
    });
    let first = runtime().block_on(accounts.execute_async("a1", &Command::Hooked(5, hook)));
    let first = first.unwrap();
    let second = blocked.lock().unwrap().take().expect("the hook ran").join().unwrap();
    assert_eq!((first.versions, first.attempts), (vec![Some(StreamVersion(1))], 1));
    assert_eq!((second.versions, second.attempts), (vec![Some(StreamVersion(2))], 1));
    assert_eq!(deposits(&accounts, "a1"), [5, 3]);
    let (cached, rebuilt) = cached_and_rebuilt(&accounts, "a1");
    assert_eq!((cached.balance, &cached), (8, &rebuilt));
}

#[test]
fn es_async_command_dropped_while_waiting_passes_its_turn_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions::default());
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    let (holder, release) = hold_on_a_thread(&accounts, "a1", 10);
    let (one, two) = (Command::Deposit(1), Command::Deposit(2));
    let mut first = Box::pin(accounts.execute_async("a1", &one));
    let mut second = pin!(accounts.execute_async("a1", &two));
    let (woken1, woken2) = (Arc::new(Woken::default()), Arc::new(Woken::default()));
    assert!(poll_once(first.as_mut(), &woken1).is_pending());
    assert!(poll_once(second.as_mut(), &woken2).is_pending());
    assert_eq!(accounts.stats().waiting, 2);
    release.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!((woken1.count(), woken2.count()), (1, 0), "only the first in line is woken");
    // Its turn came, but it is dropped before it takes it: the next in line must be woken.
    drop(first);
    assert_eq!(woken2.count(), 1);
    let outcome = runtime().block_on(second).unwrap();
    assert_eq!((outcome.versions, outcome.attempts), (vec![Some(StreamVersion(2))], 1));
    assert_eq!(deposits(&accounts, "a1"), [10, 2]);
    let (cached, rebuilt) = cached_and_rebuilt(&accounts, "a1");
    assert_eq!((cached.balance, &cached), (12, &rebuilt));
    assert_eq!(accounts.stats().waiting, 0);
}

#[test]
fn es_async_command_dropped_during_its_append_releases_the_aggregate_and_the_state_follows_the_log()
{
    let dir = tempfile::tempdir().unwrap();
    let gate = SyncGate::default();
    let options = Options { storage: Arc::new(Interposed(gate.clone())), ..Options::default() };
    let store = Store::open_with(dir.path(), options).unwrap();
    let _open = OpenOnDrop(gate.clone());
    let options = RepositoryOptions { snapshot_every: 0, ..Default::default() };
    let accounts = repo(&store, options);
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    gate.set_shut(true);
    // Its append is queued and cannot be acknowledged while the writer waits at the gate.
    let five = Command::Deposit(5);
    let mut dropped = Box::pin(accounts.execute_async("a1", &five));
    assert!(poll_once(dropped.as_mut(), &Arc::default()).is_pending());
    drop(dropped);
    assert_eq!(accounts.stats().cached, 0, "a state whose append is in flight is not kept");
    // The aggregate is free: the next command loads it (the dropped append not yet in the log)
    // and queues its own append.
    let seven = Command::Deposit(7);
    let mut next = pin!(accounts.execute_async("a1", &seven));
    assert!(poll_once(next.as_mut(), &Arc::default()).is_pending());
    assert_eq!(accounts.stats().waiting, 0, "past the aggregate's queue");
    assert_eq!(accounts.stats().rehydrations, 2);
    gate.set_shut(false);
    // The dropped append commits first; the next command's expected version then fails, and
    // a retry applies it on top. The refusal reaches it only once the dropped append is
    // readable, so one retry is enough.
    let outcome = runtime().block_on(next).unwrap();
    assert_eq!(outcome.versions, [Some(StreamVersion(2))]);
    assert_eq!(outcome.attempts, 2, "it loaded before the dropped append committed");
    assert_eq!(deposits(&accounts, "a1"), [5, 7]);
    let (cached, rebuilt) = cached_and_rebuilt(&accounts, "a1");
    assert_eq!((cached.balance, &cached), (12, &rebuilt));
}

#[test]
fn es_async_errors_are_the_blocking_forms() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let options = RepositoryOptions { max_retries: 1, ..Default::default() };
    let (accounts, theirs) = (repo(&store, options), repo(&store, RepositoryOptions::default()));
    let rt = runtime();
    let both = |id: &str, command: &Command| {
        let blocking = accounts.execute(id, command);
        let async_form = rt.block_on(accounts.execute_async(id, command));
        (blocking, async_form)
    };
    let head = store.head();
    let (blocking, async_form) = both("a1", &Command::Deposit(5));
    assert!(matches!(blocking, Err(Error::Domain(Rejected::NotOpen))), "{blocking:?}");
    assert!(matches!(async_form, Err(Error::Domain(Rejected::NotOpen))), "{async_form:?}");
    let (blocking, async_form) = both("no/slash", &Command::Deposit(5));
    assert!(matches!(blocking, Err(Error::InvalidName { .. })), "{blocking:?}");
    assert!(matches!(async_form, Err(Error::InvalidName { .. })), "{async_form:?}");
    let twice = [("a1", &Command::Deposit(1)), ("a1", &Command::Deposit(2))];
    let duplicate = rt.block_on(accounts.execute_all_async(&twice));
    let duplicate_stream = |e: &annal::Error| matches!(e, annal::Error::DuplicateStream { .. });
    assert!(matches!(&duplicate, Err(Error::Store(e)) if duplicate_stream(e)), "{duplicate:?}");
    assert_eq!(store.head(), head, "nothing written");
    // Another writer appends between every load and append: both forms give up after
    // `max_retries + 1` attempts.
    accounts.execute("a2", &Command::Open("bob".into())).unwrap();
    let other = Arc::clone(&theirs);
    let hook: Hook = Arc::new(move || drop(other.execute("a2", &Command::Deposit(1)).unwrap()));
    let (blocking, async_form) = both("a2", &Command::Hooked(100, hook));
    for outcome in [blocking, async_form] {
        match outcome {
            Err(Error::Conflict { stream, attempts: 2 }) => assert_eq!(stream, "account-a2"),
            other => panic!("expected a conflict after 2 attempts, got {other:?}"),
        }
    }
    assert_eq!(deposits(&accounts, "a2"), [1, 1, 1, 1]);
    store.close();
    let (blocking, async_form) = both("a2", &Command::Deposit(1));
    assert!(matches!(blocking, Err(Error::Store(annal::Error::Closed))), "{blocking:?}");
    assert!(matches!(async_form, Err(Error::Store(annal::Error::Closed))), "{async_form:?}");
    let read = rt.block_on(accounts.read_async("a2", |a, v| (a.balance, v))).unwrap();
    assert_eq!(read, (4, Some(StreamVersion(4))), "reads still work");
}

#[test]
fn es_async_commands_run_on_a_spawned_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions::default());
    let repo = Arc::clone(&accounts);
    // `spawn` needs the futures to be `Send + 'static`: this does not compile otherwise.
    let rt = runtime();
    let task = rt.spawn(async move {
        repo.execute_async("a1", &Command::Open("ann".into())).await?;
        repo.execute_async("a1", &Command::Deposit(4)).await
    });
    let outcome = rt.block_on(task).unwrap().unwrap();
    assert_eq!(outcome.versions, [Some(StreamVersion(1))]);
    assert_eq!(accounts.read("a1", |a, _| a.balance).unwrap(), 4);
}
