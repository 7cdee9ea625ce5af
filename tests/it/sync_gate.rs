//! A gate for the store's `fdatasync`s, for tests that must see what the writer has or has not
//! answered while a group waits for its sync, without timing: shut, every sync waits at it until
//! let through (or the gate opens), and the test can wait until a given number wait there.

use std::{
    io,
    path::Path,
    sync::{Arc, Condvar, Mutex},
};

use annal::io::{Interpose, ReadView, StorageFile};

/// What the gate does with the syncs that reach it.
#[derive(Default)]
struct GateState {
    /// Shut: each sync waits for a pass (or for the gate to open).
    shut: bool,
    /// Syncs that may go through while shut.
    passes: usize,
    /// Whether the next sync to go through fails.
    fail_next: bool,
    /// Syncs waiting at the gate now.
    waiting: usize,
}

/// A gate every `fdatasync` of the store's files goes through (as the storage
/// `Interposed(gate.clone())`); open until shut.
#[derive(Clone, Default)]
pub struct SyncGate(Arc<(Mutex<GateState>, Condvar)>);

impl SyncGate {
    fn change(&self, f: impl FnOnce(&mut GateState)) {
        f(&mut self.0.0.lock().unwrap());
        self.0.1.notify_all();
    }

    /// Shuts the gate (syncs wait at it) or opens it (every sync goes through).
    pub fn set_shut(&self, shut: bool) {
        self.change(|s| s.shut = shut);
    }

    /// Lets `n` more syncs through the shut gate.
    pub fn let_through(&self, n: usize) {
        self.change(|s| s.passes += n);
    }

    /// Makes the next sync that goes through fail (before it reaches the file).
    pub fn fail_next(&self) {
        self.change(|s| s.fail_next = true);
    }

    /// Waits until `n` syncs wait at the gate.
    pub fn await_waiting(&self, n: usize) {
        let mut state = self.0.0.lock().unwrap();
        while state.waiting != n {
            state = self.0.1.wait(state).unwrap();
        }
    }

    fn pass(&self) -> io::Result<()> {
        let mut state = self.0.0.lock().unwrap();
        state.waiting += 1;
        self.0.1.notify_all();
        while state.shut && state.passes == 0 {
            state = self.0.1.wait(state).unwrap();
        }
        if state.shut {
            state.passes -= 1;
        }
        state.waiting -= 1;
        self.0.1.notify_all();
        if std::mem::take(&mut state.fail_next) {
            return Err(io::Error::other("the gate failed this sync"));
        }
        Ok(())
    }
}

/// Opens the gate when dropped, so that a failing test does not leave the writer stuck.
pub struct OpenOnDrop(pub SyncGate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.set_shut(false);
    }
}

impl Interpose for SyncGate {
    fn file(&self, _: &Path, file: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        Box::new(GatedFile { file, gate: self.clone() })
    }
}

struct GatedFile {
    file: Box<dyn StorageFile>,
    gate: SyncGate,
}

impl StorageFile for GatedFile {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_at(offset, buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_at(offset, buf)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.gate.pass()?;
        self.file.sync_data()
    }

    fn view(&self, len: u64) -> io::Result<Arc<dyn ReadView>> {
        self.file.view(len)
    }

    fn view_random(&self, len: u64) -> io::Result<Arc<dyn ReadView>> {
        self.file.view_random(len)
    }
}
