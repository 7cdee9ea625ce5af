//! `docs/format.md` checked against real bytes: the layout tables are parsed out of the page,
//! and every documented field of a store's segment files must hold the expected value at the
//! documented offset (the record table of versions 1 and 2 against a store of version 1; the
//! derived files' tables against files built with the codec, since no store writes them yet).
//! Every layout table of the page must be one that a test checks. The README's example is held
//! to the crate-root doctest, which compiles it.

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Range,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use annal::{
    ExpectedVersion, NewEvent, Options, Store,
    format::{
        DERIVED_HEADER_LEN, FORMAT_VERSION, INDEX_FILE_MAGIC, INDEX_FILE_VERSION, IndexFileBuilder,
        METADATA_ENTRY_LEN, POSITION_ENTRY_LEN, RECORD_HEADER_LEN, RECORD_HEADER_LEN_V2,
        SECTION_ENTRY_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, STREAM_ENTRY_LEN, STREAM_TABLE_MAGIC,
        STREAM_TABLE_VERSION, SegmentBinding, TABLE_ENTRY_LEN, TABLE_OFFSETS_LEN,
        TABLE_SEGMENT_LEN, TableBinding, TableEntry, encode_stream_table,
    },
};
use uuid::Uuid;

const FORMAT_MD: &str = include_str!("../../docs/format.md");
const README_MD: &str = include_str!("../../README.md");
const LIB_RS: &str = include_str!("../../src/lib.rs");

/// The header row every layout table in `docs/format.md` uses.
const TABLE_HEADER: &str = "| offset | size | field | meaning |";

/// The header row of the tables that lay out several kinds of entry, one kind per `entry` name.
const ENTRY_TABLE_HEADER: &str = "| entry | offset | size | field | meaning |";

/// A distinctive group bound, so that the header field cannot match by accident.
const GROUP_BYTES_MAX: u32 = 4096 + 123;

/// One row of a layout table.
#[derive(Debug)]
struct Row {
    offset: usize,
    size: usize,
    field: String,
    meaning: String,
}

impl Row {
    fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.size
    }

    /// The first `code` span of the meaning: the value the page documents for the field.
    fn documented_value(&self) -> &str {
        let mut parts = self.meaning.split('`');
        parts.next();
        parts.next().unwrap_or_else(|| panic!("field {} documents no `value`", self.field))
    }
}

/// The layout table of the section titled `heading`.
fn table(heading: &str) -> Vec<Row> {
    let mut lines = FORMAT_MD.lines().skip_while(|l| l.trim() != heading);
    assert!(lines.next().is_some(), "docs/format.md has no {heading:?}");
    let mut lines =
        lines.take_while(|l| !l.starts_with("## ")).skip_while(|l| l.trim() != TABLE_HEADER);
    assert!(lines.next().is_some(), "{heading:?} has no layout table");
    assert!(lines.next().is_some_and(|l| l.starts_with("|---")));
    let rows: Vec<Row> = lines
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.splitn(5, '|').map(str::trim).collect();
            let number = |cell: &str| {
                cell.parse().unwrap_or_else(|_| panic!("not a decimal number in {line:?}"))
            };
            Row {
                offset: number(cells[1]),
                size: number(cells[2]),
                field: cells[3].to_owned(),
                meaning: cells[4].trim_end_matches('|').trim().to_owned(),
            }
        })
        .collect();
    let mut end = 0;
    for row in &rows {
        assert_eq!(row.offset, end, "{heading}: {} leaves a gap", row.field);
        assert!(row.size > 0, "{heading}: {} is empty", row.field);
        end += row.size;
    }
    rows
}

/// The entry layout table of the section titled `heading`: each entry's rows, by entry name.
fn entry_tables(heading: &str) -> BTreeMap<String, Vec<Row>> {
    let mut lines = FORMAT_MD.lines().skip_while(|l| l.trim() != heading);
    assert!(lines.next().is_some(), "docs/format.md has no {heading:?}");
    let mut lines =
        lines.take_while(|l| !l.starts_with("## ")).skip_while(|l| l.trim() != ENTRY_TABLE_HEADER);
    assert!(lines.next().is_some(), "{heading:?} has no entry table");
    assert!(lines.next().is_some_and(|l| l.starts_with("|---")));
    let mut entries: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for line in lines.take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.splitn(6, '|').map(str::trim).collect();
        let number = |cell: &str| {
            cell.parse().unwrap_or_else(|_| panic!("not a decimal number in {line:?}"))
        };
        let row = Row {
            offset: number(cells[2]),
            size: number(cells[3]),
            field: cells[4].to_owned(),
            meaning: cells[5].trim_end_matches('|').trim().to_owned(),
        };
        entries.entry(cells[1].to_owned()).or_default().push(row);
    }
    for (entry, rows) in &entries {
        let mut end = 0;
        for row in rows {
            assert_eq!(row.offset, end, "{heading}, {entry}: {} leaves a gap", row.field);
            end += row.size;
        }
    }
    entries
}

