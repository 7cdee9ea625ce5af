//! Stage one of recovery: list the segment files in log order and check their headers.

use std::{
    io,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    format::{
        CorruptionKind, HeaderError, SEGMENT_HEADER_LEN, SegmentHeader, parse_segment_file_name,
    },
    io::StorageFile,
    options::{Options, RecoveryMode},
};

use super::{Dropped, RecoveryReport};

/// A segment file with a good header, not yet scanned.
pub(super) struct Opened {
    pub name: String,
    pub file: Box<dyn StorageFile>,
    pub len: u64,
    pub header: SegmentHeader,
    /// The checksum stored in the header as read (what an index file is bound to).
    pub header_crc: u32,
}

/// How many times an open lists the segment files when one of them vanishes between the
/// listing and its open. Only a scavenge removes segment files (those it merged into the
/// segment before them), and it removes a handful of them at a time, so one more listing
/// nearly always does; the bound keeps an open from chasing a set that never settles.
pub const SEGMENT_LISTINGS_MAX: u32 = 16;

/// Opens every segment file and checks its header. A last segment too short to hold its header
/// was being created when the process died and never held a record: it is left out and named
/// in the report, for `recover` to remove (refused in strict mode). A salvaging open skips
/// segments whose header is damaged; other modes refuse them.
///
/// A read-only open runs beside a writer whose scavenges merge segments: a file listed may be
/// gone when it is opened. Then the directory is listed again and every file opened anew, so
/// the files opened are always one consistent set (an open file stays readable whatever
/// happens to its name: a merged segment opened before the rename is read whole, one opened
/// after it covers the files it replaced, which are then leftovers).
///
/// A writable open holds the lock, so no scavenge runs beside it: a file that vanishes under it
/// was removed from outside, and is the I/O error it always was.
pub(super) fn open_segments(
    dir: &Path,
    options: &Options,
    writable: bool,
    report: &mut RecoveryReport,
) -> Result<Vec<Opened>> {
    for _ in 0..SEGMENT_LISTINGS_MAX {
        let mut attempt = report.clone();
        match open_listed(dir, options, list_segments(dir, options)?, &mut attempt)? {
            Ok(opened) => {
                *report = attempt;
                return Ok(opened);
            }
            Err(vanished) if writable => {
                let source = io::Error::from(io::ErrorKind::NotFound);
                return Err(Error::io("open segment", &vanished)(source));
            }
            Err(_) => std::thread::yield_now(),
        }
    }
    Err(Error::SegmentsChanging { dir: dir.to_path_buf(), listings: SEGMENT_LISTINGS_MAX })
}

/// Opens the segment files `names` (the last ones of the directory, listed by a writable open:
/// one that vanishes was removed from outside) and checks their headers, as [`open_segments`].
pub(super) fn open_names(
    dir: &Path,
    options: &Options,
    names: Vec<(u64, String)>,
    report: &mut RecoveryReport,
) -> Result<Vec<Opened>> {
    open_listed(dir, options, names, report)?.map_err(|vanished| {
        Error::io("open segment", &vanished)(io::Error::from(io::ErrorKind::NotFound))
    })
}

/// The segment files in `dir` with their base positions, in log order.
pub(super) fn list_segments(dir: &Path, options: &Options) -> Result<Vec<(u64, String)>> {
    let mut names: Vec<(u64, String)> = options
        .storage
        .list_dir(dir)
        .map_err(Error::io("list directory", dir))?
        .into_iter()
        .filter_map(|name| parse_segment_file_name(&name).map(|base| (base, name)))
        .collect();
    names.sort();
    Ok(names)
}

/// Opens the segment files `names` and checks their headers; `Err(path)` with the path of the
/// first one that is gone.
fn open_listed(
    dir: &Path,
    options: &Options,
    names: Vec<(u64, String)>,
    report: &mut RecoveryReport,
) -> Result<Result<Vec<Opened>, PathBuf>> {
    let storage = &*options.storage;
    let mut opened = Vec::with_capacity(names.len());
    let count = names.len();
    for (i, (base, name)) in names.into_iter().enumerate() {
        let path = dir.join(&name);
        let file = match storage.open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Err(path)),
            Err(e) => return Err(Error::io("open segment", &path)(e)),
        };
        let len = file.len().map_err(Error::io("stat segment", &path))?;
        let mut buf = [0u8; SEGMENT_HEADER_LEN];
        let n = len.min(SEGMENT_HEADER_LEN as u64) as usize;
        file.read_at(0, &mut buf[..n]).map_err(Error::io("read segment header", &path))?;
        let problem = match SegmentHeader::decode(&buf[..n]) {
            Ok(header) if header.base_position == base => {
                let header_crc = crate::index::stored_header_crc(&buf).unwrap_or(0);
                opened.push(Opened { name, file, len, header, header_crc });
                continue;
            }
            Ok(header) => {
                CorruptionKind::SegmentGap { expected: base, found: header.base_position }
            }
            Err(HeaderError::UnsupportedVersion(found)) => {
                let supported = crate::format::FORMAT_VERSION;
                return Err(Error::UnsupportedFormat { segment: name, found, supported });
            }
            Err(HeaderError::Corrupt(kind)) => kind,
        };
        let torn_creation = i + 1 == count && len <= SEGMENT_HEADER_LEN as u64;
        match options.recovery_mode {
            RecoveryMode::Strict => {}
            _ if torn_creation => {
                // Removed by `recover` once the rest of the log has passed its checks, so a
                // refused open changes nothing.
                report.removed_segment = Some(name);
                continue;
            }
            RecoveryMode::Salvage => {
                report.salvaged.push(Dropped {
                    segment: name,
                    offset: 0,
                    bytes: len,
                    kind: problem,
                });
                continue;
            }
            RecoveryMode::TolerateTornTail => {}
        }
        return Err(Error::Corruption { segment: name, offset: 0, kind: problem });
    }
    Ok(Ok(opened))
}
