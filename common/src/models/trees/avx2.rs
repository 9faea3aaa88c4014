//! The block walk of 8-byte-node trees with AVX2, for x86-64 CPUs without AVX-512 (AMD before
//! Zen 4, older Intel): a block's rows 8 per vector. Chosen at run time ([`available`]) when
//! AVX-512 is not there; the same steps and sums as the portable walk and `avx512::walk`, whose
//! plan it follows: the first levels, of a few nodes, tested on every lane with contiguous
//! loads; the next, of at most [`MAX_HELD_NODES`] nodes, held in registers and picked by
//! permutation (AVX2 permutes 8 lanes, so a level of 32 nodes takes four registers and two
//! rounds of blends); the rest gathered (each lane's 8-byte node by two 4-lane gathers, its
//! value by one 8-lane gather).

use super::{next_level, Packed, Width, BLOCK_ROWS};
use std::arch::x86_64::*;

/// Rows per vector.
const LANES: usize = 8;

/// `log2(BLOCK_ROWS)`: a column's offset is `feature << COLUMN_SHIFT`.
const COLUMN_SHIFT: i32 = BLOCK_ROWS.trailing_zeros() as i32;
const _: () = assert!(BLOCK_ROWS.is_power_of_two() && BLOCK_ROWS.is_multiple_of(LANES));

/// Most nodes a level may hold to be walked without gathers.
const MAX_TOP_NODES: usize = 4;

/// Most nodes a middle level may hold to be picked from registers (four of thresholds, four of
/// packed words) rather than gathered.
const MAX_HELD_NODES: usize = 4 * LANES;

const FEATURE_BITS: i32 = <u32 as Width>::FEATURE_BITS as i32;

/// Whether this CPU runs [`walk`].
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Adds the leaf each of the block's `count` rows ends in, after `depth` steps, to `acc[k]`:
/// `avx512::walk`'s contract, 8 lanes at a time. `columns` holds the
/// block column-major: feature `f` of row `k` at `columns[(f << COLUMN_SHIFT) + k]`, the last
/// column (`n_features`, where leaves point) all missing. `missing` says whether any other value
/// is NaN. The held levels rely on the compiled layout (breadth-first) for their answers, not
/// for the safety of their reads.
///
/// # Safety
/// The CPU has AVX2 ([`available`]); `nodes` is a compiled tree (every child index inside it,
/// every feature at most the last column of `columns`), so every address read is in `nodes` or
/// `columns`.
#[target_feature(enable = "avx2")]
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
    let mut at = [_mm256_setzero_si256(); BLOCK_ROWS / LANES];

    // Each level's nodes are `nodes[first..end]`; a lane before `first` is at a leaf of an
    // earlier level.
    let (mut level, mut first, mut end) = (0, 0usize, 1usize);
    let next_level = |first, end| next_level(nodes, first, end, leaf_feature);
    // The first levels: each split tested on every lane at once.
    while level < depth && end - first <= MAX_TOP_NODES {
        for (c, &node) in nodes.iter().enumerate().take(end).skip(first) {
            if node.bits.feature() == leaf_feature {
                continue;
            }
            let column = columns.as_ptr().add(node.bits.feature() << COLUMN_SHIFT);
            let value = _mm256_set1_ps(node.value);
            let child = _mm256_set1_epi32(node.bits.child() as i32);
            let c_vec = _mm256_set1_epi32(c as i32);
            let default_left =
                _mm256_castsi256_ps(_mm256_set1_epi32(if node.bits.default_left() {
                    -1
                } else {
                    0
                }));
            for (g, i) in at.iter_mut().enumerate().take(groups) {
                let here = _mm256_cmpeq_epi32(*i, c_vec);
                let v = _mm256_loadu_ps(column.add(g * LANES));
                let right = goes_right(v, value, default_left, missing);
                let moved = _mm256_blendv_epi8(*i, child, here);
                // Lanes of all ones are -1: subtracting them steps right.
                *i = _mm256_sub_epi32(moved, _mm256_and_si256(here, right));
            }
        }
        (first, end) = next_level(first, end);
        level += 1;
    }

    let base = nodes.as_ptr().cast::<u8>();

    // The middle levels, held in registers; lanes already at a leaf stay.
    while level < depth && end - first <= MAX_HELD_NODES {
        let held = Held::load(&nodes[first..end]);
        let first_vec = _mm256_set1_epi32(first as i32);
        for (g, i) in at.iter_mut().enumerate().take(groups) {
            // A lane's index in the level; negative for a lane at an earlier leaf.
            let index = _mm256_sub_epi32(*i, first_vec);
            let walking = _mm256_cmpgt_epi32(index, _mm256_set1_epi32(-1));
            let (value, bits) = held.pick(index);
            let next = step(columns, g, value, bits, missing);
            *i = _mm256_blendv_epi8(*i, next, walking);
        }
        (first, end) = next_level(first, end);
        level += 1;
    }

    // The rest: each lane's node gathered.
    for _ in level..depth {
        for (g, i) in at.iter_mut().enumerate().take(groups) {
            let low = _mm256_i32gather_epi64::<8>(base.cast(), _mm256_castsi256_si128(*i));
            let high = _mm256_i32gather_epi64::<8>(base.cast(), _mm256_extracti128_si256::<1>(*i));
            let (value, bits) = split_nodes(low, high);
            *i = step(columns, g, value, bits, missing);
        }
    }

    for (g, &i) in at.iter().enumerate().take(groups) {
        let leaves = _mm256_i32gather_ps::<8>(base.cast(), i);
        let first = g * LANES;
        if count - first >= LANES {
            let at_acc = acc.as_mut_ptr().add(first);
            _mm256_storeu_ps(at_acc, _mm256_add_ps(_mm256_loadu_ps(at_acc), leaves));
            continue;
        }
        let mut values = [0f32; LANES];
        _mm256_storeu_ps(values.as_mut_ptr(), leaves);
        for (k, v) in values.iter().take(count - first).enumerate() {
            acc[first + k] += v;
        }
    }
}

