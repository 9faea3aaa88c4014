//! SIGTERM and SIGINT, from the first moment of serving. In a container `serve` is PID 1, and the
//! kernel drops a signal PID 1 has no handler for: a `docker stop` arriving while the server
//! starts (before the runtime has installed its handler) was lost, and the container was
//! killed 10 s later. The signals are blocked (kept pending) from the start of `main` until
//! the handler exists.

/// Keeps SIGTERM and SIGINT pending in this thread and every thread it starts, until
/// [`shutdown`] has its handler. Called at the start of `main`, after anything that `exec`s
/// another program (a blocked mask survives `exec`).
#[allow(unsafe_code)]
pub fn hold() {
    // SAFETY: plain libc calls on a signal set owned here; changing the calling thread's mask
    // is always allowed.
    unsafe {
        let set = termination_set();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Waits for SIGTERM or SIGINT: installs the handlers, then lets a signal held by [`hold`] (and
/// every later one) through to this thread.
pub async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    // Both handlers exist once `signal` returns (`ctrl_c` would install its own only when first
    // polled, after the release).
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    release();
    tokio::select! {
        _ = term.recv() => {}
        _ = interrupt.recv() => {}
    }
}

#[allow(unsafe_code)]
fn release() {
    // SAFETY: as in `hold`.
    unsafe {
        let set = termination_set();
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

#[allow(unsafe_code)]
fn termination_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}
