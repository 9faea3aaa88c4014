//! Boosting rounds as the IOPS pair and the tabular XGBoost candidate run them: XGBoost's round
//! lines on the first host, SIGTERM at every round, and the kind's checkpoint after every
//! `checkpoint_interval` rounds.

use crate::checkpoints::Checkpoints;
use crate::stop::Termination;
use common::models::boosted::{BoostState, RoundHooks};
use common::models::xgboost::RoundLog;
use common::Result;

/// A boosting state folded into the kind's own state: the checkpoint's number and bytes.
pub type Fold<'a> = dyn FnMut(&BoostState) -> Result<(u32, Vec<u8>)> + 'a;

/// [`RoundHooks`] of one boosted fit.
pub struct Rounds<'a, 'b> {
    /// SIGTERM, agreed by the hosts.
    pub termination: Termination<'a>,
    /// Whether this host prints the round lines (the first).
    pub print: bool,
    /// Where checkpoints go (the first host, when the job keeps them).
    pub checkpoints: Option<&'a Checkpoints>,
    /// Rounds between two checkpoints.
    pub interval: u32,
    /// Puts a state into the kind's checkpoint.
    pub fold: &'b mut Fold<'a>,
    /// The rounds done when SIGTERM ended the fit early (`save_model_on_termination`).
    pub ended_after: Option<u32>,
}

impl<'a, 'b> Rounds<'a, 'b> {
    /// The hooks of one of `job`'s boosted fits, writing to `checkpoints` (this host's).
    pub fn of(
        job: &'a crate::Job,
        checkpoints: Option<&'a Checkpoints>,
        fold: &'b mut Fold<'a>,
    ) -> Self {
        Self {
            termination: job.termination(),
            print: job.world.is_leader(),
            checkpoints,
            interval: job.config.checkpoint_interval,
            fold,
            ended_after: None,
        }
    }
}

impl RoundHooks for Rounds<'_, '_> {
    fn round(&mut self, log: &RoundLog) -> Result<bool> {
        if self.print {
            println!("{}", log.line);
        }
        self.termination.go_on()
    }

    fn ended_early(&mut self, rounds: u32) {
        self.ended_after = Some(rounds);
    }

    fn saves_after(&self, rounds: u32, last: bool) -> bool {
        self.checkpoints.is_some() && (last || rounds.is_multiple_of(self.interval))
    }

    fn save(&mut self, state: &BoostState) -> Result<()> {
        let (number, bytes) = (self.fold)(state)?;
        match self.checkpoints {
            Some(c) => c.save(number, &bytes),
            None => Ok(()),
        }
    }
}
