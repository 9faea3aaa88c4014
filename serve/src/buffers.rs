//! Request bodies and feature matrices kept for the next request.
//!
//! A batch payload (6 MB by default) and its matrix are larger than glibc's mmap threshold, so
//! each request would map fresh pages, fault every one of them in (zeroed by the kernel) and
//! unmap them again; the threshold stays pinned (`common::memory`) because letting glibc keep
//! such blocks in its per-thread heaps cost more memory than the payloads. Instead the few
//! largest buffers are handed from one request to the next here: at most [`KEPT`] of each kind,
//! each at most [`MAX_KEPT_BYTES`] (48 MiB in all at most), so what stays resident between
//! requests, and after the last, is bounded; with 2 payloads in flight it is what they held
//! anyway. Bodies sent without a Content-Length (chunked) start in a new buffer. Multi-model
//! endpoints keep none ([`keep_none`]): their memory goes to models.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Buffers of each kind kept: as many as requests a batch job sends at once, and one more.
pub const KEPT: usize = 3;

/// Largest buffer kept: a 6 MB payload (SageMaker's default `MaxPayloadInMB`) with room.
pub const MAX_KEPT_BYTES: usize = 8 << 20;

/// Smaller buffers come from glibc's heap, which reuses them without the kernel's help.
pub const MIN_KEPT_BYTES: usize = 128 << 10;

/// Keeps no buffers from now on (multi-model endpoints).
pub fn keep_none() {
    BODIES.keep_none();
    VALUES.keep_none();
}

/// Request bodies.
pub static BODIES: Pool<u8> = Pool::new();

/// Feature values of decoded records.
pub static VALUES: Pool<f32> = Pool::new();

/// Buffers of one element type, kept between requests.
pub struct Pool<T> {
    kept: Mutex<Vec<Vec<T>>>,
    keeping: AtomicBool,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Pool<T> {
    /// An empty pool that keeps buffers.
    pub const fn new() -> Self {
        Pool {
            kept: Mutex::new(Vec::new()),
            keeping: AtomicBool::new(true),
        }
    }

    /// Drops the buffers kept and keeps none from now on.
    pub fn keep_none(&self) {
        self.keeping.store(false, Ordering::Relaxed);
        // Taken out of the lock first: the buffers are freed once it is released.
        let _kept = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// An empty buffer for about `expected` elements: a kept one when that many are worth
    /// keeping and one is kept (its room may be more or less than `expected`; the caller grows
    /// it, exactly, as it fills it), else a new one with room for `initial`. Small requests never
    /// hold a kept buffer.
    pub fn take(&self, expected: usize, initial: usize) -> Vec<T> {
        if expected.saturating_mul(std::mem::size_of::<T>()) >= MIN_KEPT_BYTES {
            let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner()).pop();
            if let Some(buffer) = kept {
                return buffer;
            }
        }
        Vec::with_capacity(initial)
    }

    /// Keeps `buffer` for a later [`take`](Self::take) if it is one worth keeping and there is
    /// room; drops it otherwise.
    pub fn give(&self, mut buffer: Vec<T>) {
        let bytes = buffer.capacity() * std::mem::size_of::<T>();
        if !self.keeping.load(Ordering::Relaxed)
            || !(MIN_KEPT_BYTES..=MAX_KEPT_BYTES).contains(&bytes)
        {
            return;
        }
        buffer.clear();
        // (A buffer not kept is freed after the lock is released: `buffer` was declared first.)
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT {
            kept.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_buffer_comes_back_empty_and_is_grown_when_asked_for_more() {
        let pool = Pool::<u8>::new();
        let mut body = pool.take(1 << 20, 1 << 20);
        body.extend_from_slice(b"1,2,3\n");
        let address = body.as_ptr();
        pool.give(body);
        let small = pool.take(1000, 1000);
        assert_ne!(
            small.as_ptr(),
            address,
            "a small request takes a new buffer"
        );
        let again = pool.take(MIN_KEPT_BYTES, 0);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address, "the same buffer again");
        assert!(again.capacity() >= 1 << 20);
        pool.give(again);
        let mut larger = pool.take(2 << 20, 0);
        larger.reserve_exact(2 << 20);
        assert_eq!(larger.capacity(), 2 << 20, "grown exactly");
    }

    #[test]
    fn keeps_a_few_buffers_of_the_sizes_that_matter_and_none_once_told() {
        let pool = Pool::<f32>::new();
        let kept = |pool: &Pool<f32>| pool.kept.lock().unwrap().len();
        pool.give(Vec::with_capacity(1000));
        pool.give(Vec::with_capacity(MAX_KEPT_BYTES / 4 + 1));
        assert_eq!(
            kept(&pool),
            0,
            "small ones are the heap's, huge ones are not kept"
        );
        for _ in 0..KEPT + 2 {
            pool.give(Vec::with_capacity(MAX_KEPT_BYTES / 4));
        }
        assert_eq!(kept(&pool), KEPT);
        pool.keep_none();
        assert_eq!(kept(&pool), 0);
        pool.give(Vec::with_capacity(MAX_KEPT_BYTES / 4));
        assert_eq!(kept(&pool), 0);
        assert!(pool.take(MAX_KEPT_BYTES, 10).capacity() >= 10);
    }
}
