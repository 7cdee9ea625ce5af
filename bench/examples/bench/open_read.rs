//! W6's second half: opening a store and reading the last event of a random stream, the time
//! to a restarted service's first answer, annal and SQLite taking turns on the same events,
//! warm and cold; and the heap annal's open keeps.

use std::{path::Path, time::Duration};

use annal_bench::stats;

use crate::{
    Res,
    common::{Layout, drop_page_cache, stream_name, workload},
    report::Table,
    sqlite,
};

/// Rounds of each contender, taking turns, per page-cache state; fewer cold (each drops the
/// page cache, and a cold open of the 10M store takes seconds).
const WARM_ROUNDS: usize = 5;
const COLD_ROUNDS: usize = 3;

/// annal's median times of one size, to compare sizes.
pub struct Medians {
    pub warm: Duration,
    pub cold: Option<Duration>,
}

/// Rows for one size: `annal` and `lite` hold the same `layout`'s events.
pub fn rows(
    table: &mut Table,
    name: &str,
    annal: &Path,
    lite: &Path,
    layout: Layout,
) -> Res<Medians> {
    // One untimed turn each, so that "warm" means warm even for a store just reused from disk.
    let warm_up = stream_name(layout.random_filled(1, 7)[0]);
    let heap = workload::open_read_last(annal, &warm_up)?.open_heap_bytes;
    drop(sqlite::open_read_last(lite, &warm_up)?);
    let warm = turns(annal, lite, layout, WARM_ROUNDS, false)?;
    let warm_median = side(table, &format!("{name} warm"), &warm);
    let cold = if drop_page_cache() {
        let cold = turns(annal, lite, layout, COLD_ROUNDS, true)?;
        Some(side(table, &format!("{name} cold"), &cold))
    } else {
        table.plain(&format!("{name} cold"), "could not drop the page cache", "", "");
        None
    };
    let per_event = heap as f64 / layout.events as f64;
    let heap_row = format!("{name}: heap kept by open / event (allocator)");
    table.plain(&heap_row, &format!("{per_event:.1} B"), "", "");
    Ok(Medians { warm: warm_median, cold })
}

/// The ratio of annal's open + read at a large size to a small one, warm and cold.
pub fn growth(table: &mut Table, names: (&str, &str), small: &Medians, large: &Medians) {
    let ratio = |l: Duration, s: Duration| format!("{:.1}×", l.as_secs_f64() / s.as_secs_f64());
    let (s, l) = names;
    table.plain(
        &format!("annal open + read, {l} ÷ {s}, warm (medians)"),
        &ratio(large.warm, small.warm),
        "",
        "",
    );
    if let (Some(lc), Some(sc)) = (large.cold, small.cold) {
        table.plain(
            &format!("annal open + read, {l} ÷ {s}, cold (medians)"),
            &ratio(lc, sc),
            "",
            "",
        );
    }
}

/// `rounds` rounds of annal then SQLite, each round on a new random stream (the same for
/// both), each turn after dropping the page cache if `cold`: (annal, SQLite) times.
fn turns(
    annal: &Path,
    lite: &Path,
    layout: Layout,
    rounds: usize,
    cold: bool,
) -> Res<Vec<(Duration, Duration)>> {
    let seed = if cold { 2 } else { 1 };
    let mut out = Vec::with_capacity(rounds);
    for stream in layout.random_filled(rounds, seed) {
        let stream = stream_name(stream);
        if cold {
            drop_page_cache();
        }
        let a = workload::open_read_last(annal, &stream)?.elapsed;
        if cold {
            drop_page_cache();
        }
        let s = sqlite::open_read_last(lite, &stream)?.1;
        out.push((a, s));
    }
    Ok(out)
}

/// Rows of one set of turns: each side's range and the ratio (of the medians, and the range of
/// the per-round ratios, which are paired in time); returns annal's median.
fn side(table: &mut Table, what: &str, turns: &[(Duration, Duration)]) -> Duration {
    let (a, s): (Vec<Duration>, Vec<Duration>) = turns.iter().copied().unzip();
    let ((a_med, a_min, a_max), (s_med, s_min, s_max)) = (stats::spread(&a), stats::spread(&s));
    let range = |min, max| format!("{}–{}", time(min), time(max));
    let n = turns.len();
    table.plain(
        &format!("{what}: open + read last, min–max of {n}"),
        &range(a_min, a_max),
        &range(s_min, s_max),
        "",
    );
    table.plain(&format!("{what}: median"), &time(a_med), &time(s_med), "");
    let mut ratios: Vec<f64> =
        turns.iter().map(|(a, s)| a.as_secs_f64() / s.as_secs_f64()).collect();
    ratios.sort_by(f64::total_cmp);
    let text = format!(
        "{:.2}× ({:.2}–{:.2}×)",
        a_med.as_secs_f64() / s_med.as_secs_f64(),
        ratios[0],
        ratios[n - 1]
    );
    table.plain(&format!("{what}: annal ÷ SQLite (of medians; per round)"), &text, "", "");
    a_med
}

/// A short duration with its unit.
fn time(d: Duration) -> String {
    match d.as_secs_f64() {
        s if s >= 1.0 => format!("{s:.2} s"),
        s if s >= 0.01 => format!("{:.0} ms", s * 1e3),
        s => format!("{:.2} ms", s * 1e3),
    }
}
