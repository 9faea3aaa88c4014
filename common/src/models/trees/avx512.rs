//! The walks of 8-byte-node trees with AVX-512: a block's rows 16 per vector ([`walk`], or
//! [`walk_bins`] on their bin numbers), one row through 64 trees, 8 per vector
//! ([`walk_trees`]). Chosen at run time ([`available`]); a CPU with AVX2 only takes
//! `avx2::walk`, every other CPU, and every model with a categorical or 16-byte-node tree, the
//! portable walk. Results are the same bits: each row takes the same
//! steps and its leaf is added to its own accumulator in tree order.
//!
//! The block is column-major, so the first levels need no gather: there a level holds at most
//! [`MAX_TOP_NODES`] nodes (every lane at one of them or at an earlier leaf), each split tested
//! on all 16 rows with one contiguous load and one comparison. The next levels, of at most
//! [`MAX_HELD_NODES`] nodes, are held in registers: each lane's node is picked by a
//! permutation, and only its split feature's value is gathered. Deeper, a step gathers the 16
//! rows' nodes (two 8-lane gathers of 8-byte words: half the cost of two 16-lane gathers of
//! 4-byte halves) and their values (one 16-lane gather). A one-output model adds each 16
//! leaves to its accumulators with one vector add. Fire ensemble (200 depth-10 and 200 depth-6
//! trees), one core, 50,000 rows (`examples/predict_bench.rs`), on 2026-12-01: 1.23 us per row
//! before levels were held and leaves added by vector, 1.54 with gathers at every level, 3.2
//! with the portable walk; on another machine the same day, interleaved runs of 20, min
//! (median): gathered middle levels
//! and leaves added one by one 85.6 ms (92.5), levels held in up to four registers 77.5 (88.6),
//! and leaves added by vector 66.0 (71.0); held in up to two registers 82.4 (92.6). (Measured
//! before by changing [`MAX_TOP_NODES`] and `BLOCK_ROWS`: top levels of up to 2 or 4 nodes the
//! same, up to 8 9 % slower; blocks of 128 to 512 rows the same.)
//!
//! A tree of at most [`MAX_HELD_WORDS`] nodes (every tree of depth 6 or less) has its leaf
//! values picked from registers rather than gathered, by either block walk: the fire
//! ensemble's 200 depth-6 boosting trees 25.8-26.9 ms against 27.5-28.1 per 50,000 rows by
//! [`walk`], 18.0-18.2 against 20.5-21.3 by [`walk_bins`] (`walk_bench`, one core, Zen 4,
//! interleaved pairs).
//!
//! On a Zen 4 host (2026-12-02) gathers are slow (a 16-lane gather about 5.5 ns, 16 scalar loads
//! the same): with the value gathers left out (wrong answers, for timing only) the walk took
//! half the time. [`walk_bins`] looks bin numbers up in registers instead, and holds a node in
//! 4 bytes: `walk_bench`, one core, 50,000 rows, interleaved runs of 30, min: the 200 depth-10
//! forest trees 43.6 ms against 71.5 by [`walk`], the 200 depth-6 boosting trees 20.8 against
//! 27.7 (the first version, with 8-byte node copies and levels of at most 64 held: 45.8 and
//! 20.1).

use super::{bins, next_level, Packed, Width, BLOCK_ROWS};
use std::arch::x86_64::*;

/// Rows per vector.
const LANES: usize = 16;

/// `log2(BLOCK_ROWS)`: a column's offset is `feature << COLUMN_SHIFT`.
const COLUMN_SHIFT: u32 = BLOCK_ROWS.trailing_zeros();
const _: () = assert!(BLOCK_ROWS.is_power_of_two() && BLOCK_ROWS.is_multiple_of(LANES));

/// Most nodes a level may hold to be walked without gathers (each costs a load and a few
/// vector operations per 16 rows; a gathered step costs about as much as four).
const MAX_TOP_NODES: usize = 4;

const FEATURE_BITS: u32 = <u32 as Width>::FEATURE_BITS;

