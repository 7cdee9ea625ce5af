//! A simulated, fault-injecting disk for tests: it remembers, per file, what is written and
//! what is durable, and per directory which entries are durable, so a test can "lose power" at
//! any I/O operation and see what a real disk might have kept.
//!
//! The model (the fault model of `docs/durability.md`):
//! - `write_at` and `set_len` change the file as readers see it at once, but are durable only
//!   after the file's next `sync_data`. A crash keeps each unsynced operation independently:
//!   whole, not at all, cut at any byte, or with a run of its bytes replaced by garbage, so
//!   unsynced writes may survive out of order.
//! - `create`, `rename` and `remove` change the directory at once and are durable only after
//!   `sync_dir` of their directory. A crash returns every directory to its last synced state.
//! - Any operation can be made to fail (EIO, ENOSPC, ...): once, or from the N-th operation on
//!   (a power cut: nothing after it reaches the disk), or the N-th `sync_data` alone can fail;
//!   syncs can be slowed, so that work piles up behind them as on a real disk. Durable bytes
//!   can be flipped, and a write can be misdirected to another offset, to model media and
//!   firmware faults.
//!
//! Every choice comes from a seeded generator, so a failing case reproduces from its seed.
//!
//! Built only with the crate feature `simulation`: an application's tests can put it behind
//! their own stores; the library does not carry it otherwise.

use std::{
    any::Any,
    collections::{BTreeMap, HashMap, HashSet},
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use super::{ReadView, Storage, StorageFile};

/// A simulated disk. Clones share the same disk.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// Directory entries as the running process sees them: full path → inode.
    entries: BTreeMap<PathBuf, u64>,
    /// Directory entries as of the last `sync_dir` of their directory.
    durable_entries: BTreeMap<PathBuf, u64>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    /// Operations that change the disk (or sync it), counted from 0.
    ops: u64,
    fault: Option<Fault>,
    /// `sync_data` calls so far, and the number of the one planned to fail, if any.
    syncs: u64,
    failing_sync: Option<u64>,
    /// How long each `sync_data` waits before it syncs, as a slow disk would.
    sync_delay: std::time::Duration,
    misdirect: Option<i64>,
    locks: HashSet<PathBuf>,
}

#[derive(Clone, Default)]
struct Inode {
    /// The bytes as readers see them.
    data: Vec<u8>,
    /// The bytes as of the last `sync_data`.
    durable: Vec<u8>,
    /// What changed since then, in order.
    unsynced: Vec<Unsynced>,
}

#[derive(Clone)]
enum Unsynced {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Copy)]
struct Fault {
    at_op: u64,
    kind: io::ErrorKind,
    /// Every operation from `at_op` on fails, not just that one.
    sticky: bool,
}

/// The kind of operation, for the fault counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Write,
    SetLen,
    Sync,
    Create,
    Remove,
    Rename,
    SyncDir,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// How many disk-changing operations (writes, truncations, syncs, creations, renames,
    /// removals, directory syncs) have run so far. Crash points are numbered by it.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Makes operation number `op` fail with `kind`, and every later one too when `sticky`
    /// (a power cut at that operation).
    pub fn fail_at(&self, op: u64, kind: io::ErrorKind, sticky: bool) {
        self.lock().fault = Some(Fault { at_op: op, kind, sticky });
    }

    /// Removes any planned failure.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.fault = None;
        state.failing_sync = None;
    }

    /// Makes the `n`-th `sync_data` from now (0 for the next one) fail with EIO, once; the
    /// bytes it was to make durable stay unsynced.
    pub fn fail_sync(&self, n: u64) {
        let mut state = self.lock();
        state.failing_sync = Some(state.syncs + n);
    }

    /// Makes every `sync_data` wait `delay` first (without holding the disk), so that work
    /// piles up behind a sync as it does on a real disk.
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.lock().sync_delay = delay;
    }

    /// Sends the next write `delta` bytes away from where it was aimed.
    pub fn misdirect_next_write(&self, delta: i64) {
        self.lock().misdirect = Some(delta);
    }

    /// Flips one bit of a file, in its durable and its visible bytes (media corruption).
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> io::Result<()> {
        let mut state = self.lock();
        let inode = state.inode_mut(path)?;
        let at = offset as usize;
        for bytes in [&mut inode.data, &mut inode.durable] {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 1 << (bit % 8);
            }
        }
        Ok(())
    }

    /// The bytes of a file as the running process sees them.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.entries.get(path)?;
        Some(state.inodes[inode].data.clone())
    }

    /// The disk as it might be after a power loss now: the durable state, plus each unsynced
    /// operation kept, dropped, torn or garbled as the generator seeded by `seed` decides.
    /// Locks and planned faults do not survive.
    pub fn crash(&self, seed: u64) -> SimDisk {
        let state = self.lock();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut inodes = HashMap::new();
        for (path, &ino) in &state.durable_entries {
            if inodes.contains_key(&ino) {
                continue;
            }
            let old = &state.inodes[&ino];
            let mut data = old.durable.clone();
            for op in &old.unsynced {
                apply_after_crash(&mut data, op, &mut rng);
            }
            let _ = path;
            inodes.insert(ino, Inode { durable: data.clone(), data, unsynced: Vec::new() });
        }
        let new = State {
            entries: state.durable_entries.clone(),
            durable_entries: state.durable_entries.clone(),
            inodes,
            next_inode: state.next_inode,
            ..State::default()
        };
        SimDisk { state: Arc::new(Mutex::new(new)) }
    }
}

