//! Stage one of recovery: list the segment files in log order and check their headers.

use std::path::Path;

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
}

/// Opens every segment file and checks its header. A last segment too short to hold its header
/// was being created when the process died and never held a record: it is left out and named
/// in the report, for `recover` to remove (refused in strict mode). A salvaging open skips segments whose header
/// is damaged; other modes refuse them.
pub(super) fn open_segments(
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
        let file = storage.open(&path).map_err(Error::io("open segment", &path))?;
        let len = file.len().map_err(Error::io("stat segment", &path))?;
        let mut buf = [0u8; SEGMENT_HEADER_LEN];
        let n = len.min(SEGMENT_HEADER_LEN as u64) as usize;
        file.read_at(0, &mut buf[..n]).map_err(Error::io("read segment header", &path))?;
        let problem = match SegmentHeader::decode(&buf[..n]) {
            Ok(header) if header.base_position == base => {
                opened.push(Opened { name, file, len, header });
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
    Ok(opened)
}
