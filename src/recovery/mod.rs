//! Opening a store directory: find the segments, check their headers, scan every batch, cut a
//! torn tail that provably was never acknowledged, refuse anything else that is damaged, and
//! rebuild the indexes and the idempotency window from what remains.
//!
//! The stages are separate functions (list → open headers → scan and index → rebuild window);
//! only [`recover`] decides between them.

mod window;

use std::{path::Path, sync::Arc};

use crate::{
    error::{Error, Result},
    format::{
        CorruptionKind, Damage, HeaderError, SEGMENT_HEADER_LEN, SegmentHeader,
        parse_segment_file_name, scan_segment,
    },
    index::{SparseIndex, StreamIndex},
    io::StorageFile,
    options::Options,
    segment::Segment,
    writer::IdWindow,
};

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the log after recovery.
    pub segments: usize,
    /// Events in the log after recovery.
    pub events: u64,
    /// A torn tail that was cut off (never acknowledged: it lay within one group write of the
    /// end of the last segment).
    pub truncated: Option<TornTail>,
    /// A last segment whose header never became durable, removed (a crash while rotating).
    pub removed_segment: Option<String>,
}

/// A torn tail cut off the last segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// File name of the segment.
    pub segment: String,
    /// The offset it was cut at (the start of the first bad batch).
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes_dropped: u64,
    /// What was wrong with the first bad batch.
    pub kind: CorruptionKind,
}

/// The log as recovery left it, ready for the writer and readers.
pub(crate) struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    pub streams: StreamIndex,
    pub head: u64,
    pub window: IdWindow,
    pub report: RecoveryReport,
}

/// A segment file with a good header, not yet scanned.
struct Opened {
    name: String,
    file: Box<dyn StorageFile>,
    len: u64,
    header: SegmentHeader,
}

/// Recovers the store in `dir` (which the caller has locked).
pub(crate) fn recover(dir: &Path, options: &Options) -> Result<Recovered> {
    let mut report = RecoveryReport::default();
    let opened = open_segments(dir, options, &mut report)?;
    let streams = StreamIndex::default();
    let mut segments = Vec::with_capacity(opened.len().max(1));
    let mut head = opened.first().map_or(0, |s| s.header.base_position);
    let count = opened.len();
    for (i, segment) in opened.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let segment = scan_and_index(dir, options, segment, head, is_last, &streams, &mut report)?;
        head = segment.end_position();
        segments.push(Arc::new(segment));
    }
    if segments.is_empty() {
        let sync = options.durability == crate::Durability::Fsync;
        let segment = Segment::create(
            &*options.storage,
            dir,
            head,
            options.group_bytes_max,
            options.index_stride,
            sync,
        )?;
        segments.push(Arc::new(segment));
    }
    for segment in &segments[..segments.len() - 1] {
        segment.seal();
    }
    let window = window::rebuild(&segments, head, options.idempotency_window_events as usize)?;
    report.segments = segments.len();
    report.events = head - segments[0].base_position();
    Ok(Recovered {
        segments,
        streams,
        head,
        window,
        report,
    })
}

