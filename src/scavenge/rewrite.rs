//! Rewriting one sealed segment without the records a scavenge removes, and switching to the
//! new file crash-safely:
//!
//! 1. write the header and every kept record, byte for byte as they were (each one verified
//!    against its checksum on the way), to `<segment>.scav`;
//! 2. `fdatasync` it, read it back and check it holds exactly the kept records;
//! 3. rename it over the segment (atomic: a crash leaves the old file or the new one, both
//!    complete), then fsync the directory.
//!
//! A `.scav` file left by a crash is an unfinished rewrite whose original is still in place;
//! recovery removes it.

use std::{collections::HashMap, path::Path, sync::Arc};

use crate::{
    error::{Error, Result},
    format::{CorruptionKind, SEGMENT_HEADER_LEN, SegmentHeader, scan_any, scan_compacted},
    index::SparseIndex,
    io::Storage,
    segment::Segment,
    shared::Shared,
};

use super::{Control, plan::Plan};

/// The suffix of a segment being rewritten.
pub(crate) const SCAVENGE_SUFFIX: &str = ".scav";

/// Bytes gathered before each write to the new file.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// What rewriting one segment did.
#[derive(Default)]
pub(crate) struct Rewritten {
    /// Events removed.
    pub events_removed: u64,
    /// Bytes the segment lost.
    pub bytes_reclaimed: u64,
    /// The new segment, if it was rewritten (`None`: nothing to remove, or cancelled).
    pub segment: Option<Arc<Segment>>,
    /// For each stream that lost events: the first version it keeps.
    pub keep_from: HashMap<String, u64>,
}

/// Decides every record of `segment` with `plan`, and rewrites it if any record goes.
pub(crate) fn rewrite(
    shared: &Shared,
    segment: &Segment,
    plan: &mut Plan,
    control: &Control,
) -> Result<Rewritten> {
    let view = segment.view(segment.committed_len())?;
    let bytes = &view.bytes()[..segment.committed_len() as usize];
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut done = Rewritten::default();
    let corruption = |offset: usize, kind| Error::Corruption {
        segment: segment.name().to_owned(),
        offset: offset as u64,
        kind,
    };
    let end = scan_any(bytes, &segment.header(), |offset, record| {
        if plan.removes(&record) {
            done.events_removed += 1;
            let next = record.version() + 1;
            let keep = done.keep_from.entry(record.stream().to_owned()).or_insert(next);
            *keep = (*keep).max(next);
        } else {
            kept.push((offset, record.len()));
        }
        Ok(())
    })
    .map_err(|(offset, kind)| corruption(offset, kind))?;
    if let Some(damage) = end.damage {
        return Err(corruption(damage.record_offset, damage.kind));
    }
    if done.events_removed == 0 || control.is_cancelled() {
        done.keep_from.clear();
        done.events_removed = 0;
        return Ok(done);
    }
    let span = u32::try_from(segment.end_position() - segment.base_position())
        .expect("a segment spans < 2^32 positions");
    let header = SegmentHeader { span, ..segment.header() };
    let Some(new) = write_and_switch(shared, segment, header, bytes, &kept, control)? else {
        done.keep_from.clear();
        done.events_removed = 0;
        return Ok(done);
    };
    done.bytes_reclaimed = bytes.len() as u64 - new.committed_len();
    done.segment = Some(Arc::new(new));
    Ok(done)
}

/// Writes the kept records to a new file and puts it in place of `segment`; `None` if
/// cancelled before the switch (the new file is then removed).
fn write_and_switch(
    shared: &Shared,
    segment: &Segment,
    header: SegmentHeader,
    bytes: &[u8],
    kept: &[(usize, usize)],
    control: &Control,
) -> Result<Option<Segment>> {
    let storage = &*shared.options.storage;
    let path = segment.path();
    let tmp = path.with_file_name(format!("{}{SCAVENGE_SUFFIX}", segment.name()));
    let io = |op| Error::io(op, &tmp);
    // A file left by an attempt that failed in this process: it was never renamed.
    let _ = storage.remove(&tmp);
    let file = storage.create(&tmp).map_err(io("create scavenged segment"))?;
    let mut index = SparseIndex::new(header.base_position, shared.options.index_stride);
    let mut buf = Vec::with_capacity(WRITE_CHUNK_BYTES + SEGMENT_HEADER_LEN);
    buf.extend_from_slice(&header.encode());
    let mut written = 0u64;
    for &(offset, len) in kept {
        let record = &bytes[offset..offset + len];
        let position = u64::from_le_bytes(record[8..16].try_into().expect("8 bytes"));
        index.note(position, u32::try_from(written as usize + buf.len()).expect("< 4 GiB"));
        buf.extend_from_slice(record);
        if buf.len() >= WRITE_CHUNK_BYTES {
            file.write_at(written, &buf).map_err(io("write scavenged segment"))?;
            written += buf.len() as u64;
            buf.clear();
            if control.is_cancelled() {
                return discard(storage, &tmp).map(|()| None);
            }
        }
    }
    file.write_at(written, &buf).map_err(io("write scavenged segment"))?;
    let len = written + buf.len() as u64;
    file.sync_data().map_err(io("fsync scavenged segment"))?;
    check_written(&*file, &header, len, kept.len(), &tmp)?;
    if control.is_cancelled() {
        return discard(storage, &tmp).map(|()| None);
    }
    storage.rename(&tmp, path).map_err(Error::io("rename scavenged segment", path))?;
    let dir = &shared.dir;
    storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))?;
    let (name, end) = (segment.name().to_owned(), segment.end_position());
    let new = Segment::recovered(header, name, path.to_path_buf(), file, len, end, index);
    new.seal();
    Ok(Some(new))
}

/// Reads the new file back and checks it holds `records` valid records and nothing else.
fn check_written(
    file: &dyn crate::io::StorageFile,
    header: &SegmentHeader,
    len: u64,
    records: usize,
    path: &Path,
) -> Result<()> {
    let view = file.view(len).map_err(Error::io("map scavenged segment", path))?;
    let mut count = 0;
    let end = scan_compacted(view.bytes(), header.base_position, header.span, |_, _| {
        count += 1;
        Ok(())
    })
    .expect("the visitor refuses nothing");
    let problem = match end.damage {
        Some(damage) => Some((damage.record_offset, damage.kind)),
        None if count != records => Some((end.valid_len, CorruptionKind::Truncated)),
        None => None,
    };
    match problem {
        None => Ok(()),
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
