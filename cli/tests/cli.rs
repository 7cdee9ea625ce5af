//! The `annal` binary, run as a child process on temporary stores. Where a test needs "another
//! process" holding or appending to the store, the test process itself is that process.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use annal::{
    ExpectedVersion, Filter, NewEvent, Options, PersistentOptions, Position, Store,
    format::{FORMAT_VERSION, SEGMENT_HEADER_LEN},
};
use serde_json::Value;

const FIRST_SEGMENT: &str = "00000000000000000000.seg";

fn annal(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_annal"));
    command.args(args).stdin(Stdio::null());
    command
}

fn run(args: &[&str]) -> Output {
    annal(args).output().expect("the annal binary runs")
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    run_with_stdin_bytes(args, stdin.as_bytes())
}

fn run_with_stdin_bytes(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = annal(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the annal binary runs");
    child.stdin.take().expect("piped").write_all(stdin).expect("stdin written");
    child.wait_with_output().expect("annal ends")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr")
}

/// Each line of stdout as JSON.
fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// A store in `dir` with `events` events over `streams` streams, in segments of about 4 KiB.
fn small_segment_store(dir: &Path, events: u64, streams: u64) -> Store {
    let options = Options { segment_bytes_max: 4096, ..Options::default() };
    let options = Options { append_bytes_max: 2048, event_bytes_max: 1024, ..options };
    let store = Store::open_with(dir, options).expect("store opens");
    for i in 0..events {
        let data = format!("{{\"n\":{i}}}");
        let event = NewEvent::new("Counted", data.into_bytes());
        store.append(&format!("count-{}", i % streams), ExpectedVersion::Any, [event]).unwrap();
    }
    store
}

#[test]
fn append_from_stdin_then_read_back_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let input = format!(
        "{{\"type\":\"OrderPlaced\",\"data\":{{\"sku\":\"A1\",\"qty\":2}}}}\n\
         \n\
         {{\"type\":\"OrderNoted\",\"data\":\"plain text\",\"metadata\":{{\"by\":\"ann\"}},\"id\":\"{id}\"}}\n\
         {{\"type\":\"OrderPaid\"}}\n"
    );
    let appended = run_with_stdin(&["append", path(&store), "order-1", "--json"], &input);
    assert_eq!(code(&appended), 0, "{}", stderr(&appended));
    let result = &json_lines(&appended)[0];
    assert_eq!(result["events"], 3);
    assert_eq!(
        (result["first_position"].as_u64(), result["last_position"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(result["last_version"], 2);

    let read = run(&["read", path(&store), "order-1", "--json"]);
    assert_eq!(code(&read), 0, "{}", stderr(&read));
    let events = json_lines(&read);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["type"], "OrderPlaced");
    assert_eq!(events[0]["data"], serde_json::json!({"sku": "A1", "qty": 2}));
    assert_eq!(events[0]["data_encoding"], "json");
    assert_eq!(events[1]["data"], "plain text");
    assert_eq!(events[1]["data_encoding"], "utf8");
    assert_eq!(events[1]["metadata"], serde_json::json!({"by": "ann"}));
    assert_eq!(events[1]["id"], id);
    assert_eq!(events[2]["data"], "");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["position"], i);
        assert_eq!(event["version"], i);
        assert_eq!(event["stream"], "order-1");
        assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    let last = json_lines(&run(&[
        "read",
        path(&store),
        "order-1",
        "--backward",
        "--limit",
        "1",
        "--json",
    ]));
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["type"], "OrderPaid");

    let paid = json_lines(&run(&["read-all", path(&store), "--type", "OrderPaid", "--json"]));
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["position"], 2);

    let human = stdout(&run(&["read-all", path(&store)]));
    assert_eq!(human.lines().count(), 3);
    assert!(
        human.contains("order-1@0  OrderPlaced") && human.contains(r#""plain text""#),
        "{human}"
    );
}

#[test]
fn binary_data_reads_back_as_base64() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .append("blob-1", ExpectedVersion::Any, [NewEvent::new("Blob", vec![0xff, 0xfe, 0x00])])
        .unwrap();
    store.close();
    let events = json_lines(&run(&["read", path(dir.path()), "blob-1", "--json"]));
    assert_eq!(events[0]["data"], "//4A");
    assert_eq!(events[0]["data_encoding"], "base64");
}

