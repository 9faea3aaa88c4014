//! Work split into contiguous row ranges, one thread per range.

use ndarray::{s, ArrayView2};
use std::ops::Range;

/// The cores this process may use (1 when that cannot be known).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Splits `rows` into at most `threads` contiguous ranges of at least `min_rows` (one range when
/// there are fewer rows), in row order.
pub fn row_ranges(rows: usize, threads: usize, min_rows: usize) -> Vec<Range<usize>> {
    let k = threads.clamp(1, (rows / min_rows).max(1));
    let step = rows.div_ceil(k);
    (0..k)
        .map(|i| i * step..((i + 1) * step).min(rows))
        .filter(|r| !r.is_empty())
        .collect()
}

/// `f` of each of [`row_ranges`]' ranges, in row order: one range on the calling thread (a
/// panic there unwinds as usual), several each on a thread of its own, a range whose thread
/// panicked giving its panic.
pub fn in_row_ranges<T: Send>(
    rows: usize,
    threads: usize,
    min_rows: usize,
    f: impl Fn(Range<usize>) -> T + Sync,
) -> Vec<std::thread::Result<T>> {
    let ranges = row_ranges(rows, threads, min_rows);
    if ranges.len() == 1 {
        return vec![Ok(f(0..rows))];
    }
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = ranges.into_iter().map(|r| s.spawn(move || f(r))).collect();
        handles.into_iter().map(|h| h.join()).collect()
    })
}

/// [`in_row_ranges`] over the rows of `x`: `f` of each range's rows as a view.
pub fn in_row_views<T: Send>(
    x: ArrayView2<f32>,
    threads: usize,
    min_rows: usize,
    f: impl Fn(ArrayView2<f32>) -> T + Sync,
) -> Vec<std::thread::Result<T>> {
    in_row_ranges(x.nrows(), threads, min_rows, |r| f(x.slice(s![r, ..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_row_once() {
        assert_eq!(row_ranges(1, 2, 2048), vec![0..1]);
        assert_eq!(row_ranges(4095, 2, 2048), vec![0..4095]);
        assert_eq!(row_ranges(5000, 2, 2048), vec![0..2500, 2500..5000]);
        assert_eq!(
            row_ranges(10_001, 3, 2048),
            vec![0..3334, 3334..6668, 6668..10_001]
        );
        assert_eq!(row_ranges(40, 2, 16), vec![0..20, 20..40]);
    }

    #[test]
    fn ranges_are_worked_in_row_order_and_panics_are_returned() {
        let sums = in_row_ranges(10_000, 3, 100, |r| r.sum::<usize>());
        let sums: Vec<usize> = sums.into_iter().map(Result::unwrap).collect();
        assert_eq!(sums.len(), 3);
        assert_eq!(sums.iter().sum::<usize>(), (0..10_000usize).sum::<usize>());
        let outcomes = in_row_ranges(200, 2, 100, |r| assert!(r.start == 0));
        assert!(outcomes[0].is_ok() && outcomes[1].is_err());
    }
}