/// Whether this CPU runs [`walk`].
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Adds the leaf each of the block's `count` rows ends in, after `depth` steps, to `acc[k]`.
/// `columns` holds the block column-major: feature `f` of row `k` at
/// `columns[(f << COLUMN_SHIFT) + k]`, the last column (`n_features`, where leaves point) all
/// missing. `missing` says whether any other value is NaN. The held levels rely on the compiled
/// layout (breadth-first: a level's nodes are the children of the last one's splits, in order)
/// for their answers, not for the safety of their reads.
///
/// # Safety
/// The CPU has AVX-512F ([`available`]); `nodes` is a compiled tree (every child index inside
/// it, every feature at most the last column of `columns`), so every address read is in
/// `nodes` or `columns`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn walk(
    nodes: &[Packed<u32>],
    depth: u32,
    columns: &[f32],
    count: usize,
    acc: &mut [f32],
    missing: bool,
) {
    assert!(count <= BLOCK_ROWS && columns.len().is_multiple_of(BLOCK_ROWS));
    assert!(acc.len() >= count);
    let leaf_feature = columns.len() / BLOCK_ROWS - 1;
    let groups = count.div_ceil(LANES);
    let one = _mm512_set1_epi32(1);
    let mut at = [_mm512_setzero_si512(); BLOCK_ROWS / LANES];

    // Each level's nodes are `nodes[first..end]` (breadth-first, so the next level's are the
    // children of this one's splits, right after it); a lane before `first` is at a leaf of an
    // earlier level.
    let (mut level, mut first, mut end) = (0, 0usize, 1usize);
    let next_level = |first, end| next_level(nodes, first, end, leaf_feature);
    // The first levels, of a few nodes: each split tested on every lane at once.
    while level < depth && end - first <= MAX_TOP_NODES {
        for (c, &node) in nodes.iter().enumerate().take(end).skip(first) {
            if node.bits.feature() == leaf_feature {
                continue;
            }
            let column = columns.as_ptr().add(node.bits.feature() << COLUMN_SHIFT);
            let (value, child) = (_mm512_set1_ps(node.value), node.bits.child() as u32);
            let child_vec = _mm512_set1_epi32(child as i32);
            let c_vec = _mm512_set1_epi32(c as i32);
            for (g, i) in at.iter_mut().enumerate().take(groups) {
                let here = _mm512_cmpeq_epi32_mask(*i, c_vec);
                let v = _mm512_loadu_ps(column.add(g * LANES));
                let default_left = if node.bits.default_left() { !0 } else { 0 };
                let right = goes_right(v, value, default_left, missing);
                let moved = _mm512_mask_mov_epi32(*i, here, child_vec);
                *i = _mm512_mask_add_epi32(moved, here & right, moved, one);
            }
        }
        // A node's children are never among the nodes of its own level, so a lane moved by one
        // node is not moved again by a later one in the same level.
        (first, end) = next_level(first, end);
        level += 1;
    }

    let base = nodes.as_ptr().cast::<u8>();
    let feature_mask = _mm512_set1_epi32((1 << FEATURE_BITS) - 1);
    let default_left = _mm512_set1_epi32(1 << FEATURE_BITS);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, one);
    let lane = lane_numbers();

    // The middle levels, of at most MAX_HELD_NODES nodes: held in registers (thresholds and
    // packed words apart), each lane's node picked from them by its index in the level. Lanes
    // already at a leaf of an earlier level (an index before the level's first) stay.
    while level < depth && end - first <= MAX_HELD_NODES {
        let held = Held::load(&nodes[first..end], even, odd);
        let first_vec = _mm512_set1_epi32(first as i32);
        for (g, i) in at.iter_mut().enumerate().take(groups) {
            let walking = _mm512_cmpge_epi32_mask(*i, first_vec);
            let (value, bits) = held.pick(_mm512_sub_epi32(*i, first_vec));
            let feature = _mm512_and_si512(bits, feature_mask);
            let row = _mm512_add_epi32(lane, _mm512_set1_epi32((g * LANES) as i32));
            let at_value = _mm512_add_epi32(_mm512_slli_epi32::<COLUMN_SHIFT>(feature), row);
            let v = _mm512_mask_i32gather_ps::<4>(
                _mm512_setzero_ps(),
                walking,
                at_value,
                columns.as_ptr().cast(),
            );
            let right = goes_right(
                v,
                value,
                _mm512_test_epi32_mask(bits, default_left),
                missing,
            );
            let child = _mm512_srli_epi32::<{ FEATURE_BITS + 1 }>(bits);
            let next = _mm512_mask_add_epi32(child, right, child, one);
            *i = _mm512_mask_mov_epi32(*i, walking, next);
        }
        (first, end) = next_level(first, end);
        level += 1;
    }

    // The rest: each lane's node and feature gathered.
    for _ in level..depth {
        for (g, i) in at.iter_mut().enumerate().take(groups) {
            let low = _mm512_i32gather_epi64::<8>(_mm512_castsi512_si256(*i), base.cast());
            let high = _mm512_i32gather_epi64::<8>(_mm512_extracti64x4_epi64::<1>(*i), base.cast());
            let value = _mm512_castsi512_ps(_mm512_permutex2var_epi32(low, even, high));
            let bits = _mm512_permutex2var_epi32(low, odd, high);
            let feature = _mm512_and_si512(bits, feature_mask);
            let row = _mm512_add_epi32(lane, _mm512_set1_epi32((g * LANES) as i32));
            let at_value = _mm512_add_epi32(_mm512_slli_epi32::<COLUMN_SHIFT>(feature), row);
            let v = _mm512_i32gather_ps::<4>(at_value, columns.as_ptr().cast());
            let right = goes_right(
                v,
                value,
                _mm512_test_epi32_mask(bits, default_left),
                missing,
            );
            let child = _mm512_srli_epi32::<{ FEATURE_BITS + 1 }>(bits);
            *i = _mm512_mask_add_epi32(child, right, child, one);
        }
    }

    let held = (nodes.len() <= MAX_HELD_WORDS).then(|| HeldWords::values_of(nodes, even));
    add_tree_leaves(nodes, held.as_ref(), &at, count, acc);
}