/// What a crash leaves of one unsynced operation.
fn apply_after_crash(data: &mut Vec<u8>, op: &Unsynced, rng: &mut Rng) {
    match op {
        Unsynced::SetLen(len) => {
            if rng.below(2) == 0 {
                data.resize(*len as usize, 0);
            }
        }
        Unsynced::Write { offset, bytes } => {
            let kept: Vec<u8> = match rng.below(4) {
                0 => bytes.clone(),
                1 => return,
                2 => bytes[..rng.below(bytes.len() as u64 + 1) as usize].to_vec(),
                _ => {
                    let mut garbled = bytes.clone();
                    let from = rng.below(garbled.len() as u64 + 1) as usize;
                    let to = from + rng.below((garbled.len() - from) as u64 + 1) as usize;
                    for b in &mut garbled[from..to] {
                        *b = rng.below(256) as u8;
                    }
                    garbled
                }
            };
            write_into(data, *offset, &kept);
        }
    }
}

fn write_into(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let end = offset as usize + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset as usize..end].copy_from_slice(bytes);
}

impl State {
    /// Counts an operation and returns the planned failure, if this is where it strikes.
    fn tick(&mut self, _op: Op) -> io::Result<()> {
        let n = self.ops;
        self.ops += 1;
        match self.fault {
            Some(f) if n == f.at_op || (f.sticky && n > f.at_op) => {
                Err(io::Error::new(f.kind, format!("simulated failure at operation {n}")))
            }
            _ => Ok(()),
        }
    }

    fn inode_mut(&mut self, path: &Path) -> io::Result<&mut Inode> {
        let ino = *self.entries.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(self.inodes.get_mut(&ino).expect("entry points at an inode"))
    }
}

struct LockGuard {
    disk: SimDisk,
    dir: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.disk.lock().locks.remove(&self.dir);
    }
}

impl Storage for SimDisk {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        if !self.lock().locks.insert(dir.to_path_buf()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(LockGuard { disk: self.clone(), dir: dir.to_path_buf() }))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        let names = state.entries.keys().filter(|p| p.parent() == Some(dir));
        Ok(names.filter_map(|p| p.file_name()?.to_str().map(str::to_owned)).collect())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.lock();
        state.tick(Op::Create)?;
        if state.entries.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = state.next_inode;
        state.next_inode += 1;
        state.inodes.insert(ino, Inode::default());
        state.entries.insert(path.to_path_buf(), ino);
        Ok(Box::new(SimFile { disk: self.clone(), ino }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let state = self.lock();
        let ino = *state.entries.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(SimFile { disk: self.clone(), ino }))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let state = self.lock();
        let ino = state.entries.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(state.inodes[ino].data.len() as u64)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.tick(Op::Remove)?;
        state.entries.remove(path).map(|_| ()).ok_or(io::ErrorKind::NotFound.into())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.tick(Op::Rename)?;
        let ino = state.entries.remove(from).ok_or(io::ErrorKind::NotFound)?;
        state.entries.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.tick(Op::SyncDir)?;
        state.durable_entries.retain(|p, _| p.parent() != Some(dir));
        let visible: Vec<_> = state
            .entries
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        state.durable_entries.extend(visible);
        Ok(())
    }
}

/// An open file of a [`SimDisk`]; it keeps working after its entry is renamed or removed.
struct SimFile {
    disk: SimDisk,
    ino: u64,
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut State, u64) -> io::Result<T>) -> io::Result<T> {
        let mut state = self.disk.lock();
        f(&mut state, self.ino)
    }
}

impl StorageFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        self.with(|s, ino| Ok(s.inodes[&ino].data.len() as u64))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with(|s, ino| {
            let data = &s.inodes[&ino].data;
            let end = offset as usize + buf.len();
            let src = data.get(offset as usize..end).ok_or(io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(src);
            Ok(())
        })
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.with(|s, ino| {
            s.tick(Op::Write)?;
            let offset = match s.misdirect.take() {
                Some(delta) => offset.saturating_add_signed(delta),
                None => offset,
            };
            let inode = s.inodes.get_mut(&ino).expect("open inode");
            write_into(&mut inode.data, offset, buf);
            inode.unsynced.push(Unsynced::Write { offset, bytes: buf.to_vec() });
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|s, ino| {
            s.tick(Op::SetLen)?;
            let inode = s.inodes.get_mut(&ino).expect("open inode");
            inode.data.resize(len as usize, 0);
            inode.unsynced.push(Unsynced::SetLen(len));
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        let delay = self.disk.lock().sync_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        self.with(|s, ino| {
            s.tick(Op::Sync)?;
            let n = s.syncs;
            s.syncs += 1;
            if s.failing_sync == Some(n) {
                return Err(io::Error::other(format!("simulated failure of sync {n}")));
            }
            let inode = s.inodes.get_mut(&ino).expect("open inode");
            inode.durable = inode.data.clone();
            inode.unsynced.clear();
            Ok(())
        })
    }

    fn view(&self, len: u64) -> io::Result<Arc<dyn ReadView>> {
        self.with(|s, ino| {
            let data = &s.inodes[&ino].data;
            let bytes = data.get(..len as usize).ok_or(io::ErrorKind::UnexpectedEof)?;
            Ok(Arc::new(bytes.to_vec()) as Arc<dyn ReadView>)
        })
    }
}

/// xorshift64*: small, seeded, good enough to pick fates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}
