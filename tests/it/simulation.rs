//! Deterministic crash simulation on the simulated disk: a seeded workload of appends (single
//! and multi-stream, with expected versions), reads, reopens and rotations is cut by a power
//! loss at every I/O operation in turn, each cut is damaged several ways, and the reopened
//! store is checked against a model of what was acknowledged.
//!
//! `ANNAL_SIM_SEEDS=N` runs N seeds instead of the few CI runs; a failure names its seed,
//! crash point and damage variant, which reproduce it exactly.

use std::io;

use annal::{Store, io::SimDisk};
use uuid::Uuid;

use crate::sim_model::{Model, Seeded, check, dir, options, reopen_and_check, run_workload};

/// Damage variants (crash seeds) tried at every crash point.
const VARIANTS: u64 = 4;
/// Operations in one workload.
const WORKLOAD_OPS: usize = 40;

fn seeded(seed: u64) -> Seeded {
    Seeded(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
}

/// Crashes at every operation of the seed's workload, `VARIANTS` damages each; also crashes
/// again during the recovery of every fourth case. Returns how many cases ran and how many of
/// them recovery had to repair.
fn simulate_seed(seed: u64) -> (usize, usize) {
    let clean = SimDisk::new();
    let full = run_workload(&clean, &mut seeded(seed), WORKLOAD_OPS);
    assert!(!full.acked.is_empty(), "seed {seed}: workload acknowledged nothing");
    let total_ops = clean.ops();
    let (mut cases, mut repaired) = (0, 0);
    for crash_at in 0..total_ops {
        for variant in 0..VARIANTS {
            let disk = SimDisk::new();
            disk.fail_at(crash_at, io::ErrorKind::Other, true);
            let model = run_workload(&disk, &mut seeded(seed), WORKLOAD_OPS);
            let crashed = disk.crash(variant);
            let where_ = format!("seed {seed}, crash at op {crash_at}, variant {variant}");
            if variant == 0 && crash_at % 4 == 0 {
                crash_during_recovery(&crashed, &model, &where_);
            }
            match reopen_and_check(&crashed, &model) {
                Ok(cut) => repaired += usize::from(cut),
                Err(e) => panic!("{where_}: {e}"),
            }
            cases += 1;
        }
    }
    (cases, repaired)
}

/// Cuts power at each operation of the recovery itself, then recovers again and checks.
fn crash_during_recovery(crashed: &SimDisk, model: &Model, where_: &str) {
    for recovery_op in 0..4 {
        let disk = crashed.crash(0);
        let start = disk.ops();
        disk.fail_at(start + recovery_op, io::ErrorKind::Other, true);
        let _ = Store::open_with(dir(), options(&disk)).map(|s| s.close());
        let again = disk.crash(recovery_op + 1);
        if let Err(e) = reopen_and_check(&again, model) {
            panic!("{where_}, crash during recovery at its op {recovery_op}: {e}");
        }
    }
}

fn seeds() -> u64 {
    std::env::var("ANNAL_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6)
}

#[test]
fn simulation_crash_at_every_io_point_keeps_every_acknowledged_append() {
    let (mut cases, mut repaired) = (0, 0);
    for seed in 1..=seeds() {
        let (c, r) = simulate_seed(seed);
        cases += c;
        repaired += r;
    }
    eprintln!("simulation: {cases} crash cases over {} seeds, {repaired} repaired", seeds());
    // The damage variants must actually produce torn tails for recovery to cut.
    assert!(repaired > 0, "no crash case needed repair: the simulation damages nothing");
}

#[test]
fn simulation_model_check_catches_a_lost_event() {
    // The checker itself must fail when an acknowledged event is missing.
    let disk = SimDisk::new();
    let mut model = run_workload(&disk, &mut seeded(3), WORKLOAD_OPS);
    let store = Store::open_with(dir(), options(&disk)).unwrap();
    model.acked.push((store.head().get(), "s-0".into(), 0, Uuid::from_u128(1)));
    assert!(check(&store, &model).is_err());
}
