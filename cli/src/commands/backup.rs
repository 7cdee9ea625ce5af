//! `annal backup`: an online copy of a store that holds exactly a committed prefix of its log.
//!
//! Why the copy is consistent while another process appends:
//!
//! - Bytes below a segment's committed length never change, and a segment is complete and
//!   durable before the next one is created. So every segment but the last one listed is
//!   complete, and the last one is a prefix of complete batches followed perhaps by an append
//!   being written. Each segment is read once, checked with `annal::format::check_segment`, and
//!   only its bytes up to the end of its last complete, valid batch (`valid_len`) are written:
//!   a batch is whole in the copy or absent.
//! - A last segment file too short for its header is a rotation in progress: left out.
//! - A scavenge may merge segments meanwhile. A file whose base lies inside the span of the
//!   merged segment copied before it is a leftover, left out; a file gone when read was merged
//!   into a segment whose copy may be the original, so the segments are copied again from a
//!   new listing.
//! - The checkpoint files of persistent subscriptions are copied before any segment. A
//!   checkpoint only ever names committed positions, so each one copied is at most the head of
//!   the segments copied after it.
//! - The source is first opened read-only (no lock, nothing written), and every segment
//!   copied is checked; the copy is then opened read-only in strict mode (no torn tail allowed) and must
//!   reach at least the head that first open saw, with the same events there.
//!
//! Every file, the copy's directories and its parent are fsynced before the copy is checked.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use annal::{
    Options, Position, RecoveryMode, SEGMENT_LISTINGS_MAX, Store,
    format::{HeaderError, SEGMENT_HEADER_LEN, SegmentCheck, check_segment},
};
use serde_json::json;

use crate::{
    args::BackupArgs,
    exit::{CliResult, Exit, Failure},
    output::{self, Output},
};

/// The subdirectory of persistent subscriptions' checkpoint files (docs/format.md).
const SUBSCRIPTIONS_DIR: &str = "subscriptions";
/// The suffix of a checkpoint file; `.ckpt.tmp` files are unfinished writes, never copied.
const CHECKPOINT_SUFFIX: &str = ".ckpt";

/// What was copied.
#[derive(Debug, Default)]
struct Copied {
    segments: usize,
    bytes: u64,
    /// One past the last position copied.
    head: u64,
    /// Names of the persistent subscriptions whose checkpoints were copied.
    checkpoints: Vec<String>,
}

/// Copies the store in `args.dir` to `args.dest` and checks the copy.
pub fn run(args: &BackupArgs) -> CliResult {
    let (src, dest) = (args.dir.as_path(), args.dest.as_path());
    let source = super::open_read_only(src)?;
    let floor = source.head().get();
    create_dest(dest)?;
    let mut copied = Copied { checkpoints: copy_checkpoints(src, dest)?, ..Copied::default() };
    copy_segments(src, dest, &mut copied)?;
    sync_dir(dest)?;
    let copy = confirm(&source, dest, floor, &copied)
        .map_err(|f| f.context(&format!("the copy in {} is not usable", dest.display())))?;
    if let Some(t) = &source.recovery_report().truncated {
        eprintln!(
            "annal: note: the source's last segment {} ends in a torn tail of {} bytes at offset \
             {} ({}), which is not copied; `annal verify` tells an unfinished append from damage",
            t.segment, t.bytes_dropped, t.offset, t.kind
        );
    }
    let mut out = Output::new(args.json);
    let stats = copy.stats();
    if out.is_json() {
        out.value(&json!({
            "source": src.display().to_string(),
            "dest": dest.display().to_string(),
            "events": stats.events,
            "events_present": stats.events_present,
            "head": copied.head,
            "segments": copied.segments,
            "bytes": copied.bytes,
            "checkpoints": copied.checkpoints,
        }))?;
    } else {
        out.line(format_args!(
            "backed up {} to {}: {} present in {} (head {}), {}, {}, {}; the copy opens \
             cleanly",
            src.display(),
            dest.display(),
            output::count(stats.events_present, "event"),
            output::count(stats.events, "position"),
            copied.head,
            output::count(copied.segments as u64, "segment"),
            output::bytes(copied.bytes),
            output::count(copied.checkpoints.len() as u64, "subscription checkpoint"),
        ))?;
    }
    out.flush()?;
    Ok(Exit::Ok)
}

