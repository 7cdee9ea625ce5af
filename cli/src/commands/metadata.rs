//! `annal metadata`: shows a stream's metadata (read-only), or changes it with the version it
//! read as the expected version.

use std::time::Duration;

use annal::{ExpectedVersion, Options, StreamMetadata, StreamVersion};
use serde_json::{Value, json};

use crate::{
    args::MetadataArgs,
    exit::{CliResult, Exit},
    output::Output,
};

/// Shows the metadata of `args.stream`, or changes it if any `--set` option or `--clear` is
/// given.
pub fn run(args: &MetadataArgs) -> CliResult {
    let mut out = Output::new(args.json);
    if !args.changes() {
        let store = super::open_read_only(&args.dir)?;
        let current = store.stream_metadata(&args.stream)?;
        print(&mut out, &args.stream, current.as_ref())?;
        out.flush()?;
        return Ok(Exit::Ok);
    }
    let store = super::open_writable(&args.dir, Options::default())?;
    let result = change(&store, args);
    store.close();
    let (version, meta) = result?;
    if !out.is_json() {
        out.line(format_args!("set the metadata of {:?}: version {version}", args.stream))?;
    }
    print(&mut out, &args.stream, Some(&(version, meta)))?;
    out.flush()?;
    Ok(Exit::Ok)
}

/// Reads the metadata, applies the options and writes it back, expecting the version read.
fn change(
    store: &annal::Store,
    args: &MetadataArgs,
) -> annal::Result<(StreamVersion, StreamMetadata)> {
    let current = store.stream_metadata(&args.stream)?;
    let expected = current
        .as_ref()
        .map_or(ExpectedVersion::NoStream, |(v, _)| ExpectedVersion::Exact(v.get()));
    let meta = apply(args, current.map(|(_, meta)| meta).unwrap_or_default());
    let version = store.set_stream_metadata(&args.stream, expected, meta.clone())?;
    Ok((version, meta))
}

/// `meta` with the changes the options ask for (`--clear` first, then every `--set…`).
fn apply(args: &MetadataArgs, meta: StreamMetadata) -> StreamMetadata {
    let mut meta = if args.clear { StreamMetadata::default() } else { meta };
    if let Some(n) = args.set_max_count {
        meta.max_count = Some(n);
    }
    if let Some(seconds) = args.set_max_age {
        meta.max_age = Some(Duration::from_secs(seconds));
    }
    if let Some(v) = args.set_truncate_before {
        meta.truncate_before = Some(v);
    }
    for (key, value) in &args.set {
        meta.custom.insert(key.clone(), value.clone());
    }
    meta
}

/// The metadata as lines, or as one JSON object (`version` and `metadata` null if none).
fn print(
    out: &mut Output,
    stream: &str,
    current: Option<&(StreamVersion, StreamMetadata)>,
) -> std::io::Result<()> {
    if out.is_json() {
        let (version, metadata) = match current {
            Some((version, meta)) => (json!(version.get()), metadata_json(meta)),
            None => (Value::Null, Value::Null),
        };
        return out.value(&json!({ "stream": stream, "version": version, "metadata": metadata }));
    }
    let Some((version, meta)) = current else {
        return out.line(format_args!("{stream:?} has no metadata"));
    };
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let rows = [
        ("stream", format!("{stream:?}")),
        ("version", format!("{version} (of its metadata)")),
        ("max count", or_none(meta.max_count.map(|n| n.to_string()))),
        ("max age", or_none(meta.max_age.map(|a| format!("{} s", seconds_text(a))))),
        ("truncate before", or_none(meta.truncate_before.map(|v| v.to_string()))),
    ];
    for (name, value) in rows {
        out.line(format_args!("{name:<16} {value}"))?;
    }
    for (key, value) in &meta.custom {
        out.line(format_args!("{:<16} {key}={value}", "custom"))?;
    }
    Ok(())
}

/// The metadata as a JSON object; `max_age_seconds` is whole unless set finer by a library user.
fn metadata_json(meta: &StreamMetadata) -> Value {
    let max_age = meta.max_age.map_or(Value::Null, |a| {
        if a.subsec_nanos() == 0 { json!(a.as_secs()) } else { json!(a.as_secs_f64()) }
    });
    json!({
        "max_count": meta.max_count,
        "max_age_seconds": max_age,
        "truncate_before": meta.truncate_before,
        "custom": meta.custom,
    })
}

/// A duration in seconds, without a fraction when it is whole.
fn seconds_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 { d.as_secs().to_string() } else { d.as_secs_f64().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::Parser;

    fn args(line: &[&str]) -> MetadataArgs {
        let full = [&["annal", "metadata", "dir", "s-1"], line].concat();
        match Cli::parse_from(full).command {
            crate::args::Command::Metadata(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn options_change_only_what_they_name() {
        let mut before = StreamMetadata { max_count: Some(5), ..StreamMetadata::default() };
        before.custom.insert("owner".into(), "ann".into());
        let after = apply(&args(&["--set-max-age", "60", "--set", "tier=gold"]), before.clone());
        assert_eq!(after.max_count, Some(5));
        assert_eq!(after.max_age, Some(Duration::from_secs(60)));
        assert_eq!(after.custom.len(), 2);
        let cleared = apply(&args(&["--clear", "--set-truncate-before", "3"]), before);
        let expected = StreamMetadata { truncate_before: Some(3), ..StreamMetadata::default() };
        assert_eq!(cleared, expected);
        assert!(!args(&[]).changes());
        assert!(args(&["--clear"]).changes());
    }
}
