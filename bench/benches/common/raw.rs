//! The disk's own limits, measured on the same bytes as annal writes and reads: `write` +
//! `fdatasync` of the same record bytes with the same grouping, plain sequential write
//! bandwidth, and reading + CRC-checking segment files from the page cache (through `pread`, and
//! through a memory map either record by record or whole).

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use annal::format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_SUFFIX};
use memmap2::Mmap;

use super::{EVENT_TYPE, Latencies};

/// When a timed loop stops: after `ops` operations or `time`, whichever comes first.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most operations.
    pub ops: u64,
    /// Most time.
    pub time: Duration,
}

impl Budget {
    /// Exactly `ops` operations.
    pub fn ops(ops: u64) -> Budget {
        Budget { ops, time: Duration::MAX }
    }

    /// As many operations as fit in `time`.
    pub fn time(time: Duration) -> Budget {
        Budget { ops: u64::MAX, time }
    }

    /// Whether a loop that started at `start` and did `done` operations should stop.
    pub fn spent(&self, done: u64, start: Instant) -> bool {
        done >= self.ops || start.elapsed() >= self.time
    }
}

/// What a run of durable writes did.
#[derive(Clone, Debug, Default)]
pub struct Writes {
    /// `fdatasync` calls (one per group).
    pub syncs: u64,
    /// Events written.
    pub events: u64,
    /// Bytes written: the payload for a store, the file bytes for the raw limit.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency of each write + fdatasync.
    pub latencies: Latencies,
}

impl Writes {
    /// Adds another run's counts (for runs interleaved in slices).
    pub fn merge(&mut self, other: Writes) {
        self.syncs += other.syncs;
        self.events += other.events;
        self.bytes += other.bytes;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }

    /// Events per second.
    pub fn events_per_s(&self) -> f64 {
        super::per_second(self.events, self.elapsed)
    }

    /// Events per fsync.
    pub fn group_size(&self) -> f64 {
        self.events as f64 / self.syncs.max(1) as f64
    }
}

/// Bytes annal's record of one event takes: header, stream name, type and payload.
pub fn record_bytes(stream: &str, payload: usize) -> usize {
    RECORD_HEADER_LEN + stream.len() + EVENT_TYPE.len() + payload
}

/// Appends groups of `group_events` records of `record_bytes` each to a new file in `dir`,
/// `pwrite` + `fdatasync` per group, the file growing as a segment does.
pub fn group_appends(
    dir: &Path,
    record_bytes: usize,
    group_events: usize,
    budget: Budget,
) -> io::Result<Writes> {
    group_appends_with(dir, record_bytes, group_events, budget, None)
}

/// [`group_appends`], with `sync_latency` a sleep of that long in place of each `fdatasync`
/// (the disk of [`CountingStorage::with_sync_latency`](super::count::CountingStorage)).
pub fn group_appends_with(
    dir: &Path,
    record_bytes: usize,
    group_events: usize,
    budget: Budget,
    sync_latency: Option<Duration>,
) -> io::Result<Writes> {
    let path = dir.join("raw-appends");
    let file = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
    let buf = vec![0x5a_u8; record_bytes * group_events];
    let mut out = Writes::default();
    let start = Instant::now();
    while !budget.spent(out.syncs, start) {
        let t = Instant::now();
        file.write_all_at(&buf, out.bytes)?;
        match sync_latency {
            Some(latency) => std::thread::sleep(latency),
            None => file.sync_data()?,
        }
        out.latencies.push(t.elapsed());
        out.syncs += 1;
        out.events += group_events as u64;
        out.bytes += buf.len() as u64;
    }
    out.elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(out)
}

/// Plain sequential write bandwidth: `total_bytes` in 8 MiB writes (annal's largest group)
/// to a new file, then one `fdatasync`. Returns bytes per second.
pub fn sequential_write(dir: &Path, total_bytes: u64) -> io::Result<f64> {
    const CHUNK: usize = 8 << 20;
    let path = dir.join("raw-sequential");
    let file = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
    let buf = vec![0x5a_u8; CHUNK];
    let start = Instant::now();
    let mut written = 0u64;
    while written < total_bytes {
        file.write_all_at(&buf, written)?;
        written += CHUNK as u64;
    }
    file.sync_data()?;
    let rate = written as f64 / start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(rate)
}

/// The segment files of a store, in log order.
pub fn segment_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(SEGMENT_SUFFIX)))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads `files` through the page cache in 1 MiB `pread`s and CRC-checks every byte: the
/// limit for a `$all` read. Returns the bytes read and the time it took.
pub fn read_crc(files: &[PathBuf]) -> io::Result<(u64, Duration)> {
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    let mut total = 0u64;
    let mut crc = crc32fast::Hasher::new();
    for path in files {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut at = 0u64;
        while at < len {
            let n = buf.len().min((len - at) as usize);
            file.read_exact_at(&mut buf[..n], at)?;
            crc.update(&buf[..n]);
            at += n as u64;
        }
        total += len;
    }
    std::hint::black_box(crc.finalize());
    Ok((total, start.elapsed()))
}

/// The segment files of a store, each mapped whole, once: a `$all` read reuses its segments'
/// maps from one read to the next, so the scans below time the checksums over mapped pages,
/// not the mapping and its page faults.
pub struct Mapped(Vec<Mmap>);

impl Mapped {
    /// Maps each of `files`.
    #[expect(
        unsafe_code,
        reason = "mapping a file is unsafe by nature; the bench never changes it"
    )]
    pub fn open(files: &[PathBuf]) -> io::Result<Mapped> {
        let map = |path: &PathBuf| {
            let file = File::open(path)?;
            // SAFETY: the segments are closed, and nothing writes to them while the bench reads.
            unsafe { Mmap::map(&file) }
        };
        Ok(Mapped(files.iter().map(map).collect::<io::Result<_>>()?))
    }

    /// CRC-checks every record, record by record, as a `$all` read must: from the segment
    /// header on, each record's length prefix gives its end, and the record's bytes get a CRC
    /// of their own, compared with the stored one as annal computes it (over the length field
    /// and the bytes after the checksum field). Nothing else is decoded or checked: the limit
    /// for a `$all` read that checksums every record. Returns the records checked.
    pub fn crc_records(&self) -> u64 {
        let (mut records, mut bad) = (0u64, 0u64);
        for map in &self.0 {
            let mut at = SEGMENT_HEADER_LEN;
            while let Some(prefix) = map.get(at..at + 8) {
                let len = u32::from_le_bytes(prefix[..4].try_into().expect("4 bytes")) as usize;
                let Some(record) = map.get(at..at + len).filter(|_| len >= 8) else { break };
                let mut crc = crc32fast::Hasher::new();
                crc.update(&record[..4]);
                crc.update(&record[8..]);
                bad += u64::from(crc.finalize().to_le_bytes() != record[4..8]);
                records += 1;
                at += len;
            }
        }
        assert_eq!(bad, 0, "every record's checksum matches");
        records
    }

    /// CRC-checks all the mapped bytes as one run: the bare speed of the checksum over the
    /// same bytes, without record boundaries. Returns the bytes.
    pub fn crc_whole(&self) -> u64 {
        let mut crc = crc32fast::Hasher::new();
        for map in &self.0 {
            crc.update(map);
        }
        std::hint::black_box(crc.finalize());
        self.0.iter().map(|m| m.len() as u64).sum()
    }
}
