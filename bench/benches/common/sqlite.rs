//! SQLite's side of every workload: the event store most users would otherwise pick, built the
//! way it is usually built. WAL mode, `synchronous=FULL` (an fsync of the WAL per commit, the
//! same durability as annal's default), one table with the global position as its primary key
//! and unique indexes on the event id and on (stream, version), and an append that checks the
//! stream's expected version inside a `BEGIN IMMEDIATE` transaction.
//!
//! Included only by the targets that compare against SQLite, so annal never depends on it.

#![allow(dead_code, reason = "each target that includes this module uses a different part of it")]

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Barrier, Mutex},
    thread,
    time::{Duration, Instant},
};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::common::{
    EVENT_TYPE, Latencies, Layout, payload,
    raw::{Budget, Writes},
    stream_name,
};

/// The schema of the issue, as a user would write it.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS events (
        position INTEGER PRIMARY KEY,
        stream   TEXT    NOT NULL,
        version  INTEGER NOT NULL,
        event_id BLOB    NOT NULL UNIQUE,
        type     TEXT    NOT NULL,
        data     BLOB    NOT NULL,
        UNIQUE (stream, version)
    );";

/// The file name of the database inside its directory.
const DB_FILE: &str = "events.db";

/// An SQLite event store in a directory of its own.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

