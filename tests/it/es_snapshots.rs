//! Snapshots: taken every N events, used when sound, and ignored (with the state still exact)
//! when missing, damaged, of another snapshot version, beyond the stream or from another
//! history.

use std::path::{Path, PathBuf};

use annal::{
    StreamVersion,
    es::{Aggregate, At, Repository, RepositoryOptions},
};
use serde::{Deserialize, Serialize};

use crate::{
    common::small_options,
    es_model::{Account, AccountEvent, Command, Rejected, store},
};

fn options(snapshot_every: u64) -> RepositoryOptions {
    RepositoryOptions { snapshot_every, ..Default::default() }
}

fn snapshot_file(dir: &Path, id: &str) -> PathBuf {
    dir.join("snapshots").join("account").join(format!("{id}.snap"))
}

/// Opens account `id` and deposits 1, 2, ... `deposits`.
fn fill(repo: &Repository<Account>, id: &str, deposits: u64) {
    repo.execute(id, &Command::Open(id.into())).unwrap();
    for amount in 1..=deposits {
        repo.execute(id, &Command::Deposit(amount)).unwrap();
    }
}

/// The state a fresh repository loads, and how it loaded it.
fn reload(store: &annal::Store, id: &str) -> (Account, annal::es::RepositoryStats) {
    let fresh = Repository::<Account>::new(store, options(10)).unwrap();
    let state = fresh.read(id, |a, _| a.clone()).unwrap();
    (state, fresh.stats())
}

/// The state rebuilt from every event, without any snapshot.
fn rebuilt(store: &annal::Store, id: &str) -> Account {
    let repo = Repository::<Account>::new(store, options(0)).unwrap();
    repo.load_at(id, At::Version(StreamVersion::END)).unwrap().state
}

#[test]
fn snapshots_are_taken_every_n_events_and_used_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = Repository::<Account>::new(&store, options(10)).unwrap();
    fill(&accounts, "a1", 34); // 35 events: snapshots at 10, 20 and 30
    assert_eq!(accounts.stats().snapshots_written, 3);
    assert!(snapshot_file(dir.path(), "a1").exists());
    let (state, stats) = reload(&store, "a1");
    assert_eq!((stats.from_snapshot, stats.snapshots_ignored), (1, 0));
    assert_eq!(state, rebuilt(&store, "a1"));
    assert_eq!(state.balance, 34 * 35 / 2);
}

#[test]
fn snapshots_missing_or_corrupt_are_ignored_and_the_state_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    fill(&Repository::new(&store, options(10)).unwrap(), "a1", 24);
    let file = snapshot_file(dir.path(), "a1");
    let good = std::fs::read(&file).unwrap();
    for at in [0, 20, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&file, &bad).unwrap();
        let (state, stats) = reload(&store, "a1");
        assert_eq!((stats.from_snapshot, stats.snapshots_ignored), (0, 1), "flip at {at}");
        assert_eq!(state, rebuilt(&store, "a1"));
    }
    std::fs::write(&file, &good[..good.len() - 3]).unwrap();
    assert_eq!(reload(&store, "a1").1.snapshots_ignored, 1);
    std::fs::remove_file(&file).unwrap();
    let (state, stats) = reload(&store, "a1");
    assert_eq!((stats.from_snapshot, stats.snapshots_ignored), (0, 0));
    assert_eq!(state, rebuilt(&store, "a1"));
}

/// The same account, after a change that makes its old snapshots unusable.
#[derive(Default, Serialize, Deserialize)]
struct AccountV2(Account);

impl Aggregate for AccountV2 {
    const TYPE: &'static str = "account";
    const SNAPSHOT_VERSION: u32 = 2;
    type Event = AccountEvent;
    type Command = Command;
    type Error = Rejected;

    fn handle(&self, command: &Command) -> Result<Vec<AccountEvent>, Rejected> {
        self.0.handle(command)
    }

    fn apply(&mut self, event: AccountEvent) {
        self.0.apply(event);
    }
}

