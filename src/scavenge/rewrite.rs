//! Rewriting a run of consecutive sealed segments as one, without the records a scavenge
//! removes, and switching to the new file crash-safely:
//!
//! 1. write the header and every kept record, byte for byte as they were (each one verified
//!    against its checksum when it was decided), to `<first segment>.scav`;
//! 2. `fdatasync` it, read it back and check it holds exactly the kept records;
//! 3. rename it over the first segment (atomic: a crash leaves the old file or the new one,
//!    both complete), then fsync the directory;
//! 4. if it merged several segments, remove the others and fsync the directory again.
//!
//! A `.scav` file left by a crash is an unfinished rewrite whose originals are all still in
//! place; recovery removes it. Segments left after step 3 lie inside the span of the new first
//! segment, which holds everything they kept; recovery removes them (`recovery::merged`).

use std::{collections::HashMap, path::Path, sync::Arc};

use crate::{
    error::{Error, Result},
    format::{CorruptionKind, SEGMENT_HEADER_LEN, SegmentHeader, scan_any, scan_compacted},
    index::{BuildError, Origin, SegmentIndex, SparseIndex, build_index, files},
    io::{ReadView, Storage},
    options::Durability,
    segment::Segment,
    shared::Shared,
};

use super::{Control, plan::Plan};

/// The suffix of a segment being rewritten.
pub(crate) const SCAVENGE_SUFFIX: &str = ".scav";

/// Bytes gathered before each write to the new file.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// One sealed segment with every record decided.
pub(crate) struct Decided {
    pub segment: Arc<Segment>,
    view: Arc<dyn ReadView>,
    /// Offset and length of each record that stays, in order.
    kept: Vec<(usize, usize)>,
    /// Bytes of the records that stay.
    pub kept_bytes: u64,
    /// Records that go.
    pub removed: u64,
    /// For each stream that loses events here: the first version it keeps.
    pub keep_from: HashMap<String, u64>,
}

/// Reads `segment`, verifying every record, and decides each with `plan`.
pub(crate) fn decide(segment: &Arc<Segment>, plan: &mut Plan) -> Result<Decided> {
    let len = segment.committed_len();
    let view = segment.view(len)?;
    let bytes = &view.bytes()[..len as usize];
    let corruption = |offset: usize, kind| Error::Corruption {
        segment: segment.name().to_owned(),
        offset: offset as u64,
        kind,
    };
    let (mut kept, mut kept_bytes, mut removed) = (Vec::new(), 0, 0);
    let mut keep_from: HashMap<String, u64> = HashMap::new();
    let end = scan_any(bytes, &segment.header(), |offset, record| {
        if plan.removes(&record) {
            removed += 1;
            let next = record.version() + 1;
            let keep = keep_from.entry(record.stream().to_owned()).or_insert(next);
            *keep = (*keep).max(next);
        } else {
            kept.push((offset, record.len()));
            kept_bytes += record.len() as u64;
        }
        Ok(())
    })
    .map_err(|(offset, kind)| corruption(offset, kind))?;
    if let Some(damage) = end.damage {
        return Err(corruption(damage.record_offset, damage.kind));
    }
    let segment = Arc::clone(segment);
    Ok(Decided { segment, view: Arc::clone(&view), kept, kept_bytes, removed, keep_from })
}

/// Writes the kept records of the consecutive segments `run` to one new segment and puts it in
/// place of them on disk; `None` if cancelled before the switch (the new file is removed).
pub(crate) fn merge(
    shared: &Shared,
    run: &[Decided],
    control: &Control,
) -> Result<Option<Segment>> {
    let (first, last) = (&run[0].segment, &run[run.len() - 1].segment);
    let span = u32::try_from(last.end_position() - first.base_position())
        .expect("runs are bounded to spans < 2^32 positions");
    // The records are copied byte for byte, so the new file keeps their layout (a run never
    // mixes layouts: see `fits`): the source's format version, but at least 2, the first with a
    // span (version 1 shares version 2's record layout).
    debug_assert!(run.iter().all(|d| d.segment.layout() == first.layout()));
    let version = first.header().version.max(2);
    let header = SegmentHeader { span, version, ..first.header() };
    let storage = &*shared.options().storage;
    let path = first.path();
    let tmp = path.with_file_name(format!("{}{SCAVENGE_SUFFIX}", first.name()));
    let io = |op| Error::io(op, &tmp);
    // A file left by an attempt that failed in this process: it was never renamed.
    let _ = storage.remove(&tmp);
    let file = storage.create(&tmp).map_err(io("create scavenged segment"))?;
    let mut index = SparseIndex::new(header.base_position, shared.options().index_stride);
    let mut buf = Vec::with_capacity(WRITE_CHUNK_BYTES + SEGMENT_HEADER_LEN);
    buf.extend_from_slice(&header.encode());
    let (mut written, mut records) = (0u64, 0usize);
    for decided in run {
        let bytes = decided.view.bytes();
        for &(offset, len) in &decided.kept {
            let record = &bytes[offset..offset + len];
            let position = u64::from_le_bytes(record[8..16].try_into().expect("8 bytes"));
            let at = u32::try_from(written as usize + buf.len()).expect("< 4 GiB");
            index.note(position, at);
            buf.extend_from_slice(record);
            records += 1;
            if buf.len() >= WRITE_CHUNK_BYTES {
                file.write_at(written, &buf).map_err(io("write scavenged segment"))?;
                written += buf.len() as u64;
                buf.clear();
                if control.is_cancelled() {
                    return discard(storage, &tmp).map(|()| None);
                }
            }
        }
    }
    file.write_at(written, &buf).map_err(io("write scavenged segment"))?;
    let len = written + buf.len() as u64;
    file.sync_data().map_err(io("fsync scavenged segment"))?;
    let index_bytes =
        check_written(&*file, &header, len, records, &tmp, |stream| first_link(run, stream))?;
    if control.is_cancelled() {
        return discard(storage, &tmp).map(|()| None);
    }
    let dir = shared.dir();
    // The new segment's index goes first: until the rename it is stale (bound to a segment
    // that is not there yet), which an open notices and scans instead.
    let index_name = files::index_file_name(first.name());
    let durable = shared.options().durability == Durability::Fsync;
    files::write_atomically(storage, dir, &index_name, &index_bytes, durable)
        .map_err(Error::io("write index file", &dir.join(&index_name)))?;
    storage.rename(&tmp, path).map_err(Error::io("rename scavenged segment", path))?;
    storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))?;
    // The commit point has passed: the new segment holds what the others kept.
    for merged in &run[1..] {
        let path = merged.segment.path();
        storage.remove(path).map_err(Error::io("remove merged segment", path))?;
    }
    if run.len() > 1 {
        storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))?;
    }
    let (name, end) = (first.name().to_owned(), last.end_position());
    let new = Segment::recovered(header, name, path.to_path_buf(), file, len, end, index);
    new.seal();
    if let Some(index) =
        mapped_or_in_memory(storage, dir, &index_name, index_bytes, new.group_bytes_max())
    {
        new.set_persisted(Arc::new(index));
    }
    Ok(Some(new))
}

