//! Stratified train / validation / test splits with a fixed random state.
//!
//! Like the original (scikit-learn's `train_test_split(stratify=y)` twice): the test share is
//! taken first, then the validation share of the whole from the rest, each class separately,
//! so every split keeps the label balance.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;

/// Row indices of each split, each sorted ascending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitIndices {
    /// Rows to fit on.
    pub train: Vec<usize>,
    /// Rows for ensemble weights and early decisions.
    pub validation: Vec<usize>,
    /// Rows for the reported metrics (empty when `test_fraction` is 0).
    pub test: Vec<usize>,
}

/// Splits rows by label into train / validation / test of the given fractions of the whole.
pub fn stratified(
    labels: &[f32],
    validation_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> SplitIndices {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut classes: Vec<f32> = labels.to_vec();
    classes.sort_by(f32::total_cmp);
    classes.dedup();
    let mut out = SplitIndices::default();
    for class in classes {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rows.shuffle(&mut rng);
        let n = rows.len() as f64;
        let n_test = (n * test_fraction).round() as usize;
        let n_val = ((n * validation_fraction).round() as usize).min(rows.len() - n_test);
        out.test.extend_from_slice(&rows[..n_test]);
        out.validation
            .extend_from_slice(&rows[n_test..n_test + n_val]);
        out.train.extend_from_slice(&rows[n_test + n_val..]);
    }
    out.train.sort_unstable();
    out.validation.sort_unstable();
    out.test.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_balance_and_determinism() {
        let labels: Vec<f32> = (0..10_000)
            .map(|i| if i % 10 < 3 { 1.0 } else { 0.0 })
            .collect();
        let s = stratified(&labels, 0.15, 0.15, 42);
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (7000, 1500, 1500)
        );
        let rate = |ix: &[usize]| {
            ix.iter().filter(|&&i| labels[i] == 1.0).count() as f64 / ix.len() as f64
        };
        for part in [&s.train, &s.validation, &s.test] {
            assert!((rate(part) - 0.3).abs() < 1e-9);
        }
        let mut all: Vec<usize> = [s.train.clone(), s.validation.clone(), s.test.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..10_000).collect::<Vec<_>>());
        assert_eq!(s, stratified(&labels, 0.15, 0.15, 42));
        assert_ne!(s, stratified(&labels, 0.15, 0.15, 43));
    }

    #[test]
    fn no_test_share_leaves_test_empty() {
        let labels = vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let s = stratified(&labels, 0.25, 0.0, 1);
        assert!(s.test.is_empty());
        assert_eq!(s.validation.len(), 2);
    }
}
