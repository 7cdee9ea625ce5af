//! Which persistent subscriptions are held in an open store, and the lookups by name that
//! work whether a subscription is held or not.

use crate::sync;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, Weak, atomic::Ordering},
};

use crate::{
    error::{Error, Result},
    options::Durability,
    shared::Shared,
    types::Position,
};

use super::{acks::AckState, checkpoint, group::Groups};

/// The persistent subscriptions held in one open store, by name.
#[derive(Default)]
pub(crate) struct Registry {
    held: Mutex<Held>,
    /// The live consumer groups. Taken before `held`, never while holding it.
    groups: Mutex<Groups>,
}

#[derive(Default)]
pub(super) struct Held {
    /// Held names; an entry stays until its state is dropped, even after the last `Arc`.
    pub names: HashMap<String, Weak<AckState>>,
    /// The store is closed: nothing may be opened or written any more.
    pub closed: bool,
}

impl Registry {
    pub(super) fn lock(&self) -> MutexGuard<'_, Held> {
        sync::lock(&self.held)
    }

    /// The live consumer groups.
    pub(super) fn groups(&self) -> MutexGuard<'_, Groups> {
        sync::lock(&self.groups)
    }

    /// Frees `name`; the holder's last handle is gone.
    pub(super) fn release(&self, name: &str) {
        self.lock().names.remove(name);
    }

    /// The live state of `name`, if it is held.
    fn live(&self, name: &str) -> Option<Arc<AckState>> {
        self.lock().names.get(name).and_then(Weak::upgrade)
    }

    /// Writes every held checkpoint a last time, then refuses all checkpoint writes. Called
    /// when the store closes, before it releases the directory lock.
    pub fn close(&self) {
        let live: Vec<Arc<AckState>> = {
            let mut held = self.lock();
            held.closed = true;
            held.names.values().filter_map(Weak::upgrade).collect()
        };
        for state in &live {
            state.close();
        }
    }
}

/// The head minus the checkpoint of `name`: the live one if it is held, else the saved one.
pub(crate) fn lag_of(shared: &Shared, name: &str) -> Result<Option<u64>> {
    let checkpoint = current_checkpoint(shared, name)?;
    Ok(checkpoint.map(|p| shared.head().saturating_sub(p)))
}

/// The checkpoint of `name` as written to disk; `None` if it has none.
pub(crate) fn saved_checkpoint(shared: &Shared, name: &str) -> Result<Option<Position>> {
    checkpoint::validate_name(name)?;
    if let Some(state) = shared.subscriptions().live(name) {
        return Ok(Some(Position(state.saved.load(Ordering::Acquire))));
    }
    checkpoint::read(&*shared.options().storage, shared.dir(), name).map(|p| p.map(Position))
}

fn current_checkpoint(shared: &Shared, name: &str) -> Result<Option<u64>> {
    checkpoint::validate_name(name)?;
    if let Some(state) = shared.subscriptions().live(name) {
        return Ok(Some(state.checkpoint()));
    }
    checkpoint::read(&*shared.options().storage, shared.dir(), name)
}

/// Removes the checkpoint of `name`, which must not be held; whether it existed.
pub(crate) fn delete(shared: &Shared, name: &str) -> Result<bool> {
    checkpoint::validate_name(name)?;
    let held = shared.subscriptions().lock();
    if held.closed {
        return Err(Error::Closed);
    }
    if held.names.contains_key(name) {
        return Err(Error::SubscriptionInUse { name: name.to_owned() });
    }
    let sync = shared.options().durability == Durability::Fsync;
    checkpoint::remove(&*shared.options().storage, shared.dir(), name, sync)
}
