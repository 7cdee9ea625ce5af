//! The one policy for poisoned locks: take the guard anyway (`PoisonError::into_inner`).
//!
//! A std lock is poisoned when a thread panics while holding it. In annal only a bug panics,
//! and it is sound to go on reading what such a lock guards:
//!
//! - The writer holds a write lock only to publish a durable group (segment index, then stream
//!   index); a panic there is caught by the writer thread, which poisons the store, so nothing
//!   is written or published after it. Every entry either index holds points at a record that
//!   was fsynced and whose segment length was published first, and readers verify each record
//!   they decode, so no reader can see an event that is not durable. What a panic in the middle
//!   of the stream index's update can leave is a group indexed in part: stream reads may then
//!   see some of its events (all durable, all visible after a reopen) before the head covers
//!   them, as after the writer's index refusal, which poisons the store too. `$all` reads never
//!   look past the head, published last, so they never see it.
//! - Every other lock guards state that each change replaces whole (a segment list, a read
//!   view, a flag) or that a panic cannot leave half-changed (std's collections stay valid).
//!
//! Panicking instead would make every later read of a poisoned store panic too, although the
//! published log is intact. See `docs/design.md`, "Locks".

use std::sync::{LockResult, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The guard (or a condition variable's wait result), whether or not the lock is poisoned.
pub(crate) fn recover<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(|e| e.into_inner())
}

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    recover(mutex.lock())
}

/// Takes `lock` for reading, poisoned or not.
pub(crate) fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    recover(lock.read())
}

/// Takes `lock` for writing, poisoned or not.
pub(crate) fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    recover(lock.write())
}
