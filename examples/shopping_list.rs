//! Shopping lists: a second aggregate, and a projection that keeps list names unique.
//!
//! A name belongs to no single list, so no aggregate can check it: the `Names` projection maps
//! each name to its list. Before creating or renaming, the application waits until the
//! projection has processed its own last write (read-your-writes) and asks it whether the name
//! is free. Two processes racing for a name could still both pass the check, so the projection
//! also records any name held twice, for a compensating rename.
//!
//! Run it with `cargo run --release --example shopping_list`. The tests run it too.

use std::{collections::BTreeMap, error::Error as StdError, io::Write, path::Path, time::Duration};

use annal::{
    Filter, Position, RecordedEvent, Store,
    es::{Aggregate, DomainEvent, Projection, ProjectionRunner, Repository, id_of},
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ShoppingList {
    pub(crate) name: Option<String>,
    pub(crate) items: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum ListEvent {
    Created { name: String },
    Renamed { name: String },
    ItemAdded { item: String },
    ItemRemoved { item: String },
}

impl DomainEvent for ListEvent {
    const TYPES: &'static [&'static str] = &["Created", "Renamed", "ItemAdded", "ItemRemoved"];
}

pub(crate) enum ListCommand {
    Create(String),
    Rename(String),
    Add(String),
    Remove(String),
}

impl Aggregate for ShoppingList {
    const TYPE: &'static str = "list";
    type Event = ListEvent;
    type Command = ListCommand;
    type Error = String;

    fn handle(&self, command: &ListCommand) -> Result<Vec<ListEvent>, String> {
        let event = match (command, &self.name) {
            (ListCommand::Create(_), Some(_)) => return Err("the list exists".into()),
            (ListCommand::Create(name), None) => ListEvent::Created { name: name.clone() },
            (_, None) => return Err("no such list".into()),
            (ListCommand::Rename(name), _) => ListEvent::Renamed { name: name.clone() },
            (ListCommand::Add(item), _) => ListEvent::ItemAdded { item: item.clone() },
            (ListCommand::Remove(item), _) if !self.items.contains(item) => {
                return Err(format!("{item:?} is not on the list"));
            }
            (ListCommand::Remove(item), _) => ListEvent::ItemRemoved { item: item.clone() },
        };
        Ok(vec![event])
    }

    fn apply(&mut self, event: ListEvent) {
        match event {
            ListEvent::Created { name } | ListEvent::Renamed { name } => self.name = Some(name),
            ListEvent::ItemAdded { item } => self.items.push(item),
            ListEvent::ItemRemoved { item } => self.items.retain(|i| *i != item),
        }
    }
}

/// The read model: which list holds each name, and names held by more than one list.
#[derive(Default)]
pub(crate) struct Names {
    pub(crate) owner: BTreeMap<String, String>,
    pub(crate) name_of: BTreeMap<String, String>,
    pub(crate) clashes: Vec<(String, String)>,
}

impl Projection for Names {
    type Event = ListEvent;

    fn filter(&self) -> Filter {
        Filter::all().category(ShoppingList::TYPE)
    }

    fn handle(&mut self, event: ListEvent, recorded: &RecordedEvent) -> Result<(), String> {
        let list = id_of(recorded.stream()).ok_or("not a list stream")?.to_owned();
        let (ListEvent::Created { name } | ListEvent::Renamed { name }) = event else {
            return Ok(());
        };
        if let Some(old) = self.name_of.insert(list.clone(), name.clone()) {
            self.owner.remove(&old);
        }
        if let Some(holder) = self.owner.insert(name.clone(), list.clone()) {
            self.clashes.push((name, holder));
        }
        Ok(())
    }

    fn reset(&mut self) {
        *self = Names::default();
    }
}

/// The lists' names as the demo left them, and the refusals it met.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) names: BTreeMap<String, String>,
    pub(crate) refused: Vec<String>,
    pub(crate) items: Vec<String>,
}

/// Creates or renames list `id` to `name` if the projection knows no other list by that name.
fn claim(
    lists: &Repository<ShoppingList>,
    names: &ProjectionRunner<Names>,
    last_write: &mut Option<Position>,
    id: &str,
    name: &str,
) -> Result<Result<(), String>, Box<dyn StdError>> {
    caught_up(names, *last_write)?;
    if let Some(holder) = names.read(|n| n.owner.get(name).cloned()).filter(|h| h != id) {
        return Ok(Err(format!("{name:?} is taken by {holder}")));
    }
    let exists = lists.read(id, |list, _| list.name.is_some())?;
    let command = match exists {
        true => ListCommand::Rename(name.into()),
        false => ListCommand::Create(name.into()),
    };
    let outcome = lists.execute(id, &command)?;
    *last_write = outcome.last_position.or(*last_write);
    Ok(Ok(()))
}

/// Waits until `names` has processed `last_write` (our own last write, if any).
fn caught_up(
    names: &ProjectionRunner<Names>,
    last_write: Option<Position>,
) -> Result<(), Box<dyn StdError>> {
    match last_write {
        Some(at) if !names.wait_for(at, Duration::from_secs(30))? => {
            Err("the names projection did not catch up".into())
        }
        _ => Ok(()),
    }
}

/// Runs the demo on a store in `dir`, telling the story to `out`.
pub(crate) fn run(dir: &Path, out: &mut dyn Write) -> Result<Report, Box<dyn StdError>> {
    let store = Store::open(dir)?;
    let lists = Repository::<ShoppingList>::new(&store, Default::default())?;
    let names = ProjectionRunner::start(&store, "list-names", Names::default())?;
    let mut last = None;
    let mut refused = Vec::new();
    let steps = [("l1", "groceries"), ("l2", "groceries"), ("l1", "weekly"), ("l2", "groceries")];
    for (id, name) in steps {
        match claim(&lists, &names, &mut last, id, name)? {
            Ok(()) => writeln!(out, "{id} is now called {name:?}")?,
            Err(why) => {
                writeln!(out, "{id} cannot be called {name:?}: {why}")?;
                refused.push(why);
            }
        }
    }
    for item in ["milk", "bread", "eggs"] {
        lists.execute("l2", &ListCommand::Add(item.into()))?;
    }
    lists.execute("l2", &ListCommand::Remove("bread".into()))?;
    if let Err(e) = lists.execute("l2", &ListCommand::Remove("caviar".into())) {
        writeln!(out, "removing caviar from l2: {e}")?;
    }
    let items = lists.read("l2", |list, _| list.items.clone())?;
    writeln!(out, "l2 holds {items:?}")?;
    caught_up(&names, last)?;
    let names_now = names.read(|n| n.owner.clone());
    writeln!(out, "names: {names_now:?}")?;
    let (_, stopped) = names.stop();
    stopped?;
    store.close();
    Ok(Report { names: names_now, refused, items })
}

fn main() -> Result<(), Box<dyn StdError>> {
    let dir = tempfile::tempdir()?;
    let report = run(dir.path(), &mut std::io::stdout())?;
    let (names, refused, items) = (report.names.len(), report.refused.len(), report.items.len());
    println!("{names} names, {refused} refused, {items} items on l2");
    Ok(())
}
