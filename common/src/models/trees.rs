//! XGBoost tree models compiled for fast, lock-free prediction.
//!
//! Training uses the real XGBoost library; its models are then read from XGBoost's own JSON model
//! format into flat node arrays that this module evaluates. XGBoost's C API costs about a
//! millisecond per single-row call for the fire ensemble (a matrix per call, a lock per booster),
//! while these arrays answer in microseconds, need no lock, and load in milliseconds. The rules
//! are XGBoost's: `value < threshold` goes left, a missing value (NaN) follows `default_left`,
//! leaves are summed in `f32` onto the base margin in tree order, then the objective's link.
//! `tests` check equality with XGBoost's own predictions.
//!
//! Traversal is branch-free: a leaf points to itself, so every row of a block takes exactly
//! `depth` steps through a tree, and the 256 rows of a block are stepped together, level by level.
//! The rows' steps are independent, so the CPU overlaps them instead of stalling on one
//! mispredicted branch per node (fire ensemble, 400 trees: 18 us per row walking one row at a
//! time, about 4.7 us per row this way then; 3.2 us on 50,000 rows on 2026-12-01). Blocks of 256
//! rows were 9 % faster than 64 on an 18,300-row payload (`examples/predict_bench.rs`).
//!
//! Where the CPU has AVX-512 (`trees/avx512.rs`, chosen at run time), a block's rows are walked
//! 16 per vector (1.23 us per row), and a few rows walk 64 trees at once, 8 per vector: the same
//! steps and sums. Where it has AVX-512 VBMI too (Ice Lake, Zen 4 and later), a model whose
//! features have at most 255 thresholds each (usual with XGBoost's `hist` method) is walked on
//! the rows' bin numbers, a byte each, looked up in registers rather than gathered
//! (`trees/bins.rs`; fire ensemble, Zen 4 host, one core, 50,000 rows: 72-75 ms against
//! 98-114); such a model keeps a 4-byte word per node beside its 8-byte node (and the node's
//! value too, 4 more bytes, in a tree of at most 128 nodes), and 1 KiB per feature. Where it
//! has AVX2 only (AMD before Zen 4, older Intel: `trees/avx2.rs`), a block's rows are walked
//! 8 per vector (on a Zen 3 host, one core, 50,000 rows: 171 ms against the portable walk's
//! 224, min of 8 interleaved runs); a few rows take the portable walk.
//!
//! In memory a node is 8 bytes (16 for models of 2,047 features or more, or trees of over a
//! million nodes): its threshold or leaf value, and one word packing the feature, the default
//! direction and the first child, the second child being next to it (trees are laid out
//! breadth-first). A leaf "splits" on a feature column that is
//! always missing and goes right to itself. Half the 20-byte layout files hold, so a multi-model
//! endpoint keeps twice as many models in the same memory, and prediction reads half the bytes.
//! Files keep the explicit layout (`Node`), converted on load and save.

use crate::error::{Error, Result};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod bins;

/// The vector instructions a block walk uses (the best this CPU has: [`TreeModel::vector_walk`]).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorWalk {
    /// [`VectorWalk::Avx512`] on the rows' bin numbers, looked up in registers rather than
    /// gathered (AVX-512 VBMI; models whose features have at most 255 thresholds each, blocks
    /// without missing values).
    Avx512Bins,
    /// 16 rows per vector; a few rows walk 64 trees at once.
    Avx512,
    /// 8 rows per vector; a few rows take the portable walk.
    Avx2,
}

#[cfg(target_arch = "x86_64")]
impl VectorWalk {
    /// Whether this CPU has the instructions.
    pub fn available(self) -> bool {
        match self {
            VectorWalk::Avx512Bins => avx512::bins_available(),
            VectorWalk::Avx512 => avx512::available(),
            VectorWalk::Avx2 => avx2::available(),
        }
    }
}

/// Whether models built from now on number their thresholds where the CPU takes
/// [`VectorWalk::Avx512Bins`] (on unless [`keep_models_small`] was called).
static NUMBER_THRESHOLDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Makes the models this process builds from now on hold no numbered thresholds (4 more bytes
/// a node, 1 KiB a feature), at the cost of the faster walk of large blocks: what a multi-model
/// endpoint wants, which holds as many models as memory allows and answers a few rows at a time.
pub fn keep_models_small() {
    NUMBER_THRESHOLDS.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`keep_models_small`] was called.
pub fn keeping_models_small() -> bool {
    !NUMBER_THRESHOLDS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Rows evaluated together per tree, so a tree's nodes stay in cache.
const BLOCK_ROWS: usize = 256;

/// Blocks of at most this many rows are walked a row at a time, many trees at once (fire
/// ensemble, hot cache: 1 row 6.5 us instead of 13.2, 2 rows 13.0 instead of 16.7; from 3 rows
/// on the block walk is as fast or faster).
const FEW_ROWS: usize = 2;

/// Trees walked at once for one row by the portable walk.
const PORTABLE_ROW_TREES: usize = 16;

/// Blocks of at most this many rows are walked a row at a time by the vector walk too (fire
/// ensemble: 16 rows 53.5 us a row at a time, 63.5 us as a block of 16 lanes whose steps wait
/// on one another; 24 rows 80.9 us against about 70).
const VECTOR_FEW_ROWS: usize = 16;

/// The output transformation of an objective. (Files store the variant's index: new ones go
/// last.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Link {
    /// `binary:logistic`, `reg:logistic`: sigmoid of the margin.
    Logistic,
    /// `reg:squarederror`, `binary:logitraw` and other identity-link objectives.
    Identity,
    /// `multi:softprob`: softmax over the groups.
    Softmax,
    /// `count:poisson`, `reg:gamma`, `reg:tweedie`: exponential of the margin.
    Exp,
    /// `binary:hinge`: 1 when the margin is positive, else 0.
    Hinge,
    /// `multi:softmax`: the index of the largest group margin (one output).
    ArgMax,
}

/// Converts a base score on the output scale to a margin.
pub type ToMargin = fn(f32) -> f32;

impl Link {
    /// The link and the base-score-to-margin conversion of an XGBoost objective (XGBoost saves
    /// `base_score` on the output scale), or `None` for objectives not served.
    pub fn of_objective(objective: &str) -> Option<(Link, ToMargin)> {
        let logit = |b: f32| -(1.0 / b - 1.0).ln();
        let same = |b: f32| b;
        let ln = |b: f32| b.ln();
        Some(match objective {
            "binary:logistic" | "reg:logistic" => (Link::Logistic, logit),
            "binary:logitraw" => (Link::Identity, same),
            "binary:hinge" => (Link::Hinge, same),
            "multi:softprob" => (Link::Softmax, same),
            "multi:softmax" => (Link::ArgMax, same),
            "count:poisson" | "reg:gamma" | "reg:tweedie" | "survival:cox" | "survival:aft" => {
                (Link::Exp, ln)
            }
            "reg:squarederror"
            | "reg:linear"
            | "reg:squaredlogerror"
            | "reg:pseudohubererror"
            | "reg:absoluteerror"
            | "rank:pairwise"
            | "rank:ndcg"
            | "rank:map" => (Link::Identity, same),
            _ => return None,
        })
    }

    /// Number of outputs per row for `groups` margins.
    pub fn outputs(self, groups: usize) -> usize {
        if self == Link::ArgMax {
            1
        } else {
            groups
        }
    }
}

/// One node as files store it: an internal split, or a leaf whose children are itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Node {
    /// Split threshold, or the leaf value.
    value: f32,
    feature: u32,
    left: u32,
    right: u32,
    default_left: bool,
}

/// One tree as files store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TreeData {
    nodes: Vec<Node>,
    /// Output group (class) the tree adds to.
    group: u32,
    /// Steps from the root to the deepest leaf.
    depth: u32,
}

/// A model as files store it (bincode); [`TreeModel`] converts from and to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TreeModelData {
    trees: Vec<TreeData>,
    base_margin: Vec<f32>,
    n_features: usize,
    link: Link,
}

/// A node in memory: `bits` is `feature | default_left << feature_bits | child << (feature_bits
/// + 1)`; the right child is `child + 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Packed<B> {
    value: f32,
    bits: B,
}

/// The level after `nodes[first..end]` in a compiled tree, as `(first, end)`: breadth-first, the
/// children of this level's splits come right after it (a leaf "splits" on `leaf_feature`).
#[cfg(target_arch = "x86_64")]
fn next_level(
    nodes: &[Packed<u32>],
    first: usize,
    end: usize,
    leaf_feature: usize,
) -> (usize, usize) {
    let splits = nodes[first..end]
        .iter()
        .filter(|n| n.bits.feature() != leaf_feature)
        .count();
    (end, end + 2 * splits)
}

/// A tree's nodes: 8-byte nodes when the feature and child indices fit 32 bits, else 16.
#[derive(Debug, Clone, PartialEq)]
enum Nodes {
    Narrow(Vec<Packed<u32>>),
    Wide(Vec<Packed<u64>>),
}

/// One regression tree, compiled.
#[derive(Debug, Clone, PartialEq)]
struct Tree {
    nodes: Nodes,
    group: u32,
    depth: u32,
    /// The categorical splits, for the (rare) trees that have any: walked by a slower path, so
    /// that numeric trees keep their one-comparison step.
    categories: Option<Box<CategorySets>>,
    /// Each node's cover (training hessian sum), in compiled order, when the file gave them:
    /// what explanations ([`TreeModel::contributions`]) need.
    covers: Option<Vec<f32>>,
}

/// What a file tells of a tree beyond its nodes: categorical splits and node covers (file order).
#[derive(Debug, Clone, Default)]
struct TreeExtras {
    splits: Vec<CategorySplit>,
    covers: Option<Vec<f32>>,
}

/// Largest category XGBoost takes (a value at or above it is no category: it goes left).
const MAX_CATEGORY: f32 = 16_777_216.0;

/// The categorical splits of one tree (XGBoost's `split_type` 1). XGBoost's rule: a missing
/// value follows the default direction; a value whose category (the value truncated to a whole
/// number) is in the node's set goes right; any other value, a negative one or one beyond
/// [`MAX_CATEGORY`] included, goes left.
#[derive(Debug, Clone, PartialEq)]
struct CategorySets {
    /// Per node, in compiled order: 1 + the index of its set in `sets`, or 0 (numeric split or leaf).
    set_of: Vec<u32>,
    /// Each categorical node's categories that go right, sorted.
    sets: Vec<Vec<u32>>,
}

impl CategorySets {
    /// Whether `v` goes left at node `i` (whose threshold and default direction are given).
    #[inline]
    fn goes_left(&self, i: usize, v: f32, threshold: f32, default_left: bool) -> bool {
        match self.set_of[i] {
            0 => (v < threshold) | (v.is_nan() & default_left),
            _ if v.is_nan() => default_left,
            _ if !(0.0..MAX_CATEGORY).contains(&v) => true,
            k => self.sets[k as usize - 1]
                .binary_search(&(v as u32))
                .is_err(),
        }
    }

    fn bytes(&self) -> usize {
        4 * self.set_of.len() + self.sets.iter().map(|s| 4 * s.len() + 24).sum::<usize>()
    }
}

/// A categorical split as read from a file: the node (file order) and its categories going right.
type CategorySplit = (u32, Vec<u32>);

/// A packed word's width, and where its fields sit: the feature in the low `FEATURE_BITS`, the
/// default direction above, the first child above that. Constant positions keep a step of the
/// walk to a few one-cycle instructions (shifts by a variable amount cost three on x86).
trait Width: Copy + Into<u64> {
    const FEATURE_BITS: u32;
    /// Largest child index that fits.
    const MAX_CHILD: u64;
    fn from_u64(bits: u64) -> Self;

