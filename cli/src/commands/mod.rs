//! The subcommands, one file each, and how they find and open a store directory.

mod append;
mod backup;
mod bench;
mod delete;
mod metadata;
mod read;
mod scavenge;
mod stats;
mod tail;
mod verify;

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use annal::{Options, Store, format::SEGMENT_SUFFIX};

use crate::{
    args::Command,
    exit::{CliResult, Exit, Failure},
};

/// Runs one subcommand.
pub fn run(command: Command) -> CliResult {
    match command {
        Command::Stats(args) => stats::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Read(args) => read::stream(&args),
        Command::ReadAll(args) => read::all(&args),
        Command::Tail(args) => tail::run(&args),
        Command::Append(args) => append::run(&args),
        Command::Backup(args) => backup::run(&args),
        Command::Delete(args) => delete::run(&args),
        Command::Metadata(args) => metadata::run(&args),
        Command::Scavenge(args) => scavenge::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}

/// A segment file of a store directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    /// The position of its first record, from its name.
    pub base: u64,
    /// Its file name, `{base:020}.seg`.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
}

/// The segment files of `dir`, in log order (the names are zero-padded positions).
pub fn segment_files(dir: &Path) -> CliResult<Vec<SegmentFile>> {
    let entries = fs::read_dir(dir).map_err(|e| Failure::io("list", dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Failure::io("list", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if let Some(base) = segment_base(&name) {
            files.push(SegmentFile { base, name, path: entry.path() });
        }
    }
    files.sort_by_key(|f| f.base);
    Ok(files)
}

/// The base position a segment file name stands for: 20 decimal digits and `.seg`.
fn segment_base(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    let all_digits = digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit());
    all_digits.then(|| digits.parse().ok()).flatten()
}

/// Fails with exit 3 unless `dir` is a directory with at least one segment file in it.
pub fn require_store(dir: &Path) -> CliResult<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            let message = format!("{} is not a directory", dir.display());
            return Err(Failure::new(Exit::NotFound, message));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let message = format!("no such store directory: {}", dir.display());
            return Err(Failure::new(Exit::NotFound, message));
        }
        Err(e) => return Err(Failure::io("open store directory", dir, e)),
    }
    if segment_files(dir)?.is_empty() {
        let message = format!("no annal store in {} (it holds no segment files)", dir.display());
        return Err(Failure::new(Exit::NotFound, message));
    }
    Ok(())
}

/// Opens the store in `dir` read-only: no lock, nothing written, a torn tail ignored.
pub fn open_read_only(dir: &Path) -> CliResult<Store> {
    require_store(dir)?;
    Ok(Store::open_read_only(dir, Options::default())?)
}

/// Opens the existing store in `dir` for writing with `options`: exit 3 if there is none
/// (unlike `append`, these commands do not create one), exit 6 while another process holds it.
pub fn open_writable(dir: &Path, options: Options) -> CliResult<Store> {
    require_store(dir)?;
    Ok(Store::open_with(dir, options)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_twenty_digit_segment_names_count() {
        assert_eq!(segment_base("00000000000000000000.seg"), Some(0));
        assert_eq!(segment_base("00000000000000001234.seg"), Some(1234));
        assert_eq!(segment_base("0000000000000000123.seg"), None);
        assert_eq!(segment_base("0000000000000000012a.seg"), None);
        assert_eq!(segment_base("00000000000000000000.seg.tmp"), None);
        assert_eq!(segment_base("LOCK"), None);
    }
}
