//! A bank on the event-sourcing layer: accounts are aggregates (open, deposit, withdraw), a
//! transfer is one command on each of two accounts recorded in one atomic multi-stream append
//! (both legs or neither, no process manager needed), an overdraft is rejected and writes
//! nothing, a projection keeps every balance and waits for our own writes, and an audit reads an
//! account as it was at a past version.
//!
//! Run it with `cargo run --release --example bank`. The tests run it too
//! (`tests/it/es_examples.rs`).

use std::{collections::BTreeMap, error::Error as StdError, io::Write, path::Path, time::Duration};

use annal::{
    Filter, RecordedEvent, Store, StreamVersion,
    es::{
        Aggregate, At, DomainEvent, Error, Projection, ProjectionRunner, Repository,
        RepositoryOptions, id_of,
    },
};
use serde::{Deserialize, Serialize};

/// An account's state: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Account {
    pub(crate) owner: Option<String>,
    pub(crate) balance: u64,
}

/// What happens to an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
    TransferSent { to: String, amount: u64 },
    TransferReceived { from: String, amount: u64 },
}

impl DomainEvent for AccountEvent {
    const TYPES: &'static [&'static str] =
        &["Opened", "Deposited", "Withdrawn", "TransferSent", "TransferReceived"];
}

/// What a caller asks of an account.
pub(crate) enum Command {
    Open {
        owner: String,
    },
    Deposit(u64),
    Withdraw(u64),
    /// The sending leg of a transfer; run together with `Receive` on the other account.
    Send {
        to: String,
        amount: u64,
    },
    Receive {
        from: String,
        amount: u64,
    },
}

/// Why an account refuses a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    AlreadyOpen,
    NotOpen,
    Overdraft { balance: u64, asked: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::AlreadyOpen => f.write_str("the account is already open"),
            Refusal::NotOpen => f.write_str("the account is not open"),
            Refusal::Overdraft { balance, asked } => {
                write!(f, "overdraft: balance {balance}, asked {asked}")
            }
        }
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Event = AccountEvent;
    type Command = Command;
    type Error = Refusal;

    fn handle(&self, command: &Command) -> Result<Vec<AccountEvent>, Refusal> {
        use AccountEvent as E;
        let debit = |amount: u64, event: E| match amount <= self.balance {
            true => Ok(vec![event]),
            false => Err(Refusal::Overdraft { balance: self.balance, asked: amount }),
        };
        match command {
            Command::Open { .. } if self.owner.is_some() => Err(Refusal::AlreadyOpen),
            Command::Open { owner } => Ok(vec![E::Opened { owner: owner.clone() }]),
            _ if self.owner.is_none() => Err(Refusal::NotOpen),
            Command::Deposit(amount) => Ok(vec![E::Deposited { amount: *amount }]),
            Command::Withdraw(amount) => debit(*amount, E::Withdrawn { amount: *amount }),
            Command::Send { to, amount } => {
                debit(*amount, E::TransferSent { to: to.clone(), amount: *amount })
            }
            Command::Receive { from, amount } => {
                Ok(vec![E::TransferReceived { from: from.clone(), amount: *amount }])
            }
        }
    }

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner),
            AccountEvent::Deposited { amount } | AccountEvent::TransferReceived { amount, .. } => {
                self.balance += amount;
            }
            AccountEvent::Withdrawn { amount } | AccountEvent::TransferSent { amount, .. } => {
                self.balance -= amount;
            }
        }
    }

    fn size_hint(&self) -> usize {
        std::mem::size_of::<Self>() + self.owner.as_ref().map_or(0, String::capacity)
    }
}

/// The read model: every account's balance.
#[derive(Default)]
pub(crate) struct Balances {
    pub(crate) by_account: BTreeMap<String, u64>,
}

impl Projection for Balances {
    type Event = AccountEvent;

    fn filter(&self) -> Filter {
        Filter::all().category(Account::TYPE)
    }