/// The sum of the sizes of `rows`: the length of what they lay out.
fn len_of(rows: &[Row]) -> usize {
    rows.iter().map(|r| r.size).sum()
}

/// The bytes of one header or record, read through the documented table. Remembers which
/// fields were checked, so that a documented field without a check fails the test.
struct Fields<'a> {
    rows: &'a [Row],
    bytes: &'a [u8],
    checked: BTreeSet<&'a str>,
}

impl<'a> Fields<'a> {
    fn new(rows: &'a [Row], bytes: &'a [u8]) -> Fields<'a> {
        Fields { rows, bytes, checked: BTreeSet::new() }
    }

    fn row(&self, field: &str) -> &'a Row {
        let rows: &'a [Row] = self.rows;
        rows.iter()
            .find(|r| r.field == field)
            .unwrap_or_else(|| panic!("field {field} is not documented"))
    }

    fn raw(&mut self, field: &str) -> &'a [u8] {
        let row = self.row(field);
        self.checked.insert(row.field.as_str());
        let bytes: &'a [u8] = self.bytes;
        &bytes[row.range()]
    }

    fn uint(&mut self, field: &str, size: usize) -> u64 {
        let raw = self.raw(field);
        assert_eq!(raw.len(), size, "documented size of {field}");
        let mut le = [0u8; 8];
        le[..size].copy_from_slice(raw);
        u64::from_le_bytes(le)
    }

    fn u8(&mut self, field: &str) -> u64 {
        self.uint(field, 1)
    }
    fn u16(&mut self, field: &str) -> u64 {
        self.uint(field, 2)
    }
    fn u24(&mut self, field: &str) -> u64 {
        self.uint(field, 3)
    }
    fn u48(&mut self, field: &str) -> u64 {
        self.uint(field, 6)
    }
    fn u32(&mut self, field: &str) -> u64 {
        self.uint(field, 4)
    }
    fn u64(&mut self, field: &str) -> u64 {
        self.uint(field, 8)
    }

    /// CRC-32 of every byte of `bytes` except the documented checksum field.
    fn crc_without(&self, field: &str, bytes: &[u8]) -> u64 {
        let skip = self.row(field).range();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&bytes[..skip.start]);
        hasher.update(&bytes[skip.end..]);
        u64::from(hasher.finalize())
    }

    fn assert_all_checked(&self, what: &str) {
        let documented: BTreeSet<&str> = self.rows.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(self.checked, documented, "{what}: documented fields vs checked");
    }
}

/// An event as the test appended it, to compare against its record.
struct Expected {
    stream: &'static str,
    id: Uuid,
    event_type: &'static str,
    metadata: Vec<u8>,
    data: Vec<u8>,
    position: u64,
    version: u64,
    batch_left: u64,
    /// The group commit that wrote it.
    sequence: u64,
}

impl Expected {
    fn new_event(&self) -> NewEvent {
        NewEvent::new(self.event_type, self.data.clone())
            .with_id(self.id)
            .with_metadata(self.metadata.clone())
    }
}

fn now_us() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_micros()).unwrap()
}

/// Checks the segment header at the start of `file` and returns its length.
fn check_segment_header(rows: &[Row], file: &[u8], base_position: u64) -> usize {
    let mut f = Fields::new(rows, file);
    assert_eq!(f.raw("magic"), b"ANNALSEG");
    assert_eq!(f.u16("version"), u64::from(FORMAT_VERSION));
    assert_eq!(f.u16("header_len"), 32);
    assert_eq!(f.u32("group_bytes_max"), u64::from(GROUP_BYTES_MAX));
    assert_eq!(f.u64("base_position"), base_position);
    assert_eq!(f.u32("span"), 0, "the writer's segments have no span");
    let header_len = rows.iter().map(|r| r.size).sum();
    let crc = f.crc_without("header_crc", &file[..header_len]);
    assert_eq!(f.u32("header_crc"), crc, "header CRC covers what the page says");
    f.assert_all_checked("segment header");
    header_len
}