#[test]
fn stats_json_reports_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    small_segment_store(dir.path(), 120, 3).close();
    let output = run(&["stats", path(dir.path()), "--json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let stats = &json_lines(&output)[0];
    assert_eq!(stats["events"], 120);
    assert_eq!(stats["streams"], 3);
    assert_eq!(stats["head"], 120);
    assert_eq!(stats["format_version"], FORMAT_VERSION);
    assert!(stats["segments"].as_u64().unwrap() > 1, "{stats}");
    let files: u64 = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(stats["disk_bytes"], files);
    // Closed cleanly, the store opens from its index files and stream table: no stream and
    // no position is held in memory.
    assert!(stats["index_memory_bytes"].as_u64().unwrap() < 1024, "{stats}");
    assert_eq!(stats["segments_scanned_on_open"], 0, "{stats}");
    assert_eq!(stats["segments_with_index_file"], stats["segments"], "{stats}");
    assert_eq!(stats["rebuilt_on_open"], serde_json::json!([]), "{stats}");
    assert_eq!(stats["torn_tail"], Value::Null);
}

#[test]
fn verify_clean_store_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    small_segment_store(dir.path(), 100, 4).close();
    let output = run(&["verify", path(dir.path()), "--json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let report = &json_lines(&output)[0];
    assert_eq!(report["clean"], true);
    assert_eq!(report["events"], 100);
    assert_eq!(report["problem_count"], 0);
    // Not a terminal: progress comes as plain lines on stderr.
    assert!(stderr(&output).contains("verify: checked"), "{}", stderr(&output));
}

#[test]
fn verify_flipped_byte_in_sealed_segment_exits_4_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    small_segment_store(dir.path(), 200, 4).close();
    // Without index files the open reads every segment, so it meets the damage itself.
    remove_derived_files(dir.path());
    let flip = |name: &str| {
        let sealed = dir.path().join(name);
        let mut bytes = fs::read(&sealed).unwrap();
        bytes[SEGMENT_HEADER_LEN + 300] ^= 0x40;
        fs::write(&sealed, &bytes).unwrap();
        bytes
    };
    let first = flip(FIRST_SEGMENT);
    let second_name = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg") && n != FIRST_SEGMENT)
        .min()
        .unwrap();
    flip(&second_name);

    let output = run(&["verify", path(dir.path())]);
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    assert!(stdout(&output).contains(FIRST_SEGMENT), "{}", stdout(&output));
    assert!(stderr(&output).contains("is damaged"), "{}", stderr(&output));

    let output = run(&["verify", path(dir.path()), "--json", "--quiet"]);
    assert_eq!(code(&output), 4);
    let report = &json_lines(&output)[0];
    assert_eq!(report["clean"], false);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems[0]["segment"], FIRST_SEGMENT);
    assert_eq!(problems[0]["found_by"], "open");
    assert!(problems[0]["offset"].as_u64().unwrap() <= SEGMENT_HEADER_LEN as u64 + 300);
    // The salvaging open read past the first damage and found the second.
    assert_eq!(report["opened"], "salvage");
    let later = problems.iter().find(|p| p["segment"] == second_name.as_str()).expect("listed");
    assert_eq!(later["found_by"], "salvage");
    assert!(report["events"].as_u64().unwrap() < 200);
    // Verify changed nothing.
    assert_eq!(fs::read(dir.path().join(FIRST_SEGMENT)).unwrap(), first);
}

#[test]
fn verify_ignores_a_torn_tail_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    small_segment_store(dir.path(), 10, 1).close();
    let last = dir.path().join(FIRST_SEGMENT);
    let clean_len = fs::metadata(&last).unwrap().len();
    fs::OpenOptions::new().append(true).open(&last).unwrap().write_all(&[0xab; 40]).unwrap();
    let output = run(&["verify", path(dir.path())]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).contains("torn tail of 40 bytes"), "{}", stdout(&output));
    let stats = &json_lines(&run(&["stats", path(dir.path()), "--json"]))[0];
    assert_eq!(stats["torn_tail"]["bytes"], 40);
    // Read-only commands leave the tail where it is.
    assert_eq!(fs::metadata(&last).unwrap().len(), clean_len + 40);
}