    fn pack(feature: u64, default_left: bool, child: u64) -> Self {
        Self::from_u64(
            feature
                | u64::from(default_left) << Self::FEATURE_BITS
                | child << (Self::FEATURE_BITS + 1),
        )
    }
    fn feature(self) -> usize {
        (self.into() & ((1 << Self::FEATURE_BITS) - 1)) as usize
    }
    fn default_left(self) -> bool {
        (self.into() >> Self::FEATURE_BITS) & 1 == 1
    }
    fn child(self) -> usize {
        (self.into() >> (Self::FEATURE_BITS + 1)) as usize
    }
}

impl Width for u32 {
    /// Up to 2,047 features (the column `n_features` is the missing one).
    const FEATURE_BITS: u32 = 11;
    const MAX_CHILD: u64 = (1 << 20) - 1;
    fn from_u64(bits: u64) -> Self {
        bits as u32
    }
}

impl Width for u64 {
    /// Up to 16.7 million features.
    const FEATURE_BITS: u32 = 24;
    const MAX_CHILD: u64 = (1 << 39) - 1;
    fn from_u64(bits: u64) -> Self {
        bits
    }
}

/// Deepest tree [`TreeModel::contributions`] explains (its walk recurses once per level).
pub const MAX_EXPLAINED_DEPTH: usize = 256;

/// Most output groups (classes) a compiled model has.
const MAX_GROUPS: usize = 100_000;

/// Most features a compiled model takes.
const MAX_FEATURES: usize = (1 << <u64 as Width>::FEATURE_BITS) - 1;

impl Tree {
    /// Lays a checked file tree out breadth-first with sibling children, leaves splitting on
    /// the missing column `n_features`. A node reached twice (never written by XGBoost) is
    /// refused: copying shared subtrees could blow a small corrupt file up without bound.
    fn compile(
        t: &TreeData,
        n_features: usize,
        extras: &TreeExtras,
    ) -> std::result::Result<Self, String> {
        let splits = &extras.splits;
        let leaf = |i: usize| t.nodes[i].left as usize == i && t.nodes[i].right as usize == i;
        // old_of[new] = old index; children of each internal node get consecutive new indices.
        let mut old_of = vec![0usize];
        let mut new_of = vec![usize::MAX; t.nodes.len()];
        new_of[0] = 0;
        // Depth of each new node: the tree's depth is its deepest reachable leaf (nodes no path
        // reaches are dropped and count for nothing).
        let mut depth_of = vec![0u32];
        let mut k = 0;
        while k < old_of.len() {
            let old = old_of[k];
            if !leaf(old) {
                let n = &t.nodes[old];
                for child in [n.left as usize, n.right as usize] {
                    if new_of[child] != usize::MAX {
                        return Err(format!("node {child} is reached twice"));
                    }
                    new_of[child] = old_of.len();
                    old_of.push(child);
                    depth_of.push(depth_of[k] + 1);
                }
            }
            k += 1;
        }
        let depth = depth_of.iter().copied().max().unwrap_or(0);
        fn packed<B: Width>(
            t: &TreeData,
            old_of: &[usize],
            new_of: &[usize],
            n_features: usize,
            leaf: impl Fn(usize) -> bool,
        ) -> Vec<Packed<B>> {
            old_of
                .iter()
                .enumerate()
                .map(|(new, &old)| {
                    let n = &t.nodes[old];
                    let bits = if leaf(old) {
                        B::pack(n_features as u64, false, new.saturating_sub(1) as u64)
                    } else {
                        let child = new_of[n.left as usize] as u64;
                        B::pack(u64::from(n.feature), n.default_left, child)
                    };
                    Packed {
                        value: n.value,
                        bits,
                    }
                })
                .collect()
        }
        let narrow = n_features < (1 << <u32 as Width>::FEATURE_BITS)
            && old_of.len() as u64 <= <u32 as Width>::MAX_CHILD;
        let nodes = if narrow {
            Nodes::Narrow(packed(t, &old_of, &new_of, n_features, leaf))
        } else if n_features <= MAX_FEATURES && old_of.len() as u64 <= <u64 as Width>::MAX_CHILD {
            Nodes::Wide(packed(t, &old_of, &new_of, n_features, leaf))
        } else {
            return Err(format!(
                "{n_features} features or {} nodes in a tree are more than this build takes",
                old_of.len()
            ));
        };
        let categories = (!splits.is_empty()).then(|| {
            let mut sets = CategorySets {
                set_of: vec![0; old_of.len()],
                sets: Vec::with_capacity(splits.len()),
            };
            for (node, categories) in splits {
                // A node no path reaches was dropped.
                if let Some(&new) = new_of.get(*node as usize).filter(|&&n| n != usize::MAX) {
                    sets.sets.push(categories.clone());
                    sets.set_of[new] = sets.sets.len() as u32;
                }
            }
            Box::new(sets)
        });
        let covers = extras
            .covers
            .as_ref()
            .map(|c| old_of.iter().map(|&old| c[old]).collect());
        Ok(Self {
            nodes,
            group: t.group,
            depth,
            categories,
            covers,
        })
    }

    /// The file form: explicit children, leaves pointing to themselves.
    fn data(&self, n_features: usize) -> TreeData {
        fn nodes<B: Width>(packed: &[Packed<B>], n_features: usize) -> Vec<Node> {
            packed
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    if p.bits.feature() == n_features {
                        Node {
                            value: p.value,
                            feature: 0,
                            left: i as u32,
                            right: i as u32,
                            default_left: false,
                        }
                    } else {
                        let child = p.bits.child() as u32;
                        Node {
                            value: p.value,
                            feature: p.bits.feature() as u32,
                            left: child,
                            right: child + 1,
                            default_left: p.bits.default_left(),
                        }
                    }
                })
                .collect()
        }
        TreeData {
            nodes: match &self.nodes {
                Nodes::Narrow(n) => nodes(n, n_features),
                Nodes::Wide(n) => nodes(n, n_features),
            },
            group: self.group,
            depth: self.depth,
        }
    }

    /// Divides every leaf value by `divisor`.
    fn divide_leaves(&mut self, n_features: usize, divisor: f32) {
        fn divide<B: Width>(nodes: &mut [Packed<B>], n_features: usize, divisor: f32) {
            for n in nodes.iter_mut().filter(|n| n.bits.feature() == n_features) {
                n.value /= divisor;
            }
        }
        match &mut self.nodes {
            Nodes::Narrow(n) => divide(n, n_features, divisor),
            Nodes::Wide(n) => divide(n, n_features, divisor),
        }
    }

    /// Adds this tree's leaf value for each row of `rows` (rows of `stride` values whose last is
    /// the always-missing column) to `acc[k * acc_stride]`. `missing` says whether any other
    /// value in `rows` is NaN; without, each step is one comparison.
    #[inline]
    fn add_leaves(
        &self,
        rows: &[f32],
        stride: usize,
        acc: &mut [f32],
        acc_stride: usize,
        missing: bool,
    ) {
        if self.categories.is_some() {
            for (row, acc) in rows
                .chunks_exact(stride)
                .zip(acc.iter_mut().step_by(acc_stride))
            {
                *acc += self.leaf_value(self.leaf_of(row));
            }
            return;
        }
        match &self.nodes {
            Nodes::Narrow(n) => walk(n, self.depth, rows, stride, acc, acc_stride, missing),
            Nodes::Wide(n) => walk(n, self.depth, rows, stride, acc, acc_stride, missing),
        }
    }

    /// The next node of a row at node `i`.
    #[inline]
    fn step(&self, i: u32, row: &[f32]) -> u32 {
        fn categorical<B: Width>(n: &[Packed<B>], c: &CategorySets, i: u32, row: &[f32]) -> u32 {
            let node = n[i as usize];
            let v = row[node.bits.feature()];
            let left = c.goes_left(i as usize, v, node.value, node.bits.default_left());
            node.bits.child() as u32 + u32::from(!left)
        }
        match (&self.nodes, &self.categories) {
            (Nodes::Narrow(n), None) => step(n, i, row),
            (Nodes::Wide(n), None) => step(n, i, row),
            (Nodes::Narrow(n), Some(c)) => categorical(n, c, i, row),
            (Nodes::Wide(n), Some(c)) => categorical(n, c, i, row),
        }
    }

    /// The leaf one row ends in.
    fn leaf_of(&self, row: &[f32]) -> u32 {
        (0..self.depth).fold(0, |i, _| self.step(i, row))
    }

    /// Node `i`: its threshold or leaf value, feature, default direction and first child.
    fn node(&self, i: usize) -> (f32, usize, bool, usize) {
        fn parts<B: Width>(p: Packed<B>) -> (f32, usize, bool, usize) {
            (
                p.value,
                p.bits.feature(),
                p.bits.default_left(),
                p.bits.child(),
            )
        }
        match &self.nodes {
            Nodes::Narrow(n) => parts(n[i]),
            Nodes::Wide(n) => parts(n[i]),
        }
    }

    /// The 8-byte nodes, which every tree of a model the vector walks take has
    /// ([`TreeModel::can_walk`] checks it).
    #[cfg(target_arch = "x86_64")]
    fn narrow_nodes(&self) -> &[Packed<u32>] {
        match &self.nodes {
            Nodes::Narrow(n) => n,
            Nodes::Wide(_) => unreachable!("the vector walks take 8-byte nodes only"),
        }
    }

    fn leaf_value(&self, i: u32) -> f32 {
        match &self.nodes {
            Nodes::Narrow(n) => n[i as usize].value,
            Nodes::Wide(n) => n[i as usize].value,
        }
    }
}

/// One step of one row down a tree from node `i`.
#[inline(always)]
fn step<B: Width>(nodes: &[Packed<B>], i: u32, row: &[f32]) -> u32 {
    let node = nodes[i as usize];
    let v = row[node.bits.feature()];
    let left = (v < node.value) | (v.is_nan() & node.bits.default_left());
    node.bits.child() as u32 + u32::from(!left)
}

/// [`Tree::add_leaves`] for one node width.
#[inline]
fn walk<B: Width>(
    nodes: &[Packed<B>],
    depth: u32,
    rows: &[f32],
    stride: usize,
    acc: &mut [f32],
    acc_stride: usize,
    missing: bool,
) {
    let count = rows.len() / stride;
    let mut at = [0u32; BLOCK_ROWS];
    let at = &mut at[..count];
    for _ in 0..depth {
        if missing {
            for (i, row) in at.iter_mut().zip(rows.chunks_exact(stride)) {
                let node = nodes[*i as usize];
                let v = row[node.bits.feature()];
                let left = (v < node.value) | (v.is_nan() & node.bits.default_left());
                *i = node.bits.child() as u32 + u32::from(!left);
            }
        } else {
            // The missing column is NaN, so a leaf still goes right, to itself.
            for (i, row) in at.iter_mut().zip(rows.chunks_exact(stride)) {
                let node = nodes[*i as usize];
                let left = row[node.bits.feature()] < node.value;
                *i = node.bits.child() as u32 + u32::from(!left);
            }
        }
    }
    for (k, &i) in at.iter().enumerate() {
        acc[k * acc_stride] += nodes[i as usize].value;
    }
}