/// Creates `dest` (or accepts an empty directory) and makes its entry durable.
fn create_dest(dest: &Path) -> CliResult<()> {
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                let message = format!("{} exists and is not empty", dest.display());
                return Err(Failure::other(message));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(|e| Failure::io("create", dest, e))?;
        }
        Err(e) => return Err(Failure::io("open", dest, e)),
    }
    match dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

/// Copies the checkpoint files, if the store has any; returns the subscriptions' names.
fn copy_checkpoints(src: &Path, dest: &Path) -> CliResult<Vec<String>> {
    let from = src.join(SUBSCRIPTIONS_DIR);
    let entries = match fs::read_dir(&from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Failure::io("list", &from, e)),
    };
    let to = dest.join(SUBSCRIPTIONS_DIR);
    fs::create_dir(&to).map_err(|e| Failure::io("create", &to, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Failure::io("list", &from, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(CHECKPOINT_SUFFIX)) else {
            continue;
        };
        // A checkpoint file is replaced by renaming a new one over it: reading it by name
        // gives the old or the new version, whole.
        let bytes = match fs::read(entry.path()) {
            Ok(bytes) => bytes,
            // Deleted since it was listed: the subscription is gone.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Failure::io("read", &entry.path(), e)),
        };
        write_synced(&to.join(&file_name), &bytes)?;
        names.push(name.to_owned());
    }
    names.sort();
    sync_dir(&to)?;
    Ok(names)
}

/// Copies every segment up to the end of its last complete, valid batch. A scavenge in the
/// process that has the store open may merge segments meanwhile: a file listed but gone when
/// read was merged into the segment before it, whose copy may be the original, so the copies
/// are removed and the directory listed again, at most `SEGMENT_LISTINGS_MAX` times.
fn copy_segments(src: &Path, dest: &Path, copied: &mut Copied) -> CliResult<()> {
    for _ in 0..SEGMENT_LISTINGS_MAX {
        let mut written = Vec::new();
        if copy_listed(src, dest, copied, &mut written)? {
            return Ok(());
        }
        for path in &written {
            fs::remove_file(path).map_err(|e| Failure::io("remove", path, e))?;
        }
        (copied.segments, copied.bytes) = (0, 0);
    }
    let message = format!(
        "the segment files in {} kept changing during {SEGMENT_LISTINGS_MAX} listings (a \
         scavenge merging them?); back up again",
        src.display()
    );
    Err(Failure::other(message))
}

/// Copies the segment files listed now, noting each file written in `written`; `false` if one
/// of them was gone when read.
fn copy_listed(
    src: &Path,
    dest: &Path,
    copied: &mut Copied,
    written: &mut Vec<PathBuf>,
) -> CliResult<bool> {
    let files = super::segment_files(src)?;
    let mut next: Option<u64> = None;
    // Whether the last segment copied was rewritten by a scavenge (its span ends at `next`).
    let mut after_scavenged = false;
    for (i, file) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        if after_scavenged && next.is_some_and(|next| file.base < next) {
            // Inside the span of the merged segment copied before it, which holds what it kept:
            // a leftover that the scavenge is about to remove.
            continue;
        }
        let bytes = match fs::read(&file.path) {
            Ok(bytes) => bytes,
            // Merged into a segment before it by a scavenge since it was listed (or, last, a
            // header-less segment that a writable open removed): a new listing tells.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Failure::io("read", &file.path, e)),
        };
        let check = check_listed(file, &bytes, next, last)?;
        let Some(check) = check else { break };
        let path = dest.join(&file.name);
        write_synced(&path, &bytes[..check.valid_len as usize])?;
        written.push(path);
        copied.segments += 1;
        copied.bytes += check.valid_len;
        next = Some(check.next_position);
        after_scavenged = check.span != 0;
    }
    copied.head = next.ok_or_else(|| Failure::other("the store holds no complete segment"))?;
    Ok(true)
}