/// Adds the leaf value of each lane's node (`at`, 16 rows a vector) to the sums of the block's
/// `count` rows: picked from `held` (the tree's node values, [`HeldWords::values_of`]) where
/// given, else gathered from `nodes`.
///
/// # Safety
/// The CPU has AVX-512F; every lane of `at`'s first `count.div_ceil(16)` vectors is a node of
/// `nodes`; `count <= acc.len()`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn add_tree_leaves(
    nodes: &[Packed<u32>],
    held: Option<&HeldWords>,
    at: &[__m512i],
    count: usize,
    acc: &mut [f32],
) {
    for (g, &i) in at.iter().enumerate().take(count.div_ceil(LANES)) {
        let found = match held {
            Some(held) => _mm512_castsi512_ps(held.pick(i)),
            None => _mm512_i32gather_ps::<8>(i, nodes.as_ptr().cast()),
        };
        add_leaves(found, g * LANES, count, acc);
    }
}

/// Nodes `8 * half..8 * half + 8` of `nodes` (those it has; the rest zeros), 8 bytes a lane
/// pair.
#[inline]
#[target_feature(enable = "avx512f")]
fn eight_nodes(nodes: &[Packed<u32>], half: usize) -> __m512i {
    let nodes = nodes.get(half * 8..).unwrap_or(&[]);
    let mask = if nodes.len() >= 8 {
        !0
    } else {
        (1u8 << nodes.len()) - 1
    };
    // SAFETY: the mask reads only the `nodes.len().min(8)` nodes of `nodes`.
    #[allow(unsafe_code)]
    unsafe {
        _mm512_maskz_loadu_epi64(mask, nodes.as_ptr().cast())
    }
}

/// The lanes' numbers, 0 to 15.
#[inline(always)]
unsafe fn lane_numbers() -> __m512i {
    _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

/// Adds the leaf values `found` of the rows `first..first + 16` (those below `count`) to
/// `acc[k]`, one vector add (the lanes past `count` neither read nor written). Inlined into the
/// block walks (no instructions of its own to enable).
///
/// # Safety
/// The CPU has AVX-512F; `first < count <= acc.len()`.
#[inline(always)]
unsafe fn add_leaves(found: __m512, first: usize, count: usize, acc: &mut [f32]) {
    let lanes = (1u32 << (count - first).min(LANES)).wrapping_sub(1) as u16;
    let at_acc = acc.as_mut_ptr().add(first);
    let sums = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, at_acc), found);
    _mm512_mask_storeu_ps(at_acc, lanes, sums);
}