/// A compiled tree as TreeSHAP walks it (only trees with covers are walked).
impl super::shap::ShapTree for Tree {
    fn is_leaf(&self, i: usize) -> bool {
        // A leaf's first child is before it (it goes right, to itself); the root leaf's is 0.
        self.node(i).3 <= i
    }
    fn leaf_value(&self, i: usize) -> f32 {
        self.node(i).0
    }
    fn feature(&self, i: usize) -> usize {
        self.node(i).1
    }
    fn children(&self, i: usize) -> (usize, usize) {
        let child = self.node(i).3;
        (child, child + 1)
    }
    fn goes_left(&self, i: usize, row: &[f32]) -> bool {
        let (threshold, feature, default_left, _) = self.node(i);
        let v = row[feature];
        match &self.categories {
            Some(c) => c.goes_left(i, v, threshold, default_left),
            None => (v < threshold) | (v.is_nan() & default_left),
        }
    }
    fn cover(&self, i: usize) -> f32 {
        self.covers.as_ref().map_or(0.0, |c| c[i])
    }
}

/// A compiled XGBoost gradient-boosted tree model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "TreeModelData")]
pub struct TreeModel {
    trees: Vec<Tree>,
    /// Base margin per output group.
    base_margin: Vec<f32>,
    /// Number of input features.
    pub n_features: usize,
    /// The objective's link.
    pub link: Link,
    /// Every tree numeric with 8-byte nodes: what the vector walks take.
    narrow_numeric: bool,
    /// The thresholds numbered, where the model and this CPU take [`VectorWalk::Avx512Bins`].
    #[cfg(target_arch = "x86_64")]
    bins: Option<bins::Bins>,
}

impl TryFrom<TreeModelData> for TreeModel {
    type Error = String;
    /// Checks every tree (children in range and forward, features in range, depth right, group
    /// in range: a file may hold anything) and compiles it.
    fn try_from(d: TreeModelData) -> std::result::Result<Self, String> {
        Self::compile(d, Vec::new())
    }
}

impl TreeModel {
    /// Checks and compiles file trees; `extras[t]` is what the file told of tree `t` beyond its
    /// nodes (nothing when `extras` is shorter).
    fn compile(d: TreeModelData, extras: Vec<TreeExtras>) -> std::result::Result<Self, String> {
        if d.n_features > MAX_FEATURES {
            return Err(format!(
                "{} features are more than this build takes",
                d.n_features
            ));
        }
        let mut trees = Vec::with_capacity(d.trees.len());
        for t in &d.trees {
            if check_tree(&t.nodes, d.n_features)? != t.depth {
                return Err("wrong depth".into());
            }
            if t.group as usize >= d.base_margin.len().max(1) {
                return Err("tree group out of range".into());
            }
            let none = TreeExtras::default();
            let extra = extras.get(trees.len()).unwrap_or(&none);
            trees.push(Tree::compile(t, d.n_features, extra)?);
        }
        if d.base_margin.is_empty() {
            return Err("no output groups".into());
        }
        Ok(Self::new(trees, d.base_margin, d.n_features, d.link))
    }

    fn new(trees: Vec<Tree>, base_margin: Vec<f32>, n_features: usize, link: Link) -> Self {
        let narrow_numeric = trees
            .iter()
            .all(|t| matches!(t.nodes, Nodes::Narrow(_)) && t.categories.is_none());
        let mut model = Self {
            trees,
            base_margin,
            n_features,
            link,
            narrow_numeric,
            #[cfg(target_arch = "x86_64")]
            bins: None,
        };
        model.number_thresholds();
        model
    }

    /// Numbers the thresholds ([`VectorWalk::Avx512Bins`]) if this CPU and model take it.
    fn number_thresholds(&mut self) {
        #[cfg(target_arch = "x86_64")]
        {
            self.bins = None;
            if !keeping_models_small() && self.narrow_numeric && VectorWalk::Avx512Bins.available()
            {
                let nodes: Vec<&[Packed<u32>]> =
                    self.trees.iter().map(Tree::narrow_nodes).collect();
                self.bins = bins::Bins::new(&nodes, self.n_features);
            }
        }
    }
}

/// The file form. Categorical splits have none: such models are kept in XGBoost's own format
/// (they come from XGBoost model files), and writing one here is an error, never a silent loss.
impl Serialize for TreeModel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.trees.iter().any(|t| t.categories.is_some()) {
            return Err(serde::ser::Error::custom(
                "a model with categorical splits is kept in XGBoost's format, not compiled trees",
            ));
        }
        TreeModelData {
            trees: self.trees.iter().map(|t| t.data(self.n_features)).collect(),
            base_margin: self.base_margin.clone(),
            n_features: self.n_features,
            link: self.link,
        }
        .serialize(s)
    }
}

