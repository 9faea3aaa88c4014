//! Allocator tuning for both binaries, and the memory figures multi-model serving budgets with.
//!
//! Large short-lived buffers (XGBoost's histograms and row partitions in `train`; request bodies,
//! feature matrices and answers in `serve`) are freed soon after use. glibc raises its mmap
//! threshold after such blocks are freed, so later ones come from the heap and stay mapped.
//! Pinning the threshold at glibc's initial 128 KiB keeps large blocks in mmap, returned to the
//! system on free. Measured: `train` on the 251K-row fire data peaked at 140 MiB instead of
//! 164-184 MiB, same wall time; `serve` under 1M-row batch transform with 6 MiB payloads, 2 in
//! flight, peaked at 22.9 MiB instead of 34.6 MiB, same throughput (bench/tabular.sh). Once the
//! fire ensemble's walk was fast, those fresh pages cost its 1M-row batch 11 % of the server's
//! CPU (12 % more rows per second unpinned, peak 63 MiB instead of 35): kept pinned, since the
//! tabular batch's peak would then pass 4x its largest payload (README: Batch, Decisions).
//! `serve` now hands those buffers from one request to the next itself (`serve::buffers`),
//! a bounded few, which took most of the page faults away without glibc's per-thread heaps.

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

/// The memory this container may use, in bytes: its cgroup's limit (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`) when there is one below the machine's memory, else the machine's
/// memory (`MemTotal`). `None` when neither can be read.
pub fn limit_bytes() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .into_iter()
    .find_map(|p| read(p)?.trim().parse::<u64>().ok());
    let machine = read("/proc/meminfo").and_then(|s| {
        let kib = s
            .lines()
            .find(|l| l.starts_with("MemTotal:"))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()?;
        Some(kib * 1024)
    });
    match (cgroup, machine) {
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    }
}

/// This process's resident memory now, in bytes (Linux; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page_size())
}

#[allow(unsafe_code)]
fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Gives freed heap memory back to the system (glibc keeps small freed blocks otherwise).
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