#[test]
fn snapshots_of_another_snapshot_version_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    fill(&Repository::new(&store, options(10)).unwrap(), "a1", 14);
    let v2 = Repository::<AccountV2>::new(&store, options(10)).unwrap();
    let state = v2.read("a1", |a, _| a.0.clone()).unwrap();
    assert_eq!((v2.stats().from_snapshot, v2.stats().snapshots_ignored), (0, 1));
    assert_eq!(state, rebuilt(&store, "a1"));
}

#[test]
fn snapshots_beyond_the_stream_or_from_another_history_are_ignored() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store_a = store(dir_a.path());
    fill(&Repository::new(&store_a, options(10)).unwrap(), "a1", 29); // snapshot at v29
    let snapshot = std::fs::read(snapshot_file(dir_a.path(), "a1")).unwrap();
    let store_b = store(dir_b.path());
    let other = Repository::<Account>::new(&store_b, options(0)).unwrap();
    fill(&other, "a1", 9); // only 10 events: the snapshot is beyond the stream
    std::fs::create_dir_all(snapshot_file(dir_b.path(), "a1").parent().unwrap()).unwrap();
    std::fs::write(snapshot_file(dir_b.path(), "a1"), &snapshot).unwrap();
    let (state, stats) = reload(&store_b, "a1");
    assert_eq!((stats.from_snapshot, stats.snapshots_ignored), (0, 1));
    assert_eq!(state, rebuilt(&store_b, "a1"));
    // 40 events now, other amounts: version 29 exists but is another event.
    for _ in 0..30 {
        other.execute("a1", &Command::Deposit(1000)).unwrap();
    }
    let (state, stats) = reload(&store_b, "a1");
    assert_eq!((stats.from_snapshot, stats.snapshots_ignored), (0, 1));
    assert_eq!(state, rebuilt(&store_b, "a1"));
    assert_eq!(state.balance, 45 + 30_000);
}

/// The rows `(offset, size, field)` of the layout table in `docs/format.md`'s "Snapshot files".
fn documented_snapshot_layout() -> Vec<(usize, usize, String)> {
    const FORMAT_MD: &str = include_str!("../../docs/format.md");
    let section = FORMAT_MD.split("## Snapshot files").nth(1).expect("a snapshot section");
    let table = section.split("| offset | size | field | meaning |").nth(1).expect("a table");
    let rows = table.lines().skip(2).take_while(|l| l.starts_with('|'));
    let cell = |row: &str, at: usize| row.split('|').nth(at).unwrap().trim().to_owned();
    rows.map(|r| (cell(r, 1).parse().unwrap(), cell(r, 2).parse().unwrap(), cell(r, 3))).collect()
}

#[test]
fn snapshots_file_bytes_match_docs_format_md() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    fill(&Repository::new(&store, options(10)).unwrap(), "a1", 9); // a snapshot at v9
    let file = std::fs::read(snapshot_file(dir.path(), "a1")).unwrap();
    let last = store.read_stream_backward("account-a1", StreamVersion::END, 1).unwrap();
    let last_id = last.map(Result::unwrap).next().unwrap().id();
    let layout = documented_snapshot_layout();
    let header_len = layout.iter().map(|(at, size, _)| at + size).max().unwrap();
    let state_len = file.len() - header_len - "account".len() - "a1".len() - 4;
    let uint = |bytes: &[u8]| bytes.iter().rev().fold(0u64, |n, b| n << 8 | u64::from(*b));
    let fields: Vec<&str> = layout.iter().map(|(_, _, f)| f.as_str()).collect();
    assert_eq!(fields.len(), 10, "{fields:?}");
    for (at, size, field) in &layout {
        let bytes = &file[*at..at + size];
        match field.as_str() {
            "magic" => assert_eq!(bytes, b"ANNALSNP"),
            "version" => assert_eq!(uint(bytes), 1),
            "type_len" => assert_eq!(uint(bytes), 7),
            "snapshot_version" => assert_eq!(uint(bytes), 1),
            "aggregate_version" => assert_eq!(uint(bytes), 9),
            "last_event_id" => assert_eq!(bytes, last_id.as_bytes()),
            "written_us" => assert!(uint(bytes) > 1_600_000_000_000_000),
            "id_len" => assert_eq!(uint(bytes), 2),
            "reserved" => assert_eq!(uint(bytes), 0),
            "state_len" => assert_eq!(uint(bytes), state_len as u64),
            other => panic!("undocumented field {other}"),
        }
    }
    let body = &file[header_len..];
    assert_eq!(&body[..9], b"accounta1");
    let state: Account = rmp_serde::from_slice(&body[9..9 + state_len]).unwrap();
    assert_eq!(state, rebuilt(&store, "a1"));
    let crc = crc32fast::hash(&file[..file.len() - 4]).to_le_bytes();
    assert_eq!(&file[file.len() - 4..], crc);
}