/// The new segment's index: its file as written, mapped, or (if mapping fails) the same bytes
/// in memory.
fn mapped_or_in_memory(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    bytes: Vec<u8>,
    group_bytes_max: u32,
) -> Option<SegmentIndex> {
    let mapped = match files::map(storage, dir, name) {
        Ok(Some(view)) => SegmentIndex::new(view, Origin::File, group_bytes_max).ok(),
        _ => None,
    };
    mapped.or_else(|| SegmentIndex::new(Arc::new(bytes), Origin::Memory, group_bytes_max).ok())
}

/// The link of `stream` to the segment before the run: the one the first index of the run
/// that holds the stream has (unknown if a segment of the run has no persisted index). A link
/// into the run itself names a segment whose events of the stream an earlier scavenge removed:
/// the stream has no earlier events, so it has no link.
fn first_link(run: &[Decided], stream: &str) -> Option<u64> {
    let base = run[0].segment.base_position();
    for decided in run {
        let index = decided.segment.persisted()?;
        if let Some(found) = index.view()?.stream(stream) {
            return found.prev_segment.filter(|&prev| prev < base);
        }
    }
    None
}

/// Removes the stream tables, durably.
pub(crate) fn remove_stream_tables(shared: &Shared) -> Result<()> {
    shared.set_close_table_current(false);
    let (storage, dir) = (&*shared.options().storage, shared.dir());
    for name in [files::STREAM_TABLE, files::CLOSE_TABLE] {
        match storage.remove(&dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove stream table", &dir.join(name))(e));
            }
            _ => {}
        }
    }
    storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))
}

/// Reads the new file back, checks it holds `records` valid records and nothing else, and
/// builds its index from what it read (with `prev` giving each stream's link).
fn check_written(
    file: &dyn crate::io::StorageFile,
    header: &SegmentHeader,
    len: u64,
    records: usize,
    path: &Path,
    prev: impl Fn(&str) -> Option<u64>,
) -> Result<Vec<u8>> {
    let view = file.view(len).map_err(Error::io("map scavenged segment", path))?;
    let mut count = 0;
    let (base, span, layout) = (header.base_position, header.span, header.layout());
    let end = scan_compacted(view.bytes(), base, span, layout, |_, _| {
        count += 1;
        Ok(())
    })
    .expect("the visitor refuses nothing");
    let problem = match end.damage {
        Some(damage) => Some((damage.record_offset, damage.kind)),
        None if count != records => Some((end.valid_len, CorruptionKind::Truncated)),
        None => None,
    };
    let corrupt =
        |offset: u64, kind| Error::Corruption { segment: path.display().to_string(), offset, kind };
    match problem {
        None => build_index(view.bytes(), header, prev).map_err(|e| match e {
            BuildError::Damaged { offset, kind } => corrupt(offset, kind),
            BuildError::Encode(_) => corrupt(0, CorruptionKind::IndexMismatch),
        }),
        Some((offset, kind)) => Err(Error::Corruption {
            segment: path.display().to_string(),
            offset: offset as u64,
            kind,
        }),
    }
}

fn discard(storage: &dyn Storage, tmp: &Path) -> Result<()> {
    storage.remove(tmp).map_err(Error::io("remove cancelled scavenge file", tmp))
}

/// Removes the `.scav` files an interrupted scavenge left in `dir` (their originals are still
/// in place), and makes the removal durable. Returns their names.
pub(crate) fn discard_unfinished(storage: &dyn Storage, dir: &Path) -> Result<Vec<String>> {
    let names: Vec<String> = storage
        .list_dir(dir)
        .map_err(Error::io("list directory", dir))?
        .into_iter()
        .filter(|name| name.ends_with(SCAVENGE_SUFFIX))
        .collect();
    for name in &names {
        let path = dir.join(name);
        storage.remove(&path).map_err(Error::io("remove unfinished scavenge file", &path))?;
    }
    if !names.is_empty() {
        storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))?;
    }
    Ok(names)
}