#[test]
fn verify_damage_near_the_end_followed_by_intact_events_exits_4() {
    // Within one group-commit bound of the end of the last segment, but followed by later
    // groups: corruption, not a torn tail. The segment's index file (written by the clean
    // close) lets the open skip reading it, so `verify` is what finds the damage.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for stream in ["a-1", "b-1", "c-1"] {
        let events = (0..50).map(|i| NewEvent::new("E", format!("{{\"i\":{i}}}")));
        store.append(stream, ExpectedVersion::Any, events).unwrap();
    }
    store.close();
    drop(store);
    let last = dir.path().join(FIRST_SEGMENT);
    let mut bytes = fs::read(&last).unwrap();
    bytes[SEGMENT_HEADER_LEN + 200] ^= 0x01;
    fs::write(&last, &bytes).unwrap();

    let output = run(&["verify", path(dir.path()), "--json", "--quiet"]);
    assert_eq!(code(&output), 4, "{}", stdout(&output));
    let report = &json_lines(&output)[0];
    assert_eq!(report["problems"][0]["found_by"], "verify");
    assert_eq!(report["problems"][0]["segment"], FIRST_SEGMENT);
    assert!(report["problems"][0]["kind"].as_str().unwrap().contains("checksum"));
    assert_eq!(fs::read(&last).unwrap(), bytes, "verify changed nothing");
    // Without index files the open itself refuses it.
    remove_derived_files(dir.path());
    let output = run(&["verify", path(dir.path()), "--json", "--quiet"]);
    assert_eq!(code(&output), 4, "{}", stdout(&output));
    assert_eq!(json_lines(&output)[0]["problems"][0]["found_by"], "open");
}

/// The check the backup test makes: `copy` holds the same events at the same positions as
/// `original`, up to its own head.
fn assert_prefix(copy: &Store, original: &Store) {
    let head = copy.head().get();
    assert!(head <= original.head().get());
    let pairs = copy
        .read_all_forward(Position::START, usize::MAX)
        .zip(original.read_all_forward(Position::START, head as usize));
    let mut n = 0;
    for (a, b) in pairs {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.position(), b.position());
        assert_eq!((a.id(), a.stream(), a.version()), (b.id(), b.stream(), b.version()));
        assert_eq!((a.event_type(), a.data()), (b.event_type(), b.data()));
        n += 1;
    }
    assert_eq!(n, head);
}

#[test]
fn backup_while_another_thread_appends_is_a_prefix_that_opens_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dest) = (dir.path().join("src"), dir.path().join("backups/copy"));
    let store = small_segment_store(&src, 200, 5);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut appended = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let events = (0..3).map(|i| NewEvent::new("Live", format!("[{appended},{i}]")));
                store
                    .append(&format!("live-{}", appended % 7), ExpectedVersion::Any, events)
                    .unwrap();
                appended += 1;
            }
            appended
        })
    };
    let output = run(&["backup", path(&src), path(&dest), "--json"]);
    stop.store(true, Ordering::Relaxed);
    let appended = writer.join().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(appended > 0);
    let result = &json_lines(&output)[0];

    let copy = Store::open(&dest).expect("the backup opens");
    assert!(copy.recovery_report().truncated.is_none());
    assert_eq!(result["head"], copy.head().get());
    assert!(copy.head().get() >= 200, "the backup holds what was committed before it began");
    assert_prefix(&copy, &store);
    // The restored copy takes appends and continues the log.
    let next = copy.append("after-restore", ExpectedVersion::NoStream, [NewEvent::new("X", "")]);
    assert_eq!(next.unwrap().first_position, Position(result["head"].as_u64().unwrap()));
}

#[test]
fn backup_copies_subscription_checkpoints_and_refuses_a_non_empty_dest() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dest) = (dir.path().join("src"), dir.path().join("copy"));
    let store = small_segment_store(&src, 20, 2);
    let mut sub =
        store.subscribe_persistent("billing", Filter::all(), PersistentOptions::default()).unwrap();
    for _ in 0..5 {
        let event = sub.recv().unwrap();
        sub.ack(event.position()).unwrap();
    }
    sub.save_checkpoint().unwrap();
    drop(sub);

    let output = run(&["backup", path(&src), path(&dest)]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).contains("1 subscription checkpoint"), "{}", stdout(&output));
    let copy = Store::open_read_only(&dest, Options::default()).unwrap();
    assert_eq!(copy.subscription_checkpoint("billing").unwrap(), Some(Position(5)));

    let again = run(&["backup", path(&src), path(&dest)]);
    assert_eq!(code(&again), 1);
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
}

