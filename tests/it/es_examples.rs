//! The event-sourcing examples, run as tests so they cannot rot: each example's `run` is
//! included here and its report checked.

use std::collections::BTreeMap;

#[path = "../../examples/bank.rs"]
#[expect(dead_code, reason = "the example's main and some report fields are for cargo run")]
mod bank;

#[path = "../../examples/shopping_list.rs"]
#[expect(dead_code, reason = "the example's main is for cargo run")]
mod shopping_list;

#[test]
fn example_bank_transfers_refuses_the_overdraft_and_audits_the_past() {
    let dir = tempfile::tempdir().unwrap();
    let report = bank::run(dir.path(), &mut std::io::sink()).unwrap();
    let expected = BTreeMap::from([("alice".to_owned(), 20), ("bob".to_owned(), 55)]);
    assert_eq!(report.balances, expected);
    assert!(report.refused.contains("overdraft"), "{}", report.refused);
    assert_eq!(report.audited, 70);
    assert_eq!(report.history, [(0, 0), (1, 100), (2, 70), (3, 20)]);
}

#[test]
fn example_shopping_list_keeps_names_unique() {
    let dir = tempfile::tempdir().unwrap();
    let report = shopping_list::run(dir.path(), &mut std::io::sink()).unwrap();
    let expected = BTreeMap::from([
        ("groceries".to_owned(), "l2".to_owned()),
        ("weekly".to_owned(), "l1".to_owned()),
    ]);
    assert_eq!(report.names, expected);
    assert_eq!(report.refused.len(), 1);
    assert!(report.refused[0].contains("taken by l1"));
    assert_eq!(report.items, ["milk", "eggs"]);
}
