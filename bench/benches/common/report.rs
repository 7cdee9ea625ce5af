//! The quick example's output: one table with annal, SQLite and the raw limit side by side
//! and the ratios, filled either by the example's own run or from the estimates of the last
//! criterion run (`target/criterion`).

use std::{path::Path, time::Duration};

use crate::common::raw::Writes;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A duration in milliseconds.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A rate with a metric prefix: `23.4M`, `812k`, `95`.
pub fn human(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2}G", x / 1e9),
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e4 => format!("{:.0}k", x / 1e3),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.1}"),
    }
}

/// The one table: a row per figure, annal, SQLite and the raw limit side by side.
#[derive(Default)]
pub struct Table {
    rows: Vec<[String; 7]>,
}

impl Table {
    pub fn section(&mut self, title: &str) {
        self.rows.push([
            title.to_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            "§".into(),
        ]);
    }

    fn push(&mut self, name: &str, cells: [String; 5], target: Option<(&str, bool)>) {
        let [a, s, r, vs_s, vs_r] = cells;
        let target = target.map_or(String::new(), |(t, met)| {
            format!("{t}: {}", if met { "met" } else { "MISSED" })
        });
        self.rows.push([format!("  {name}"), a, s, r, vs_s, vs_r, target]);
    }

    /// A row of rates; the ratio columns are annal ÷ the other.
    pub fn values(
        &mut self,
        name: &str,
        a: f64,
        s: Option<f64>,
        r: Option<f64>,
        target: Option<(&str, bool)>,
    ) {
        let ratio = |o: Option<f64>| o.map_or(String::new(), |o| format!("{:.2}×", a / o));
        let cell = |o: Option<f64>| o.map_or(String::new(), human);
        self.push(name, [human(a), cell(s), cell(r), ratio(s), ratio(r)], target);
    }

    pub fn rates(
        &mut self,
        name: &str,
        a: &Writes,
        s: Option<&Writes>,
        r: Option<&Writes>,
        target: Option<(&str, bool)>,
    ) {
        self.values(
            name,
            a.events_per_s(),
            s.map(Writes::events_per_s),
            r.map(Writes::events_per_s),
            target,
        );
    }

    /// A latency row; the ratio columns are annal ÷ the other (lower is better).
    pub fn latency(&mut self, name: &str, q: f64, a: &mut Writes, s: &mut Writes, r: &mut Writes) {
        let (a, s, r) = (a.latencies.quantile(q), s.latencies.quantile(q), r.latencies.quantile(q));
        let ratio = |o: Duration| format!("{:.2}×", a.as_secs_f64() / o.as_secs_f64());
        self.push(name, [ms(a), ms(s), ms(r), ratio(s), ratio(r)], None);
    }

    pub fn text(&mut self, name: &str, a: &str, target: (&str, bool)) {
        self.push(
            name,
            [a.into(), String::new(), String::new(), String::new(), String::new()],
            Some(target),
        );
    }

    pub fn plain(&mut self, name: &str, a: &str, s: &str, r: &str) {
        self.push(name, [a.into(), s.into(), r.into(), String::new(), String::new()], None);
    }

    pub fn print(&self) {
        let head =
            ["workload", "annal", "SQLite", "raw", "÷SQLite", "÷raw", "target"].map(String::from);
        let mut widths = [0usize; 7];
        for row in self.rows.iter().filter(|r| r[6] != "§").chain([&head]) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |row: &[String; 7]| {
            let mut out = format!("{:<w$}", row[0], w = widths[0]);
            for (cell, w) in row[1..6].iter().zip(&widths[1..6]) {
                out += &format!("  {cell:>w$}", w = w);
            }
            println!("{}  {}", out, row[6]);
        };
        line(&head);
        for row in &self.rows {
            if row[6] == "§" {
                println!("{}", row[0]);
            } else {
                line(row);
            }
        }
    }
}

/// Prints the ratios of the last `cargo bench` run: for every benchmark group and parameter,
/// annal's throughput next to SQLite's and the raw limit's, from criterion's own estimates.
pub fn criterion_report() -> Res<()> {
    let root = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), Into::into)
        .join("criterion");
    let mut found = Vec::new();
    collect_benchmarks(&root, &mut found)?;
    found.sort_by(|a, b| (&a.group, &a.value, &a.function).cmp(&(&b.group, &b.value, &b.function)));
    let mut table = Table::default();
    let mut last = String::new();
    for key in found.iter().filter(|b| b.function == "annal") {
        if key.group != last {
            table.section(&key.group);
            last = key.group.clone();
        }
        let other = |prefix: &str| {
            found.iter().find(|b| {
                b.group == key.group && b.value == key.value && b.function.starts_with(prefix)
            })
        };
        let (s, r) = (other("sqlite"), other("raw"));
        let name = format!("{}: elements/s", key.value);
        table.values(&name, key.rate, s.map(|b| b.rate), r.map(|b| b.rate), None);
    }
    table.print();
    Ok(())
}

/// One benchmark of a criterion run: its ID and its mean throughput in elements per second.
struct Measured {
    group: String,
    function: String,
    value: String,
    rate: f64,
}

fn collect_benchmarks(dir: &Path, out: &mut Vec<Measured>) -> Res<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        if path.ends_with("new") {
            let bench: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path.join("benchmark.json"))?)?;
            let estimates: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path.join("estimates.json"))?)?;
            let elements = bench["throughput"]["Elements"].as_f64().unwrap_or(1.0);
            // Criterion's headline: the slope of a linear sampling, else the mean.
            let slope = estimates["slope"]["point_estimate"].as_f64();
            let ns = slope.or(estimates["mean"]["point_estimate"].as_f64()).unwrap_or(f64::NAN);
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            out.push(Measured {
                group: text(&bench["group_id"]),
                function: text(&bench["function_id"]),
                value: text(&bench["value_str"]),
                rate: elements / (ns / 1e9),
            });
        } else if path.is_dir() {
            collect_benchmarks(&path, out)?;
        }
    }
    Ok(())
}
