//! Stage three of recovery: settle the end of the log. Cut a torn tail when it provably was
//! never acknowledged, and make sure the writer has a segment whose header states the torn-tail
//! bound it will write under.

use std::{path::Path, sync::Arc};

use crate::{
    error::{Error, Result},
    format::{Damage, FORMAT_VERSION, Layout, SEGMENT_HEADER_LEN, SegmentHeader},
    io::StorageFile,
    options::{Durability, Options, RecoveryMode},
    segment::Segment,
};

use super::{RecoveryReport, TornTail, scan::Context};

/// Cuts the torn tail described by `damage` if it can be one: in the last segment, and no
/// further from the end of the file than the group-commit bound in that segment's header.
/// A read-only open only reports it. `Err(None)` means "this is corruption".
pub(super) fn settle_damage(
    cx: &Context<'_>,
    file: &dyn StorageFile,
    name: &str,
    len: u64,
    header: &SegmentHeader,
    damage: Damage,
    report: &mut RecoveryReport,
) -> Result<(), Option<Error>> {
    let cut = damage.batch_offset as u64;
    let strict = cx.options.recovery_mode == RecoveryMode::Strict;
    if strict || !cx.is_last || len - cut > u64::from(header.group_bytes_max) {
        return Err(None);
    }
    if cx.writable {
        let io = |op| move |source| Some(Error::Io { op, path: name.into(), source });
        file.set_len(cut).map_err(io("truncate torn tail"))?;
        file.sync_data().map_err(io("fsync truncated segment"))?;
    }
    let kind = damage.kind;
    report.truncated =
        Some(TornTail { segment: name.to_owned(), offset: cut, bytes_dropped: len - cut, kind });
    Ok(())
}

/// Gives the writer a segment to append to: creates the first one of a new store (and makes the
/// new directory durable in its parent), and starts a fresh one when the configured group bound
/// has grown past the one stated in the last segment's header, so the header always bounds the
/// torn tail of the groups written into it, when the last segment is a scavenged one, or when it
/// is of an older format version (new records are only written in the current one).
pub(super) fn ensure_active_segment(
    dir: &Path,
    options: &Options,
    segments: &mut Vec<Arc<Segment>>,
    head: u64,
) -> Result<()> {
    let storage = &*options.storage;
    let sync = options.durability == Durability::Fsync;
    let create = |base| {
        let stride = options.index_stride;
        Segment::create(storage, dir, base, options.group_bytes_max, stride, sync).map(Arc::new)
    };
    let Some(last) = segments.last() else {
        segments.push(create(head)?);
        if sync {
            // "store" has the parent "": the working directory.
            let parent =
                dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            storage.sync_dir(parent).map_err(Error::io("fsync parent directory", parent))?;
        }
        return Ok(());
    };
    let current = last.layout() == Layout::of_version(FORMAT_VERSION);
    if last.group_bytes_max() >= options.group_bytes_max && !last.is_compacted() && current {
        return Ok(());
    }
    // A segment rewritten by scavenging is never written to again (its header states no
    // torn-tail bound for new groups); it is last only if the segment after it was lost.
    if last.committed_len() > SEGMENT_HEADER_LEN as u64 || last.is_compacted() {
        segments.push(create(head)?);
        return Ok(());
    }
    // An empty last segment with the old bound or version: replace it. A crash in between leaves either it
    // or nothing at its base, and the segment before it (or base 0) still fixes the head.
    if segments.len() == 1 && last.base_position() != 0 {
        return Err(Error::InvalidOptions(
            "the only segment is empty with base > 0 and an older group bound or format \
             version; open once with an older build or the old bound and append"
                .into(),
        ));
    }
    let old = segments.pop().expect("a last segment");
    storage.remove(old.path()).map_err(Error::io("remove empty segment", old.path()))?;
    storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))?;
    segments.push(create(head)?);
    Ok(())
}

/// Removes the header-less last segment a crash during rotation left (it never held a record),
/// and makes the removal durable.
pub(super) fn remove_torn_segment(dir: &Path, options: &Options, name: &str) -> Result<()> {
    let path = dir.join(name);
    options.storage.remove(&path).map_err(Error::io("remove torn segment", &path))?;
    options.storage.sync_dir(dir).map_err(Error::io("fsync directory", dir))
}
