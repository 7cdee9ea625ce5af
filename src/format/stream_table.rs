//! The stream table `streams.tbl`: every stream's version range, last segment and latest
//! metadata as of a position in the log, folded segment by segment from the index files. It is
//! derived and never trusted: [`StreamTable`] checks the bytes before use and none of its
//! accessors panics, whatever the bytes. The layout is in `docs/format.md`, "Stream table".

use std::{cmp::Ordering, iter::Peekable};

use super::{
    derived::{
        self, DERIVED_HEADER_LEN, DerivedFileError, entry, name_at, put_blob, put_name, put_u16,
        put_u32, put_u64, u16_at, u32_at, u64_at,
    },
    header::SegmentHeader,
    index_file::{IndexFile, SegmentBinding, StreamRun, parse_index_header},
};

/// The first eight bytes of every stream table.
pub const STREAM_TABLE_MAGIC: [u8; 8] = *b"ANNALTBL";
/// The stream table format version this build writes.
pub const STREAM_TABLE_VERSION: u16 = 2;
/// The oldest stream table version this build reads: version 1 is version 2 without the
/// segment list (its header's `segments` field is reserved and zero).
pub const STREAM_TABLE_VERSION_MIN: u16 = 1;
/// Bytes of one entry of the segment list: a copy of the segment's index file header, the
/// segment header's `group_bytes_max`, the offset of the segment's last record.
pub const TABLE_SEGMENT_LEN: usize = DERIVED_HEADER_LEN + 8;
/// Bytes of one stream entry.
pub const TABLE_ENTRY_LEN: usize = 48;
/// Bytes of the three section offsets after the entries: `names_at`, `blob_at`, `end`.
pub const TABLE_OFFSETS_LEN: usize = 24;
/// The entries, as a section kind in [`DerivedFileError::SectionOutOfBounds`].
pub const TABLE_PART_ENTRIES: u32 = 1;
/// The names, as a section kind in [`DerivedFileError::SectionOutOfBounds`].
pub const TABLE_PART_NAMES: u32 = 2;
/// The metadata blob, as a section kind in [`DerivedFileError::SectionOutOfBounds`].
pub const TABLE_PART_BLOB: u32 = 3;
/// The segment list, as a section kind in [`DerivedFileError::SectionOutOfBounds`].
pub const TABLE_PART_SEGMENTS: u32 = 4;
/// Header flag: written by a store with `Durability::Fsync`.
const FLAG_DURABLE: u16 = 1;
/// Entry flag: the stream has metadata.
const FLAG_HAS_METADATA: u16 = 1;

/// What a stream table says about the log it was folded from: the fields of its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableBinding {
    /// Written by a store with `Durability::Fsync`: `covered` is a durable high-water mark.
    pub durable: bool,
    /// Every record below this position is folded in.
    pub covered: u64,
    /// Base of the last segment folded in.
    pub segment_base: u64,
    /// That segment's index file's `segment_len`.
    pub segment_len: u64,
    /// That segment's index file's `last_record_crc`.
    pub last_record_crc: u32,
}

impl TableBinding {
    /// The binding that says "every record up to the end of the segment whose index file's
    /// header says `segment`", written by a store with `Durability::Fsync` if `durable`.
    pub fn at_end_of(segment: &SegmentBinding, durable: bool) -> TableBinding {
        TableBinding {
            durable,
            covered: segment.end_position,
            segment_base: segment.base_position,
            segment_len: segment.segment_len,
            last_record_crc: segment.last_record_crc,
        }
    }
}

/// One segment of the log a stream table covers, as the table's segment list holds it: enough
/// to open the store without reading the segment's header or index file (they are compared
/// with this when first used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedSegment {
    /// The first 64 bytes of the segment's index file, exactly (they carry their own CRC).
    pub index_header: [u8; DERIVED_HEADER_LEN],
    /// The segment header's `group_bytes_max` (its other fields are in the index header).
    pub group_bytes_max: u32,
    /// Where the segment's last record starts (0 when it holds none).
    pub last_record_offset: u32,
}

impl ListedSegment {
    /// The entry of the segment `index` was built from, whose header states `group_bytes_max`.
    pub fn of(index: &IndexFile<'_>, group_bytes_max: u32) -> ListedSegment {
        ListedSegment {
            index_header: index.header_bytes(),
            group_bytes_max,
            last_record_offset: index.floor(u64::MAX).map_or(0, |(_, offset)| offset),
        }
    }

    /// What the copied index header binds, if it passes its checks.
    pub fn binding(&self) -> Option<SegmentBinding> {
        parse_index_header(&self.index_header).ok()
    }

    /// The segment's header as it must be on disk (its CRC is the binding's
    /// `segment_header_crc` in an entry that passed [`StreamTable::check_body`]).
    pub(crate) fn segment_header(&self) -> Option<SegmentHeader> {
        let b = self.binding()?;
        let (version, base_position, span) = (b.segment_version, b.base_position, b.segment_span);
        Some(SegmentHeader { version, base_position, group_bytes_max: self.group_bytes_max, span })
    }