/// Stage one: list the segment files in log order and check their headers. A last segment
/// too short to hold its header was being created when the process died; it never held a
/// record, so it is removed.
fn open_segments(
    dir: &Path,
    options: &Options,
    report: &mut RecoveryReport,
) -> Result<Vec<Opened>> {
    let storage = &*options.storage;
    let mut names: Vec<(u64, String)> = storage
        .list_dir(dir)
        .map_err(Error::io("list directory", dir))?
        .into_iter()
        .filter_map(|name| parse_segment_file_name(&name).map(|base| (base, name)))
        .collect();
    names.sort();
    let mut opened = Vec::with_capacity(names.len());
    let count = names.len();
    for (i, (base, name)) in names.into_iter().enumerate() {
        let path = dir.join(&name);
        let file = storage
            .open(&path)
            .map_err(Error::io("open segment", &path))?;
        let len = file.len().map_err(Error::io("stat segment", &path))?;
        let mut buf = [0u8; SEGMENT_HEADER_LEN];
        let n = len.min(SEGMENT_HEADER_LEN as u64) as usize;
        file.read_at(0, &mut buf[..n])
            .map_err(Error::io("read segment header", &path))?;
        let header = match SegmentHeader::decode(&buf[..n]) {
            Ok(header) => header,
            Err(HeaderError::UnsupportedVersion(found)) => {
                let supported = crate::format::FORMAT_VERSION;
                return Err(Error::UnsupportedFormat {
                    segment: name,
                    found,
                    supported,
                });
            }
            Err(HeaderError::Corrupt(_)) if i + 1 == count && len <= SEGMENT_HEADER_LEN as u64 => {
                drop(file);
                storage
                    .remove(&path)
                    .map_err(Error::io("remove torn segment", &path))?;
                storage
                    .sync_dir(dir)
                    .map_err(Error::io("fsync directory", dir))?;
                report.removed_segment = Some(name);
                continue;
            }
            Err(HeaderError::Corrupt(kind)) => {
                return Err(Error::Corruption {
                    segment: name,
                    offset: 0,
                    kind,
                });
            }
        };
        if header.base_position != base {
            let kind = CorruptionKind::SegmentGap {
                expected: base,
                found: header.base_position,
            };
            return Err(Error::Corruption {
                segment: name,
                offset: 0,
                kind,
            });
        }
        opened.push(Opened {
            name,
            file,
            len,
            header,
        });
    }
    Ok(opened)
}

/// Stage two: scan one segment, index its records, and settle any damage: cut a torn tail of
/// the last segment, refuse everything else.
fn scan_and_index(
    dir: &Path,
    options: &Options,
    segment: Opened,
    expected_base: u64,
    is_last: bool,
    streams: &StreamIndex,
    report: &mut RecoveryReport,
) -> Result<Segment> {
    let Opened {
        name,
        file,
        len,
        header,
    } = segment;
    let path = dir.join(&name);
    let base = header.base_position;
    if base != expected_base {
        let kind = CorruptionKind::SegmentGap {
            expected: expected_base,
            found: base,
        };
        return Err(Error::Corruption {
            segment: name,
            offset: 0,
            kind,
        });
    }
    let corruption = |offset: usize, kind| Error::Corruption {
        segment: name.clone(),
        offset: offset as u64,
        kind,
    };
    let mut index = SparseIndex::new(base, options.index_stride);
    let end = {
        let view = file.view(len).map_err(Error::io("map segment", &path))?;
        let mut writer = streams.write();
        scan_segment(view.bytes(), base, |offset, record| {
            index.note(record.position(), offset as u32);
            writer
                .push(record.stream(), record.version(), record.position())
                .map_err(|expected| CorruptionKind::VersionMismatch {
                    expected,
                    found: record.version(),
                })
        })
        .map_err(|(offset, kind)| corruption(offset, kind))?
    };
    if let Some(damage) = end.damage {
        settle_damage(&*file, &name, len, &header, damage, is_last, report)
            .map_err(|e| e.unwrap_or_else(|| corruption(damage.record_offset, damage.kind)))?;
    }
    Ok(Segment::recovered(
        base,
        name,
        path,
        file,
        end.valid_len as u64,
        end.next_position,
        index,
    ))
}

/// Cuts the torn tail described by `damage`, if it can be one: in the last segment, and no
/// further from the end of the file than one group write. `Err(None)` means "corruption".
fn settle_damage(
    file: &dyn StorageFile,
    name: &str,
    len: u64,
    header: &SegmentHeader,
    damage: Damage,
    is_last: bool,
    report: &mut RecoveryReport,
) -> Result<(), Option<Error>> {
    let cut = damage.batch_offset as u64;
    if !is_last || len - cut > u64::from(header.group_bytes_max) {
        return Err(None);
    }
    let io = |op| {
        move |source| {
            Some(Error::Io {
                op,
                path: name.into(),
                source,
            })
        }
    };
    file.set_len(cut).map_err(io("truncate torn tail"))?;
    file.sync_data().map_err(io("fsync truncated segment"))?;
    report.truncated = Some(TornTail {
        segment: name.to_owned(),
        offset: cut,
        bytes_dropped: len - cut,
        kind: damage.kind,
    });
    Ok(())
}
