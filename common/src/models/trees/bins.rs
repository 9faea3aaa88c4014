//! Split thresholds as bin numbers, for the AVX-512 walk that looks a row's bin numbers up in
//! registers instead of gathering its values (`avx512::walk_bins`). A feature's distinct
//! thresholds, ascending, number its values: a value's bin number is how many thresholds are at
//! or below it, so `v >= threshold k` (counting from 0) exactly when its bin number is at least
//! `k + 1`, ties and signed zeros included. XGBoost's `hist` method (256 bins) leaves at most
//! 255 thresholds a feature, so a bin number fits a byte; models with more, or with more
//! features than [`avx512::BIN_TABLES`] tables hold, keep the walk on values.

use super::{avx512, Packed, Width};

/// A model's bin numbering.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bins {
    /// Per feature, 256 values: its distinct thresholds ascending, then infinities.
    pub cuts: Vec<f32>,
    /// Per feature, how many thresholds it has.
    pub counts: Vec<i32>,
    /// Per tree, its nodes as [`word`]s.
    pub trees: Vec<Vec<u32>>,
}

/// Thresholds a feature may have (its bin numbers, 0 to this, fit a byte).
const MAX_THRESHOLDS: usize = 255;

/// Where a [`word`] keeps the feature (5 bits: up to 31 columns).
pub(super) const FEATURE_SHIFT: u32 = 8;
pub(super) const FEATURE_MASK: u32 = 31;
/// Where a [`word`] keeps the first child (19 bits).
pub(super) const CHILD_SHIFT: u32 = 13;
const MAX_NODES: usize = 1 << (32 - CHILD_SHIFT);

/// A node as the walk on bin numbers reads it, one word: `at_least | feature << 8 | child << 13`.
/// A value goes right to `child + 1` when its bin number is at least `at_least` (its
/// threshold's bin number plus one; a leaf's 0, so that it goes right to itself), else left.
fn word(at_least: u32, feature: usize, child: usize) -> u32 {
    debug_assert!(at_least <= 0xff && feature as u32 <= FEATURE_MASK && child < MAX_NODES);
    at_least | (feature as u32) << FEATURE_SHIFT | (child as u32) << CHILD_SHIFT
}

/// A [`word`]'s `(at_least, feature, child)`.
pub(super) fn parts(word: u32) -> (u32, usize, usize) {
    (
        word & 0xff,
        ((word >> FEATURE_SHIFT) & FEATURE_MASK) as usize,
        (word >> CHILD_SHIFT) as usize,
    )
}

impl Bins {
    /// The numbering of a model of `n_features` features whose trees are `trees`, if it fits:
    /// at most 255 thresholds a feature, none NaN, a row's bin numbers (with the leaves'
    /// column) in [`avx512::BIN_TABLES`] tables, trees of at most 2^19 nodes.
    pub fn new(trees: &[&[Packed<u32>]], n_features: usize) -> Option<Bins> {
        const _: () = assert!(8 * avx512::BIN_TABLES <= FEATURE_MASK as usize + 1);
        if n_features + 1 > 8 * avx512::BIN_TABLES || trees.iter().any(|t| t.len() > MAX_NODES) {
            return None;
        }
        let splits = || {
            trees
                .iter()
                .flat_map(|t| t.iter())
                .filter(|n| n.bits.feature() != n_features)
        };
        let mut thresholds = vec![Vec::new(); n_features];
        for n in splits() {
            if n.value.is_nan() {
                return None;
            }
            thresholds[n.bits.feature()].push(n.value);
        }
        let mut cuts = Vec::with_capacity(256 * n_features);
        let mut counts = Vec::with_capacity(n_features);
        for t in &mut thresholds {
            t.sort_by(f32::total_cmp);
            t.dedup_by(|a, b| a.total_cmp(b).is_eq());
            if t.len() > MAX_THRESHOLDS {
                return None;
            }
            counts.push(t.len() as i32);
            cuts.extend_from_slice(t);
            cuts.resize(cuts.len() + 256 - t.len(), f32::INFINITY);
        }
        let numbered = |n: &Packed<u32>| {
            let feature = n.bits.feature();
            let at_least = if feature == n_features {
                0
            } else {
                let t = &thresholds[feature];
                t.binary_search_by(|c| c.total_cmp(&n.value))
                    .expect("every threshold is numbered") as u32
                    + 1
            };
            word(at_least, feature, n.bits.child())
        };
        let trees = trees
            .iter()
            .map(|t| t.iter().map(numbered).collect())
            .collect();
        Some(Bins {
            cuts,
            counts,
            trees,
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        4 * (self.cuts.len() + self.counts.len())
            + self
                .trees
                .iter()
                .map(|t| std::mem::size_of_val(t.as_slice()))
                .sum::<usize>()
    }
}