#[test]
fn locked_store_refuses_append_with_exit_6_but_reads_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append("held-1", ExpectedVersion::NoStream, [NewEvent::new("Held", "{}")]).unwrap();

    let output = run_with_stdin(&["append", path(dir.path()), "held-1"], "{\"type\":\"More\"}\n");
    assert_eq!(code(&output), 6, "{}", stderr(&output));
    assert!(stderr(&output).contains("locked by another process"), "{}", stderr(&output));

    let read = run(&["read", path(dir.path()), "held-1", "--json"]);
    assert_eq!(code(&read), 0, "{}", stderr(&read));
    assert_eq!(json_lines(&read).len(), 1);
    assert_eq!(code(&run(&["stats", path(dir.path())])), 0);
    assert_eq!(store.stream_version("held-1").map(|v| v.get()), Some(0));
}

#[test]
fn read_of_a_missing_stream_or_directory_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path()).unwrap().close();
    let output = run(&["read", path(dir.path()), "nobody-1"]);
    assert_eq!(code(&output), 3);
    assert!(stderr(&output).contains("\"nobody-1\" not found"), "{}", stderr(&output));

    let missing = dir.path().join("missing");
    let output = run(&["stats", path(&missing)]);
    assert_eq!(code(&output), 3);
    assert!(stderr(&output).contains("no such store directory"), "{}", stderr(&output));
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(code(&run(&["verify", path(empty.path())])), 3);
}

#[test]
fn wrong_expected_version_exits_5_showing_expected_and_actual() {
    let dir = tempfile::tempdir().unwrap();
    let two = "{\"type\":\"A\"}\n{\"type\":\"B\"}\n";
    assert_eq!(code(&run_with_stdin(&["append", path(dir.path()), "acc-1"], two)), 0);

    let output = run_with_stdin(
        &["append", path(dir.path()), "acc-1", "--expected-version", "no-stream"],
        "{\"type\":\"C\"}\n",
    );
    assert_eq!(code(&output), 5, "{}", stderr(&output));
    assert!(stderr(&output).contains("expected no-stream, actual 1"), "{}", stderr(&output));

    let exact = ["append", path(dir.path()), "acc-1", "--expected-version", "0"];
    let output = run_with_stdin(&exact, "{\"type\":\"C\"}\n");
    assert_eq!(code(&output), 5);
    assert!(stderr(&output).contains("expected 0, actual 1"), "{}", stderr(&output));

    let right = ["append", path(dir.path()), "acc-1", "--expected-version", "1"];
    assert_eq!(code(&run_with_stdin(&right, "{\"type\":\"C\"}\n")), 0);
}

#[test]
fn bad_input_and_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        run_with_stdin(&["append", path(dir.path()), "s-1"], "{\"type\":\"A\"}\nnot json\n");
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("line 2: not JSON"), "{}", stderr(&output));
    assert_eq!(code(&run_with_stdin(&["append", path(dir.path()), "s-1"], "\n")), 2);
    assert_eq!(code(&run(&["read", path(dir.path())])), 2);
    assert_eq!(code(&run(&["append", path(dir.path()), "s", "--expected-version", "soon"])), 2);
    // Invalid UTF-8 on stdin was exit 1 ("cannot read stdin"), as if stdin had failed.
    let output =
        run_with_stdin_bytes(&["append", path(dir.path()), "s-1"], b"{\"type\":\"\xff\"}\n");
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(stderr(&output).contains("line 1: not UTF-8"), "{}", stderr(&output));
    // Nothing was appended by the refused input.
    assert_eq!(code(&run(&["read", path(dir.path()), "s-1"])), 3);
}

/// Reads lines from `child`'s stdout until it ends, failing the test if it runs past `limit`.
fn wait_for_lines(mut child: Child, limit: Duration) -> Vec<String> {
    let stdout = child.stdout.take().expect("piped");
    let reader =
        thread::spawn(move || BufReader::new(stdout).lines().map(Result::unwrap).collect());
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("annal tail did not stop after its --count events");
        }
        thread::sleep(Duration::from_millis(10));
    }
    reader.join().unwrap()
}

