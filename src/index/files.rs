//! The derived files beside the segments: their names, and how they are written (whole, to a
//! temporary name, fsynced, renamed into place, the directory fsynced) and mapped.

use std::{io, path::Path, sync::Arc};

use crate::{
    format::SEGMENT_SUFFIX,
    io::{ReadView, Storage},
};

/// The suffix of a segment's index file (`<20-digit base>.idx`).
pub(crate) const INDEX_SUFFIX: &str = ".idx";
/// The stream table the indexer keeps, as of the end of the last persisted segment.
pub(crate) const STREAM_TABLE: &str = "streams.tbl";
/// The stream table a clean close writes, as of the end of the log.
pub(crate) const CLOSE_TABLE: &str = "streams.close.tbl";
/// The suffix of a derived file being written; one left by a crash is removed on open.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// The index file name of the segment named `segment` (`…0042.seg` → `…0042.idx`).
pub(crate) fn index_file_name(segment: &str) -> String {
    let stem = segment.strip_suffix(SEGMENT_SUFFIX).unwrap_or(segment);
    format!("{stem}{INDEX_SUFFIX}")
}

/// Writes `bytes` as `dir/name`, replacing any file of that name atomically: a crash leaves
/// the old file or the new one, whole. With `sync` the new file and its name are durable when
/// this returns.
pub(crate) fn write_atomically(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sync: bool,
) -> io::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{TEMP_SUFFIX}"));
    // One left by an attempt that failed in this process was never renamed.
    let _ = storage.remove(&tmp);
    let file = storage.create(&tmp)?;
    let written = file.write_at(0, bytes).and_then(|()| match sync {
        true => file.sync_data(),
        false => Ok(()),
    });
    drop(file);
    if let Err(e) = written.and_then(|()| storage.rename(&tmp, &path)) {
        let _ = storage.remove(&tmp);
        return Err(e);
    }
    if sync {
        storage.sync_dir(dir)?;
    }
    Ok(())
}

/// Maps the whole of `dir/name` for lookups at random places; `Ok(None)` if there is no such
/// file.
pub(crate) fn map(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
) -> io::Result<Option<Arc<dyn ReadView>>> {
    let file = match storage.open(&dir.join(name)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.len()?;
    file.view_random(len).map(Some)
}

/// Removes the temporary files a crash left while writing derived files in `dir`.
pub(crate) fn remove_temporaries(storage: &dyn Storage, dir: &Path) -> io::Result<()> {
    let names = storage.list_dir(dir)?;
    let derived = |n: &String| {
        n.ends_with(TEMP_SUFFIX)
            && (n.contains(INDEX_SUFFIX)
                || n.starts_with(STREAM_TABLE)
                || n.starts_with(CLOSE_TABLE))
    };
    for name in names.iter().filter(|n| derived(n)) {
        storage.remove(&dir.join(name))?;
    }
    Ok(())
}
