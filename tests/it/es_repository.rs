//! The repository: commands, rejections, conflicts and retries, concurrency, the cache bound,
//! passivation, atomic commands over several aggregates, and time travel.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use annal::{
    Position, StreamVersion,
    es::{At, Error, Repository, RepositoryOptions},
};

use crate::es_model::{Account, Command, Rejected, store};

fn repo(store: &annal::Store, options: RepositoryOptions) -> Repository<Account> {
    Repository::new(store, options).unwrap()
}

fn balance(repo: &Repository<Account>, id: &str) -> u64 {
    repo.read(id, |a, _| a.balance).unwrap()
}

#[test]
fn repository_commands_record_events_and_a_new_repository_rehydrates_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions::default());
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    accounts.execute("a1", &Command::Deposit(50)).unwrap();
    let outcome = accounts.execute("a1", &Command::Withdraw(20)).unwrap();
    assert_eq!(outcome.versions, [Some(StreamVersion(2))]);
    assert_eq!((outcome.events, outcome.attempts), (1, 1));
    assert_eq!(outcome.last_position, Some(Position(2)));
    assert_eq!(store.stream_version("account-a1"), Some(StreamVersion(2)));
    let fresh = repo(&store, RepositoryOptions::default());
    let state = fresh.read("a1", |a, v| (a.clone(), v)).unwrap();
    let expected = Account { open: true, owner: "ann".into(), balance: 30, events: 3 };
    assert_eq!(state, (expected, Some(StreamVersion(2))));
    assert_eq!(fresh.stats().rehydrations, 1);
}

#[test]
fn repository_domain_rejection_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions::default());
    let not_open = accounts.execute("a1", &Command::Deposit(5));
    assert!(matches!(not_open, Err(Error::Domain(Rejected::NotOpen))));
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    accounts.execute("a1", &Command::Deposit(5)).unwrap();
    let head = store.head();
    let overdraft = accounts.execute("a1", &Command::Withdraw(6));
    assert!(matches!(overdraft, Err(Error::Domain(Rejected::Overdraft { balance: 5, asked: 6 }))));
    assert_eq!(store.head(), head);
    assert_eq!(balance(&accounts, "a1"), 5);
}

#[test]
fn repository_conflict_reloads_and_retries_with_the_other_writers_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (mine, theirs) =
        (repo(&store, Default::default()), Arc::new(repo(&store, Default::default())));
    mine.execute("a1", &Command::Open("ann".into())).unwrap();
    // Between our load and our append, another repository deposits 5 (once).
    let fired = Arc::new(AtomicBool::new(false));
    let other = Arc::clone(&theirs);
    let flag = Arc::clone(&fired);
    let hook = Arc::new(move || {
        if !flag.swap(true, Ordering::SeqCst) {
            other.execute("a1", &Command::Deposit(5)).unwrap();
        }
    });
    let outcome = mine.execute("a1", &Command::Hooked(10, hook)).unwrap();
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.versions, [Some(StreamVersion(2))]);
    assert_eq!(mine.stats().retries, 1);
    assert_eq!(balance(&mine, "a1"), 15);
    assert_eq!(balance(&theirs, "a1"), 15);
}

#[test]
fn repository_gives_up_with_a_typed_conflict_after_its_retries() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let options = RepositoryOptions { max_retries: 2, ..Default::default() };
    let (mine, theirs) = (repo(&store, options), Arc::new(repo(&store, Default::default())));
    mine.execute("a1", &Command::Open("ann".into())).unwrap();
    let other = Arc::clone(&theirs);
    let hook = Arc::new(move || {
        other.execute("a1", &Command::Deposit(1)).unwrap();
    });
    match mine.execute("a1", &Command::Hooked(100, hook)) {
        Err(Error::Conflict { stream, attempts: 3 }) => assert_eq!(stream, "account-a1"),
        other => panic!("expected a conflict after 3 attempts, got {other:?}"),
    }
    // Only the other writer's three deposits were recorded.
    assert_eq!(balance(&theirs, "a1"), 3);
    assert_eq!(store.stream_version("account-a1"), Some(StreamVersion(3)));
}

