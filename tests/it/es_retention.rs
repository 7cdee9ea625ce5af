//! Aggregates whose streams retention cut: `max_count`, `truncate_before` over existing
//! events and scavenging hide the first events, and a repository must then refuse to fold what
//! is left, unless a snapshot covers the cut; a soft delete is not a cut (the aggregate starts
//! over), and a state folded before the cut stays exact.

use annal::{
    ExpectedVersion, StreamMetadata, StreamVersion,
    es::{At, Error, Repository, RepositoryOptions},
};

use crate::es_model::{Account, Command, store};

const STREAM: &str = "account-a1";

fn repo(store: &annal::Store) -> Repository<Account> {
    let options = RepositoryOptions { snapshot_every: 0, ..RepositoryOptions::default() };
    Repository::new(store, options).unwrap()
}

/// Opens account a1 and deposits 1, 2, … `deposits`: versions 0 to `deposits`.
fn open_and_deposit(accounts: &Repository<Account>, deposits: u64) {
    accounts.execute("a1", &Command::Open("ann".into())).unwrap();
    for amount in 1..=deposits {
        accounts.execute("a1", &Command::Deposit(amount)).unwrap();
    }
}

/// Replaces the stream's metadata (the metadata stream at whatever version it is).
fn set_metadata(store: &annal::Store, meta: StreamMetadata) {
    store.set_stream_metadata(STREAM, ExpectedVersion::Any, meta).unwrap();
}

/// Whether `result` is the truncated-history error with these versions.
fn is_cut<T: std::fmt::Debug, D: std::fmt::Debug>(
    result: &Result<T, Error<D>>,
    needed: u64,
    first: Option<u64>,
) -> bool {
    match result {
        Err(Error::TruncatedHistory { stream, needed: n, first_version, .. }) => {
            stream == STREAM && *n == needed && *first_version == first
        }
        _ => false,
    }
}

#[test]
fn retention_max_count_without_snapshot_fails_with_truncated_history() {
    // The story: 4 events, then `max_count: 2`, then a load through a fresh repository folded
    // only the last 2 events and returned that state (a closed account with a balance of 5)
    // as if it were the aggregate's, with no error.
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    open_and_deposit(&repo(&store), 3);
    set_metadata(&store, StreamMetadata { max_count: Some(2), ..StreamMetadata::default() });
    let fresh = repo(&store);
    let read = fresh.read("a1", |a, v| (a.clone(), v));
    assert!(is_cut(&read, 0, Some(2)), "{read:?}");
    let head = store.head();
    let deposit = fresh.execute("a1", &Command::Deposit(9));
    assert!(is_cut(&deposit, 0, Some(2)), "{deposit:?}");
    assert_eq!(store.head(), head, "nothing was written");
    let past = fresh.load_at("a1", At::Version(StreamVersion(3)));
    assert!(is_cut(&past, 0, Some(2)), "{past:?}");
}

#[test]
fn retention_a_snapshot_covering_the_cut_loads_the_exact_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store);
    open_and_deposit(&accounts, 3);
    assert_eq!(accounts.snapshot_now("a1").unwrap(), Some(StreamVersion(3)));
    accounts.execute("a1", &Command::Deposit(4)).unwrap();
    // Versions 3 and 4 stay readable: the snapshot's last event is one of them.
    set_metadata(&store, StreamMetadata { max_count: Some(2), ..StreamMetadata::default() });
    let fresh = repo(&store);
    let state = fresh.read("a1", |a, v| (a.clone(), v)).unwrap();
    let exact = Account { open: true, owner: "ann".into(), balance: 10, events: 5 };
    assert_eq!(state, (exact, Some(StreamVersion(4))));
    assert_eq!(fresh.stats().from_snapshot, 1);
    fresh.execute("a1", &Command::Withdraw(10)).unwrap();
    // A snapshot below the cut cannot be checked against its event, so it covers nothing.
    set_metadata(&store, StreamMetadata { max_count: Some(1), ..StreamMetadata::default() });
    let later = repo(&store).read("a1", |a, _| a.balance);
    assert!(is_cut(&later, 0, Some(5)), "{later:?}");
}

