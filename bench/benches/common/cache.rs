//! Stores kept between runs. The large ones (10M events, 10M streams) take minutes to build, so
//! they live in a data directory outside any run's scratch directory, and a run reuses them:
//! the same bytes can then be opened by one build of annal and by the next.
//!
//! Each store `name` is the directory `<data>/<name>`; the file `<data>/<name>.built` (beside
//! it, so the store's own directory holds nothing foreign) is written once its build completed
//! and says what was built. A store without it, or built to another description, is removed
//! and built again.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The data directory: `ANNAL_BENCH_DATA` if set, else `target/bench-data` of this crate.
pub fn data_dir() -> PathBuf {
    std::env::var_os("ANNAL_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"))
}

/// The directory of the kept store `name`, built by `build` (which returns how long building
/// took) unless a complete build described by `what` is already there. Returns the directory
/// and the build time, `None` when the store was reused.
pub fn kept(
    name: &str,
    what: &str,
    build: impl FnOnce(&Path) -> Res<Duration>,
) -> Res<(PathBuf, Option<Duration>)> {
    let data = data_dir();
    let (dir, marker) = (data.join(name), data.join(format!("{name}.built")));
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == what) {
        return Ok((dir, None));
    }
    let _ = std::fs::remove_file(&marker);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    eprintln!("building {} ({what}); kept for later runs", dir.display());
    let took = build(&dir)?;
    std::fs::write(&marker, what)?;
    Ok((dir, Some(took)))
}