/// Most nodes a middle level may hold to be picked from registers (four of thresholds, four
/// of packed words) rather than gathered.
const MAX_HELD_NODES: usize = 4 * LANES;

/// One level's nodes in registers: thresholds and packed words, 16 per register.
struct Held {
    values: [__m512; 4],
    bits: [__m512i; 4],
    registers: usize,
}

impl Held {
    /// Loads `level` (at most [`MAX_HELD_NODES`] nodes; lanes past its end are zeros).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(level: &[Packed<u32>], even: __m512i, odd: __m512i) -> Held {
        debug_assert!(level.len() <= MAX_HELD_NODES);
        let mut held = Held {
            values: [_mm512_setzero_ps(); 4],
            bits: [_mm512_setzero_si512(); 4],
            registers: level.len().div_ceil(LANES),
        };
        for (r, part) in level.chunks(LANES).enumerate() {
            // Two halves of eight 8-byte nodes, split into thresholds and words.
            let (low, high) = (eight_nodes(part, 0), eight_nodes(part, 1));
            held.values[r] = _mm512_castsi512_ps(_mm512_permutex2var_epi32(low, even, high));
            held.bits[r] = _mm512_permutex2var_epi32(low, odd, high);
        }
        held
    }

    /// The threshold and packed word of each lane's node, by its index in the level (only
    /// the low bits below the held count matter; lanes outside the level get some node).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn pick(&self, index: __m512i) -> (__m512, __m512i) {
        let (v, b) = (&self.values, &self.bits);
        match self.registers {
            0 | 1 => (
                _mm512_permutexvar_ps(index, v[0]),
                _mm512_permutexvar_epi32(index, b[0]),
            ),
            2 => (
                _mm512_permutex2var_ps(v[0], index, v[1]),
                _mm512_permutex2var_epi32(b[0], index, b[1]),
            ),
            _ => {
                let upper = _mm512_test_epi32_mask(index, _mm512_set1_epi32(32));
                (
                    _mm512_mask_blend_ps(
                        upper,
                        _mm512_permutex2var_ps(v[0], index, v[1]),
                        _mm512_permutex2var_ps(v[2], index, v[3]),
                    ),
                    _mm512_mask_blend_epi32(
                        upper,
                        _mm512_permutex2var_epi32(b[0], index, b[1]),
                        _mm512_permutex2var_epi32(b[2], index, b[3]),
                    ),
                )
            }
        }
    }
}

/// Lanes whose value `v` goes right at their node (threshold `value`, the lanes whose node
/// sends missing values left in `default_left`): unless `v < value`, a missing value going its
/// node's default way (XGBoost's rule; the same in the portable walk). `missing` says whether
/// any value may be NaN.
#[inline]
#[target_feature(enable = "avx512f")]
fn goes_right(v: __m512, value: __m512, default_left: __mmask16, missing: bool) -> __mmask16 {
    let right = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(v, value);
    if missing {
        right & !(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v) & default_left)
    } else {
        right
    }
}

/// Most 128-byte tables a group's bin numbers take (16 rows of up to 8 columns each): models of
/// up to `8 * BIN_TABLES - 1` features are walked on bin numbers.
pub(super) const BIN_TABLES: usize = 4;

/// Bytes of one group's bin numbers, for `columns` columns (the features and the leaves' one).
pub(super) fn group_bytes(columns: usize) -> usize {
    columns.div_ceil(8) * 128
}

/// Whether this CPU runs [`walk_bins`] and [`quantize`].
pub(super) fn bins_available() -> bool {
    available()
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vbmi")
}

