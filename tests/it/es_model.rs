//! The domain model the event-sourcing scenarios share: an account that can be opened, credited
//! and debited, never below zero. A `Hooked` command runs a test's closure inside `handle`, so
//! a test can make another writer append at the exact moment between load and append.

use std::sync::Arc;

use annal::{
    Durability, Options, Store,
    es::{Aggregate, DomainEvent},
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub open: bool,
    pub owner: String,
    pub balance: u64,
    pub events: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
    Frozen,
}

impl DomainEvent for AccountEvent {
    const TYPES: &'static [&'static str] = &["Opened", "Deposited", "Withdrawn", "Frozen"];
}

pub type Hook = Arc<dyn Fn() + Send + Sync>;

pub enum Command {
    Open(String),
    Deposit(u64),
    Withdraw(u64),
    /// Deposits, after running the hook inside `handle`.
    Hooked(u64, Hook),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    AlreadyOpen,
    NotOpen,
    Overdraft { balance: u64, asked: u64 },
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Event = AccountEvent;
    type Command = Command;
    type Error = Rejected;

    fn handle(&self, command: &Command) -> Result<Vec<AccountEvent>, Rejected> {
        match command {
            Command::Open(_) if self.open => Err(Rejected::AlreadyOpen),
            Command::Open(owner) => Ok(vec![AccountEvent::Opened { owner: owner.clone() }]),
            _ if !self.open => Err(Rejected::NotOpen),
            Command::Deposit(amount) => Ok(vec![AccountEvent::Deposited { amount: *amount }]),
            Command::Withdraw(asked) if *asked > self.balance => {
                Err(Rejected::Overdraft { balance: self.balance, asked: *asked })
            }
            Command::Withdraw(amount) => Ok(vec![AccountEvent::Withdrawn { amount: *amount }]),
            Command::Hooked(amount, hook) => {
                hook();
                Ok(vec![AccountEvent::Deposited { amount: *amount }])
            }
        }
    }

    fn apply(&mut self, event: AccountEvent) {
        self.events += 1;
        match event {
            AccountEvent::Opened { owner } => (self.open, self.owner) = (true, owner),
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
            AccountEvent::Frozen => {}
        }
    }

    fn size_hint(&self) -> usize {
        std::mem::size_of::<Self>() + self.owner.capacity()
    }
}

/// A store without fsync: durability is not what these scenarios test.
pub fn store(dir: &std::path::Path) -> Store {
    Store::open_with(dir, Options { durability: Durability::None, ..Options::default() })
        .expect("open store")
}
