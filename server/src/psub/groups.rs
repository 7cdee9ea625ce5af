//! The groups a server knows: their definitions (folded from the definitions stream at start,
//! see `config`), the consumers connected to each, and the operations that change them.
//! Create, Update and Delete run one at a time; each appends a snapshot before it answers,
//! so an acknowledged change survives a restart.
//!
//! A group's library side (`Store::connect_to_group`) lives while a consumer is connected.
//! Update and Delete first end the group's Read calls and wait until the library has closed
//! the group, so that an Update's settings apply to the next consumer and a Delete can remove
//! the checkpoint.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use annal::{Position, Store, StreamVersion};
use tokio::sync::watch;
use tonic::{Code, Status};

use super::{
    config::{self, Snapshot},
    definition::{Definition, Source, Start},
    request::Asked,
};
use crate::errors::{from_store, protocol_error};

/// How long Update and Delete wait for a group's consumers to go before giving up.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How often they look.
const CLOSE_POLL: Duration = Duration::from_millis(20);

/// A group's key: what it reads and its name.
pub type Key = (Source, String);

/// A connected consumer, as GetInfo reports it.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Unique within the server.
    pub id: u64,
    /// The peer's address.
    pub from: String,
}

/// What the server keeps per group besides its definition.
struct Live {
    connections: Vec<Connection>,
    /// Becomes `true` when the group is updated or deleted: its Read calls end.
    dropped: watch::Sender<bool>,
    /// An Update or Delete is under way: new consumers are refused until it is done.
    closing: bool,
}

impl Live {
    fn new() -> Live {
        Live { connections: Vec::new(), dropped: watch::channel(false).0, closing: false }
    }
}

/// Runs `f` until the library no longer reports the subscription in use, at most
/// [`CLOSE_WAIT`]. When a group's last consumer goes, the library writes its checkpoint before
/// it frees the name, so for a moment the group is gone and its name still held.
pub fn when_free<T>(mut f: impl FnMut() -> Result<T, annal::Error>) -> Result<T, annal::Error> {
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        match f() {
            Err(annal::Error::SubscriptionInUse { .. }) if Instant::now() < deadline => {
                std::thread::sleep(CLOSE_POLL);
            }
            other => return other,
        }
    }
}

struct State {
    snapshot: Snapshot,
    version: Option<u64>,
    live: HashMap<Key, Live>,
    next_connection: u64,
}

/// The groups of one server.
pub struct Groups {
    store: Store,
    state: Mutex<State>,
    /// Serialises Create, Update and Delete.
    changes: tokio::sync::Mutex<()>,
}

/// A consumer's registration; dropping it removes the consumer from GetInfo.
pub struct Registration {
    groups: Arc<Groups>,
    key: Key,
    id: u64,
    /// The group's definition when the consumer joined.
    pub definition: Definition,
    /// Becomes `true` when the group is updated or deleted.
    pub dropped: watch::Receiver<bool>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.groups.state();
        if let Some(live) = state.live.get_mut(&self.key) {
            live.connections.retain(|c| c.id != self.id);
        }
    }
}

/// `persistent-subscription-does-not-exist`.
pub fn not_found(key: &Key) -> Status {
    let (source, group) = key;
    protocol_error(
        Code::NotFound,
        format!("Subscription group '{group}' on stream '{}' does not exist.", source.name()),
        "persistent-subscription-does-not-exist",
        &[("stream-name", source.name().to_owned()), ("group-name", group.clone())],
    )
}

fn exists(key: &Key) -> Status {
    let (source, group) = key;
    protocol_error(
        Code::AlreadyExists,
        format!("Subscription group '{group}' on stream '{}' exists.", source.name()),
        "persistent-subscription-exists",
        &[("stream-name", source.name().to_owned()), ("group-name", group.clone())],
    )
}

fn maximum_subscribers(key: &Key) -> Status {
    let (source, group) = key;
    protocol_error(
        Code::FailedPrecondition,
        format!("Maximum subscriptions reached for group '{group}' on '{}'.", source.name()),
        "maximum-subscribers-reached",
        &[("stream-name", source.name().to_owned()), ("group-name", group.clone())],
    )
}

fn key_of(d: &Definition) -> Key {
    (d.source.clone(), d.group.clone())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f).await.map_err(crate::errors::task_failed)?
}