/// Checks the record at `file[at..]` against `e` and returns its length.
fn check_record(rows: &[Row], file: &[u8], at: usize, e: &Expected, time: Range<u64>) -> usize {
    let mut f = Fields::new(rows, &file[at..]);
    let header_len: usize = rows.iter().map(|r| r.size).sum();
    let body = [e.stream.as_bytes(), e.event_type.as_bytes(), &e.metadata, &e.data];
    let len = header_len + body.iter().map(|part| part.len()).sum::<usize>();
    assert_eq!(f.u32("length"), len as u64, "record at {at}");
    let record = &file[at..at + len];
    assert_eq!(f.u32("crc"), f.crc_without("crc", record), "record CRC at {at}");
    assert_eq!(f.u64("position"), e.position);
    assert_eq!(f.u64("version"), e.version);
    let timestamp = f.u64("timestamp_us");
    assert!(time.contains(&timestamp), "timestamp {timestamp} outside {time:?}");
    assert_eq!(f.raw("id"), e.id.as_bytes(), "id in RFC 9562 byte order");
    assert_eq!(f.u48("group_sequence"), e.sequence);
    assert_eq!(f.u16("epoch"), 0);
    assert_eq!(f.u16("batch_left"), e.batch_left);
    assert_eq!(f.u8("stream_len"), e.stream.len() as u64);
    assert_eq!(f.u8("type_len"), e.event_type.len() as u64);
    assert_eq!(f.u24("metadata_len"), e.metadata.len() as u64);
    assert_eq!(f.u8("tag_count"), 0, "the API writes no tags");
    f.assert_all_checked("record header");
    // The body: stream name, type, metadata, data, back to back after the header.
    let mut rest = &record[header_len..];
    for part in body {
        let (head, tail) = rest.split_at(part.len());
        assert_eq!(head, part, "record body at {at}");
        rest = tail;
    }
    assert!(rest.is_empty());
    len
}

/// Options whose segments are small enough that the second append starts a new segment.
fn doc_options() -> Options {
    Options {
        segment_bytes_max: 32 + 4096,
        event_bytes_max: 1400,
        append_bytes_max: 4096,
        group_bytes_max: GROUP_BYTES_MAX,
        ..Options::default()
    }
}

/// One event to `doc-a`, then a 3-event append to `doc-b` that does not fit in the first
/// segment, so it opens segment `…01.seg`.
fn expected_events() -> (Expected, Vec<Expected>) {
    let single = Expected {
        stream: "doc-a",
        id: Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff),
        event_type: "Documented",
        metadata: b"meta-bytes".to_vec(),
        data: b"data-bytes-of-the-single-event".to_vec(),
        position: 0,
        version: 0,
        batch_left: 0,
        sequence: 0,
    };
    let batch = (0..3u8)
        .map(|i| Expected {
            stream: "doc-b",
            id: Uuid::from_u128(0xb000 + u128::from(i)),
            event_type: "Batched",
            metadata: vec![b'm'; usize::from(i)],
            data: vec![b'a' + i; 1270],
            position: 1 + u64::from(i),
            version: u64::from(i),
            batch_left: u64::from(2 - i),
            sequence: 1,
        })
        .collect();
    (single, batch)
}

fn read_segment(dir: &Path, base: u64) -> Vec<u8> {
    std::fs::read(dir.join(format!("{base:020}.seg"))).expect("segment named by its base")
}

#[test]
fn format_doc_tables_match_the_bytes_of_a_real_store() {
    let (single, batch) = expected_events();
    let dir = tempfile::tempdir().unwrap();
    let before = now_us();
    {
        let store = Store::open_with(dir.path(), doc_options()).unwrap();
        store.append("doc-a", ExpectedVersion::NoStream, [single.new_event()]).unwrap();
        let r = store
            .append("doc-b", ExpectedVersion::NoStream, batch.iter().map(Expected::new_event))
            .unwrap();
        assert_eq!(r.first_position.get(), 1);
        assert_eq!(store.stats().segments, 2, "the batch must open a second segment");
        store.close();
    }
    let time = before..now_us() + 1;
    let (header_rows, record_rows) = (table("## Segment header"), table("## Record frame"));

    let first = read_segment(dir.path(), 0);
    let at = check_segment_header(&header_rows, &first, 0);
    let len = check_record(&record_rows, &first, at, &single, time.clone());
    assert_eq!(first.len(), at + len, "nothing follows the last batch");

    let second = read_segment(dir.path(), 1);
    let mut at = check_segment_header(&header_rows, &second, 1);
    for e in &batch {
        at += check_record(&record_rows, &second, at, e, time.clone());
    }
    assert_eq!(second.len(), at, "nothing follows the last batch");
}

