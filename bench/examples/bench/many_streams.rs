//! W8: a store of 10M streams holding one event each (opt-in), its open and the heap the open
//! keeps, and appends to random existing streams next to the same appends on a store of 10k
//! streams, taking turns in the same run.
//!
//! The large store is kept in the data directory (`common/cache.rs`) and reused. Building it
//! here (10M streams, 1,000 per atomic append, no fsync) takes a few minutes and ~3 GB of
//! disk, and its open holds about a gigabyte of index; `ANNAL_BENCH_W8_STREAMS=1000000` runs
//! W8 on 1M streams (~300 MB) instead. The appends grow the kept store a little every run
//! (a few hundred thousand events), so its streams hold one event only the first time.

use std::time::Duration;

use crate::{
    Res,
    common::{
        cache,
        many::{self, Picks},
        raw::Writes,
    },
    report::{Table, human, ms},
};

/// Rounds of each store, taking turns.
const ROUNDS: usize = 3;

/// W8 for a large store of `streams` streams; `slice` is each turn's length.
pub fn w8(table: &mut Table, scratch: &std::path::Path, streams: u64, slice: Duration) -> Res<()> {
    let what = format!("{streams} streams of one 200 B event each, built by annal::Store");
    let name = format!("w8-{streams}-streams");
    let (dir, built) = cache::kept(&name, &what, |dir| Ok(many::build(dir, streams)?))?;
    let few = scratch.join("w8-few");
    many::build(&few, many::FEW_STREAMS)?;
    let label = |n: u64| {
        if n >= 1_000_000 { format!("{}M", n / 1_000_000) } else { format!("{}k", n / 1000) }
    };
    let (big, small) = (label(streams), label(many::FEW_STREAMS));
    table.section(&format!(
        "W8 {big} streams of one event: open, and 1-event appends to random streams, Exact, no fsync (÷ {small} streams)"
    ));
    if let Some(took) = built {
        let rate = human(streams as f64 / took.as_secs_f64());
        table.plain("build streams/s (1,000 per append_multi, no fsync)", &rate, "", "");
    }
    let (large, open_large, heap_large) = many::open(&dir)?;
    let (few_store, _, _) = many::open(&few)?;
    let events = large.stats().events;
    table.plain(
        &format!("{big}: open time"),
        &format!("{:.2} s", open_large.as_secs_f64()),
        "",
        "",
    );
    let per = |n: u64| format!("{:.1} B", heap_large as f64 / n as f64);
    table.plain(
        &format!("{big}: heap kept by open / event ({events} events)"),
        &per(events),
        "",
        "",
    );
    table.plain(&format!("{big}: heap kept by open / stream"), &per(streams), "", "");
    let mut picks_large = Picks::new(&large, streams, 8);
    let mut picks_few = Picks::new(&few_store, many::FEW_STREAMS, 8);
    let (mut on_large, mut on_few) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        on_few.push(many::random_appends(&few_store, &mut picks_few, slice)?);
        on_large.push(many::random_appends(&large, &mut picks_large, slice)?);
    }
    rows(table, (&big, &small), on_large, on_few);
    Ok(())
}

/// Rate rows: each store's rate over all rounds with the range of its rounds, and the ratio.
fn rows(table: &mut Table, names: (&str, &str), large: Vec<Writes>, few: Vec<Writes>) {
    let ratios: Vec<f64> =
        large.iter().zip(&few).map(|(l, f)| l.events_per_s() / f.events_per_s()).collect();
    let (mut large, mut few) = (merged(large), merged(few));
    let (l, f) = (large.0.events_per_s(), few.0.events_per_s());
    let range = |(lo, hi): (f64, f64)| format!("{}–{}", human(lo), human(hi));
    table.plain(
        &format!("{}: appends/s (rounds min–max)", names.0),
        &human(l),
        &range(large.1),
        "",
    );
    table.plain(&format!("{}: appends/s (rounds min–max)", names.1), &human(f), &range(few.1), "");
    let (lo, hi) = ratios.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    let text = format!("{:.2}× ({lo:.2}–{hi:.2}×)", l / f);
    table.plain(&format!("{} ÷ {} appends/s (all; per round)", names.0, names.1), &text, "", "");
    for (name, w) in [(names.0, &mut large.0), (names.1, &mut few.0)] {
        let (p50, p99) = (w.latencies.quantile(0.5), w.latencies.quantile(0.99));
        let text = format!("{} | {} | {}", ms(p50), ms(p99), ms(w.latencies.max()));
        table.plain(&format!("{name}: append latency p50 | p99 | max"), &text, "", "");
    }
}

/// The rounds as one, with the lowest and highest rate of a round.
fn merged(rounds: Vec<Writes>) -> (Writes, (f64, f64)) {
    let rates = rounds.iter().map(Writes::events_per_s);
    let range = rates.fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let mut all = Writes::default();
    for w in rounds {
        all.merge(w);
    }
    (all, range)
}
