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
    /// Per tree, its nodes numbered.
    pub trees: Vec<NumberedTree>,
}

/// A tree as the walk on bin numbers reads it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NumberedTree {
    /// Its nodes as [`word`]s.
    pub words: Vec<u32>,
    /// For a tree of at most [`avx512::MAX_HELD_WORDS`] nodes, its nodes' values as bits (a
    /// leaf's is what the walk adds), which the walk holds in registers to pick each row's
    /// leaf value instead of gathering it; empty for a larger tree. (Taking them out of the
    /// 8-byte nodes at each block instead, as the walk on values does, made the walk of 200
    /// depth-6 trees about 5 % slower: 19.0-21.7 ms against 18.1-20.5, 8 interleaved pairs.)
    pub values: Vec<u32>,
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

/// A number whose order is `f32::total_cmp`'s (negative values' bits reversed).
fn key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    }
}

/// The value of a [`key`].
fn value(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 {
        key & !(1 << 31)
    } else {
        !key
    })
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
        // Each feature's thresholds as keys in `f32::total_cmp`'s order, sorted and deduplicated,
        // then padded with the largest key to 256 (a NaN threshold has no bin: none is numbered).
        let mut keys = vec![Vec::new(); n_features];
        for n in splits() {
            if n.value.is_nan() {
                return None;
            }
            keys[n.bits.feature()].push(key(n.value));
        }
        let mut cuts = Vec::with_capacity(256 * n_features);
        let mut counts = Vec::with_capacity(n_features);
        for k in &mut keys {
            k.sort_unstable();
            k.dedup();
            if k.len() > MAX_THRESHOLDS {
                return None;
            }
            counts.push(k.len() as i32);
            cuts.extend(k.iter().map(|&k| value(k)));
            cuts.resize(cuts.len() + 256 - k.len(), f32::INFINITY);
            k.resize(256, u32::MAX);
        }
        let numbered = |n: &Packed<u32>| {
            let feature = n.bits.feature();
            let at_least = if feature == n_features {
                0
            } else {
                // The threshold's index among its feature's: how many keys are below its own
                // (eight steps, without branches).
                let (sorted, own) = (&keys[feature], key(n.value));
                let mut below = 0;
                for step in [128, 64, 32, 16, 8, 4, 2, 1] {
                    below += step * usize::from(sorted[below + step - 1] < own);
                }
                debug_assert_eq!(sorted[below], own);
                below as u32 + 1
            };
            word(at_least, feature, n.bits.child())
        };
        let trees = trees
            .iter()
            .map(|t| NumberedTree {
                words: t.iter().map(numbered).collect(),
                values: if t.len() <= avx512::MAX_HELD_WORDS {
                    t.iter().map(|n| n.value.to_bits()).collect()
                } else {
                    Vec::new()
                },
            })
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
                .map(|t| 4 * (t.words.len() + t.values.len()))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys order floats as `f32::total_cmp` does and give them back: signed zeros, infinities,
    /// subnormals, the extremes.
    #[test]
    fn keys_order_floats_as_total_cmp_and_give_them_back() {
        let mut values = vec![
            f32::NEG_INFINITY,
            f32::MIN,
            -1.5,
            -f32::MIN_POSITIVE,
            -1e-45,
            -0.0,
            0.0,
            1e-45,
            f32::MIN_POSITIVE,
            1.0,
            f32::MAX,
            f32::INFINITY,
        ];
        values.extend([0.1f32, 3.0, -7.25, 1e30, -1e-30]);
        for &a in &values {
            assert_eq!(value(key(a)).to_bits(), a.to_bits(), "{a}");
            for &b in &values {
                assert_eq!(key(a).cmp(&key(b)), a.total_cmp(&b), "{a} against {b}");
            }
            assert!(key(a) < u32::MAX, "{a}: below the padding");
        }
    }
}
