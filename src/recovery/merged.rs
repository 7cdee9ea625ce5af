//! Leftovers of a scavenge that merged segments: once the merged segment is renamed into place,
//! the segments it replaced are removed; a crash in between leaves them behind, inside the span
//! of the merged segment, and recovery finishes the removal.

use std::path::Path;

use crate::{error::Error, error::Result, options::Options};

/// Removes the segment files `names` (all covered by a scavenged segment before them) and makes
/// the removal durable.
pub(super) fn remove_leftovers(dir: &Path, options: &Options, names: &[String]) -> Result<()> {
    let storage = &*options.storage;
    for name in names {
        let path = dir.join(name);
        storage.remove(&path).map_err(Error::io("remove merged segment", &path))?;
    }
    if !names.is_empty() {
        storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))?;
    }
    Ok(())
}