#[test]
fn tail_follows_appends_made_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append("early-1", ExpectedVersion::Any, [NewEvent::new("Early", "1")]).unwrap();
    let child = annal(&[
        "tail",
        path(dir.path()),
        "--from",
        "0",
        "--category",
        "live",
        "--count",
        "4",
        "--json",
        "--interval-ms",
        "20",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    // The store stays open (and locked) in this process while the tail reads it.
    for i in 0..4 {
        store.append("other-1", ExpectedVersion::Any, [NewEvent::new("Skipped", "{}")]).unwrap();
        let data = format!("{{\"i\":{i}}}");
        store.append("live-1", ExpectedVersion::Any, [NewEvent::new("Live", data)]).unwrap();
        thread::sleep(Duration::from_millis(30));
    }
    let lines = wait_for_lines(child, Duration::from_secs(60));
    let events: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 4);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["stream"], "live-1");
        assert_eq!(event["version"], i);
        assert_eq!(event["data"]["i"], i);
    }
}

#[test]
fn help_has_examples_and_lists_the_lifecycle_commands() {
    let top = stdout(&run(&["--help"]));
    assert!(!top.contains("no `annal scavenge`"), "{top}");
    assert!(top.contains("Exit codes:"), "{top}");
    for command in ["delete", "metadata", "scavenge"] {
        assert!(top.contains(&format!("annal {command} ./events")), "{command}: {top}");
    }
    let commands = ["stats", "verify", "read", "read-all", "tail", "append", "backup", "bench"];
    for command in commands.into_iter().chain(["delete", "metadata", "scavenge"]) {
        let help = run(&[command, "--help"]);
        assert_eq!(code(&help), 0);
        assert!(stdout(&help).contains("Examples:"), "{command}: {}", stdout(&help));
    }
    let scavenge = stdout(&run(&["scavenge", "--help"]));
    assert!(scavenge.contains("--keep-recent") && scavenge.contains("Positions never change"));
    assert_eq!(code(&run(&["scavenge"])), 2);
    assert_eq!(code(&run(&["metadata", "x", "s-1", "--set", "no-equals-sign"])), 2);
}

