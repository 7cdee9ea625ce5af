//! The writer's append rate with 0 and with 10,000 idle async subscribers (issue 15): each
//! subscriber is a task on one current-thread tokio runtime (one thread for all of them),
//! waiting on a stream that nobody appends to, while one writer appends single events to
//! another stream. The contenders alternate, round after round; the table gives each one's
//! median with its range, and how often, per append, the idle tasks were polled (every publish
//! wakes the registered wakers once; publishes during a sweep share the next one).
//!
//! `cargo run --release --example async_idle_bench [-- ROUNDS]` (default 5 rounds).
//! `-- --one IDLE APPENDS` makes one run without fsync and prints nothing: for instruction
//! counts under `valgrind --tool=callgrind`, where the difference between two append counts
//! is the cost of the appends alone, every thread included.

use std::{
    future::poll_fn,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use annal::{Durability, ExpectedVersion, NewEvent, Options, Store, StreamVersion};
use annal_bench::stats::{median, spread};
use futures_core::Stream;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const IDLE: usize = 10_000;

/// One contender's run: appends per second and idle-task polls per append.
struct Run {
    appends_per_s: f64,
    polls_per_append: f64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, idle, appends] = args.as_slice()
        && flag == "--one"
    {
        measure(idle.parse()?, Durability::None, appends.parse()?)?;
        return Ok(());
    }
    let rounds: usize = args.first().map_or(Ok(5), |a| a.parse())?;
    for (label, durability, appends) in [
        ("Durability::None", Durability::None, 20_000),
        ("Durability::Fsync", Durability::Fsync, 1_000),
    ] {
        let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (slot, idle) in [0, IDLE].into_iter().enumerate() {
                runs[slot].push(measure(idle, durability, appends)?);
            }
        }
        println!("{label}: {appends} single-event appends by 1 writer, {rounds} rounds");
        for (slot, idle) in [0, IDLE].into_iter().enumerate() {
            let rates: Vec<f64> = runs[slot].iter().map(|r| r.appends_per_s).collect();
            let polls: Vec<f64> = runs[slot].iter().map(|r| r.polls_per_append).collect();
            let (middle, low, high) = spread(&rates);
            println!(
                "  {idle:>6} idle subscribers: {middle:>9.0} appends/s (range {low:.0}–{high:.0}), \
                 idle polls/append median {:.1}",
                median(&polls)
            );
        }
        let medians: Vec<f64> = runs
            .iter()
            .map(|r| median(&r.iter().map(|r| r.appends_per_s).collect::<Vec<_>>()))
            .collect();
        println!("  ratio 10,000 / 0: {:.2}", medians[1] / medians[0]);
    }
    Ok(())
}

fn measure(idle: usize, durability: Durability, appends: u64) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    let store =
        Arc::new(Store::open_with(dir.path(), Options { durability, ..Options::default() })?);
    let polls = Arc::new(AtomicU64::new(0));
    let subscribers = spawn_idle(&store, idle, &polls)?;
    while store.subscribers_waiting() < idle as u64 {
        thread::sleep(Duration::from_millis(1));
    }
    let polls_before = polls.load(Ordering::Relaxed);
    let start = Instant::now();
    for _ in 0..appends {
        store.append("busy", ExpectedVersion::Any, [NewEvent::new("Benchmarked", vec![7; 100])])?;
    }
    let elapsed = start.elapsed();
    let polled = polls.load(Ordering::Relaxed) - polls_before;
    store.close();
    subscribers.join().map_err(|_| "subscriber thread panicked")?;
    Ok(Run {
        appends_per_s: appends as f64 / elapsed.as_secs_f64(),
        polls_per_append: polled as f64 / appends as f64,
    })
}

/// `idle` tasks on one current-thread runtime, each waiting on its own empty stream until the
/// store closes, counting their polls.
fn spawn_idle(
    store: &Arc<Store>,
    idle: usize,
    polls: &Arc<AtomicU64>,
) -> Result<thread::JoinHandle<()>> {
    let streams = (0..idle)
        .map(|i| store.subscribe_to_stream(&format!("idle-{i}"), StreamVersion::START))
        .map(|s| s.map(|s| s.into_stream()))
        .collect::<annal::Result<Vec<_>>>()?;
    let polls = Arc::clone(polls);
    Ok(thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async move {
            let tasks: Vec<_> = streams
                .into_iter()
                .map(|mut stream| {
                    let polls = Arc::clone(&polls);
                    tokio::spawn(async move {
                        let ended = poll_fn(|cx| {
                            polls.fetch_add(1, Ordering::Relaxed);
                            Pin::new(&mut stream).poll_next(cx)
                        })
                        .await;
                        assert!(ended.is_none(), "nobody appends to an idle stream");
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("idle task");
            }
        });
    }))
}
