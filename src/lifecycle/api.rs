//! The lifecycle operations behind [`Store`]'s methods: each one is an append of a `$metadata`
//! event to the stream's metadata stream, checked by the writer like any append.

use crate::{
    error::{Error, Result},
    store::Store,
    types::{ExpectedVersion, NewEvent, Position, StreamAppend, StreamVersion},
    writer::validate_stream_name,
};

use super::{METADATA_EVENT_TYPE, MetaRecord, StreamMetadata, encode_meta, metadata_stream};

/// How often an operation that rewrites the metadata retries when another one changed it
/// between its read and its append.
const METADATA_RETRIES_MAX: u32 = 16;

/// Soft delete: sets `truncate_before` past the stream's last version.
pub(crate) fn delete(store: &Store, stream: &str, expected: ExpectedVersion) -> Result<Position> {
    rewrite_metadata(store, stream, expected, |state, record| {
        if !state.exists() {
            return Err(Error::StreamNotFound { stream: stream.to_owned() });
        }
        record.meta.truncate_before = state.last.map(|last| last + 1);
        Ok(())
    })
}

/// Hard delete: a tombstone, keeping the rest of the metadata.
pub(crate) fn tombstone(
    store: &Store,
    stream: &str,
    expected: ExpectedVersion,
) -> Result<Position> {
    rewrite_metadata(store, stream, expected, |_, record| {
        record.tombstone = true;
        Ok(())
    })
}

/// Replaces the metadata, if the metadata stream is at `expected`.
pub(crate) fn set_metadata(
    store: &Store,
    stream: &str,
    expected: ExpectedVersion,
    meta: StreamMetadata,
) -> Result<StreamVersion> {
    validate_stream_name(stream)?;
    validate_metadata(stream, &meta)?;
    let record = MetaRecord { meta, tombstone: false };
    let part = metadata_part(stream, expected, &record);
    let result = store.append_system(vec![part])?;
    Ok(result.streams[0].1.last_version)
}

/// The current metadata and its version.
pub(crate) fn metadata(
    store: &Store,
    stream: &str,
) -> Result<Option<(StreamVersion, StreamMetadata)>> {
    let Some(record) = store.metadata_record(stream) else { return Ok(None) };
    if record.tombstone {
        return Err(Error::StreamDeleted { stream: stream.to_owned() });
    }
    let version = store.stream_version(&metadata_stream(stream)).map_or(0, StreamVersion::get);
    Ok(Some((StreamVersion(version), record.meta)))
}

/// Reads the current metadata, lets `change` edit it, and appends it with the metadata
/// stream's version as read, together with a check of `stream` at `expected`.
/// Retries if another metadata change came in between.
fn rewrite_metadata(
    store: &Store,
    stream: &str,
    expected: ExpectedVersion,
    mut change: impl FnMut(&crate::index::StreamState, &mut MetaRecord) -> Result<()>,
) -> Result<Position> {
    validate_stream_name(stream)?;
    let meta_stream = metadata_stream(stream);
    for _ in 0..METADATA_RETRIES_MAX {
        let meta_version = store.stream_version(&meta_stream).map(StreamVersion::get);
        let mut record = store.metadata_record(stream).unwrap_or_default();
        let state = store.stream_state(stream);
        if state.tombstoned {
            return Err(Error::StreamDeleted { stream: stream.to_owned() });
        }
        change(&state, &mut record)?;
        let meta_expected = meta_version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
        let check = StreamAppend::new(stream, expected, []);
        let parts = vec![check, metadata_part(stream, meta_expected, &record)];
        match store.append_system(parts) {
            Ok(result) => return Ok(result.last_position),
            Err(Error::WrongExpectedVersion { stream: s, .. }) if s == meta_stream => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::WrongExpectedVersion {
        stream: meta_stream.clone(),
        expected: ExpectedVersion::Any,
        actual: store.stream_version(&meta_stream).map(StreamVersion::get),
    })
}

fn metadata_part(stream: &str, expected: ExpectedVersion, record: &MetaRecord) -> StreamAppend {
    let event = NewEvent::new(METADATA_EVENT_TYPE, encode_meta(record));
    StreamAppend::new(metadata_stream(stream), expected, [event])
}

/// Checks that the metadata fits its encoding (the event size limit is checked on append).
fn validate_metadata(stream: &str, meta: &StreamMetadata) -> Result<()> {
    let reason = if meta.custom.len() > usize::from(u16::MAX) {
        "at most 65,535 custom keys"
    } else if meta.custom.keys().any(|k| k.len() > usize::from(u16::MAX)) {
        "custom keys are at most 65,535 bytes"
    } else if meta.custom.values().any(|v| u32::try_from(v.len()).is_err()) {
        "custom values are at most 4 GiB"
    } else {
        return Ok(());
    };
    Err(Error::InvalidMetadata { stream: stream.to_owned(), reason })
}