    fn decode(raw: &[u8]) -> Option<ListedSegment> {
        Some(ListedSegment {
            index_header: raw.get(..DERIVED_HEADER_LEN)?.try_into().ok()?,
            group_bytes_max: u32_at(raw, DERIVED_HEADER_LEN)?,
            last_record_offset: u32_at(raw, DERIVED_HEADER_LEN + 4)?,
        })
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.index_header);
        put_u32(buf, self.group_bytes_max);
        put_u32(buf, self.last_record_offset);
    }

    /// Whether the entry could describe a real segment: its index header passes its checks,
    /// the segment header it implies has the CRC that header binds, and the last record's
    /// offset lies inside the segment (0 exactly when there is no record).
    fn is_possible(&self) -> Option<SegmentBinding> {
        let b = self.binding()?;
        let crc = u32_at(&self.segment_header()?.encode(), 28)?;
        let offset = u64::from(self.last_record_offset);
        let last = match b.records {
            0 => offset == 0,
            _ => (super::SEGMENT_HEADER_LEN as u64..b.segment_len).contains(&offset),
        };
        (crc == b.segment_header_crc && last).then_some(b)
    }
}

/// Whether `segments` can be the list of a table bound by `binding`: every entry possible,
/// each segment starting where the one before ends, the last one the segment the binding
/// names, and every record of it covered.
fn list_is_possible(binding: &TableBinding, segments: &[ListedSegment]) -> bool {
    let mut end = None;
    let mut last = None;
    for listed in segments {
        let Some(b) = listed.is_possible() else { return false };
        if end.is_some_and(|end| end != b.base_position) {
            return false;
        }
        end = Some(b.end_position);
        last = Some(b);
    }
    last.is_none_or(|b| {
        (b.base_position, b.segment_len, b.last_record_crc)
            == (binding.segment_base, binding.segment_len, binding.last_record_crc)
            && b.end_position <= binding.covered
    })
}

/// One stream as the table knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry<'a> {
    /// The stream's name.
    pub name: &'a str,
    /// Its first retained version (0 for a stream with metadata only).
    pub first: u64,
    /// Its next version, the last + 1 (0 for a stream with metadata only).
    pub next: u64,
    /// Base of the last segment holding its events.
    pub last_segment: Option<u64>,
    /// The data of its latest `$metadata` event.
    pub meta: Option<&'a [u8]>,
}

/// Encodes a stream table of `entries`, which must be in strictly increasing name order, with
/// `segments` as its segment list (empty: no list). Also refuses an entry no reader would
/// take: an empty name, `first` at or past `next` for a stream with events, a metadata-only
/// entry (`next` 0) with `first` or a last segment, or none of its metadata, and
/// `Some(u64::MAX)` as last segment; and a list that does not describe the segments the table
/// covers, in order and ending with the one the binding names.
pub fn encode_stream_table<'a>(
    binding: &TableBinding,
    entries: impl Iterator<Item = TableEntry<'a>>,
    segments: &[ListedSegment],
) -> Result<Vec<u8>, DerivedFileError> {
    let refused = DerivedFileError::Unencodable;
    if !list_is_possible(binding, segments) {
        return Err(refused("a segment list that does not describe the log the table covers"));
    }
    let segment_count = u32::try_from(segments.len())
        .map_err(|_| refused("more segments than a table can list"))?;
    let (mut table, mut names, mut blob) = (Vec::new(), Vec::new(), Vec::new());
    let mut count = 0u64;
    let mut before: Option<&str> = None;
    for e in entries {
        if before.is_some_and(|b| b.as_bytes() >= e.name.as_bytes()) {
            return Err(refused("stream table entries are not in strictly increasing order"));
        }
        if !entry_is_possible(&e) {
            return Err(refused("an impossible stream table entry"));
        }
        let (name_at, name_len) = put_name(&mut names, e.name)?;
        let (meta_at, meta_len) = match e.meta {
            Some(data) => put_blob(&mut blob, data)?,
            None => (0, 0),
        };
        put_u32(&mut table, name_at);
        put_u16(&mut table, name_len);
        put_u16(&mut table, if e.meta.is_some() { FLAG_HAS_METADATA } else { 0 });
        put_u64(&mut table, e.first);
        put_u64(&mut table, e.next);
        put_u64(&mut table, e.last_segment.unwrap_or(u64::MAX));
        put_u32(&mut table, meta_at);
        put_u32(&mut table, meta_len);
        put_u64(&mut table, 0);
        count += 1;
        before = Some(e.name);
    }
    let mut list = Vec::with_capacity(segments.len() * TABLE_SEGMENT_LEN);
    segments.iter().for_each(|listed| listed.encode(&mut list));
    let bytes = assemble(binding, (count, segment_count), &table, &names, &blob, &list);
    debug_assert_eq!(StreamTable::parse_header(&bytes).and_then(|t| t.check_body()), Ok(()));
    Ok(bytes)
}

