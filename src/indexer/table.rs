//! The stream table: folding persisted segment indexes into it, in log order, and writing it.

use std::sync::Arc;

use crate::{
    error::{Error, Result},
    format::{CorruptionKind, SegmentBinding, StreamTable, TableBinding, fold_into_table},
    index::{SegmentIndex, files},
    io::ReadView,
    options::Durability,
    shared::Shared,
};

/// The table binding that says "as of the end of `index`'s segment".
pub(crate) fn binding_of(index: &SegmentIndex, durable: bool) -> TableBinding {
    TableBinding::at_end_of(index.binding(), durable)
}

/// Whether `table` is the fold of everything up to and including `index`'s segment.
pub(crate) fn is_bound_to(table: &TableBinding, index: &SegmentIndex) -> bool {
    is_bound_to_binding(table, index.binding())
}

/// [`is_bound_to`] the index whose header says `b`.
fn is_bound_to_binding(table: &TableBinding, b: &SegmentBinding) -> bool {
    (table.segment_base, table.segment_len, table.last_record_crc)
        == (b.base_position, b.segment_len, b.last_record_crc)
}

/// Folds `indexes` (consecutive segments, in log order, each checked in full first) into
/// `start` (the table as of the segment before the first of them; `None` for a log that
/// starts with them).
pub(crate) fn fold_all(
    start: Option<&[u8]>,
    indexes: &[Arc<SegmentIndex>],
    durable: bool,
) -> Result<Option<Vec<u8>>> {
    let bad = |what: &str| Error::Corruption {
        segment: what.to_owned(),
        offset: 0,
        kind: CorruptionKind::IndexMismatch,
    };
    let mut table: Option<Vec<u8>> = start.map(<[u8]>::to_vec);
    for index in indexes {
        if !index.check_body() {
            return Err(bad("(index file)"));
        }
        let view = index.view().ok_or_else(|| bad("(index file)"))?;
        let old = match &table {
            Some(bytes) => Some(StreamTable::parse_header(bytes).map_err(|_| bad("(table)"))?),
            None => None,
        };
        let gbm = index.group_bytes_max();
        let folded = fold_into_table(old.as_ref(), &view, gbm, &binding_of(index, durable))
            .map_err(|_| bad("(table)"))?;
        table = Some(folded);
    }
    Ok(table)
}

/// Writes the table as of the end of `index`'s segment as `name`: folded from `streams.tbl`
/// when that is the table as of the segment before, else from every persisted segment.
pub(crate) fn advance(shared: &Shared, index: &Arc<SegmentIndex>, name: &str) -> Result<()> {
    let (storage, dir) = (&*shared.options().storage, shared.dir());
    let durable = shared.options().durability == Durability::Fsync;
    let base = index.binding().base_position;
    let previous = shared.segments().prev_before(base).and_then(|s| s.persisted());
    let current = files::map(storage, dir, files::STREAM_TABLE).ok().flatten();
    let usable = current.as_ref().filter(|view| {
        let Ok(table) = StreamTable::parse_header(view.bytes()) else { return false };
        // Bound to the segment before, or to this segment as far as it was indexed before
        // (an active segment closed cleanly): folding this index in takes each stream's
        // newest state either way.
        let binding = table.binding();
        let bound = binding.segment_base == base
            || previous.as_ref().is_some_and(|previous| is_bound_to(&binding, previous));
        // One without a segment list (written by a version before the list, or folded over
        // such a table) is folded anew from every index file, which lists them all: the
        // upgrade that lets the next open skip the segments.
        bound && table.segment_count() > 0 && table.check_body().is_ok()
    });
    let folded = match usable {
        Some(view) => fold_all(Some(view.bytes()), std::slice::from_ref(index), durable)?,
        None => {
            let mut indexes = Vec::new();
            for segment in shared.segments().snapshot() {
                if segment.base_position() > base {
                    break;
                }
                let persisted = match segment.base_position() == base {
                    true => Some(Arc::clone(index)),
                    false => segment.persisted(),
                };
                indexes.push(persisted.ok_or_else(|| Error::Corruption {
                    segment: segment.name().to_owned(),
                    offset: 0,
                    kind: CorruptionKind::IndexMismatch,
                })?);
            }
            fold_all(None, &indexes, durable)?
        }
    };
    let Some(bytes) = folded else { return Ok(()) };
    files::write_atomically(storage, dir, name, &bytes, durable)
        .map_err(Error::io("write stream table", &dir.join(name)))?;
    if name == files::STREAM_TABLE {
        // The streams it covers can leave memory: lookups read them from the table.
        let covered = index.binding().end_position;
        let mapped = files::map(storage, dir, name).ok().flatten();
        let table = mapped.unwrap_or_else(|| Arc::new(bytes) as Arc<dyn ReadView>);
        let _ = shared.streams().set_table(table, covered);
    }
    Ok(())
}

/// Rewrites `streams.tbl` unless its header says it is bound to the last sealed segment and it
/// has a segment list (one without, of a version before the list, is rewritten with one).
/// Neither the last sealed segment's index file (a listed segment's header binding is taken
/// from the list) nor the table's body is read here (an open that just used the close table would otherwise read a
/// second table whole, competing with the first reads): whoever uses it checks it whole
/// first, an open before taking it and [`advance`] before folding it forward, and rebuilds it
/// if that fails.
pub(crate) fn ensure_current(shared: &Shared) -> Result<()> {
    let mut sealed = shared.segments().snapshot();
    sealed.pop();
    let Some(segment) = sealed.last() else { return Ok(()) };
    let Some((binding, _)) = segment.indexed() else { return Ok(()) };
    let (storage, dir) = (&*shared.options().storage, shared.dir());
    let current = files::map(storage, dir, files::STREAM_TABLE).ok().flatten();
    let fits = current.is_some_and(|view| {
        StreamTable::parse_header(view.bytes())
            .is_ok_and(|t| t.segment_count() > 0 && is_bound_to_binding(&t.binding(), &binding))
    });
    match (fits, segment.persisted()) {
        (false, Some(last)) => advance_from_scratch(shared, &last),
        _ => Ok(()),
    }
}

/// Whether `streams.close.tbl`'s header says it is the table as of the end of `index`'s
/// segment, with a segment list (its body is not read).
pub(crate) fn close_table_is_bound_to(shared: &Shared, index: &SegmentIndex) -> bool {
    let (storage, dir) = (&*shared.options().storage, shared.dir());
    let Ok(Some(view)) = files::map(storage, dir, files::CLOSE_TABLE) else { return false };
    StreamTable::parse_header(view.bytes()).is_ok_and(|t| {
        let binding = t.binding();
        let current = is_bound_to(&binding, index) && t.segment_count() > 0;
        current && binding.covered == index.binding().end_position
    })
}

/// Rewrites `streams.tbl` from every persisted segment (after a scavenge changed them), up to
/// the last one with a persisted index: the active segment's, if it has one (a store reopened
/// after a clean close), for the table must cover at least what the one in use covers.
pub(crate) fn write_table(shared: &Shared) -> Result<()> {
    let segments = shared.segments().snapshot();
    let Some(last) = segments.iter().rev().find_map(|s| s.persisted()) else { return Ok(()) };
    advance_from_scratch(shared, &last)
}

fn advance_from_scratch(shared: &Shared, last: &Arc<SegmentIndex>) -> Result<()> {
    let (storage, dir) = (&*shared.options().storage, shared.dir());
    // A table that no longer matches makes `advance` fold from every segment.
    let _ = storage.remove(&dir.join(files::STREAM_TABLE));
    advance(shared, last, files::STREAM_TABLE)
}