impl TreeModel {
    /// Number of output groups (1, or the number of classes).
    pub fn n_groups(&self) -> usize {
        self.base_margin.len()
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Keeps the first `per_group` boosting rounds' trees (`per_group` trees per output group), as
    /// XGBoost 1.x's `ntree_limit` does; 0 keeps all.
    pub fn keep_first(&mut self, per_group: usize) {
        if per_group > 0 {
            self.trees.truncate(per_group * self.n_groups());
            // As a model read with these trees only is.
            self.number_thresholds();
        }
    }

    /// Forgets the node covers (what [`TreeModel::contributions`] needs), as the compiled-trees
    /// file form does not keep them: a model then equals itself written and read back.
    pub fn drop_covers(&mut self) {
        for t in &mut self.trees {
            t.covers = None;
        }
    }

    /// Bytes the compiled trees hold.
    pub fn memory_bytes(&self) -> usize {
        let nodes = |t: &Tree| match &t.nodes {
            Nodes::Narrow(n) => std::mem::size_of_val(n.as_slice()),
            Nodes::Wide(n) => std::mem::size_of_val(n.as_slice()),
        };
        let trees: usize = self
            .trees
            .iter()
            .map(|t| {
                nodes(t)
                    + std::mem::size_of::<Tree>()
                    + t.categories.as_ref().map_or(0, |c| c.bytes())
                    + t.covers.as_ref().map_or(0, |c| 4 * c.len())
            })
            .sum();
        #[cfg(target_arch = "x86_64")]
        let trees = trees + self.bins.as_ref().map_or(0, |b| b.bytes());
        trees + 4 * self.base_margin.len()
    }

    /// Raw margins, one row per input row, one column per group.
    pub fn predict_margin(&self, x: ArrayView2<f32>) -> Array2<f32> {
        #[cfg(target_arch = "x86_64")]
        if let Some(walk) = self.vector_walk() {
            return self.predict_margin_vector(x, walk);
        }
        self.predict_margin_portable(x)
    }

    /// Margins, row by row: every row starts at the base margins, and `walk` adds the leaves of
    /// a block of at most [`BLOCK_ROWS`] rows at a time to the block's accumulators (`n_groups`
    /// per row, rows in order).
    fn by_blocks(
        &self,
        x: ArrayView2<f32>,
        mut walk: impl FnMut(ArrayView2<f32>, &mut [f32]),
    ) -> Array2<f32> {
        let (rows, groups) = (x.nrows(), self.n_groups());
        let mut out = Array2::from_shape_fn((rows, groups), |(_, g)| self.base_margin[g]);
        let acc = out
            .as_slice_mut()
            .expect("a new array is in standard layout");
        for start in (0..rows).step_by(BLOCK_ROWS) {
            let end = (start + BLOCK_ROWS).min(rows);
            walk(
                x.slice(ndarray::s![start..end, ..]),
                &mut acc[start * groups..end * groups],
            );
        }
        out
    }

    /// [`Self::predict_margin`] without vector instructions, whatever the CPU (what other CPUs
    /// run; for comparisons in tests and benchmarks).
    pub fn predict_margin_portable(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let groups = self.n_groups();
        // Rows copied into one block with the always-missing column after each.
        let stride = self.n_features + 1;
        let mut buf = Vec::with_capacity(BLOCK_ROWS.min(x.nrows()) * stride);
        self.by_blocks(x, |block, acc| {
            buf.clear();
            let mut missing = false;
            for row in block.rows() {
                for &v in row {
                    missing |= v.is_nan();
                    buf.push(v);
                }
                buf.push(f32::NAN);
            }
            if block.nrows() <= FEW_ROWS {
                for (row, acc) in buf.chunks_exact(stride).zip(acc.chunks_exact_mut(groups)) {
                    self.add_row(row, acc);
                }
            } else {
                for tree in &self.trees {
                    let acc = &mut acc[tree.group as usize..];
                    tree.add_leaves(&buf, stride, acc, groups, missing);
                }
            }
        })
    }

    /// The vector walk [`Self::predict_margin`] takes here, if any: the first of
    /// [`VectorWalk::Avx512Bins`], [`VectorWalk::Avx512`] and [`VectorWalk::Avx2`] that
    /// [`Self::can_walk`].
    #[cfg(target_arch = "x86_64")]
    pub fn vector_walk(&self) -> Option<VectorWalk> {
        [VectorWalk::Avx512Bins, VectorWalk::Avx512, VectorWalk::Avx2]
            .into_iter()
            .find(|&w| self.can_walk(w))
    }

    /// Whether [`Self::predict_margin_vector`] takes `walk` for this model here: every tree is
    /// numeric with 8-byte nodes, the CPU has the instructions, and for
    /// [`VectorWalk::Avx512Bins`] the thresholds are numbered.
    #[cfg(target_arch = "x86_64")]
    pub fn can_walk(&self, walk: VectorWalk) -> bool {
        self.narrow_numeric
            && walk.available()
            && (walk != VectorWalk::Avx512Bins || self.bins.is_some())
    }

    /// [`Self::predict_margin`] with the vector walk `walk` (which this CPU must have, for a
    /// model that [`Self::vector_walk`] walks): blocks copied column-major; blocks of a few rows
    /// a row at a time.
    #[cfg(target_arch = "x86_64")]
    pub fn predict_margin_vector(&self, x: ArrayView2<f32>, walk: VectorWalk) -> Array2<f32> {
        assert!(self.can_walk(walk), "{walk:?} cannot walk this model here");
        let groups = self.n_groups();
        // Columns a narrower input lacks are missing, as is the last (where leaves point).
        let width = x.ncols().min(self.n_features);
        // Made for the first block walked as a block (a request of a few rows needs none).
        let mut columns = Vec::new();
        type BlockWalk = unsafe fn(&[Packed<u32>], u32, &[f32], usize, &mut [f32], bool);
        let walk_block: BlockWalk = match walk {
            VectorWalk::Avx512Bins | VectorWalk::Avx512 => avx512::walk,
            VectorWalk::Avx2 => avx2::walk,
        };
        // The block's bin numbers, for the bins walk (made with `columns`).
        let bins = self
            .bins
            .as_ref()
            .filter(|_| walk == VectorWalk::Avx512Bins);
        let mut numbers = Vec::new();
        // A block's sums group by group, for models of several outputs: the walks add a vector
        // of 16 rows' leaves at once to contiguous sums, where rows' sums of several groups
        // (interleaved) take 16 scalar additions.
        let mut by_group = Vec::new();
        self.by_blocks(x, |block, acc| {
            if walk != VectorWalk::Avx2 && block.nrows() <= VECTOR_FEW_ROWS {
                return self.walk_rows_avx512(block, acc);
            }
            if block.nrows() <= FEW_ROWS {
                return self.add_rows(block, acc);
            }
            if columns.is_empty() {
                columns = vec![0f32; (self.n_features + 1) * BLOCK_ROWS];
                columns[width * BLOCK_ROWS..].fill(f32::NAN);
                if bins.is_some() {
                    let group = avx512::group_bytes(self.n_features + 1);
                    numbers = vec![0u8; BLOCK_ROWS / 16 * group];
                }
            }
            let mut missing = width < self.n_features;
            for (k, row) in block.rows().into_iter().enumerate() {
                for (f, &v) in row.iter().take(width).enumerate() {
                    missing |= v.is_nan();
                    columns[f * BLOCK_ROWS + k] = v;
                }
            }
            let sums = if groups == 1 {
                &mut *acc
            } else {
                by_group.resize(groups * BLOCK_ROWS, 0.0);
                for (r, row) in acc.chunks_exact(groups).enumerate() {
                    for (g, &v) in row.iter().enumerate() {
                        by_group[g * BLOCK_ROWS + r] = v;
                    }
                }
                &mut by_group[..]
            };
            if let Some(bins) = bins.filter(|_| !missing) {
                self.walk_bins(bins, &columns, &mut numbers, block.nrows(), sums);
            } else {
                for tree in &self.trees {
                    let sums = &mut sums[tree.group as usize * BLOCK_ROWS..];
                    // SAFETY: checked above: the CPU has the instructions; compiled trees keep
                    // every child index in the tree and every feature at most `n_features`,
                    // the last column.
                    #[allow(unsafe_code)]
                    unsafe {
                        walk_block(
                            tree.narrow_nodes(),
                            tree.depth,
                            &columns,
                            block.nrows(),
                            sums,
                            missing,
                        )
                    };
                }
            }
            if groups > 1 {
                for (r, row) in acc.chunks_exact_mut(groups).enumerate() {
                    for (g, v) in row.iter_mut().enumerate() {
                        *v = by_group[g * BLOCK_ROWS + r];
                    }
                }
            }
        })
    }

    /// Adds the leaves of a block's `count` rows (in `columns`, none missing) to their sums
    /// (`sums`, group by group, [`BLOCK_ROWS`] a group): the block's bin numbers written to
    /// `numbers`, then each tree walked on them.
    #[cfg(target_arch = "x86_64")]
    fn walk_bins(
        &self,
        bins: &bins::Bins,
        columns: &[f32],
        numbers: &mut [u8],
        count: usize,
        sums: &mut [f32],
    ) {
        // SAFETY: `can_walk` checked the CPU; `bins` numbers this model's thresholds
        // (`Bins::new` checked it has few enough features), `columns` and `numbers` are sized
        // for them; compiled trees keep every child in the tree, every feature at most
        // `n_features`.
        #[allow(unsafe_code)]
        unsafe {
            avx512::quantize(columns, &bins.cuts, &bins.counts, count, numbers);
            assert_eq!(self.trees.len(), bins.trees.len());
            for (tree, numbered) in self.trees.iter().zip(&bins.trees) {
                let sums = &mut sums[tree.group as usize * BLOCK_ROWS..];
                avx512::walk_bins(
                    numbered,
                    tree.narrow_nodes(),
                    self.n_features,
                    tree.depth,
                    numbers,
                    count,
                    sums,
                );
            }
        }
    }

    /// Adds the leaves of a few rows to their accumulators (`acc`, `n_groups` per row): each row
    /// walks [`avx512::ROW_TREES`] trees at once; leaves are added in tree order.
    #[cfg(target_arch = "x86_64")]
    fn walk_rows_avx512(&self, x: ArrayView2<f32>, acc: &mut [f32]) {
        // The row with its missing column (where leaves point), as the walk indexes it.
        let mut row = vec![f32::NAN; self.n_features + 1];
        let mut trees = Vec::with_capacity(avx512::ROW_TREES);
        for (r, acc) in x
            .rows()
            .into_iter()
            .zip(acc.chunks_exact_mut(self.n_groups()))
        {
            let width = r.len().min(self.n_features);
            for (slot, &v) in row.iter_mut().zip(r.iter().take(width)) {
                *slot = v;
            }
            let missing = width < self.n_features || r.iter().any(|v| v.is_nan());
            for chunk in self.trees.chunks(avx512::ROW_TREES) {
                trees.clear();
                trees.extend(
                    chunk
                        .iter()
                        .map(|t| (t.narrow_nodes().as_ptr() as u64, t.depth)),
                );
                // SAFETY: `predict_margin_vector` checked AVX-512F; the addresses are of this
                // model's compiled trees (children inside each, features at most `n_features`).
                #[allow(unsafe_code)]
                let leaves = unsafe { avx512::walk_trees(&trees, &row, missing) };
                for (t, leaf) in chunk.iter().zip(leaves) {
                    acc[t.group as usize] += leaf;
                }
            }
        }
    }

    /// Adds the leaves of a few rows to their accumulators (`acc`, `n_groups` per row) by
    /// [`Self::add_row`].
    #[cfg(target_arch = "x86_64")]
    fn add_rows(&self, x: ArrayView2<f32>, acc: &mut [f32]) {
        // The row with its missing column; columns a narrower input lacks are missing too.
        let mut row = vec![f32::NAN; self.n_features + 1];
        for (r, acc) in x
            .rows()
            .into_iter()
            .zip(acc.chunks_exact_mut(self.n_groups()))
        {
            for (slot, &v) in row.iter_mut().zip(r.iter().take(self.n_features)) {
                *slot = v;
            }
            self.add_row(&row, acc);
        }
    }

    /// Adds every tree's leaf for one row (with its missing column) to `acc` (one per group),
    /// walking [`PORTABLE_ROW_TREES`] trees at once: their steps are independent, so their
    /// memory loads overlap instead of waiting one after another. Leaves are still added in tree
    /// order.
    fn add_row(&self, row: &[f32], acc: &mut [f32]) {
        for chunk in self.trees.chunks(PORTABLE_ROW_TREES) {
            let mut at = [0u32; PORTABLE_ROW_TREES];
            let depth = chunk.iter().map(|t| t.depth).max().unwrap_or(0);
            // Numeric trees keep a step of one comparison (the check is hoisted out of the loop).
            let categorical = chunk.iter().any(|t| t.categories.is_some());
            // Each tree takes its own depth in steps (a root that is a leaf takes none).
            for level in 0..depth {
                for (i, t) in at.iter_mut().zip(chunk) {
                    if level < t.depth {
                        *i = match &t.nodes {
                            _ if categorical => t.step(*i, row),
                            Nodes::Narrow(n) => step(n, *i, row),
                            Nodes::Wide(n) => step(n, *i, row),
                        };
                    }
                }
            }
            for (&i, t) in at.iter().zip(chunk) {
                acc[t.group as usize] += t.leaf_value(i);
            }
        }
    }

    /// Whether [`TreeModel::contributions`] can explain this model: every tree has usable node
    /// covers (the file gave them, and every internal node's is positive) and is at most
    /// [`MAX_EXPLAINED_DEPTH`] deep (the walk is recursive); else why not.
    pub fn can_explain(&self) -> std::result::Result<(), String> {
        if self.trees.iter().any(|t| t.covers.is_none()) {
            return Err("the model file holds no usable node covers (sum_hessian), which contributions need".into());
        }
        match self.trees.iter().map(|t| t.depth).max() {
            Some(d) if d as usize > MAX_EXPLAINED_DEPTH => Err(format!(
                "a tree is {d} levels deep; contributions are computed for trees of at most {MAX_EXPLAINED_DEPTH}"
            )),
            _ => Ok(()),
        }
    }

    /// Values [`TreeModel::contributions`] gives per row: `n_features + 1` per output group.
    pub fn contributions_per_row(&self) -> usize {
        self.n_groups() * (self.n_features + 1)
    }

    /// Each feature's contribution to each row's margin, and the bias, as XGBoost's
    /// `pred_contribs` computes them (exact TreeSHAP, `models::shap`): per row and output group
    /// `n_features + 1` values, the features in model order and the bias last, summing to the
    /// group's margin. An error when [`TreeModel::can_explain`] says so.
    pub fn contributions(&self, x: ArrayView2<f32>) -> std::result::Result<Array2<f32>, String> {
        self.can_explain()?;
        let (n, groups) = (self.n_features, self.n_groups());
        let width = n + 1;
        let means: Vec<f32> = self
            .trees
            .iter()
            .map(|t| super::shap::mean_value(t, 0))
            .collect();
        // The columns a tree can touch: its split features and the bias (a wide model's rows
        // are not swept once per tree).
        let touched: Vec<Vec<usize>> = self
            .trees
            .iter()
            .map(|t| {
                use super::shap::ShapTree;
                let nodes = t.covers.as_ref().map_or(0, Vec::len);
                let mut f: Vec<usize> = (0..nodes)
                    .filter(|&i| !t.is_leaf(i))
                    .map(|i| t.feature(i))
                    .collect();
                f.push(n);
                f.sort_unstable();
                f.dedup();
                f
            })
            .collect();
        let mut out = Array2::<f32>::zeros((x.nrows(), groups * width));
        let mut explainer = super::shap::Explainer::default();
        let (mut row, mut tree_phi) = (vec![0f32; n], vec![0f32; width]);
        for (r, input) in x.rows().into_iter().enumerate() {
            for (to, from) in row.iter_mut().zip(input) {
                *to = *from;
            }
            let mut phi = out.row_mut(r);
            let phi = phi.as_slice_mut().expect("a standard-layout row");
            // Per tree into a zeroed buffer, then added, and the base margin last: XGBoost's order.
            for ((t, mean), columns) in self.trees.iter().zip(&means).zip(&touched) {
                tree_phi[n] += mean;
                explainer.add(t, &row, &mut tree_phi, t.depth as usize);
                let g = t.group as usize * width;
                for &c in columns {
                    phi[g + c] += tree_phi[c];
                    tree_phi[c] = 0.0;
                }
            }
            for g in 0..groups {
                phi[g * width + n] += self.base_margin[g];
            }
        }
        Ok(out)
    }

    /// Predictions after the link: probabilities (class 1 for logistic; every class for softmax)
    /// or values.
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut m = self.predict_margin(x);
        match self.link {
            Link::Identity => {}
            Link::Logistic => m.mapv_inplace(sigmoid),
            Link::Exp => m.mapv_inplace(f32::exp),
            Link::Hinge => m.mapv_inplace(|v| if v > 0.0 { 1.0 } else { 0.0 }),
            Link::Softmax => {
                for mut row in m.rows_mut() {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    row.mapv_inplace(|v| (v - max).exp());
                    let sum: f32 = row.sum();
                    row.mapv_inplace(|v| v / sum);
                }
            }
            Link::ArgMax => {
                let classes = m.rows().into_iter().map(|row| {
                    // The first of equal maxima, as XGBoost.
                    let mut best = 0;
                    for (k, &v) in row.iter().enumerate() {
                        if v > row[best] {
                            best = k;
                        }
                    }
                    best as f32
                });
                return Array2::from_shape_vec((m.nrows(), 1), classes.collect())
                    .expect("one class per row");
            }
        }
        m
    }

    /// Compiles an XGBoost model saved in its JSON format (`save_buffer(false)`).
    pub fn from_xgboost_json(bytes: &[u8]) -> Result<Self> {
        XgboostJson::parse(bytes)?.compile()
    }

    /// One model from XGBoost model files (JSON or UBJSON) whose margins are averaged, as a
    /// forest's parts are ([`TreeModel::average`]; one file is itself), node covers kept.
    pub fn from_xgboost_files<B: AsRef<[u8]>>(files: &[B]) -> Result<Self> {
        let parts = files
            .iter()
            .map(|bytes| {
                super::ubjson::from_json_or_ubjson::<XgboostJson>(bytes.as_ref())
                    .map_err(|e| Error::Artifact(format!("XGBoost model: {e}")))?
                    .compile()
            })
            .collect::<Result<Vec<_>>>()?;
        Self::average(&parts)
    }