#[test]
fn repository_parallel_commands_give_the_exact_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // Two repositories racing on one aggregate may lose many rounds in a row: retry enough.
    let options = RepositoryOptions { max_retries: 1000, ..Default::default() };
    let (one, two) = (repo(&store, options.clone()), repo(&store, options));
    for id in (0..32).map(|i| format!("d{i}")).chain(["shared".to_owned()]) {
        one.execute(&id, &Command::Open(id.clone())).unwrap();
    }
    std::thread::scope(|s| {
        for i in 0..32 {
            let one = &one;
            s.spawn(move || {
                (0..20).for_each(|_| {
                    drop(one.execute(&format!("d{i}"), &Command::Deposit(1)).unwrap())
                })
            });
        }
        // Eight threads on one aggregate, through two repositories (so also real conflicts).
        for t in 0..8 {
            let repo = if t % 2 == 0 { &one } else { &two };
            s.spawn(move || {
                (0..20).for_each(|_| drop(repo.execute("shared", &Command::Deposit(1)).unwrap()))
            });
        }
    });
    for i in 0..32 {
        assert_eq!(balance(&two, &format!("d{i}")), 20, "account d{i}");
    }
    assert_eq!(balance(&one, "shared"), 160);
    assert_eq!(balance(&two, "shared"), 160);
    assert_eq!(store.stream_version("account-shared"), Some(StreamVersion(160)));
}

#[test]
fn repository_cache_never_holds_more_than_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions { cache_capacity: 5, ..Default::default() });
    for i in 0..50 {
        let id = format!("a{i}");
        accounts.execute(&id, &Command::Open(id.clone())).unwrap();
        accounts.execute(&id, &Command::Deposit(i)).unwrap();
        assert!(accounts.stats().cached <= 5, "{:?}", accounts.stats());
    }
    let stats = accounts.stats();
    assert_eq!((stats.cached, stats.evicted), (5, 45));
    // An evicted aggregate comes back with the same state.
    assert_eq!(balance(&accounts, "a7"), 7);
    assert_eq!(accounts.stats().rehydrations, 50 + 1);
}

#[test]
fn repository_cache_never_holds_more_bytes_than_its_byte_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let bytes_max = 1_000;
    let options = RepositoryOptions { cache_bytes_max: Some(bytes_max), ..Default::default() };
    let accounts = repo(&store, options);
    for i in 0..100 {
        let (id, owner) = (format!("a{i}"), "o".repeat(i * 10));
        accounts.execute(&id, &Command::Open(owner)).unwrap();
        let stats = accounts.stats();
        assert!(stats.cached_bytes <= bytes_max, "{stats:?}");
    }
    // An account costs its size, its owner's bytes and its id's: up to a94 (991 bytes) each
    // fits alone, pushing out the ones before it; a95 and later do not fit at all.
    let size = |i: u64| std::mem::size_of::<Account>() as u64 + i * 10 + 3;
    let stats = accounts.stats();
    assert_eq!((stats.cached, stats.cached_bytes), (1, size(94)), "{stats:?}");
    assert_eq!(accounts.read("a99", |a, _| a.owner.len()).unwrap(), 990);
    assert_eq!(accounts.read("a3", |a, _| a.owner.len()).unwrap(), 30);
    let stats = accounts.stats();
    assert_eq!((stats.cached, stats.cached_bytes), (1, size(3) - 1), "a3 pushed a94 out");
}

#[test]
fn repository_passivates_idle_aggregates_and_rehydrates_them_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let idle_timeout = Duration::from_millis(1);
    let accounts = repo(&store, RepositoryOptions { idle_timeout, ..Default::default() });
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    accounts.execute("a1", &Command::Deposit(9)).unwrap();
    let before = accounts.read("a1", |a, v| (a.clone(), v)).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    accounts.execute("a2", &Command::Open("bob".into())).unwrap();
    let stats = accounts.stats();
    assert_eq!((stats.passivated, stats.cached), (1, 1), "a1 was passivated: {stats:?}");
    let rehydrations = stats.rehydrations;
    assert_eq!(accounts.read("a1", |a, v| (a.clone(), v)).unwrap(), before);
    assert_eq!(accounts.stats().rehydrations, rehydrations + 1);
}