#[test]
fn format_doc_tables_add_up_and_match_the_constants() {
    let header = table("## Segment header");
    let record = table("## Record frame");
    assert_eq!(header.iter().map(|r| r.size).sum::<usize>(), 32);
    let record_v2 = table("## Record frame of versions 1 and 2");
    assert_eq!(record.iter().map(|r| r.size).sum::<usize>(), 64);
    assert_eq!(record_v2.iter().map(|r| r.size).sum::<usize>(), 56);
    assert_eq!(SEGMENT_HEADER_LEN, 32);
    assert_eq!((RECORD_HEADER_LEN, RECORD_HEADER_LEN_V2), (64, 56));
    let field = |field: &str| header.iter().find(|r| r.field == field).unwrap();
    assert_eq!(field("magic").documented_value().as_bytes(), SEGMENT_MAGIC);
    assert_eq!(field("version").documented_value(), FORMAT_VERSION.to_string());
    assert_eq!(field("header_len").documented_value(), SEGMENT_HEADER_LEN.to_string());
    assert!(
        FORMAT_MD.contains(&format!("\n| {FORMAT_VERSION} | ")),
        "the version history lists the current format version"
    );
}

/// The code lines of the first ```rust block of `markdown`.
fn readme_example(markdown: &str) -> Vec<&str> {
    markdown
        .lines()
        .skip_while(|l| l.trim() != "```rust")
        .skip(1)
        .take_while(|l| l.trim() != "```")
        .collect()
}

/// The crate-root doctest of `src/lib.rs` as rustdoc shows it (hidden `# ` lines removed).
fn crate_doctest(lib_rs: &str) -> Vec<&str> {
    lib_rs
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .filter(|l| !l.starts_with("# ") && *l != "#")
        .collect()
}

#[test]
fn readme_example_is_the_compiled_crate_doctest() {
    let readme = readme_example(README_MD);
    assert!(!readme.is_empty(), "README.md has a ```rust example");
    assert_eq!(
        readme,
        crate_doctest(LIB_RS),
        "README.md's example must stay the crate-root doctest of src/lib.rs, which compiles it"
    );
}

#[test]
fn format_doc_stream_metadata_table_matches_a_stored_metadata_event() {
    let rows = table("## Stream metadata");
    assert_eq!(rows.iter().map(|r| r.size).sum::<usize>(), 28);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options::default()).unwrap();
    let mut meta = annal::StreamMetadata {
        max_count: Some(7),
        max_age: Some(std::time::Duration::from_micros(123_456)),
        truncate_before: None,
        ..Default::default()
    };
    meta.custom.insert("b".into(), "two".into());
    meta.custom.insert("a".into(), "one".into());
    store.set_stream_metadata("order-1", ExpectedVersion::NoStream, meta).unwrap();
    let event = store.read_all_forward(annal::Position::START, 1).next().unwrap().unwrap();
    assert_eq!((event.stream(), event.event_type()), ("$$order-1", "$metadata"));
    let data = event.data();
    let mut f = Fields::new(&rows, data);
    assert_eq!(f.u8("meta_version"), 1);
    assert_eq!(f.u8("flags"), 0b0011, "max_count and max_age set, no truncate, no tombstone");
    assert_eq!(f.u16("custom_count"), 2);
    assert_eq!(f.u64("max_count"), 7);
    assert_eq!(f.u64("max_age_us"), 123_456);
    assert_eq!(f.u64("truncate_before"), 0);
    f.assert_all_checked("stream metadata");
    // The pairs follow in key order: length (2 bytes), key, length (4 bytes), value.
    let pairs = [&[1u8, 0][..], b"a", &[3, 0, 0, 0], b"one", &[1, 0], b"b", &[3, 0, 0, 0], b"two"];
    assert_eq!(&data[28..], pairs.concat().as_slice());

    store.tombstone_stream("order-1", ExpectedVersion::Any).unwrap();
    let last = store.read_all_backward(annal::Position::END, 1).next().unwrap().unwrap();
    assert_eq!(last.data()[1], 0b1011, "a tombstone keeps the metadata and sets bit 3");
}

/// Every section of `docs/format.md` with a layout table, and the test that checks that table
/// against real bytes.
const CHECKED_TABLES: [(&str, &str); 8] = [
    ("## Segment header", "format_doc_tables_match_the_bytes_of_a_real_store"),
    ("## Record frame", "format_doc_tables_match_the_bytes_of_a_real_store"),
    ("## Stream metadata", "format_doc_stream_metadata_table_matches_a_stored_metadata_event"),
    ("## Index files", "format_doc_index_file_tables_match_encoded_bytes"),
    ("## Stream table", "format_doc_stream_table_tables_match_encoded_bytes"),
    ("## Record frame of versions 1 and 2", "format_doc_v2_record_table_matches_a_version_1_store"),
    ("## Checkpoint files", "subscriptions::checkpoint_file_bytes_match_docs_format_md"),
    ("## Snapshot files", "es_snapshots::snapshots_file_bytes_match_docs_format_md"),
];

