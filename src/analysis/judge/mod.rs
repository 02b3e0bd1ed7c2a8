//! Judges turn what the metric providers observed into a [`Verdict`].
//!
//! A judge is a pure function of its configuration, the state it kept from
//! the previous evaluation and the latest observation. The state is plain
//! serde data that the controller stores in `Rollout.status`, so a restarted
//! controller resumes the very same test instead of starting a new one (which
//! would forfeit the error guarantees of the sequential judge).
//!
//! Several metrics: the sequential judge spends `alpha / metrics` on each
//! metric's regression test ([`JudgeSpec::split_alpha`], Bonferroni), so the
//! chance that *any* metric falsely aborts stays under `alpha`. Bonferroni
//! rather than an average of e-values because each metric keeps its own
//! verdict in status, and when a single metric regresses (the common case)
//! averaging M e-values needs exactly the same evidence (`e >= M / alpha`).
//! Promotion needs every metric to be non-inferior at level `alpha`
//! ([`Verdict::combine`]); an intersection-union test needs no split.

pub mod mann_whitney;
pub mod sequential;
mod spec;
pub mod threshold;

use std::fmt::Debug;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use mann_whitney::{MannWhitneyJudge, MannWhitneyState};
pub use sequential::{Detect, PowerProgress, SequentialJudge, SequentialState};
pub use spec::{JudgeSpec, JudgeState};
pub use threshold::{ThresholdJudge, ThresholdState};

use super::Verdict;
pub use super::observation::{Arms, Bucket, Counts, Histogram, Observation, Reading};

/// One way of judging a canary against stable from a stream of observations.
pub trait Judge {
    /// What the judge remembers between evaluations; stored in `Rollout.status`.
    type State: Clone + Debug + Default + PartialEq + Serialize + DeserializeOwned + JsonSchema;

    /// Folds the latest observation into `state` and returns the verdict so
    /// far. Missing or invalid data yields [`Verdict::Inconclusive`], never a
    /// pass.
    fn evaluate(&self, state: &mut Self::State, observation: &Observation) -> Verdict;
}

/// A judge configuration that cannot give a meaningful verdict.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvalidJudge {
    #[error("{field} must be {expected}, got {value}")]
    OutOfRange {
        field: &'static str,
        expected: &'static str,
        value: f64,
    },
}

impl InvalidJudge {
    /// Checks that `value` lies in the range described by `expected`.
    pub(crate) fn check(
        field: &'static str,
        value: f64,
        expected: &'static str,
        ok: impl Fn(f64) -> bool,
    ) -> Result<(), InvalidJudge> {
        if value.is_finite() && ok(value) {
            Ok(())
        } else {
            Err(InvalidJudge::OutOfRange { field, expected, value })
        }
    }
}