/// The rules on one entry that both the encoder and [`StreamTable::check_body`] hold to.
fn entry_is_possible(e: &TableEntry<'_>) -> bool {
    let valid_segment = e.last_segment != Some(u64::MAX);
    let shape = match e.next {
        0 => e.first == 0 && e.last_segment.is_none() && e.meta.is_some(),
        next => e.first < next,
    };
    !e.name.is_empty() && valid_segment && shape
}

/// The header, entries, section offsets, names and blob of a table, sealed.
fn assemble(
    binding: &TableBinding,
    (count, segment_count): (u64, u32),
    table: &[u8],
    names: &[u8],
    blob: &[u8],
    list: &[u8],
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(
        DERIVED_HEADER_LEN
            + table.len()
            + TABLE_OFFSETS_LEN
            + names.len()
            + blob.len()
            + list.len()
            + 4,
    );
    buf.extend_from_slice(&STREAM_TABLE_MAGIC);
    put_u16(&mut buf, STREAM_TABLE_VERSION);
    put_u16(&mut buf, if binding.durable { FLAG_DURABLE } else { 0 });
    put_u32(&mut buf, 0);
    put_u64(&mut buf, binding.covered);
    put_u64(&mut buf, binding.segment_base);
    put_u64(&mut buf, binding.segment_len);
    put_u32(&mut buf, binding.last_record_crc);
    put_u32(&mut buf, 0);
    put_u64(&mut buf, count);
    put_u32(&mut buf, segment_count);
    put_u32(&mut buf, 0); // header CRC, filled in by `seal`
    buf.extend_from_slice(table);
    let names_at = (buf.len() + TABLE_OFFSETS_LEN) as u64;
    let blob_at = names_at + names.len() as u64;
    put_u64(&mut buf, names_at);
    put_u64(&mut buf, blob_at);
    put_u64(&mut buf, blob_at + blob.len() as u64);
    buf.extend_from_slice(names);
    buf.extend_from_slice(blob);
    buf.extend_from_slice(list);
    derived::seal(&mut buf);
    buf
}

/// A checked view of a stream table's bytes.
#[derive(Clone, Copy, Debug)]
pub struct StreamTable<'a> {
    bytes: &'a [u8],
    binding: TableBinding,
    entries: &'a [u8],
    names: &'a [u8],
    blob: &'a [u8],
    /// The segment list (version 2; empty in a table without one).
    segments: &'a [u8],
}

impl<'a> StreamTable<'a> {
    /// Checks, in this order: the length, the magic, the header CRC, the version (1 or 2), the
    /// flags and reserved bytes, then where the entries, names, blob and segment list lie.
    /// O(1) in the body.
    pub fn parse_header(bytes: &'a [u8]) -> Result<Self, DerivedFileError> {
        match derived::check_header(bytes, STREAM_TABLE_MAGIC, STREAM_TABLE_VERSION) {
            Err(DerivedFileError::UnsupportedVersion(STREAM_TABLE_VERSION_MIN)) => {}
            checked => checked?,
        }
        let flags = u16_at(bytes, 10).unwrap_or(0);
        let reserved = [u32_at(bytes, 12), u32_at(bytes, 44)];
        if flags & !FLAG_DURABLE != 0 || reserved != [Some(0); 2] {
            return Err(DerivedFileError::Malformed("unknown flags or reserved bytes not zero"));
        }
        // Reserved and zero in version 1.
        let segment_count = u64::from(u32_at(bytes, 56).unwrap_or(0));
        if u16_at(bytes, 8) == Some(STREAM_TABLE_VERSION_MIN) && segment_count != 0 {
            return Err(DerivedFileError::Malformed("unknown flags or reserved bytes not zero"));
        }
        let binding = TableBinding {
            durable: flags & FLAG_DURABLE != 0,
            covered: u64_at(bytes, 16).unwrap_or(0),
            segment_base: u64_at(bytes, 24).unwrap_or(0),
            segment_len: u64_at(bytes, 32).unwrap_or(0),
            last_record_crc: u32_at(bytes, 40).unwrap_or(0),
        };
        let trailer_at = derived::body_end(bytes).ok_or(DerivedFileError::TooShort)? as u64;
        // The segment list ends the body; the rest lies before it.
        let body_end = trailer_at
            .checked_sub(segment_count * TABLE_SEGMENT_LEN as u64)
            .filter(|&end| end >= DERIVED_HEADER_LEN as u64)
            .ok_or(DerivedFileError::SectionOutOfBounds { kind: TABLE_PART_SEGMENTS })?;
        let count = u64_at(bytes, 48).unwrap_or(0);
        let offsets_at = count
            .checked_mul(TABLE_ENTRY_LEN as u64)
            .and_then(|len| len.checked_add(DERIVED_HEADER_LEN as u64))
            .filter(|&at| {
                at.checked_add(TABLE_OFFSETS_LEN as u64).is_some_and(|end| end <= body_end)
            })
            .ok_or(DerivedFileError::SectionOutOfBounds { kind: TABLE_PART_ENTRIES })?;
        let offset = |i: u64| u64_at(bytes, (offsets_at + 8 * i) as usize).unwrap_or(0);
        let (names_at, blob_at, end) = (offset(0), offset(1), offset(2));
        if names_at != offsets_at + TABLE_OFFSETS_LEN as u64 {
            return Err(DerivedFileError::Malformed("the names do not follow the offsets"));
        }
        if !(names_at..=body_end).contains(&blob_at) {
            return Err(DerivedFileError::SectionOutOfBounds { kind: TABLE_PART_NAMES });
        }
        if end != body_end {
            return Err(DerivedFileError::SectionOutOfBounds { kind: TABLE_PART_BLOB });
        }
        let part = |at: u64, to: u64| derived::slice(bytes, at, to - at).unwrap_or(&[]);
        Ok(StreamTable {
            bytes,
            binding,
            entries: part(DERIVED_HEADER_LEN as u64, offsets_at),
            names: part(names_at, blob_at),
            blob: part(blob_at, end),
            segments: part(end, trailer_at),
        })
    }