/// Every section of `docs/format.md` with an entry table, and the test that checks it.
const CHECKED_ENTRY_TABLES: [(&str, &str); 2] = [
    ("## Index files", "format_doc_index_file_tables_match_encoded_bytes"),
    ("## Stream table", "format_doc_stream_table_tables_match_encoded_bytes"),
];

#[test]
fn format_doc_every_layout_table_is_checked_against_bytes() {
    let mut section = "";
    let (mut found, mut found_entries) = (Vec::new(), Vec::new());
    for line in FORMAT_MD.lines() {
        if line.starts_with("## ") {
            section = line.trim();
        }
        if line.trim() == TABLE_HEADER {
            found.push(section);
        }
        if line.trim() == ENTRY_TABLE_HEADER {
            found_entries.push(section);
        }
    }
    let checked: Vec<&str> = CHECKED_TABLES.iter().map(|(s, _)| *s).collect();
    assert_eq!(found, checked, "one layout table per section, each with a test that checks it");
    let checked: Vec<&str> = CHECKED_ENTRY_TABLES.iter().map(|(s, _)| *s).collect();
    assert_eq!(found_entries, checked, "one entry table per section, each checked by a test");
    for (heading, _) in CHECKED_TABLES {
        assert!(!table(heading).is_empty());
    }
    for (heading, _) in CHECKED_ENTRY_TABLES {
        assert!(!entry_tables(heading).is_empty());
    }
}

#[test]
fn format_doc_v2_record_table_matches_a_version_1_store() {
    // The committed fuzz seed `seed-store` is a whole store written in format version 1, whose
    // records have the layout of versions 1 and 2.
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/open_segments/seed-store");
    let files = crate::fuzz_checks::split_files(&std::fs::read(seed).unwrap());
    let dir = tempfile::tempdir().unwrap();
    for (base, bytes) in &files {
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1, "a version-1 segment");
        std::fs::write(dir.path().join(format!("{base:020}.seg")), bytes).unwrap();
    }
    let store = Store::open_read_only(dir.path(), Options::default()).unwrap();
    let mut events = store.read_all_forward(annal::Position::START, usize::MAX);
    let rows = table("## Record frame of versions 1 and 2");
    let header_len: usize = rows.iter().map(|r| r.size).sum();
    let mut batch_left_before = 0;
    for (_, file) in &files {
        let mut at = SEGMENT_HEADER_LEN;
        while at < file.len() {
            let e = events.next().expect("an event per record").unwrap();
            let mut f = Fields::new(&rows, &file[at..]);
            let len = f.u32("length") as usize;
            let record = &file[at..at + len];
            assert_eq!(f.u32("crc"), f.crc_without("crc", record), "record CRC at {at}");
            assert_eq!(f.u64("position"), e.position().get());
            assert_eq!(f.u64("version"), e.version().get());
            assert_eq!(f.u64("timestamp_us"), e.timestamp_us());
            assert_eq!(f.raw("id"), e.id().as_bytes());
            let batch_left = f.u16("batch_left");
            assert!(batch_left_before == 0 || batch_left == batch_left_before - 1);
            batch_left_before = batch_left;
            let (stream_len, type_len) = (f.u8("stream_len") as usize, f.u8("type_len") as usize);
            let metadata_len = f.u32("metadata_len") as usize;
            f.assert_all_checked("version-2 record header");
            let body = [e.stream().as_bytes(), e.event_type().as_bytes(), e.metadata(), e.data()];
            assert_eq!(
                [
                    stream_len,
                    type_len,
                    metadata_len,
                    len - header_len - stream_len - type_len - metadata_len
                ],
                body.map(<[u8]>::len)
            );
            assert_eq!(&record[header_len..], body.concat().as_slice());
            at += len;
        }
    }
    assert!(events.next().is_none());
}

/// The little-endian integer of `bytes` at `at..at + size`.
fn le(bytes: &[u8], at: usize, size: usize) -> u64 {
    let mut le = [0u8; 8];
    le[..size].copy_from_slice(&bytes[at..at + size]);
    u64::from_le_bytes(le)
}

/// Checks the body CRC trailer of a derived file: the CRC-32 of every byte from the header on.
fn check_body_crc(file: &[u8]) {
    let end = file.len() - 4;
    let crc = crc32fast::hash(&file[DERIVED_HEADER_LEN..end]);
    assert_eq!(le(file, end, 4), u64::from(crc), "body CRC covers what the page says");
}

/// A segment at base 1000: `b-stream` versions 4 and 5, `a-stream` version 0, and a
/// `$metadata` event of `$$b-stream` setting `b-stream`'s metadata.
const DOC_RECORDS: [(u64, u32, &str, u64); 4] = [
    (1000, 32, "b-stream", 4),
    (1001, 140, "a-stream", 0),
    (1002, 260, "$$b-stream", 0),
    (1003, 390, "b-stream", 5),
];

