//! Allocator tuning for both binaries.
//!
//! Large short-lived buffers (XGBoost's histograms and row partitions in `train`; request bodies,
//! feature matrices and answers in `serve`) are freed soon after use. glibc raises its mmap
//! threshold after such blocks are freed, so later ones come from the heap and stay mapped.
//! Pinning the threshold at glibc's initial 128 KiB keeps large blocks in mmap, returned to the
//! system on free. Measured: `train` on the 251K-row fire data peaked at 140 MiB instead of
//! 164-184 MiB, same wall time; `serve` under 1M-row batch transform with 6 MiB payloads, 2 in
//! flight, peaked at 22.9 MiB instead of 34.6 MiB, same throughput (bench/tabular.sh).

/// Pins glibc's mmap threshold at 128 KiB (same as `MALLOC_MMAP_THRESHOLD_=131072`).
#[allow(unsafe_code)]
pub fn pin_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called once at start-up, before any
    // other thread exists, with a documented parameter and value.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