#[test]
fn retention_truncate_before_over_events_and_scavenging_fail_without_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let options = annal::Options {
        segment_bytes_max: 16 * 1024,
        idempotency_window_events: 0,
        ..crate::common::fast_options()
    };
    let store = crate::common::open(dir.path(), options);
    open_and_deposit(&repo(&store), 3);
    set_metadata(&store, StreamMetadata { truncate_before: Some(1), ..StreamMetadata::default() });
    let read = repo(&store).read("a1", |a, _| a.balance);
    assert!(is_cut(&read, 0, Some(1)), "{read:?}");
    // Seal the segment that holds the stream, so that a scavenge can remove version 0.
    let segments = store.stats().segments;
    while store.stats().segments == segments {
        let filler = annal::NewEvent::new("F", vec![0; 900]);
        store.append("filler", ExpectedVersion::Any, [filler]).unwrap();
    }
    assert!(store.scavenge().unwrap().events_removed >= 1);
    let read = repo(&store).read("a1", |a, _| a.balance);
    assert!(is_cut(&read, 0, Some(1)), "after the scavenge: {read:?}");
}

#[test]
fn retention_hiding_every_event_fails_with_truncated_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    open_and_deposit(&repo(&store), 1);
    set_metadata(&store, StreamMetadata { max_count: Some(0), ..StreamMetadata::default() });
    let read = repo(&store).read("a1", |a, _| a.balance);
    assert!(is_cut(&read, 0, None), "{read:?}");
}

#[test]
fn retention_a_cached_state_folded_before_the_cut_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store);
    open_and_deposit(&accounts, 3);
    let behind = repo(&store);
    assert_eq!(behind.read("a1", |a, _| a.balance).unwrap(), 6, "cached at version 3");
    accounts.execute("a1", &Command::Deposit(4)).unwrap();
    accounts.execute("a1", &Command::Deposit(5)).unwrap();
    set_metadata(&store, StreamMetadata { max_count: Some(2), ..StreamMetadata::default() });
    // Folded from every event before the cut, the cached state is exact: it continues.
    accounts.execute("a1", &Command::Deposit(6)).unwrap();
    assert_eq!(accounts.read("a1", |a, _| (a.balance, a.events)).unwrap(), (21, 7));
    assert_eq!(accounts.stats().rehydrations, 1, "only the first command loaded it");
    // A cached state behind the cut cannot continue: versions 4 and 5 are hidden now.
    match behind.read("a1", |a, _| a.balance) {
        Err(Error::TruncatedHistory {
            needed: 4, first_version: Some(5), state_version, ..
        }) => {
            assert_eq!(state_version, Some(3));
        }
        other => panic!("expected a truncated history, got {other:?}"),
    }
}

#[test]
fn retention_a_delete_starts_the_history_over_even_when_metadata_changes_later() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = repo(&store);
    open_and_deposit(&accounts, 1);
    store.delete_stream(STREAM, ExpectedVersion::Exact(1)).unwrap();
    accounts.execute("a1", &Command::Open("bob".into())).unwrap();
    accounts.execute("a1", &Command::Deposit(7)).unwrap();
    // Metadata set after the aggregate started over keeps the delete's `truncate_before`.
    let meta =
        StreamMetadata { truncate_before: Some(2), max_count: Some(10), ..Default::default() };
    set_metadata(&store, meta);
    let fresh = repo(&store);
    let state = fresh.read("a1", |a, v| (a.clone(), v)).unwrap();
    let new_life = Account { open: true, owner: "bob".into(), balance: 7, events: 2 };
    assert_eq!(state, (new_life.clone(), Some(StreamVersion(3))));
    let past = fresh.load_at("a1", At::Version(StreamVersion(3))).unwrap();
    assert_eq!((past.state, past.version), (new_life, Some(StreamVersion(3))));
}