    /// One model whose margin is the mean of the `parts`' margins (the parts of a forest):
    /// the trees of all parts with leaves divided by the number of parts, the mean base margin.
    pub fn average(parts: &[TreeModel]) -> Result<Self> {
        let first = parts
            .first()
            .ok_or_else(|| Error::Artifact("no tree models to average".into()))?;
        if parts.iter().any(|p| {
            p.n_features != first.n_features
                || p.link != first.link
                || p.n_groups() != first.n_groups()
        }) {
            return Err(Error::Artifact(
                "tree model parts do not share features, link and groups".into(),
            ));
        }
        let k = parts.len() as f32;
        let base_margin = (0..first.n_groups())
            .map(|g| parts.iter().map(|p| p.base_margin[g]).sum::<f32>() / k)
            .collect();
        let trees = parts
            .iter()
            .flat_map(|p| p.trees.iter())
            .map(|t| {
                let mut t = t.clone();
                t.divide_leaves(first.n_features, k);
                t
            })
            .collect();
        Ok(Self::new(trees, base_margin, first.n_features, first.link))
    }

    /// One model walking the trees of several one-output `models` in one pass, model `i`'s into
    /// output `i` (so each block of rows is copied and numbered once, not once per model); each
    /// output is the same bits as its model's own. `None` where that would not pay: models of
    /// other shapes, or thresholds that together no longer fit the walk on bin numbers where
    /// each model's own did.
    pub fn side_by_side(models: &[&TreeModel]) -> Option<Self> {
        let first = models.first()?;
        let alike = models
            .iter()
            .all(|m| m.n_groups() == 1 && m.n_features == first.n_features && m.link == first.link);
        if !alike || matches!(first.link, Link::Softmax | Link::ArgMax) {
            return None;
        }
        let trees = models
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                m.trees.iter().map(move |t| Tree {
                    group: i as u32,
                    ..t.clone()
                })
            })
            .collect();
        let base_margin = models.iter().map(|m| m.base_margin[0]).collect();
        let together = Self::new(trees, base_margin, first.n_features, first.link);
        #[cfg(target_arch = "x86_64")]
        if models.iter().all(|m| m.can_walk(VectorWalk::Avx512Bins))
            && !together.can_walk(VectorWalk::Avx512Bins)
        {
            return None;
        }
        Some(together)
    }

    /// Encodes with bincode.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| Error::Artifact(format!("encoding trees: {e}")))
    }

    /// Decodes a model written by [`TreeModel::to_bytes`] and checks it is well-formed and takes
    /// `n_features` inputs ([`TreeModel::check`]).
    pub fn from_bytes(bytes: &[u8], n_features: usize) -> Result<Self> {
        let (m, _): (Self, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map_err(|e| Error::Artifact(format!("compiled tree model is corrupt: {e}")))?;
        m.check(n_features)
            .map_err(|e| Error::Artifact(format!("compiled tree model is corrupt: {e}")))?;
        Ok(m)
    }

    /// Checks that a decoded model takes `n_features` inputs (decoding itself checked that every
    /// node's children and feature are in range, depths are right, and every tree adds to an
    /// output the model has: a model read from disk may be anything).
    pub fn check(&self, n_features: usize) -> std::result::Result<(), String> {
        if self.n_features != n_features {
            return Err(format!(
                "it takes {} features, the model directory names {n_features}",
                self.n_features
            ));
        }
        Ok(())
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// An XGBoost model in XGBoost's JSON format, read straight into typed fields (the JSON of a
/// 1,000-tree model is read in a third of the time a generic document tree takes).
#[derive(Deserialize)]
pub struct XgboostJson {
    learner: JsonLearner,
}

#[derive(Deserialize)]
struct JsonLearner {
    objective: JsonObjective,
    learner_model_param: JsonParam,
    gradient_booster: JsonBooster,
    #[serde(default)]
    feature_names: Vec<String>,
}

#[derive(Deserialize)]
struct JsonObjective {
    name: String,
}

#[derive(Deserialize)]
struct JsonParam {
    num_feature: String,
    #[serde(default)]
    num_class: Option<String>,
    base_score: String,
}

#[derive(Deserialize)]
struct JsonBooster {
    model: Option<JsonGbtree>,
}

#[derive(Deserialize)]
struct JsonGbtree {
    trees: Vec<JsonTree>,
    tree_info: Vec<u32>,
}

/// One tree's arrays, as XGBoost's JSON holds them (a leaf's children are -1).
#[derive(Deserialize)]
pub(crate) struct JsonTree {
    pub(crate) left_children: Vec<i64>,
    pub(crate) right_children: Vec<i64>,
    pub(crate) split_indices: Vec<i64>,
    pub(crate) default_left: Vec<IntOrBool>,
    pub(crate) split_conditions: Vec<f64>,
    #[serde(default)]
    pub(crate) split_type: Vec<i64>,
    #[serde(default)]
    pub(crate) categories: Vec<i64>,
    #[serde(default)]
    pub(crate) categories_nodes: Vec<i64>,
    #[serde(default)]
    pub(crate) categories_segments: Vec<i64>,
    #[serde(default)]
    pub(crate) categories_sizes: Vec<i64>,
    /// Each node's cover (the training rows' hessian sum), for explanations.
    #[serde(default)]
    pub(crate) sum_hessian: Vec<f64>,
}

/// `default_left` is written as 0/1 by current XGBoost, as booleans by some older versions.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
pub(crate) enum IntOrBool {
    Int(i64),
    Bool(bool),
}

impl XgboostJson {
    /// Reads the JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Artifact(format!("XGBoost model JSON: {e}")))
    }

    /// A gbtree model from its parts (what XGBoost 1.x binary files hold); `base_score` on the
    /// output scale.
    pub(crate) fn from_parts(
        objective: String,
        num_feature: usize,
        num_class: usize,
        base_score: f32,
        trees: Vec<JsonTree>,
        tree_info: Vec<u32>,
    ) -> Self {
        Self {
            learner: JsonLearner {
                objective: JsonObjective { name: objective },
                learner_model_param: JsonParam {
                    num_feature: num_feature.to_string(),
                    num_class: Some(num_class.to_string()),
                    base_score: base_score.to_string(),
                },
                gradient_booster: JsonBooster {
                    model: Some(JsonGbtree { trees, tree_info }),
                },
                feature_names: Vec::new(),
            },
        }
    }

    /// The objective's name.
    pub fn objective(&self) -> &str {
        &self.learner.objective.name
    }

    /// Number of classes (0 unless multi-class).
    pub fn num_class(&self) -> usize {
        self.learner
            .learner_model_param
            .num_class
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The feature names the model was trained with, if any.
    pub fn feature_names(&self) -> &[String] {
        &self.learner.feature_names
    }

    /// The compiled trees.
    pub fn compile(self) -> Result<TreeModel> {
        let bad = |m: &str| Error::Artifact(format!("XGBoost model JSON: {m}"));
        let objective = self.objective().to_owned();
        let (link, to_margin) = Link::of_objective(&objective)
            .ok_or_else(|| bad(&format!("objective '{objective}' is not supported")))?;
        let param = &self.learner.learner_model_param;
        let n_features: usize = param
            .num_feature
            .parse()
            .map_err(|_| bad("num_feature is not a whole number"))?;
        let groups = self.num_class().max(1);
        if groups > MAX_GROUPS || n_features == 0 || n_features > MAX_FEATURES {
            return Err(bad(&format!(
                "{n_features} features and {groups} classes are beyond what this build takes"
            )));
        }
        let base: Vec<f32> = param
            .base_score
            .trim_matches(['[', ']'])
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<f32>()
                    .map_err(|_| bad("base_score is not a number"))
            })
            .collect::<Result<_>>()?;
        let base_margin: Vec<f32> = (0..groups)
            .map(|g| to_margin(base.get(g).or(base.first()).copied().unwrap_or(0.5)))
            .collect();
        let model = self
            .learner
            .gradient_booster
            .model
            .ok_or_else(|| bad("no trees (only gbtree boosters are supported)"))?;
        if model.tree_info.len() != model.trees.len() {
            return Err(bad("tree_info and trees differ in length"));
        }
        let (trees, extras): (Vec<TreeData>, Vec<TreeExtras>) = model
            .trees
            .into_iter()
            .zip(model.tree_info)
            .map(|(t, g)| tree_data(t, g, n_features, groups))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        TreeModel::compile(
            TreeModelData {
                trees,
                base_margin,
                n_features,
                link,
            },
            extras,
        )
        .map_err(|e| bad(&e))
    }
}

fn tree_data(
    t: JsonTree,
    group: u32,
    n_features: usize,
    groups: usize,
) -> Result<(TreeData, TreeExtras)> {
    let bad = |m: &str| Error::Artifact(format!("XGBoost model JSON tree: {m}"));
    let n = t.left_children.len();
    let splits = category_splits(&t, n).map_err(|e| bad(&e))?;
    // Covers must be usable as weights: finite in f32, not negative, and positive at every split
    // (they divide there); a file may hold anything.
    let covers: Option<Vec<f32>> = (t.sum_hessian.len() == n)
        .then(|| {
            t.sum_hessian
                .iter()
                .map(|&c| c as f32)
                .collect::<Vec<f32>>()
        })
        .filter(|c| {
            c.iter()
                .enumerate()
                .all(|(i, &v)| v.is_finite() && (v > 0.0 || (v == 0.0 && t.left_children[i] < 0)))
        });
    if [
        t.right_children.len(),
        t.split_indices.len(),
        t.default_left.len(),
        t.split_conditions.len(),
    ]
    .iter()
    .any(|&l| l != n)
        || n == 0
    {
        return Err(bad("arrays of different lengths"));
    }
    let index =
        |v: i64| u32::try_from(v).map_err(|_| bad("a child or feature index is out of range"));
    let nodes: Vec<Node> = (0..n)
        .map(|i| {
            let leaf = t.left_children[i] < 0;
            Ok(Node {
                value: t.split_conditions[i] as f32,
                feature: if leaf { 0 } else { index(t.split_indices[i])? },
                left: if leaf {
                    i as u32
                } else {
                    index(t.left_children[i])?
                },
                right: if leaf {
                    i as u32
                } else {
                    index(t.right_children[i])?
                },
                default_left: match t.default_left[i] {
                    IntOrBool::Int(v) => v != 0,
                    IntOrBool::Bool(b) => b,
                },
            })
        })
        .collect::<Result<_>>()?;
    let depth = check_tree(&nodes, n_features).map_err(|e| bad(&e))?;
    if group as usize >= groups {
        return Err(bad("tree group out of range"));
    }
    Ok((
        TreeData {
            nodes,
            group,
            depth,
        },
        TreeExtras { splits, covers },
    ))
}

/// A tree's categorical splits from XGBoost's `categories*` arrays: node `categories_nodes[k]`
/// sends right the categories `categories[segments[k]..segments[k] + sizes[k]]`.
fn category_splits(t: &JsonTree, n: usize) -> std::result::Result<Vec<CategorySplit>, String> {
    if !t.split_type.is_empty() && t.split_type.len() != n {
        return Err("split_type has the wrong length".into());
    }
    let categorical: Vec<usize> = (0..t.split_type.len())
        .filter(|&i| t.split_type[i] != 0 && t.left_children[i] >= 0)
        .collect();
    if t.categories_nodes.len() != t.categories_segments.len()
        || t.categories_nodes.len() != t.categories_sizes.len()
    {
        return Err("the categories arrays differ in length".into());
    }
    let mut splits = Vec::with_capacity(categorical.len());
    for k in 0..t.categories_nodes.len() {
        let node = usize::try_from(t.categories_nodes[k])
            .ok()
            .filter(|&i| i < n);
        let start = usize::try_from(t.categories_segments[k]).ok();
        let size = usize::try_from(t.categories_sizes[k]).ok();
        let (Some(node), Some(start), Some(size)) = (node, start, size) else {
            return Err("a categorical split is out of range".into());
        };
        let list = start
            .checked_add(size)
            .and_then(|end| t.categories.get(start..end))
            .ok_or("a categorical split's categories are out of range")?;
        let mut set: Vec<u32> = list
            .iter()
            .map(|&c| u32::try_from(c).ok().filter(|&c| (c as f32) < MAX_CATEGORY))
            .collect::<Option<_>>()
            .ok_or("a category is negative or too large")?;
        set.sort_unstable();
        set.dedup();
        if t.split_type.get(node) != Some(&1) {
            return Err(format!(
                "node {node} has categories but is not a categorical split"
            ));
        }
        splits.push((node as u32, set));
    }
    if splits.len() != categorical.len() {
        return Err("a categorical split has no categories".into());
    }
    Ok(splits)
}