impl Groups {
    /// The groups defined in `store`. Blocking (reads the definitions stream).
    pub fn load(store: Store) -> Result<Groups, annal::Error> {
        let loaded = config::load(&store)?;
        let mut live = HashMap::new();
        for d in &loaded.snapshot.groups {
            live.insert(key_of(d), Live::new());
        }
        tracing::info!(
            groups = loaded.snapshot.groups.len(),
            "persistent subscription groups loaded"
        );
        let state =
            State { snapshot: loaded.snapshot, version: loaded.version, live, next_connection: 0 };
        Ok(Groups { store, state: Mutex::new(state), changes: tokio::sync::Mutex::new(()) })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The definition of `key`.
    pub fn get(&self, key: &Key) -> Option<Definition> {
        self.state().snapshot.groups.iter().find(|d| key_of(d) == *key).cloned()
    }

    /// Every definition, sorted by source and name, with its connections.
    pub fn list(&self) -> Vec<(Definition, Vec<Connection>)> {
        let state = self.state();
        let mut all: Vec<(Definition, Vec<Connection>)> = state
            .snapshot
            .groups
            .iter()
            .map(|d| {
                let connections = state.live.get(&key_of(d)).map(|l| l.connections.clone());
                (d.clone(), connections.unwrap_or_default())
            })
            .collect();
        all.sort_by_key(|(d, _)| key_of(d));
        all
    }

    /// Registers a consumer of `key` from `from`, under the group's subscriber limit.
    pub fn register(self: &Arc<Self>, key: &Key, from: String) -> Result<Registration, Status> {
        let mut state = self.state();
        let definition = state
            .snapshot
            .groups
            .iter()
            .find(|d| key_of(d) == *key)
            .cloned()
            .ok_or_else(|| not_found(key))?;
        let id = state.next_connection;
        state.next_connection += 1;
        let live = state.live.get_mut(key).expect("every definition has its live part");
        if live.closing {
            return Err(Status::unavailable(format!(
                "group '{}' is being updated or deleted",
                definition.group
            )));
        }
        let max = usize::try_from(definition.settings.max_subscriber_count).unwrap_or(0);
        if max > 0 && live.connections.len() >= max {
            return Err(maximum_subscribers(key));
        }
        live.connections.push(Connection { id, from });
        let dropped = live.dropped.subscribe();
        Ok(Registration { groups: Arc::clone(self), key: key.clone(), id, definition, dropped })
    }

    /// Creates a group; `persistent-subscription-exists` if it is defined.
    pub async fn create(self: &Arc<Self>, asked: Asked) -> Result<(), Status> {
        let _one = self.changes.lock().await;
        let key = (asked.source.clone(), asked.group.clone());
        if self.get(&key).is_some() {
            return Err(exists(&key));
        }
        if let Some(f) = &asked.filter {
            super::consumer::compile(f)?;
        }
        let this = Arc::clone(self);
        blocking(move || {
            let (start_position, min_revision) = this.start_of(&asked)?;
            let (mut snapshot, version) = {
                let state = this.state();
                (state.snapshot.clone(), state.version)
            };
            let definition = Definition {
                id: snapshot.next_id,
                source: asked.source,
                group: asked.group,
                start: asked.start,
                start_position,
                min_revision,
                filter: asked.filter,
                settings: asked.settings,
            };
            // A checkpoint left by an older server under this id would be stale.
            this.store.delete_subscription(&definition.library_name()).map_err(from_store)?;
            snapshot.next_id += 1;
            snapshot.format = config::CONFIG_FORMAT;
            snapshot.groups.push(definition);
            this.commit(snapshot, version)?;
            this.state().live.insert(key, Live::new());
            Ok(())
        })
        .await
    }

    /// The log position a new group's checkpoint starts at, and the first revision a stream
    /// group delivers.
    fn start_of(&self, asked: &Asked) -> Result<(u64, u64), Status> {
        let head = self.store.head().get();
        match (&asked.source, asked.start) {
            (_, Start::End) => {
                let next = match &asked.source {
                    Source::Stream(s) => self.store.stream_version(s).map_or(0, |v| v.get() + 1),
                    Source::All => 0,
                };
                Ok((head, next))
            }
            (Source::All, Start::First) => Ok((0, 0)),
            (Source::All, Start::Position(p) | Start::Revision(p)) => {
                if p > head {
                    return Err(Status::invalid_argument(format!(
                        "start position {p} is past the head {head}"
                    )));
                }
                Ok((p, 0))
            }
            (Source::Stream(s), Start::First) => Ok((self.position_of(s, 0)?.unwrap_or(head), 0)),
            (Source::Stream(s), Start::Revision(r) | Start::Position(r)) => {
                Ok((self.position_of(s, r)?.unwrap_or(head), r))
            }
        }
    }

    /// The position of `stream`'s first event at or after `revision`, if it has one.
    fn position_of(&self, stream: &str, revision: u64) -> Result<Option<u64>, Status> {
        let read = match self.store.read_stream_forward(stream, StreamVersion::from(revision), 1) {
            Ok(read) => read,
            Err(annal::Error::StreamNotFound { .. }) => return Ok(None),
            Err(e) => return Err(from_store(e)),
        };
        match read.into_iter().next() {
            Some(Ok(event)) => Ok(Some(event.position().get())),
            Some(Err(e)) => Err(from_store(e)),
            None => Ok(None),
        }
    }

    /// Appends `snapshot` and makes it current.
    fn commit(&self, snapshot: Snapshot, version: Option<u64>) -> Result<(), Status> {
        let saved = config::save(&self.store, &snapshot, version).map_err(from_store)?;
        let mut state = self.state();
        state.snapshot = snapshot;
        state.version = Some(saved);
        Ok(())
    }

    /// Ends the Read calls of `key`, refuses new ones until [`reopen`](Self::reopen), and
    /// waits until the library has closed its group.
    fn close(&self, key: &Key, definition: &Definition) -> Result<(), Status> {
        {
            let mut state = self.state();
            if let Some(live) = state.live.get_mut(key) {
                let _ = live.dropped.send(true);
                live.dropped = watch::channel(false).0;
                live.closing = true;
            }
        }
        let name = definition.library_name();
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.store.group_info(&name).is_some() {
            if Instant::now() >= deadline {
                return Err(Status::unavailable(format!(
                    "the consumers of group '{}' did not leave in time",
                    definition.group
                )));
            }
            std::thread::sleep(CLOSE_POLL);
        }
        Ok(())
    }

    /// Lets consumers of `key` in again after [`close`](Self::close).
    fn reopen(&self, key: &Key) {
        if let Some(live) = self.state().live.get_mut(key) {
            live.closing = false;
        }
    }

    /// Changes a group's settings; its consumers are dropped and reconnect to the new ones.
    pub async fn update(self: &Arc<Self>, asked: Asked) -> Result<(), Status> {
        let _one = self.changes.lock().await;
        let key = (asked.source.clone(), asked.group.clone());
        let current = self.get(&key).ok_or_else(|| not_found(&key))?;
        let this = Arc::clone(self);
        blocking(move || {
            let closed = this.close(&key, &current);
            let updated = closed.and_then(|()| {
                let (mut snapshot, version) = {
                    let state = this.state();
                    (state.snapshot.clone(), state.version)
                };
                let d = snapshot.groups.iter_mut().find(|d| key_of(d) == key).expect("defined");
                // Where it started is fixed at creation (its checkpoint has moved on since).
                d.settings = asked.settings;
                this.commit(snapshot, version)
            });
            this.reopen(&key);
            updated
        })
        .await
    }

    /// Deletes a group and its checkpoint; its consumers are dropped.
    pub async fn delete(self: &Arc<Self>, key: Key) -> Result<(), Status> {
        let _one = self.changes.lock().await;
        let current = self.get(&key).ok_or_else(|| not_found(&key))?;
        let this = Arc::clone(self);
        blocking(move || {
            let deleted = this.close(&key, &current).and_then(|()| {
                // The checkpoint first: if it cannot go, the group stays. A crash before the
                // snapshot below leaves the group defined without its checkpoint, which then
                // restarts from where it was created (delivered again, never lost).
                let name = current.library_name();
                when_free(|| this.store.delete_subscription(&name)).map_err(from_store)?;
                let (mut snapshot, version) = {
                    let state = this.state();
                    (state.snapshot.clone(), state.version)
                };
                snapshot.groups.retain(|d| key_of(d) != key);
                this.commit(snapshot, version)
            });
            match deleted {
                Ok(()) => drop(this.state().live.remove(&key)),
                Err(_) => this.reopen(&key),
            }
            deleted
        })
        .await
    }

    /// The saved checkpoint of a group with no consumer connected.
    pub fn saved_checkpoint(&self, d: &Definition) -> Option<Position> {
        self.store.subscription_checkpoint(&d.library_name()).ok().flatten()
    }
}