/// A stream `name` with `events` events, appended through the CLI.
fn append_events(dir: &Path, name: &str, events: usize) {
    let input: String = (0..events).map(|i| format!("{{\"type\":\"E\",\"data\":{i}}}\n")).collect();
    let output = run_with_stdin(&["append", path(dir), name], &input);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

#[test]
fn delete_then_read_exits_3_and_an_append_brings_the_stream_back() {
    let dir = tempfile::tempdir().unwrap();
    append_events(dir.path(), "order-1", 3);
    let wrong = run(&["delete", path(dir.path()), "order-1", "--expected-version", "1"]);
    assert_eq!(code(&wrong), 5, "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("expected 1, actual 2"), "{}", stderr(&wrong));

    let output = run(&["delete", path(dir.path()), "order-1", "--expected-version", "2", "--json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let result = &json_lines(&output)[0];
    assert_eq!(
        (result["kind"].as_str(), result["stream"].as_str()),
        (Some("soft"), Some("order-1"))
    );
    assert_eq!(result["position"], 3, "the delete record follows the 3 events");

    let read = run(&["read", path(dir.path()), "order-1"]);
    assert_eq!(code(&read), 3, "{}", stderr(&read));
    assert!(stderr(&read).contains("\"order-1\" not found"), "{}", stderr(&read));
    let metadata = json_lines(&run(&["metadata", path(dir.path()), "order-1", "--json"]));
    assert_eq!(metadata[0]["metadata"]["truncate_before"], 3);

    append_events(dir.path(), "order-1", 1);
    let events = json_lines(&run(&["read", path(dir.path()), "order-1", "--json"]));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["version"], 3, "versions continue the old numbering");
    assert_eq!(code(&run(&["delete", path(dir.path()), "nobody-1"])), 3);
    let missing = dir.path().join("missing");
    assert_eq!(code(&run(&["delete", path(&missing), "order-1"])), 3);
    assert!(!missing.exists(), "delete creates no store");
}

#[test]
fn delete_hard_then_append_exits_3_for_good() {
    let dir = tempfile::tempdir().unwrap();
    append_events(dir.path(), "order-1", 2);
    let output = run(&["delete", path(dir.path()), "order-1", "--hard"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).contains("tombstoned \"order-1\""), "{}", stdout(&output));

    let append = run_with_stdin(&["append", path(dir.path()), "order-1"], "{\"type\":\"E\"}\n");
    assert_eq!(code(&append), 3, "{}", stderr(&append));
    assert!(stderr(&append).contains("deleted for good"), "{}", stderr(&append));
    assert_eq!(code(&run(&["read", path(dir.path()), "order-1"])), 3);
    assert_eq!(code(&run(&["metadata", path(dir.path()), "order-1"])), 3);
    assert_eq!(code(&run(&["delete", path(dir.path()), "order-1"])), 3);
}

#[test]
fn metadata_max_count_2_leaves_the_last_2_events_to_read() {
    let dir = tempfile::tempdir().unwrap();
    append_events(dir.path(), "order-1", 5);
    let none = run(&["metadata", path(dir.path()), "order-1"]);
    assert_eq!(code(&none), 0, "{}", stderr(&none));
    assert!(stdout(&none).contains("has no metadata"), "{}", stdout(&none));

    let set =
        ["metadata", path(dir.path()), "order-1", "--set-max-count", "2", "--set", "owner=ann"];
    let output = run(&set);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).contains("version 0"), "{}", stdout(&output));
    let events = json_lines(&run(&["read", path(dir.path()), "order-1", "--json"]));
    let versions: Vec<_> = events.iter().map(|e| e["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [3, 4]);

    // A second change keeps what it does not name and bumps the version.
    let more = ["metadata", path(dir.path()), "order-1", "--set-max-age", "3600", "--json"];
    let shown = &json_lines(&run(&more))[0];
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["metadata"]["max_count"], 2);
    assert_eq!(shown["metadata"]["max_age_seconds"], 3600);
    assert_eq!(shown["metadata"]["custom"]["owner"], "ann");

    let cleared =
        &json_lines(&run(&["metadata", path(dir.path()), "order-1", "--clear", "--json"]))[0];
    assert_eq!(cleared["version"], 2);
    assert_eq!(cleared["metadata"]["max_count"], Value::Null);
    assert_eq!(json_lines(&run(&["read", path(dir.path()), "order-1", "--json"])).len(), 5);
}

#[test]
fn lifecycle_commands_on_a_locked_store_exit_6() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.append("held-1", ExpectedVersion::NoStream, [NewEvent::new("Held", "{}")]).unwrap();
    for args in [
        &["delete", path(dir.path()), "held-1"][..],
        &["metadata", path(dir.path()), "held-1", "--set-max-count", "1"],
        &["scavenge", path(dir.path())],
    ] {
        let output = run(args);
        assert_eq!(code(&output), 6, "{args:?}: {}", stderr(&output));
    }
    // Showing metadata is read-only.
    assert_eq!(code(&run(&["metadata", path(dir.path()), "held-1"])), 0);
    assert_eq!(store.stream_version("held-1").map(|v| v.get()), Some(0));
}

#[test]
fn scavenge_removes_deleted_events_then_verify_and_backup_work() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dest) = (dir.path().join("src"), dir.path().join("copy"));
    let store = small_segment_store(&src, 600, 20);
    for i in (0..20).step_by(2) {
        let stream = format!("count-{i}");
        if i % 4 == 0 {
            store.tombstone_stream(&stream, ExpectedVersion::Any).unwrap();
        } else {
            store.delete_stream(&stream, ExpectedVersion::Any).unwrap();
        }
    }
    let kept_before: Vec<_> = store
        .read_stream_forward("count-1", annal::StreamVersion::START, usize::MAX)
        .unwrap()
        .map(|e| e.unwrap().position())
        .collect();
    let head = store.head();
    store.close();
    drop(store);
    let bytes_on_disk = |dir: &Path| -> u64 {
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    };
    let before = bytes_on_disk(&src);

    let output = run(&["scavenge", path(&src), "--keep-recent", "0", "--json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let report = &json_lines(&output)[0];
    assert!(report["events_removed"].as_u64().unwrap() > 0, "{report}");
    assert!(report["bytes_reclaimed"].as_u64().unwrap() > 0, "{report}");
    assert!(report["segments_rewritten"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["keep_recent"], 0);
    assert_eq!(report["cancelled"], false);
    assert!(bytes_on_disk(&src) < before);

    // Scavenged events leave their positions unused: `events` counted positions, so stats,
    // verify and backup reported events that no read returns. Each now says both.
    let present = json_lines(&run(&["read-all", path(&src), "--json"])).len() as u64;
    let stats = &json_lines(&run(&["stats", path(&src), "--json"]))[0];
    assert_eq!(stats["events"], head.get(), "{stats}");
    assert_eq!(stats["events_present"], present, "{stats}");
    assert!(present < head.get(), "{present} events in {head} positions");
    let verify = run(&["verify", path(&src), "--json", "--quiet"]);
    assert_eq!(code(&verify), 0, "{}", stdout(&verify));
    assert_eq!(json_lines(&verify)[0]["clean"], true);
    assert_eq!(json_lines(&verify)[0]["events"], present);
    assert_eq!(json_lines(&verify)[0]["positions"], head.get());
    let backup = run(&["backup", path(&src), path(&dest), "--json"]);
    assert_eq!(code(&backup), 0, "{}", stderr(&backup));
    assert_eq!(json_lines(&backup)[0]["events_present"], present);
    assert_eq!(json_lines(&backup)[0]["events"], head.get());
    assert_eq!(code(&run(&["verify", path(&dest), "--quiet"])), 0);

    // Positions never change: a live stream reads back at the same positions, and the head
    // stays where it was.
    let copy = Store::open_read_only(&dest, Options::default()).unwrap();
    assert_eq!(copy.head(), head);
    let kept_after: Vec<_> = copy
        .read_stream_forward("count-1", annal::StreamVersion::START, usize::MAX)
        .unwrap()
        .map(|e| e.unwrap().position())
        .collect();
    assert_eq!(kept_after, kept_before);
    assert_eq!(code(&run(&["read", path(&dest), "count-0"])), 3);

    // Nothing left to remove: a second run reclaims nothing, in human form.
    let again = run(&["scavenge", path(&src), "--keep-recent", "0"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(stdout(&again).contains("events removed     0"), "{}", stdout(&again));
}

#[test]
fn bench_prints_a_table_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(&["bench", path(dir.path()), "--slice-ms", "20", "--read-events", "2000"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let table = stdout(&output);
    for row in ["durable append, 1 writer", "16 writers", "batches of 100", "read $all"] {
        assert!(table.contains(row), "{table}");
    }
    assert!(table.contains("--example bench -- --quick"));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "the scratch directory is gone");
}

#[test]
fn backup_and_verify_beside_a_scavenging_writer_exit_0() {
    // `annal backup` listed the segment files and read them one by one: a scavenge merging
    // segments meanwhile removed one (exit 3, "cannot read") or left one inside the span of
    // the merged segment just copied (exit 4, "base position … where … belongs").
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let options =
        Options { segment_bytes_max: 4096, idempotency_window_events: 0, ..Options::default() };
    let options = Options { append_bytes_max: 2048, event_bytes_max: 1024, ..options };
    let options = Options { durability: annal::Durability::None, ..options };
    let store = Store::open_with(&src, options).unwrap();
    for stream in 0..4 {
        let metadata = annal::StreamMetadata { max_count: Some(2), ..Default::default() };
        store.set_stream_metadata(&format!("s-{stream}"), ExpectedVersion::Any, metadata).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churner = {
        let (store, stop) = (store.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let event = NewEvent::new("Churned", vec![b'x'; 200]);
                store.append(&format!("s-{}", n % 4), ExpectedVersion::Any, [event]).unwrap();
                if n % 4 == 3 {
                    store.scavenge().unwrap();
                }
                n += 1;
            }
        })
    };
    let mut failures = Vec::new();
    for i in 0..40 {
        let dest = dir.path().join(format!("copy-{i}"));
        let output = run(&["backup", path(&src), path(&dest), "--json"]);
        if code(&output) != 0 {
            failures.push(stderr(&output));
        }
        let output = run(&["verify", path(&src), "--quiet"]);
        if code(&output) != 0 {
            failures.push(format!("verify: {}{}", stdout(&output), stderr(&output)));
        }
    }
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();
    assert!(failures.is_empty(), "{} failed: {failures:?}", failures.len());
}

/// Removes the store's derived files (segment index files, stream tables), as if it had been
/// written before they existed: the next open reads every segment.
fn remove_derived_files(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "idx" || x == "tbl") {
            fs::remove_file(path).unwrap();
        }
    }
}
