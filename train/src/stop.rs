//! SIGTERM handling: SageMaker stops a job with SIGTERM and kills it 120 s later.
//!
//! The binary is often PID 1 in its container, where a signal without a handler does nothing,
//! so a handler is always installed. It only sets a flag; training polls it at safe points
//! (between files, between models, after every boosting round) and stops there.

use common::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag raised by SIGTERM or SIGINT.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag raised by SIGTERM and SIGINT from now on.
    pub fn install() -> std::io::Result<Self> {
        let flag = Self::default();
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&flag.0))?;
        }
        Ok(flag)
    }

    /// Raises the flag (tests; the signal handler does the same).
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// `Err(Stopped)` once the flag is raised.
    pub fn check(&self) -> Result<()> {
        if self.0.load(Ordering::SeqCst) {
            Err(Error::Stopped(
                "the job received SIGTERM (StopTrainingJob or MaxRuntimeInSeconds) and stopped before the model was complete; no new model was written".into(),
            ))
        } else {
            Ok(())
        }
    }
}