#[test]
fn format_doc_index_file_tables_match_encoded_bytes() {
    let binding = SegmentBinding {
        segment_version: FORMAT_VERSION,
        segment_span: 0,
        base_position: 1000,
        segment_len: 512,
        end_position: 1004,
        records: 4,
        segment_header_crc: 0x0bad_cafe,
        last_record_crc: 0x5eed_1234,
    };
    let mut builder = IndexFileBuilder::new();
    for (position, offset, stream, version) in DOC_RECORDS {
        builder.record(position, offset, stream, version);
    }
    builder.metadata("b-stream", 1002, b"meta-data");
    let prev = |name: &str| (name == "b-stream").then_some(77);
    let file = builder.encode(&binding, prev).unwrap();

    let header = table("## Index files");
    assert_eq!(len_of(&header), DERIVED_HEADER_LEN);
    let field = |name: &str| header.iter().find(|r| r.field == name).unwrap();
    assert_eq!(field("magic").documented_value().as_bytes(), INDEX_FILE_MAGIC);
    assert_eq!(field("version").documented_value(), INDEX_FILE_VERSION.to_string());
    let mut f = Fields::new(&header, &file);
    assert_eq!(f.raw("magic"), b"ANNALIDX");
    assert_eq!(f.u16("version"), 1);
    assert_eq!(f.u16("segment_version"), u64::from(FORMAT_VERSION));
    assert_eq!(f.u32("segment_span"), 0);
    assert_eq!(f.u64("base_position"), 1000);
    assert_eq!(f.u64("segment_len"), 512);
    assert_eq!(f.u64("end_position"), 1004);
    assert_eq!(f.u64("records"), 4);
    assert_eq!(f.u32("segment_header_crc"), 0x0bad_cafe);
    assert_eq!(f.u32("last_record_crc"), 0x5eed_1234);
    let section_count = f.u16("section_count") as usize;
    assert_eq!(section_count, 6, "this build writes every kind it knows");
    assert_eq!(f.u16("reserved"), 0);
    let crc = f.crc_without("header_crc", &file[..DERIVED_HEADER_LEN]);
    assert_eq!(f.u32("header_crc"), crc, "header CRC covers what the page says");
    f.assert_all_checked("index file header");
    check_body_crc(&file);

    let entries = entry_tables("## Index files");
    let sizes = [
        ("section", SECTION_ENTRY_LEN),
        ("position", POSITION_ENTRY_LEN),
        ("stream", STREAM_ENTRY_LEN),
        ("stream_event", POSITION_ENTRY_LEN),
        ("metadata", METADATA_ENTRY_LEN),
    ];
    assert_eq!(
        entries.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        sizes.iter().map(|(e, _)| *e).collect()
    );
    for (entry, len) in sizes {
        assert_eq!(len_of(&entries[entry]), len, "documented length of a {entry} entry");
    }
    // The section table: kinds 1..=6 in order, each section aligned inside the body.
    let mut sections = BTreeMap::new();
    let mut checked = BTreeSet::new();
    for i in 0..section_count {
        let mut f =
            Fields::new(&entries["section"], &file[DERIVED_HEADER_LEN + i * SECTION_ENTRY_LEN..]);
        assert_eq!(f.u32("kind"), i as u64 + 1);
        assert_eq!(f.u32("reserved"), 0);
        let (offset, length) = (f.u64("offset") as usize, f.u64("length") as usize);
        assert_eq!(offset % 8, 0, "sections are aligned");
        assert!(
            offset >= DERIVED_HEADER_LEN + section_count * SECTION_ENTRY_LEN
                && offset + length <= file.len() - 4
        );
        sections.insert(i + 1, &file[offset..offset + length]);
        checked = f.checked;
    }
    assert_eq!(checked.len(), entries["section"].len());
    let (names, blob) = (sections[&5], sections[&6]);
    let name = |f: &mut Fields<'_>| {
        let (at, len) = (f.u32("name_offset") as usize, f.u16("name_len") as usize);
        std::str::from_utf8(&names[at..at + len]).unwrap().to_owned()
    };

    // POSITIONS: one entry per record, in position order.
    assert_eq!(sections[&1].len(), DOC_RECORDS.len() * POSITION_ENTRY_LEN);
    for (i, (position, offset, ..)) in DOC_RECORDS.into_iter().enumerate() {
        let mut f = Fields::new(&entries["position"], &sections[&1][i * POSITION_ENTRY_LEN..]);
        assert_eq!(f.u32("rel_position"), position - 1000);
        assert_eq!(f.u32("offset"), u64::from(offset));
        f.assert_all_checked("position entry");
    }

    // STREAMS in name-byte order, each with its run in STREAM_EVENTS.
    let expected = [
        ("$$b-stream", 0, vec![2], None),
        ("a-stream", 0, vec![1], None),
        ("b-stream", 4, vec![0, 3], Some(77)),
    ];
    assert_eq!(sections[&2].len(), expected.len() * STREAM_ENTRY_LEN);
    let mut events_at = 0;
    for (i, (stream, first_version, records, prev)) in expected.into_iter().enumerate() {
        let mut f = Fields::new(&entries["stream"], &sections[&2][i * STREAM_ENTRY_LEN..]);
        assert_eq!(name(&mut f), stream);
        assert_eq!(f.u16("reserved"), 0);
        assert_eq!(f.u64("first_version"), first_version);
        assert_eq!(f.u32("count"), records.len() as u64);
        assert_eq!(f.u32("events_at"), events_at as u64, "runs back to back");
        assert_eq!(f.u64("prev_segment"), prev.unwrap_or(u64::MAX));
        f.assert_all_checked("stream entry");
        for (k, record) in records.iter().enumerate() {
            let at = (events_at + k) * POSITION_ENTRY_LEN;
            let mut e = Fields::new(&entries["stream_event"], &sections[&3][at..]);
            let (position, offset, ..) = DOC_RECORDS[*record];
            assert_eq!(e.u32("rel_position"), position - 1000);
            assert_eq!(e.u32("offset"), u64::from(offset));
            e.assert_all_checked("stream event entry");
        }
        events_at += records.len();
    }
    assert_eq!(sections[&3].len(), events_at * POSITION_ENTRY_LEN);

    // METADATA: the target's name (shared with its STREAMS entry) and the data in BLOB.
    assert_eq!(sections[&4].len(), METADATA_ENTRY_LEN);
    let mut f = Fields::new(&entries["metadata"], sections[&4]);
    assert_eq!(name(&mut f), "b-stream");
    assert_eq!(f.u16("reserved"), 0);
    assert_eq!(f.u64("position"), 1002);
    let (at, len) = (f.u32("data_offset") as usize, f.u32("data_len") as usize);
    assert_eq!(&blob[at..at + len], b"meta-data");
    f.assert_all_checked("metadata entry");
    assert_eq!(names, b"$$b-streama-streamb-stream", "names once each, in entry order");
}