/// [`walk`] on the block's bin numbers ([`quantize`]) rather than its values, for a block
/// without missing values: `tree` is the tree numbered, `leaves` the tree itself (its layout
/// gives the levels; a tree too large for `tree.values` has its leaf values gathered from it).
/// The same leaves as [`walk`].
///
/// A split looks each lane's bin number up in registers (a byte permutation per 128 bytes of
/// the group's numbers) where [`walk`] gathers its value: on a Zen 4 host a 16-lane gather costs
/// about 5.5 ns, the lookup in 3 tables about 1.4. A node is one 4-byte word, so a gathered
/// level takes one 16-lane gather (not two 8-lane ones), and levels of up to
/// [`MAX_HELD_WORDS`] nodes are held in registers. So are the node values of a tree of at most
/// [`MAX_HELD_WORDS`] nodes (`tree.values`; a larger tree's leaf values are gathered from
/// `leaves`): XGBoost's default depth of 6 gives such trees. Picking the leaf
/// values from registers took the fire ensemble's 200 depth-6 boosting trees from 20.8 to 18.1
/// ms (`walk_bench`, 50,000 rows, one core, 5 interleaved runs, min of 10 each; Zen 4).
///
/// # Safety
/// The CPU has what [`bins_available`] asks; `leaves` is a compiled tree (every child index
/// inside it) whose features are below `leaf_feature + 1 <= 8 * BIN_TABLES`, `tree` its
/// numbering; `bins` holds `BLOCK_ROWS / 16` groups of `group_bytes(leaf_feature + 1)` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(super) unsafe fn walk_bins(
    tree: &bins::NumberedTree,
    leaves: &[Packed<u32>],
    leaf_feature: usize,
    depth: u32,
    bins: &[u8],
    count: usize,
    acc: &mut [f32],
) {
    let (words, values) = (&tree.words, &tree.values);
    assert!(words.len() == leaves.len() && leaf_feature < 8 * BIN_TABLES);
    assert!(values.is_empty() || (values.len() == leaves.len() && values.len() <= MAX_HELD_WORDS));
    assert!(count <= BLOCK_ROWS && acc.len() >= count);
    let group_bytes = group_bytes(leaf_feature + 1);
    assert!(bins.len() == BLOCK_ROWS / LANES * group_bytes);
    let tables = group_bytes / 128;
    let group = |g: usize| bins.as_ptr().add(g * group_bytes);
    let groups = count.div_ceil(LANES);
    let one = _mm512_set1_epi32(1);
    let mut at = [_mm512_setzero_si512(); BLOCK_ROWS / LANES];

    // As in `walk`: the first levels, of a few nodes, each split tested on every lane at once.
    let (mut level, mut first, mut end) = (0, 0usize, 1usize);
    let next_level = |first, end| next_level(leaves, first, end, leaf_feature);
    while level < depth && end - first <= MAX_TOP_NODES {
        for (c, &word) in words.iter().enumerate().take(end).skip(first) {
            let (at_least, feature, child) = bins::parts(word);
            if feature == leaf_feature {
                continue;
            }
            let at_least = _mm512_set1_epi32(at_least as i32);
            let child_vec = _mm512_set1_epi32(child as i32);
            let c_vec = _mm512_set1_epi32(c as i32);
            for (g, i) in at.iter_mut().enumerate().take(groups) {
                let here = _mm512_cmpeq_epi32_mask(*i, c_vec);
                let column = group(g).add(feature * LANES);
                let numbers = _mm512_cvtepu8_epi32(_mm_loadu_si128(column.cast()));
                let right = _mm512_cmpge_epu32_mask(numbers, at_least);
                let moved = _mm512_mask_mov_epi32(*i, here, child_vec);
                *i = _mm512_mask_add_epi32(moved, here & right, moved, one);
            }
        }
        (first, end) = next_level(first, end);
        level += 1;
    }
    // The middle levels, held in registers; lanes at a leaf of an earlier level stay.
    while level < depth && end - first <= MAX_HELD_WORDS {
        let held = HeldWords::load(&words[first..end]);
        let first_vec = _mm512_set1_epi32(first as i32);
        for (g, i) in at.iter_mut().enumerate().take(groups) {
            let walking = _mm512_cmpge_epi32_mask(*i, first_vec);
            let word = held.pick(_mm512_sub_epi32(*i, first_vec));
            let next = bins_step(group(g), tables, word);
            *i = _mm512_mask_mov_epi32(*i, walking, next);
        }
        (first, end) = next_level(first, end);
        level += 1;
    }
    // The rest: each lane's word gathered.
    for _ in level..depth {
        for (g, i) in at.iter_mut().enumerate().take(groups) {
            let word = _mm512_i32gather_epi32::<4>(*i, words.as_ptr().cast());
            *i = bins_step(group(g), tables, word);
        }
    }
    let held = (!values.is_empty()).then(|| HeldWords::load(values));
    add_tree_leaves(leaves, held.as_ref(), &at, count, acc);
}