/// A store on `disk` where account "a1" has 15 events and a snapshot at version 9.
fn sim_account(disk: &annal::io::SimDisk) -> (annal::Store, Repository<Account>) {
    let storage = std::sync::Arc::new(disk.clone());
    let store = annal::Store::open_with("/sim/es", annal::Options { storage, ..small_options() });
    let store = store.unwrap();
    let accounts = Repository::<Account>::new(&store, options(0)).unwrap();
    fill(&accounts, "a1", 9);
    assert_eq!(accounts.snapshot_now("a1").unwrap(), Some(StreamVersion(9)));
    (5..10).for_each(|_| drop(accounts.execute("a1", &Command::Deposit(100)).unwrap()));
    (store, accounts)
}

#[test]
fn snapshots_power_loss_at_every_step_of_a_write_leaves_a_whole_file_and_the_exact_state() {
    let clean = annal::io::SimDisk::new();
    let (_store, accounts) = sim_account(&clean);
    let before = clean.ops();
    accounts.snapshot_now("a1").unwrap();
    let steps = clean.ops() - before;
    assert!(steps >= 5, "remove tmp, create, write, fsync, rename, fsync dir");
    for step in 0..=steps {
        for variant in 0..4 {
            let disk = annal::io::SimDisk::new();
            let (store, accounts) = sim_account(&disk);
            disk.fail_at(disk.ops() + step, std::io::ErrorKind::Other, true);
            let written = accounts.snapshot_now("a1");
            assert_eq!(written.is_ok(), step == steps, "step {step}");
            let failed = accounts.stats().snapshot_write_failures;
            assert_eq!(failed, u64::from(step < steps), "step {step}");
            let crashed = disk.crash(variant);
            drop((accounts, store));
            let storage = std::sync::Arc::new(crashed);
            let options = annal::Options { storage, ..small_options() };
            let store = annal::Store::open_with("/sim/es", options).unwrap();
            let (state, stats) = reload(&store, "a1");
            assert_eq!(state, rebuilt(&store, "a1"), "step {step}/{variant}");
            assert_eq!(state.balance, 45 + 500);
            let used = (stats.from_snapshot, stats.snapshots_ignored);
            assert_eq!(used, (1, 0), "old or new file, whole: step {step}/{variant}");
        }
    }
}

#[test]
fn snapshots_that_cannot_be_written_fail_no_command() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    std::fs::write(dir.path().join("snapshots"), b"a file where the directory would go").unwrap();
    let accounts = Repository::<Account>::new(&store, options(5)).unwrap();
    fill(&accounts, "a1", 11); // 12 events: two snapshots due, both fail
    let stats = accounts.stats();
    assert_eq!((stats.snapshots_written, stats.snapshot_write_failures), (0, 2));
    assert!(matches!(accounts.snapshot_now("a1"), Err(annal::es::Error::Store(_))));
    assert_eq!(reload(&store, "a1").0, rebuilt(&store, "a1"));
}