/// The CRC stored in the header of a segment of the current format at `base` (span 0), as
/// "Segment header" lays it out.
fn segment_header_crc(base: u64, group_bytes_max: u32) -> u32 {
    let mut header = SEGMENT_MAGIC.to_vec();
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&(SEGMENT_HEADER_LEN as u16).to_le_bytes());
    header.extend_from_slice(&group_bytes_max.to_le_bytes());
    header.extend_from_slice(&base.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    crc32fast::hash(&header)
}

/// The index files of two segments, the second one [`DOC_RECORDS`]'s (base 1000, last record at
/// 390), the first one four records of `a-stream` before it (base 996, last record at 332).
fn doc_index_files() -> [Vec<u8>; 2] {
    let index = |base: u64, records: &[(u64, u32, &str, u64)], last_record_crc| {
        let mut builder = IndexFileBuilder::new();
        for &(position, offset, stream, version) in records {
            builder.record(position, offset, stream, version);
        }
        let binding = SegmentBinding {
            segment_version: FORMAT_VERSION,
            segment_span: 0,
            base_position: base,
            segment_len: 512,
            end_position: base + 4,
            records: 4,
            segment_header_crc: segment_header_crc(base, GROUP_BYTES_MAX),
            last_record_crc,
        };
        builder.encode(&binding, |_| None).unwrap()
    };
    let first = [(996, 32, "a-stream", 0), (997, 132, "a-stream", 1)];
    let first = [first[0], first[1], (998, 232, "z-stream", 0), (999, 332, "z-stream", 1)];
    [index(996, &first, 0x0123_4567), index(1000, &DOC_RECORDS, 0x5eed_1234)]
}