/// Checks a segment file's bytes and that it continues the log at `next`; `None` for a last
/// segment being created by a rotation (it never held a record).
fn check_listed(
    file: &super::SegmentFile,
    bytes: &[u8],
    next: Option<u64>,
    last: bool,
) -> CliResult<Option<SegmentCheck>> {
    let damaged = |offset: u64, what: String| {
        let message = format!("corruption in segment {} at offset {offset}: {what}", file.name);
        Failure::new(Exit::Corruption, message)
    };
    let check = match check_segment(bytes) {
        Ok(check) => check,
        Err(_) if last && bytes.len() <= SEGMENT_HEADER_LEN => return Ok(None),
        Err(e @ HeaderError::UnsupportedVersion(_)) => {
            return Err(Failure::other(format!("segment {}: {e}", file.name)));
        }
        Err(e) => return Err(damaged(0, e.to_string())),
    };
    let expected = next.unwrap_or(file.base);
    if check.base_position != file.base || check.base_position != expected {
        let what = format!("base position {} where {expected} belongs", check.base_position);
        return Err(damaged(0, what));
    }
    match check.damage {
        // Only the segment being appended to can end in an append still being written.
        Some((offset, kind)) if !last => Err(damaged(offset, kind.to_string())),
        _ => Ok(Some(check)),
    }
}

/// Opens the copy read-only and strictly, and checks it against the source.
fn confirm(source: &Store, dest: &Path, floor: u64, copied: &Copied) -> CliResult<Store> {
    let strict = Options { recovery_mode: RecoveryMode::Strict, ..Options::default() };
    let copy = Store::open_read_only(dest, strict)?;
    let head = copy.head().get();
    if head != copied.head {
        let message = format!("it opens with head {head}, but {} was copied", copied.head);
        return Err(Failure::new(Exit::Corruption, message));
    }
    if head < floor {
        let message = format!("it ends at {head}, before the source's head {floor}");
        return Err(Failure::new(Exit::Corruption, message));
    }
    // Positions never change: the copy's last event below the floor must be the same event in
    // the source. (A scavenge since the source was opened may have removed later ones from the
    // copy; the source, opened before, still holds every event the copy holds below the floor.)
    if let Some(at) = floor.checked_sub(1) {
        let copied = copy.read_all_backward(Position(at), 1).next().transpose()?;
        if let Some(copied) = copied {
            let key =
                |e: &annal::RecordedEvent| (e.position(), e.id(), e.version(), e.data().to_vec());
            let position = copied.position();
            let original = source.read_all_forward(position, 1).next().transpose()?;
            if original.as_ref().map(key) != Some(key(&copied)) {
                let message = format!("its event at position {position} differs from the source's");
                return Err(Failure::new(Exit::Corruption, message));
            }
        }
    }
    for name in &copied.checkpoints {
        let checkpoint = copy.subscription_checkpoint(name)?;
        if checkpoint.is_some_and(|p| p.get() > head) {
            let message = format!("the checkpoint of subscription {name:?} is past its head");
            return Err(Failure::new(Exit::Corruption, message));
        }
    }
    Ok(copy)
}

/// Writes `bytes` to a new file at `path` and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> CliResult<()> {
    let write = || -> io::Result<()> {
        let mut file = File::create_new(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|e| Failure::io("write", path, e))
}

/// Fsyncs a directory, so that the entries created in it are durable.
fn sync_dir(dir: &Path) -> CliResult<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Failure::io("sync", dir, e))
}