    /// Checks the body CRC and every entry: names UTF-8, non-empty and strictly increasing,
    /// metadata inside the blob, flags known, reserved bytes zero, and the shape of the entry
    /// (`first < next`, or a metadata-only entry with `next` and `first` 0 and no segment).
    /// O(body). Call once before use.
    pub fn check_body(&self) -> Result<(), DerivedFileError> {
        derived::check_body_crc(self.bytes)?;
        let malformed = DerivedFileError::Malformed;
        let mut before: Option<&str> = None;
        for i in 0..self.entries.len() / TABLE_ENTRY_LEN {
            let raw = entry(self.entries, TABLE_ENTRY_LEN, i).ok_or(malformed("entry"))?;
            let flags = u16_at(raw, 6).unwrap_or(0);
            let meta = (u32_at(raw, 32), u32_at(raw, 36));
            let no_meta_at = flags & FLAG_HAS_METADATA == 0 && meta != (Some(0), Some(0));
            if flags & !FLAG_HAS_METADATA != 0 || u64_at(raw, 40) != Some(0) || no_meta_at {
                return Err(malformed("unknown entry flags or reserved bytes not zero"));
            }
            let e = self.entry_at(i).ok_or(malformed("a stream table entry is out of bounds"))?;
            if before.is_some_and(|b| b.as_bytes() >= e.name.as_bytes()) {
                return Err(malformed("stream table names are not strictly increasing"));
            }
            if !entry_is_possible(&e) {
                return Err(malformed("an impossible stream table entry"));
            }
            before = Some(e.name);
        }
        let listed: Option<Vec<ListedSegment>> = self.segment_entries().collect();
        let possible = listed.is_some_and(|listed| list_is_possible(&self.binding, &listed));
        match possible {
            true => Ok(()),
            false => Err(malformed("a segment list that does not describe the log")),
        }
    }

    /// The segment list: every segment the table covers, in log order, each with a copy of its
    /// index file's header; empty for a table without one (version 1, or a table folded over
    /// one without a list). Checked by [`check_body`](StreamTable::check_body).
    pub fn segments(&self) -> impl Iterator<Item = ListedSegment> + use<'a> {
        let table = *self;
        table.segment_entries().map_while(|listed| listed)
    }

    /// How many segments the list holds (0: the table has no list).
    pub fn segment_count(&self) -> usize {
        self.segments.len() / TABLE_SEGMENT_LEN
    }

    fn segment_entries(&self) -> impl Iterator<Item = Option<ListedSegment>> + use<'a> {
        let list = self.segments;
        (0..list.len() / TABLE_SEGMENT_LEN)
            .map(move |i| ListedSegment::decode(entry(list, TABLE_SEGMENT_LEN, i)?))
    }

    /// The header's description of what the table covers.
    pub fn binding(&self) -> TableBinding {
        self.binding
    }

    /// Streams in the table.
    pub fn len(&self) -> u64 {
        (self.entries.len() / TABLE_ENTRY_LEN) as u64
    }

    /// Whether the table holds no stream.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry of stream `name`, found by binary search over the names' bytes.
    pub fn get(&self, name: &str) -> Option<TableEntry<'a>> {
        let (mut low, mut high) = (0, self.entries.len() / TABLE_ENTRY_LEN);
        while low < high {
            let mid = low + (high - low) / 2;
            let raw = entry(self.entries, TABLE_ENTRY_LEN, mid)?;
            let found = name_at(self.names, u32_at(raw, 0)?, u16_at(raw, 4)?)?;
            match found.as_bytes().cmp(name.as_bytes()) {
                Ordering::Less => low = mid + 1,
                Ordering::Greater => high = mid,
                Ordering::Equal => return self.entry_at(mid),
            }
        }
        None
    }

    /// Every entry, in name order (skipping any entry that does not read).
    pub fn iter(&self) -> impl Iterator<Item = TableEntry<'a>> + use<'a> {
        let table = *self;
        (0..table.entries.len() / TABLE_ENTRY_LEN).filter_map(move |i| table.entry_at(i))
    }

    fn entry_at(&self, i: usize) -> Option<TableEntry<'a>> {
        let raw = entry(self.entries, TABLE_ENTRY_LEN, i)?;
        let meta = match u16_at(raw, 6)? & FLAG_HAS_METADATA {
            0 => None,
            _ => Some(derived::slice(self.blob, u32_at(raw, 32)?.into(), u32_at(raw, 36)?.into())?),
        };
        Some(TableEntry {
            name: name_at(self.names, u32_at(raw, 0)?, u16_at(raw, 4)?)?,
            first: u64_at(raw, 8)?,
            next: u64_at(raw, 16)?,
            last_segment: Some(u64_at(raw, 24)?).filter(|&s| s != u64::MAX),
            meta,
        })
    }
}