    fn handle(&mut self, event: AccountEvent, recorded: &RecordedEvent) -> Result<(), String> {
        let id = id_of(recorded.stream()).ok_or("not an account stream")?;
        let balance = self.by_account.entry(id.to_owned()).or_default();
        match event {
            AccountEvent::Opened { .. } => {}
            AccountEvent::Deposited { amount } | AccountEvent::TransferReceived { amount, .. } => {
                *balance += amount;
            }
            AccountEvent::Withdrawn { amount } | AccountEvent::TransferSent { amount, .. } => {
                *balance -= amount;
            }
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.by_account.clear();
    }
}

/// What the demo found, for the tests to check.
#[derive(Debug)]
pub(crate) struct Report {
    /// Every balance, from the projection.
    pub(crate) balances: BTreeMap<String, u64>,
    /// The refused overdraft's message.
    pub(crate) refused: String,
    /// Alice's balance as it was at version 2 of her stream.
    pub(crate) audited: u64,
    /// Alice's history as (version, balance) after each of her events.
    pub(crate) history: Vec<(u64, u64)>,
}

/// Runs the demo on a store in `dir`, telling the story to `out`.
pub(crate) fn run(dir: &Path, out: &mut dyn Write) -> Result<Report, Box<dyn StdError>> {
    let store = Store::open(dir)?;
    let accounts = Repository::<Account>::new(&store, RepositoryOptions::default())?;
    for (id, owner) in [("alice", "Alice"), ("bob", "Bob")] {
        accounts.execute(id, &Command::Open { owner: owner.into() })?;
    }
    accounts.execute("alice", &Command::Deposit(100))?;
    accounts.execute("alice", &Command::Withdraw(30))?;
    accounts.execute("bob", &Command::Deposit(10))?;
    writeln!(out, "alice deposits 100 and withdraws 30; bob deposits 10")?;

    // A transfer: both legs in one atomic append, each checked by its own account.
    let transfer = |from: &str, to: &str, amount| {
        accounts.execute_all(&[
            (from, &Command::Send { to: to.into(), amount }),
            (to, &Command::Receive { from: from.into(), amount }),
        ])
    };
    let done = transfer("alice", "bob", 50)?;
    let at = done.last_position.map_or_else(|| "-".to_owned(), |p| p.to_string());
    writeln!(out, "alice sends 50 to bob: both legs in one atomic append, ending at {at}")?;
    let refused = match transfer("bob", "alice", 500) {
        Err(Error::Domain(refusal)) => refusal.to_string(),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    };
    writeln!(out, "bob tries to send 500 to alice: refused ({refused}); nothing was written")?;
    let last = accounts.execute("bob", &Command::Withdraw(5))?.last_position;
    writeln!(out, "bob withdraws 5")?;

    let runner = ProjectionRunner::start(&store, "balances", Balances::default())?;
    let last = last.expect("a withdrawal records an event");
    if !runner.wait_for(last, Duration::from_secs(30))? {
        return Err("the projection did not catch up".into());
    }
    let balances = runner.read(|b| b.by_account.clone());
    writeln!(out, "balances from the projection: {balances:?}")?;

    let audited = accounts.load_at("alice", At::Version(StreamVersion(2)))?.state.balance;
    writeln!(out, "audit: alice's balance at version 2 was {audited}")?;
    let history = audit_history(&accounts, "alice")?;
    writeln!(out, "alice's history (version, balance): {history:?}")?;
    let (_, stopped) = runner.stop();
    stopped?;
    store.close();
    Ok(Report { balances, refused, audited, history })
}

/// The balance after each event of account `id`, by time travel to each version.
fn audit_history(
    accounts: &Repository<Account>,
    id: &str,
) -> Result<Vec<(u64, u64)>, Box<dyn StdError>> {
    let last = accounts.read(id, |_, version| version)?.map_or(0, |v| v.get());
    let mut history = Vec::new();
    for version in 0..=last {
        let past = accounts.load_at(id, At::Version(StreamVersion(version)))?;
        history.push((version, past.state.balance));
    }
    Ok(history)
}

fn main() -> Result<(), Box<dyn StdError>> {
    let dir = tempfile::tempdir()?;
    let report = run(dir.path(), &mut std::io::stdout())?;
    println!(
        "done: {} accounts, 1 refusal ({}), alice audited at {} over {} versions",
        report.balances.len(),
        report.refused,
        report.audited,
        report.history.len()
    );
    Ok(())
}