/// Checks that children point forward (so every path ends) or, for leaves, to the node itself,
/// and that features are in range; returns the depth.
fn check_tree(nodes: &[Node], n_features: usize) -> std::result::Result<u32, String> {
    if nodes.is_empty() {
        return Err("empty tree".into());
    }
    let mut depth = vec![0u32; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let leaf = n.left as usize == i && n.right as usize == i;
        if leaf {
            continue;
        }
        let ok = |c: u32| (c as usize) > i && (c as usize) < nodes.len();
        if !ok(n.left) || !ok(n.right) || n.feature as usize >= n_features {
            return Err(format!("node {i} has an invalid child or feature"));
        }
        depth[n.left as usize] = depth[i] + 1;
        depth[n.right as usize] = depth[i] + 1;
    }
    Ok(depth.into_iter().max().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::xgboost::{self, XgbParams};
    use rand::{Rng, SeedableRng};

    /// Class labels 0, 1, 2 from column `column` of `data`'s rows (values in [0, 10)), `missing`
    /// where it is missing.
    fn three_classes(x: &Array2<f32>, column: usize, missing: f32) -> ndarray::Array1<f32> {
        x.column(column).mapv(|v| {
            if v.is_nan() {
                missing
            } else {
                (v / 3.4).floor().min(2.0)
            }
        })
    }

    fn data(rows: usize, cols: usize, seed: u64) -> (Array2<f32>, ndarray::Array1<f32>) {
        let mut r = rand_pcg::Pcg64::seed_from_u64(seed);
        let x = Array2::from_shape_fn((rows, cols), |(row, _)| {
            // Missing values in the first half only: blocks with and without NaN both occur.
            if row < rows / 2 && r.random::<f64>() < 0.05 {
                f32::NAN
            } else {
                r.random::<f32>() * 10.0
            }
        });
        let y = x
            .rows()
            .into_iter()
            .map(|row| {
                if row[0].is_nan() || row[0] + row[1] * 0.5 > 7.0 {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        (x, y)
    }

    fn compiled(b: &xgb::Booster) -> TreeModel {
        let m = TreeModel::from_xgboost_json(&b.save_buffer(false).unwrap()).unwrap();
        TreeModel::from_bytes(&m.to_bytes().unwrap(), m.n_features).unwrap()
    }

    /// Compiled predictions equal XGBoost's own, with missing values, for each link.
    #[test]
    fn matches_xgboost_predictions() {
        let (x, y) = data(3000, 5, 1);
        let ym = y.mapv(|v| v * 2.0 + 1.0);
        let yc = three_classes(&x, 2, 0.0);
        let positive = ym.mapv(|v| v + 0.5);
        for (objective, labels, extra) in [
            (
                "binary:logistic",
                &y,
                vec![("num_parallel_tree", "4"), ("subsample", "0.7")],
            ),
            ("reg:squarederror", &ym, vec![]),
            ("multi:softprob", &yc, vec![("num_class", "3")]),
            ("multi:softmax", &yc, vec![("num_class", "3")]),
            ("reg:logistic", &y, vec![]),
            ("binary:logitraw", &y, vec![]),
            ("binary:hinge", &y, vec![]),
            ("count:poisson", &ym, vec![]),
            ("reg:gamma", &positive, vec![]),
            ("reg:tweedie", &ym, vec![]),
            ("reg:absoluteerror", &ym, vec![]),
            ("reg:pseudohubererror", &ym, vec![]),
            ("reg:squaredlogerror", &ym, vec![]),
        ] {
            let mut p = XgbParams::default()
                .set("objective", objective)
                .set("max_depth", 5)
                .set("nthread", 1);
            for (k, v) in extra {
                p = p.set(k, v);
            }
            let m = xgboost::dmatrix(x.view(), Some(labels)).unwrap();
            let b = xgboost::train_rounds(&p, &[(&m, "train")], 15, &mut |_| Ok(true)).unwrap();
            let want = b.predict(&m).unwrap();
            let got = compiled(&b).predict(x.view());
            assert_eq!(got.len(), want.len(), "{objective}");
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-6, "{objective}: max difference {worst}");
            // One or two rows are walked another way (many trees at once), and the vector walk
            // (where the CPU has one) gives the portable walk's sums, with values missing or not.
            let model = compiled(&b);
            let complete = x.mapv(|v| if v.is_nan() { 0.5 } else { v });
            for rows in [x.view(), complete.view()] {
                for r in [0, 1, 2, 3, 17, 255, 256, 257, 1000] {
                    let part = rows.slice(ndarray::s![..r, ..]);
                    vector_walks_alike(&model, part, &format!("{objective}: {r} rows"));
                }
            }
            for r in (0..x.nrows()).step_by(97) {
                for n in [1, 2] {
                    let end = (r + n).min(x.nrows());
                    let few = model.predict(x.slice(ndarray::s![r..end, ..]));
                    let all = got.slice(ndarray::s![r..end, ..]);
                    assert_eq!(few, all, "{objective}: rows {r}..{end}");
                }
            }
        }
    }

    /// Categorical splits (XGBoost's one-hot ones for few categories, partitions for many) in
    /// JSON and UBJSON, with missing values and values that are no category seen in training.
    #[test]
    fn categorical_splits_match_xgboost_predictions() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(9);
        let rows = 2000;
        let x = Array2::from_shape_fn((rows, 3), |(_, c)| {
            if rng.random::<f32>() < 0.05 {
                return f32::NAN;
            }
            match c {
                0 => rng.random_range(0..12) as f32,
                1 => rng.random::<f32>() * 10.0,
                _ => rng.random_range(0..3) as f32,
            }
        });
        let y = ndarray::Array1::from_shape_fn(rows, |r| {
            let lucky = [1.0, 4.0, 5.0, 9.0, 11.0].contains(&x[[r, 0]]);
            let v = f32::from(lucky) * 3.0 + f32::from(x[[r, 2]] == 1.0) + x[[r, 1]] * 0.2;
            if v.is_nan() {
                0.0
            } else {
                v
            }
        });
        let mut m = xgboost::dmatrix(x.view(), Some(&y)).unwrap();
        m.set_feature_types(&["c", "q", "c"]).unwrap();
        let p = XgbParams::default()
            .set("max_depth", 4)
            .set("tree_method", "hist")
            .set("nthread", 1);
        let b = xgboost::train_rounds(&p, &[(&m, "train")], 20, &mut |_| Ok(true)).unwrap();
        // Rows beyond training: unseen categories, fractions, negatives, huge values.
        let probe = ndarray::arr2(&[
            [15.0, 1.0, 7.0],
            [-1.0, 2.0, -3.0],
            [4.7, 3.0, 1.2],
            [1e9, f32::NAN, 2.0],
            [f32::NAN, 5.0, f32::NAN],
        ]);
        let all = ndarray::concatenate(ndarray::Axis(0), &[x.view(), probe.view()]).unwrap();
        let mut dall = xgboost::dmatrix(all.view(), None).unwrap();
        dall.set_feature_types(&["c", "q", "c"]).unwrap();
        let want = b.predict(&dall).unwrap();
        let json = b.save_buffer(false).unwrap();
        assert!(
            String::from_utf8_lossy(&json).contains("\"categories_nodes\":[0"),
            "the model has categorical splits"
        );
        for model in [
            TreeModel::from_xgboost_json(&json).unwrap(),
            crate::models::ubjson::from_json_or_ubjson::<XgboostJson>(
                &b.save_buffer(true).unwrap(),
            )
            .unwrap()
            .compile()
            .unwrap(),
        ] {
            let got = model.predict(all.view());
            for (r, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "row {r}: ours {a}, XGBoost {b}"
                );
            }
            // One row at a time (many trees at once) gives the same sums.
            for r in [0, rows, rows + 2, rows + 4] {
                let one = model.predict(all.slice(ndarray::s![r..r + 1, ..]));
                assert_eq!(one[[0, 0]], got[[r, 0]], "row {r}");
            }
            // Kept in XGBoost's format, never silently written without its categories.
            assert!(model.to_bytes().is_err());
        }
    }

    /// Contributions equal XGBoost's own `pred_contribs` (binary, multi-class with missing
    /// values, regression, categorical splits), and sum to the margin.
    #[test]
    fn contributions_match_xgboost_pred_contribs() {
        let (x, y) = data(1500, 5, 3);
        let yc = three_classes(&x, 2, 0.0);
        let yr = y.mapv(|v| v * 3.0 + 1.0);
        let cats = x.mapv(|v| if v.is_nan() { v } else { v.floor() });
        for (name, features, labels, extra, types) in [
            ("binary:logistic", &x, &y, vec![], None),
            ("multi:softprob", &x, &yc, vec![("num_class", "3")], None),
            ("reg:squarederror", &x, &yr, vec![("max_depth", "8")], None),
            (
                "reg:squarederror",
                &cats,
                &yr,
                vec![],
                Some(["c", "q", "c", "q", "q"]),
            ),
        ] {
            let mut p = XgbParams::default()
                .set("objective", name)
                .set("nthread", 1);
            for (k, v) in extra {
                p = p.set(k, v);
            }
            let mut m = xgboost::dmatrix(features.view(), Some(labels)).unwrap();
            if let Some(t) = types {
                m.set_feature_types(&t).unwrap();
            }
            let b = xgboost::train_rounds(&p, &[(&m, "train")], 12, &mut |_| Ok(true)).unwrap();
            let (want, shape) = b.predict_contributions(&m).unwrap();
            let model = TreeModel::from_xgboost_json(&b.save_buffer(false).unwrap()).unwrap();
            let got = model
                .contributions(features.view())
                .expect("covers from the JSON");
            model.can_explain().unwrap();
            assert_eq!(got.len(), want.len(), "{name}: shape {shape:?}");
            for (i, (a, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{name}: value {i}: ours {a}, XGBoost {w}"
                );
            }
            // Each group's values sum to its margin.
            let margins = model.predict_margin(features.view());
            let width = features.ncols() + 1;
            for (r, row) in got.rows().into_iter().enumerate().step_by(37) {
                for g in 0..model.n_groups() {
                    let sum: f32 = row.iter().skip(g * width).take(width).sum();
                    assert!(
                        (sum - margins[[r, g]]).abs() < 1e-4,
                        "{name}: row {r} sums to {sum}, margin {}",
                        margins[[r, g]]
                    );
                }
            }
        }
        // A compiled-trees file carries no covers: no contributions.
        let (x, y) = data(200, 3, 4);
        let m = xgboost::dmatrix(x.view(), Some(&y)).unwrap();
        let b = xgboost::train_rounds(&XgbParams::default(), &[(&m, "train")], 2, &mut |_| {
            Ok(true)
        })
        .unwrap();
        let again = TreeModel::from_bytes(&compiled(&b).to_bytes().unwrap(), 3).unwrap();
        let e = again.contributions(x.view()).unwrap_err();
        assert!(e.contains("no usable node covers"), "{e}");
    }

    #[test]
    fn averaged_parts_predict_the_mean_margin() {
        let (x, y) = data(2000, 4, 2);
        let m = xgboost::dmatrix(x.view(), Some(&y)).unwrap();
        let parts: Vec<TreeModel> = (0..3)
            .map(|seed| {
                let p = XgbParams::default()
                    .set("objective", "binary:logistic")
                    .set("num_parallel_tree", 5)
                    .set("subsample", 0.6)
                    .set("seed", seed)
                    .set("nthread", 1);
                compiled(
                    &xgboost::train_rounds(&p, &[(&m, "train")], 1, &mut |_| Ok(true)).unwrap(),
                )
            })
            .collect();
        let avg = TreeModel::average(&parts).unwrap();
        let got = avg.predict_margin(x.view());
        let margins: Vec<_> = parts.iter().map(|p| p.predict_margin(x.view())).collect();
        for r in 0..x.nrows() {
            let want = margins.iter().map(|mm| mm[[r, 0]]).sum::<f32>() / 3.0;
            assert!(
                (got[[r, 0]] - want).abs() < 1e-5,
                "row {r}: {} vs {want}",
                got[[r, 0]]
            );
        }
        assert_eq!(avg.n_trees(), 15);
    }

    /// A split on feature 0 at `value` (missing values go left when `default_left`).
    fn split(value: f32, left: u32, right: u32, default_left: bool) -> Node {
        Node {
            value,
            feature: 0,
            left,
            right,
            default_left,
        }
    }

    /// Leaf `i` with `value`.
    fn leaf(i: u32, value: f32) -> Node {
        split(value, i, i, false)
    }

    fn tree(nodes: Vec<Node>, depth: u32) -> TreeData {
        TreeData {
            nodes,
            group: 0,
            depth,
        }
    }

    /// A tree of at most `depth` levels splitting on random features of `n_features` at
    /// random `thresholds`; below the root, a node becomes a leaf early with probability `early`.
    fn random_tree(
        r: &mut rand_pcg::Pcg64,
        depth: u32,
        n_features: usize,
        thresholds: &[f32],
        early: f64,
    ) -> TreeData {
        grown_tree(r, n_features, thresholds, |r, i, d, _| {
            d < depth && !(i > 0 && r.random::<f64>() < early)
        })
    }

    /// A tree of exactly `n` nodes (odd), nodes split breadth-first while room is left.
    fn sized_tree(
        r: &mut rand_pcg::Pcg64,
        n: usize,
        n_features: usize,
        thresholds: &[f32],
    ) -> TreeData {
        assert!(n % 2 == 1, "a tree has an odd number of nodes");
        let t = grown_tree(r, n_features, thresholds, |_, _, _, nodes| nodes + 2 <= n);
        assert_eq!(t.nodes.len(), n);
        t
    }

    /// A tree grown breadth-first: node `i` at depth `d`, with `nodes` made so far, splits on a
    /// random feature and threshold where `split(r, i, d, nodes)`, else is a random leaf.
    fn grown_tree(
        r: &mut rand_pcg::Pcg64,
        n_features: usize,
        thresholds: &[f32],
        mut split: impl FnMut(&mut rand_pcg::Pcg64, usize, u32, usize) -> bool,
    ) -> TreeData {
        let (mut nodes, mut depth_of) = (vec![leaf(0, 0.0)], vec![0]);
        let mut i = 0;
        while i < nodes.len() {
            let d = depth_of[i];
            nodes[i] = if split(r, i, d, nodes.len()) {
                let left = nodes.len() as u32;
                nodes.extend([leaf(0, 0.0), leaf(0, 0.0)]);
                depth_of.extend([d + 1, d + 1]);
                Node {
                    value: thresholds[r.random_range(0..thresholds.len())],
                    feature: r.random_range(0..n_features as u32),
                    left,
                    right: left + 1,
                    default_left: r.random(),
                }
            } else {
                leaf(i as u32, r.random::<f32>() - 0.5)
            };
            i += 1;
        }
        tree(nodes, depth_of.into_iter().max().unwrap_or(0))
    }

    /// Models walked side by side give each model's own bits: one to three blocks, a missing
    /// value, a few rows (the row-at-a-time walk); models of other shapes, and thresholds that
    /// together leave the walk on bin numbers, are refused.
    #[test]
    fn side_by_side_gives_each_model_s_own_bits() {
        let mut r = rand_pcg::Pcg64::seed_from_u64(5);
        let model = |r: &mut rand_pcg::Pcg64, thresholds: &[f32], base: f32, link: Link| {
            let trees = (0..30)
                .map(|t| random_tree(r, 1 + t % 9, 6, thresholds, 0.2))
                .collect();
            TreeModel::try_from(TreeModelData {
                trees,
                base_margin: vec![base],
                n_features: 6,
                link,
            })
            .unwrap()
        };
        let thresholds: Vec<f32> = (0..60).map(|_| r.random::<f32>() * 4.0 - 2.0).collect();
        let models = [
            model(&mut r, &thresholds, -0.3, Link::Logistic),
            model(&mut r, &thresholds[..20], 0.1, Link::Logistic),
            model(&mut r, &thresholds[30..], 0.0, Link::Logistic),
        ];
        let refs: Vec<&TreeModel> = models.iter().collect();
        let together = TreeModel::side_by_side(&refs).unwrap();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            together.can_walk(VectorWalk::Avx512Bins),
            VectorWalk::Avx512Bins.available()
        );
        let mut x = Array2::from_shape_fn((600, 6), |_| r.random::<f32>() * 5.0 - 2.5);
        x[[550, 2]] = f32::NAN;
        for rows in [1, 3, 17, 256, 300, 600] {
            let x = x.slice(ndarray::s![..rows, ..]);
            let all = together.predict(x);
            for (i, m) in models.iter().enumerate() {
                let own: Vec<u32> = m.predict(x).column(0).iter().map(|v| v.to_bits()).collect();
                let got: Vec<u32> = all.column(i).iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, own, "model {i}, {rows} rows");
            }
        }
        // Not for models of other shapes.
        let identity = model(&mut r, &thresholds, 0.0, Link::Identity);
        assert!(TreeModel::side_by_side(&[&models[0], &identity]).is_none());
        assert!(TreeModel::side_by_side(&[]).is_none());
        // Nor where each model's 200 thresholds fit the walk on bin numbers and their 400 do not.
        #[cfg(target_arch = "x86_64")]
        if VectorWalk::Avx512Bins.available() {
            let spread =
                |offset: f32| -> Vec<f32> { (0..200).map(|i| i as f32 + offset).collect() };
            let deep = |r: &mut rand_pcg::Pcg64, thresholds: &[f32]| {
                let trees = (0..40)
                    .map(|_| random_tree(r, 9, 1, thresholds, 0.0))
                    .collect();
                TreeModel::try_from(TreeModelData {
                    trees,
                    base_margin: vec![0.0],
                    n_features: 1,
                    link: Link::Logistic,
                })
                .unwrap()
            };
            let (a, b) = (deep(&mut r, &spread(0.0)), deep(&mut r, &spread(0.5)));
            assert!(a.can_walk(VectorWalk::Avx512Bins) && b.can_walk(VectorWalk::Avx512Bins));
            assert!(TreeModel::side_by_side(&[&a, &b]).is_none());
        }
    }

    /// The walk on bin numbers takes every split as the walk on values does: values equal to a
    /// threshold or next to it, signed zeros, infinities, subnormals; models of 1 to 4 tables of
    /// bin numbers (3 to 31 features) and 1 to 3 groups, full trees and trees with early
    /// leaves, levels walked at the top, held (in 1 to 8 registers) and gathered; trees whose
    /// leaf values are held (1 node, and 1 to 8 registers of nodes, each count at both ends)
    /// and trees of 129 or more nodes, whose leaf values are gathered; blocks with a missing
    /// value (walked on values) and without; the first rounds kept. A feature of 256
    /// thresholds, or a 32nd feature, leaves the model to the walk on values.
    #[test]
    fn bin_numbers_walk_as_values_do() {
        let specials = [
            f32::NEG_INFINITY,
            -1e30,
            -1.5,
            -0.0,
            0.0,
            1e-45,
            0.5,
            1.0,
            1.0 + f32::EPSILON,
            3.0,
            1e30,
            f32::INFINITY,
        ];
        let mut r = rand_pcg::Pcg64::seed_from_u64(17);
        for n_features in [3, 7, 8, 15, 16, 23, 24, 31, 32] {
            let mut thresholds = specials.to_vec();
            thresholds.extend((0..40).map(|_| r.random::<f32>() * 8.0 - 4.0));
            let groups = 1 + n_features % 3;
            let mut trees: Vec<TreeData> = (0..24)
                .map(|t| {
                    let early = [0.0, 0.1, 0.3][t % 3];
                    let depth = 1 + (t as u32 / 2) % 10;
                    random_tree(&mut r, depth, n_features, &thresholds, early)
                })
                .collect();
            let sizes = (1..=8).flat_map(|k| [16 * k - 15, 16 * k - 1]);
            for n in sizes.chain([1, 129, 141]) {
                trees.push(sized_tree(&mut r, n, n_features, &thresholds));
            }
            for (t, tree) in trees.iter_mut().enumerate() {
                tree.group = (t % groups) as u32;
            }
            let mut model = TreeModel::try_from(TreeModelData {
                trees,
                base_margin: vec![0.25; groups],
                n_features,
                link: Link::Identity,
            })
            .unwrap();
            let mut values: Vec<f32> = thresholds.clone();
            for t in &thresholds {
                values.extend([t.next_down(), t.next_up()]);
            }
            let x = Array2::from_shape_fn((300, n_features), |_| {
                values[r.random_range(0..values.len())]
            });
            #[cfg(target_arch = "x86_64")]
            assert_eq!(
                model.can_walk(VectorWalk::Avx512Bins),
                VectorWalk::Avx512Bins.available() && n_features < 32,
                "{n_features} features"
            );
            vector_walks_alike(&model, x.view(), &format!("{n_features} features"));
            let mut with_missing = x.clone();
            with_missing[[290, 1]] = f32::NAN;
            vector_walks_alike(&model, with_missing.view(), "a missing value");
            model.keep_first(3);
            vector_walks_alike(&model, x.view(), "the first rounds");
            let again = TreeModel::from_bytes(&model.to_bytes().unwrap(), n_features).unwrap();
            assert_eq!(again, model, "the first rounds, written and read back");
        }
        // 256 thresholds on feature 0: the 511 splits of a tree of 9 levels take 0 to 255.
        let mut one = random_tree(&mut r, 9, 1, &[0.0], 0.0);
        for (i, n) in one.nodes.iter_mut().take(511).enumerate() {
            n.value = (i % 256) as f32;
        }
        let model = TreeModel::try_from(TreeModelData {
            trees: vec![one],
            base_margin: vec![0.0],
            n_features: 1,
            link: Link::Identity,
        })
        .unwrap();
        #[cfg(target_arch = "x86_64")]
        assert!(!model.can_walk(VectorWalk::Avx512Bins));
        let x = Array2::from_shape_fn((300, 1), |(i, _)| i as f32 - 20.5);
        vector_walks_alike(&model, x.view(), "256 thresholds");
    }

    /// Wider rows (40 features: the single-row walk gathers them rather than holding them in
    /// registers) and more trees than one 64-tree pass of the single-row walk, several groups.
    #[test]
    fn wide_rows_and_many_trees_walk_alike_every_way() {
        #[cfg(target_arch = "x86_64")]
        eprintln!(
            "vector walks on this CPU: AVX-512 bins {}, AVX-512 {}, AVX2 {}",
            VectorWalk::Avx512Bins.available(),
            VectorWalk::Avx512.available(),
            VectorWalk::Avx2.available()
        );
        let (x, _) = data(600, 40, 9);
        let labels = three_classes(&x, 3, 1.0);
        let p = XgbParams::default()
            .set("objective", "multi:softprob")
            .set("num_class", 3)
            .set("max_depth", 6)
            .set("nthread", 1);
        let m = xgboost::dmatrix(x.view(), Some(&labels)).unwrap();
        let b = xgboost::train_rounds(&p, &[(&m, "train")], 30, &mut |_| Ok(true)).unwrap();
        let model = compiled(&b);
        assert_eq!(model.n_trees(), 90);
        walks_alike_and_as_xgboost(&model, &b, &m, x.view(), &[1, 2, 16, 17, 300, 600]);
    }

    /// The walk `predict_margin` takes here, and every vector walk this CPU has, give the
    /// portable walk's margins on `x`.
    fn vector_walks_alike(model: &TreeModel, x: ArrayView2<f32>, what: &str) {
        let want = model.predict_margin_portable(x);
        assert_eq!(model.predict_margin(x), want, "{what}");
        #[cfg(target_arch = "x86_64")]
        for walk in [VectorWalk::Avx512Bins, VectorWalk::Avx512, VectorWalk::Avx2] {
            if model.can_walk(walk) {
                let got = model.predict_margin_vector(x, walk);
                assert_eq!(got, want, "{what}, {walk:?}");
            }
        }
    }

    /// `model` (compiled from `b`) gives the portable walk's sums on the first `rows` of `x`
    /// (whichever walk this CPU takes), and XGBoost's predictions of `m` (`x`) within 1e-6.
    fn walks_alike_and_as_xgboost(
        model: &TreeModel,
        b: &xgb::Booster,
        m: &xgb::DMatrix,
        x: ArrayView2<f32>,
        rows: &[usize],
    ) {
        for &rows in rows {
            let part = x.slice(ndarray::s![..rows, ..]);
            vector_walks_alike(model, part, &format!("{rows} rows"));
        }
        let want = b.predict(m).unwrap();
        for (a, b) in model.predict(x).iter().zip(&want) {
            assert!((a - b).abs() <= 1e-6, "{a} vs XGBoost's {b}");
        }
    }

    /// Deep trees of one output, full (levels wider than 64 nodes, gathered by the vector walk)
    /// and thinned by `min_child_weight` (levels of up to 16, 32, 48 and 64 nodes, held in one
    /// to four registers, with rows already at a leaf of an earlier level): every block size
    /// walks alike both ways and as XGBoost.
    #[test]
    fn deep_trees_walk_alike_every_way() {
        let (x, _) = data(6000, 12, 5);
        // Labels of no pattern: every tree splits as deep as its rows allow.
        let y = (0..x.nrows() as u64)
            .map(|r| f32::from(r.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 63 == 1))
            .collect();
        let m = xgboost::dmatrix(x.view(), Some(&y)).unwrap();
        // Seen across both models: a gathered level, a held level of 33 to 48 nodes (three
        // registers), a held level after one with leaves; for the AVX2 walk (levels of at most
        // 32 held, in registers of 8), held levels of 17 to 24 and 25 to 32 nodes (three and
        // four registers) and a gathered level that AVX-512 holds.
        let (mut gathered, mut three, mut after_leaves) = (false, false, false);
        let (mut three_avx2, mut four_avx2, mut gathered_avx2) = (false, false, false);
        for min_child_weight in [0, 20] {
            let p = XgbParams::default()
                .set("objective", "binary:logistic")
                .set("max_depth", 9)
                .set("min_child_weight", min_child_weight)
                .set("nthread", 1);
            let b = xgboost::train_rounds(&p, &[(&m, "train")], 12, &mut |_| Ok(true)).unwrap();
            let model = compiled(&b);
            for t in &model.trees {
                let Nodes::Narrow(nodes) = &t.nodes else {
                    panic!("8-byte nodes")
                };
                // Breadth-first: a level's nodes are the children of the last one's splits.
                let (mut first, mut end, mut held, mut leaves) = (0, 1, true, false);
                let mut held_avx2 = true;
                while end > first {
                    let splits = nodes[first..end]
                        .iter()
                        .filter(|n| n.bits.feature() != 12)
                        .count();
                    held &= end - first <= 64;
                    gathered |= !held;
                    three |= held && (33..=48).contains(&(end - first));
                    held_avx2 &= end - first <= 32;
                    three_avx2 |= held_avx2 && (17..=24).contains(&(end - first));
                    four_avx2 |= held_avx2 && (25..=32).contains(&(end - first));
                    gathered_avx2 |= held && !held_avx2;
                    after_leaves |= held && leaves && splits > 0;
                    leaves |= splits < end - first;
                    (first, end) = (end, end + 2 * splits);
                }
            }
            // XGBoost's `hist` thresholds: the walk on bin numbers, where the CPU has it.
            #[cfg(target_arch = "x86_64")]
            assert_eq!(
                model.can_walk(VectorWalk::Avx512Bins),
                VectorWalk::Avx512Bins.available()
            );
            let rows = [3, 16, 17, 255, 256, 257, 1000, 6000];
            eprintln!("min_child_weight {min_child_weight}");
            walks_alike_and_as_xgboost(&model, &b, &m, x.view(), &rows);
        }
        assert!(
            gathered && three && after_leaves,
            "levels seen: gathered {gathered}, three registers {three}, after leaves {after_leaves}"
        );
        assert!(
            three_avx2 && four_avx2 && gathered_avx2,
            "AVX2 levels seen: three registers {three_avx2}, four {four_avx2}, gathered {gathered_avx2}"
        );
    }

    /// An unbalanced tree on several features: a leaf on the first level beside a chain of
    /// splits, so the vector walk's first levels hold a leaf.
    #[test]
    fn unbalanced_trees_walk_alike_every_way() {
        let node = |feature: u32, value: f32, left: u32, right: u32, default_left: bool| Node {
            value,
            feature,
            left,
            right,
            default_left,
        };
        let chain = TreeData {
            nodes: vec![
                node(0, 0.5, 1, 2, true),
                leaf(1, -1.0),
                node(1, 0.3, 3, 4, false),
                node(2, 0.7, 5, 6, true),
                leaf(4, 4.0),
                node(0, 0.8, 7, 8, false),
                leaf(6, 6.0),
                leaf(7, 7.0),
                leaf(8, 8.0),
            ],
            group: 1,
            depth: 4,
        };
        let nodes = chain.nodes.clone();
        let model = TreeModelData {
            trees: vec![chain, tree(vec![leaf(0, 0.25)], 0)],
            base_margin: vec![0.5, -0.5],
            n_features: 3,
            link: Link::Identity,
        };
        let bytes = bincode::serde::encode_to_vec(&model, bincode::config::standard()).unwrap();
        let model = TreeModel::from_bytes(&bytes, 3).unwrap();
        // The walk by hand, from the file's nodes.
        let by_hand = |row: &[f32]| -> f32 {
            let mut i = 0;
            while nodes[i].left as usize != i {
                let n = nodes[i];
                let v = row[n.feature as usize];
                let left = v < n.value || (v.is_nan() && n.default_left);
                i = if left { n.left } else { n.right } as usize;
            }
            nodes[i].value
        };
        let values = [f32::NAN, 0.0, 0.29, 0.3, 0.5, 0.75, 0.8, 0.9];
        let rows: Vec<f32> = (0..values.len().pow(3))
            .flat_map(|k| (0..3).map(move |f| values[k / values.len().pow(f) % values.len()]))
            .collect();
        let x = Array2::from_shape_vec((rows.len() / 3, 3), rows).unwrap();
        let got = model.predict_margin(x.view());
        vector_walks_alike(&model, x.view(), "all value combinations");
        // None missing, so the walk on bin numbers takes these blocks too.
        let present: Vec<f32> = x
            .rows()
            .into_iter()
            .filter(|row| row.iter().all(|v| !v.is_nan()))
            .flat_map(|row| row.to_vec())
            .collect();
        let present = Array2::from_shape_vec((present.len() / 3, 3), present).unwrap();
        vector_walks_alike(&model, present.view(), "no value missing");
        for (k, (row, margins)) in x.rows().into_iter().zip(got.rows()).enumerate() {
            let alone = model.predict_margin(x.slice(ndarray::s![k..k + 1, ..]));
            assert_eq!(alone.row(0), margins, "{row} alone");
            assert_eq!(margins[0], 0.5 + 0.25);
            assert_eq!(margins[1], -0.5 + by_hand(row.as_slice().unwrap()), "{row}");
        }
    }

    #[test]
    fn corrupt_bytes_and_unsupported_models_are_errors() {
        assert!(TreeModel::from_bytes(b"nonsense", 1).is_err());
        assert!(TreeModel::from_xgboost_json(b"{}").is_err());
        let single_leaf = TreeModelData {
            trees: vec![tree(vec![leaf(0, 1.0)], 0)],
            base_margin: vec![0.0],
            n_features: 1,
            link: Link::Identity,
        };
        let bytes = |m: &TreeModelData| {
            bincode::serde::encode_to_vec(m, bincode::config::standard()).unwrap()
        };
        let with_trees = |trees: Vec<TreeData>| TreeModelData {
            trees,
            ..single_leaf.clone()
        };
        assert!(TreeModel::from_bytes(&bytes(&single_leaf), 1).is_ok());
        // A lone leaf beside a deeper tree (early-stopped boosting writes such trees), walked
        // both ways: one row, many trees at once; and a block of rows.
        let deeper = tree(
            vec![split(0.5, 1, 2, true), leaf(1, 10.0), leaf(2, 20.0)],
            1,
        );
        let mixed = with_trees(vec![tree(vec![leaf(0, 1.0)], 0), deeper]);
        let mixed = TreeModel::from_bytes(&bytes(&mixed), 1).unwrap();
        let x = ndarray::array![[0.0f32], [1.0], [f32::NAN]];
        let want = [11.0, 21.0, 11.0];
        for (r, want) in want.iter().enumerate() {
            let one = mixed.predict(x.slice(ndarray::s![r..r + 1, ..]));
            assert_eq!(one[[0, 0]], *want, "row {r} alone");
        }
        assert_eq!(mixed.predict(x.view()).column(0).to_vec(), want);
        // A well-formed model for another width is refused: it would index past a row.
        assert!(TreeModel::from_bytes(&bytes(&single_leaf), 2).is_err());
        let cyclic = with_trees(vec![tree(
            vec![split(1.0, 1, 1, false), split(1.0, 0, 1, false)],
            1,
        )]);
        assert!(TreeModel::from_bytes(&bytes(&cyclic), 1).is_err());
        // A node no path reaches counts for nothing: the root leaf alone is the tree.
        let orphan = with_trees(vec![tree(
            vec![
                leaf(0, 2.0),
                split(0.5, 2, 3, false),
                leaf(2, 7.0),
                leaf(3, 9.0),
            ],
            1,
        )]);
        let orphan = TreeModel::from_bytes(&bytes(&orphan), 1).unwrap();
        let x = ndarray::array![[0.0f32], [1.0]];
        assert_eq!(
            orphan
                .predict(x.slice(ndarray::s![..1, ..]))
                .column(0)
                .to_vec(),
            [2.0]
        );
        assert_eq!(orphan.predict(x.view()).column(0).to_vec(), [2.0, 2.0]);
        // Two parents sharing a child: refused (copying shared subtrees could grow without end).
        let shared = with_trees(vec![tree(
            vec![
                split(0.5, 1, 2, false),
                split(0.5, 3, 4, false),
                split(0.5, 3, 4, false),
                leaf(3, 1.0),
                leaf(4, 1.0),
            ],
            2,
        )]);
        let e = TreeModel::from_bytes(&bytes(&shared), 1).unwrap_err();
        assert!(e.to_string().contains("reached twice"), "{e}");
    }
}