#[test]
fn format_doc_stream_table_tables_match_encoded_bytes() {
    let indexes = doc_index_files();
    let listed = indexes.each_ref().map(|bytes| {
        let index = annal::format::IndexFile::parse_header(bytes).unwrap();
        annal::format::ListedSegment::of(&index, GROUP_BYTES_MAX)
    });
    let binding = TableBinding {
        durable: true,
        covered: 1004,
        segment_base: 1000,
        segment_len: 512,
        last_record_crc: 0x5eed_1234,
    };
    let streams = [
        TableEntry { name: "a-stream", first: 0, next: 1, last_segment: Some(1000), meta: None },
        TableEntry {
            name: "b-stream",
            first: 2,
            next: 6,
            last_segment: Some(1000),
            meta: Some(b"meta-data"),
        },
        TableEntry { name: "c-stream", first: 0, next: 0, last_segment: None, meta: Some(b"m2") },
    ];
    let file = encode_stream_table(&binding, streams.into_iter(), &listed).unwrap();

    let header = table("## Stream table");
    assert_eq!(len_of(&header), DERIVED_HEADER_LEN);
    let field = |name: &str| header.iter().find(|r| r.field == name).unwrap();
    assert_eq!(field("magic").documented_value().as_bytes(), STREAM_TABLE_MAGIC);
    assert_eq!(field("version").documented_value(), STREAM_TABLE_VERSION.to_string());
    let mut f = Fields::new(&header, &file);
    assert_eq!(f.raw("magic"), b"ANNALTBL");
    assert_eq!(f.u16("version"), 2);
    assert_eq!(f.u16("flags"), 1, "durable");
    assert_eq!(f.u64("covered"), 1004);
    assert_eq!(f.u64("segment_base"), 1000);
    assert_eq!(f.u64("segment_len"), 512);
    assert_eq!(f.u32("last_record_crc"), 0x5eed_1234);
    assert_eq!(f.u64("entries"), streams.len() as u64);
    assert_eq!(f.u32("segments"), 2);
    let crc = f.crc_without("header_crc", &file[..DERIVED_HEADER_LEN]);
    assert_eq!(f.u32("header_crc"), crc, "header CRC covers what the page says");
    // The `reserved` rows share a name: check each by offset.
    for row in header.iter().filter(|r| r.field == "reserved") {
        assert_eq!(le(&file, row.offset, row.size), 0, "reserved at {}", row.offset);
    }
    f.checked.insert("reserved");
    f.assert_all_checked("stream table header");
    check_body_crc(&file);

    let entries = entry_tables("## Stream table");
    assert_eq!(len_of(&entries["stream"]), TABLE_ENTRY_LEN);
    assert_eq!(len_of(&entries["offsets"]), TABLE_OFFSETS_LEN);
    assert_eq!(len_of(&entries["segment"]), TABLE_SEGMENT_LEN);
    assert_eq!(entries.len(), 3);
    let offsets_at = DERIVED_HEADER_LEN + streams.len() * TABLE_ENTRY_LEN;
    let mut o = Fields::new(&entries["offsets"], &file[offsets_at..]);
    let (names_at, blob_at, end) =
        (o.u64("names_at") as usize, o.u64("blob_at") as usize, o.u64("end") as usize);
    o.assert_all_checked("offsets");
    let list_at = file.len() - 4 - 2 * TABLE_SEGMENT_LEN;
    assert_eq!((names_at, end), (offsets_at + TABLE_OFFSETS_LEN, list_at));
    for (i, (index, last_record_offset)) in indexes.iter().zip([332, 390]).enumerate() {
        let mut f = Fields::new(&entries["segment"], &file[list_at + i * TABLE_SEGMENT_LEN..]);
        assert_eq!(f.raw("index_header"), &index[..DERIVED_HEADER_LEN], "a copy of its header");
        assert_eq!(f.u32("group_bytes_max"), u64::from(GROUP_BYTES_MAX));
        assert_eq!(f.u32("last_record_offset"), last_record_offset);
        f.assert_all_checked("segment list entry");
    }
    let (names, blob) = (&file[names_at..blob_at], &file[blob_at..end]);
    for (i, s) in streams.iter().enumerate() {
        let mut f =
            Fields::new(&entries["stream"], &file[DERIVED_HEADER_LEN + i * TABLE_ENTRY_LEN..]);
        let (at, len) = (f.u32("name_offset") as usize, f.u16("name_len") as usize);
        assert_eq!(&names[at..at + len], s.name.as_bytes());
        assert_eq!(f.u16("flags"), u64::from(s.meta.is_some()));
        assert_eq!(f.u64("first"), s.first);
        assert_eq!(f.u64("next"), s.next);
        assert_eq!(f.u64("last_segment"), s.last_segment.unwrap_or(u64::MAX));
        let (at, len) = (f.u32("meta_offset") as usize, f.u32("meta_len") as usize);
        assert_eq!(&blob[at..at + len], s.meta.unwrap_or_default());
        assert_eq!(f.u64("reserved"), 0);
        f.assert_all_checked("stream table entry");
    }
    assert_eq!(names, b"a-streamb-streamc-stream");
    assert_eq!(blob, b"meta-datam2");
}