#[test]
fn repository_execute_all_commits_all_commands_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, Default::default());
    accounts.execute("a", &Command::Open("a".into())).unwrap();
    accounts.execute("b", &Command::Open("b".into())).unwrap();
    accounts.execute("a", &Command::Deposit(10)).unwrap();
    let head = store.head();
    let too_much =
        accounts.execute_all(&[("a", &Command::Withdraw(11)), ("b", &Command::Deposit(11))]);
    assert!(matches!(too_much, Err(Error::Domain(Rejected::Overdraft { .. }))));
    assert_eq!(store.head(), head);
    let done =
        accounts.execute_all(&[("a", &Command::Withdraw(4)), ("b", &Command::Deposit(4))]).unwrap();
    assert_eq!(done.versions, [Some(StreamVersion(2)), Some(StreamVersion(1))]);
    assert_eq!((balance(&accounts, "a"), balance(&accounts, "b")), (6, 4));
    let same = accounts.execute_all(&[("a", &Command::Deposit(1)), ("a", &Command::Deposit(1))]);
    assert!(matches!(same, Err(Error::Store(annal::Error::DuplicateStream { .. }))));
    let bad = accounts.execute("no/slash", &Command::Deposit(1));
    assert!(matches!(bad, Err(Error::InvalidName { .. })));
}

#[test]
fn repository_time_travel_by_version_and_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions { snapshot_every: 2, ..Default::default() });
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    accounts.execute("other", &Command::Open("x".into())).unwrap();
    let mut positions = Vec::new();
    for amount in [10, 20, 30] {
        accounts.execute("other", &Command::Deposit(1)).unwrap();
        let outcome = accounts.execute("a1", &Command::Deposit(amount)).unwrap();
        positions.push(outcome.last_position.unwrap());
    }
    let at = |at| accounts.load_at("a1", at).unwrap();
    assert_eq!(at(At::Version(StreamVersion(0))).state.balance, 0);
    let v2 = at(At::Version(StreamVersion(2)));
    assert_eq!((v2.state.balance, v2.version), (30, Some(StreamVersion(2))));
    assert_eq!(at(At::Version(StreamVersion(99))).state.balance, 60);
    // By position: an event of another stream between two deposits changes nothing.
    assert_eq!(at(At::Position(positions[1])).state.balance, 30);
    assert_eq!(at(At::Position(Position(positions[1].get() + 1))).state.balance, 30);
    assert_eq!(
        at(At::Position(Position(0))).state,
        Account { open: true, owner: "ann".into(), balance: 0, events: 1 }
    );
    assert_eq!(accounts.load_at("nobody", At::Version(StreamVersion(5))).unwrap().version, None);
}

#[test]
fn repository_a_deleted_aggregate_starts_over_even_when_cached() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store, RepositoryOptions::default());
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    accounts.execute("a1", &Command::Deposit(50)).unwrap();
    assert_eq!(balance(&accounts, "a1"), 50, "the state is cached now");
    store.delete_stream("account-a1", annal::ExpectedVersion::Exact(1)).unwrap();
    // The cached state was folded from events the delete hides: the account is new again,
    // and its events continue the stream's numbering.
    assert!(matches!(
        accounts.execute("a1", &Command::Deposit(5)),
        Err(Error::Domain(Rejected::NotOpen))
    ));
    let reopened = accounts.execute("a1", &Command::Open("bob".into())).unwrap();
    assert_eq!(reopened.versions, [Some(StreamVersion(2))]);
    accounts.execute("a1", &Command::Deposit(7)).unwrap();
    assert_eq!(balance(&accounts, "a1"), 7);
    let fresh = repo(&store, RepositoryOptions::default());
    assert_eq!(balance(&fresh, "a1"), 7, "a rehydration agrees");
}