/// What one segment changes about one stream: its run of events, its new metadata, or both.
struct Change<'a> {
    name: &'a str,
    run: Option<StreamRun<'a>>,
    meta: Option<&'a [u8]>,
}

/// The table as of the end of `segment` (which has passed [`IndexFile::check_body`]): `old`
/// (none for the first segment) with the segment's streams and metadata merged in, under
/// `binding`. A stream of the segment gets `next` = the end of its run (or the old one, if
/// higher), keeps the old `first` if the old table has events of it (else the run's first
/// version), and the segment as its last segment; a metadata target gets the event's data as
/// its metadata (a new entry with metadata only if the table does not know it). Everything else
/// is copied. Refuses a binding that does not name the segment (base, length, last CRC) or
/// covers less than it.
///
/// The segment list is the old table's with the segment's entry (whose header states
/// `group_bytes_max`) added, in place of the last one if that is the same segment indexed
/// before (an active segment closed cleanly, reopened and indexed again); or the segment's
/// entry alone without an old table. An old table without a list, or a segment that does not
/// continue its list, makes a table without one.
pub fn fold_into_table<'a>(
    old: Option<&StreamTable<'a>>,
    segment: &IndexFile<'a>,
    group_bytes_max: u32,
    binding: &TableBinding,
) -> Result<Vec<u8>, DerivedFileError> {
    let s = segment.binding();
    let names_segment = (binding.segment_base, binding.segment_len, binding.last_record_crc)
        == (s.base_position, s.segment_len, s.last_record_crc);
    if !names_segment || binding.covered < s.end_position {
        return Err(DerivedFileError::Unencodable("the binding does not cover the segment"));
    }
    let mut segments = folded_list(old, ListedSegment::of(segment, group_bytes_max));
    if !list_is_possible(binding, &segments) {
        segments.clear();
    }
    let mut olds = old.into_iter().flat_map(|t| t.iter()).peekable();
    let mut changes = changes(segment).into_iter().peekable();
    let merged = std::iter::from_fn(move || match next_order(&mut olds, &mut changes)? {
        Ordering::Less => olds.next(),
        Ordering::Greater => changes.next().map(|c| apply(None, c, s.base_position)),
        Ordering::Equal => {
            let old = olds.next();
            changes.next().map(|c| apply(old, c, s.base_position))
        }
    });
    encode_stream_table(binding, merged, &segments)
}

/// `old`'s segment list with `listed` added (see [`fold_into_table`]); empty if `old` has none.
fn folded_list(old: Option<&StreamTable<'_>>, listed: ListedSegment) -> Vec<ListedSegment> {
    let Some(old) = old else { return vec![listed] };
    let mut segments: Vec<ListedSegment> = old.segments().collect();
    if segments.len() != old.segment_count() || segments.is_empty() {
        return Vec::new();
    }
    let base = |l: &ListedSegment| l.binding().map(|b| b.base_position);
    if segments.last().map(base) == Some(base(&listed)) {
        segments.pop();
    }
    segments.push(listed);
    segments
}

/// Which of the two sorted inputs comes next: `Less` the old table, `Greater` the changes,
/// `Equal` both (the same stream); `None` when both are done.
fn next_order<'a>(
    olds: &mut Peekable<impl Iterator<Item = TableEntry<'a>>>,
    changes: &mut Peekable<impl Iterator<Item = Change<'a>>>,
) -> Option<Ordering> {
    match (olds.peek(), changes.peek()) {
        (None, None) => None,
        (Some(_), None) => Some(Ordering::Less),
        (None, Some(_)) => Some(Ordering::Greater),
        (Some(o), Some(c)) => Some(o.name.as_bytes().cmp(c.name.as_bytes())),
    }
}

/// `old` (or a new entry) with one segment's change applied.
fn apply<'a>(old: Option<TableEntry<'a>>, change: Change<'a>, base: u64) -> TableEntry<'a> {
    let mut e = old.unwrap_or(TableEntry {
        name: change.name,
        first: 0,
        next: 0,
        last_segment: None,
        meta: None,
    });
    if let Some(run) = change.run {
        // A metadata-only entry (`next` 0) has no first version to keep.
        if e.next == 0 {
            e.first = run.first_version;
        }
        e.next = e.next.max(run.first_version.saturating_add(run.count.into()));
        e.last_segment = Some(base);
    }
    if let Some(meta) = change.meta {
        e.meta = Some(meta);
    }
    e
}