/// The stream was not at the expected version.
#[derive(Debug)]
pub struct WrongExpectedVersion;

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`; `durable` selects `synchronous=FULL`,
    /// otherwise `OFF` (for building stores fast, as annal's `Durability::None`).
    pub fn open(dir: &Path, durable: bool) -> rusqlite::Result<SqliteStore> {
        std::fs::create_dir_all(dir).expect("create SQLite directory");
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStore { conn, path })
    }

    /// Appends `count` events of `data` to `stream` if its last version is `expected` (`None`:
    /// no events), in one `BEGIN IMMEDIATE` transaction. Returns the stream's new last version.
    pub fn append(
        &mut self,
        stream: &str,
        expected: Option<u64>,
        count: usize,
        data: &[u8],
    ) -> rusqlite::Result<Result<u64, WrongExpectedVersion>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<i64> = tx
            .prepare_cached("SELECT MAX(version) FROM events WHERE stream = ?1")?
            .query_row([stream], |row| row.get(0))?;
        let current = current.map(|v| v as u64);
        if current != expected {
            return Ok(Err(WrongExpectedVersion));
        }
        let first = current.map_or(0, |v| v + 1);
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (stream, version, event_id, type, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for version in first..first + count as u64 {
                let id = uuid::Uuid::new_v4();
                let version = version as i64;
                insert.execute(params![stream, version, &id.as_bytes()[..], EVENT_TYPE, data])?;
            }
        }
        tx.commit()?;
        Ok(Ok(first + count as u64 - 1))
    }

    /// The last version of `stream`, `None` if it has no events.
    pub fn stream_version(&self, stream: &str) -> rusqlite::Result<Option<u64>> {
        self.conn
            .query_row("SELECT MAX(version) FROM events WHERE stream = ?1", [stream], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .optional()
            .map(|v| v.flatten().map(|v| v as u64))
    }

    /// Reads every event in position order, touching every column.
    pub fn read_all(&self) -> rusqlite::Result<Touched> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT position, stream, version, event_id, type, data FROM events
             ORDER BY position",
        )?;
        let mut rows = stmt.query([])?;
        let mut touched = Touched::default();
        while let Some(row) = rows.next()? {
            touched.add(row)?;
        }
        Ok(touched)
    }

    /// Reads the whole of each of `streams` in version order, touching every column.
    pub fn read_streams(&self, streams: &[u64]) -> rusqlite::Result<Touched> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT position, stream, version, event_id, type, data FROM events
             WHERE stream = ?1 AND version >= ?2 ORDER BY version",
        )?;
        let mut touched = Touched::default();
        for &s in streams {
            let mut rows = stmt.query(params![stream_name(s), 0])?;
            while let Some(row) = rows.next()? {
                touched.add(row)?;
            }
        }
        Ok(touched)
    }

    /// Reads the last event of `stream`, touching every column.
    pub fn read_last(&self, stream: &str) -> rusqlite::Result<Touched> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT position, stream, version, event_id, type, data FROM events
             WHERE stream = ?1 ORDER BY version DESC LIMIT 1",
        )?;
        let mut rows = stmt.query([stream])?;
        let mut touched = Touched::default();
        while let Some(row) = rows.next()? {
            touched.add(row)?;
        }
        Ok(touched)
    }

    /// Moves the WAL into the database file, so the file holds everything.
    pub fn checkpoint(&self) -> rusqlite::Result<()> {
        self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
    }

    /// The directory the database is in.
    pub fn dir(&self) -> &Path {
        self.path.parent().expect("database directory")
    }

    /// Bytes on disk: the database, its WAL and its shared-memory index.
    pub fn disk_bytes(&self) -> u64 {
        crate::common::dir_bytes(self.dir())
    }
}

/// What a read touched (the same as annal's [`crate::common::workload::Touched`] counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Rows read.
    pub events: u64,
    /// Payload bytes read.
    pub payload_bytes: u64,
    /// A value made of every column, so that none is optimised away.
    pub fold: u64,
}

impl Touched {
    fn add(&mut self, row: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        let position = row.get_ref(0)?.as_i64()? as u64;
        let stream = row.get_ref(1)?.as_str()?.len();
        let version = row.get_ref(2)?.as_i64()? as u64;
        let id = row.get_ref(3)?.as_blob()?;
        let kind = row.get_ref(4)?.as_str()?.len();
        let data = row.get_ref(5)?.as_blob()?;
        let id = u64::from_be_bytes(id.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]));
        self.events += 1;
        self.payload_bytes += data.len() as u64;
        let first = u64::from(data.first().copied().unwrap_or(0));
        self.fold =
            self.fold.wrapping_add(position ^ version ^ id ^ (stream + kind) as u64 ^ first);
        Ok(())
    }
}

/// Fills a new store in `dir` as `layout` says, with `synchronous=OFF` (as annal's build runs
/// without fsync), each append its own checked transaction. Returns the store and the time.
pub fn build(dir: &Path, layout: Layout) -> rusqlite::Result<(SqliteStore, Duration)> {
    let mut store = SqliteStore::open(dir, false)?;
    let data = payload(layout.payload);
    let names: Vec<String> = (0..layout.streams).map(stream_name).collect();
    let mut versions: Vec<Option<u64>> = vec![None; layout.streams as usize];
    let start = Instant::now();
    for (stream, count) in layout.appends() {
        let s = stream as usize;
        let last = store.append(&names[s], versions[s], count as usize, &data)?;
        versions[s] = Some(last.expect("builder knows the versions"));
    }
    let elapsed = start.elapsed();
    store.checkpoint()?;
    Ok((store, elapsed))
}

/// Fills a new store in `dir` as `layout` says in one transaction, without checks: for stores
/// that a workload reads but whose building is not measured.
pub fn fill(dir: &Path, layout: Layout) -> rusqlite::Result<SqliteStore> {
    let mut store = SqliteStore::open(dir, false)?;
    let data = payload(layout.payload);
    let mut versions: Vec<i64> = vec![0; layout.streams as usize];
    // A large cache for the one big transaction: both unique indexes are filled out of order.
    store.conn.pragma_update(None, "cache_size", -(256 << 10))?;
    let tx = store.conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (stream, version, event_id, type, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (stream, count) in layout.appends() {
            let name = stream_name(stream);
            for _ in 0..count {
                let id = uuid::Uuid::new_v4();
                let version = &mut versions[stream as usize];
                insert.execute(params![name, *version, &id.as_bytes()[..], EVENT_TYPE, data])?;
                *version += 1;
            }
        }
    }
    tx.commit()?;
    store.checkpoint()?;
    Ok(store)
}

/// `writers` threads each append single events to their own stream, checking the expected
/// version, until `budget` (per writer) runs out. They share one connection behind a mutex:
/// SQLite has one writer at a time anyway, and the mutex hands it over without the sleeps of
/// SQLite's busy handler, so this is SQLite's best case.
pub fn concurrent_appends(
    store: &Arc<Mutex<SqliteStore>>,
    writers: usize,
    payload_bytes: usize,
    budget: Budget,
) -> Writes {
    let barrier = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
            let data = payload(payload_bytes);
            thread::spawn(move || {
                let stream = format!("writer-{w}");
                let mut current = store.lock().expect("sqlite").stream_version(&stream).unwrap();
                let mut latencies = Latencies::default();
                barrier.wait();
                let start = Instant::now();
                while !budget.spent(latencies.len() as u64, start) {
                    let t = Instant::now();
                    let r = store.lock().expect("sqlite").append(&stream, current, 1, &data);
                    latencies.push(t.elapsed());
                    current = Some(r.expect("sqlite append").expect("expected version"));
                }
                latencies
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut out = Writes::default();
    for handle in handles {
        out.latencies.extend(handle.join().expect("writer thread"));
    }
    out.elapsed = start.elapsed();
    out.events = out.latencies.len() as u64;
    out.syncs = out.events;
    out.bytes = out.events * payload_bytes as u64;
    out
}

/// One writer appending batches of `batch` events to one stream until `budget` (in appends)
/// runs out, each batch one checked transaction.
pub fn batch_appends(
    store: &mut SqliteStore,
    batch: usize,
    payload_bytes: usize,
    budget: Budget,
) -> Writes {
    let data = payload(payload_bytes);
    let stream = format!("batches-{payload_bytes}");
    let mut current = store.stream_version(&stream).expect("sqlite");
    let mut out = Writes::default();
    let start = Instant::now();
    while !budget.spent(out.latencies.len() as u64, start) {
        let t = Instant::now();
        let r = store.append(&stream, current, batch, &data);
        out.latencies.push(t.elapsed());
        current = Some(r.expect("sqlite append").expect("expected version"));
    }
    out.elapsed = start.elapsed();
    out.syncs = out.latencies.len() as u64;
    out.events = out.syncs * batch as u64;
    out.bytes = out.events * payload_bytes as u64;
    out
}

/// Opens the store in `dir` and reads the schema and the head, as an application's start
/// would, timing it. SQLite keeps its indexes on disk, so there is nothing to rebuild.
pub fn open(dir: &Path) -> rusqlite::Result<(SqliteStore, Duration)> {
    let start = Instant::now();
    let store = SqliteStore::open(dir, true)?;
    let head: Option<i64> =
        store.conn.query_row("SELECT MAX(position) FROM events", [], |row| row.get(0))?;
    std::hint::black_box(head);
    Ok((store, start.elapsed()))
}

/// Opens the store in `dir` and reads the last event of `stream` (which must hold one), as
/// annal's [`crate::common::workload::open_read_last`] does, timing the two together.
pub fn open_read_last(dir: &Path, stream: &str) -> rusqlite::Result<(SqliteStore, Duration)> {
    let start = Instant::now();
    let store = SqliteStore::open(dir, true)?;
    let touched = store.read_last(stream)?;
    let elapsed = start.elapsed();
    assert_eq!(touched.events, 1, "{stream} holds events");
    std::hint::black_box(touched);
    Ok((store, elapsed))
}