/// The next node of group `g`'s lanes, from each lane's node's threshold and packed word: its
/// split feature's value read from `columns` (one gather), then its left or right child.
///
/// # Safety
/// Every lane's feature is a column of `columns` (as [`walk`] requires).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn step(columns: &[f32], g: usize, value: __m256, bits: __m256i, missing: bool) -> __m256i {
    let feature = _mm256_and_si256(bits, _mm256_set1_epi32((1 << FEATURE_BITS) - 1));
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let row = _mm256_add_epi32(lane, _mm256_set1_epi32((g * LANES) as i32));
    let at_value = _mm256_add_epi32(_mm256_slli_epi32::<COLUMN_SHIFT>(feature), row);
    let v = _mm256_i32gather_ps::<4>(columns.as_ptr(), at_value);
    let default_left = _mm256_set1_epi32(1 << FEATURE_BITS);
    let left_if_missing = _mm256_cmpeq_epi32(_mm256_and_si256(bits, default_left), default_left);
    let right = goes_right(v, value, _mm256_castsi256_ps(left_if_missing), missing);
    let child = _mm256_srli_epi32::<{ FEATURE_BITS + 1 }>(bits);
    _mm256_sub_epi32(child, right)
}

/// Eight 8-byte nodes (four in `low`, four in `high`) as eight thresholds and eight packed
/// words, in node order.
#[inline]
#[target_feature(enable = "avx2")]
fn split_nodes(low: __m256i, high: __m256i) -> (__m256, __m256i) {
    let (low, high) = (_mm256_castsi256_ps(low), _mm256_castsi256_ps(high));
    // Per 128-bit half: the even (threshold) or odd (word) floats of `low`, then of `high`;
    // then the 64-bit pieces back in node order.
    let values = _mm256_shuffle_ps::<0b10_00_10_00>(low, high);
    let bits = _mm256_shuffle_ps::<0b11_01_11_01>(low, high);
    let in_order = |v: __m256| _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(v));
    (_mm256_castsi256_ps(in_order(values)), in_order(bits))
}

/// One level's nodes in registers: thresholds and packed words, 8 per register.
struct Held {
    values: [__m256; 4],
    bits: [__m256i; 4],
    registers: usize,
}

impl Held {
    /// Loads `level` (at most [`MAX_HELD_NODES`] nodes; lanes past its end are zeros).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load(level: &[Packed<u32>]) -> Held {
        debug_assert!(level.len() <= MAX_HELD_NODES);
        let mut padded = [Packed {
            value: 0f32,
            bits: 0u32,
        }; MAX_HELD_NODES];
        padded[..level.len()].copy_from_slice(level);
        let mut held = Held {
            values: [_mm256_setzero_ps(); 4],
            bits: [_mm256_setzero_si256(); 4],
            registers: level.len().div_ceil(LANES),
        };
        for r in 0..held.registers {
            // SAFETY: `padded` holds 4 * 8 nodes of 8 bytes; each read is 4 of register `r`'s 8.
            #[allow(unsafe_code)]
            let (low, high) = unsafe {
                let at = padded.as_ptr().add(r * LANES).cast::<__m256i>();
                (_mm256_loadu_si256(at), _mm256_loadu_si256(at.add(1)))
            };
            (held.values[r], held.bits[r]) = split_nodes(low, high);
        }
        held
    }

    /// The threshold and packed word of each lane's node, by its index in the level (only the
    /// low bits below the held count matter; lanes outside the level get some node).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn pick(&self, index: __m256i) -> (__m256, __m256i) {
        let mut values = [_mm256_setzero_ps(); 4];
        let mut words = [_mm256_setzero_ps(); 4];
        for r in 0..self.registers.max(1) {
            values[r] = _mm256_permutevar8x32_ps(self.values[r], index);
            words[r] = _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(self.bits[r], index));
        }
        if self.registers <= 1 {
            return (values[0], _mm256_castps_si256(words[0]));
        }
        // Blends on bit 3 of the index (which register of a pair), then bit 4 (which pair): a
        // blend takes each lane's sign bit.
        let bit3 = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(index));
        let bit4 = _mm256_castsi256_ps(_mm256_slli_epi32::<27>(index));
        let pairs = |x: &[__m256; 4]| {
            let low = _mm256_blendv_ps(x[0], x[1], bit3);
            if self.registers == 2 {
                return low;
            }
            _mm256_blendv_ps(low, _mm256_blendv_ps(x[2], x[3], bit3), bit4)
        };
        (pairs(&values), _mm256_castps_si256(pairs(&words)))
    }
}

/// Lanes (all ones) whose value `v` goes right at their node (threshold `value`, the lanes whose
/// node sends missing values left all ones in `default_left`): unless `v < value`, a missing
/// value going its node's default way. `missing` says whether any value may be NaN.
#[inline]
#[target_feature(enable = "avx2")]
fn goes_right(v: __m256, value: __m256, default_left: __m256, missing: bool) -> __m256i {
    let right = _mm256_cmp_ps::<_CMP_NLT_UQ>(v, value);
    let right = if missing {
        let left_missing = _mm256_and_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v), default_left);
        _mm256_andnot_ps(left_missing, right)
    } else {
        right
    };
    _mm256_castps_si256(right)
}