/// The segment's streams and metadata merged by name.
fn changes<'a>(segment: &IndexFile<'a>) -> Vec<Change<'a>> {
    let mut runs = segment.streams().peekable();
    let mut metas = segment.metadata().peekable();
    let mut out = Vec::new();
    loop {
        let order = match (runs.peek(), metas.peek()) {
            (None, None) => return out,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(r), Some(m)) => r.name.as_bytes().cmp(m.target.as_bytes()),
        };
        let run = runs.next_if(|_| order != Ordering::Greater);
        let meta = metas.next_if(|_| order != Ordering::Less);
        let name = run.map(|r| r.name).or(meta.map(|m| m.target)).unwrap_or_default();
        out.push(Change { name, run, meta: meta.map(|m| m.data) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index_file::tests::{reseal, sample};

    const BINDING: TableBinding = TableBinding {
        durable: true,
        covered: 40,
        segment_base: 30,
        segment_len: 4321,
        last_record_crc: 0xfeed_f00d,
    };

    /// `a` (versions 0..3), `b` (2..10, with metadata), `c` (metadata only, empty), and
    /// `order-1` (0..5, last in segment 40).
    fn entries() -> [TableEntry<'static>; 4] {
        let entry = |name, first, next, last_segment, meta| TableEntry {
            name,
            first,
            next,
            last_segment,
            meta,
        };
        [
            entry("a", 0, 3, Some(0), None),
            entry("b", 2, 10, Some(30), Some(&b"m"[..])),
            entry("c", 0, 0, None, Some(&b""[..])),
            entry("order-1", 0, 5, Some(30), None),
        ]
    }

    /// The group bound the sample segments' headers state.
    const GBM: u32 = 4096;

    /// The index file of a segment holding positions `base..end` of stream `s` (versions from
    /// `base`), 100 bytes each, whose header (group bound [`GBM`]) has the CRC the index binds.
    fn chained(base: u64, end: u64) -> Vec<u8> {
        let mut builder = crate::format::IndexFileBuilder::new();
        for (i, position) in (0u32..).zip(base..end) {
            builder.record(position, 32 + 100 * i, "s", position);
        }
        let header = SegmentHeader::current(base, GBM, 0).encode();
        let binding = SegmentBinding {
            segment_version: header[8].into(),
            segment_span: 0,
            base_position: base,
            segment_len: 32 + 100 * (end - base),
            end_position: end,
            records: end - base,
            segment_header_crc: u32::from_le_bytes(header[28..32].try_into().unwrap()),
            last_record_crc: base as u32 ^ 0x5a5a,
        };
        builder.encode(&binding, |_| None).unwrap()
    }

    /// `old` with the segment of index file `index` folded in.
    fn fold(old: Option<&[u8]>, index: &[u8]) -> Vec<u8> {
        let old = old.map(|b| StreamTable::parse_header(b).unwrap());
        let segment = IndexFile::parse_header(index).unwrap();
        let binding = TableBinding::at_end_of(&segment.binding(), true);
        fold_into_table(old.as_ref(), &segment, GBM, &binding).unwrap()
    }

    fn listed(index: &[u8]) -> ListedSegment {
        ListedSegment::of(&IndexFile::parse_header(index).unwrap(), GBM)
    }

    #[test]
    fn stream_table_segment_list_grows_in_log_order_and_replaces_a_reindexed_last_segment() {
        let (a, b, b_longer) = (chained(100, 103), chained(103, 105), chained(103, 108));
        let one = fold(None, &a);
        let two = fold(Some(&one), &b);
        let again = fold(Some(&two), &b_longer);
        let list = |bytes: &[u8]| {
            let table = StreamTable::parse_header(bytes).unwrap();
            assert_eq!(table.check_body(), Ok(()));
            table.segments().collect::<Vec<_>>()
        };
        assert_eq!(list(&one), [listed(&a)]);
        assert_eq!(list(&two), [listed(&a), listed(&b)]);
        assert_eq!(list(&again), [listed(&a), listed(&b_longer)], "the last one replaced");
        let entry = listed(&b_longer);
        assert_eq!(entry.last_record_offset, 32 + 400);
        assert_eq!(entry.segment_header(), Some(SegmentHeader::current(103, GBM, 0)));
        // A segment that does not continue the list, or a table without one, leaves none.
        let gap = fold(Some(&one), &chained(104, 106));
        assert_eq!(StreamTable::parse_header(&gap).unwrap().segment_count(), 0);
        let listless = encode_stream_table(&BINDING, entries().into_iter(), &[]).unwrap();
        let over = fold(Some(&listless), &chained(40, 41));
        assert_eq!(StreamTable::parse_header(&over).unwrap().segment_count(), 0);
    }

    #[test]
    fn stream_table_hostile_segment_list_is_refused_and_never_panics() {
        let (a, b) = (chained(100, 103), chained(103, 105));
        let two = fold(Some(&fold(None, &a)), &b);
        let table = StreamTable::parse_header(&two).unwrap();
        let binding = table.binding();
        let refused = |segments: &[ListedSegment]| {
            let found = encode_stream_table(&binding, std::iter::empty(), segments);
            assert!(matches!(found, Err(DerivedFileError::Unencodable(_))), "{segments:?}");
        };
        refused(&[listed(&b), listed(&a)]);
        refused(&[listed(&a)]);
        refused(&[ListedSegment { group_bytes_max: GBM + 1, ..listed(&b) }]);
        refused(&[ListedSegment { last_record_offset: 0, ..listed(&b) }]);
        let list_at = two.len() - 4 - 2 * TABLE_SEGMENT_LEN;
        for i in list_at..two.len() - 4 {
            for bit in [0, 3, 7] {
                let mut bad = two.clone();
                bad[i] ^= 1 << bit;
                let checked = StreamTable::parse_header(&bad).and_then(|t| t.check_body());
                assert!(checked.is_err(), "flip at byte {i} bit {bit}");
                reseal(&mut bad);
                if let Ok(table) = StreamTable::parse_header(&bad) {
                    let _ = (table.check_body(), table.segments().count(), table.segment_count());
                    for l in table.segments() {
                        let _ = (l.binding(), l.segment_header());
                    }
                }
            }
        }
        // The count in the header: beyond the body, or not matching the list's bytes.
        for count in [3u32, 1, u32::MAX] {
            let mut bad = two.clone();
            bad[56..60].copy_from_slice(&count.to_le_bytes());
            reseal(&mut bad);
            let checked = StreamTable::parse_header(&bad).and_then(|t| t.check_body());
            assert!(checked.is_err(), "{count} segments");
        }
    }

    #[test]
    fn stream_table_version_1_reads_as_a_table_without_a_list() {
        let mut v1 = sample_table();
        v1[8] = 1;
        reseal(&mut v1);
        let table = StreamTable::parse_header(&v1).unwrap();
        assert_eq!((table.check_body(), table.segment_count()), (Ok(()), 0));
        assert!(table.iter().eq(entries()));
        v1[56] = 1;
        reseal(&mut v1);
        assert!(StreamTable::parse_header(&v1).is_err(), "a version 1 table has no list");
    }

    fn sample_table() -> Vec<u8> {
        encode_stream_table(&BINDING, entries().into_iter(), &[]).unwrap()
    }

    #[test]
    fn stream_table_round_trips_every_accessor() {
        let bytes = sample_table();
        let table = StreamTable::parse_header(&bytes).unwrap();
        assert_eq!(table.check_body(), Ok(()));
        assert_eq!((table.binding(), table.len(), table.is_empty()), (BINDING, 4, false));
        assert!(table.iter().eq(entries()));
        for e in entries() {
            assert_eq!(table.get(e.name), Some(e));
        }
        for absent in ["", "0", "aa", "order-0", "zz"] {
            assert_eq!(table.get(absent), None, "{absent:?}");
        }
        let empty = encode_stream_table(&TableBinding::default(), std::iter::empty(), &[]).unwrap();
        let empty = StreamTable::parse_header(&empty).unwrap();
        assert_eq!((empty.check_body(), empty.len(), empty.get("a")), (Ok(()), 0, None));
    }

    #[test]
    fn stream_table_encoder_refuses_unsorted_and_impossible_entries() {
        let [a, b, c, _] = entries();
        let refused = |entries: &[TableEntry<'_>]| {
            let found = encode_stream_table(&BINDING, entries.iter().copied(), &[]);
            assert!(matches!(found, Err(DerivedFileError::Unencodable(_))), "{entries:?}");
        };
        refused(&[b, a]);
        refused(&[a, a]);
        refused(&[TableEntry { first: 3, ..a }]);
        refused(&[TableEntry { meta: None, ..c }]);
        refused(&[TableEntry { last_segment: Some(u64::MAX), ..a }]);
        refused(&[TableEntry { name: "", ..a }]);
    }

    #[test]
    fn stream_table_damage_is_refused_with_its_kind() {
        let bytes = sample_table();
        let parse = |b: &[u8]| StreamTable::parse_header(b).map(|_| ());
        let mut magic = bytes.clone();
        magic[3] ^= 1;
        assert_eq!(parse(&magic), Err(DerivedFileError::BadMagic));
        let mut version = bytes.clone();
        version[8] = 7;
        reseal(&mut version);
        assert_eq!(parse(&version), Err(DerivedFileError::UnsupportedVersion(7)));
        let mut header = bytes.clone();
        header[20] ^= 1;
        assert_eq!(parse(&header), Err(DerivedFileError::HeaderChecksum));
        let mut body = bytes.clone();
        body[70] ^= 1;
        let table = StreamTable::parse_header(&body).unwrap();
        assert_eq!(table.check_body(), Err(DerivedFileError::BodyChecksum));
        let mut entries = bytes.clone();
        entries[48..56].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        reseal(&mut entries);
        let kind = TABLE_PART_ENTRIES;
        assert_eq!(parse(&entries), Err(DerivedFileError::SectionOutOfBounds { kind }));
        let checked = |b: &[u8]| StreamTable::parse_header(b).and_then(|t| t.check_body());
        for cut in 0..bytes.len() {
            assert!(checked(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn stream_table_unsorted_names_fail_the_body_check() {
        let mut bytes = sample_table();
        let at = bytes.windows(7).position(|w| w == b"order-1").unwrap();
        bytes[at] = b'0'; // `0rder-1` now sorts before `c`
        reseal(&mut bytes);
        let table = StreamTable::parse_header(&bytes).unwrap();
        let found = table.check_body().unwrap_err();
        assert_eq!(
            found,
            DerivedFileError::Malformed("stream table names are not strictly increasing")
        );
    }

    #[test]
    fn stream_table_every_flip_is_refused_and_no_accessor_panics() {
        let bytes = sample_table();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                let checked = StreamTable::parse_header(&bad).and_then(|t| t.check_body());
                assert!(checked.is_err(), "flip at byte {i} bit {bit}");
                reseal(&mut bad);
                if let Ok(table) = StreamTable::parse_header(&bad) {
                    let _ = (table.binding(), table.len(), table.iter().count());
                    let _ = (table.get("a"), table.get("order-1"), table.get("zz"));
                }
            }
        }
    }

    /// The sample segment (base 100; `order-1` 5..7 with metadata, `order-2` 0..2, `$$order-1`
    /// 0, `$$order-9` 3, metadata for the unknown `order-9`) folded into the sample table.
    #[test]
    fn fold_merges_new_and_existing_streams_and_metadata() {
        let (table_bytes, index_bytes) = (sample_table(), sample());
        let old = StreamTable::parse_header(&table_bytes).unwrap();
        let segment = IndexFile::parse_header(&index_bytes).unwrap();
        let binding = TableBinding::at_end_of(&segment.binding(), false);
        let bytes = fold_into_table(Some(&old), &segment, GBM, &binding).unwrap();
        let table = StreamTable::parse_header(&bytes).unwrap();
        assert_eq!((table.check_body(), table.binding()), (Ok(()), binding));
        let names: Vec<&str> = table.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            ["$$order-1", "$$order-9", "a", "b", "c", "order-1", "order-2", "order-9"]
        );
        let get = |name| table.get(name).unwrap();
        let seg = Some(100);
        let new =
            |name, first, next, meta| TableEntry { name, first, next, last_segment: seg, meta };
        assert_eq!(get("$$order-9"), new("$$order-9", 3, 4, None), "a new stream");
        assert_eq!(get("order-2"), new("order-2", 0, 2, None), "a new stream");
        let [a, b, c, _] = entries();
        assert_eq!((get("a"), get("b"), get("c")), (a, b, c), "untouched entries are copied");
        assert_eq!(get("order-1"), new("order-1", 0, 7, Some(&b"meta-1"[..])), "existing");
        let ghost = TableEntry {
            name: "order-9",
            first: 0,
            next: 0,
            last_segment: None,
            meta: Some(&b"meta-9"[..]),
        };
        assert_eq!(get("order-9"), ghost, "a metadata-only target");
        let first = fold_into_table(None, &segment, GBM, &binding).unwrap();
        let first = StreamTable::parse_header(&first).unwrap();
        assert_eq!(first.get("order-1"), Some(new("order-1", 5, 7, Some(&b"meta-1"[..]))));
        assert_eq!(first.len(), 5);
    }

    #[test]
    fn fold_replaces_metadata_and_gives_a_metadata_only_stream_its_first_version() {
        let old_entries = [
            TableEntry {
                name: "order-1",
                first: 0,
                next: 0,
                last_segment: None,
                meta: Some(&b"x"[..]),
            },
            TableEntry {
                name: "order-9",
                first: 1,
                next: 9,
                last_segment: Some(50),
                meta: Some(&b"y"[..]),
            },
        ];
        let old_bytes = encode_stream_table(&BINDING, old_entries.into_iter(), &[]).unwrap();
        let old = StreamTable::parse_header(&old_bytes).unwrap();
        let index_bytes = sample();
        let segment = IndexFile::parse_header(&index_bytes).unwrap();
        let s = segment.binding();
        let binding = TableBinding {
            covered: 200,
            segment_base: 100,
            segment_len: s.segment_len,
            last_record_crc: s.last_record_crc,
            durable: true,
        };
        let bytes = fold_into_table(Some(&old), &segment, GBM, &binding).unwrap();
        let table = StreamTable::parse_header(&bytes).unwrap();
        let order_1 = TableEntry {
            name: "order-1",
            first: 5,
            next: 7,
            last_segment: Some(100),
            meta: Some(&b"meta-1"[..]),
        };
        assert_eq!(table.get("order-1"), Some(order_1));
        let order_9 = TableEntry { meta: Some(&b"meta-9"[..]), ..old_entries[1] };
        assert_eq!(table.get("order-9"), Some(order_9), "metadata replaced, the rest copied");
        for wrong in [
            TableBinding { covered: 105, ..binding },
            TableBinding { segment_base: 0, ..binding },
            TableBinding { segment_len: 1, ..binding },
            TableBinding { last_record_crc: 1, ..binding },
        ] {
            let found = fold_into_table(Some(&old), &segment, GBM, &wrong);
            assert!(matches!(found, Err(DerivedFileError::Unencodable(_))), "{wrong:?}");
        }
    }
}