/// Each lane's next node from its node's `word`: its bin number (in the group's numbers at
/// `group`, `tables` tables) at least the word's, right, else left.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn bins_step(group: *const u8, tables: usize, word: __m512i) -> __m512i {
    // Each lane's byte in the group: feature * 16 + lane.
    let feature_16 = _mm512_srli_epi32::<{ bins::FEATURE_SHIFT - 4 }>(word);
    let index = _mm512_add_epi32(
        _mm512_and_si512(
            feature_16,
            _mm512_set1_epi32((bins::FEATURE_MASK << 4) as i32),
        ),
        lane_numbers(),
    );
    // A byte permutation reads the low 7 bits of each byte: a lane's dword gets its table's
    // byte in its low byte.
    let table = |t: usize| {
        let at = group.add(t * 128);
        _mm512_permutex2var_epi8(
            _mm512_loadu_si512(at.cast()),
            index,
            _mm512_loadu_si512(at.add(64).cast()),
        )
    };
    let second = _mm512_test_epi32_mask(index, _mm512_set1_epi32(128));
    let bytes = match tables {
        1 => table(0),
        2 => _mm512_mask_blend_epi32(second, table(0), table(1)),
        t => {
            let upper = _mm512_test_epi32_mask(index, _mm512_set1_epi32(256));
            let low = _mm512_mask_blend_epi32(second, table(0), table(1));
            let high = if t == 3 {
                table(2)
            } else {
                _mm512_mask_blend_epi32(second, table(2), table(3))
            };
            _mm512_mask_blend_epi32(upper, low, high)
        }
    };
    let low_byte = _mm512_set1_epi32(0xff);
    let numbers = _mm512_and_si512(bytes, low_byte);
    let right = _mm512_cmpge_epu32_mask(numbers, _mm512_and_si512(word, low_byte));
    let child = _mm512_srli_epi32::<{ bins::CHILD_SHIFT }>(word);
    _mm512_mask_add_epi32(child, right, child, _mm512_set1_epi32(1))
}

/// Most nodes a middle level of [`walk_bins`] may hold in registers (eight of words), and most
/// nodes of a tree whose leaf values either block walk holds.
pub(super) const MAX_HELD_WORDS: usize = 8 * LANES;

/// Up to [`MAX_HELD_WORDS`] 32-bit words in registers, 16 per register: a level's words
/// ([`walk_bins`]), or a small tree's node values as bits (both block walks).
struct HeldWords {
    words: [__m512i; 8],
    registers: usize,
}

impl HeldWords {
    /// Loads `level` (at most [`MAX_HELD_WORDS`] words; lanes past its end are zeros).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load(level: &[u32]) -> HeldWords {
        debug_assert!(level.len() <= MAX_HELD_WORDS);
        let mut held = HeldWords {
            words: [_mm512_setzero_si512(); 8],
            registers: level.len().div_ceil(LANES),
        };
        for (r, part) in level.chunks(LANES).enumerate() {
            let mask = (1u32 << part.len()).wrapping_sub(1) as u16;
            // SAFETY: the mask reads only the `part.len()` (at most 16) words of `part`.
            #[allow(unsafe_code)]
            unsafe {
                held.words[r] = _mm512_maskz_loadu_epi32(mask, part.as_ptr().cast());
            }
        }
        held
    }

    /// The values of a tree's `nodes` (at most [`MAX_HELD_WORDS`]) as bits, taken out of the
    /// 8-byte nodes by the permutation `even`, so that [`HeldWords::pick`] gives each lane its
    /// node's value by the node's index.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn values_of(nodes: &[Packed<u32>], even: __m512i) -> HeldWords {
        debug_assert!(nodes.len() <= MAX_HELD_WORDS);
        let mut held = HeldWords {
            words: [_mm512_setzero_si512(); 8],
            registers: nodes.len().div_ceil(LANES),
        };
        for (r, part) in nodes.chunks(LANES).enumerate() {
            let (low, high) = (eight_nodes(part, 0), eight_nodes(part, 1));
            held.words[r] = _mm512_permutex2var_epi32(low, even, high);
        }
        held
    }

    /// Each lane's word, by its index among the held ones (in the level, or in the tree; lanes
    /// outside get some word).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn pick(&self, index: __m512i) -> __m512i {
        let w = &self.words;
        let pair = |r: usize| _mm512_permutex2var_epi32(w[r], index, w[r + 1]);
        let bit = |b: i32| _mm512_test_epi32_mask(index, _mm512_set1_epi32(b));
        match self.registers {
            0 | 1 => _mm512_permutexvar_epi32(index, w[0]),
            2 => pair(0),
            3 | 4 => _mm512_mask_blend_epi32(bit(32), pair(0), pair(2)),
            _ => {
                let low = _mm512_mask_blend_epi32(bit(32), pair(0), pair(2));
                let high = _mm512_mask_blend_epi32(bit(32), pair(4), pair(6));
                _mm512_mask_blend_epi32(bit(64), low, high)
            }
        }
    }
}

