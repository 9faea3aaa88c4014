//! Exact TreeSHAP (Lundberg, Erion and Lee, "Consistent individualized feature attribution for
//! tree ensembles", algorithm 2), as XGBoost computes `pred_contribs`: each feature's
//! contribution to one tree's output for one row, from the row's path and every node's cover
//! (the training rows' hessian sum that reached it). A tree's contributions plus its expected
//! value (the cover-weighted mean of its leaves) sum to the leaf the row reaches.
//!
//! The arithmetic is XGBoost's, in `f32` and in its order, so the values agree with XGBoost's
//! own to rounding.

/// What TreeSHAP needs to know of a tree.
pub(crate) trait ShapTree {
    /// Whether node `i` is a leaf.
    fn is_leaf(&self, i: usize) -> bool;
    /// The leaf value of node `i`.
    fn leaf_value(&self, i: usize) -> f32;
    /// The feature node `i` splits on.
    fn feature(&self, i: usize) -> usize;
    /// The children of node `i`: left, right.
    fn children(&self, i: usize) -> (usize, usize);
    /// Whether `row` goes left at node `i` (missing values and categories as XGBoost).
    fn goes_left(&self, i: usize, row: &[f32]) -> bool;
    /// The cover of node `i`.
    fn cover(&self, i: usize) -> f32;
}

/// The tree's expected value: each node's mean is its leaf value, or its children's means
/// weighted by their covers (XGBoost's `FillNodeMeanValue`).
pub(crate) fn mean_value(tree: &impl ShapTree, i: usize) -> f32 {
    if tree.is_leaf(i) {
        return tree.leaf_value(i);
    }
    let (l, r) = tree.children(i);
    (mean_value(tree, l) * tree.cover(l) + mean_value(tree, r) * tree.cover(r)) / tree.cover(i)
}

/// One element of the path of unique features from the root.
#[derive(Clone, Copy, Default)]
struct PathElement {
    /// The feature (`usize::MAX` for the root's placeholder).
    feature: usize,
    zero_fraction: f32,
    one_fraction: f32,
    weight: f32,
}

/// Computes contributions, keeping its path buffer from one tree and row to the next.
#[derive(Default)]
pub(crate) struct Explainer {
    paths: Vec<PathElement>,
}

impl Explainer {
    /// Adds one row's contributions through `tree` to `phi` (one per feature); `depth` is the
    /// tree's depth.
    pub(crate) fn add(&mut self, tree: &impl ShapTree, row: &[f32], phi: &mut [f32], depth: usize) {
        let d = depth + 2;
        let size = d * (d + 1) / 2;
        if self.paths.len() < size {
            self.paths.resize(size, PathElement::default());
        }
        recurse(
            tree,
            row,
            phi,
            0,
            0,
            &mut self.paths,
            0,
            1.0,
            1.0,
            usize::MAX,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn recurse(
    tree: &impl ShapTree,
    row: &[f32],
    phi: &mut [f32],
    node: usize,
    mut unique_depth: usize,
    paths: &mut [PathElement],
    parent_start: usize,
    parent_zero_fraction: f32,
    parent_one_fraction: f32,
    parent_feature: usize,
) {
    // This call's path follows its parent's in the buffer, copied, then extended.
    let start = parent_start + unique_depth + 1;
    let (before, rest) = paths.split_at_mut(start);
    rest[..=unique_depth].copy_from_slice(&before[parent_start..parent_start + unique_depth + 1]);
    let path = &mut rest[..];
    extend(
        path,
        unique_depth,
        parent_zero_fraction,
        parent_one_fraction,
        parent_feature,
    );

    if tree.is_leaf(node) {
        let value = tree.leaf_value(node);
        for i in 1..=unique_depth {
            let w = unwound_sum(path, unique_depth, i);
            let el = path[i];
            phi[el.feature] += w * (el.one_fraction - el.zero_fraction) * value;
        }
        return;
    }
    let split = tree.feature(node);
    let (left, right) = tree.children(node);
    let (hot, cold) = if tree.goes_left(node, row) {
        (left, right)
    } else {
        (right, left)
    };
    let w = tree.cover(node);
    let hot_zero_fraction = tree.cover(hot) / w;
    let cold_zero_fraction = tree.cover(cold) / w;
    let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
    // A feature split on before is taken out of the path and put back in here.
    if let Some(k) = (0..=unique_depth).find(|&k| path[k].feature == split) {
        incoming_zero = path[k].zero_fraction;
        incoming_one = path[k].one_fraction;
        unwind(path, unique_depth, k);
        unique_depth -= 1;
    }
    recurse(
        tree,
        row,
        phi,
        hot,
        unique_depth + 1,
        paths,
        start,
        hot_zero_fraction * incoming_zero,
        incoming_one,
        split,
    );
    recurse(
        tree,
        row,
        phi,
        cold,
        unique_depth + 1,
        paths,
        start,
        cold_zero_fraction * incoming_zero,
        0.0,
        split,
    );
}

fn extend(path: &mut [PathElement], depth: usize, zero: f32, one: f32, feature: usize) {
    path[depth] = PathElement {
        feature,
        zero_fraction: zero,
        one_fraction: one,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    };
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f32 / (depth + 1) as f32;
        path[i].weight = zero * path[i].weight * (depth - i) as f32 / (depth + 1) as f32;
    }
}

fn unwind(path: &mut [PathElement], depth: usize, index: usize) {
    let one = path[index].one_fraction;
    let zero = path[index].zero_fraction;
    let mut next_one_portion = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let tmp = path[i].weight;
            path[i].weight = next_one_portion * (depth + 1) as f32 / ((i + 1) as f32 * one);
            next_one_portion =
                tmp - path[i].weight * zero * (depth - i) as f32 / (depth + 1) as f32;
        } else {
            path[i].weight = (path[i].weight * (depth + 1) as f32) / (zero * (depth - i) as f32);
        }
    }
    for i in index..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

fn unwound_sum(path: &[PathElement], depth: usize, index: usize) -> f32 {
    let one = path[index].one_fraction;
    let zero = path[index].zero_fraction;
    let mut next_one_portion = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let tmp = next_one_portion * (depth + 1) as f32 / ((i + 1) as f32 * one);
            total += tmp;
            next_one_portion =
                path[i].weight - tmp * zero * ((depth - i) as f32 / (depth + 1) as f32);
        } else if zero != 0.0 {
            total += (path[i].weight / zero) / ((depth - i) as f32 / (depth + 1) as f32);
        }
    }
    total
}
