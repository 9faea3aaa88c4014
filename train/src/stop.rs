//! SIGTERM handling: SageMaker stops a job with SIGTERM and kills it 120 s later.
//!
//! The binary is often PID 1 in its container, where a signal without a handler does nothing,
//! so a handler is always installed. It only sets a flag; training polls it at safe points
//! (between files, between models, after every boosting round) and stops there.

use common::collective::World;
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

impl StopFlag {
    /// [`StopFlag::check`] agreed by every host (any host's flag raises every host's), for safe
    /// points all hosts reach together: they then stop at the same step, not one of them in the
    /// middle of a collective step the others wait in.
    ///
    /// On several hosts the answer is the agreed one alone: a flag raised here after this host
    /// sent its value (SIGTERM arriving in between) counts at the next safe point, or one host
    /// would stop where the others go on.
    pub fn agreed(&self, world: &World) -> Result<()> {
        if !world.is_distributed() {
            return self.check();
        }
        let mut raised = [f64::from(u8::from(self.check().is_err()))];
        world.max(&mut raised)?;
        if raised[0] > 0.0 {
            self.raise();
            return self.check();
        }
        Ok(())
    }
}

/// What a safe point of a fit does once SIGTERM came: with `save_model_on_termination` the fit
/// ends there and the model is saved as it stands (marked partial); without it the job stops.
#[derive(Clone, Copy)]
pub struct Termination<'a> {
    /// The SIGTERM flag.
    pub stop: &'a StopFlag,
    /// The hosts, which stop together.
    pub world: &'a World,
    /// `save_model_on_termination`.
    pub keep_partial: bool,
}

impl Termination<'_> {
    /// `Ok(true)` goes on; `Ok(false)` ends the fit keeping what is fitted; an error stops the
    /// job. Every host must call it at the same steps.
    pub fn go_on(&self) -> Result<bool> {
        match self.stop.agreed(self.world) {
            Ok(()) => Ok(true),
            Err(_) if self.keep_partial => {
                static LOGGED: std::sync::Once = std::sync::Once::new();
                LOGGED.call_once(|| {
                    tracing::warn!(
                        "SIGTERM: ending the fit here and saving the model as it stands (save_model_on_termination)"
                    )
                });
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The last step before a fit's model is saved: a fit that ended early (`partial` says what
    /// it kept) is saved as it stands; a SIGTERM after the fit's last safe point stops the job,
    /// or with `save_model_on_termination` lets the complete model be saved.
    pub fn before_saving(&self, partial: Option<&str>) -> Result<()> {
        match partial {
            Some(kept) => {
                tracing::warn!(%kept, "saving the model as it stands (partial)");
                Ok(())
            }
            None => self.go_on().map(drop),
        }
    }
}