/// Writes the bin numbers of the block's first `count` rows ([`walk_bins`]): group `g`'s at
/// `bins[g * group_bytes..]`, feature `f` of its lane `l` at byte `f * 16 + l`; a value's
/// number is how many of `cuts[f * 256..][..256]` (its feature's thresholds ascending, then
/// infinities) are at or below it, at most `counts[f]` (its thresholds). Eight steps of a binary
/// search per 16 values, the first four in a register, the last four gathered. The leaves'
/// column is left as it is (a leaf goes right whatever its number).
///
/// # Safety
/// The CPU has what [`bins_available`] asks; `cuts` holds 256 values per feature of
/// `columns` but the last, `counts` one per feature, `bins` as [`walk_bins`] asks.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(super) unsafe fn quantize(
    columns: &[f32],
    cuts: &[f32],
    counts: &[i32],
    count: usize,
    bins: &mut [u8],
) {
    let features = columns.len() / BLOCK_ROWS - 1;
    assert!(cuts.len() == features * 256 && counts.len() == features);
    let group_bytes = group_bytes(features + 1);
    assert!(count <= BLOCK_ROWS && bins.len() == BLOCK_ROWS / LANES * group_bytes);
    let lane = lane_numbers();
    for (f, &thresholds) in counts.iter().enumerate() {
        let cuts = cuts.as_ptr().add(f * 256);
        let most = _mm512_set1_epi32(thresholds);
        // The first four steps probe only every 16th cut: held in one register.
        let every_16th = _mm512_i32gather_ps::<4>(
            _mm512_add_epi32(_mm512_slli_epi32::<4>(lane), _mm512_set1_epi32(15)),
            cuts.cast(),
        );
        for g in 0..count.div_ceil(LANES) {
            let v = _mm512_loadu_ps(columns.as_ptr().add((f << COLUMN_SHIFT) + g * LANES));
            let mut at = _mm512_setzero_si512();
            for step in [128, 64, 32, 16, 8, 4, 2, 1] {
                let probe = _mm512_add_epi32(at, _mm512_set1_epi32(step - 1));
                let cut = if step >= 16 {
                    _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(probe), every_16th)
                } else {
                    _mm512_i32gather_ps::<4>(probe, cuts.cast())
                };
                let below = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(cut, v);
                at = _mm512_mask_add_epi32(at, below, at, _mm512_set1_epi32(step));
            }
            let bytes = _mm512_cvtepi32_epi8(_mm512_min_epi32(at, most));
            _mm_storeu_si128(
                bins.as_mut_ptr().add(g * group_bytes + f * LANES).cast(),
                bytes,
            );
        }
    }
}

/// Trees walked at once for one row by [`walk_trees`]: eight vectors of eight, whose steps
/// overlap (fire ensemble, one row, hot cache: 3.3 us; the portable walk of 16 trees at once
/// 6.5 us. Single-record requests at 64 connections: 54K/s -> 63K/s; 32 trees at once 62K/s).
pub(super) const ROW_TREES: usize = 64;

