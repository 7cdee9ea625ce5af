//! Medians and ranges: how every figure the benchmarks print is summed up over rounds and runs.
//! Never the best round, which on a shared machine says how lucky one slice was.

/// The median (the upper one of an even count), the minimum and the maximum of `values`,
/// which must not be empty.
pub fn spread<T: PartialOrd + Copy>(values: &[T]) -> (T, T, T) {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("values that compare"));
    (sorted[sorted.len() / 2], sorted[0], sorted[sorted.len() - 1])
}

/// The median of `values` (as [`spread`] takes it).
pub fn median<T: PartialOrd + Copy>(values: &[T]) -> T {
    spread(values).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max_whatever_the_order() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[4, 1, 3, 2]), (3, 1, 4));
        assert_eq!(median(&[7]), 7);
    }
}
