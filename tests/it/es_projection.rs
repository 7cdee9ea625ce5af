//! Projections: catching up, read-your-writes, stop and restart from the checkpoint without
//! handling an event twice, rebuilding from scratch, and a failing handler.

use std::{collections::HashMap, time::Duration};

use annal::{
    Filter, Position, RecordedEvent,
    es::{Codec, Error, Projection, ProjectionRunner, Repository, id_of},
};

use crate::es_model::{Account, AccountEvent, Command, store};

const WAIT: Duration = Duration::from_secs(10);
/// A deposit of this amount makes the handler panic.
const PANIC_AMOUNT: u64 = 666;

/// Balances by account, and every position handled (to see a double delivery).
#[derive(Default)]
struct Balances {
    balances: HashMap<String, u64>,
    handled: Vec<u64>,
    fail_at_amount: Option<u64>,
}

impl Projection for Balances {
    type Event = AccountEvent;

    fn filter(&self) -> Filter {
        Filter::all().category("account")
    }

    fn handle(&mut self, event: AccountEvent, recorded: &RecordedEvent) -> Result<(), String> {
        let id = id_of(recorded.stream()).expect("an aggregate stream").to_owned();
        let balance = self.balances.entry(id).or_default();
        match event {
            AccountEvent::Deposited { amount } if Some(amount) == self.fail_at_amount => {
                return Err(format!("refusing {amount}"));
            }
            AccountEvent::Deposited { amount: PANIC_AMOUNT } => panic!("the handler has a bug"),
            AccountEvent::Deposited { amount } => *balance += amount,
            AccountEvent::Withdrawn { amount } => *balance -= amount,
            AccountEvent::Opened { .. } | AccountEvent::Frozen => {}
        }
        self.handled.push(recorded.position().get());
        Ok(())
    }

    fn reset(&mut self) {
        *self = Balances { fail_at_amount: self.fail_at_amount, ..Balances::default() };
    }
}

/// A store in `dir` and a repository in which account "a" is open.
fn with_account_a(dir: &std::path::Path) -> (annal::Store, Repository<Account>) {
    let store = store(dir);
    let accounts = Repository::<Account>::new(&store, Default::default()).unwrap();
    accounts.execute("a", &Command::Open("a".into())).unwrap();
    (store, accounts)
}

fn deposit(repo: &Repository<Account>, id: &str, amount: u64) -> Position {
    repo.execute(id, &Command::Deposit(amount)).unwrap().last_position.unwrap()
}

#[test]
fn projection_catches_up_and_waits_for_a_just_appended_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let accounts = Repository::<Account>::new(&store, Default::default()).unwrap();
    store
        .append("other-1", annal::ExpectedVersion::Any, [annal::NewEvent::new("X", vec![])])
        .unwrap();
    for id in ["a", "b"] {
        accounts.execute(id, &Command::Open(id.into())).unwrap();
        deposit(&accounts, id, 10);
    }
    let runner = ProjectionRunner::start(&store, "balances", Balances::default()).unwrap();
    let last = deposit(&accounts, "a", 5);
    assert!(runner.wait_for(last, WAIT).unwrap());
    assert!(runner.processed() > last);
    let (a, b) = runner.read(|p| (p.balances["a"], p.balances["b"]));
    assert_eq!((a, b), (15, 10));
    // A position nobody has appended yet is not reached.
    assert!(!runner.wait_for(Position(last.get() + 100), Duration::from_millis(1)).unwrap());
}

