//! The job's verdict for SageMaker: `output/failure` with a reason, or `output/success`.

use common::access;
use common::opt_ml::OptMl;
use std::io::Write;

/// Most of the failure file SageMaker shows as `FailureReason`: the file holds at most this
/// many characters (the log line carries the same text).
pub const FAILURE_REASON_LIMIT: usize = 1024;

/// The reason as it goes into the failure file: one line of printable text, at most
/// [`FAILURE_REASON_LIMIT`] characters (cut ones end in `...`).
pub fn failure_reason(message: &str) -> String {
    let trimmed = message.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    common::error::one_line(trimmed, FAILURE_REASON_LIMIT)
}

/// Logs the reason and writes it to the failure file, unless another writer already did (the
/// first failure is the cause; later ones are consequences). When the file cannot be written
/// (permissions, a full disk), the log says so and why, and no empty file is left behind.
pub fn write_failure(opt_ml: &OptMl, message: &str) {
    let reason = failure_reason(message);
    tracing::error!("{reason}");
    let path = opt_ml.failure_file();
    if let Some(dir) = path.parent() {
        let _ = access::create_dir_all(dir);
    }
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| {
            let result = writeln!(f, "{reason}").and_then(|()| f.sync_all());
            if result.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            result
        });
    match written {
        Ok(()) => access::adopt_parent_owner(&path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            tracing::warn!(path = %path.display(), "a failure file exists already; keeping the first reason");
        }
        Err(e) => {
            let why = common::Error::io(&path, e);
            tracing::error!("cannot write the failure file: {why}");
        }
    }
}

/// Writes the empty `output/success` marker.
pub fn write_success(opt_ml: &OptMl) -> std::io::Result<()> {
    access::create_dir_all(&opt_ml.output_dir())?;
    std::fs::write(opt_ml.success_file(), b"")?;
    access::adopt_parent_owner(&opt_ml.success_file());
    Ok(())
}

/// Makes a panic a failed job like any other: the failure file names it, and the process exits
/// 1 (not 101) once the reason is written.
pub fn install_panic_hook(opt_ml: &OptMl) {
    let opt_ml = opt_ml.clone();
    std::panic::set_hook(Box::new(move |info| {
        if common::contain::is_contained() {
            return; // unwinds to `contained`, which turns it into an error
        }
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        fail_and_exit(
            &opt_ml,
            &format!(
                "Internal error: the training process panicked ({what}{place}); please report this"
            ),
            std::time::Duration::ZERO,
        );
    }));
}

/// Writes the failure and ends the process after `linger`, one caller at a time: threads of a
/// multi-host job may fail together (two peers lost at once), and an exit while another thread
/// writes would leave the failure file empty.
pub fn fail_and_exit(opt_ml: &OptMl, reason: &str, linger: std::time::Duration) -> ! {
    static FAILING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _only = FAILING.lock().unwrap_or_else(|e| e.into_inner());
    write_failure(opt_ml, reason);
    std::thread::sleep(linger);
    exit_now(1)
}

/// The failure file and reason an abort writes ([`fail_on_abort`]).
static ABORT_FAILURE: std::sync::OnceLock<(std::ffi::CString, Vec<u8>)> =
    std::sync::OnceLock::new();

/// Makes an abort a failed job with a reason, like any other. XGBoost's tracker runs in a thread
/// of its own, and a host that breaks off while the hosts join makes it throw there, which ends
/// the process through `abort` (measured: exit 134, no failure file). A failure already written
/// (a panic, a failed host) is kept.
pub fn fail_on_abort(opt_ml: &OptMl) {
    let path = opt_ml.failure_file();
    if let Some(dir) = path.parent() {
        let _ = access::create_dir_all(dir);
    }
    let reason = failure_reason(
        "Distributed training error: XGBoost's collective aborted this host, most likely because a host broke off while the hosts were joining (XGBoost's own words are in the log above); the other hosts fail too",
    );
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    if ABORT_FAILURE
        .set((path, format!("{reason}\n").into_bytes()))
        .is_err()
    {
        return;
    }
    let handler: extern "C" fn(libc::c_int) = on_abort;
    // SAFETY: the handler only makes async-signal-safe calls (open, write, close, _exit) on
    // data prepared above.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGABRT, handler as libc::sighandler_t);
    }
}

extern "C" fn on_abort(_: libc::c_int) {
    #[allow(unsafe_code)]
    // SAFETY: async-signal-safe calls only, on bytes that live as long as the process.
    unsafe {
        if let Some((path, text)) = ABORT_FAILURE.get() {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o644,
            );
            if fd >= 0 {
                libc::write(fd, text.as_ptr().cast(), text.len());
                libc::fsync(fd);
                libc::close(fd);
            }
            libc::write(2, text.as_ptr().cast(), text.len());
        }
        libc::_exit(1);
    }
}

/// Ends the process at once, without exit handlers: other threads (XGBoost's, OpenMP's) may
/// still be running, and C++ static destructors must not run under them.
#[allow(unsafe_code)]
fn exit_now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit takes a plain status and never returns; nothing of ours is used after it.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_one_printable_line_within_the_limit() {
        assert_eq!(failure_reason("a\nb\0c\r\n"), "a b c");
        let long = "x".repeat(10 * 1024 * 1024);
        let r = failure_reason(&long);
        assert_eq!(r.chars().count(), FAILURE_REASON_LIMIT);
        assert!(r.ends_with("..."));
    }

    #[test]
    fn first_failure_wins_and_nothing_is_left_empty() {
        let dir = tempfile::tempdir().unwrap();
        let opt_ml = OptMl::at(dir.path());
        write_failure(&opt_ml, "first");
        write_failure(&opt_ml, "second");
        let text = std::fs::read_to_string(opt_ml.failure_file()).unwrap();
        assert_eq!(text, "first\n");
    }
}
