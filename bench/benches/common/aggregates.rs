//! The event-sourcing workloads shared by `benches/aggregates.rs` and
//! `examples/aggregate_bench.rs`, on the bank example's account (the including crate has the
//! bank example as its module `bank`): command round trips on cached aggregates with durable
//! appends, the same appends made directly on the store (the baseline), and an aggregate with a
//! long history to rehydrate.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use annal::{
    Durability, ExpectedVersion, Options, Store,
    es::{Codec, Repository, RepositoryOptions, stream_of},
};

use crate::bank::{Account, AccountEvent, Command};

/// Events per append when a long history is written.
const HISTORY_BATCH: u64 = 1_000;

/// A store without fsync, for building histories quickly.
pub fn fast_store(dir: &Path) -> Store {
    let options = Options { durability: Durability::None, ..Options::default() };
    Store::open_with(dir, options).expect("open store")
}

/// A repository that never snapshots on its own.
pub fn repository(store: &Store) -> Repository<Account> {
    let options = RepositoryOptions { snapshot_every: 0, ..RepositoryOptions::default() };
    Repository::new(store, options).expect("repository")
}

/// Opens account `id` (so that it is cached).
pub fn open_account(accounts: &Repository<Account>, id: &str) {
    accounts.execute(id, &Command::Open { owner: id.to_owned() }).expect("open account");
}

/// One deposit on `id`, timed from the call to its durable answer.
pub fn deposit(accounts: &Repository<Account>, id: &str) -> Duration {
    let start = Instant::now();
    accounts.execute(id, &Command::Deposit(1)).expect("deposit");
    start.elapsed()
}

/// The baseline: the same event appended with the same expected version straight to the store.
pub fn raw_deposit(store: &Store, codec: &Codec<AccountEvent>, stream: &str) -> Duration {
    let event = codec.encode(&AccountEvent::Deposited { amount: 1 }).expect("encode");
    let start = Instant::now();
    let expected = store
        .stream_version(stream)
        .map_or(ExpectedVersion::NoStream, |v| ExpectedVersion::Exact(v.get()));
    store.append(stream, expected, [event]).expect("append");
    start.elapsed()
}

/// `per_client` deposits by each of `clients` threads, each on its own account; every
/// round trip's time.
pub fn concurrent(
    clients: usize,
    per_client: usize,
    deposit: impl Fn(usize) -> Duration + Sync,
) -> Vec<Duration> {
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|client| {
                let deposit = &deposit;
                s.spawn(move || (0..per_client).map(|_| deposit(client)).collect::<Vec<_>>())
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("client thread")).collect()
    })
}

/// Writes account `id` with one `Opened` and `events - 1` deposits, straight to the store.
pub fn write_history(store: &Store, id: &str, events: u64) {
    let codec = Codec::<AccountEvent>::new();
    let stream = stream_of::<Account>(id);
    let opened = codec.encode(&AccountEvent::Opened { owner: id.to_owned() }).expect("encode");
    store.append(&stream, ExpectedVersion::NoStream, [opened]).expect("append");
    write_history_tail(store, id, events - 1);
}

/// Appends `deposits` deposits to account `id`, straight to the store.
pub fn write_history_tail(store: &Store, id: &str, deposits: u64) {
    let codec = Codec::<AccountEvent>::new();
    let stream = stream_of::<Account>(id);
    let deposit = codec.encode(&AccountEvent::Deposited { amount: 1 }).expect("encode");
    let mut written = 0;
    while written < deposits {
        let batch = HISTORY_BATCH.min(deposits - written);
        let events = (0..batch).map(|_| deposit.clone());
        store.append(&stream, ExpectedVersion::Any, events).expect("append");
        written += batch;
    }
}

/// Loads account `id` from the store (the cache emptied first); its balance.
pub fn rehydrate(accounts: &Repository<Account>, id: &str) -> u64 {
    accounts.clear_cache();
    accounts.read(id, |account, _| account.balance).expect("rehydrate")
}
