//! SIGTERM and SIGINT, from the first moment of serving. In a container `serve` is PID 1, and the
//! kernel drops a signal PID 1 has no handler for: a `docker stop` arriving while the server
//! starts (before the runtime has installed its handler) was lost, and the container was
//! killed 10 s later. The signals are blocked (kept pending) from the start of `main` until
//! the handler exists.

/// Keeps SIGTERM and SIGINT pending in this thread and every thread it starts, until
/// [`shutdown`] has its handler. Called at the start of `main`, after anything that `exec`s
/// another program (a blocked mask survives `exec`).
pub fn hold() {
    set_mask(libc::SIG_BLOCK);
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

fn release() {
    set_mask(libc::SIG_UNBLOCK);
}

/// Blocks (`SIG_BLOCK`) or unblocks (`SIG_UNBLOCK`) SIGTERM and SIGINT in this thread.
#[allow(unsafe_code)]
fn set_mask(how: libc::c_int) {
    // SAFETY: plain libc calls on a signal set owned here (sigemptyset initialises it before
    // sigaddset and pthread_sigmask read it); changing the calling thread's mask is always
    // allowed.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}