#[test]
fn projection_restarts_from_its_checkpoint_without_handling_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (store, accounts) = with_account_a(dir.path());
    let first = deposit(&accounts, "a", 1);
    let runner = ProjectionRunner::start(&store, "balances", Balances::default()).unwrap();
    assert!(runner.wait_for(first, WAIT).unwrap());
    let (projection, result) = runner.stop();
    result.unwrap();
    assert_eq!(store.subscription_checkpoint("balances").unwrap(), Some(Position(first.get() + 1)));
    let last = (2..=4).map(|n| deposit(&accounts, "a", n)).last().unwrap();
    let runner = ProjectionRunner::start(&store, "balances", projection).unwrap();
    assert!(runner.wait_for(last, WAIT).unwrap());
    let (projection, result) = runner.stop();
    result.unwrap();
    assert_eq!(projection.handled, (0..=last.get()).collect::<Vec<_>>());
    assert_eq!(projection.balances["a"], 1 + 2 + 3 + 4);
}

#[test]
fn projection_rebuild_starts_over_from_the_first_event() {
    let dir = tempfile::tempdir().unwrap();
    let (store, accounts) = with_account_a(dir.path());
    let last = deposit(&accounts, "a", 7);
    let runner = ProjectionRunner::start(&store, "balances", Balances::default()).unwrap();
    assert!(runner.wait_for(last, WAIT).unwrap());
    let (mut projection, _) = runner.stop();
    projection.balances.insert("a".into(), 999); // a read model gone wrong
    let runner = ProjectionRunner::rebuild(&store, "balances", projection, Codec::new()).unwrap();
    assert!(runner.wait_for(last, WAIT).unwrap());
    let (projection, result) = runner.stop();
    result.unwrap();
    assert_eq!(projection.balances["a"], 7);
    assert_eq!(projection.handled, [0, 1]);
}

#[test]
fn projection_handler_failure_stops_the_runner_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, accounts) = with_account_a(dir.path());
    let bad = deposit(&accounts, "a", 13);
    let failing = Balances { fail_at_amount: Some(13), ..Balances::default() };
    let runner = ProjectionRunner::start(&store, "balances", failing).unwrap();
    match runner.wait_for(bad, WAIT) {
        Err(Error::Projection { name, position, .. }) => {
            assert_eq!((name.as_str(), position), ("balances", bad.get()));
        }
        other => panic!("expected a projection error, got {other:?}"),
    }
    let (_, result) = runner.stop();
    assert!(result.is_err());
    // The failed event was not acknowledged: the checkpoint stays before it.
    assert_eq!(store.subscription_checkpoint("balances").unwrap(), Some(bad));
}

#[test]
fn projection_handler_panic_ends_the_runner_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, accounts) = with_account_a(dir.path());
    let bad = deposit(&accounts, "a", PANIC_AMOUNT);
    let runner = ProjectionRunner::start(&store, "balances", Balances::default()).unwrap();
    match runner.wait_for(bad, WAIT) {
        Err(Error::Projection { reason, .. }) => assert!(reason.contains("panicked"), "{reason}"),
        other => panic!("expected a projection error, got {other:?}"),
    }
    let (projection, result) = runner.stop();
    assert!(result.is_err());
    assert_eq!(projection.handled, [0]);
}

#[test]
fn projection_runner_keeps_its_store_open_until_stopped() {
    // The story: a runner held no store handle of its own. Dropping the last `Store` under a
    // running runner closed the store, ended the runner without a word (its checkpoint
    // unwritten), and let another open take the directory while the runner still looked alive.
    let dir = tempfile::tempdir().unwrap();
    let (store, accounts) = with_account_a(dir.path());
    let last = deposit(&accounts, "a", 3);
    let runner = ProjectionRunner::start(&store, "balances", Balances::default()).unwrap();
    assert!(runner.wait_for(last, WAIT).unwrap());
    drop((accounts, store));
    let second = annal::Store::open(dir.path());
    assert!(matches!(second, Err(annal::Error::Locked { .. })), "{second:?}");
    let (projection, result) = runner.stop();
    result.unwrap();
    assert_eq!(projection.balances["a"], 3);
    // Stopping the runner closed the store: the directory is free, the checkpoint written.
    let reopened = crate::es_model::store(dir.path());
    let checkpoint = reopened.subscription_checkpoint("balances").unwrap();
    assert_eq!(checkpoint, Some(Position(last.get() + 1)));
}
