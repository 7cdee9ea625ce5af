//! Helpers shared by the scenarios.

use annal::{Durability, NewEvent, Options, Store};

/// Options with tiny limits so that tests rotate segments and hit limits quickly.
pub fn small_options() -> Options {
    Options {
        segment_bytes_max: 4096,
        event_bytes_max: 1024,
        append_bytes_max: 2048,
        group_bytes_max: 2048,
        append_events_max: 16,
        ..Options::default()
    }
}

/// Options without fsync, for tests that do not crash.
#[allow(dead_code)]
pub fn fast_options() -> Options {
    Options { durability: Durability::None, ..small_options() }
}

/// An event whose data names it.
pub fn event(n: u64) -> NewEvent {
    NewEvent::new("Tested", format!("event-{n}").into_bytes())
}

/// Opens `dir` with `options`, panicking with the error.
pub fn open(dir: &std::path::Path, options: Options) -> Store {
    Store::open_with(dir, options).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// Runs the test `test` of this binary as a child process with `var` set to `dir`, lets it run
/// for `run`, kills it with SIGKILL (`Child::kill` on Unix), and returns the lines it printed.
/// The child half is `#[ignore]`d (so a normal run does not count it as a passing test), hence
/// `--ignored`.
pub fn run_child_then_kill(
    test: &str,
    var: &str,
    dir: &std::path::Path,
    run: std::time::Duration,
) -> Vec<String> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .env(var, dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout).lines().map_while(Result::ok).collect()
    });
    std::thread::sleep(run);
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    reader.join().unwrap()
}

/// The segment files of `dir` in log order.
pub fn segment_paths(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    paths.sort();
    paths
}

/// Removes the derived files of a closed store (segment index files, stream tables), as if it
/// had crashed before writing any (or had been written before they existed): the next open
/// scans every segment. Tests that damage segment bytes on purpose and expect the open to meet
/// the damage use it; with the files present, an open reads no sealed segment.
pub fn remove_derived_files(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".idx") || name.ends_with(".tbl") {
            std::fs::remove_file(&path).unwrap();
        }
    }
}
