//! Containing a panic of a third-party decoder on corrupt input: the parquet crate indexes out
//! of bounds on some corrupt files (found by `tests/fuzz_e2e.rs`), and a corrupt training file
//! must fail with a reason, not abort the job. `train`'s panic hook lets a panic inside
//! [`contained`] unwind to it instead of ending the process.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`; a panic inside becomes `Err` with its message.
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let outer = CONTAINED.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Whether the current thread is inside [`contained`] (a panic hook should then let it unwind).
pub fn is_contained() -> bool {
    CONTAINED.with(Cell::get)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_an_error_and_the_flag_is_restored() {
        let r: Result<(), String> = super::contained(|| panic!("index out of bounds"));
        assert_eq!(r.unwrap_err(), "index out of bounds");
        assert!(!super::is_contained());
        assert_eq!(super::contained(|| 5), Ok(5));
    }
}