/// The leaf one row ends in, in each of up to [`ROW_TREES`] trees at once: eight trees per
/// vector, each lane following its own tree (a gather of the eight nodes by address) and
/// looking its split feature up in the row (in two registers when it has at most 32 values,
/// else a gather from `row`). `trees[t]` is tree `t`'s first node's address and its depth; a
/// lane takes its own tree's depth in steps (a root that is a leaf takes none). Lanes past
/// `trees.len()` walk nowhere (their leaves are not the caller's).
///
/// # Safety
/// The CPU has AVX-512F ([`available`]); each address is that of a compiled tree's nodes
/// (every child index inside the tree, every feature below `row.len()`), alive for the call.
/// The gathers take these addresses whole (a null base plus the address): every load is inside
/// one of the trees, though no single Rust pointer covers them all.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn walk_trees(
    trees: &[(u64, u32)],
    row: &[f32],
    missing: bool,
) -> [f32; ROW_TREES] {
    const VECTORS: usize = ROW_TREES / 8;
    debug_assert!(trees.len() <= ROW_TREES);
    let lane = |v: usize, l: usize| trees.get(v * 8 + l).copied().unwrap_or((trees[0].0, 0));
    let mut start = [_mm512_setzero_si512(); VECTORS];
    let mut depth = [_mm512_setzero_si512(); VECTORS];
    for v in 0..VECTORS {
        let bases: [u64; 8] = std::array::from_fn(|l| lane(v, l).0);
        let depths: [u64; 8] = std::array::from_fn(|l| u64::from(lane(v, l).1));
        start[v] = _mm512_loadu_si512(bases.as_ptr().cast());
        depth[v] = _mm512_loadu_si512(depths.as_ptr().cast());
    }
    let deepest = trees.iter().map(|t| t.1).max().unwrap_or(0);
    let feature_mask = _mm512_set1_epi64((1 << FEATURE_BITS) - 1);
    let default_left = _mm512_set1_epi64(1 << FEATURE_BITS);
    let one = _mm512_set1_epi64(1);
    // A row of up to 32 values (with its missing column) is looked up in two registers.
    let in_registers = row.len() <= 32;
    let (row_low, row_high) = if in_registers {
        let mut padded = [f32::NAN; 32];
        padded[..row.len()].copy_from_slice(row);
        (
            _mm512_loadu_ps(padded.as_ptr()),
            _mm512_loadu_ps(padded.as_ptr().add(16)),
        )
    } else {
        (_mm512_setzero_ps(), _mm512_setzero_ps())
    };
    let mut at = [_mm512_setzero_si512(); VECTORS];
    for level in 0..deepest {
        let level = _mm512_set1_epi64(i64::from(level));
        for v in 0..VECTORS {
            let address = _mm512_add_epi64(start[v], _mm512_slli_epi64::<3>(at[v]));
            // Each 8-byte node: the threshold in the low half, the packed word in the high.
            let node = _mm512_i64gather_epi64::<1>(address, std::ptr::null());
            let bits = _mm512_srli_epi64::<32>(node);
            let feature = _mm512_and_si512(bits, feature_mask);
            let x = if in_registers {
                let index = _mm512_castsi256_si512(_mm512_cvtepi64_epi32(feature));
                _mm512_permutex2var_ps(row_low, index, row_high)
            } else {
                _mm512_castps256_ps512(_mm512_i64gather_ps::<4>(feature, row.as_ptr().cast()))
            };
            let value = _mm512_castps256_ps512(_mm256_castsi256_ps(_mm512_cvtepi64_epi32(node)));
            // Lanes 0-7 only: the upper half of each register is not defined.
            let default_left = u16::from(_mm512_test_epi64_mask(bits, default_left));
            let right = goes_right(x, value, default_left, missing) as u8;
            let child = _mm512_srli_epi64::<{ FEATURE_BITS + 1 }>(bits);
            let next = _mm512_mask_add_epi64(child, right, child, one);
            let walking = _mm512_cmplt_epu64_mask(level, depth[v]);
            at[v] = _mm512_mask_mov_epi64(at[v], walking, next);
        }
    }
    let mut leaves = [0f32; ROW_TREES];
    for v in 0..VECTORS {
        let address = _mm512_add_epi64(start[v], _mm512_slli_epi64::<3>(at[v]));
        let node = _mm512_i64gather_epi64::<1>(address, std::ptr::null());
        let value = _mm256_castsi256_ps(_mm512_cvtepi64_epi32(node));
        _mm256_storeu_ps(leaves.as_mut_ptr().add(v * 8), value);
    }
    leaves
}
